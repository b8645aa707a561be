//! End-to-end tests of the `raftline` binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bench;
mod compaction;
mod controller_link;
mod data;
mod dump_log;
mod groups;
mod kafka;
mod procs;
mod quickstart;
mod serve;
