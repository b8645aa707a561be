//! # raftline (library)
//!
//! The Rust client for Raftline: [`client::Client`] (bootstrap, metadata,
//! routing to partition leaders with retries), [`client::Producer`] (Kafka's
//! key partitioner, batching) and [`client::Consumer`]. The `raftline` command
//! is built on it. [`node::Node`] assembles a whole node from the crates, on
//! resources handed in (real ones for `raftline serve`, simulated ones for
//! the simulator).

pub mod client;
pub mod node;
