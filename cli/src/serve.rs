//! `raftline serve`: one node, assembled from the crates. Today a node runs the
//! controller role (a Raft voter with the Admin, BrokerLifecycle and
//! MetadataStream services) and the broker role's link to the controllers
//! (registration, heartbeats, metadata). Partition replicas come next.
//!
//! ```text
//! peer port:   RaftPeer + BrokerLifecycle + MetadataStream  (RaftNode, sled)
//! client port: Admin
//! broker:      ControllerLink ─ register/heartbeat/stream ─> controllers
//! ```

use crate::config::NodeConfig;
use anyhow::{Context, Result};
use raftline_broker::controller_link::{self, LinkConfig};
use raftline_broker::metadata::{BrokerId, PartitionChange};
use raftline_controller::api::{AdminService, BrokerLifecycleService, MetadataStreamService};
use raftline_controller::{BrokerLifecycle, ControllerMachine, ControllerNode};
use raftline_proto::pb::admin_server::AdminServer;
use raftline_proto::pb::broker_lifecycle_server::BrokerLifecycleServer;
use raftline_proto::pb::metadata_stream_server::MetadataStreamServer;
use raftline_raft_store::network::TcpConnector;
use raftline_raft_store::{NodeConfig as RaftConfig, RaftNode, SledDisk};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;

/// How long a forwarded admin proposal may take.
const PROPOSAL_TIMEOUT: Duration = Duration::from_secs(10);

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

    let monitor_stop = CancellationToken::new();
    let mut controller = None;
    let mut monitor = None;
    let session = config.broker_session_timeout;
    let raft_config = RaftConfig::new(config.node_id, config.controllers.clone());
    let node = RaftNode::start(
        raft_config,
        ControllerMachine::new(),
        disk,
        Arc::new(TcpConnector::default()),
        TcpListenerStream::new(peer),
        |handle, routes| {
            let node = Arc::new(ControllerNode::new(handle.clone(), PROPOSAL_TIMEOUT));
            let lifecycle = Arc::new(BrokerLifecycle::new(node.clone(), session));
            monitor = Some(
                lifecycle
                    .clone()
                    .spawn_monitor(Duration::from_millis(100), monitor_stop.clone()),
            );
            routes.add_service(BrokerLifecycleServer::new(BrokerLifecycleService::new(
                lifecycle,
            )));
            routes.add_service(MetadataStreamServer::new(MetadataStreamService::new(
                handle.clone(),
            )));
            controller = Some(node);
        },
    )
    .await?;
    let controller = controller.context("the controller services were not built")?;

    let admin_stop = CancellationToken::new();
    let admin = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AdminServer::new(AdminService::new(controller)))
            .serve_with_incoming_shutdown(
                TcpListenerStream::new(client),
                admin_stop.clone().cancelled_owned(),
            ),
    );

    let link_stop = CancellationToken::new();
    let link_config = LinkConfig {
        broker_id: BrokerId(u32::try_from(config.node_id).context("node_id must fit in 32 bits")?),
        incarnation: rand::random(),
        endpoints: [("client".to_string(), config.client_addr.to_string())].into(),
        rack: config.rack.clone(),
        controllers: config.controllers.clone(),
        heartbeat_interval: config.broker_heartbeat,
        rpc_timeout: Duration::from_secs(2),
    };
    let mut link = controller_link::spawn(
        link_config,
        Arc::new(controller_link::TcpConnector::default()),
        link_stop.clone(),
    );
    // Until the replica manager exists, hosted-partition changes are logged.
    let changes = tokio::spawn(async move {
        while let Some(changes) = link.changes.recv().await {
            for change in changes {
                match change {
                    PartitionChange::Changed {
                        partition, info, ..
                    } => {
                        tracing::info!(%partition, leader = ?info.leader, epoch = %info.leader_epoch, "hosted partition changed (replicas not built yet)")
                    }
                    PartitionChange::Removed { partition, .. } => {
                        tracing::info!(%partition, "hosted partition removed")
                    }
                }
            }
        }
    });

    println!(
        "raftline node {} up: client {} (Admin), peer {} (Raft, controller services); data in {}",
        config.node_id,
        config.client_addr,
        config.peer_addr,
        config.data_dir.display()
    );
    shutdown_signal().await;
    tracing::info!("shutting down: controlled shutdown of the broker first");
    link_stop.cancel();
    let _ = link.task.await;
    changes.abort();
    monitor_stop.cancel();
    if let Some(monitor) = monitor {
        let _ = monitor.await;
    }
    admin_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(2), admin).await;
    node.shutdown().await?;
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
