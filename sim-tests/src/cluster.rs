//! [`SimCluster`]: N turmoil hosts, each running a whole Raftline node on
//! in-memory disks that outlive its crashes, with the faults the simulator
//! injects and probes into every running node's state.

use crate::net::{incoming, SimConnector};
use raftline::node::{Node, NodeParts, NodeSettings};
use raftline_broker::clock::TokioClock;
use raftline_broker::group::CoordinatorConfig;
use raftline_broker::replica::{Partition, ReplicaManager};
use raftline_broker::storage::{MemStorage, Storage};
use raftline_broker::TopicPartition;
use raftline_controller::{ControllerMachine, LeaderRebalance};
use raftline_raft_store::{MemDisk, RaftHandle};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

/// Every node's peer port.
pub const PEER_PORT: u16 = 9000;
/// Every node's client port.
pub const CLIENT_PORT: u16 = 9001;
/// The simulated wall clock's start (ms since the Unix epoch).
pub const EPOCH_MS: i64 = 1_800_000_000_000;
/// Where each node keeps its partition logs (on its in-memory disk).
pub const LOG_DIR: &str = "/logs";

/// Every run in this process holds this shared, [`alone_in_process`]
/// exclusively.
static RUNS: RwLock<()> = RwLock::new(());

thread_local! {
    /// Whether this thread holds [`RUNS`] exclusively (its own runs then
    /// take no share of it).
    static ALONE: Cell<bool> = const { Cell::new(false) };
}

/// Held by a test whose runs must have the process to themselves.
pub struct Alone {
    _runs: RwLockWriteGuard<'static, ()>,
}

impl Drop for Alone {
    fn drop(&mut self) {
        ALONE.set(false);
    }
}

/// Waits until no other test's simulation runs in this process and keeps
/// any from starting until the returned guard is dropped: runs made
/// meanwhile on this thread are exactly replayable (see
/// [`align_task_ids`]). `cargo test` runs a binary's tests on several
/// threads of one process.
pub fn alone_in_process() -> Alone {
    let runs = RUNS.write().unwrap_or_else(|p| p.into_inner());
    ALONE.set(true);
    Alone { _runs: runs }
}

/// Where each run starts tokio's task numbering: past a multiple of this.
const TASK_ID_ALIGN: u64 = 64;

/// Spends tokio's task numbers until the next one is one past a multiple of
/// [`TASK_ID_ALIGN`], as in a fresh process.
///
/// tokio numbers tasks from one counter for the whole process, and a
/// current-thread runtime (each simulated host's) keeps its tasks in four
/// lists chosen by that number. A crash drops the host's runtime, and with
/// it its tasks, list by list; each connection a task drops sends a segment whose
/// delivery draws from the simulation's random numbers. The numbers a run's
/// tasks got would so decide its history after the first crash, and they
/// depend on the tasks spawned before the run (a seed run after another in
/// the long mode went differently than alone). Tests running at the same
/// time in one process spawn tasks between a run's: only a run that has its
/// process to itself ([`alone_in_process`], or one test per process as in
/// `--exact` replays and the long mode) is exactly replayable.
fn align_task_ids() {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().build() else {
        return;
    };
    for _ in 0..TASK_ID_ALIGN {
        let task = runtime.spawn(async {});
        // A number that does not read as one ends the alignment (the
        // determinism meta-test would then fail).
        let id: u64 = task.id().to_string().parse().unwrap_or(0);
        let _ = runtime.block_on(task);
        if id.is_multiple_of(TASK_ID_ALIGN) {
            return;
        }
    }
}

/// Node `i`'s host name.
pub fn host(i: usize) -> String {
    format!("n{i}")
}

/// A look inside one running node (shared with its host while it runs).
#[derive(Clone)]
pub struct Probe {
    /// The broker's replicas.
    pub replicas: Arc<ReplicaManager>,
    /// The controller's Raft node.
    pub controller: RaftHandle<ControllerMachine, MemDisk>,
    /// When this process started (simulated ms): tells restarts apart.
    pub started_ms: u64,
}

/// The running nodes' probes, by node index (1-based).
#[derive(Clone, Default)]
pub struct Probes {
    nodes: Arc<Mutex<BTreeMap<usize, Probe>>>,
    /// Connections the nodes opened to one another (and to themselves).
    dials: Arc<AtomicU64>,
}

impl Probes {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<usize, Probe>> {
        self.nodes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many connections the nodes' channels have opened so far: each
    /// keeps its connections, so this grows with faults and restarts, not
    /// with traffic.
    pub fn dials(&self) -> u64 {
        self.dials.load(Ordering::Relaxed)
    }

    /// The probes of the nodes running now.
    pub fn running(&self) -> BTreeMap<usize, Probe> {
        self.lock().clone()
    }

    /// The replicas of the nodes running now, as (node, its start, its
    /// replicas): what the per-step checks need, without the rest of a probe.
    pub fn running_replicas(&self) -> Vec<(usize, u64, Arc<ReplicaManager>)> {
        self.lock()
            .iter()
            .map(|(&node, p)| (node, p.started_ms, p.replicas.clone()))
            .collect()
    }

    fn set(&self, i: usize, probe: Probe) {
        self.lock().insert(i, probe);
    }

    fn remove(&self, i: usize) {
        self.lock().remove(&i);
    }

    /// The Raft leader as most running nodes see it.
    pub fn raft_leader(&self) -> Option<usize> {
        let mut votes: BTreeMap<u64, usize> = BTreeMap::new();
        for probe in self.lock().values() {
            if let Some(l) = probe.controller.leader() {
                *votes.entry(l).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|&(id, n)| (n, std::cmp::Reverse(id)))
            .map(|(id, _)| id as usize)
    }

    /// The replicas of `topic`/`partition` on the running nodes, by node.
    pub fn replicas_of(&self, topic: &str, partition: u32) -> BTreeMap<usize, Arc<Partition>> {
        let tp = TopicPartition {
            topic: topic.to_string(),
            partition,
        };
        self.lock()
            .iter()
            .filter_map(|(&i, probe)| probe.replicas.partition(&tp).map(|p| (i, p)))
            .collect()
    }

    /// The node leading `topic`/`partition` in the highest leader epoch any
    /// running replica knows.
    pub fn partition_leader(&self, topic: &str, partition: u32) -> Option<usize> {
        self.replicas_of(topic, partition)
            .into_iter()
            .map(|(i, p)| (i, p.progress()))
            .filter(|(_, progress)| progress.leader)
            .max_by_key(|(i, progress)| (progress.leader_epoch, std::cmp::Reverse(*i)))
            .map(|(i, _)| i)
    }
}

/// A simulated cluster of nodes with both roles.
pub struct SimCluster<'a> {
    /// The simulation (for clients, steps and network faults).
    pub sim: turmoil::Sim<'a>,
    disks: Vec<(MemDisk, MemStorage)>,
    clients: Vec<String>,
    probes: Probes,
    /// Held for the run: see [`alone_in_process`].
    _run: Option<RwLockReadGuard<'static, ()>>,
}

/// Between retention passes on every node (the default of `raftline serve`).
pub const RETENTION_CHECK: Duration = Duration::from_secs(30);

/// Between log cleaner passes on every node, unless a test says otherwise:
/// short, so the cleaner compacts the offsets topic while faults run.
const CLEANER_BACKOFF: Duration = Duration::from_secs(1);

/// Between the controller leader's preferred-leader rebalance checks.
const LEADER_REBALANCE_CHECK: Duration = Duration::from_secs(3);

/// How long every partition-log fsync takes on the simulated disks.
const SYNC_LATENCY: Duration = Duration::from_millis(2);

impl<'a> SimCluster<'a> {
    /// `n` nodes; `seed` drives turmoil's randomness (latency, loss, every
    /// host runtime's scheduling) and Raft's election timeouts.
    pub fn new(n: usize, seed: u64) -> SimCluster<'a> {
        Self::with_cleaner_backoff(n, seed, CLEANER_BACKOFF)
    }

    /// [`new`](Self::new) with `cleaner_backoff` between the log cleaner's
    /// passes on every node.
    pub fn with_cleaner_backoff(n: usize, seed: u64, cleaner_backoff: Duration) -> SimCluster<'a> {
        // Another test's run may go on in this process, unless a caller
        // of `alone_in_process` holds it.
        let run = match ALONE.get() {
            true => None,
            false => Some(RUNS.read().unwrap_or_else(|p| p.into_inner())),
        };
        align_task_ids();
        // Raft's election timeouts follow the seed too (turmoil runs every
        // host on this thread).
        raftline_raft_store::seed_raft_rng(seed);
        let mut builder = turmoil::Builder::new();
        builder
            .simulation_duration(Duration::from_secs(600))
            .rng_seed(seed)
            .min_message_latency(Duration::from_millis(1))
            .max_message_latency(Duration::from_millis(5))
            .tcp_capacity(1 << 16);
        let mut sim = builder.build();
        let mut disks = Vec::new();
        let probes = Probes::default();
        for i in 1..=n {
            let (disk, storage) = (MemDisk::new(), MemStorage::new());
            // A disk's fsync takes time: followers fetch a leader's records
            // before the leader's own fsync ends, and a power loss can land
            // in between.
            storage.set_sync_latency(SYNC_LATENCY);
            disks.push((disk.clone(), storage.clone()));
            let probes = probes.clone();
            sim.host(host(i), move || {
                let (disk, storage, probes) = (disk.clone(), storage.clone(), probes.clone());
                run_node(i, n, disk, storage, probes, cleaner_backoff)
            });
        }
        SimCluster {
            sim,
            disks,
            clients: Vec::new(),
            probes,
            _run: run,
        }
    }

    /// How many nodes.
    pub fn size(&self) -> usize {
        self.disks.len()
    }

    /// Every node's partition-log disk, node `i` at `i - 1`.
    pub fn log_disks(&self) -> Vec<MemStorage> {
        self.disks.iter().map(|(_, s)| s.clone()).collect()
    }

    /// The running nodes' probes.
    pub fn probes(&self) -> Probes {
        self.probes.clone()
    }

    /// The client addresses, comma-separated.
    pub fn servers(&self) -> String {
        (1..=self.disks.len())
            .map(|i| format!("{}:{CLIENT_PORT}", host(i)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Crashes node `i`: its tasks stop and its partition-log disk keeps what
    /// was synced plus, chosen by `torn`, a prefix of what was pending (the
    /// Raft disk keeps everything it acknowledged).
    pub fn crash(&mut self, i: usize, torn: u64) {
        self.probes.remove(i);
        self.sim.crash(host(i));
        if let Some((_, storage)) = self.disks.get(i - 1) {
            storage.crash_torn(torn);
        }
    }

    /// Starts node `i` again on its disks.
    pub fn restart(&mut self, i: usize) {
        self.probes.remove(i);
        self.sim.bounce(host(i));
    }

    /// Whether node `i` runs.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.sim.is_host_running(host(i))
    }

    /// Cuts the links between nodes `a` and `b` (clients still reach both,
    /// as in Jepsen's partitions: the dangerous case, a leader clients can
    /// still write to).
    pub fn cut(&mut self, a: usize, b: usize) {
        self.sim.partition(host(a), host(b));
    }

    /// Drops everything node `from` sends to the other nodes; the other way works.
    pub fn one_way(&mut self, from: usize) {
        for j in self.nodes_but(from) {
            self.sim.partition_oneway(host(from), host(j));
        }
    }

    /// Holds every message to and from node `i` (a paused process): nothing
    /// is lost, all of it arrives at [`heal_all`](Self::heal_all).
    pub fn hold(&mut self, i: usize) {
        for other in self.others(i) {
            self.sim.hold(host(i), other);
        }
    }

    /// Every link drops a message with probability `rate` (a dropped TCP
    /// segment stalls its connection until a deadline or keepalive ends it).
    pub fn set_loss(&mut self, rate: f64) {
        self.sim.set_fail_rate(rate);
    }

    /// Message latency between 1 ms and `max`.
    pub fn set_max_latency(&mut self, max: Duration) {
        self.sim.set_max_message_latency(max);
    }

    /// Heals every link between every pair of hosts (held messages flow).
    pub fn heal_all(&mut self) {
        let mut hosts: Vec<String> = (1..=self.size()).map(host).collect();
        hosts.extend(self.clients.iter().cloned());
        for (k, a) in hosts.iter().enumerate() {
            for b in &hosts[k + 1..] {
                self.sim.repair(a.as_str(), b.as_str());
                self.sim.release(a.as_str(), b.as_str());
            }
        }
        self.sim.set_fail_rate(0.0);
        self.sim.set_max_message_latency(Duration::from_millis(5));
    }

    /// How many segment files node `i`'s disk holds in partition directory
    /// `dir` (`topic-partition`), deleted ones awaiting their unlink aside.
    pub fn segment_files(&self, i: usize, dir: &str) -> usize {
        self.segments(i, dir).len()
    }

    /// The bytes in the segments of partition `dir` on node `i`'s disk.
    pub fn segment_bytes(&self, i: usize, dir: &str) -> usize {
        self.segments(i, dir).iter().map(|(_, len)| len).sum()
    }

    /// The segment files of partition `dir` on node `i`'s disk, with their
    /// lengths.
    fn segments(&self, i: usize, dir: &str) -> Vec<(PathBuf, usize)> {
        let Some((_, storage)) = self.disks.get(i - 1) else {
            return Vec::new();
        };
        let dir = Path::new(LOG_DIR).join(dir);
        let files = storage.list_dir(&dir).unwrap_or_default();
        files
            .iter()
            .filter(|f| f.ends_with(".log"))
            .map(|f| {
                let path = dir.join(f);
                let len = storage.contents(&path).map_or(0, |c| c.len());
                (path, len)
            })
            .collect()
    }

    /// Flips one byte of one segment of the partitions `dirs` (their
    /// directory names, `topic-partition`) on node `i`'s disk, both its live
    /// and synced copies, chosen by `pick`; the file and position.
    pub fn corrupt(&mut self, i: usize, dirs: &[String], pick: u64) -> Option<(PathBuf, usize)> {
        let mut segments: Vec<(PathBuf, usize)> = dirs
            .iter()
            .flat_map(|dir| self.segments(i, dir))
            .filter(|(_, len)| *len > 0)
            .collect();
        let (_, storage) = self.disks.get(i - 1)?;
        if segments.is_empty() {
            return None;
        }
        let (path, len) = segments.swap_remove((pick % segments.len() as u64) as usize);
        let pos = ((pick >> 16) % len as u64) as usize;
        storage.flip_byte(&path, pos).ok()?;
        Some((path, pos))
    }

    fn nodes_but(&self, i: usize) -> Vec<usize> {
        (1..=self.size()).filter(|&j| j != i).collect()
    }

    fn others(&self, i: usize) -> Vec<String> {
        let mut hosts: Vec<String> = self.nodes_but(i).into_iter().map(host).collect();
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
}

async fn run_node(
    i: usize,
    n: usize,
    disk: MemDisk,
    storage: MemStorage,
    probes: Probes,
    cleaner_backoff: Duration,
) -> turmoil::Result {
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
        log_dir: LOG_DIR.into(),
        // Small offsets segments, so the cleaner compacts the offsets topic
        // while the faults run and coordinators load compacted partitions.
        groups: CoordinatorConfig {
            offsets_segment_bytes: 1024,
            ..CoordinatorConfig::default()
        },
        log_cleaner_backoff: cleaner_backoff,
        log_retention_check: RETENTION_CHECK,
        // Often, so the faults' restarted brokers take their leadership back
        // while the workload runs: each such move is a clean election the
        // checker watches.
        leader_rebalance: Some(LeaderRebalance {
            interval: LEADER_REBALANCE_CHECK,
            ..LeaderRebalance::default()
        }),
        log_cached_tail: Some(raftline_broker::log::DEFAULT_CACHED_TAIL),
        // 4 MiB per leader, as the simulation has always run: a larger tail
        // would serve from memory what its corruption faults damage on disk.
        log_leader_tail: None,
        kafka_addr: None,
    };
    // A restart is a new process: a new incarnation (deterministic: the
    // simulated time of the start).
    let started_ms = turmoil::sim_elapsed().map_or(0, |d| d.as_millis() as u64);
    let incarnation = (i as u64) << 40 | started_ms;
    let parts = NodeParts {
        disk,
        storage: Arc::new(storage),
        clock: Arc::new(TokioClock::starting_at(EPOCH_MS)),
        connector: Arc::new(SimConnector::counting(probes.dials.clone())),
        peer_incoming: incoming(PEER_PORT).await?,
        client_incoming: incoming(CLIENT_PORT).await?,
        incarnation,
    };
    let node = Node::start(settings, parts).await?;
    probes.set(
        i,
        Probe {
            replicas: node.replicas().clone(),
            controller: node.controller().clone(),
            started_ms,
        },
    );
    std::future::pending::<()>().await;
    Ok(())
}
