//! Conversions between the controller's domain types and the wire (`pb::`)
//! types: the only place that knows both.

use crate::model::{Broker, Partition, Topic};
use crate::node::ClusterView;
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
    }
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
    }
}
