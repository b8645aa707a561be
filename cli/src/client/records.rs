//! Records to and from Kafka's RecordBatch v2 bytes, with the
//! `kafka-protocol` crate's encoder and decoder (CRC-32C included).

use super::ClientError;
use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// A record to send.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    /// The key: decides the partition when the topic has several.
    pub key: Option<Bytes>,
    /// The value (`None` is a tombstone).
    pub value: Option<Bytes>,
    /// Create time, ms since the epoch.
    pub timestamp: i64,
}

/// A record received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Its partition.
    pub partition: u32,
    /// Its offset.
    pub offset: u64,
    /// Its timestamp, ms since the epoch.
    pub timestamp: i64,
    /// Its key.
    pub key: Option<Bytes>,
    /// Its value.
    pub value: Option<Bytes>,
}

/// The idempotent producer's stamp on a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerStamp {
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
    /// The first record's sequence number.
    pub base_sequence: i32,
}

/// One batch holding `records` (at least one), base offset 0 (the leader
/// assigns offsets).
pub fn encode_batch(
    records: &[ProducerRecord],
    stamp: Option<ProducerStamp>,
) -> Result<Bytes, ClientError> {
    if records.is_empty() {
        return Err(ClientError::Invalid(
            "a batch needs at least one record".into(),
        ));
    }
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let i = i32::try_from(i).unwrap_or(i32::MAX);
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: stamp.map_or(-1, |s| s.producer_id),
                producer_epoch: stamp.map_or(-1, |s| s.producer_epoch),
                timestamp_type: TimestampType::Creation,
                offset: i64::from(i),
                // The encoder keeps records in one batch while offset - sequence
                // is constant.
                sequence: stamp.map_or(i, |s| s.base_sequence.wrapping_add(i)),
                timestamp: r.timestamp,
                key: r.key.clone(),
                value: r.value.clone(),
                headers: Default::default(),
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options)
        .map_err(|e| ClientError::Invalid(format!("cannot encode the batch: {e}")))?;
    Ok(buf.freeze())
}

/// Every record in `records` (whole batches as fetched) at or after `from`.
pub fn decode_batches(
    partition: u32,
    records: Bytes,
    from: u64,
) -> Result<Vec<ConsumerRecord>, ClientError> {
    let mut buf = records;
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    let sets = RecordBatchDecoder::decode_all(&mut buf)
        .map_err(|e| ClientError::Corrupt(format!("partition {partition}: {e}")))?;
    Ok(sets
        .into_iter()
        .flat_map(|set| set.records)
        .filter(|r| !r.control && r.offset >= 0 && r.offset as u64 >= from)
        .map(|r| ConsumerRecord {
            partition,
            offset: r.offset as u64,
            timestamp: r.timestamp,
            key: r.key,
            value: r.value,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_round_trips() {
        let records = vec![
            ProducerRecord {
                key: Some(Bytes::from_static(b"k")),
                value: Some(Bytes::from_static(b"v1")),
                timestamp: 5,
            },
            ProducerRecord {
                key: None,
                value: Some(Bytes::from_static(b"v2")),
                timestamp: 6,
            },
        ];
        let bytes = encode_batch(&records, None).unwrap();
        let back = decode_batches(3, bytes.clone(), 0).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(back[1].value.as_deref(), Some(&b"v2"[..]));
        assert_eq!(
            (back[1].partition, back[1].offset, back[1].timestamp),
            (3, 1, 6)
        );
        // Records before `from` are dropped (a fetch returns whole batches).
        assert_eq!(decode_batches(3, bytes, 1).unwrap().len(), 1);
        assert!(encode_batch(&[], None).is_err());
    }
}
