//! Where a Raft node keeps its log entries and its small records (vote, committed
//! index, last purged id, latest snapshot): sled on real nodes, memory in tests
//! and the simulator. Values are opaque bytes; the stores encode them.

mod mem;
mod sled_disk;

pub use mem::MemDisk;
pub use sled_disk::SledDisk;

use crate::error::DiskError;
use std::future::Future;

/// The small records a Raft node keeps beside its log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    /// The last vote (must be durable before it is acted on).
    Vote,
    /// The last known committed log id.
    Committed,
    /// The id of the last purged log entry.
    LastPurged,
    /// The latest snapshot: its metadata and data.
    Snapshot,
}

impl Record {
    /// The record's key on disk.
    pub fn key(self) -> &'static str {
        match self {
            Record::Vote => "vote",
            Record::Committed => "committed",
            Record::LastPurged => "last_purged",
            Record::Snapshot => "snapshot",
        }
    }
}

/// A Raft node's disk. Writes are visible at once and durable after `flush`.
/// Clones share the same disk.
pub trait RaftDisk: Clone + Send + Sync + 'static {
    /// Reads a record.
    fn read(&self, record: Record) -> Result<Option<Vec<u8>>, DiskError>;
    /// Replaces a record.
    fn write(&self, record: Record, value: &[u8]) -> Result<(), DiskError>;
    /// Entries with index in `[from, to)`, in index order.
    fn entries(&self, from: u64, to: u64) -> Result<Vec<Vec<u8>>, DiskError>;
    /// The entry with the highest index.
    fn last_entry(&self) -> Result<Option<Vec<u8>>, DiskError>;
    /// Writes entries by index, replacing any at the same index.
    fn put_entries(&self, entries: Vec<(u64, Vec<u8>)>) -> Result<(), DiskError>;
    /// Removes entries with index in `[from, to)`.
    fn remove_entries(&self, from: u64, to: u64) -> Result<(), DiskError>;
    /// Makes every write so far durable.
    fn flush(&self) -> impl Future<Output = Result<(), DiskError>> + Send;
}
