//! Raftline clusters under simulated faults, real node code throughout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod failover;
