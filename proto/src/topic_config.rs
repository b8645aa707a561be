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

#[cfg(test)]
mod tests {
    use super::*;

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
