//! What the metadata state machine is asked to do, and what it answers.

use crate::ids::{
    BrokerEpoch, BrokerId, LeaderEpoch, MetadataVersion, PartitionEpoch, PartitionIndex, TopicId,
};
use crate::model::{Broker, Partition};
use crate::topic_name::TopicName;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A change to the metadata, as proposed through Raft. The controller service
/// builds these (placement, timing of fencing) and the state machine decides.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Command {
    /// A broker (re)registers. Its epoch becomes the command's log index and it
    /// starts fenced; a retry by the same incarnation changes nothing.
    RegisterBroker {
        /// The broker.
        id: BrokerId,
        /// The broker process's random id.
        incarnation: u64,
        /// Listener name -> `host:port`.
        endpoints: BTreeMap<String, String>,
        /// Its rack.
        rack: Option<String>,
        /// Partitions whose local copy the process found damaged at start
        /// (synced records cut by recovery): it leaves their ISR and ELR even
        /// as the last member, so it cannot be elected missing records the
        /// others hold.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        damaged: Vec<(TopicName, PartitionIndex)>,
    },
    /// The broker has caught up with the metadata: it may lead and join ISRs.
    UnfenceBroker {
        /// The broker.
        id: BrokerId,
        /// Must be its current registration's epoch.
        epoch: BrokerEpoch,
    },
    /// The broker is gone (missed heartbeats) or shutting down: move leadership
    /// away and drop it from ISRs.
    FenceBroker {
        /// The broker.
        id: BrokerId,
        /// If given, must be its current registration's epoch (so a fence meant
        /// for an old registration does not hit a new one).
        epoch: Option<BrokerEpoch>,
    },
    /// Creates a topic with one replica list per partition (see
    /// [`place_replicas`](crate::place_replicas)).
    CreateTopic {
        /// The topic.
        name: TopicName,
        /// Its configs.
        configs: BTreeMap<String, String>,
        /// Partition `i`'s replicas, preferred leader first.
        assignments: Vec<Vec<BrokerId>>,
    },
    /// Deletes a topic and all its partitions.
    DeleteTopic {
        /// The topic.
        name: TopicName,
    },
    /// Adds partitions after a topic's last one.
    CreatePartitions {
        /// The topic.
        topic: TopicName,
        /// The new partitions' replicas, in index order.
        assignments: Vec<Vec<BrokerId>>,
    },
    /// Creates a topic whose replicas the controller places when the command
    /// is applied ([`place_replicas`](crate::place_replicas) over the committed
    /// broker set, starting at the new topic's id), so a proposer with a stale
    /// view of the brokers cannot cause a wrong or refused placement.
    CreateTopicPlaced {
        /// The topic.
        name: TopicName,
        /// Its configs.
        configs: BTreeMap<String, String>,
        /// Partitions to create.
        partitions: u32,
        /// Replicas per partition.
        replication_factor: u32,
    },
    /// Grows a topic to `total` partitions, placed when applied (as
    /// `CreateTopicPlaced`), with the topic's replication factor.
    CreatePartitionsPlaced {
        /// The topic.
        topic: TopicName,
        /// The new partition count; more than the current one.
        total: u32,
    },
    /// Changes a topic's configs (Kafka's IncrementalAlterConfigs): `set`
    /// values replace the topic's, `delete` names go back to their defaults.
    AlterTopicConfigs {
        /// The topic.
        topic: TopicName,
        /// Configs to set.
        set: BTreeMap<String, String>,
        /// Configs to remove.
        delete: BTreeSet<String>,
    },
    /// A partition leader's compare-and-set of its ISR.
    AlterPartition(AlterPartitionRequest),
    /// A broker asks for a block of producer ids to hand to idempotent
    /// producers (KIP-730): ids are unique across the cluster for ever.
    AllocateProducerIds {
        /// The broker.
        broker: BrokerId,
        /// Its current registration epoch.
        broker_epoch: BrokerEpoch,
    },
    /// Asks for a leader election of one partition.
    ElectLeader {
        /// The topic.
        topic: TopicName,
        /// The partition.
        partition: PartitionIndex,
        /// Which election.
        election: ElectionType,
    },
}

/// AlterPartition's arguments: the leader proposes a new ISR for the version of
/// the partition it last saw.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct AlterPartitionRequest {
    /// The topic.
    pub topic: TopicName,
    /// The partition.
    pub partition: PartitionIndex,
    /// The sender, which must be the leader.
    pub leader: BrokerId,
    /// The leader epoch the sender leads in.
    pub leader_epoch: LeaderEpoch,
    /// The partition epoch the sender last saw.
    pub partition_epoch: PartitionEpoch,
    /// The proposed ISR.
    pub new_isr: Vec<BrokerId>,
    /// The broker epoch of proposed ISR members as the leader saw it in their
    /// fetch requests; required for each member being added (KIP-903).
    pub broker_epochs: BTreeMap<BrokerId, BrokerEpoch>,
}

/// The kinds of leader election an operator can ask for.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum ElectionType {
    /// Move leadership to the preferred replica (the first), if it is live and in
    /// the ISR.
    Preferred,
    /// Bring an offline partition back with any live replica, even out of sync
    /// (may lose acknowledged data), whatever the topic's config says.
    Unclean,
}

/// An accepted command's answer: the new version and every record it changed.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Applied {
    /// The state's version after the command.
    pub version: MetadataVersion,
    /// The changed records in the order they were applied.
    pub deltas: Vec<MetadataDelta>,
}

/// One changed record. Self-contained (whole records, not diffs), so a broker's
/// metadata cache can apply the stream without the controller's state.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum MetadataDelta {
    /// A broker's registration, as it now is.
    BrokerChanged(Broker),
    /// A topic was created or changed; its new partitions follow as
    /// `PartitionChanged`.
    TopicChanged {
        /// The topic.
        name: TopicName,
        /// Its id.
        id: TopicId,
        /// Its configs.
        configs: BTreeMap<String, String>,
        /// Its partition count after the command.
        partition_count: u32,
    },
    /// A partition's record, as it now is.
    PartitionChanged {
        /// The topic.
        topic: TopicName,
        /// The topic's id (tells apart a topic re-created under the same name).
        topic_id: TopicId,
        /// The partition.
        index: PartitionIndex,
        /// Its record.
        partition: Partition,
    },
    /// A topic and all its partitions are gone.
    TopicDeleted {
        /// The topic.
        name: TopicName,
        /// Its id.
        id: TopicId,
    },
    /// Producer ids `first..first + count` now belong to `broker`.
    ProducerIdsAllocated {
        /// The broker.
        broker: BrokerId,
        /// The block's first id.
        first: u64,
        /// Ids in the block.
        count: u64,
    },
}

/// Producer ids per [`Command::AllocateProducerIds`].
pub const PRODUCER_ID_BLOCK: u64 = 1000;
