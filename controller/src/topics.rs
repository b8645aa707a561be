//! Topic lifecycle commands: create, delete, add partitions.

use crate::command::MetadataDelta;
use crate::error::MetadataError;
use crate::ids::{BrokerId, LeaderEpoch, PartitionEpoch, PartitionIndex, TopicId};
use crate::model::{MetadataState, Partition, UNCLEAN_LEADER_ELECTION};
use crate::topic_name::TopicName;
use raftline_proto::topic_config::CleanupPolicy;
use std::collections::{BTreeMap, BTreeSet};

impl MetadataState {
    /// CreateTopic: a new id, and one partition per replica list, each led by
    /// its first unfenced replica with the unfenced replicas as ISR.
    pub(crate) fn plan_create_topic(
        &self,
        name: &TopicName,
        configs: &BTreeMap<String, String>,
        assignments: &[Vec<BrokerId>],
    ) -> Result<Vec<MetadataDelta>, MetadataError> {
        if self.topics.contains_key(name) {
            return Err(MetadataError::TopicAlreadyExists { name: name.clone() });
        }
        validate_configs(configs, assignments.first().map_or(0, Vec::len))?;
        let partitions = self.new_partitions(assignments, 0, None)?;
        let id = TopicId(self.next_topic_id);
        Ok(topic_deltas(name, id, configs, partitions, 0))
    }

    /// DeleteTopic.
    pub(crate) fn plan_delete_topic(
        &self,
        name: &TopicName,
    ) -> Result<Vec<MetadataDelta>, MetadataError> {
        let topic = self
            .topics
            .get(name)
            .ok_or_else(|| MetadataError::UnknownTopic { name: name.clone() })?;
        Ok(vec![MetadataDelta::TopicDeleted {
            name: name.clone(),
            id: topic.id,
        }])
    }

    /// CreatePartitions: new partitions after the last, with the topic's
    /// replication factor.
    pub(crate) fn plan_create_partitions(
        &self,
        name: &TopicName,
        assignments: &[Vec<BrokerId>],
    ) -> Result<Vec<MetadataDelta>, MetadataError> {
        let topic = self
            .topics
            .get(name)
            .ok_or_else(|| MetadataError::UnknownTopic { name: name.clone() })?;
        let first = topic.partitions.len();
        let partitions =
            self.new_partitions(assignments, first, Some(topic.replication_factor()))?;
        Ok(topic_deltas(
            name,
            topic.id,
            &topic.configs,
            partitions,
            first,
        ))
    }

    /// AlterTopicConfigs: the topic's record with its new configs, validated
    /// as at creation. When `min.insync.replicas` changes, every partition's
    /// ELR is cleared (KIP-966): its members were eligible under the old
    /// minimum only (a lower one lets the high watermark move past them).
    pub(crate) fn plan_alter_topic_configs(
        &self,
        name: &TopicName,
        set: &BTreeMap<String, String>,
        delete: &BTreeSet<String>,
    ) -> Result<Vec<MetadataDelta>, MetadataError> {
        let topic = self
            .topics
            .get(name)
            .ok_or_else(|| MetadataError::UnknownTopic { name: name.clone() })?;
        let mut configs = topic.configs.clone();
        for key in delete {
            if !TOPIC_CONFIGS.contains(&key.as_str()) {
                return Err(MetadataError::InvalidConfig {
                    key: key.clone(),
                    reason: format!(
                        "unknown topic config; known ones are {}",
                        TOPIC_CONFIGS.join(", ")
                    ),
                });
            }
            configs.remove(key);
        }
        configs.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
        let replication_factor = topic.replication_factor();
        validate_configs(&configs, replication_factor)?;
        let min_insync_changed =
            raftline_proto::topic_config::min_insync_replicas(&configs, replication_factor)
                != topic.min_insync();
        let mut deltas = vec![MetadataDelta::TopicChanged {
            name: name.clone(),
            id: topic.id,
            configs,
            partition_count: u32::try_from(topic.partitions.len()).unwrap_or(u32::MAX),
        }];
        if min_insync_changed {
            for (index, partition) in &topic.partitions {
                if partition.elr.is_empty() {
                    continue;
                }
                let mut next = partition.clone();
                next.elr.clear();
                next.partition_epoch = next.partition_epoch.next();
                deltas.push(MetadataDelta::PartitionChanged {
                    topic: name.clone(),
                    topic_id: topic.id,
                    index: *index,
                    partition: next,
                });
            }
        }
        Ok(deltas)
    }

    /// Validates replica lists for partitions numbered from `first` and builds
    /// their initial records. `replication_factor` is the topic's, for existing
    /// topics; a new topic's is its first list's length.
    fn new_partitions(
        &self,
        assignments: &[Vec<BrokerId>],
        first: usize,
        replication_factor: Option<usize>,
    ) -> Result<Vec<Partition>, MetadataError> {
        let Some(first_list) = assignments.first() else {
            return Err(MetadataError::InvalidPartitions {
                reason: "at least one partition is required".into(),
            });
        };
        if u32::try_from(first + assignments.len()).is_err() {
            return Err(MetadataError::InvalidPartitions {
                reason: format!("{} partitions is too many", first + assignments.len()),
            });
        }
        let rf = replication_factor.unwrap_or(first_list.len());
        if rf == 0 {
            return Err(MetadataError::InvalidReplicationFactor {
                reason: "replication factor must be at least 1".into(),
            });
        }
        let mut partitions = Vec::with_capacity(assignments.len());
        for (i, replicas) in assignments.iter().enumerate() {
            let index = first + i;
            if replicas.len() != rf {
                return Err(MetadataError::InvalidReplicaAssignment {
                    reason: format!(
                        "partition {index} has {} replicas where the replication factor is {rf}",
                        replicas.len()
                    ),
                });
            }
            let mut seen = BTreeSet::new();
            for &b in replicas {
                if !seen.insert(b) {
                    return Err(MetadataError::InvalidReplicaAssignment {
                        reason: format!("partition {index} lists broker {b} twice"),
                    });
                }
                if !self.brokers.contains_key(&b) {
                    return Err(MetadataError::UnknownBroker { broker: b });
                }
            }
            let isr: BTreeSet<BrokerId> = replicas
                .iter()
                .copied()
                .filter(|&b| self.is_unfenced(b))
                .collect();
            let Some(&leader) = replicas.iter().find(|b| isr.contains(b)) else {
                return Err(MetadataError::InvalidReplicaAssignment {
                    reason: format!("partition {index}: every replica {replicas:?} is fenced"),
                });
            };
            partitions.push(Partition {
                replicas: replicas.clone(),
                isr,
                elr: BTreeSet::new(),
                leader: Some(leader),
                leader_epoch: LeaderEpoch(0),
                partition_epoch: PartitionEpoch(0),
            });
        }
        Ok(partitions)
    }
}

/// The topic configs Raftline knows, under Kafka's names. Anything else is
/// refused, so a typo never silently does nothing.
pub const TOPIC_CONFIGS: &[&str] = &[
    "cleanup.policy",
    "delete.retention.ms",
    "max.message.bytes",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.ms",
    UNCLEAN_LEADER_ELECTION,
];

/// Every config must be known and its value must parse; `replication_factor`
/// bounds `min.insync.replicas`.
fn validate_configs(
    configs: &BTreeMap<String, String>,
    replication_factor: usize,
) -> Result<(), MetadataError> {
    for (key, value) in configs {
        let invalid = |reason: String| MetadataError::InvalidConfig {
            key: key.clone(),
            reason,
        };
        let int = |min: i64| -> Result<i64, MetadataError> {
            match value.parse::<i64>() {
                Ok(n) if n >= min => Ok(n),
                _ => Err(invalid(format!("{value:?} is not an integer >= {min}"))),
            }
        };
        match key.as_str() {
            UNCLEAN_LEADER_ELECTION if value != "true" && value != "false" => {
                return Err(invalid(format!(
                    "{value:?} is neither \"true\" nor \"false\""
                )));
            }
            "cleanup.policy" if CleanupPolicy::parse(value).is_none() => {
                return Err(invalid(format!(
                    "{value:?} is not a cleanup policy: use \"delete\", \"compact\" or \"compact,delete\""
                )));
            }
            "min.cleanable.dirty.ratio"
                if value
                    .parse::<f64>()
                    .map_or(true, |r| !(0.0..=1.0).contains(&r)) =>
            {
                return Err(invalid(format!("{value:?} is not a number in [0, 1]")));
            }
            "delete.retention.ms" | "min.compaction.lag.ms" => {
                int(0)?;
            }
            "min.insync.replicas" => {
                let n = int(1)?;
                if n > i64::try_from(replication_factor).unwrap_or(i64::MAX) {
                    return Err(invalid(format!(
                        "{n} exceeds the replication factor {replication_factor}"
                    )));
                }
            }
            "retention.bytes" | "retention.ms" => {
                int(-1)?;
            }
            "segment.bytes" | "max.message.bytes" => {
                int(1024)?;
            }
            "segment.ms" => {
                int(1)?;
            }
            k if TOPIC_CONFIGS.contains(&k) => {}
            _ => {
                return Err(invalid(format!(
                    "unknown topic config; known ones are {}",
                    TOPIC_CONFIGS.join(", ")
                )))
            }
        }
    }
    Ok(())
}

/// The topic's record, then its new partitions numbered from `first`.
fn topic_deltas(
    name: &TopicName,
    id: TopicId,
    configs: &BTreeMap<String, String>,
    partitions: Vec<Partition>,
    first: usize,
) -> Vec<MetadataDelta> {
    let count = first + partitions.len();
    let mut deltas = vec![MetadataDelta::TopicChanged {
        name: name.clone(),
        id,
        configs: configs.clone(),
        // Checked to fit by `new_partitions`.
        partition_count: u32::try_from(count).unwrap_or(u32::MAX),
    }];
    for (i, partition) in partitions.into_iter().enumerate() {
        deltas.push(MetadataDelta::PartitionChanged {
            topic: name.clone(),
            topic_id: id,
            index: PartitionIndex(u32::try_from(first + i).unwrap_or(u32::MAX)),
            partition,
        });
    }
    deltas
}
