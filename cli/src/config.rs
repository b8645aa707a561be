//! A node's configuration file (TOML), read only by the binary: the raw file
//! with defaults, validated into [`NodeConfig`].
//!
//! ```toml
//! node_id = 1
//! data_dir = "data/node1"
//! client_addr = "127.0.0.1:9091"   # Admin, Broker (metadata, produce, fetch)
//! peer_addr = "127.0.0.1:9191"     # Raft, broker lifecycle, metadata stream, replication
//! [controllers]                    # the first controller quorum: id = peer address
//! 1 = "127.0.0.1:9191"
//! 2 = "127.0.0.1:9192"
//! 3 = "127.0.0.1:9193"
//! ```

use anyhow::{bail, Context, Result};
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
}

impl NodeConfig {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<NodeConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("invalid config {}", path.display()))
    }

    /// Parses and validates a config file's text.
    pub fn parse(text: &str) -> Result<NodeConfig> {
        let raw: RawConfig = toml::from_str(text)?;
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
        let addr = |what: &str, s: &str| -> Result<SocketAddr> {
            s.parse()
                .with_context(|| format!("{what} {s:?} is not host:port (e.g. 127.0.0.1:9091)"))
        };
        Ok(NodeConfig {
            node_id: raw.node_id,
            data_dir: raw.data_dir,
            client_addr: addr("client_addr", &raw.client_addr)?,
            peer_addr: addr("peer_addr", &raw.peer_addr)?,
            controllers,
            rack: raw.rack,
            broker_heartbeat: Duration::from_millis(raw.broker_heartbeat_ms),
            broker_session_timeout: Duration::from_millis(raw.broker_session_timeout_ms),
            replica_lag_time_max: Duration::from_millis(raw.replica_lag_time_max_ms.max(1)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let cases = [
            (GOOD.replace("9091", "x"), "client_addr"),
            (GOOD.replace("1 = ", "one = "), "controller id"),
            (format!("bogus = 1\n{GOOD}"), "unknown field"),
            (format!("{GOOD}\n"), ""),
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
    }
}
