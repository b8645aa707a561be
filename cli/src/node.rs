//! [`Node`]: one Raftline node (controller and broker roles) assembled from
//! the crates, with everything that touches the world handed in: the Raft
//! disk, the partition-log storage, the clock, how to reach peers, and the
//! accepted connections of both ports. `raftline serve` hands it sled, real
//! files and TCP; the simulator hands it in-memory disks and its own network.
//!
//! ```text
//! peer port:   RaftPeer + BrokerLifecycle + MetadataStream + Replication (gRPC),
//!              and the replication wire (replica fetches; told apart by preface)
//! client port: Admin + Broker + gRPC reflection (limits: streams, deadlines, keepalive)
//! broker:      ControllerLink ─ register/heartbeat/stream ─> controllers
//!              └─ partition changes ─> ReplicaManager ─> leaders, fetchers
//! ```

use raftline_broker::api::{BrokerService, ReplicationService};
use raftline_broker::clock::Clock;
use raftline_broker::controller_link::{self, Connector, ControllerClient, LinkConfig};
use raftline_broker::group::{CoordinatorConfig, GroupCoordinator, GroupsService};
use raftline_broker::kafka::{
    AdminFuture, ClusterAdmin, Elected, KafkaConfig, KafkaFrontEnd, KAFKA_ENDPOINT,
};
use raftline_broker::log::TailBudget;
use raftline_broker::metadata::BrokerId;
use raftline_broker::replica::{
    clear_damage_marks, recover_local_logs, ReplicaManager, ReplicaManagerConfig,
};
use raftline_broker::storage::Storage;
use raftline_controller::api::status::error_to_wire as controller_error_to_wire;
use raftline_controller::api::{AdminService, BrokerLifecycleService, MetadataStreamService};
use raftline_controller::{
    spawn_leader_rebalance, BrokerLifecycle, ControllerMachine, ControllerNode, ElectionType,
    LeaderRebalance,
};
use raftline_proto::date::{DateHeaderLayer, WallClock};
use raftline_proto::pb::admin_server::AdminServer;
use raftline_proto::pb::broker_lifecycle_server::BrokerLifecycleServer;
use raftline_proto::pb::metadata_stream_server::MetadataStreamServer;
use raftline_raft_store::{NodeConfig as RaftConfig, RaftDisk, RaftHandle, RaftNode};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;

/// How long a forwarded admin proposal may take.
const PROPOSAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a node could not start.
#[derive(Debug, Error)]
pub enum NodeError {
    /// A setting is out of range.
    #[error("invalid setting: {0}")]
    Config(String),
    /// The Raft node failed to start.
    #[error(transparent)]
    Raft(#[from] raftline_raft_store::NodeError),
    /// A service could not be built.
    #[error("{0}")]
    Service(String),
}

/// A node's settings (what `raftline serve` reads from its config).
#[derive(Clone, Debug)]
pub struct NodeSettings {
    /// Controller and broker id.
    pub node_id: u64,
    /// The client address others reach this node at (`host:port`).
    pub client_addr: String,
    /// The peer address others reach this node at.
    pub peer_addr: String,
    /// The controller quorum: id -> peer address.
    pub controllers: BTreeMap<u64, String>,
    /// This broker's rack.
    pub rack: Option<String>,
    /// Between broker heartbeats.
    pub broker_heartbeat: Duration,
    /// A broker silent this long is fenced.
    pub broker_session_timeout: Duration,
    /// A follower not caught up this long leaves the ISR.
    pub replica_lag_time_max: Duration,
    /// Where partition logs live (on `NodeParts::storage`).
    pub log_dir: PathBuf,
    /// The group coordinator's settings (`__consumer_offsets`, timeouts).
    pub groups: CoordinatorConfig,
    /// Between log cleaner checks of compacted partitions.
    pub log_cleaner_backoff: Duration,
    /// Between retention passes (`log.retention.check.interval.ms`).
    pub log_retention_check: Duration,
    /// Automatic preferred-leader rebalancing by the controller leader
    /// (`auto.leader.rebalance.enable`), if on.
    pub leader_rebalance: Option<LeaderRebalance>,
    /// Synced bytes per segment kept in the page cache (`None`: all), as
    /// [`LogConfig::cached_tail`](raftline_broker::log::LogConfig).
    pub log_cached_tail: Option<u64>,
    /// The broker's memory for leaders' in-memory tails beyond 4 MiB each
    /// ([`LogConfig::leader_tail`](raftline_broker::log::LogConfig)); `None`:
    /// 4 MiB each.
    pub log_leader_tail: Option<u64>,
    /// The Kafka listener's address as clients reach it (`host:port`), if
    /// this node serves Kafka ([`Node::serve_kafka`]); registered with the
    /// broker so every node's Metadata can name it.
    pub kafka_addr: Option<String>,
}

/// What the node runs on.
pub struct NodeParts<D, P, C> {
    /// The Raft log, vote and snapshot store.
    pub disk: D,
    /// The partition logs' files.
    pub storage: Arc<dyn Storage>,
    /// Wall-clock time for logs (timestamps, retention).
    pub clock: Arc<dyn Clock>,
    /// How to reach other nodes.
    pub connector: Arc<dyn Connector>,
    /// Accepted connections on the peer port.
    pub peer_incoming: P,
    /// Accepted connections on the client port.
    pub client_incoming: C,
    /// A random id of this process (a restart registers anew).
    pub incarnation: u64,
}

/// A running node.
pub struct Node<D: RaftDisk> {
    raft: RaftNode<ControllerMachine, D>,
    manager: Arc<ReplicaManager>,
    link_stop: CancellationToken,
    link: JoinHandle<()>,
    replicas_stop: CancellationToken,
    replicas: JoinHandle<()>,
    monitor_stop: CancellationToken,
    monitor: Option<JoinHandle<()>>,
    rebalance: Option<JoinHandle<()>>,
    groups_stop: CancellationToken,
    groups: JoinHandle<()>,
    client_stop: CancellationToken,
    client: JoinHandle<Result<(), tonic::transport::Error>>,
    kafka_stop: CancellationToken,
    kafka: Option<JoinHandle<()>>,
    coordinator: Arc<GroupCoordinator>,
    admin: Arc<dyn ClusterAdmin>,
}

/// Limits against hostile or broken clients, on the client port: concurrent
/// streams per connection, a deadline on every request (above the longest
/// long poll and produce timeout), and keepalives that close dead connections.
fn limits(builder: tonic::transport::Server) -> tonic::transport::Server {
    raftline_proto::transport::sized_server(builder)
        .max_concurrent_streams(Some(256))
        .timeout(Duration::from_secs(65))
        .tcp_keepalive(Some(Duration::from_secs(60)))
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
}

/// The controller quorum as the broker asks it for topic changes.
struct ControllerTopics<D: RaftDisk>(Arc<ControllerNode<D>>);

/// The broker's topic operations (the Kafka listener's admin APIs, the group
/// coordinator creating `__consumer_offsets`): through this node's
/// controller (forwarded to the Raft leader), errors typed as every front end
/// has them.
impl<D: RaftDisk> ClusterAdmin for ControllerTopics<D> {
    fn create_topic(
        &self,
        name: String,
        partitions: u32,
        replication_factor: u32,
        configs: BTreeMap<String, String>,
    ) -> AdminFuture<'_, u64> {
        Box::pin(async move {
            self.0
                .create_topic(&name, partitions, replication_factor, configs)
                .await
                .map(|topic| topic.id.0)
                .map_err(|e| controller_error_to_wire(&e))
        })
    }

    fn delete_topic(&self, name: String) -> AdminFuture<'_> {
        Box::pin(async move {
            self.0
                .delete_topic(&name)
                .await
                .map_err(|e| controller_error_to_wire(&e))
        })
    }

    fn alter_topic_configs(
        &self,
        name: String,
        set: BTreeMap<String, String>,
        delete: std::collections::BTreeSet<String>,
    ) -> AdminFuture<'_> {
        Box::pin(async move {
            self.0
                .alter_topic_configs(&name, set, delete)
                .await
                .map(|_| ())
                .map_err(|e| controller_error_to_wire(&e))
        })
    }

    fn create_partitions(&self, name: String, total: u32) -> AdminFuture<'_> {
        Box::pin(async move {
            self.0
                .create_partitions(&name, total)
                .await
                .map(|_| ())
                .map_err(|e| controller_error_to_wire(&e))
        })
    }

    fn elect_leaders(
        &self,
        topic: Option<String>,
        partitions: Vec<u32>,
        unclean: bool,
    ) -> AdminFuture<'_, Vec<Elected>> {
        let election = if unclean {
            ElectionType::Unclean
        } else {
            ElectionType::Preferred
        };
        Box::pin(async move {
            let outcomes = self
                .0
                .elect_leaders(topic.as_deref(), &partitions, election)
                .await
                .map_err(|e| controller_error_to_wire(&e))?;
            Ok(outcomes
                .into_iter()
                .map(|o| {
                    let result = o
                        .result
                        .map(|leader| leader.map(|b| b.0))
                        .map_err(|e| controller_error_to_wire(&e));
                    (o.topic, o.partition, result)
                })
                .collect())
        })
    }
}

/// Waits for `task` at most `limit`, then leaves it (the node is stopping).
async fn bounded<T>(what: &str, limit: Duration, task: JoinHandle<T>) {
    let abort = task.abort_handle();
    if tokio::time::timeout(limit, task).await.is_err() {
        tracing::warn!("{what} did not finish within {limit:?}; going on");
        abort.abort();
    }
}

impl<D: RaftDisk> Node<D> {
    /// Starts every role of the node.
    pub async fn start<P, PIO, PE, C, CIO, CE>(
        settings: NodeSettings,
        parts: NodeParts<D, P, C>,
    ) -> Result<Node<D>, NodeError>
    where
        P: Stream<Item = Result<PIO, PE>> + Send + 'static,
        PIO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
        PE: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
        C: Stream<Item = Result<CIO, CE>> + Send + 'static,
        CIO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
        CE: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
    {
        let broker_id = BrokerId(u32::try_from(settings.node_id).map_err(|_| {
            NodeError::Config(format!("node_id {} must fit in 32 bits", settings.node_id))
        })?);
        let wall = {
            let clock = parts.clock.clone();
            WallClock::from_millis(move || clock.now_ms())
        };
        // Recovery runs before registering: a copy that lost synced records
        // must not be elected (the controller hears of it with the
        // registration).
        let mut replica_config = ReplicaManagerConfig::new(broker_id, settings.log_dir.clone());
        replica_config.lag_max = settings.replica_lag_time_max;
        replica_config.cleaner_check = settings.log_cleaner_backoff;
        replica_config.retention_check = settings.log_retention_check;
        replica_config.log_defaults.cached_tail = settings.log_cached_tail;
        replica_config.log_defaults.leader_tail = settings
            .log_leader_tail
            .map(|bytes| Arc::new(TailBudget::new(bytes)));
        let damaged = recover_local_logs(
            &parts.storage,
            &settings.log_dir,
            &replica_config.log_defaults,
        );
        let link_stop = CancellationToken::new();
        let link_config = LinkConfig {
            broker_id,
            incarnation: parts.incarnation,
            endpoints: [
                ("client".to_string(), Some(settings.client_addr.clone())),
                ("peer".to_string(), Some(settings.peer_addr.clone())),
                (KAFKA_ENDPOINT.to_string(), settings.kafka_addr.clone()),
            ]
            .into_iter()
            .filter_map(|(name, addr)| Some((name, addr?)))
            .collect(),
            rack: settings.rack.clone(),
            damaged: damaged.clone(),
            controllers: settings.controllers.clone(),
            heartbeat_interval: settings.broker_heartbeat,
            // Well inside the session: a heartbeat stuck on a controller that
            // died or was cut off must leave time to find the new leader
            // before the session expires (else a leader change fences every
            // broker at once; found by the simulator).
            rpc_timeout: (settings.broker_session_timeout / 2)
                .clamp(Duration::from_millis(200), Duration::from_secs(2)),
            session_timeout: settings.broker_session_timeout,
        };
        let link = controller_link::spawn(link_config, parts.connector.clone(), link_stop.clone());
        if !damaged.is_empty() {
            let mut state = link.state.clone();
            let (storage, dir) = (parts.storage.clone(), settings.log_dir.clone());
            tokio::spawn(async move {
                if state.wait_for(|s| s.epoch.is_some()).await.is_ok() {
                    clear_damage_marks(&*storage, &dir, &damaged);
                }
            });
        }
        let replicas_stop = CancellationToken::new();
        let manager = ReplicaManager::new(
            replica_config,
            parts.storage,
            parts.clock.clone(),
            parts.connector.clone(),
            link.state.clone(),
            ControllerClient::new(
                settings.controllers.clone(),
                parts.connector.clone(),
                Duration::from_secs(2),
            ),
            replicas_stop.clone(),
        );
        let replicas = tokio::spawn(manager.clone().run(link.changes));

        let monitor_stop = CancellationToken::new();
        let mut controller = None;
        let mut monitor = None;
        let mut rebalance = None;
        let leader_rebalance = settings.leader_rebalance;
        let session = settings.broker_session_timeout;
        // A broker silent for two heartbeats has its listener probed: a
        // crashed process is fenced then, not a session later.
        let (probe_connector, probe_after) =
            (parts.connector.clone(), settings.broker_heartbeat * 2);
        // The peer port carries gRPC and the replication wire; connections
        // are told apart by their first bytes.
        let (peer_grpc, peer_wire) = raftline_proto::wire::demux(parts.peer_incoming);
        tokio::spawn(
            ReplicationService::new(manager.clone()).serve_wire(peer_wire, replicas_stop.clone()),
        );
        let mut raft_config = RaftConfig::new(settings.node_id, settings.controllers.clone());
        raft_config.clock = wall.clone();
        let raft = RaftNode::start(
            raft_config,
            ControllerMachine::new(),
            parts.disk,
            parts.connector,
            peer_grpc,
            |handle, routes| {
                let node = Arc::new(ControllerNode::new(handle.clone(), PROPOSAL_TIMEOUT));
                let lifecycle = Arc::new(
                    BrokerLifecycle::new(node.clone(), session)
                        .with_probes(probe_connector, probe_after),
                );
                monitor = Some(
                    lifecycle
                        .clone()
                        .spawn_monitor(Duration::from_millis(100), monitor_stop.clone()),
                );
                rebalance = leader_rebalance
                    .map(|r| spawn_leader_rebalance(node.clone(), r, monitor_stop.clone()));
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
        let controller = controller
            .ok_or_else(|| NodeError::Service("the controller services were not built".into()))?;
        let coordinator = GroupCoordinator::new(
            manager.clone(),
            Arc::new(ControllerTopics(controller.clone())),
            parts.clock.clone(),
            settings.groups.clone(),
        );
        let groups_stop = CancellationToken::new();
        let groups = tokio::spawn(coordinator.clone().run(groups_stop.clone()));

        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(raftline_proto::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| NodeError::Service(format!("gRPC reflection: {e}")))?;
        let client_stop = CancellationToken::new();
        let client = tokio::spawn(
            limits(tonic::transport::Server::builder())
                .layer(DateHeaderLayer::new(wall))
                .add_service(
                    AdminServer::new(AdminService::new(controller.clone()))
                        .max_decoding_message_size(1 << 20)
                        .max_encoding_message_size(16 << 20),
                )
                .add_service(BrokerService::new(manager.clone()).into_server())
                .add_service(GroupsService::new(coordinator.clone()).into_server())
                .add_service(reflection)
                .serve_with_incoming_shutdown(
                    parts.client_incoming,
                    client_stop.clone().cancelled_owned(),
                ),
        );
        Ok(Node {
            raft,
            manager,
            link_stop,
            link: link.task,
            replicas_stop,
            replicas,
            monitor_stop,
            monitor,
            rebalance,
            groups_stop,
            groups,
            client_stop,
            client,
            kafka_stop: CancellationToken::new(),
            kafka: None,
            coordinator,
            admin: Arc::new(ControllerTopics(controller)),
        })
    }

    /// Serves the Kafka protocol on `incoming` (the address clients use for
    /// it is `NodeSettings::kafka_addr`) until the node stops.
    pub fn serve_kafka<S, IO, E>(&mut self, incoming: S, config: KafkaConfig)
    where
        S: Stream<Item = Result<IO, E>> + Send + 'static,
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        E: std::fmt::Display + 'static,
    {
        let front = KafkaFrontEnd::new(
            self.manager.clone(),
            self.coordinator.clone(),
            self.admin.clone(),
            config,
        );
        self.kafka = Some(tokio::spawn(front.serve(incoming, self.kafka_stop.clone())));
    }

    /// The broker's replica manager (tests and the simulator look inside).
    pub fn replicas(&self) -> &Arc<ReplicaManager> {
        &self.manager
    }

    /// The controller's Raft node (tests and the simulator look inside).
    pub fn controller(&self) -> &RaftHandle<ControllerMachine, D> {
        self.raft.handle()
    }

    /// Stops the node: a controlled shutdown of the broker first (its
    /// leaderships move), then replicas, services and Raft. Each step is
    /// bounded, so a node whose peers are gone still stops.
    pub async fn shutdown(self) {
        tracing::info!("shutting down: controlled shutdown of the broker first");
        self.link_stop.cancel();
        bounded(
            "the controlled shutdown",
            Duration::from_secs(10),
            self.link,
        )
        .await;
        self.groups_stop.cancel();
        bounded("the group coordinator", Duration::from_secs(2), self.groups).await;
        self.replicas_stop.cancel();
        bounded("the replicas", Duration::from_secs(5), self.replicas).await;
        self.monitor_stop.cancel();
        if let Some(monitor) = self.monitor {
            bounded("the session monitor", Duration::from_secs(2), monitor).await;
        }
        if let Some(rebalance) = self.rebalance {
            bounded("the leader rebalance", Duration::from_secs(2), rebalance).await;
        }
        self.client_stop.cancel();
        bounded("the client port", Duration::from_secs(2), self.client).await;
        self.kafka_stop.cancel();
        if let Some(kafka) = self.kafka {
            bounded("the Kafka listener", Duration::from_secs(2), kafka).await;
        }
        tracing::info!("stopping the Raft node");
        match tokio::time::timeout(Duration::from_secs(5), self.raft.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the Raft node stopped with an error"),
            Err(_) => tracing::warn!("the Raft node did not stop within 5 s; going on"),
        }
        tracing::info!("stopped");
    }
}
