//! The broker's view of the cluster, fed by the controller's metadata stream: a
//! full image on connect, then every change in order. Pure: updates go in,
//! the partitions that changed come out, for the replica manager to act on
//! (become leader or follower at the new epoch, stop, delete).
//!
//! ```text
//! MetadataStream.Watch ─pb─> convert ─> MetadataCache::apply(update)
//!                                         ├─ image: replace everything
//!                                         └─ delta: offset and version must move on
//!                                       ─> Vec<PartitionChange>
//! ```

mod cache;
mod convert;

pub use cache::{MetadataCache, MetadataError, PartitionChange};
pub use convert::{partition_from_wire, update_from_wire};

use crate::position::LeaderEpoch;
use std::collections::BTreeMap;
use std::fmt;

/// A broker's id in the cluster.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct BrokerId(pub u32);

impl fmt::Display for BrokerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A registered broker as the controller describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerInfo {
    /// Its id.
    pub id: BrokerId,
    /// Its registration epoch (the Raft index of its registration).
    pub epoch: u64,
    /// Listener name -> `host:port`.
    pub endpoints: BTreeMap<String, String>,
    /// Its rack, if any.
    pub rack: Option<String>,
    /// Fenced brokers lead nothing and are in no ISR.
    pub fenced: bool,
}

/// One partition's replica set and leadership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Replicas, preferred leader first.
    pub replicas: Vec<BrokerId>,
    /// In-sync replicas.
    pub isr: Vec<BrokerId>,
    /// The leader; `None` while the partition is offline.
    pub leader: Option<BrokerId>,
    /// Bumped at every leader change: fences the old leader.
    pub leader_epoch: LeaderEpoch,
    /// Bumped at every change of the record (ISR changes included).
    pub partition_epoch: u32,
}

/// A topic's settings and partitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    /// Its id: tells apart a topic deleted and created again under one name.
    pub id: u64,
    /// Topic configs under Kafka's names.
    pub configs: BTreeMap<String, String>,
    /// Index -> partition.
    pub partitions: BTreeMap<u32, PartitionInfo>,
}

/// One changed record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataRecord {
    /// A broker's registration as it now is.
    Broker(BrokerInfo),
    /// A topic created or changed (its partitions follow as `Partition`).
    Topic {
        /// The topic.
        name: String,
        /// Its id.
        id: u64,
        /// Its configs.
        configs: BTreeMap<String, String>,
        /// Its partition count.
        partition_count: u32,
    },
    /// A partition's record as it now is.
    Partition {
        /// The topic.
        topic: String,
        /// The topic's id.
        topic_id: u64,
        /// The partition.
        index: u32,
        /// Its record.
        info: PartitionInfo,
    },
    /// A topic and its partitions are gone.
    TopicDeleted {
        /// The topic.
        name: String,
        /// Its id.
        id: u64,
    },
}

/// One message of the metadata stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataUpdate {
    /// The Raft index of the controller command it comes from.
    pub offset: u64,
    /// The metadata version after it.
    pub version: u64,
    /// Whether it replaces everything.
    pub full_image: bool,
    /// The records.
    pub records: Vec<MetadataRecord>,
}
