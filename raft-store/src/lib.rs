//! # raftline-raft-store
//!
//! Raft for Raftline's metadata quorum, on openraft 0.9 (storage-v2): the type
//! configuration, the log and state-machine stores over a [`RaftDisk`] (sled for
//! real nodes, memory for tests and the simulator). It replicates opaque byte
//! commands and knows nothing of topics: the controller plugs in through one small
//! trait, [`StateMachine`] (apply, snapshot, restore).
//!
//! ```text
//! client_write(Request(bytes)) ─> openraft ─> LogStore<D>::append ─> RaftDisk (flushed before ack)
//!                                    │
//!                                    └─ committed ─> StateMachineStore<M, D>::apply ─> M::apply(index, bytes)
//!                                                    build_snapshot ─> M::snapshot ─> RaftDisk
//! ```
//!
//! Main types: [`TypeConfig`], [`LogStore`], [`StateMachineStore`], the
//! [`RaftDisk`] trait with [`SledDisk`] and [`MemDisk`].

// openraft's API returns its own large `StorageError`; boxing it is not ours to do.
#![allow(clippy::result_large_err)]

mod disk;
mod error;
pub mod local_cluster;
mod log_store;
pub mod network;
mod node;
mod runtime;
mod sm_store;
mod standby;
mod types;

pub use disk::{MemDisk, RaftDisk, SledDisk};
pub use error::{DiskError, RestoreError};
pub use log_store::LogStore;
pub use node::{NodeConfig, NodeError, RaftHandle, RaftNode, WriteError};
pub use runtime::{seed_raft_rng, SeededRuntime};
pub use sm_store::{StateMachine, StateMachineStore};
pub use types::{NodeId, Request, Response, TypeConfig};
