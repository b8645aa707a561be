//! # raftline (library)
//!
//! The Rust client for Raftline: [`client::Client`] (bootstrap, metadata,
//! routing to partition leaders with retries), [`client::Producer`] (Kafka's
//! key partitioner, batching) and [`client::Consumer`]. The `raftline` command
//! is built on it.

pub mod client;
