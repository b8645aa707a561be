//! Conversions between the controller's domain types and the wire (`pb::`)
//! types: the only place that knows both.

use crate::command::{AlterPartitionRequest, MetadataDelta};
use crate::error::MetadataError;
use crate::ids::{BrokerEpoch, BrokerId, LeaderEpoch, PartitionEpoch, PartitionIndex};
use crate::machine::MetadataUpdate;
use crate::model::{Broker, Partition, Topic};
use crate::node::ClusterView;
use crate::topic_name::TopicName;
use raftline_proto::pb;

/// A topic for the wire.
pub fn topic(topic: &Topic) -> pb::TopicDescription {
    pb::TopicDescription {
        name: topic.name.as_str().to_string(),
        id: topic.id.0,
        configs: topic.configs.clone().into_iter().collect(),
        partitions: topic
            .partitions
            .iter()
            .map(|(index, p)| partition(index.0, p))
            .collect(),
    }
}

fn partition(index: u32, p: &Partition) -> pb::PartitionDescription {
    pb::PartitionDescription {
        index,
        replicas: p.replicas.iter().map(|b| b.0).collect(),
        isr: p.isr.iter().map(|b| b.0).collect(),
        leader: p.leader.map(|b| b.0),
        leader_epoch: p.leader_epoch.0,
        partition_epoch: p.partition_epoch.0,
        elr: p.elr.iter().map(|b| b.0).collect(),
    }
}

/// Partitions named on the wire; a bad topic name is refused.
pub fn partition_refs(
    refs: Vec<pb::PartitionRef>,
) -> Result<Vec<(TopicName, PartitionIndex)>, MetadataError> {
    refs.into_iter()
        .map(|r| Ok((TopicName::new(r.topic)?, PartitionIndex(r.partition))))
        .collect()
}

fn broker(b: &Broker) -> pb::BrokerDescription {
    pb::BrokerDescription {
        id: b.id.0,
        epoch: b.epoch.0,
        endpoints: b.endpoints.clone().into_iter().collect(),
        rack: b.rack.clone(),
        fenced: b.fenced,
    }
}

/// The cluster view for the wire.
pub fn cluster(view: &ClusterView) -> pb::DescribeClusterResponse {
    pb::DescribeClusterResponse {
        brokers: view.brokers.iter().map(broker).collect(),
        controller_leader: view.controller_leader,
        controllers: view
            .controllers
            .iter()
            .map(|(&id, (addr, voter))| pb::ControllerDescription {
                id,
                peer_address: addr.clone(),
                voter: *voter,
            })
            .collect(),
        metadata_version: view.version.0,
        raft_term: view.raft_term,
        raft_applied_index: view.raft_applied_index,
        offline_partitions: view.offline.iter().map(partition_ref).collect(),
        under_replicated_partitions: view.under_replicated.iter().map(partition_ref).collect(),
        stale: view.stale.clone().unwrap_or_default(),
    }
}

fn partition_ref((topic, partition): &(String, u32)) -> pb::PartitionRef {
    pb::PartitionRef {
        topic: topic.clone(),
        partition: *partition,
    }
}

/// A metadata update for the wire.
pub fn update(update: &MetadataUpdate) -> pb::MetadataUpdate {
    pb::MetadataUpdate {
        offset: update.offset,
        version: update.version.0,
        full_image: update.full_image,
        records: update.deltas.iter().map(record).collect(),
    }
}

fn record(delta: &MetadataDelta) -> pb::MetadataRecord {
    use pb::metadata_record::Record;
    let record = match delta {
        // Controller bookkeeping, nothing for brokers' caches: a record
        // without a body, which subscribers skip.
        MetadataDelta::ProducerIdsAllocated { .. } => {
            return pb::MetadataRecord { record: None };
        }
        MetadataDelta::BrokerChanged(b) => Record::Broker(pb::BrokerRecord {
            id: b.id.0,
            epoch: b.epoch.0,
            endpoints: b.endpoints.clone().into_iter().collect(),
            rack: b.rack.clone(),
            fenced: b.fenced,
        }),
        MetadataDelta::TopicChanged {
            name,
            id,
            configs,
            partition_count,
        } => Record::Topic(pb::TopicRecord {
            name: name.as_str().to_string(),
            id: id.0,
            configs: configs.clone().into_iter().collect(),
            partition_count: *partition_count,
        }),
        MetadataDelta::PartitionChanged {
            topic,
            topic_id,
            index,
            partition: p,
        } => Record::Partition(pb::PartitionRecord {
            topic: topic.as_str().to_string(),
            topic_id: topic_id.0,
            index: index.0,
            replicas: p.replicas.iter().map(|b| b.0).collect(),
            isr: p.isr.iter().map(|b| b.0).collect(),
            leader: p.leader.map(|b| b.0),
            leader_epoch: p.leader_epoch.0,
            partition_epoch: p.partition_epoch.0,
        }),
        MetadataDelta::TopicDeleted { name, id } => Record::TopicDeleted(pb::TopicDeletedRecord {
            name: name.as_str().to_string(),
            id: id.0,
        }),
    };
    pb::MetadataRecord {
        record: Some(record),
    }
}

/// A partition's changed record for the wire; `None` for other deltas.
pub fn partition_record(delta: &MetadataDelta) -> Option<pb::PartitionRecord> {
    match record(delta).record {
        Some(pb::metadata_record::Record::Partition(p)) => Some(p),
        _ => None,
    }
}

/// An AlterPartition request from the wire.
pub fn alter_partition(
    r: pb::AlterPartitionRequest,
) -> Result<AlterPartitionRequest, MetadataError> {
    Ok(AlterPartitionRequest {
        topic: TopicName::new(r.topic)?,
        partition: PartitionIndex(r.partition),
        leader: BrokerId(r.leader),
        leader_epoch: LeaderEpoch(r.leader_epoch),
        partition_epoch: PartitionEpoch(r.partition_epoch),
        new_isr: r.new_isr.into_iter().map(BrokerId).collect(),
        broker_epochs: r
            .broker_epochs
            .into_iter()
            .map(|(b, e)| (BrokerId(b), BrokerEpoch(e)))
            .collect(),
    })
}
