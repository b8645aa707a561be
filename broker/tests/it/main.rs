//! Integration tests of the partition log engine, over the in-memory disk (with
//! power-loss and fault injection) and over real files.

// A test harness: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod basics;
mod compaction;
mod faults;
mod model;
mod real_files;
mod recovery;
mod replication;
mod retention;
mod support;
mod writer;
