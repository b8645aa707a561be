//! Identities and versions of the metadata model, as newtypes.
//!
//! A few duplicate the broker's own on purpose: the broker never imports the
//! controller crate, the two meet only on the wire.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Declares a `Copy` numeric newtype with `Display` and serde as its inner number.
macro_rules! numeric_id {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

numeric_id!(
    /// A broker's configured `node.id`: stable across restarts of that broker.
    BrokerId(u32)
);

numeric_id!(
    /// A topic's id, assigned by the controller at creation and never reused, so a
    /// topic deleted and created again under the same name is a different topic.
    /// Ids start at 1; 0 is left free as the wire's "no topic id".
    TopicId(u64)
);

numeric_id!(
    /// A partition's index within its topic: dense from 0.
    PartitionIndex(u32)
);

numeric_id!(
    /// The epoch of a partition's leadership: bumped at every leader change (and at
    /// every election, even one that keeps no leader). Monotonic per partition.
    LeaderEpoch(u32)
);

numeric_id!(
    /// The version of a partition's record (leader, ISR, replicas): bumped at every
    /// change to it, and the compare-and-set token of AlterPartition. Monotonic per
    /// partition.
    PartitionEpoch(u32)
);

numeric_id!(
    /// A broker registration's epoch: the Raft log index of the RegisterBroker
    /// command that created it, so each new registration gets a larger one.
    BrokerEpoch(u64)
);

numeric_id!(
    /// The metadata state's version: the number of commands accepted so far.
    /// Strictly increasing; a rejected command leaves it unchanged.
    MetadataVersion(u64)
);

impl LeaderEpoch {
    /// The next epoch. Saturates: 2^32 leader changes of one partition is beyond
    /// any real cluster's life, and wrapping would break monotonicity.
    pub fn next(self) -> LeaderEpoch {
        LeaderEpoch(self.0.saturating_add(1))
    }
}

impl PartitionEpoch {
    /// The next epoch (saturating, as [`LeaderEpoch::next`]).
    pub fn next(self) -> PartitionEpoch {
        PartitionEpoch(self.0.saturating_add(1))
    }
}

impl MetadataVersion {
    /// The next version (saturating, as [`LeaderEpoch::next`]).
    pub fn next(self) -> MetadataVersion {
        MetadataVersion(self.0.saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_display_as_their_number_and_serialize_transparently() {
        assert_eq!(BrokerId(7).to_string(), "7");
        assert_eq!(TopicId(9).to_string(), "9");
        assert_eq!(serde_json::to_string(&BrokerEpoch(42)).unwrap(), "42");
        let back: PartitionIndex = serde_json::from_str("3").unwrap();
        assert_eq!(back, PartitionIndex(3));
    }

    #[test]
    fn epochs_saturate_instead_of_wrapping() {
        assert_eq!(LeaderEpoch(1).next(), LeaderEpoch(2));
        assert_eq!(LeaderEpoch(u32::MAX).next(), LeaderEpoch(u32::MAX));
        assert_eq!(PartitionEpoch(u32::MAX).next(), PartitionEpoch(u32::MAX));
        assert_eq!(MetadataVersion(0).next(), MetadataVersion(1));
    }
}
