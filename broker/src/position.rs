//! Positions in a partition log: offsets and leader epochs.

use std::fmt;

/// A record's position in a partition log: 0 for the first record ever appended,
/// dense from there. Kafka's wire format carries it as an `i64`; Raftline keeps it
/// unsigned and turns Kafka's `-1` sentinels into `Option`s at the edges.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Offset(pub u64);

impl Offset {
    /// The offset `n` records further on.
    pub fn plus(self, n: u64) -> Offset {
        Offset(self.0.saturating_add(n))
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The epoch of a partition's leadership: bumped by the controller at every leader
/// change and stamped into every batch the leader appends. Monotonic per partition.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct LeaderEpoch(pub u32);

impl fmt::Display for LeaderEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A topic name and partition index, as used to name a partition's log directory.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct TopicPartition {
    /// The topic's name (validated by the controller before it reaches a broker).
    pub topic: String,
    /// The partition's index within the topic, from 0.
    pub partition: u32,
}

impl TopicPartition {
    /// The partition's directory name under a broker's log directory:
    /// `<topic>-<partition>`, as Kafka names it.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }

    /// The partition a directory name stands for, if it is one.
    pub fn from_dir_name(name: &str) -> Option<TopicPartition> {
        let (topic, index) = name.rsplit_once('-')?;
        let partition = index.parse().ok()?;
        (!topic.is_empty() && index.bytes().all(|b| b.is_ascii_digit())).then(|| TopicPartition {
            topic: topic.to_string(),
            partition,
        })
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::TopicPartition;

    #[test]
    fn dir_names_round_trip_and_others_are_not_partitions() {
        let tp = TopicPartition {
            topic: "pay-ments".into(),
            partition: 12,
        };
        assert_eq!(TopicPartition::from_dir_name(&tp.dir_name()), Some(tp));
        for other in [
            "orders",
            "orders-",
            "-1",
            "orders-1a",
            "orders-+1",
            "lost+found",
        ] {
            assert_eq!(TopicPartition::from_dir_name(other), None, "{other}");
        }
    }
}
