//! What must hold of every reachable metadata state. Tests (and the simulator)
//! check it after every command; a snapshot that fails it is reported on restore.

use crate::election::Election;
use crate::model::{MetadataState, Partition, Topic};
use crate::topic_name::TopicName;
use std::collections::BTreeSet;

impl MetadataState {
    /// Checks the state's invariants; the error names the first one broken:
    ///
    /// - records are keyed by their own id/name; topic names are valid and topic
    ///   ids unique and below the next id;
    /// - a topic has partitions `0..n`, all with the same replication factor;
    /// - replicas are distinct registered brokers;
    /// - the ISR is a non-empty subset of the replicas; a fenced broker is in it
    ///   only as its last member;
    /// - the leader, if any, is in the ISR and unfenced;
    /// - an offline partition has no live broker that its election would pick
    ///   (else an election was missed and the partition is needlessly down).
    pub fn check_invariants(&self) -> Result<(), String> {
        for (id, broker) in &self.brokers {
            if broker.id != *id {
                return Err(format!("broker {} is filed under id {id}", broker.id));
            }
        }
        let mut ids = BTreeSet::new();
        for (name, topic) in &self.topics {
            if topic.name != *name {
                return Err(format!("topic {} is filed under {name}", topic.name));
            }
            if TopicName::new(name.as_str()).is_err() {
                return Err(format!("topic name {name:?} is invalid"));
            }
            if !ids.insert(topic.id) {
                return Err(format!("topic id {} is used twice", topic.id));
            }
            if topic.id.0 >= self.next_topic_id {
                return Err(format!(
                    "topic {name} has id {} but the next id is {}",
                    topic.id, self.next_topic_id
                ));
            }
            self.check_topic(topic)
                .map_err(|e| format!("topic {name}: {e}"))?;
        }
        Ok(())
    }

    fn check_topic(&self, topic: &Topic) -> Result<(), String> {
        if topic.partitions.is_empty() {
            return Err("no partitions".into());
        }
        let rf = topic.replication_factor();
        for (i, (index, partition)) in topic.partitions.iter().enumerate() {
            if index.0 as usize != i {
                return Err(format!("partition {index} where {i} was expected"));
            }
            if partition.replicas.len() != rf {
                return Err(format!(
                    "partition {index} has {} replicas, partition 0 has {rf}",
                    partition.replicas.len()
                ));
            }
            self.check_partition(topic, partition)
                .map_err(|e| format!("partition {index}: {e}"))?;
        }
        Ok(())
    }

    fn check_partition(&self, topic: &Topic, p: &Partition) -> Result<(), String> {
        let replicas: BTreeSet<_> = p.replicas.iter().copied().collect();
        if replicas.len() != p.replicas.len() || replicas.is_empty() {
            return Err(format!("replicas {:?} empty or not distinct", p.replicas));
        }
        if let Some(b) = replicas.iter().find(|b| !self.brokers.contains_key(b)) {
            return Err(format!("replica {b} is not a registered broker"));
        }
        if p.isr.is_empty() && p.leader.is_some() {
            return Err("empty ISR with a leader".into());
        }
        if !p.elr.is_subset(&replicas) {
            return Err(format!(
                "ELR {:?} not within replicas {:?}",
                p.elr, p.replicas
            ));
        }
        if let Some(b) = p.elr.intersection(&p.isr).next() {
            return Err(format!(
                "broker {b} in both ISR {:?} and ELR {:?}",
                p.isr, p.elr
            ));
        }
        if !p.elr.is_empty() && p.isr.len() >= topic.min_insync() {
            return Err(format!(
                "ELR {:?} beside an ISR {:?} at min.insync.replicas {}",
                p.elr,
                p.isr,
                topic.min_insync()
            ));
        }
        if !p.isr.is_subset(&replicas) {
            return Err(format!(
                "ISR {:?} not within replicas {:?}",
                p.isr, p.replicas
            ));
        }
        if p.isr.len() > 1 {
            if let Some(b) = p.isr.iter().find(|&&b| !self.is_unfenced(b)) {
                return Err(format!("fenced broker {b} in ISR {:?}", p.isr));
            }
        }
        match p.leader {
            Some(leader) if !p.isr.contains(&leader) => {
                Err(format!("leader {leader} not in ISR {:?}", p.isr))
            }
            Some(leader) if !self.is_unfenced(leader) => Err(format!("fenced leader {leader}")),
            Some(_) => Ok(()),
            None => {
                let missed = p.elect(|b| self.is_unfenced(b), topic.unclean_election_enabled());
                match missed {
                    Election::Offline => Ok(()),
                    other => Err(format!("offline, but the election would give {other:?}")),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::ids::{BrokerEpoch, BrokerId, TopicId};
    use crate::{Command, MetadataState, TopicName};
    use std::collections::BTreeMap;

    /// Three unfenced brokers and topic "t" with partition 0 on [1, 2, 3].
    fn healthy() -> MetadataState {
        let mut s = MetadataState::new();
        let mut index = 0;
        for id in 1..=3 {
            index += 1;
            let register = Command::RegisterBroker {
                id: BrokerId(id),
                incarnation: 1,
                endpoints: BTreeMap::new(),
                rack: None,
                damaged: vec![],
            };
            s.apply(index, &register).unwrap();
            let unfence = Command::UnfenceBroker {
                id: BrokerId(id),
                epoch: BrokerEpoch(index),
            };
            index += 1;
            s.apply(index, &unfence).unwrap();
        }
        let create = Command::CreateTopic {
            name: TopicName::new("t").unwrap(),
            configs: BTreeMap::new(),
            assignments: vec![vec![BrokerId(1), BrokerId(2), BrokerId(3)]],
        };
        s.apply(index + 1, &create).unwrap();
        s.check_invariants().unwrap();
        s
    }

    #[test]
    fn each_broken_invariant_is_reported() {
        let t = TopicName::new("t").unwrap();
        type Breaker = fn(&mut MetadataState);
        let cases: &[(&str, Breaker)] = &[
            // (the error names, how the state is broken)
            ("leader 1 not in ISR", |s| {
                part(s).isr.remove(&BrokerId(1));
            }),
            ("empty ISR with a leader", |s| part(s).isr.clear()),
            ("in both ISR", |s| {
                part(s).elr.insert(BrokerId(3));
            }),
            ("ELR {BrokerId(4)} not within replicas", |s| {
                part(s).elr.insert(BrokerId(4));
            }),
            ("beside an ISR", |s| {
                part(s).isr.remove(&BrokerId(3));
                part(s).elr.insert(BrokerId(3));
            }),
            ("not within replicas", |s| {
                part(s).isr.insert(BrokerId(9));
            }),
            ("not distinct", |s| part(s).replicas[1] = BrokerId(1)),
            ("fenced leader 1", |s| {
                part(s).isr = [BrokerId(1)].into();
                fence(s, 1);
            }),
            ("fenced broker 2 in ISR", |s| fence(s, 2)),
            ("not a registered broker", |s| {
                s.brokers.remove(&BrokerId(3));
            }),
            ("election would give", |s| part(s).leader = None),
            ("used twice", |s| {
                let mut other = s.topics.values().next().unwrap().clone();
                other.name = TopicName::new("u").unwrap();
                s.topics.insert(other.name.clone(), other);
            }),
            ("next id", |s| s.next_topic_id = 1),
            ("where 0 was expected", |s| {
                let topic = s.topics.values_mut().next().unwrap();
                let p = topic.partitions.remove(&crate::PartitionIndex(0)).unwrap();
                topic.partitions.insert(crate::PartitionIndex(1), p);
            }),
        ];
        for (want, break_it) in cases {
            let mut s = healthy();
            break_it(&mut s);
            let err = s.check_invariants().unwrap_err();
            assert!(err.contains(want), "want {want:?}, got {err:?}");
        }
        let s = healthy();
        assert_eq!(s.topic(&t).unwrap().id, TopicId(1));
    }

    fn part(s: &mut MetadataState) -> &mut crate::Partition {
        let topic = s.topics.values_mut().next().unwrap();
        topic.partitions.values_mut().next().unwrap()
    }

    fn fence(s: &mut MetadataState, id: u32) {
        s.brokers.get_mut(&BrokerId(id)).unwrap().fenced = true;
    }
}
