//! [`SimCluster`]: N turmoil hosts, each running a whole Raftline node on
//! in-memory disks that outlive its crashes.

use crate::net::{incoming, SimConnector};
use raftline::node::{Node, NodeParts, NodeSettings};
use raftline_broker::clock::TokioClock;
use raftline_broker::storage::MemStorage;
use raftline_raft_store::MemDisk;
use std::sync::Arc;
use std::time::Duration;

/// Every node's peer port.
pub const PEER_PORT: u16 = 9000;
/// Every node's client port.
pub const CLIENT_PORT: u16 = 9001;
/// The simulated wall clock's start (ms since the Unix epoch).
const EPOCH_MS: i64 = 1_800_000_000_000;

/// Node `i`'s host name.
pub fn host(i: usize) -> String {
    format!("n{i}")
}

/// A simulated cluster of nodes with both roles.
pub struct SimCluster<'a> {
    /// The simulation (for clients, steps and network faults).
    pub sim: turmoil::Sim<'a>,
    disks: Vec<(MemDisk, MemStorage)>,
    clients: Vec<String>,
}

impl<'a> SimCluster<'a> {
    /// `n` nodes; `seed` drives turmoil's randomness (latency, loss).
    pub fn new(n: usize, seed: u64) -> SimCluster<'a> {
        // Raft's election timeouts follow the seed too (turmoil runs every
        // host on this thread).
        raftline_raft_store::seed_raft_rng(seed);
        let mut builder = turmoil::Builder::new();
        builder
            .simulation_duration(Duration::from_secs(300))
            .rng_seed(seed)
            .min_message_latency(Duration::from_millis(1))
            .max_message_latency(Duration::from_millis(5))
            .tcp_capacity(1 << 16);
        let mut sim = builder.build();
        let mut disks = Vec::new();
        for i in 1..=n {
            let (disk, storage) = (MemDisk::new(), MemStorage::new());
            disks.push((disk.clone(), storage.clone()));
            sim.host(host(i), move || {
                run_node(i, n, disk.clone(), storage.clone())
            });
        }
        SimCluster {
            sim,
            disks,
            clients: Vec::new(),
        }
    }

    /// The client addresses, comma-separated.
    pub fn servers(&self) -> String {
        (1..=self.disks.len())
            .map(|i| format!("{}:{CLIENT_PORT}", host(i)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Crashes node `i`: its tasks stop and its partition-log disk keeps only
    /// what was synced (the Raft disk keeps everything it acknowledged).
    pub fn crash(&mut self, i: usize) {
        self.sim.crash(host(i));
        if let Some((_, storage)) = self.disks.get(i - 1) {
            storage.crash();
        }
    }

    /// Cuts node `i` off from every other host (nodes and clients).
    pub fn isolate(&mut self, i: usize) {
        for other in self.others(i) {
            self.sim.partition(host(i), other);
        }
    }

    /// Heals node `i`'s links.
    pub fn heal(&mut self, i: usize) {
        for other in self.others(i) {
            self.sim.repair(host(i), other);
        }
    }

    fn others(&self, i: usize) -> Vec<String> {
        let mut hosts: Vec<String> = (1..=self.disks.len())
            .filter(|&j| j != i)
            .map(host)
            .collect();
        hosts.extend(self.clients.iter().cloned());
        hosts
    }

    /// Registers a client host (counted among "every other host").
    pub fn client<F>(&mut self, name: &str, client: F)
    where
        F: std::future::Future<Output = turmoil::Result> + 'static,
    {
        self.clients.push(name.to_string());
        self.sim.client(name, client);
    }

    /// Starts node `i` again on its disks.
    pub fn restart(&mut self, i: usize) {
        self.sim.bounce(host(i));
    }
}

async fn run_node(i: usize, n: usize, disk: MemDisk, storage: MemStorage) -> turmoil::Result {
    let settings = NodeSettings {
        node_id: i as u64,
        client_addr: format!("{}:{CLIENT_PORT}", host(i)),
        peer_addr: format!("{}:{PEER_PORT}", host(i)),
        controllers: (1..=n)
            .map(|j| (j as u64, format!("{}:{PEER_PORT}", host(j))))
            .collect(),
        rack: None,
        broker_heartbeat: Duration::from_millis(100),
        broker_session_timeout: Duration::from_secs(1),
        replica_lag_time_max: Duration::from_secs(3),
        log_dir: "/logs".into(),
    };
    // A restart is a new process: a new incarnation (deterministic: the
    // simulated time of the start).
    let incarnation = (i as u64) << 40 | turmoil::sim_elapsed().map_or(0, |d| d.as_millis() as u64);
    let parts = NodeParts {
        disk,
        storage: Arc::new(storage),
        clock: Arc::new(TokioClock::starting_at(EPOCH_MS)),
        connector: Arc::new(SimConnector::default()),
        peer_incoming: incoming(PEER_PORT).await?,
        client_incoming: incoming(CLIENT_PORT).await?,
        incarnation,
    };
    let _node = Node::start(settings, parts).await?;
    std::future::pending::<()>().await;
    Ok(())
}
