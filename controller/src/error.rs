//! Why the metadata state machine rejects a command.
//!
//! Every variant is an expected outcome, not a fault: a rejected command leaves the
//! state unchanged and its error travels back through Raft (serialized) to the
//! caller that proposed it, so the enum is plain, serializable data.

use crate::ids::{BrokerEpoch, BrokerId, LeaderEpoch, PartitionEpoch, PartitionIndex};
use crate::topic_name::TopicName;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A command the metadata state machine refused (or could not read).
#[derive(Clone, PartialEq, Eq, Debug, Error, Serialize, Deserialize)]
pub enum MetadataError {
    /// The name breaks Kafka's topic name rule.
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// A topic of that name exists.
    #[error("topic {name} already exists")]
    TopicAlreadyExists {
        /// The topic.
        name: TopicName,
    },
    /// No topic of that name exists.
    #[error("unknown topic {name}")]
    UnknownTopic {
        /// The topic.
        name: TopicName,
    },
    /// The topic exists but has no such partition.
    #[error("topic {topic} has no partition {partition}")]
    UnknownPartition {
        /// The topic.
        topic: TopicName,
        /// The partition asked for.
        partition: PartitionIndex,
    },
    /// No broker of that id has registered.
    #[error("unknown broker {broker}")]
    UnknownBroker {
        /// The broker.
        broker: BrokerId,
    },
    /// The partition count asked for is not allowed (e.g. zero).
    #[error("invalid partitions: {reason}")]
    InvalidPartitions {
        /// What is wrong.
        reason: String,
    },
    /// The replication factor asked for is not allowed (zero, more than the live
    /// brokers, or unlike the topic's).
    #[error("invalid replication factor: {reason}")]
    InvalidReplicationFactor {
        /// What is wrong, with the numbers involved.
        reason: String,
    },
    /// A replica assignment is malformed (duplicate brokers, lists of unequal
    /// length, no live replica to lead a partition).
    #[error("invalid replica assignment: {reason}")]
    InvalidReplicaAssignment {
        /// What is wrong, naming the partition.
        reason: String,
    },
    /// A topic config has a value the controller cannot accept.
    #[error("invalid config {key}: {reason}")]
    InvalidConfig {
        /// The config key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A broker re-registered with its current incarnation but different details:
    /// two processes claim the same incarnation.
    #[error("duplicate registration of broker {broker}: {reason}")]
    DuplicateBrokerRegistration {
        /// The broker.
        broker: BrokerId,
        /// What differs.
        reason: String,
    },
    /// The broker epoch given is not the broker's current registration's.
    #[error("stale epoch {given} for broker {broker} (current {current})")]
    StaleBrokerEpoch {
        /// The broker.
        broker: BrokerId,
        /// Its current registration epoch.
        current: BrokerEpoch,
        /// The epoch in the command.
        given: BrokerEpoch,
    },
    /// The leader epoch given is not the partition's current one.
    #[error("fenced leader epoch {given} (current {current})")]
    FencedLeaderEpoch {
        /// The partition's leader epoch.
        current: LeaderEpoch,
        /// The epoch in the command.
        given: LeaderEpoch,
    },
    /// The partition epoch given is not the partition's current one: the sender
    /// worked from an older version of the partition.
    #[error("invalid update version {given} (current partition epoch {current})")]
    InvalidUpdateVersion {
        /// The partition's epoch.
        current: PartitionEpoch,
        /// The epoch in the command.
        given: PartitionEpoch,
    },
    /// The sender is not the partition's leader.
    #[error("not the leader (leader is {})", display_leader(.leader))]
    NotLeader {
        /// The current leader; `None` if the partition is offline.
        leader: Option<BrokerId>,
    },
    /// A proposed ISR is malformed (empty, duplicates, lacks the leader).
    #[error("invalid ISR: {reason}")]
    InvalidIsr {
        /// What is wrong.
        reason: String,
    },
    /// A broker cannot join the ISR: not a replica, fenced, or its broker epoch is
    /// not current (KIP-903: it restarted, maybe with an empty disk).
    #[error("broker {broker} is not eligible for the ISR: {reason}")]
    IneligibleReplica {
        /// The broker.
        broker: BrokerId,
        /// Why.
        reason: String,
    },
    /// A leader election was asked for where it changes nothing (the preferred
    /// replica already leads, or an unclean election of a partition with a leader).
    #[error("election not needed: {reason}")]
    ElectionNotNeeded {
        /// Why.
        reason: String,
    },
    /// The preferred replica cannot lead: fenced or out of the ISR.
    #[error("preferred leader {broker} not available: {reason}")]
    PreferredLeaderNotAvailable {
        /// The preferred replica.
        broker: BrokerId,
        /// Why.
        reason: String,
    },
    /// No replica can lead the partition, even uncleanly: all are fenced.
    #[error("no eligible leader: every replica is fenced")]
    EligibleLeadersNotAvailable,
    /// The command's bytes did not decode.
    #[error("malformed command: {reason}")]
    MalformedCommand {
        /// The decoder's message.
        reason: String,
    },
}

fn display_leader(leader: &Option<BrokerId>) -> String {
    match leader {
        Some(id) => id.to_string(),
        None => "none: the partition is offline".into(),
    }
}
