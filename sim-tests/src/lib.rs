//! # raftline-sim-tests
//!
//! Raftline clusters inside turmoil's simulated network, running the real
//! node ([`raftline::node::Node`]: controller, broker, replicas, gRPC
//! services) on in-memory disks the harness owns, so a simulated crash keeps
//! exactly what was synced.
//!
//! ```text
//! SimCluster::new(n) ─ turmoil hosts "n1".."nN", each Node::start(
//!     MemDisk (Raft), MemStorage (partition logs), TokioClock,
//!     SimConnector (gRPC over turmoil TCP), incoming(peer), incoming(client))
//! crash(i): turmoil crash + the disk loses unsynced data; restart(i): bounce
//! clients: raftline::client over the same SimConnector
//! ```
//!
//! On top: [`faults`] (seeded fault schedules), [`workload`] (client
//! processes recording a [`history`]), [`scenario`] (the driver and a run's
//! [`scenario::Outcome`]), [`checker`] (Jepsen's Kafka anomalies on the
//! history) and [`invariants`] (Kafka's replication invariants after every
//! step). A seed decides everything, so a run replays exactly; see
//! docs/ARCHITECTURE.md, "sim-tests".

#[cfg(not(tokio_unstable))]
compile_error!(
    "sim-tests needs `--cfg tokio_unstable` (set in .cargo/config.toml) so that \
     turmoil can seed every host's tokio runtime; a RUSTFLAGS variable replaces \
     that setting: add `--cfg tokio_unstable` to it or unset it"
);

pub mod checker;
pub mod cluster;
pub mod faults;
pub mod history;
pub mod invariants;
pub mod net;
pub mod scenario;
pub mod workload;

pub use cluster::SimCluster;
pub use net::{incoming, Accepted, SimConnector};
