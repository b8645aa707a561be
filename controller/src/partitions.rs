//! Partition commands: the leader's ISR compare-and-set, and operator elections.

use crate::brokers::partition_changed;
use crate::command::{AlterPartitionRequest, ElectionType, MetadataDelta};
use crate::election::Election;
use crate::error::MetadataError;
use crate::ids::{BrokerId, PartitionIndex};
use crate::model::{MetadataState, Partition, Topic};
use crate::topic_name::TopicName;
use std::collections::BTreeSet;

impl MetadataState {
    /// AlterPartition: accepted only from the current leader, in the current
    /// leader epoch, for the current partition epoch; the new ISR must hold the
    /// leader and only live replicas, and a member being added must be the
    /// registration the leader saw fetching (KIP-903). Bumps the partition epoch
    /// (even if the ISR is unchanged), never the leader epoch.
    pub(crate) fn plan_alter_partition(
        &self,
        request: &AlterPartitionRequest,
    ) -> Result<Vec<MetadataDelta>, MetadataError> {
        let (topic, current) = self.find_partition(&request.topic, request.partition)?;
        if request.leader_epoch != current.leader_epoch {
            return Err(MetadataError::FencedLeaderEpoch {
                current: current.leader_epoch,
                given: request.leader_epoch,
            });
        }
        if request.partition_epoch != current.partition_epoch {
            return Err(MetadataError::InvalidUpdateVersion {
                current: current.partition_epoch,
                given: request.partition_epoch,
            });
        }
        if current.leader != Some(request.leader) {
            return Err(MetadataError::NotLeader {
                leader: current.leader,
            });
        }
        let mut isr = BTreeSet::new();
        for &b in &request.new_isr {
            if !isr.insert(b) {
                return Err(MetadataError::InvalidIsr {
                    reason: format!("broker {b} is listed twice"),
                });
            }
        }
        if !isr.contains(&request.leader) {
            return Err(MetadataError::InvalidIsr {
                reason: format!("it lacks the leader {}", request.leader),
            });
        }
        for &b in &isr {
            self.check_isr_member(current, request, b)?;
        }
        let mut next = current.clone();
        next.set_isr(isr, topic.min_insync());
        next.partition_epoch = next.partition_epoch.next();
        Ok(vec![partition_changed(topic, request.partition, next)])
    }

    /// ElectLeader: a preferred election moves leadership to the first replica;
    /// an unclean one brings an offline partition back with any live replica.
    pub(crate) fn plan_elect_leader(
        &self,
        topic: &TopicName,
        index: PartitionIndex,
        election: ElectionType,
    ) -> Result<Vec<MetadataDelta>, MetadataError> {
        let (topic, current) = self.find_partition(topic, index)?;
        let outcome = match election {
            ElectionType::Preferred => {
                let preferred = current.replicas.first().copied().ok_or_else(|| {
                    MetadataError::InvalidReplicaAssignment {
                        reason: format!("partition {index} has no replicas"),
                    }
                })?;
                if current.leader == Some(preferred) {
                    return Err(MetadataError::ElectionNotNeeded {
                        reason: format!("the preferred replica {preferred} leads"),
                    });
                }
                let unavailable = |reason: &str| MetadataError::PreferredLeaderNotAvailable {
                    broker: preferred,
                    reason: reason.into(),
                };
                if !self.is_unfenced(preferred) {
                    return Err(unavailable("it is fenced"));
                }
                if !current.isr.contains(&preferred) {
                    return Err(unavailable("it is not in the ISR"));
                }
                Election::Clean(preferred)
            }
            ElectionType::Unclean => {
                if let Some(leader) = current.leader {
                    return Err(MetadataError::ElectionNotNeeded {
                        reason: format!("broker {leader} leads"),
                    });
                }
                match current.elect(|b| self.is_unfenced(b), true) {
                    Election::Offline => return Err(MetadataError::EligibleLeadersNotAvailable),
                    elected => elected,
                }
            }
        };
        Ok(vec![partition_changed(
            topic,
            index,
            current.after_election(outcome, topic.min_insync()),
        )])
    }

    /// The topic and partition, or which of them is unknown.
    fn find_partition(
        &self,
        name: &TopicName,
        index: PartitionIndex,
    ) -> Result<(&Topic, &Partition), MetadataError> {
        let topic = self
            .topics
            .get(name)
            .ok_or_else(|| MetadataError::UnknownTopic { name: name.clone() })?;
        let partition =
            topic
                .partitions
                .get(&index)
                .ok_or_else(|| MetadataError::UnknownPartition {
                    topic: name.clone(),
                    partition: index,
                })?;
        Ok((topic, partition))
    }

    /// Whether `broker` may be in the ISR `request` proposes for `current`.
    fn check_isr_member(
        &self,
        current: &Partition,
        request: &AlterPartitionRequest,
        broker: BrokerId,
    ) -> Result<(), MetadataError> {
        let ineligible = |reason: String| MetadataError::IneligibleReplica { broker, reason };
        if !current.replicas.contains(&broker) {
            return Err(ineligible("it is not a replica of the partition".into()));
        }
        let Some(registration) = self.brokers.get(&broker) else {
            return Err(MetadataError::UnknownBroker { broker });
        };
        if registration.fenced {
            return Err(ineligible("it is fenced".into()));
        }
        if current.isr.contains(&broker) {
            return Ok(());
        }
        match request.broker_epochs.get(&broker) {
            None => Err(ineligible(
                "no broker epoch given for a member being added".into(),
            )),
            Some(&given) if given != registration.epoch => Err(ineligible(format!(
                "broker epoch {given} is not its current registration's {}",
                registration.epoch
            ))),
            Some(_) => Ok(()),
        }
    }
}
