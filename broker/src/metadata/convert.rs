//! Metadata stream messages from the wire into the broker's types: the only
//! place in this module that knows `pb::`.

use super::{BrokerId, BrokerInfo, MetadataRecord, MetadataUpdate, PartitionInfo};
use crate::position::LeaderEpoch;
use raftline_proto::pb;

/// A stream message as the cache takes it. Records without a body (a newer
/// controller's record kind this broker does not know) are skipped.
pub fn update_from_wire(update: pb::MetadataUpdate) -> MetadataUpdate {
    MetadataUpdate {
        offset: update.offset,
        version: update.version,
        full_image: update.full_image,
        records: update
            .records
            .into_iter()
            .filter_map(|r| r.record.map(record))
            .collect(),
    }
}

fn ids(ids: Vec<u32>) -> Vec<BrokerId> {
    ids.into_iter().map(BrokerId).collect()
}

/// A partition record (from the stream or an AlterPartition answer).
pub fn partition_from_wire(p: pb::PartitionRecord) -> PartitionInfo {
    PartitionInfo {
        replicas: ids(p.replicas),
        isr: ids(p.isr),
        leader: p.leader.map(BrokerId),
        leader_epoch: LeaderEpoch(p.leader_epoch),
        partition_epoch: p.partition_epoch,
    }
}

fn record(record: pb::metadata_record::Record) -> MetadataRecord {
    use pb::metadata_record::Record;
    match record {
        Record::Broker(b) => MetadataRecord::Broker(BrokerInfo {
            id: BrokerId(b.id),
            epoch: b.epoch,
            endpoints: b.endpoints,
            rack: b.rack,
            fenced: b.fenced,
        }),
        Record::Topic(t) => MetadataRecord::Topic {
            name: t.name,
            id: t.id,
            configs: t.configs,
            partition_count: t.partition_count,
        },
        Record::Partition(p) => MetadataRecord::Partition {
            topic: p.topic.clone(),
            topic_id: p.topic_id,
            index: p.index,
            info: partition_from_wire(p),
        },
        Record::TopicDeleted(t) => MetadataRecord::TopicDeleted {
            name: t.name,
            id: t.id,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::metadata_record::Record;

    #[test]
    fn every_record_kind_converts_and_unknown_ones_are_skipped() {
        let wire = pb::MetadataUpdate {
            offset: 9,
            version: 4,
            full_image: true,
            records: vec![
                pb::MetadataRecord {
                    record: Some(Record::Broker(pb::BrokerRecord {
                        id: 1,
                        epoch: 3,
                        endpoints: [("client".to_string(), "h:1".to_string())].into(),
                        rack: Some("r1".into()),
                        fenced: true,
                    })),
                },
                pb::MetadataRecord { record: None },
                pb::MetadataRecord {
                    record: Some(Record::Partition(pb::PartitionRecord {
                        topic: "t".into(),
                        topic_id: 2,
                        index: 0,
                        replicas: vec![1, 2],
                        isr: vec![1],
                        leader: Some(1),
                        leader_epoch: 5,
                        partition_epoch: 6,
                    })),
                },
                pb::MetadataRecord {
                    record: Some(Record::TopicDeleted(pb::TopicDeletedRecord {
                        name: "old".into(),
                        id: 1,
                    })),
                },
            ],
        };
        let update = update_from_wire(wire);
        assert_eq!(
            (update.offset, update.version, update.full_image),
            (9, 4, true)
        );
        assert_eq!(update.records.len(), 3, "the empty record was skipped");
        assert!(
            matches!(&update.records[0], MetadataRecord::Broker(b) if b.fenced && b.rack.as_deref() == Some("r1"))
        );
        match &update.records[1] {
            MetadataRecord::Partition { info, .. } => {
                assert_eq!(info.leader, Some(BrokerId(1)));
                assert_eq!(info.leader_epoch, LeaderEpoch(5));
                assert_eq!(info.isr, vec![BrokerId(1)]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            update.records[2],
            MetadataRecord::TopicDeleted {
                name: "old".into(),
                id: 1
            }
        );
    }
}
