//! A cluster driven through `MetadataState::apply`, with shorthands.

use raftline_controller::*;
use std::collections::{BTreeMap, BTreeSet};

pub fn b(id: u32) -> BrokerId {
    BrokerId(id)
}

pub fn ids(v: &[u32]) -> Vec<BrokerId> {
    v.iter().map(|&x| BrokerId(x)).collect()
}

pub fn set(v: &[u32]) -> BTreeSet<BrokerId> {
    v.iter().map(|&x| BrokerId(x)).collect()
}

pub fn t(name: &str) -> TopicName {
    TopicName::new(name).unwrap()
}

pub fn p(i: u32) -> PartitionIndex {
    PartitionIndex(i)
}

pub fn endpoints(id: u32) -> BTreeMap<String, String> {
    BTreeMap::from([("peer".to_string(), format!("node{id}:9093"))])
}

/// The state and the next Raft log index to apply at.
pub struct Cluster {
    pub state: MetadataState,
    pub index: u64,
}

impl Cluster {
    pub fn new() -> Self {
        Cluster {
            state: MetadataState::new(),
            index: 0,
        }
    }

    /// Brokers registered (incarnation = id) and unfenced.
    pub fn with_live(brokers: &[u32]) -> Self {
        let mut c = Cluster::new();
        for &id in brokers {
            c.register(id, u64::from(id));
            c.unfence(id);
        }
        c
    }

    /// Applies at the next index; on acceptance checks the version went up by
    /// one, on rejection that nothing changed; either way, the invariants.
    pub fn apply(&mut self, command: Command) -> Result<Applied, MetadataError> {
        self.index += 1;
        let before = self.state.clone();
        let result = self.state.apply(self.index, &command);
        match &result {
            Ok(applied) => {
                assert_eq!(applied.version.0, before.version().0 + 1);
                assert_eq!(self.state.version(), applied.version);
            }
            Err(_) => assert_eq!(self.state, before, "a rejected command changed the state"),
        }
        self.state.check_invariants().unwrap();
        result
    }

    /// Applies a command that must be rejected; returns why.
    pub fn reject(&mut self, command: Command) -> MetadataError {
        let before = self.state.clone();
        let err = self.apply(command.clone()).unwrap_err();
        assert_eq!(self.state, before, "{command:?}");
        err
    }

    pub fn register(&mut self, id: u32, incarnation: u64) -> BrokerEpoch {
        self.apply(Command::RegisterBroker {
            id: b(id),
            incarnation,
            endpoints: endpoints(id),
            rack: None,
            damaged: vec![],
        })
        .unwrap();
        self.broker(id).epoch
    }

    pub fn unfence(&mut self, id: u32) -> Applied {
        let epoch = self.broker(id).epoch;
        self.apply(Command::UnfenceBroker { id: b(id), epoch })
            .unwrap()
    }

    pub fn fence(&mut self, id: u32) -> Applied {
        self.apply(Command::FenceBroker {
            id: b(id),
            epoch: None,
        })
        .unwrap()
    }

    pub fn create(&mut self, name: &str, assignments: &[&[u32]]) -> Applied {
        self.create_with(name, BTreeMap::new(), assignments)
    }

    pub fn create_with(
        &mut self,
        name: &str,
        configs: BTreeMap<String, String>,
        assignments: &[&[u32]],
    ) -> Applied {
        self.apply(Command::CreateTopic {
            name: t(name),
            configs,
            assignments: assignments.iter().map(|a| ids(a)).collect(),
        })
        .unwrap()
    }

    /// The leader's AlterPartition to `isr`, with current epochs and the current
    /// broker epochs of every proposed member.
    pub fn alter_request(&self, topic: &str, index: u32, isr: &[u32]) -> AlterPartitionRequest {
        let part = self.partition(topic, index);
        AlterPartitionRequest {
            topic: t(topic),
            partition: p(index),
            leader: part.leader.unwrap(),
            leader_epoch: part.leader_epoch,
            partition_epoch: part.partition_epoch,
            new_isr: ids(isr),
            broker_epochs: isr.iter().map(|&x| (b(x), self.broker(x).epoch)).collect(),
        }
    }

    pub fn alter(&mut self, topic: &str, index: u32, isr: &[u32]) -> Applied {
        let request = self.alter_request(topic, index, isr);
        self.apply(Command::AlterPartition(request)).unwrap()
    }

    pub fn broker(&self, id: u32) -> Broker {
        self.state.broker(b(id)).unwrap().clone()
    }

    pub fn partition(&self, topic: &str, index: u32) -> Partition {
        self.state.partition(&t(topic), p(index)).unwrap().clone()
    }
}

/// A table's expected error.
pub type Expect = fn(&MetadataError) -> bool;

/// `(leader, isr, leader epoch, partition epoch)` of a partition.
pub type Summary = (Option<u32>, Vec<u32>, u32, u32);

/// A partition's [`Summary`], for tables.
pub fn summary(part: &Partition) -> Summary {
    (
        part.leader.map(|l| l.0),
        part.isr.iter().map(|x| x.0).collect(),
        part.leader_epoch.0,
        part.partition_epoch.0,
    )
}
