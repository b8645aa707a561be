//! `MetadataState::apply`: a command in, a decision out.
//!
//! Each command is first *planned* from `&self` into the list of changed records
//! (the deltas), which validates it completely; only an accepted plan is then
//! committed by writing those records. A rejected command therefore cannot leave
//! anything half-done: planning has no `&mut` to do it with.

use crate::command::{Applied, Command, MetadataDelta, PRODUCER_ID_BLOCK};
use crate::error::MetadataError;
use crate::model::{MetadataState, Topic};
use crate::placement::place_replicas;
use std::collections::BTreeMap;
use tracing::debug;

impl MetadataState {
    /// Applies the command committed at Raft log `index` (strictly increasing
    /// across calls). Accepted: the version goes up by one and the answer lists
    /// the changed records. Rejected: nothing changes, not even the version.
    pub fn apply(&mut self, index: u64, command: &Command) -> Result<Applied, MetadataError> {
        let deltas = self.plan(index, command)?;
        for delta in &deltas {
            self.commit(delta);
        }
        self.version = self.version.next();
        debug!(version = %self.version, changes = deltas.len(), "metadata command applied");
        Ok(Applied {
            version: self.version,
            deltas,
        })
    }

    /// Validates `command` against the current state and lists what it changes.
    fn plan(&self, index: u64, command: &Command) -> Result<Vec<MetadataDelta>, MetadataError> {
        match command {
            Command::RegisterBroker {
                id,
                incarnation,
                endpoints,
                rack,
                damaged,
            } => self.plan_register_broker(index, *id, *incarnation, endpoints, rack, damaged),
            Command::UnfenceBroker { id, epoch } => self.plan_unfence_broker(*id, *epoch),
            Command::FenceBroker { id, epoch } => self.plan_fence_broker(*id, *epoch),
            Command::CreateTopic {
                name,
                configs,
                assignments,
            } => self.plan_create_topic(name, configs, assignments),
            Command::DeleteTopic { name } => self.plan_delete_topic(name),
            Command::CreatePartitions { topic, assignments } => {
                self.plan_create_partitions(topic, assignments)
            }
            Command::CreateTopicPlaced {
                name,
                configs,
                partitions,
                replication_factor,
            } => {
                let start = self.next_topic_id as u32;
                let assignments =
                    place_replicas(&self.brokers, *partitions, *replication_factor, start)?;
                self.plan_create_topic(name, configs, &assignments)
            }
            Command::CreatePartitionsPlaced { topic, total } => {
                let existing =
                    self.topics
                        .get(topic)
                        .ok_or_else(|| MetadataError::UnknownTopic {
                            name: topic.clone(),
                        })?;
                let count = existing.partitions.len() as u32;
                if *total <= count {
                    return Err(MetadataError::InvalidPartitions {
                        reason: format!("topic {topic} has {count} partitions; the new total {total} must be larger"),
                    });
                }
                let rf = existing.replication_factor() as u32;
                let start = (existing.id.0 as u32).wrapping_add(count);
                let assignments = place_replicas(&self.brokers, total - count, rf, start)?;
                self.plan_create_partitions(topic, &assignments)
            }
            Command::AlterTopicConfigs { topic, set, delete } => {
                self.plan_alter_topic_configs(topic, set, delete)
            }
            Command::AlterPartition(request) => self.plan_alter_partition(request),
            Command::ElectLeader {
                topic,
                partition,
                election,
            } => self.plan_elect_leader(topic, *partition, *election),
            Command::AllocateProducerIds {
                broker,
                broker_epoch,
            } => {
                self.current_broker(*broker, Some(*broker_epoch))?;
                // 2^63 ids at 1000 per block: never exhausted in practice.
                let first = self.next_producer_id;
                Ok(vec![MetadataDelta::ProducerIdsAllocated {
                    broker: *broker,
                    first,
                    count: PRODUCER_ID_BLOCK,
                }])
            }
        }
    }

    /// Writes one planned record. Plans list a topic before its partitions, so a
    /// partition's topic is always there.
    fn commit(&mut self, delta: &MetadataDelta) {
        match delta {
            MetadataDelta::BrokerChanged(broker) => {
                self.brokers.insert(broker.id, broker.clone());
            }
            MetadataDelta::TopicChanged {
                name, id, configs, ..
            } => {
                let topic = self.topics.entry(name.clone()).or_insert_with(|| Topic {
                    name: name.clone(),
                    id: *id,
                    configs: BTreeMap::new(),
                    partitions: BTreeMap::new(),
                });
                topic.configs = configs.clone();
                self.next_topic_id = self.next_topic_id.max(id.0.saturating_add(1));
            }
            MetadataDelta::PartitionChanged {
                topic,
                index,
                partition,
                ..
            } => {
                if let Some(topic) = self.topics.get_mut(topic) {
                    topic.partitions.insert(*index, partition.clone());
                }
            }
            MetadataDelta::TopicDeleted { name, .. } => {
                self.topics.remove(name);
            }
            MetadataDelta::ProducerIdsAllocated { first, count, .. } => {
                self.next_producer_id = self.next_producer_id.max(first.saturating_add(*count));
            }
        }
    }
}
