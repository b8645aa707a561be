//! A node's configuration file (TOML), read only by the binary: the raw file
//! with defaults, validated into [`NodeConfig`].
//!
//! ```toml
//! node_id = 1
//! data_dir = "data/node1"
//! client_addr = "127.0.0.1:9091"   # Admin, Broker (metadata, produce, fetch)
//! peer_addr = "127.0.0.1:9191"     # Raft, broker lifecycle, metadata stream, replication
//! kafka_listener = "127.0.0.1:9092" # the Kafka protocol (optional; off when absent or "")
//! [controllers]                    # the first controller quorum: id = peer address
//! 1 = "127.0.0.1:9191"
//! 2 = "127.0.0.1:9192"
//! 3 = "127.0.0.1:9193"
//! ```

use anyhow::{bail, Context, Result};
use raftline_broker::group::{CoordinatorConfig, GroupTimeouts};
use raftline_broker::log::DEFAULT_CACHED_TAIL;
use raftline_controller::LeaderRebalance;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file as written; every field but the identity has a default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    node_id: u64,
    data_dir: PathBuf,
    client_addr: String,
    peer_addr: String,
    /// Controller node id -> peer address. Keys are strings in TOML.
    controllers: BTreeMap<String, String>,
    /// Rack of this node's broker (rack-aware placement).
    #[serde(default)]
    rack: Option<String>,
    /// Broker heartbeat interval, ms. Default 500.
    #[serde(default = "default_heartbeat_ms")]
    broker_heartbeat_ms: u64,
    /// Broker session timeout, ms: a broker silent this long is fenced. Default 6000.
    #[serde(default = "default_session_ms")]
    broker_session_timeout_ms: u64,
    /// A follower not caught up for this long leaves the ISR, ms. Default 10000.
    #[serde(default = "default_lag_ms")]
    replica_lag_time_max_ms: u64,
    /// A group member silent this long leaves its group, ms. Default 10000.
    #[serde(default = "default_group_session_ms")]
    group_session_timeout_ms: u64,
    /// How often group members heartbeat, ms. Default 1000.
    #[serde(default = "default_group_heartbeat_ms")]
    group_heartbeat_interval_ms: u64,
    /// How long a new Kafka classic group waits for more members before its
    /// first rebalance completes, ms (Kafka's
    /// `group.initial.rebalance.delay.ms`). Default 3000.
    #[serde(default = "default_initial_rebalance_delay_ms")]
    group_initial_rebalance_delay_ms: u64,
    /// Partitions of `__consumer_offsets` when it is created. Default 16.
    #[serde(default = "default_offsets_partitions")]
    offsets_topic_num_partitions: u32,
    /// Its replication factor (at most the live brokers). Default 3.
    #[serde(default = "default_offsets_replication")]
    offsets_topic_replication_factor: u32,
    /// `__consumer_offsets`' segment size, bytes (compaction works on sealed
    /// segments). Default 104857600 (100 MiB), as Kafka's.
    #[serde(default = "default_offsets_segment_bytes")]
    offsets_topic_segment_bytes: u32,
    /// Between log cleaner checks of compacted partitions, ms. Default 15000.
    #[serde(default = "default_cleaner_backoff_ms")]
    log_cleaner_backoff_ms: u64,
    /// Between retention passes over every partition, ms
    /// (`log.retention.check.interval.ms`). Default 30000. A replica also
    /// gets a pass as soon as it knows its high watermark after opening.
    #[serde(default = "default_retention_check_ms")]
    log_retention_check_interval_ms: u64,
    /// Whether the controller moves leadership back to each partition's
    /// preferred replica when a broker's share led elsewhere passes
    /// `leader_imbalance_per_broker_percentage` (Kafka's
    /// `auto.leader.rebalance.enable`). Default true.
    #[serde(default = "default_true")]
    auto_leader_rebalance_enable: bool,
    /// Between those checks, ms (`leader.imbalance.check.interval.seconds`).
    /// Default 300000.
    #[serde(default = "default_imbalance_check_ms")]
    leader_imbalance_check_interval_ms: u64,
    /// A broker's share of its preferred partitions led elsewhere above
    /// which they move back, percent. Default 10.
    #[serde(default = "default_imbalance_percentage")]
    leader_imbalance_per_broker_percentage: u32,
    /// Synced bytes behind each segment's end kept in the page cache; older
    /// ones are handed back to the kernel after each fsync. Default 4194304;
    /// 0 leaves the whole log to the kernel's cache, as Kafka does.
    #[serde(default = "default_cached_tail_bytes")]
    log_cached_tail_bytes: u64,
    /// Bytes of its led partitions' newest appends a broker may keep in
    /// memory beyond 4 MiB per partition (each up to 32 MiB), so followers
    /// behind by more still read from memory. Default 268435456; 0: 4 MiB
    /// per partition.
    #[serde(default = "default_leader_tail_bytes")]
    log_leader_tail_bytes: u64,
    /// Where the Kafka protocol listener binds, host:port; absent or "": no
    /// Kafka listener.
    #[serde(default)]
    kafka_listener: Option<String>,
    /// The address Kafka clients are told to use for this broker. Default:
    /// `kafka_listener`.
    #[serde(default)]
    kafka_advertised_listener: Option<String>,
    /// Whether a Kafka client's Metadata request may create the unknown
    /// topics it names (Kafka's `auto.create.topics.enable`). Default false.
    #[serde(default)]
    auto_create_topics_enable: bool,
    /// The largest Kafka request accepted, bytes (Kafka's
    /// `socket.request.max.bytes`). Default 104857600.
    #[serde(default = "default_socket_request_max_bytes")]
    socket_request_max_bytes: u64,
}

fn default_socket_request_max_bytes() -> u64 {
    100 << 20
}

fn default_offsets_segment_bytes() -> u32 {
    100 << 20
}

fn default_cached_tail_bytes() -> u64 {
    DEFAULT_CACHED_TAIL
}

fn default_leader_tail_bytes() -> u64 {
    256 << 20
}

fn default_cleaner_backoff_ms() -> u64 {
    15_000
}

fn default_retention_check_ms() -> u64 {
    30_000
}

fn default_true() -> bool {
    true
}

fn default_imbalance_check_ms() -> u64 {
    300_000
}

fn default_imbalance_percentage() -> u32 {
    10
}

fn default_group_session_ms() -> u64 {
    10_000
}

fn default_initial_rebalance_delay_ms() -> u64 {
    3_000
}

fn default_group_heartbeat_ms() -> u64 {
    1_000
}

fn default_offsets_partitions() -> u32 {
    16
}

fn default_offsets_replication() -> u32 {
    3
}

fn default_lag_ms() -> u64 {
    10_000
}

fn default_heartbeat_ms() -> u64 {
    500
}

fn default_session_ms() -> u64 {
    6_000
}

/// A validated node configuration.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node's id (controller and broker id alike).
    pub node_id: u64,
    /// Where this node keeps its Raft store and partition logs.
    pub data_dir: PathBuf,
    /// The client port: Admin API.
    pub client_addr: SocketAddr,
    /// The peer port: Raft and the controller services.
    pub peer_addr: SocketAddr,
    /// The first controller quorum: id -> peer address.
    pub controllers: BTreeMap<u64, String>,
    /// This broker's rack.
    pub rack: Option<String>,
    /// Between broker heartbeats.
    pub broker_heartbeat: Duration,
    /// A broker silent this long is fenced.
    pub broker_session_timeout: Duration,
    /// A follower not caught up for this long leaves the ISR.
    pub replica_lag_time_max: Duration,
    /// The group coordinator's settings.
    pub groups: CoordinatorConfig,
    /// Between log cleaner checks of compacted partitions.
    pub log_cleaner_backoff: Duration,
    /// Between retention passes.
    pub log_retention_check: Duration,
    /// Synced bytes per segment kept in the page cache (`None`: all).
    pub log_cached_tail: Option<u64>,
    /// Memory for leaders' tails beyond 4 MiB each (`None`: none).
    pub log_leader_tail: Option<u64>,
    /// Automatic preferred-leader rebalancing, if on.
    pub leader_rebalance: Option<LeaderRebalance>,
    /// The Kafka protocol listener, if on.
    pub kafka: Option<KafkaListener>,
}

/// Where the Kafka protocol is served.
#[derive(Clone, Debug)]
pub struct KafkaListener {
    /// The address bound.
    pub bind: SocketAddr,
    /// The address clients are told (host:port).
    pub advertised: String,
    /// The largest request accepted, bytes.
    pub max_request_bytes: usize,
    /// Whether Metadata may create unknown topics.
    pub auto_create_topics: bool,
}

impl NodeConfig {
    /// Reads the file at `path` (if any), applies `overrides` (setting name
    /// -> value, from flags and `RAFTLINE_*` variables) over it, and validates.
    pub fn load(path: Option<&Path>, overrides: toml::Table) -> Result<NodeConfig> {
        let mut table = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config {}", path.display()))?;
                toml::from_str::<toml::Table>(&text)
                    .with_context(|| format!("invalid config {}", path.display()))?
            }
            None => toml::Table::new(),
        };
        table.extend(overrides);
        let where_from = path.map_or("the flags".to_string(), |p| p.display().to_string());
        Self::from_table(table)
            .with_context(|| format!("invalid config ({where_from}; see `raftline serve --help`)"))
    }

    /// Parses and validates a config file's text.
    #[cfg(test)]
    pub fn parse(text: &str) -> Result<NodeConfig> {
        Self::from_table(toml::from_str(text)?)
    }

    fn from_table(table: toml::Table) -> Result<NodeConfig> {
        let raw: RawConfig = table.try_into()?;
        let mut controllers = BTreeMap::new();
        for (id, addr) in raw.controllers {
            let id: u64 = id
                .parse()
                .with_context(|| format!("controller id {id:?} is not a number"))?;
            controllers.insert(id, addr);
        }
        if controllers.is_empty() {
            bail!("[controllers] lists no controller: give at least this node (node_id = peer address)");
        }
        if raw.broker_heartbeat_ms == 0
            || raw.broker_session_timeout_ms < 2 * raw.broker_heartbeat_ms
        {
            bail!(
                "broker_session_timeout_ms ({}) must be at least twice broker_heartbeat_ms ({}), which must be positive",
                raw.broker_session_timeout_ms,
                raw.broker_heartbeat_ms
            );
        }
        if raw.group_heartbeat_interval_ms == 0
            || raw.group_session_timeout_ms < 2 * raw.group_heartbeat_interval_ms
        {
            bail!(
                "group_session_timeout_ms ({}) must be at least twice group_heartbeat_interval_ms ({}), which must be positive",
                raw.group_session_timeout_ms,
                raw.group_heartbeat_interval_ms
            );
        }
        if raw.offsets_topic_num_partitions == 0 || raw.offsets_topic_replication_factor == 0 {
            bail!("offsets_topic_num_partitions and offsets_topic_replication_factor must be at least 1");
        }
        if raw.offsets_topic_segment_bytes < 1024
            || raw.offsets_topic_segment_bytes > i32::MAX as u32
        {
            bail!(
                "offsets_topic_segment_bytes ({}) must be in [1024, 2147483647]",
                raw.offsets_topic_segment_bytes
            );
        }
        let ms = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let groups = CoordinatorConfig {
            offsets_partitions: raw.offsets_topic_num_partitions,
            offsets_replication: raw.offsets_topic_replication_factor,
            offsets_segment_bytes: raw.offsets_topic_segment_bytes,
            timeouts: GroupTimeouts {
                session_ms: ms(raw.group_session_timeout_ms),
                heartbeat_ms: ms(raw.group_heartbeat_interval_ms),
                ..GroupTimeouts::default()
            },
            initial_rebalance_delay: Duration::from_millis(raw.group_initial_rebalance_delay_ms),
            ..CoordinatorConfig::default()
        };
        let addr = |what: &str, s: &str| -> Result<SocketAddr> {
            s.parse()
                .with_context(|| format!("{what} {s:?} is not host:port (e.g. 127.0.0.1:9091)"))
        };
        let kafka = match raw.kafka_listener.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(listener) => {
                let bind = addr("kafka_listener", listener)?;
                let advertised = raw
                    .kafka_advertised_listener
                    .clone()
                    .unwrap_or_else(|| listener.to_string());
                match advertised.rsplit_once(':') {
                    Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
                    _ => bail!(
                        "kafka_advertised_listener {advertised:?} is not host:port (e.g. localhost:9092)"
                    ),
                }
                if bind.ip().is_unspecified() && raw.kafka_advertised_listener.is_none() {
                    bail!(
                        "kafka_listener {listener} binds every interface: set kafka_advertised_listener \
                         to the host:port clients should use"
                    );
                }
                if !(1024..=(1 << 30)).contains(&raw.socket_request_max_bytes) {
                    bail!(
                        "socket_request_max_bytes ({}) must be in [1024, 1073741824]",
                        raw.socket_request_max_bytes
                    );
                }
                Some(KafkaListener {
                    bind,
                    advertised,
                    max_request_bytes: usize::try_from(raw.socket_request_max_bytes)
                        .unwrap_or(usize::MAX),
                    auto_create_topics: raw.auto_create_topics_enable,
                })
            }
        };
        if raw.leader_imbalance_per_broker_percentage > 100 {
            bail!(
                "leader_imbalance_per_broker_percentage ({}) must be in [0, 100]",
                raw.leader_imbalance_per_broker_percentage
            );
        }
        let leader_rebalance = raw.auto_leader_rebalance_enable.then(|| LeaderRebalance {
            interval: Duration::from_millis(raw.leader_imbalance_check_interval_ms.max(1)),
            threshold_percent: raw.leader_imbalance_per_broker_percentage,
        });
        Ok(NodeConfig {
            kafka,
            leader_rebalance,
            node_id: raw.node_id,
            data_dir: raw.data_dir,
            client_addr: addr("client_addr", &raw.client_addr)?,
            peer_addr: addr("peer_addr", &raw.peer_addr)?,
            controllers,
            rack: raw.rack,
            broker_heartbeat: Duration::from_millis(raw.broker_heartbeat_ms),
            broker_session_timeout: Duration::from_millis(raw.broker_session_timeout_ms),
            replica_lag_time_max: Duration::from_millis(raw.replica_lag_time_max_ms.max(1)),
            groups,
            log_cleaner_backoff: Duration::from_millis(raw.log_cleaner_backoff_ms.max(1)),
            log_retention_check: Duration::from_millis(raw.log_retention_check_interval_ms.max(1)),
            log_cached_tail: Some(raw.log_cached_tail_bytes).filter(|&n| n > 0),
            log_leader_tail: Some(raw.log_leader_tail_bytes).filter(|&n| n > 0),
        })
    }
}

/// `1=host:port,2=host:port` as the `[controllers]` table.
pub fn parse_controllers(s: &str) -> Result<toml::Table, String> {
    let mut table = toml::Table::new();
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, addr) = entry
            .split_once('=')
            .ok_or_else(|| format!("{entry:?} is not id=host:port"))?;
        table.insert(
            id.trim().to_string(),
            toml::Value::String(addr.trim().to_string()),
        );
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_and_can_stand_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(&path, GOOD).unwrap();
        let mut overrides = toml::Table::new();
        overrides.insert("client_addr".into(), "127.0.0.1:7000".into());
        overrides.insert("broker_session_timeout_ms".into(), 3000.into());
        let c = NodeConfig::load(Some(&path), overrides).unwrap();
        assert_eq!(c.client_addr.port(), 7000);
        assert_eq!(c.broker_session_timeout, Duration::from_secs(3));
        assert_eq!(c.node_id, 1, "the rest comes from the file");

        let mut only_flags = toml::Table::new();
        only_flags.insert("node_id".into(), 2.into());
        only_flags.insert("data_dir".into(), "d".into());
        only_flags.insert("client_addr".into(), "127.0.0.1:1".into());
        only_flags.insert("peer_addr".into(), "127.0.0.1:2".into());
        only_flags.insert(
            "controllers".into(),
            toml::Value::Table(parse_controllers("2=127.0.0.1:2").unwrap()),
        );
        assert_eq!(NodeConfig::load(None, only_flags).unwrap().node_id, 2);
        let missing = NodeConfig::load(None, toml::Table::new()).unwrap_err();
        assert!(format!("{missing:#}").contains("node_id"), "{missing:#}");
        assert!(parse_controllers("1:127.0.0.1:2").is_err());
    }

    const GOOD: &str = r#"
node_id = 1
data_dir = "data/node1"
client_addr = "127.0.0.1:9091"
peer_addr = "127.0.0.1:9191"
[controllers]
1 = "127.0.0.1:9191"
2 = "127.0.0.1:9192"
"#;

    #[test]
    fn a_good_file_gets_defaults() {
        let c = NodeConfig::parse(GOOD).unwrap();
        assert_eq!(c.controllers.len(), 2);
        assert_eq!(c.broker_heartbeat, Duration::from_millis(500));
        assert_eq!(c.broker_session_timeout, Duration::from_secs(6));
        assert_eq!(c.groups.timeouts.session_ms, 10_000);
        assert_eq!(c.groups.offsets_partitions, 16);
        assert_eq!(c.groups.initial_rebalance_delay, Duration::from_secs(3));
        assert!(c.kafka.is_none(), "no Kafka listener unless asked for");
        let kafka = NodeConfig::parse(&GOOD.replace(
            "[controllers]",
            "kafka_listener = \"127.0.0.1:9092\"\n[controllers]",
        ))
        .unwrap()
        .kafka
        .unwrap();
        assert_eq!(kafka.bind.port(), 9092);
        assert_eq!(kafka.advertised, "127.0.0.1:9092");
        assert_eq!(kafka.max_request_bytes, 100 << 20);
        assert!(!kafka.auto_create_topics, "off unless asked for");
        assert_eq!(c.log_cached_tail, Some(4 << 20));
        let all_cached = NodeConfig::parse(
            &GOOD.replace("[controllers]", "log_cached_tail_bytes = 0\n[controllers]"),
        )
        .unwrap();
        assert_eq!(all_cached.log_cached_tail, None, "0: Kafka's behaviour");
        assert_eq!(c.log_leader_tail, Some(256 << 20));
        let small_tails = NodeConfig::parse(
            &GOOD.replace("[controllers]", "log_leader_tail_bytes = 0\n[controllers]"),
        )
        .unwrap();
        assert_eq!(small_tails.log_leader_tail, None);
        assert_eq!(c.log_retention_check, Duration::from_secs(30));
        let often = NodeConfig::parse(&GOOD.replace(
            "[controllers]",
            "log_retention_check_interval_ms = 5000\n[controllers]",
        ))
        .unwrap();
        assert_eq!(often.log_retention_check, Duration::from_secs(5));
        assert_eq!(c.leader_rebalance, Some(LeaderRebalance::default()));
        let rebalance = NodeConfig::parse(&GOOD.replace(
            "[controllers]",
            "leader_imbalance_check_interval_ms = 1000\nleader_imbalance_per_broker_percentage = 0\n[controllers]",
        ))
        .unwrap();
        assert_eq!(
            rebalance.leader_rebalance,
            Some(LeaderRebalance {
                interval: Duration::from_secs(1),
                threshold_percent: 0
            })
        );
        let off = NodeConfig::parse(&GOOD.replace(
            "[controllers]",
            "auto_leader_rebalance_enable = false\n[controllers]",
        ))
        .unwrap();
        assert_eq!(off.leader_rebalance, None);
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let cases = [
            (GOOD.replace("9091", "x"), "client_addr"),
            (GOOD.replace("1 = ", "one = "), "controller id"),
            (format!("bogus = 1\n{GOOD}"), "unknown field"),
            (format!("{GOOD}\n"), ""),
            (
                GOOD.replace("[controllers]", "kafka_listener = \"nine\"\n[controllers]"),
                "kafka_listener",
            ),
            (
                GOOD.replace("[controllers]", "kafka_listener = \"0.0.0.0:9092\"\n[controllers]"),
                "kafka_advertised_listener",
            ),
            (
                GOOD.replace(
                    "[controllers]",
                    "kafka_listener = \"127.0.0.1:9092\"\nsocket_request_max_bytes = 10\n[controllers]",
                ),
                "socket_request_max_bytes",
            ),
            (
                GOOD.replace("[controllers]", "kafka_listener = \"\"\n[controllers]"),
                "",
            ),
            (
                GOOD.replace(
                    "[controllers]",
                    "leader_imbalance_per_broker_percentage = 101\n[controllers]",
                ),
                "leader_imbalance_per_broker_percentage",
            ),
        ];
        for (text, needle) in cases {
            match NodeConfig::parse(&text) {
                Ok(_) => assert!(needle.is_empty(), "{needle}: accepted"),
                Err(e) => assert!(format!("{e:#}").contains(needle), "{needle}: {e:#}"),
            }
        }
        let timing = GOOD.replace(
            "[controllers]",
            "broker_heartbeat_ms = 500\nbroker_session_timeout_ms = 600\n[controllers]",
        );
        assert!(NodeConfig::parse(&timing).is_err());
        let groups = GOOD.replace(
            "[controllers]",
            "group_heartbeat_interval_ms = 3000\ngroup_session_timeout_ms = 5000\n[controllers]",
        );
        let err = NodeConfig::parse(&groups).unwrap_err();
        assert!(
            format!("{err:#}").contains("group_session_timeout_ms"),
            "{err:#}"
        );
    }
}
