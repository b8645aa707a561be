//! Group records as `__consumer_offsets` records: the key names the group
//! (and, for an offset, the partition), the value holds the rest, both as
//! protobuf (`raftline.v1.GroupRecordKey`, `GroupEpochRecord`,
//! `OffsetCommitRecord`). An empty value under a group's own key deletes it.

use super::assignor::Assignor;
use super::state::{CommittedOffset, GroupRecord};
use crate::position::TopicPartition;
use crate::records::{NewRecord, StoredRecord};
use bytes::Bytes;
use prost::Message as _;
use raftline_proto::pb;
use thiserror::Error;

/// A stored record that is not a group record this broker understands.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("undecodable group record at offset {offset}: {reason}")]
pub struct CodecError {
    /// Where it is.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

/// `record` of group `group` as a log record.
pub fn encode(group: &str, record: &GroupRecord, timestamp: i64) -> NewRecord {
    let mut key = pb::GroupRecordKey {
        group: group.to_string(),
        topic: None,
        partition: None,
    };
    let value = match record {
        GroupRecord::Epoch { epoch, assignor } => Some(
            pb::GroupEpochRecord {
                epoch: *epoch,
                assignor: assignor.name().to_string(),
            }
            .encode_to_vec(),
        ),
        GroupRecord::Offset {
            partition,
            committed,
        } => {
            key.topic = Some(partition.topic.clone());
            key.partition = Some(partition.partition);
            Some(
                pb::OffsetCommitRecord {
                    offset: committed.offset,
                    metadata: committed.metadata.clone(),
                    commit_ms: committed.commit_ms,
                }
                .encode_to_vec(),
            )
        }
        GroupRecord::OffsetDeleted { partition } => {
            key.topic = Some(partition.topic.clone());
            key.partition = Some(partition.partition);
            None
        }
        GroupRecord::Deleted => None,
    };
    NewRecord {
        key: Some(Bytes::from(key.encode_to_vec())),
        value: value.map(Bytes::from),
        timestamp,
    }
}

/// A log record back as its group and group record.
pub fn decode(record: &StoredRecord) -> Result<(String, GroupRecord), CodecError> {
    let bad = |reason: String| CodecError {
        offset: record.offset,
        reason,
    };
    let key_bytes = record.key.clone().ok_or_else(|| bad("no key".into()))?;
    let key = pb::GroupRecordKey::decode(key_bytes).map_err(|e| bad(format!("key: {e}")))?;
    let group_record = match (key.topic, key.partition, record.value.clone()) {
        (None, None, None) => GroupRecord::Deleted,
        (None, None, Some(value)) => {
            let epoch =
                pb::GroupEpochRecord::decode(value).map_err(|e| bad(format!("epoch: {e}")))?;
            let assignor = Assignor::from_name(&epoch.assignor)
                .ok_or_else(|| bad(format!("unknown assignor {:?}", epoch.assignor)))?;
            GroupRecord::Epoch {
                epoch: epoch.epoch,
                assignor,
            }
        }
        (Some(topic), Some(partition), Some(value)) => {
            let offset =
                pb::OffsetCommitRecord::decode(value).map_err(|e| bad(format!("offset: {e}")))?;
            GroupRecord::Offset {
                partition: TopicPartition { topic, partition },
                committed: CommittedOffset {
                    offset: offset.offset,
                    metadata: offset.metadata,
                    commit_ms: offset.commit_ms,
                },
            }
        }
        (Some(topic), Some(partition), None) => GroupRecord::OffsetDeleted {
            partition: TopicPartition { topic, partition },
        },
        (topic, partition, value) => {
            return Err(bad(format!(
                "key topic {topic:?} and partition {partition:?} with{} a value",
                if value.is_some() { "" } else { "out" }
            )))
        }
    };
    Ok((key.group, group_record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{decode_batches, encode_batch};

    #[test]
    fn every_record_round_trips_through_a_batch() {
        let records = vec![
            GroupRecord::Epoch {
                epoch: 7,
                assignor: Assignor::RoundRobin,
            },
            GroupRecord::Offset {
                partition: TopicPartition {
                    topic: "orders".into(),
                    partition: 3,
                },
                committed: CommittedOffset {
                    offset: 42,
                    metadata: "m".into(),
                    commit_ms: 1_000,
                },
            },
            GroupRecord::OffsetDeleted {
                partition: TopicPartition {
                    topic: "orders".into(),
                    partition: 3,
                },
            },
            GroupRecord::Deleted,
        ];
        let encoded: Vec<NewRecord> = records.iter().map(|r| encode("billing", r, 9)).collect();
        let batch = encode_batch(&encoded, None).unwrap();
        let back: Vec<GroupRecord> = decode_batches(batch, 0)
            .unwrap()
            .iter()
            .map(|r| {
                let (group, record) = decode(r).unwrap();
                assert_eq!(group, "billing");
                record
            })
            .collect();
        assert_eq!(back, records);
    }

    #[test]
    fn foreign_records_are_typed_errors() {
        let stored = |key: Option<&'static [u8]>, value: Option<&'static [u8]>| StoredRecord {
            offset: 5,
            timestamp: 0,
            key: key.map(Bytes::from_static),
            value: value.map(Bytes::from_static),
        };
        let topic_only = pb::GroupRecordKey {
            group: "g".into(),
            topic: Some("t".into()),
            partition: None,
        }
        .encode_to_vec()
        .leak();
        for (record, want) in [
            (stored(None, Some(b"x")), "no key"),
            (stored(Some(b"\xff\xff"), None), "key:"),
            (stored(Some(topic_only), Some(b"")), "partition None"),
        ] {
            let err = decode(&record).unwrap_err();
            assert_eq!(err.offset, 5);
            assert!(err.reason.contains(want), "{err}");
        }
    }
}
