//! raft-store's stores against openraft's own storage test suite, and restart
//! behaviour on both disks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;
mod kv;
mod restart;
mod suite;
