//! Fault schedules: which faults happen when, all drawn from the seed.
//!
//! A schedule is a list of [`Episode`]s inside the fault window; episodes may
//! overlap (faults combine) and the same kind may repeat. At the heal time
//! every fault ends: links repaired, held messages released, loss and delay
//! off, crashed nodes restarted.

use rand::rngs::StdRng;
use rand::Rng;

/// When the first fault may start (simulated ms): the cluster has formed and
/// the workload is running.
pub const FAULT_START_MS: u64 = 5_000;
/// When the last fault may start.
pub const FAULT_END_MS: u64 = 35_000;
/// When every fault is healed.
pub const HEAL_MS: u64 = 42_000;

/// One kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// Cut a partition's leader off from the other nodes (clients still
    /// reach it): the 2013 Jepsen case when its ISR has shrunk to itself.
    IsolatePartitionLeader,
    /// Cut a partition's leader off from its followers only (it still
    /// reaches the other nodes, so its ISR can shrink to itself).
    IsolateFollowers,
    /// Cut the Raft (controller) leader off from the other nodes.
    IsolateRaftLeader,
    /// Split the nodes into a minority and a majority (2/1 of 3, 3/2 of 5).
    Split,
    /// One node's messages to the other nodes are dropped; it hears them.
    OneWay,
    /// Every link drops messages now and then.
    Loss,
    /// Messages take up to hundreds of milliseconds.
    Delay,
    /// A random node crashes (losing unsynced writes, maybe torn) and restarts.
    Crash,
    /// A partition's leader crashes and restarts.
    CrashPartitionLeader,
    /// A follower of a partition crashes and restarts.
    CrashFollower,
    /// Every node crashes at once, then all restart.
    CrashAll,
    /// A node pauses: nothing it sends or is sent arrives until it resumes.
    Pause,
    /// A byte flips on one node's disk (a minority replica), and the node
    /// crashes and restarts on that disk.
    Corrupt,
}

impl FaultKind {
    /// Every kind, in a fixed order.
    pub const ALL: [FaultKind; 13] = [
        FaultKind::IsolatePartitionLeader,
        FaultKind::IsolateFollowers,
        FaultKind::IsolateRaftLeader,
        FaultKind::Split,
        FaultKind::OneWay,
        FaultKind::Loss,
        FaultKind::Delay,
        FaultKind::Crash,
        FaultKind::CrashPartitionLeader,
        FaultKind::CrashFollower,
        FaultKind::CrashAll,
        FaultKind::Pause,
        FaultKind::Corrupt,
    ];
}

/// One fault: its kind, when it starts, how long it lasts, and a number the
/// driver uses for its choices (which node, which partition, which byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Episode {
    /// Simulated ms at which it starts.
    pub start_ms: u64,
    /// How long it lasts (it ends at the heal time at the latest).
    pub duration_ms: u64,
    /// What it is.
    pub kind: FaultKind,
    /// Random bits for the driver's choices.
    pub pick: u64,
}

impl Episode {
    /// When it ends.
    pub fn end_ms(&self) -> u64 {
        (self.start_ms + self.duration_ms).min(HEAL_MS)
    }
}

/// The faults of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// By start time.
    pub episodes: Vec<Episode>,
}

impl Schedule {
    /// No faults.
    pub fn none() -> Schedule {
        Schedule {
            episodes: Vec::new(),
        }
    }

    /// Two to five faults drawn from `kinds`, the first always `kinds[0]`
    /// (so a seed set can cover every kind), at random times in the fault
    /// window, lasting 0.5 to 8 s each.
    pub fn random(rng: &mut StdRng, kinds: &[FaultKind]) -> Schedule {
        let count = rng.random_range(2..=5);
        let mut episodes: Vec<Episode> = (0..count)
            .map(|k| {
                let kind = if k == 0 || kinds.len() == 1 {
                    kinds[0]
                } else {
                    kinds[rng.random_range(0..kinds.len())]
                };
                Episode {
                    start_ms: rng.random_range(FAULT_START_MS..FAULT_END_MS),
                    duration_ms: rng.random_range(500..8_000),
                    kind,
                    pick: rng.random(),
                }
            })
            .collect();
        episodes.sort_by_key(|e| (e.start_ms, e.kind));
        Schedule { episodes }
    }

    /// One episode of `kind` from `start_ms` for `duration_ms`.
    pub fn single(kind: FaultKind, start_ms: u64, duration_ms: u64, pick: u64) -> Schedule {
        Schedule {
            episodes: vec![Episode {
                start_ms,
                duration_ms,
                kind,
                pick,
            }],
        }
    }

    /// The kinds it uses.
    pub fn kinds(&self) -> Vec<FaultKind> {
        let mut kinds: Vec<FaultKind> = self.episodes.iter().map(|e| e.kind).collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }
}
