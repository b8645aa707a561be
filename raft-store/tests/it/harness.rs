//! An in-process cluster of Raft nodes on loopback TCP for tests and the
//! failover example: start, kill, restart, write through the leader. Every wait
//! polls with a deadline.

#![allow(dead_code)]

use crate::kv::Kv;
use raftline_raft_store::network::TcpConnector;
use raftline_raft_store::{MemDisk, NodeConfig, NodeId, RaftNode, WriteError};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

type Node = RaftNode<Kv, MemDisk>;

/// Nodes by id, each with the disk and address it keeps across restarts.
pub struct Cluster {
    pub nodes: BTreeMap<NodeId, Node>,
    pub disks: BTreeMap<NodeId, MemDisk>,
    pub addrs: BTreeMap<NodeId, String>,
    pub voters: BTreeMap<NodeId, String>,
    pub tune: fn(&mut NodeConfig),
}

async fn listen(addr: &str) -> TcpListener {
    TcpListener::bind(addr).await.unwrap()
}

/// Polls `check` every 20 ms until it holds or `within` passes.
pub async fn eventually<T>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Cluster {
    /// Starts `n` voters.
    pub async fn start(n: u64, tune: fn(&mut NodeConfig)) -> Cluster {
        let mut listeners = BTreeMap::new();
        let mut addrs = BTreeMap::new();
        for id in 1..=n {
            let listener = listen("127.0.0.1:0").await;
            addrs.insert(id, listener.local_addr().unwrap().to_string());
            listeners.insert(id, listener);
        }
        let mut cluster = Cluster {
            nodes: BTreeMap::new(),
            disks: BTreeMap::new(),
            voters: addrs.clone(),
            addrs,
            tune,
        };
        for (id, listener) in listeners {
            cluster.disks.insert(id, MemDisk::new());
            cluster.run(id, listener).await;
        }
        cluster
    }

    async fn run(&mut self, id: NodeId, listener: TcpListener) {
        let mut config = NodeConfig::new(id, self.voters.clone());
        (self.tune)(&mut config);
        let disk = self.disks[&id].clone();
        let incoming = TcpListenerStream::new(listener);
        let node = RaftNode::start(
            config,
            Kv::default(),
            disk,
            Arc::new(TcpConnector::default()),
            incoming,
        )
        .await
        .unwrap();
        self.nodes.insert(id, node);
    }

    /// Starts a node that is not one of the first voters (it waits to be added).
    pub async fn start_extra(&mut self, id: NodeId) {
        let listener = listen("127.0.0.1:0").await;
        self.addrs
            .insert(id, listener.local_addr().unwrap().to_string());
        self.disks.insert(id, MemDisk::new());
        self.run(id, listener).await;
    }

    /// Stops a node (its disk stays).
    pub async fn kill(&mut self, id: NodeId) {
        let node = self.nodes.remove(&id).unwrap();
        node.shutdown().await.unwrap();
    }

    /// Starts a stopped node again on its disk and address.
    pub async fn restart(&mut self, id: NodeId) {
        let addr = self.addrs[&id].clone();
        let listener = listen(&addr).await;
        self.run(id, listener).await;
    }

    /// The running node that is leader (by its own metrics).
    pub async fn leader(&self) -> NodeId {
        eventually("a leader", Duration::from_secs(10), || {
            self.nodes
                .iter()
                .find(|(_, n)| n.metrics().borrow().state == openraft::ServerState::Leader)
                .map(|(&id, _)| id)
        })
        .await
    }

    /// Writes through whichever node leads, following NotLeader hints, until the
    /// write commits or `within` passes.
    pub async fn write(&self, command: Vec<u8>, within: Duration) -> u64 {
        let deadline = tokio::time::Instant::now() + within;
        let mut target = self.nodes.keys().next().copied().unwrap();
        loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "write did not commit in {within:?}"
            );
            let Some(node) = self.nodes.get(&target) else {
                target = *self.nodes.keys().next().unwrap();
                continue;
            };
            match node.write(command.clone()).await {
                Ok((index, _)) => return index,
                Err(WriteError::NotLeader {
                    leader: Some(leader),
                    ..
                }) if self.nodes.contains_key(&leader) => {
                    target = leader;
                }
                Err(_) => {
                    // No leader yet (election running): try the next node shortly.
                    let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
                    let pos = ids.iter().position(|&id| id == target).unwrap_or(0);
                    target = ids[(pos + 1) % ids.len()];
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    /// Waits until node `id` has applied every key in `keys`.
    pub async fn converged(&self, id: NodeId, keys: usize) {
        let node = &self.nodes[&id];
        eventually(
            &format!("node {id} to hold {keys} keys"),
            Duration::from_secs(10),
            || (node.machine().with_machine(|kv| kv.map.len()) >= keys).then_some(()),
        )
        .await;
    }

    pub async fn stop_all(self) {
        for (_, node) in self.nodes {
            node.shutdown().await.unwrap();
        }
    }
}
