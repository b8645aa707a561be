//! `MetadataState::apply`: a command in, a decision out.
//!
//! Each command is first *planned* from `&self` into the list of changed records
//! (the deltas), which validates it completely; only an accepted plan is then
//! committed by writing those records. A rejected command therefore cannot leave
//! anything half-done: planning has no `&mut` to do it with.

use crate::command::{Applied, Command, MetadataDelta};
use crate::error::MetadataError;
use crate::model::{MetadataState, Topic};
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
            } => self.plan_register_broker(index, *id, *incarnation, endpoints, rack),
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
            Command::AlterPartition(request) => self.plan_alter_partition(request),
            Command::ElectLeader {
                topic,
                partition,
                election,
            } => self.plan_elect_leader(topic, *partition, *election),
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
        }
    }
}
