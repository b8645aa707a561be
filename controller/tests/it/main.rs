//! Integration tests of the metadata state machine: each command's accepted and
//! rejected cases, placement, the Raft glue, random command sequences checked
//! against the invariants, and three controller nodes replicating through Raft.

// A test harness: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod brokers;
mod elr;
mod lifecycle;
mod machine;
mod partitions;
mod placement;
mod quorum;
mod random_commands;
mod stream;
mod support;
mod topics;
