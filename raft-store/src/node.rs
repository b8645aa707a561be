//! One Raft node: the stores, openraft, and the peer gRPC server, assembled;
//! bootstrapped from a static voter list.
//!
//! ```text
//! RaftNode::start(config, machine, disk, connector, incoming)
//!   ├─ LogStore<D> + StateMachineStore<M, D> on the disk
//!   ├─ openraft::Raft with GrpcNetwork(connector)
//!   ├─ RaftPeer gRPC server on `incoming` (until shutdown)
//!   ├─ standby watcher: stands for election at once when the leader's
//!   │  process is gone (`standby.rs`)
//!   └─ first start of a listed voter: initialize(voters); later starts recover
//! ```

use crate::disk::RaftDisk;
use crate::error::DiskError;
use crate::log_store::LogStore;
use crate::network::{Connector, GrpcNetwork, RaftPeerService};
use crate::sm_store::{StateMachine, StateMachineStore};
use crate::standby::{self, Heard};
use crate::types::{NodeId, Request, TypeConfig};
use openraft::error::{
    ChangeMembershipError, CheckIsLeaderError, ClientWriteError, InitializeError, RaftError,
};
use openraft::{BasicNode, ChangeMembers, Raft, RaftMetrics, SnapshotPolicy};
use raftline_proto::date::{DateHeaderLayer, WallClock};
use raftline_proto::pb::raft_peer_client::RaftPeerClient;
use raftline_proto::pb::raft_peer_server::RaftPeerServer;
use raftline_proto::pb::RaftPayload;
use raftline_proto::transport::ChannelCache;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::service::RoutesBuilder;
use tonic::transport::server::Connected;

/// A node's Raft settings.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node's id.
    pub id: NodeId,
    /// The cluster's first voters: node id -> peer address (`host:port`). A node
    /// listed here initializes the cluster on its first start; a node not listed
    /// waits to be added (`add_voter`).
    pub voters: BTreeMap<NodeId, String>,
    /// Leader heartbeat interval. Default 50 ms.
    pub heartbeat: Duration,
    /// A follower starts an election after a random timeout in this range
    /// (openraft adds the leader's lease, the range's maximum, when the
    /// follower last heard a committed leader). Default 150-300 ms.
    pub election_timeout: (Duration, Duration),
    /// Build a snapshot after this many log entries since the last one. Default 10,000.
    pub snapshot_after_entries: u64,
    /// Log entries kept behind a snapshot before purging (for slow followers).
    /// Default 1,000.
    pub keep_after_snapshot: u64,
    /// The clock that dates the peer server's responses (the system clock;
    /// the simulator's time in a simulation).
    pub clock: WallClock,
}

impl NodeConfig {
    /// Defaults for node `id` of the cluster `voters`.
    pub fn new(id: NodeId, voters: BTreeMap<NodeId, String>) -> Self {
        NodeConfig {
            id,
            voters,
            heartbeat: Duration::from_millis(50),
            election_timeout: (Duration::from_millis(150), Duration::from_millis(300)),
            snapshot_after_entries: 10_000,
            keep_after_snapshot: 1_000,
            clock: WallClock::system(),
        }
    }

    fn raft_config(&self) -> Result<openraft::Config, NodeError> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let config = openraft::Config {
            cluster_name: "raftline".into(),
            heartbeat_interval: ms(self.heartbeat),
            election_timeout_min: ms(self.election_timeout.0),
            election_timeout_max: ms(self.election_timeout.1),
            install_snapshot_timeout: 2_000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_after_entries),
            max_in_snapshot_log_to_keep: self.keep_after_snapshot,
            purge_batch_size: 256,
            ..Default::default()
        };
        config
            .validate()
            .map_err(|e| NodeError::Config(e.to_string()))
    }
}

/// Why a node could not start or stop.
#[derive(Debug, Error)]
pub enum NodeError {
    /// The settings are inconsistent (e.g. heartbeat not below the election timeout).
    #[error("invalid raft config: {0}")]
    Config(String),
    /// The node's disk failed.
    #[error(transparent)]
    Disk(#[from] DiskError),
    /// openraft failed fatally.
    #[error("raft: {0}")]
    Raft(String),
}

/// Why a write or membership change did not commit.
#[derive(Debug, Error, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WriteError {
    /// This node does not lead; send the request to the leader, if one is known.
    #[error("not the raft leader; the leader is {leader:?} at {leader_addr:?}")]
    NotLeader {
        /// The current leader's id, if known.
        leader: Option<NodeId>,
        /// Its peer address, if known.
        leader_addr: Option<String>,
    },
    /// The membership change was refused.
    #[error("membership change refused: {0}")]
    Membership(String),
    /// Another membership change is still in progress: retry shortly.
    #[error("a membership change is in progress: {0}")]
    MembershipInProgress(String),
    /// The node is shutting down or failed.
    #[error("raft unavailable: {0}")]
    Unavailable(String),
}

/// A running Raft node: owns the peer server task; everything else is done
/// through its [`RaftHandle`].
pub struct RaftNode<M: StateMachine, D: RaftDisk> {
    handle: RaftHandle<M, D>,
    server: JoinHandle<()>,
}

/// A cloneable handle to a running node's Raft and state machine, for the
/// services built on it.
pub struct RaftHandle<M: StateMachine, D: RaftDisk> {
    id: NodeId,
    raft: Raft<TypeConfig>,
    /// Channels to the leaders this node forwards proposals and read-index
    /// requests to.
    leaders: ChannelCache,
    machine: StateMachineStore<M, D>,
    /// Cancelled when the node shuts down: long-lived work (streams) ends then.
    shutdown: CancellationToken,
}

impl<M: StateMachine, D: RaftDisk> Clone for RaftHandle<M, D> {
    fn clone(&self) -> Self {
        RaftHandle {
            id: self.id,
            raft: self.raft.clone(),
            leaders: self.leaders.clone(),
            machine: self.machine.clone(),
            shutdown: self.shutdown.clone(),
        }
    }
}

impl<M: StateMachine, D: RaftDisk> RaftNode<M, D> {
    /// Starts the node: opens its stores on `disk`, serves Raft RPCs, and the
    /// services that `services` adds (given the node's handle), on `incoming`
    /// (TCP, or the simulator's streams), and initializes the cluster if this is
    /// the first start of a listed voter.
    pub async fn start<I, IO, IE>(
        config: NodeConfig,
        machine: M,
        disk: D,
        connector: Arc<dyn Connector>,
        incoming: I,
        services: impl FnOnce(&RaftHandle<M, D>, &mut RoutesBuilder),
    ) -> Result<Self, NodeError>
    where
        I: Stream<Item = Result<IO, IE>> + Send + 'static,
        IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
        IE: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
    {
        let raft_config = Arc::new(config.raft_config()?);
        let log = LogStore::new(disk.clone());
        let machine_store = StateMachineStore::open(machine, disk)?;
        let raft = Raft::new(
            config.id,
            raft_config,
            GrpcNetwork::new(connector.clone()),
            log,
            machine_store.clone(),
        )
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?;

        let shutdown = CancellationToken::new();
        let handle = RaftHandle {
            id: config.id,
            raft: raft.clone(),
            leaders: ChannelCache::new(connector.clone()),
            machine: machine_store,
            shutdown: shutdown.clone(),
        };
        let heard = Heard::new();
        tokio::spawn(standby::watch(
            config.id,
            raft.clone(),
            connector.clone(),
            heard.clone(),
            standby::Timing {
                heartbeat: config.heartbeat,
                lease: config.election_timeout.1,
            },
            shutdown.clone(),
        ));
        let mut routes = RoutesBuilder::default();
        // Append batches and snapshots: bounded, well above any one message.
        routes.add_service(
            RaftPeerServer::new(RaftPeerService::new(raft, heard))
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
        );
        services(&handle, &mut routes);
        let routes = routes.routes();

        let stop = shutdown.clone();
        let id = config.id;
        let dates = DateHeaderLayer::new(config.clock.clone());
        let server = tokio::spawn(async move {
            // Peers only: bounded streams, and keepalives that notice a peer
            // gone without a FIN (a partition, a paused process).
            let served =
                raftline_proto::transport::sized_server(tonic::transport::Server::builder())
                    .max_concurrent_streams(Some(1024))
                    .http2_keepalive_interval(Some(std::time::Duration::from_secs(10)))
                    .http2_keepalive_timeout(Some(std::time::Duration::from_secs(5)))
                    .layer(dates)
                    .add_routes(routes)
                    .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                    .await;
            if let Err(e) = served {
                tracing::error!(node = id, error = %e, "peer server stopped");
            }
        });

        let node = RaftNode { handle, server };
        node.handle.bootstrap(&config).await?;
        Ok(node)
    }

    /// The handle to this node's Raft and state machine.
    pub fn handle(&self) -> &RaftHandle<M, D> {
        &self.handle
    }

    /// Stops Raft and the peer server. The disk keeps everything needed to start
    /// again.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        self.handle.shutdown.cancel();
        let stopped = self
            .handle
            .raft
            .shutdown()
            .await
            .map_err(|e| NodeError::Raft(e.to_string()));
        // Graceful HTTP/2 shutdown waits for peers' streams; don't let it hang.
        let mut server = self.server;
        if tokio::time::timeout(Duration::from_secs(2), &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
        stopped
    }
}

impl<M: StateMachine, D: RaftDisk> RaftHandle<M, D> {
    async fn bootstrap(&self, config: &NodeConfig) -> Result<(), NodeError> {
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|e| NodeError::Raft(e.to_string()))?;
        if initialized || !config.voters.contains_key(&config.id) {
            return Ok(());
        }
        let members: BTreeMap<NodeId, BasicNode> = config
            .voters
            .iter()
            .map(|(&id, addr)| (id, BasicNode::new(addr.clone())))
            .collect();
        match self.raft.initialize(members).await {
            // Another voter initialized first and replicated to us: fine.
            Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(NodeError::Raft(e.to_string())),
        }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Proposes `command`; returns its log index and the state machine's answer
    /// once committed and applied.
    pub async fn write(&self, command: Vec<u8>) -> Result<(u64, Vec<u8>), WriteError> {
        let response = self
            .raft
            .client_write(Request(command))
            .await
            .map_err(write_error)?;
        Ok((response.log_id.index, response.data.0))
    }

    /// Proposes `command` from any node: written here if this node leads,
    /// otherwise forwarded to the leader it knows (over the peer port's
    /// `Propose` RPC). While no leader is known (an election is running) it
    /// retries, all within `within`.
    pub async fn propose(
        &self,
        command: Vec<u8>,
        within: Duration,
    ) -> Result<(u64, Vec<u8>), WriteError> {
        self.at_leader(within, Forwarded::Propose(command.clone()), || {
            self.write(command.clone())
        })
        .await
    }

    /// Waits until this node's state machine holds every change committed
    /// before the call: the leader's read index (confirmed by a quorum; asked
    /// over the peer port's `ReadIndex` RPC if another node leads), then this
    /// node's apply catching up to it, all within `within`. Reads of the local
    /// state after it are as current as the leader's: a node just restarted,
    /// still replaying its log, does not answer from the past.
    pub async fn catch_up(&self, within: Duration) -> Result<(), WriteError> {
        let deadline = tokio::time::Instant::now() + within;
        let left = || deadline.saturating_duration_since(tokio::time::Instant::now());
        let index = loop {
            match self
                .at_leader(left(), Forwarded::ReadIndex, || read_index(&self.raft))
                .await
            {
                // The leader this node knew of is gone (it may not have heard
                // of the next yet): asking again is safe, as a read changes
                // nothing.
                Err(WriteError::Unavailable(_)) if left() > RETRY_AFTER => {
                    tokio::time::sleep(RETRY_AFTER).await;
                }
                other => break other?,
            }
        };
        self.raft
            .wait(Some(left()))
            .applied_index_at_least(Some(index), "the leader's read index")
            .await
            .map(|_| ())
            .map_err(|e| {
                WriteError::Unavailable(format!(
                    "node {} did not apply the log up to the leader's index {index}: {e}",
                    self.id
                ))
            })
    }

    /// Runs `here` if this node leads, else sends `forwarded` to the leader it
    /// knows; while no leader is known, or the one asked has just lost
    /// leadership, tries again, all within `within`.
    async fn at_leader<T, F, Fut>(
        &self,
        within: Duration,
        forwarded: Forwarded,
        here: F,
    ) -> Result<T, WriteError>
    where
        T: serde::de::DeserializeOwned,
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, WriteError>>,
    {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let result = match here().await {
                Err(WriteError::NotLeader {
                    leader_addr: Some(addr),
                    ..
                }) => {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    self.forward(&addr, &forwarded, left).await
                }
                other => other,
            };
            match result {
                // No leader known, or the one asked has just lost leadership.
                Err(WriteError::NotLeader { .. }) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(RETRY_AFTER).await;
                }
                other => return other,
            }
        }
    }

    async fn forward<T: serde::de::DeserializeOwned>(
        &self,
        addr: &str,
        forwarded: &Forwarded,
        within: Duration,
    ) -> Result<T, WriteError> {
        let unavailable = |e: &dyn std::fmt::Display| {
            WriteError::Unavailable(format!("forwarding to {addr}: {e}"))
        };
        let channel = self.leaders.channel(addr).map_err(|e| unavailable(&e))?;
        let mut peer = RaftPeerClient::new(channel);
        // The deadline is the client's alone (see network::client).
        let call = async {
            match forwarded {
                Forwarded::Propose(command) => {
                    let data = command.clone();
                    peer.propose(RaftPayload { data }).await
                }
                Forwarded::ReadIndex => peer.read_index(RaftPayload::default()).await,
            }
        };
        let reply = match tokio::time::timeout(within, call).await {
            Ok(Ok(reply)) => reply.into_inner(),
            // The connection may be dead: the next call connects afresh.
            Ok(Err(status)) => {
                self.leaders.forget(addr);
                return Err(unavailable(&status));
            }
            Err(elapsed) => {
                self.leaders.forget(addr);
                return Err(unavailable(&elapsed));
            }
        };
        serde_json::from_slice(&reply.data).map_err(|e| unavailable(&e))?
    }

    /// Cancelled when the node shuts down, for long-lived work built on it.
    pub fn shutdown_signal(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Reads the state machine linearizably: confirms with a quorum that this
    /// node still leads and waits until it has applied everything committed
    /// before the read, so the read sees every write acknowledged before it.
    pub async fn read_linearizable<T>(&self, read: impl FnOnce(&M) -> T) -> Result<T, WriteError> {
        read_index(&self.raft).await?;
        Ok(self.machine.with_machine(read))
    }

    /// Adds a voter (joint consensus): it joins as a learner, catches up, then
    /// becomes a voter. Only on the leader (else `NotLeader` names it); waits
    /// out an election or a change still in progress for up to 5 s.
    pub async fn add_voter(&self, id: NodeId, addr: String) -> Result<(), WriteError> {
        self.membership_change(|raft| {
            let addr = addr.clone();
            async move {
                raft.add_learner(id, BasicNode::new(addr), true)
                    .await
                    .map_err(write_error)?;
                raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                    .await
                    .map_err(write_error)
            }
        })
        .await
    }

    /// Removes a voter (joint consensus); it is dropped from the cluster. As
    /// [`add_voter`](Self::add_voter), only on the leader.
    pub async fn remove_voter(&self, id: NodeId) -> Result<(), WriteError> {
        self.membership_change(|raft| async move {
            raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
                .await
                .map_err(write_error)
        })
        .await
    }

    async fn membership_change<F, Fut, T>(&self, change: F) -> Result<(), WriteError>
    where
        F: Fn(Raft<TypeConfig>) -> Fut,
        Fut: std::future::Future<Output = Result<T, WriteError>>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let metrics = self.raft.metrics().borrow().clone();
            if metrics.state != openraft::ServerState::Leader {
                let voter = metrics
                    .membership_config
                    .membership()
                    .voter_ids()
                    .any(|v| v == self.id);
                if voter
                    && metrics.current_leader.is_none()
                    && tokio::time::Instant::now() < deadline
                {
                    // An election among the voters is running: wait for its outcome.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                let leader_addr = metrics.current_leader.and_then(|l| {
                    metrics
                        .membership_config
                        .membership()
                        .get_node(&l)
                        .map(|n| n.addr.clone())
                });
                return Err(WriteError::NotLeader {
                    leader: metrics.current_leader,
                    leader_addr,
                });
            }
            match change(self.raft.clone()).await {
                Err(WriteError::MembershipInProgress(_))
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                done => return done.map(|_| ()),
            }
        }
    }

    /// The node's Raft metrics (leader, term, applied index, membership, snapshot).
    pub fn metrics(&self) -> watch::Receiver<RaftMetrics<NodeId, BasicNode>> {
        self.raft.metrics()
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// Whether this node still leads, confirmed by a quorum now (a round of
    /// heartbeats, as for a linearizable read), with every committed change
    /// applied; `false` if not, or if no quorum answers within `within`. A
    /// leader cut off from the others believes it leads until it hears of a
    /// newer term: this is how it finds out before answering.
    pub async fn confirm_leadership(&self, within: std::time::Duration) -> bool {
        matches!(
            tokio::time::timeout(within, self.raft.ensure_linearizable()).await,
            Ok(Ok(_))
        )
    }

    /// Whether this node leads and has applied an entry of its own term (the
    /// blank entry a new leader commits first): only then has its state
    /// machine every change committed before it took over, so answers read
    /// from it are current.
    pub fn leads_with_current_state(&self) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.current_leader == Some(m.id)
            && m.last_applied
                .is_some_and(|applied| applied.leader_id.term == m.current_term)
    }

    /// The replicated state machine.
    pub fn machine(&self) -> &StateMachineStore<M, D> {
        &self.machine
    }

    /// Asks Raft to build a snapshot now (and purge the log behind it).
    pub async fn trigger_snapshot(&self) -> Result<(), NodeError> {
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| NodeError::Raft(e.to_string()))
    }
}

/// How long a call to the leader waits before it tries again (no leader
/// known yet, or the one known is gone).
const RETRY_AFTER: Duration = Duration::from_millis(20);

/// What [`RaftHandle::at_leader`] sends a leader elsewhere.
enum Forwarded {
    Propose(Vec<u8>),
    ReadIndex,
}

/// On the leader: the index every read must wait for (the commit index,
/// confirmed by a quorum of heartbeats, with everything up to it applied
/// here); on any other node `NotLeader`, naming the leader if known.
pub(crate) async fn read_index(raft: &Raft<TypeConfig>) -> Result<u64, WriteError> {
    match raft.ensure_linearizable().await {
        Ok(read_log_id) => Ok(read_log_id.map_or(0, |l| l.index)),
        Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward))) => {
            Err(WriteError::NotLeader {
                leader: forward.leader_id,
                leader_addr: forward.leader_node.map(|n| n.addr),
            })
        }
        Err(e) => Err(WriteError::Unavailable(e.to_string())),
    }
}

/// A failed `client_write`, as the caller sees it.
pub(crate) fn write_error(
    error: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>,
) -> WriteError {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => WriteError::NotLeader {
            leader: forward.leader_id,
            leader_addr: forward.leader_node.map(|n| n.addr),
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            ChangeMembershipError::InProgress(e),
        )) => WriteError::MembershipInProgress(e.to_string()),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            WriteError::Membership(e.to_string())
        }
        RaftError::Fatal(e) => WriteError::Unavailable(e.to_string()),
    }
}
