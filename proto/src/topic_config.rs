//! Topic-config defaults that the controller and the brokers must read the
//! same way: the one piece of shared meaning besides the wire types.

use std::collections::BTreeMap;

/// The topic config naming how many replicas an acks=all write needs.
pub const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";

/// `min.insync.replicas` from a topic's configs, or the default: 2 when the
/// topic has at least 3 replicas, else 1. Never below 1.
///
/// The brokers' high watermark only moves while the ISR has this many members,
/// and the controller's eligible leader replicas (KIP-966) rely on exactly
/// that, so both sides call this one function.
pub fn min_insync_replicas(configs: &BTreeMap<String, String>, replication_factor: usize) -> usize {
    configs
        .get(MIN_INSYNC_REPLICAS)
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(if replication_factor >= 3 { 2 } else { 1 })
        .max(1)
}

/// The topic config naming what removes old records.
pub const CLEANUP_POLICY: &str = "cleanup.policy";

/// `cleanup.policy`: delete old segments by retention, keep only the latest
/// record per key (compaction), or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CleanupPolicy {
    /// `delete`: `retention.ms` and `retention.bytes` remove whole segments.
    pub delete: bool,
    /// `compact`: the cleaner keeps only each key's latest record.
    pub compact: bool,
}

impl Default for CleanupPolicy {
    fn default() -> Self {
        CleanupPolicy {
            delete: true,
            compact: false,
        }
    }
}

impl CleanupPolicy {
    /// Parses Kafka's list form: `delete`, `compact`, or both comma-separated
    /// in either order. `None` for anything else.
    pub fn parse(value: &str) -> Option<CleanupPolicy> {
        let mut policy = CleanupPolicy {
            delete: false,
            compact: false,
        };
        for part in value.split(',').map(str::trim) {
            match part {
                "delete" if !policy.delete => policy.delete = true,
                "compact" if !policy.compact => policy.compact = true,
                _ => return None,
            }
        }
        Some(policy)
    }

    /// A topic's policy from its configs (the default when unset or invalid;
    /// the controller refuses invalid values before they are stored).
    pub fn of(configs: &BTreeMap<String, String>) -> CleanupPolicy {
        configs
            .get(CLEANUP_POLICY)
            .and_then(|v| CleanupPolicy::parse(v))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleanup_policies_parse_as_kafka_lists_them() {
        let both = CleanupPolicy {
            delete: true,
            compact: true,
        };
        assert_eq!(
            CleanupPolicy::parse("delete"),
            Some(CleanupPolicy::default())
        );
        assert_eq!(
            CleanupPolicy::parse("compact"),
            Some(CleanupPolicy {
                delete: false,
                compact: true
            })
        );
        assert_eq!(CleanupPolicy::parse("compact,delete"), Some(both));
        assert_eq!(CleanupPolicy::parse("delete, compact"), Some(both));
        for bad in ["", "compacted", "delete,delete", "delete,", "Compact"] {
            assert_eq!(CleanupPolicy::parse(bad), None, "{bad:?}");
        }
        assert_eq!(
            CleanupPolicy::of(&BTreeMap::new()),
            CleanupPolicy::default()
        );
    }

    #[test]
    fn default_depends_on_the_replication_factor_and_a_config_wins() {
        let none = BTreeMap::new();
        assert_eq!(min_insync_replicas(&none, 1), 1);
        assert_eq!(min_insync_replicas(&none, 2), 1);
        assert_eq!(min_insync_replicas(&none, 3), 2);
        let set = |v: &str| BTreeMap::from([(MIN_INSYNC_REPLICAS.to_string(), v.to_string())]);
        assert_eq!(min_insync_replicas(&set("3"), 3), 3);
        assert_eq!(min_insync_replicas(&set("0"), 3), 1);
        assert_eq!(min_insync_replicas(&set("x"), 3), 2);
    }
}
