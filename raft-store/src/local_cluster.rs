//! A cluster of [`RaftNode`]s in one process on loopback TCP, each on an
//! in-memory disk it keeps across restarts: for tests, examples and the failover
//! benchmark. Nodes can be stopped and restarted; writes go through whichever node
//! leads. Every wait polls with a deadline.

use crate::disk::MemDisk;
use crate::network::TcpConnector;
use crate::node::{NodeConfig, NodeError, RaftHandle, RaftNode, WriteError};
use crate::sm_store::StateMachine;
use crate::types::NodeId;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tonic::service::RoutesBuilder;

/// Why a local cluster operation failed.
#[derive(Debug, Error)]
pub enum LocalClusterError {
    /// Binding a loopback port failed.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
    /// A node failed to start or stop.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// No node with that id is running (or known).
    #[error("no such node: {0}")]
    UnknownNode(NodeId),
    /// A condition did not hold in time.
    #[error("timed out after {within:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        within: Duration,
    },
}

/// Polls `check` every 20 ms until it returns `Some` or `within` passes.
pub async fn wait_until<T>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T, LocalClusterError> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check() {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(LocalClusterError::Timeout {
                what: what.to_string(),
                within,
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

type MakeMachine<M> = Arc<dyn Fn() -> M + Send + Sync>;
type Tune = Arc<dyn Fn(&mut NodeConfig) + Send + Sync>;
type Services<M> = Arc<dyn Fn(&RaftHandle<M, MemDisk>, &mut RoutesBuilder) + Send + Sync>;

/// Nodes by id, each with the disk and address it keeps across restarts.
pub struct LocalCluster<M: StateMachine> {
    nodes: BTreeMap<NodeId, RaftNode<M, MemDisk>>,
    disks: BTreeMap<NodeId, MemDisk>,
    addrs: BTreeMap<NodeId, String>,
    voters: BTreeMap<NodeId, String>,
    make_machine: MakeMachine<M>,
    tune: Tune,
    services: Services<M>,
}

async fn bind(addr: &str) -> Result<TcpListener, LocalClusterError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| LocalClusterError::Bind {
            addr: addr.to_string(),
            source,
        })
}

fn local_addr(listener: &TcpListener) -> Result<String, LocalClusterError> {
    listener
        .local_addr()
        .map(|a| a.to_string())
        .map_err(|source| LocalClusterError::Bind {
            addr: "127.0.0.1:0".into(),
            source,
        })
}

impl<M: StateMachine> LocalCluster<M> {
    /// Starts voters `1..=n`, each with a machine from `make_machine` and the
    /// default [`NodeConfig`] changed by `tune`.
    pub async fn start(
        n: u64,
        make_machine: impl Fn() -> M + Send + Sync + 'static,
        tune: impl Fn(&mut NodeConfig) + Send + Sync + 'static,
    ) -> Result<Self, LocalClusterError> {
        Self::start_with_services(n, make_machine, tune, |_, _| {}).await
    }

    /// As [`start`](Self::start), each node's peer port also serving what
    /// `services` adds for its handle.
    pub async fn start_with_services(
        n: u64,
        make_machine: impl Fn() -> M + Send + Sync + 'static,
        tune: impl Fn(&mut NodeConfig) + Send + Sync + 'static,
        services: impl Fn(&RaftHandle<M, MemDisk>, &mut RoutesBuilder) + Send + Sync + 'static,
    ) -> Result<Self, LocalClusterError> {
        let mut listeners = BTreeMap::new();
        let mut addrs = BTreeMap::new();
        for id in 1..=n {
            let listener = bind("127.0.0.1:0").await?;
            addrs.insert(id, local_addr(&listener)?);
            listeners.insert(id, listener);
        }
        let mut cluster = LocalCluster {
            nodes: BTreeMap::new(),
            disks: BTreeMap::new(),
            voters: addrs.clone(),
            addrs,
            make_machine: Arc::new(make_machine),
            tune: Arc::new(tune),
            services: Arc::new(services),
        };
        for (id, listener) in listeners {
            cluster.disks.insert(id, MemDisk::new());
            cluster.run(id, listener).await?;
        }
        Ok(cluster)
    }

    async fn run(&mut self, id: NodeId, listener: TcpListener) -> Result<(), LocalClusterError> {
        let mut config = NodeConfig::new(id, self.voters.clone());
        (self.tune)(&mut config);
        let disk = self
            .disks
            .get(&id)
            .cloned()
            .ok_or(LocalClusterError::UnknownNode(id))?;
        let incoming = raftline_proto::transport::accept_no_delay(listener);
        let connector = Arc::new(TcpConnector::default());
        let node = RaftNode::start(
            config,
            (self.make_machine)(),
            disk,
            connector,
            incoming,
            |handle, routes| (self.services)(handle, routes),
        )
        .await?;
        self.nodes.insert(id, node);
        Ok(())
    }

    /// Starts node `id`, not one of the first voters: it waits to be added.
    pub async fn start_extra(&mut self, id: NodeId) -> Result<(), LocalClusterError> {
        let listener = bind("127.0.0.1:0").await?;
        self.addrs.insert(id, local_addr(&listener)?);
        self.disks.insert(id, MemDisk::new());
        self.run(id, listener).await
    }

    /// Stops node `id`; its disk and address stay for [`restart`](Self::restart).
    pub async fn kill(&mut self, id: NodeId) -> Result<(), LocalClusterError> {
        let node = self
            .nodes
            .remove(&id)
            .ok_or(LocalClusterError::UnknownNode(id))?;
        node.shutdown().await?;
        Ok(())
    }

    /// Starts a stopped node again on its disk and address.
    pub async fn restart(&mut self, id: NodeId) -> Result<(), LocalClusterError> {
        let addr = self
            .addrs
            .get(&id)
            .cloned()
            .ok_or(LocalClusterError::UnknownNode(id))?;
        let listener = bind(&addr).await?;
        self.run(id, listener).await
    }

    /// The running nodes.
    pub fn nodes(&self) -> &BTreeMap<NodeId, RaftNode<M, MemDisk>> {
        &self.nodes
    }

    /// A running node's handle.
    pub fn node(&self, id: NodeId) -> Result<&RaftHandle<M, MemDisk>, LocalClusterError> {
        self.nodes
            .get(&id)
            .map(RaftNode::handle)
            .ok_or(LocalClusterError::UnknownNode(id))
    }

    /// A node's peer address.
    pub fn addr(&self, id: NodeId) -> Result<String, LocalClusterError> {
        self.addrs
            .get(&id)
            .cloned()
            .ok_or(LocalClusterError::UnknownNode(id))
    }

    /// The running node that leads, by its own metrics, in the newest term
    /// (a deposed leader may not know yet). For reads that must be current, use
    /// [`read`](Self::read).
    pub async fn leader(&self) -> Result<NodeId, LocalClusterError> {
        wait_until("a leader", Duration::from_secs(10), || {
            self.nodes
                .iter()
                .filter_map(|(&id, n)| {
                    let metrics = n.handle().metrics().borrow().clone();
                    (metrics.state == openraft::ServerState::Leader)
                        .then_some((metrics.current_term, id))
                })
                .max()
                .map(|(_, id)| id)
        })
        .await
    }

    /// Writes `command` through whichever node leads, following `NotLeader`
    /// hints and retrying while an election runs; returns the log index and
    /// the answer once committed.
    pub async fn write(
        &self,
        command: Vec<u8>,
        within: Duration,
    ) -> Result<(u64, Vec<u8>), LocalClusterError> {
        self.through_leader("a write to commit", within, |node| {
            let command = command.clone();
            async move { node.write(command).await }
        })
        .await
    }

    /// Adds node `id` as a voter through whichever node leads.
    pub async fn add_voter(&self, id: NodeId, within: Duration) -> Result<(), LocalClusterError> {
        let addr = self.addr(id)?;
        self.through_leader("a voter to be added", within, |node| {
            let addr = addr.clone();
            async move { node.add_voter(id, addr).await }
        })
        .await
    }

    /// Removes voter `id` through whichever node leads.
    pub async fn remove_voter(
        &self,
        id: NodeId,
        within: Duration,
    ) -> Result<(), LocalClusterError> {
        self.through_leader("a voter to be removed", within, |node| async move {
            node.remove_voter(id).await
        })
        .await
    }

    /// The voters as the leader has them, once they equal `expected`.
    pub async fn voters_become(
        &self,
        expected: &[NodeId],
        within: Duration,
    ) -> Result<(), LocalClusterError> {
        let leader = self.leader().await?;
        let node = self.node(leader)?;
        wait_until(&format!("voters {expected:?}"), within, || {
            let voters: Vec<NodeId> = node
                .metrics()
                .borrow()
                .membership_config
                .membership()
                .voter_ids()
                .collect();
            (voters == expected).then_some(())
        })
        .await
    }

    /// Reads the state machine linearizably through whichever node leads.
    pub async fn read<T>(
        &self,
        read: impl Fn(&M) -> T,
        within: Duration,
    ) -> Result<T, LocalClusterError> {
        let read = &read;
        self.through_leader("a linearizable read", within, |node| async move {
            node.read_linearizable(read).await
        })
        .await
    }

    /// Runs `call` against the node that leads, following `NotLeader` hints and
    /// retrying while an election runs, until it succeeds or `within` passes.
    async fn through_leader<'a, T, F, Fut>(
        &'a self,
        what: &str,
        within: Duration,
        call: F,
    ) -> Result<T, LocalClusterError>
    where
        F: Fn(&'a RaftHandle<M, MemDisk>) -> Fut,
        Fut: std::future::Future<Output = Result<T, WriteError>>,
    {
        let deadline = Instant::now() + within;
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        let mut turn = 0;
        let mut target = ids
            .first()
            .copied()
            .ok_or(LocalClusterError::UnknownNode(0))?;
        while Instant::now() < deadline {
            match call(self.node(target)?).await {
                Ok(done) => return Ok(done),
                Err(WriteError::NotLeader {
                    leader: Some(leader),
                    ..
                }) if self.nodes.contains_key(&leader) => {
                    target = leader;
                }
                Err(_) => {
                    // No live leader known yet: try the next node shortly.
                    turn += 1;
                    target = ids[turn % ids.len()];
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        Err(LocalClusterError::Timeout {
            what: what.to_string(),
            within,
        })
    }

    /// Stops every node.
    pub async fn stop_all(self) -> Result<(), LocalClusterError> {
        for (_, node) in self.nodes {
            node.shutdown().await?;
        }
        Ok(())
    }
}
