//! The Kafka protocol listener against a three-node cluster, at the wire:
//! every advertised version of every API is sent and its answer decoded with
//! the `kafka-protocol` crate (a field this listener set that a version does
//! not carry would fail the encode and close the connection), and bad input
//! is refused the way Kafka refuses it. Real clients (librdkafka,
//! kafka-python, kcat) run against the same listener in scripts/kafka-compat.sh.

use crate::procs::{wait_for, ProcCluster};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FetchRequest, InitProducerIdRequest,
    ListOffsetsRequest, MetadataRequest, MetadataResponse, ProduceRequest, RequestHeader,
    ResponseHeader, TopicName, TransactionalId,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use raftline_broker::kafka::SUPPORTED;
use raftline_broker::records::{decode_batches, encode_batch, NewRecord, ProducerStamp};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use tracing::info;

/// One connection speaking the protocol, a request at a time.
struct Conn {
    stream: TcpStream,
    correlation: i32,
}

impl Conn {
    fn open(addr: &str) -> Conn {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Conn {
            stream,
            correlation: 0,
        }
    }

    fn frame<R: Request>(&mut self, request: &R, version: i16) -> (Vec<u8>, i32) {
        self.correlation += 1;
        let mut body = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("raftline-test")))
            .encode(&mut body, R::header_version(version))
            .unwrap();
        request.encode(&mut body, version).unwrap();
        let mut framed = (body.len() as i32).to_be_bytes().to_vec();
        framed.extend_from_slice(&body);
        (framed, self.correlation)
    }

    /// The next response frame, or None if the broker closed the connection.
    fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).ok()?;
        let mut buf = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut buf).ok()?;
        Some(Bytes::from(buf))
    }

    fn call<R: Request>(&mut self, request: &R, version: i16) -> R::Response {
        let (framed, correlation) = self.frame(request, version);
        self.stream.write_all(&framed).unwrap();
        self.answer::<R::Response>(correlation, version)
    }

    fn answer<T: Decodable + HeaderVersion>(&mut self, correlation: i32, version: i16) -> T {
        let mut buf = self
            .read_frame()
            .unwrap_or_else(|| panic!("the broker closed the connection (request {correlation})"));
        let header = ResponseHeader::decode(&mut buf, T::header_version(version)).unwrap();
        assert_eq!(header.correlation_id, correlation);
        let body = T::decode(&mut buf, version).unwrap();
        assert!(!buf.has_remaining(), "{} bytes left over", buf.remaining());
        body
    }

    /// Whether the broker closes the connection after `bytes`.
    fn closed_after(mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).unwrap();
        self.read_frame().is_none()
    }
}

fn range(key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let (_, min, max) = SUPPORTED.iter().find(|(k, _, _)| *k == key).unwrap();
    *min..=*max
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn records(n: usize, tag: &str, stamp: Option<ProducerStamp>) -> Bytes {
    let records: Vec<NewRecord> = (0..n)
        .map(|i| NewRecord {
            key: None,
            value: Some(Bytes::from(format!("{tag}-{i}"))),
            timestamp: 1_700_000_000_000 + i as i64,
        })
        .collect();
    encode_batch(&records, stamp).unwrap()
}

fn produce(topic: &str, batch: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch))])])
}

fn fetch(topic: &str, offset: i64, leader_epoch: i32) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_current_leader_epoch(leader_epoch)
                .with_partition_max_bytes(1 << 20)])])
}

fn list_offsets(topic: &str, timestamp: i64) -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(timestamp)])])
}

fn metadata_of(conn: &mut Conn, topic: &str, version: i16) -> MetadataResponse {
    let request = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(name(topic))),
    ]));
    conn.call(&request, version)
}

#[test]
fn kafka_listener_serves_every_advertised_version() {
    let cluster = ProcCluster::start(3);
    cluster.ok(&[
        "topic",
        "create",
        "k",
        "--partitions",
        "1",
        "--replication-factor",
        "3",
    ]);
    let mut any = Conn::open(&cluster.kafka_addr(1));

    info!("ApiVersions: the advertised ranges, and v0 with UNSUPPORTED_VERSION for a newer one");
    for v in range(ApiKey::ApiVersions) {
        let r = any.call(&ApiVersionsRequest::default(), v);
        assert_eq!(r.error_code, 0);
        let advertised: Vec<(i16, i16, i16)> = r
            .api_keys
            .iter()
            .map(|k| (k.api_key, k.min_version, k.max_version))
            .collect();
        let expected: Vec<(i16, i16, i16)> = SUPPORTED
            .iter()
            .map(|&(k, min, max)| (k as i16, min, max))
            .collect();
        assert_eq!(advertised, expected, "v{v}");
    }
    let (mut newer, correlation) = any.frame(&ApiVersionsRequest::default(), 3);
    newer[6..8].copy_from_slice(&99i16.to_be_bytes());
    any.stream.write_all(&newer).unwrap();
    let r: ApiVersionsResponse = any.answer(correlation, 0);
    assert_eq!(r.error_code, 35, "UNSUPPORTED_VERSION");
    assert!(r.api_keys.iter().any(|k| k.api_key == ApiKey::Fetch as i16));

    info!("Metadata at every version: three brokers on their Kafka ports, the partition's leader");
    let mut leader = -1;
    let mut epoch = -1;
    for v in range(ApiKey::Metadata) {
        let r = metadata_of(&mut any, "k", v);
        let mut ports: Vec<String> = r
            .brokers
            .iter()
            .map(|b| format!("{}:{}", b.host.as_str(), b.port))
            .collect();
        ports.sort();
        let mut expected: Vec<String> = (1..=3).map(|i| cluster.kafka_addr(i)).collect();
        expected.sort();
        assert_eq!(ports, expected, "v{v}");
        let topic = &r.topics[0];
        assert_eq!(topic.error_code, 0, "v{v}");
        let p = &topic.partitions[0];
        assert_eq!(p.replica_nodes.len(), 3);
        leader = p.leader_id.0;
        assert!((1..=3).contains(&leader), "v{v}: leader {leader}");
        if v >= 7 {
            epoch = p.leader_epoch;
            assert!(epoch >= 0);
        }
        if v >= 10 {
            assert!(!topic.topic_id.is_nil());
        }
    }
    let unknown = metadata_of(&mut any, "no-such-topic", 9);
    assert_eq!(
        unknown.topics[0].error_code, 3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    let leader_addr = cluster.kafka_addr(leader as usize);
    let follower_addr = cluster.kafka_addr(if leader == 1 { 2 } else { 1 });
    let mut lead = Conn::open(&leader_addr);

    info!("Produce at every served version, acks=all; the offsets follow on");
    let mut total = 0i64;
    for v in 3..=*range(ApiKey::Produce).end() {
        let r = lead.call(&produce("k", records(2, &format!("v{v}"), None), -1), v);
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "v{v}: {:?}", p.error_message);
        assert_eq!(p.base_offset, total, "v{v}");
        total += 2;
    }

    info!("an idempotent producer: a retried batch is not written twice");
    let idempotent = InitProducerIdRequest::default().with_transactional_id(None);
    let init = lead.call(&idempotent, 4);
    assert_eq!(init.error_code, 0);
    assert!(init.producer_id.0 >= 0);
    let stamp = ProducerStamp {
        producer_id: init.producer_id.0,
        producer_epoch: init.producer_epoch,
        base_sequence: 0,
    };
    let batch = records(3, "idem", Some(stamp));
    for attempt in 0..2 {
        let r = lead.call(&produce("k", batch.clone(), -1), 9);
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "attempt {attempt}");
        assert_eq!(p.base_offset, total, "attempt {attempt}: same offset");
    }
    total += 3;
    for v in range(ApiKey::InitProducerId) {
        let r = any.call(&idempotent, v);
        assert_eq!((r.error_code, r.producer_epoch), (0, 0), "v{v}");
    }
    let transactional = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx"))));
    assert_eq!(
        any.call(&transactional, 4).error_code,
        53,
        "transactions are refused"
    );
    assert_eq!(
        any.call(&InitProducerIdRequest::default(), 4).error_code,
        42,
        "an empty transactional id is malformed"
    );

    info!("a follower refuses a produce and names the leader (v10+)");
    let mut follow = Conn::open(&follower_addr);
    for v in [9, 10] {
        let r = follow.call(&produce("k", records(1, "no", None), -1), v);
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 6, "NOT_LEADER_OR_FOLLOWER");
        if v >= 10 {
            assert_eq!(p.current_leader.leader_id.0, leader);
            assert!(r.node_endpoints.iter().any(|n| n.node_id.0 == leader
                && format!("{}:{}", n.host.as_str(), n.port) == leader_addr));
        }
    }
    let bad_acks = lead.call(&produce("k", records(1, "x", None), 2), 9);
    assert_eq!(
        bad_acks.responses[0].partition_responses[0].error_code, 21,
        "INVALID_REQUIRED_ACKS"
    );

    info!("Fetch at every served version: every record, up to the high watermark");
    wait_for("the high watermark", Duration::from_secs(10), || {
        let r = lead.call(&list_offsets("k", -1), 6);
        r.topics[0].partitions[0].offset == total
    });
    for v in range(ApiKey::Fetch) {
        let r = lead.call(&fetch("k", 0, if v >= 9 { epoch } else { -1 }), v);
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "v{v}");
        assert_eq!(p.high_watermark, total, "v{v}");
        let got = decode_batches(p.records.clone().unwrap(), 0).unwrap();
        assert_eq!(got.len() as i64, total, "v{v}");
        assert_eq!(got[0].value.as_deref(), Some(&b"v3-0"[..]));
        assert_eq!(got.last().unwrap().value.as_deref(), Some(&b"idem-2"[..]));
    }
    let out_of_range = lead.call(&fetch("k", total + 10, -1), 12);
    assert_eq!(out_of_range.responses[0].partitions[0].error_code, 1);
    let newer_epoch = lead.call(&fetch("k", 0, epoch + 1), 12);
    assert_eq!(
        newer_epoch.responses[0].partitions[0].error_code, 75,
        "UNKNOWN_LEADER_EPOCH"
    );
    let at_follower = follow.call(&fetch("k", 0, epoch), 12);
    let p = &at_follower.responses[0].partitions[0];
    assert_eq!(p.error_code, 6);
    assert_eq!(p.current_leader.leader_id.0, leader);

    info!("ListOffsets at every served version: earliest and latest");
    for v in range(ApiKey::ListOffsets) {
        let earliest = lead.call(&list_offsets("k", -2), v);
        assert_eq!(earliest.topics[0].partitions[0].offset, 0, "v{v}");
        let latest = lead.call(&list_offsets("k", -1), v);
        assert_eq!(latest.topics[0].partitions[0].offset, total, "v{v}");
    }

    info!("acks=0 is answered with nothing; the next request still is");
    let (framed, _) = lead.frame(&produce("k", records(1, "zero", None), 0), 9);
    lead.stream.write_all(&framed).unwrap();
    let r = lead.call(&ApiVersionsRequest::default(), 3);
    assert_eq!(r.error_code, 0);
    wait_for("the acks=0 record", Duration::from_secs(10), || {
        let r = lead.call(&list_offsets("k", -1), 6);
        r.topics[0].partitions[0].offset == total + 1
    });

    info!("bad input closes that connection only");
    let oversized = (200i32 << 20).to_be_bytes();
    assert!(Conn::open(&leader_addr).closed_after(&oversized));
    let negative = (-5i32).to_be_bytes();
    assert!(Conn::open(&leader_addr).closed_after(&negative));
    let mut unknown_key = BytesMut::new();
    unknown_key.put_i32(10);
    unknown_key.put_i16(999);
    unknown_key.put_i16(0);
    unknown_key.put_i32(1);
    unknown_key.put_i16(-1);
    assert!(Conn::open(&leader_addr).closed_after(&unknown_key));
    let mut old = Conn::open(&leader_addr);
    let (mut v2, _) = old.frame(&produce("k", records(1, "old", None), -1), 3);
    v2[6..8].copy_from_slice(&2i16.to_be_bytes());
    assert!(
        old.closed_after(&v2),
        "Produce v2 is advertised but refused"
    );
    let mut garbage = Conn::open(&leader_addr);
    let (mut broken, _) = garbage.frame(&metadata_request_all(), 9);
    broken.truncate(14);
    broken[..4].copy_from_slice(&10i32.to_be_bytes());
    assert!(garbage.closed_after(&broken));
    let r = metadata_of(&mut Conn::open(&leader_addr), "k", 12);
    assert_eq!(r.topics[0].error_code, 0, "the listener still serves");
    let log =
        std::fs::read_to_string(cluster.dir.path().join(format!("node{leader}.log"))).unwrap();
    assert!(
        log.contains("socket.request.max.bytes") && log.contains("unknown API key 999"),
        "each close says why in the log"
    );
}

fn metadata_request_all() -> MetadataRequest {
    MetadataRequest::default()
}
