//! `raftline serve`: one node, assembled from the crates: the controller role
//! (a Raft voter with the Admin, BrokerLifecycle and MetadataStream services)
//! and the broker role (the link to the controllers, the replica manager with
//! its partition logs under `data_dir/logs`, produce, fetch and replication).
//!
//! ```text
//! peer port:   RaftPeer + BrokerLifecycle + MetadataStream (RaftNode, sled) + Replication
//! client port: Admin + Broker (Metadata, Produce, Fetch, ListOffsets)
//! broker:      ControllerLink ─ register/heartbeat/stream ─> controllers
//!              └─ partition changes ─> ReplicaManager ─> leaders, fetchers
//! ```

use crate::config::NodeConfig;
use anyhow::{Context, Result};
use raftline_broker::api::{BrokerService, ReplicationService};
use raftline_broker::clock::SystemClock;
use raftline_broker::controller_link::{self, ControllerClient, LinkConfig};
use raftline_broker::metadata::BrokerId;
use raftline_broker::replica::{ReplicaManager, ReplicaManagerConfig};
use raftline_broker::storage::FsStorage;
use raftline_controller::api::{AdminService, BrokerLifecycleService, MetadataStreamService};
use raftline_controller::{BrokerLifecycle, ControllerMachine, ControllerNode};
use raftline_proto::pb::admin_server::AdminServer;
use raftline_proto::pb::broker_lifecycle_server::BrokerLifecycleServer;
use raftline_proto::pb::metadata_stream_server::MetadataStreamServer;
use raftline_proto::transport::accept_no_delay;
use raftline_raft_store::network::TcpConnector;
use raftline_raft_store::{NodeConfig as RaftConfig, RaftNode, SledDisk};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
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

    let broker_id = BrokerId(u32::try_from(config.node_id).context("node_id must fit in 32 bits")?);
    let link_stop = CancellationToken::new();
    let link_config = LinkConfig {
        broker_id,
        incarnation: rand::random(),
        endpoints: [
            ("client".to_string(), config.client_addr.to_string()),
            ("peer".to_string(), config.peer_addr.to_string()),
        ]
        .into(),
        rack: config.rack.clone(),
        controllers: config.controllers.clone(),
        heartbeat_interval: config.broker_heartbeat,
        rpc_timeout: Duration::from_secs(2),
    };
    let connector = Arc::new(controller_link::TcpConnector::default());
    let link = controller_link::spawn(link_config, connector.clone(), link_stop.clone());
    let replicas_stop = CancellationToken::new();
    let mut replica_config = ReplicaManagerConfig::new(broker_id, config.data_dir.join("logs"));
    replica_config.lag_max = config.replica_lag_time_max;
    let manager = ReplicaManager::new(
        replica_config,
        Arc::new(FsStorage),
        Arc::new(SystemClock),
        connector.clone(),
        link.state.clone(),
        ControllerClient::new(
            config.controllers.clone(),
            connector,
            Duration::from_secs(2),
        ),
        replicas_stop.clone(),
    );
    let replicas = tokio::spawn(manager.clone().run(link.changes));
    let link_task = link.task;

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
        accept_no_delay(peer),
        |handle, routes| {
            let node = Arc::new(ControllerNode::new(handle.clone(), PROPOSAL_TIMEOUT));
            let lifecycle = Arc::new(BrokerLifecycle::new(node.clone(), session));
            monitor = Some(
                lifecycle
                    .clone()
                    .spawn_monitor(Duration::from_millis(100), monitor_stop.clone()),
            );
            routes.add_service(
                BrokerLifecycleServer::new(BrokerLifecycleService::new(lifecycle))
                    .max_decoding_message_size(1 << 20)
                    .max_encoding_message_size(1 << 20),
            );
            // A full metadata image can be large; requests are tiny.
            routes.add_service(
                MetadataStreamServer::new(MetadataStreamService::new(handle.clone()))
                    .max_decoding_message_size(1 << 20)
                    .max_encoding_message_size(64 << 20),
            );
            routes.add_service(ReplicationService::new(manager.clone()).into_server());
            controller = Some(node);
        },
    )
    .await?;
    let controller = controller.context("the controller services were not built")?;

    let admin_stop = CancellationToken::new();
    let admin = tokio::spawn(
        limits(tonic::transport::Server::builder())
            .add_service(
                AdminServer::new(AdminService::new(controller))
                    .max_decoding_message_size(1 << 20)
                    .max_encoding_message_size(16 << 20),
            )
            .add_service(BrokerService::new(manager.clone()).into_server())
            .add_service(reflection()?)
            .serve_with_incoming_shutdown(
                accept_no_delay(client),
                admin_stop.clone().cancelled_owned(),
            ),
    );

    println!(
        "raftline node {} up: client {} (Admin, Broker), peer {} (Raft, controller, replication); data in {}",
        config.node_id,
        config.client_addr,
        config.peer_addr,
        config.data_dir.display()
    );
    shutdown_signal().await;
    // Each step is bounded: a node whose peers are gone still exits.
    tracing::info!("shutting down: controlled shutdown of the broker first");
    link_stop.cancel();
    bounded(
        "the controlled shutdown",
        Duration::from_secs(10),
        link_task,
    )
    .await;
    replicas_stop.cancel();
    bounded("the replicas", Duration::from_secs(5), replicas).await;
    monitor_stop.cancel();
    if let Some(monitor) = monitor {
        bounded("the session monitor", Duration::from_secs(2), monitor).await;
    }
    admin_stop.cancel();
    bounded("the client port", Duration::from_secs(2), admin).await;
    tracing::info!("stopping the Raft node");
    match tokio::time::timeout(Duration::from_secs(5), node.shutdown()).await {
        Ok(result) => result?,
        Err(_) => tracing::warn!("the Raft node did not stop within 5 s; exiting anyway"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// Limits against hostile or broken clients, on the client port: concurrent
/// streams per connection, a deadline on every request (above the longest
/// long poll and produce timeout), and keepalives that close dead connections.
fn limits(builder: tonic::transport::Server) -> tonic::transport::Server {
    builder
        .max_concurrent_streams(Some(256))
        .timeout(Duration::from_secs(65))
        .tcp_keepalive(Some(Duration::from_secs(60)))
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
}

/// gRPC server reflection (v1): grpcurl and generated clients in any language
/// discover the services from the server itself.
fn reflection() -> Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(raftline_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("cannot build the gRPC reflection service")
}

/// Waits for `task` at most `limit`, then leaves it (the process is ending).
async fn bounded<T>(what: &str, limit: Duration, task: tokio::task::JoinHandle<T>) {
    let abort = task.abort_handle();
    if tokio::time::timeout(limit, task).await.is_err() {
        tracing::warn!("{what} did not finish within {limit:?}; going on");
        abort.abort();
    }
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
