//! The metadata model as plain data: brokers, topics, partitions, and the whole
//! state they make up.
//!
//! Only [`MetadataState::apply`](crate::MetadataState::apply) changes a
//! `MetadataState`; its fields are private so the invariants
//! ([`MetadataState::check_invariants`]) cannot be broken from outside.

use crate::ids::{
    BrokerEpoch, BrokerId, LeaderEpoch, MetadataVersion, PartitionEpoch, PartitionIndex, TopicId,
};
use crate::topic_name::TopicName;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The topic config that lets an out-of-sync replica become leader (losing data)
/// rather than leave a partition offline. Off unless set to `"true"`.
pub const UNCLEAN_LEADER_ELECTION: &str = "unclean.leader.election.enable";

/// A registered broker.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Broker {
    /// Its id.
    pub id: BrokerId,
    /// The Raft log index of its current registration; a new registration of the
    /// same id gets a larger one.
    pub epoch: BrokerEpoch,
    /// The random id the broker process picked at start: a different one means the
    /// broker restarted (and may have lost its disk).
    pub incarnation: u64,
    /// Listener name -> `host:port`.
    pub endpoints: BTreeMap<String, String>,
    /// Its rack, if configured; placement spreads replicas across racks.
    pub rack: Option<String>,
    /// A fenced broker leads no partition and joins no ISR. Registration starts
    /// fenced; the controller unfences once the broker has caught up.
    pub fenced: bool,
}

/// A topic and its partitions.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Topic {
    /// Its name (unique among live topics).
    pub name: TopicName,
    /// Its id (unique forever).
    pub id: TopicId,
    /// Topic configs under Kafka's names (`retention.ms`, ...).
    pub configs: BTreeMap<String, String>,
    /// Index -> partition; indexes are dense from 0, and every partition has the
    /// same replication factor.
    pub partitions: BTreeMap<PartitionIndex, Partition>,
}

impl Topic {
    /// Whether the topic allows unclean leader election.
    pub fn unclean_election_enabled(&self) -> bool {
        self.configs
            .get(UNCLEAN_LEADER_ELECTION)
            .is_some_and(|v| v == "true")
    }

    /// Its `min.insync.replicas`, as the brokers read it.
    pub fn min_insync(&self) -> usize {
        raftline_proto::topic_config::min_insync_replicas(&self.configs, self.replication_factor())
    }

    /// The replica count of its partitions (0 for a topic without partitions,
    /// which the state never holds).
    pub fn replication_factor(&self) -> usize {
        self.partitions
            .values()
            .next()
            .map_or(0, |p| p.replicas.len())
    }
}

/// One partition's replication record.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Partition {
    /// The brokers holding a replica, distinct; the first is the preferred leader.
    pub replicas: Vec<BrokerId>,
    /// The in-sync replicas: a subset of `replicas`, holds the leader. A
    /// fenced broker stays in only as the last member (it may hold the only
    /// copy of acknowledged data). Empty only when that last member reported
    /// its copy damaged: the partition is then offline, led by an eligible
    /// replica if there is one.
    pub isr: BTreeSet<BrokerId>,
    /// Eligible leader replicas (KIP-966): out of the ISR, yet holding every
    /// committed record. Each left the ISR when that left it smaller than
    /// min.insync.replicas, and a leader's high watermark does not move while
    /// it is; so they are as good as ISR members for an election. Cleared once
    /// the ISR is back at min.insync.replicas; never holds an ISR member or a
    /// broker whose copy is damaged.
    #[serde(default)]
    pub elr: BTreeSet<BrokerId>,
    /// The leader; `None` when the partition is offline (no live ISR member).
    pub leader: Option<BrokerId>,
    /// Monotonic; bumped at every election.
    pub leader_epoch: LeaderEpoch,
    /// Monotonic; bumped at every change of this record.
    pub partition_epoch: PartitionEpoch,
}

/// The whole cluster metadata: what the Raft quorum replicates.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct MetadataState {
    pub(crate) version: MetadataVersion,
    pub(crate) brokers: BTreeMap<BrokerId, Broker>,
    pub(crate) topics: BTreeMap<TopicName, Topic>,
    /// The id the next created topic gets; larger than every id ever given.
    pub(crate) next_topic_id: u64,
    /// The first producer id not yet handed to a broker.
    #[serde(default)]
    pub(crate) next_producer_id: u64,
}

impl Default for MetadataState {
    fn default() -> Self {
        MetadataState {
            version: MetadataVersion(0),
            brokers: BTreeMap::new(),
            topics: BTreeMap::new(),
            next_topic_id: 1,
            next_producer_id: 0,
        }
    }
}

impl MetadataState {
    /// An empty cluster at version 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of commands accepted so far.
    pub fn version(&self) -> MetadataVersion {
        self.version
    }

    /// The first producer id not yet handed out.
    pub fn next_producer_id(&self) -> u64 {
        self.next_producer_id
    }

    /// Every registered broker, by id.
    pub fn brokers(&self) -> &BTreeMap<BrokerId, Broker> {
        &self.brokers
    }

    /// One broker.
    pub fn broker(&self, id: BrokerId) -> Option<&Broker> {
        self.brokers.get(&id)
    }

    /// Every topic, by name.
    pub fn topics(&self) -> &BTreeMap<TopicName, Topic> {
        &self.topics
    }

    /// One topic.
    pub fn topic(&self, name: &TopicName) -> Option<&Topic> {
        self.topics.get(name)
    }

    /// One partition.
    pub fn partition(&self, topic: &TopicName, index: PartitionIndex) -> Option<&Partition> {
        self.topics.get(topic)?.partitions.get(&index)
    }

    /// The id the next CreateTopic will assign (callers seed placement with it).
    pub fn next_topic_id(&self) -> TopicId {
        TopicId(self.next_topic_id)
    }

    /// Whether `id` is registered and not fenced.
    pub fn is_unfenced(&self, id: BrokerId) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced)
    }
}
