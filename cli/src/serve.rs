//! `raftline serve`: one node ([`raftline::node::Node`]) on the machine's
//! resources: sled for Raft (`data_dir/raft`), real files for partition logs
//! (`data_dir/logs`), TCP with Nagle off for both ports.

use crate::config::NodeConfig;
use anyhow::{Context, Result};
use raftline::node::{Node, NodeParts, NodeSettings};
use raftline_broker::clock::SystemClock;
use raftline_broker::controller_link::TcpConnector;
use raftline_broker::kafka::KafkaConfig;
use raftline_broker::storage::FsStorage;
use raftline_proto::transport::accept_no_delay;
use raftline_raft_store::SledDisk;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Runs the node until SIGINT or SIGTERM, then stops it cleanly (a controlled
/// shutdown of the broker first).
pub async fn run(config: NodeConfig) -> Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
    let raft_dir = config.data_dir.join("raft");
    let disk = SledDisk::open(&raft_dir)
        .with_context(|| format!("cannot open the Raft store in {}", raft_dir.display()))?;
    let peer = TcpListener::bind(config.peer_addr).await.with_context(|| {
        format!(
            "cannot listen on peer_addr {}: is another node using it?",
            config.peer_addr
        )
    })?;
    let client = TcpListener::bind(config.client_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on client_addr {}: is another node using it?",
                config.client_addr
            )
        })?;
    let kafka = match &config.kafka {
        Some(k) => Some(TcpListener::bind(k.bind).await.with_context(|| {
            format!(
                "cannot listen on kafka_listener {}: is another node or a Kafka broker using it?",
                k.bind
            )
        })?),
        None => None,
    };
    let settings = NodeSettings {
        node_id: config.node_id,
        client_addr: config.client_addr.to_string(),
        peer_addr: config.peer_addr.to_string(),
        controllers: config.controllers.clone(),
        rack: config.rack.clone(),
        broker_heartbeat: config.broker_heartbeat,
        broker_session_timeout: config.broker_session_timeout,
        replica_lag_time_max: config.replica_lag_time_max,
        log_dir: config.data_dir.join("logs"),
        groups: config.groups.clone(),
        log_cleaner_backoff: config.log_cleaner_backoff,
        log_retention_check: config.log_retention_check,
        leader_rebalance: config.leader_rebalance,
        log_cached_tail: config.log_cached_tail,
        log_leader_tail: config.log_leader_tail,
        kafka_addr: config.kafka.as_ref().map(|k| k.advertised.clone()),
    };
    let parts = NodeParts {
        disk,
        storage: Arc::new(FsStorage),
        clock: Arc::new(SystemClock),
        connector: Arc::new(TcpConnector::default()),
        peer_incoming: accept_no_delay(peer),
        client_incoming: accept_no_delay(client),
        incarnation: rand::random(),
    };
    let mut node = Node::start(settings, parts).await?;
    if let (Some(listener), Some(k)) = (kafka, &config.kafka) {
        node.serve_kafka(
            accept_no_delay(listener),
            KafkaConfig {
                max_request_bytes: k.max_request_bytes,
                auto_create_topics: k.auto_create_topics,
                ..KafkaConfig::default()
            },
        );
    }
    let kafka = config.kafka.as_ref().map_or(String::new(), |k| {
        format!(", kafka {} (advertised {})", k.bind, k.advertised)
    });
    println!(
        "raftline node {} up: client {} (Admin, Broker), peer {} (Raft, controller, replication){kafka}; data in {}",
        config.node_id,
        config.client_addr,
        config.peer_addr,
        config.data_dir.display()
    );
    shutdown_signal().await;
    node.shutdown().await;
    Ok(())
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; stop with Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
