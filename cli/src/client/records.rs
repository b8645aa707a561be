//! Records to and from Kafka's RecordBatch v2 bytes: the broker crate's
//! codec (`raftline_broker::records`), with the client's types and errors.

use super::ClientError;
use bytes::Bytes;
pub use raftline_broker::records::ProducerStamp;
use raftline_broker::records::{self, NewRecord};

/// A record to send.
pub type ProducerRecord = NewRecord;

/// A record received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Its topic.
    pub topic: String,
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

impl ConsumerRecord {
    /// Its topic and partition.
    pub fn topic_partition(&self) -> raftline_broker::TopicPartition {
        raftline_broker::TopicPartition {
            topic: self.topic.clone(),
            partition: self.partition,
        }
    }
}

/// One batch holding `records` (at least one), base offset 0 (the leader
/// assigns offsets).
pub fn encode_batch(
    records: &[ProducerRecord],
    stamp: Option<ProducerStamp>,
) -> Result<Bytes, ClientError> {
    records::encode_batch(records, stamp).map_err(|e| ClientError::Invalid(e.to_string()))
}

/// Every record in `records` (whole batches as fetched) at or after `from`.
pub fn decode_batches(
    topic: &str,
    partition: u32,
    records: Bytes,
    from: u64,
) -> Result<Vec<ConsumerRecord>, ClientError> {
    let decoded = records::decode_batches(records, from)
        .map_err(|e| ClientError::Corrupt(format!("{topic}/{partition}: {e}")))?;
    Ok(decoded
        .into_iter()
        .map(|r| ConsumerRecord {
            topic: topic.to_string(),
            partition,
            offset: r.offset,
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
        let back = decode_batches("t", 3, bytes.clone(), 0).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(back[1].value.as_deref(), Some(&b"v2"[..]));
        assert_eq!(
            (back[1].partition, back[1].offset, back[1].timestamp),
            (3, 1, 6)
        );
        // Records before `from` are dropped (a fetch returns whole batches).
        assert_eq!(decode_batches("t", 3, bytes, 1).unwrap().len(), 1);
        assert!(encode_batch(&[], None).is_err());
    }
}
