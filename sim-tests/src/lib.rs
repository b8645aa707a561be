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
//! Built so far: the network adapters and the cluster harness with crash and
//! restart. Not yet: seeded determinism of openraft's election timer and of
//! tokio's select (see docs/ARCHITECTURE.md), fault schedules, the history
//! checker (issue 5).

pub mod cluster;
pub mod net;

pub use cluster::SimCluster;
pub use net::{incoming, Accepted, SimConnector};
