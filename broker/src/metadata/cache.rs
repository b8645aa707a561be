//! [`MetadataCache`]: the cluster as the stream has described it so far.

use super::{BrokerId, BrokerInfo, MetadataRecord, MetadataUpdate, PartitionInfo, TopicInfo};
use crate::position::TopicPartition;
use std::collections::BTreeMap;
use thiserror::Error;

/// Why an update could not be applied. The cache is unchanged; the remedy is
/// to resubscribe, which starts with a full image.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MetadataError {
    /// A delta skipped versions: something was missed.
    #[error("metadata update at version {got} does not follow version {have}; resubscribe for a full image")]
    VersionGap {
        /// The cache's version.
        have: u64,
        /// The update's.
        got: u64,
    },
    /// A partition record for a topic the cache does not hold.
    #[error("partition {topic}-{index} arrived before its topic; resubscribe for a full image")]
    OrphanPartition {
        /// The topic named.
        topic: String,
        /// The partition.
        index: u32,
    },
}

/// What changed for a partition this broker hosts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartitionChange {
    /// A hosted partition appeared or its record changed: act on the new record
    /// (lead, follow, or stop, by its leader and leader epoch).
    Changed {
        /// The partition.
        partition: TopicPartition,
        /// Its topic's id.
        topic_id: u64,
        /// Its record now.
        info: PartitionInfo,
    },
    /// A hosted partition is gone (its topic was deleted, or this broker is no
    /// longer a replica): stop it and delete its log.
    Removed {
        /// The partition.
        partition: TopicPartition,
        /// Its topic's id (the one whose data is to go).
        topic_id: u64,
    },
}

/// The brokers and topics as of the last update, and the partitions this
/// broker (`local`) hosts.
#[derive(Clone, Debug)]
pub struct MetadataCache {
    local: BrokerId,
    /// The Raft offset of the last update (the broker's metadata offset).
    offset: u64,
    /// The metadata version of the last update.
    version: u64,
    brokers: BTreeMap<BrokerId, BrokerInfo>,
    topics: BTreeMap<String, TopicInfo>,
}

/// Hosted partitions: topic id, record, and the topic's configs (a config
/// change is a change of every hosted partition of the topic: its log and
/// min.insync.replicas follow).
type Hosted = BTreeMap<TopicPartition, (u64, PartitionInfo, BTreeMap<String, String>)>;

impl MetadataCache {
    /// An empty cache for broker `local`.
    pub fn new(local: BrokerId) -> Self {
        MetadataCache {
            local,
            offset: 0,
            version: 0,
            brokers: BTreeMap::new(),
            topics: BTreeMap::new(),
        }
    }

    /// The Raft offset of the last update: reported in heartbeats, so the
    /// controller unfences this broker once it has seen its own registration.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The metadata version of the last update.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// A broker, if registered.
    pub fn broker(&self, id: BrokerId) -> Option<&BrokerInfo> {
        self.brokers.get(&id)
    }

    /// Every registered broker by id.
    pub fn brokers(&self) -> &BTreeMap<BrokerId, BrokerInfo> {
        &self.brokers
    }

    /// The local broker's id.
    pub fn local(&self) -> BrokerId {
        self.local
    }

    /// A topic, if it exists.
    pub fn topic(&self, name: &str) -> Option<&TopicInfo> {
        self.topics.get(name)
    }

    /// All topics by name.
    pub fn topics(&self) -> &BTreeMap<String, TopicInfo> {
        &self.topics
    }

    /// Applies one stream message; returns what changed for the partitions this
    /// broker hosts. An image replaces everything; a delta must follow the
    /// current version (a stale duplicate is ignored).
    pub fn apply(&mut self, update: MetadataUpdate) -> Result<Vec<PartitionChange>, MetadataError> {
        // An image older than what the cache holds (a new subscription on a
        // controller that lags) would take the broker back in time, replaying
        // old leaderships: ignore it; that controller's later updates follow.
        if update.full_image && update.offset < self.offset {
            return Ok(Vec::new());
        }
        if !update.full_image {
            if update.offset <= self.offset {
                return Ok(Vec::new());
            }
            if update.version != self.version + 1 {
                return Err(MetadataError::VersionGap {
                    have: self.version,
                    got: update.version,
                });
            }
        }
        let mut next = if update.full_image {
            MetadataCache::new(self.local)
        } else {
            self.clone()
        };
        for record in update.records {
            next.apply_record(record)?;
        }
        next.offset = update.offset;
        next.version = update.version;
        let changes = diff(&self.hosted(), &next.hosted());
        *self = next;
        Ok(changes)
    }

    fn apply_record(&mut self, record: MetadataRecord) -> Result<(), MetadataError> {
        match record {
            MetadataRecord::Broker(b) => {
                self.brokers.insert(b.id, b);
            }
            MetadataRecord::Topic {
                name, id, configs, ..
            } => {
                let topic = self.topics.entry(name).or_insert_with(|| TopicInfo {
                    id,
                    configs: BTreeMap::new(),
                    partitions: BTreeMap::new(),
                });
                if topic.id != id {
                    // Deleted and created again under the same name.
                    topic.partitions.clear();
                    topic.id = id;
                }
                topic.configs = configs;
            }
            MetadataRecord::Partition {
                topic,
                topic_id,
                index,
                info,
            } => match self.topics.get_mut(&topic).filter(|t| t.id == topic_id) {
                Some(t) => {
                    t.partitions.insert(index, info);
                }
                None => return Err(MetadataError::OrphanPartition { topic, index }),
            },
            MetadataRecord::TopicDeleted { name, id } => {
                if self.topics.get(&name).is_some_and(|t| t.id == id) {
                    self.topics.remove(&name);
                }
            }
        }
        Ok(())
    }

    /// The partitions that list this broker as a replica.
    fn hosted(&self) -> Hosted {
        let mut hosted = Hosted::new();
        for (name, topic) in &self.topics {
            for (&index, info) in &topic.partitions {
                if info.replicas.contains(&self.local) {
                    let tp = TopicPartition {
                        topic: name.clone(),
                        partition: index,
                    };
                    hosted.insert(tp, (topic.id, info.clone(), topic.configs.clone()));
                }
            }
        }
        hosted
    }
}

/// Hosted partitions removed, then those added or changed, in partition order.
fn diff(before: &Hosted, after: &Hosted) -> Vec<PartitionChange> {
    let mut changes = Vec::new();
    for (tp, &(topic_id, _, _)) in before {
        if after.get(tp).is_none_or(|&(id, _, _)| id != topic_id) {
            changes.push(PartitionChange::Removed {
                partition: tp.clone(),
                topic_id,
            });
        }
    }
    for (tp, hosted) in after {
        let (topic_id, info, _) = hosted;
        if before.get(tp) != Some(hosted) {
            changes.push(PartitionChange::Changed {
                partition: tp.clone(),
                topic_id: *topic_id,
                info: info.clone(),
            });
        }
    }
    changes
}

#[cfg(test)]
#[path = "cache_test.rs"]
mod tests;
