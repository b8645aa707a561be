//! Broker lifecycle commands: register, unfence, fence.

use crate::command::MetadataDelta;
use crate::election::Election;
use crate::error::MetadataError;
use crate::ids::{BrokerEpoch, BrokerId, PartitionIndex};
use crate::model::{Broker, MetadataState, Partition, Topic};
use crate::topic_name::TopicName;
use std::collections::BTreeMap;

impl MetadataState {
    /// RegisterBroker. A new incarnation (or a new broker) gets the epoch `index`
    /// and starts fenced; if it was registered before, its old registration is
    /// fenced first (leadership moves away, it leaves ISRs), since the process
    /// behind it is gone and may have lost its disk. The same incarnation again is
    /// a retried request: accepted without changing the registration (its answer
    /// carries the current one, epoch included), unless its details differ.
    /// A partition in `damaged` loses the broker from its ISR and ELR even as
    /// the last member: its copy lacks records it once acknowledged.
    pub(crate) fn plan_register_broker(
        &self,
        index: u64,
        id: BrokerId,
        incarnation: u64,
        endpoints: &BTreeMap<String, String>,
        rack: &Option<String>,
        damaged: &[(TopicName, PartitionIndex)],
    ) -> Result<Vec<MetadataDelta>, MetadataError> {
        if let Some(existing) = self.brokers.get(&id) {
            if existing.incarnation == incarnation {
                if existing.endpoints != *endpoints || existing.rack != *rack {
                    return Err(MetadataError::DuplicateBrokerRegistration {
                        broker: id,
                        reason: format!(
                            "incarnation {incarnation} registered again with other endpoints or rack"
                        ),
                    });
                }
                return Ok(vec![MetadataDelta::BrokerChanged(existing.clone())]);
            }
            if BrokerEpoch(index) <= existing.epoch {
                // Raft indexes only grow; this guards the epoch's monotonicity.
                return Err(MetadataError::StaleBrokerEpoch {
                    broker: id,
                    current: existing.epoch,
                    given: BrokerEpoch(index),
                });
            }
        }
        let registration = Broker {
            id,
            epoch: BrokerEpoch(index),
            incarnation,
            endpoints: endpoints.clone(),
            rack: rack.clone(),
            fenced: true,
        };
        let mut deltas = vec![MetadataDelta::BrokerChanged(registration)];
        deltas.extend(self.fence_partitions(id, damaged));
        Ok(deltas)
    }

    /// UnfenceBroker: the broker may lead again; offline partitions it can lead
    /// (an ISR member, or any replica where unclean election is on) elect it.
    pub(crate) fn plan_unfence_broker(
        &self,
        id: BrokerId,
        epoch: BrokerEpoch,
    ) -> Result<Vec<MetadataDelta>, MetadataError> {
        let broker = self.current_broker(id, Some(epoch))?;
        let mut deltas = vec![MetadataDelta::BrokerChanged(Broker {
            fenced: false,
            ..broker.clone()
        })];
        let is_live = |b: BrokerId| b == id || self.is_unfenced(b);
        for (topic, index, partition) in self.partitions_of(id) {
            if partition.leader.is_some() {
                continue;
            }
            let election = partition.elect(is_live, topic.unclean_election_enabled());
            if election != Election::Offline {
                deltas.push(partition_changed(
                    topic,
                    index,
                    partition.after_election(election, topic.min_insync()),
                ));
            }
        }
        Ok(deltas)
    }

    /// FenceBroker: fenced, it leads nothing and leaves every ISR it is not the
    /// last member of. Fencing a fenced broker again is accepted and changes no
    /// partition.
    pub(crate) fn plan_fence_broker(
        &self,
        id: BrokerId,
        epoch: Option<BrokerEpoch>,
    ) -> Result<Vec<MetadataDelta>, MetadataError> {
        let broker = self.current_broker(id, epoch)?;
        let mut deltas = vec![MetadataDelta::BrokerChanged(Broker {
            fenced: true,
            ..broker.clone()
        })];
        deltas.extend(self.fence_partitions(id, &[]));
        Ok(deltas)
    }

    /// The registered broker `id`, checked against `epoch` if one is given.
    pub(crate) fn current_broker(
        &self,
        id: BrokerId,
        epoch: Option<BrokerEpoch>,
    ) -> Result<&Broker, MetadataError> {
        let broker = self
            .brokers
            .get(&id)
            .ok_or(MetadataError::UnknownBroker { broker: id })?;
        match epoch {
            Some(given) if given != broker.epoch => Err(MetadataError::StaleBrokerEpoch {
                broker: id,
                current: broker.epoch,
                given,
            }),
            _ => Ok(broker),
        }
    }

    /// The partition changes of fencing `id`: it leaves each ISR unless it is the
    /// last member (KRaft keeps that one: it may hold the only copy of
    /// acknowledged data) or, leaving an ISR below min.insync.replicas,
    /// becomes eligible (KIP-966); each partition it led elects a new leader.
    /// Partitions in `damaged` lose it from the ISR and ELR outright.
    fn fence_partitions(
        &self,
        id: BrokerId,
        damaged: &[(TopicName, PartitionIndex)],
    ) -> Vec<MetadataDelta> {
        let is_live = |b: BrokerId| b != id && self.is_unfenced(b);
        let mut deltas = Vec::new();
        for (topic, index, partition) in self.partitions_of(id) {
            let lost = damaged.iter().any(|(t, i)| *t == topic.name && *i == index);
            let mut next = partition.clone();
            if lost || next.isr.len() > 1 {
                let mut isr = next.isr.clone();
                isr.remove(&id);
                next.set_isr(isr, topic.min_insync());
            }
            if lost {
                next.elr.remove(&id);
            }
            let next = if partition.leader == Some(id) {
                let election = next.elect(is_live, topic.unclean_election_enabled());
                next.after_election(election, topic.min_insync())
            } else if next != *partition {
                next.partition_epoch = next.partition_epoch.next();
                next
            } else {
                continue;
            };
            deltas.push(partition_changed(topic, index, next));
        }
        deltas
    }

    /// Every partition with a replica on `broker`, in topic and index order.
    fn partitions_of(
        &self,
        broker: BrokerId,
    ) -> impl Iterator<Item = (&Topic, PartitionIndex, &Partition)> + '_ {
        self.topics.values().flat_map(move |topic| {
            topic
                .partitions
                .iter()
                .filter(move |(_, p)| p.replicas.contains(&broker))
                .map(move |(&index, p)| (topic, index, p))
        })
    }
}

/// The delta recording `partition` as the new state of `topic`'s `index`.
pub(crate) fn partition_changed(
    topic: &Topic,
    index: PartitionIndex,
    partition: Partition,
) -> MetadataDelta {
    MetadataDelta::PartitionChanged {
        topic: topic.name.clone(),
        topic_id: topic.id,
        index,
        partition,
    }
}
