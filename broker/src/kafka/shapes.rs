//! A request's structure checked before the `kafka-protocol` decoder sees
//! it: every array's element count must fit in the bytes left in the frame
//! (each element takes at least one byte), and every length must stay inside
//! the frame. kafka-protocol 0.18 reserves `count x element size` bytes
//! straight from the wire's count before decoding a single element, so a
//! 14-byte frame claiming 2^31 topics asked for 150 GB and aborted the broker.
//! The layouts (`shapes_table.rs`) are generated from the crate's decoders by
//! `scripts/gen-kafka-shapes.py`.

#[path = "shapes_table.rs"]
mod table;

use kafka_protocol::messages::ApiKey;

/// One field: its encoding in versions `min..=max`.
#[derive(Debug)]
pub(super) struct F {
    pub min: i16,
    pub max: i16,
    pub kind: Kind,
}

/// How a field is encoded: the wire's whole vocabulary, though today's table
/// uses only part of it.
#[allow(dead_code)]
#[derive(Debug)]
pub(super) enum Kind {
    /// A fixed number of bytes.
    Fixed(usize),
    /// An `i16`-length string (-1: null).
    Str,
    /// A varint-length string (length + 1; 0: null).
    CStr,
    /// `i32`-length bytes (-1: null).
    Bytes,
    /// Varint-length bytes (length + 1; 0: null).
    CBytes,
    /// An unsigned varint.
    UVarint,
    /// A zigzag varint.
    Varint,
    /// An `i32`-counted array (-1: null).
    Arr(&'static Elem),
    /// A varint-counted array (count + 1; 0: null).
    CArr(&'static Elem),
    /// A struct in place.
    Nested(&'static Shape),
}

/// An array's elements.
#[derive(Debug)]
pub(super) enum Elem {
    /// Structs.
    Struct(&'static Shape),
    /// Plain values.
    Leaf(Kind),
}

/// A struct: its fields in order; from version `flexible` on, followed by
/// tagged fields.
#[derive(Debug)]
pub(super) struct Shape {
    pub flexible: i16,
    pub fields: &'static [F],
}

/// The layout of `key`'s request body, if the listener serves it.
fn shape(key: ApiKey) -> Option<&'static Shape> {
    use table::*;
    Some(match key {
        ApiKey::ApiVersions => &API_VERSIONS_REQUEST,
        ApiKey::Metadata => &METADATA_REQUEST,
        ApiKey::Produce => &PRODUCE_REQUEST,
        ApiKey::Fetch => &FETCH_REQUEST,
        ApiKey::ListOffsets => &LIST_OFFSETS_REQUEST,
        ApiKey::OffsetCommit => &OFFSET_COMMIT_REQUEST,
        ApiKey::OffsetFetch => &OFFSET_FETCH_REQUEST,
        ApiKey::FindCoordinator => &FIND_COORDINATOR_REQUEST,
        ApiKey::JoinGroup => &JOIN_GROUP_REQUEST,
        ApiKey::Heartbeat => &HEARTBEAT_REQUEST,
        ApiKey::LeaveGroup => &LEAVE_GROUP_REQUEST,
        ApiKey::SyncGroup => &SYNC_GROUP_REQUEST,
        ApiKey::DescribeGroups => &DESCRIBE_GROUPS_REQUEST,
        ApiKey::ListGroups => &LIST_GROUPS_REQUEST,
        ApiKey::CreateTopics => &CREATE_TOPICS_REQUEST,
        ApiKey::DeleteTopics => &DELETE_TOPICS_REQUEST,
        ApiKey::InitProducerId => &INIT_PRODUCER_ID_REQUEST,
        ApiKey::OffsetForLeaderEpoch => &OFFSET_FOR_LEADER_EPOCH_REQUEST,
        ApiKey::DescribeConfigs => &DESCRIBE_CONFIGS_REQUEST,
        ApiKey::CreatePartitions => &CREATE_PARTITIONS_REQUEST,
        ApiKey::DeleteGroups => &DELETE_GROUPS_REQUEST,
        ApiKey::IncrementalAlterConfigs => &INCREMENTAL_ALTER_CONFIGS_REQUEST,
        ApiKey::DescribeCluster => &DESCRIBE_CLUSTER_REQUEST,
        ApiKey::ElectLeaders => &ELECT_LEADERS_REQUEST,
        _ => return None,
    })
}

/// Checks `body` (the request after its header) of `key` at `version`.
pub(super) fn check(key: ApiKey, version: i16, body: &[u8]) -> Result<(), String> {
    walk(key, version, body).map(|_| ())
}

/// [`check`], and how many bytes were left after the request.
fn walk(key: ApiKey, version: i16, body: &[u8]) -> Result<usize, String> {
    let Some(shape) = shape(key) else {
        return Err(format!("{key:?} has no known layout"));
    };
    let mut walker = Walker { buf: body, version };
    walker.shape(shape)?;
    Ok(walker.buf.len())
}

struct Walker<'a> {
    buf: &'a [u8],
    version: i16,
}

impl Walker<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if n > self.buf.len() {
            return Err(format!(
                "a field of {n} bytes with {} left in the frame",
                self.buf.len()
            ));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn i16(&mut self) -> Result<i16, String> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, String> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn uvarint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for i in 0..10 {
            let b = self.take(1)?[0];
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a varint longer than 10 bytes".into())
    }

    /// `n` more bytes, or a null (`None`), must fit.
    fn skip_len(&mut self, n: Option<u64>) -> Result<(), String> {
        if let Some(n) = n {
            self.take(usize::try_from(n).map_err(|_| "a length beyond memory")?)?;
        }
        Ok(())
    }

    /// An element count that can fit in what is left: each element takes at
    /// least one byte on the wire.
    fn count(&self, n: u64) -> Result<u64, String> {
        if n > self.buf.len() as u64 {
            return Err(format!(
                "an array of {n} elements with {} bytes left in the frame",
                self.buf.len()
            ));
        }
        Ok(n)
    }

    fn kind(&mut self, kind: &Kind) -> Result<(), String> {
        match kind {
            Kind::Fixed(n) => self.take(*n).map(|_| ()),
            Kind::Str => {
                let n = self.i16()?;
                self.skip_len(u64::try_from(n).ok())
            }
            Kind::CStr | Kind::CBytes => {
                let n = self.uvarint()?;
                self.skip_len(n.checked_sub(1))
            }
            Kind::Bytes => {
                let n = self.i32()?;
                self.skip_len(u64::try_from(n).ok())
            }
            Kind::UVarint | Kind::Varint => self.uvarint().map(|_| ()),
            Kind::Arr(elem) => {
                let n = self.i32()?;
                match u64::try_from(n) {
                    Ok(n) => self.elements(self.count(n)?, elem),
                    Err(_) if n == -1 => Ok(()),
                    Err(_) => Err(format!("an array length of {n}")),
                }
            }
            Kind::CArr(elem) => {
                let n = self.uvarint()?;
                match n.checked_sub(1) {
                    Some(n) => self.elements(self.count(n)?, elem),
                    None => Ok(()),
                }
            }
            Kind::Nested(shape) => self.shape(shape),
        }
    }

    fn elements(&mut self, n: u64, elem: &Elem) -> Result<(), String> {
        for _ in 0..n {
            match elem {
                Elem::Struct(shape) => self.shape(shape)?,
                Elem::Leaf(kind) => self.kind(kind)?,
            }
        }
        Ok(())
    }

    fn shape(&mut self, shape: &Shape) -> Result<(), String> {
        for field in shape.fields {
            if (field.min..=field.max).contains(&self.version) {
                self.kind(&field.kind)?;
            }
        }
        if self.version >= shape.flexible {
            let tags = self.uvarint()?;
            for _ in 0..self.count(tags)? {
                self.uvarint()?;
                let size = self.uvarint()?;
                self.skip_len(Some(size))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{MetadataRequest, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn encoded(request: &MetadataRequest, version: i16) -> Vec<u8> {
        let mut buf = BytesMut::new();
        request
            .encode(&mut buf, version)
            .unwrap_or_else(|e| panic!("{e}"));
        buf.to_vec()
    }

    fn exact<T: Encodable + Default>(key: ApiKey, version: i16) {
        let mut buf = BytesMut::new();
        if T::default().encode(&mut buf, version).is_err() {
            // A default this version cannot carry (a field it lacks).
            return;
        }
        assert_eq!(walk(key, version, &buf), Ok(0), "{key:?} v{version}");
    }

    #[test]
    fn every_served_request_walks_to_its_last_byte() {
        use kafka_protocol::messages::*;
        for &(key, min, max) in super::super::SUPPORTED {
            let min = if key == ApiKey::Produce { 3 } else { min };
            for v in min..=max {
                match key {
                    ApiKey::ApiVersions => exact::<ApiVersionsRequest>(key, v),
                    ApiKey::Metadata => exact::<MetadataRequest>(key, v),
                    ApiKey::Produce => exact::<ProduceRequest>(key, v),
                    ApiKey::Fetch => exact::<FetchRequest>(key, v),
                    ApiKey::ListOffsets => exact::<ListOffsetsRequest>(key, v),
                    ApiKey::OffsetCommit => exact::<OffsetCommitRequest>(key, v),
                    ApiKey::OffsetFetch => exact::<OffsetFetchRequest>(key, v),
                    ApiKey::FindCoordinator => exact::<FindCoordinatorRequest>(key, v),
                    ApiKey::JoinGroup => exact::<JoinGroupRequest>(key, v),
                    ApiKey::Heartbeat => exact::<HeartbeatRequest>(key, v),
                    ApiKey::LeaveGroup => exact::<LeaveGroupRequest>(key, v),
                    ApiKey::SyncGroup => exact::<SyncGroupRequest>(key, v),
                    ApiKey::DescribeGroups => exact::<DescribeGroupsRequest>(key, v),
                    ApiKey::ListGroups => exact::<ListGroupsRequest>(key, v),
                    ApiKey::CreateTopics => exact::<CreateTopicsRequest>(key, v),
                    ApiKey::DeleteTopics => exact::<DeleteTopicsRequest>(key, v),
                    ApiKey::InitProducerId => exact::<InitProducerIdRequest>(key, v),
                    ApiKey::OffsetForLeaderEpoch => exact::<OffsetForLeaderEpochRequest>(key, v),
                    ApiKey::DescribeConfigs => exact::<DescribeConfigsRequest>(key, v),
                    ApiKey::CreatePartitions => exact::<CreatePartitionsRequest>(key, v),
                    ApiKey::DeleteGroups => exact::<DeleteGroupsRequest>(key, v),
                    ApiKey::IncrementalAlterConfigs => {
                        exact::<IncrementalAlterConfigsRequest>(key, v)
                    }
                    ApiKey::DescribeCluster => exact::<DescribeClusterRequest>(key, v),
                    ApiKey::ElectLeaders => exact::<ElectLeadersRequest>(key, v),
                    other => panic!("{other:?} is served without a layout check"),
                }
            }
        }
    }

    #[test]
    fn real_requests_pass_and_impossible_counts_do_not() {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("orders"))))]));
        for version in 0..=12 {
            let body = encoded(&request, version);
            assert_eq!(
                check(ApiKey::Metadata, version, &body),
                Ok(()),
                "v{version}"
            );
            assert!(
                check(ApiKey::Metadata, version, &body[..body.len() - 1]).is_err(),
                "v{version}: a truncated frame"
            );
        }
        // v1: a topic array claiming 2^31 - 1 elements in four bytes.
        let huge = 0x7fff_ffffi32.to_be_bytes();
        let err = check(ApiKey::Metadata, 1, &huge).unwrap_err();
        assert!(err.contains("2147483647 elements"), "{err}");
        // v9: the compact form, with a varint count.
        let err = check(ApiKey::Metadata, 9, &[0xff, 0xff, 0xff, 0xff, 0x07, 0]).unwrap_err();
        assert!(err.contains("elements"), "{err}");
        assert!(check(ApiKey::JoinGroup, 0, &[0x00, 0x01]).is_err());
    }
}
