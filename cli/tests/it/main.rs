//! End-to-end tests of the `raftline` binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod controller_link;
mod dump_log;
mod serve;
