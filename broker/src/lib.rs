//! # raftline-broker
//!
//! The broker side of Raftline. Today it holds the partition log engine: the
//! segment files every partition replica sits on. Replica state (leader and
//! follower, high watermark), the replica fetcher, produce and fetch, and the group
//! coordinator will build on it (issues 4 and 6). The broker never decides
//! leadership on its own and never imports the controller crate.
//!
//! ```text
//! produce ──> LogHandle ──mpsc──> writer task ──> Log ──> Segment (.log/.index/.timeindex)
//!                                  (group commit:         │
//!                                   one fsync per batch   └──> dyn Storage
//!                                   of queued appends)         (FsStorage | MemStorage)
//! fetch   ──> Log::read(from, max_bytes, high watermark) ── whole, CRC-checked batches
//! ```
//!
//! Main types: [`log::Log`] (one partition's log: append, read, truncate, epochs,
//! retention, recovery), [`log::LogHandle`] (the cloneable handle to its writer
//! task), [`storage::Storage`] (the narrow file interface, real or simulated).

pub mod api;
pub mod clock;
pub mod controller_link;
pub mod error;
pub mod group;
pub mod kafka;
pub mod lanes;
pub mod log;
pub mod metadata;
pub mod position;
pub mod records;
pub mod replica;
pub mod storage;

pub use error::{LogError, LogResult};
pub use position::{LeaderEpoch, Offset, TopicPartition};
