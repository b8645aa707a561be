//! The broker's typed errors.

use crate::log::BatchError;
use crate::position::{LeaderEpoch, Offset};
use std::io;
use std::path::PathBuf;
use thiserror::Error;

/// Why a partition log refused or failed an operation.
///
/// Expected outcomes of bad input (`CorruptRecord`, `OffsetOutOfRange`,
/// `RecordTooLarge`, `NonContiguousAppend`, `FencedLeaderEpoch`) leave the log
/// unchanged. `DiskFull` leaves it unchanged and usable. `Io` during a write that
/// could not be undone, and any failed fsync, put the log into the failed state:
/// every later call returns `Failed`, because the log can no longer tell what is
/// on disk.
#[derive(Debug, Error)]
pub enum LogError {
    /// A batch failed its structure or CRC checks (on append, or found on disk).
    #[error("corrupt record batch at offset {offset:?}: {reason}")]
    CorruptRecord {
        /// Where the batch claimed to start, if known.
        offset: Option<Offset>,
        /// What was wrong with it.
        reason: BatchError,
    },
    /// The offset is below the log start or above the log end.
    #[error("offset {offset} is out of range: the log holds [{log_start}, {log_end})")]
    OffsetOutOfRange {
        /// The offset asked for.
        offset: Offset,
        /// The first offset the log holds.
        log_start: Offset,
        /// The offset the next record will get.
        log_end: Offset,
    },
    /// A batch is well-formed but not acceptable here (Kafka's INVALID_RECORD):
    /// more than one batch in a produce request, a record count that does not
    /// match the offset span, an append spanning more than 2^32 offsets.
    #[error("invalid record batch: {reason}")]
    InvalidRecord {
        /// What is wrong with it.
        reason: String,
    },
    /// A batch is larger than the log accepts (`max.message.bytes`).
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    RecordTooLarge {
        /// The batch's size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A follower's batch does not start at the log end (a gap or an overlap).
    #[error("batch at offset {got} does not follow the log end {expected}")]
    NonContiguousAppend {
        /// The log end offset.
        expected: Offset,
        /// The batch's base offset.
        got: Offset,
    },
    /// An append carried a leader epoch older than one the log already holds.
    #[error("leader epoch {epoch} is older than the log's latest epoch {latest}")]
    FencedLeaderEpoch {
        /// The epoch given.
        epoch: LeaderEpoch,
        /// The newest epoch in the log's epoch cache.
        latest: LeaderEpoch,
    },
    /// The disk is full; the append was undone and the log is still usable.
    #[error("disk full while appending to {path}; free space and retry")]
    DiskFull {
        /// The segment being written.
        path: PathBuf,
    },
    /// A configuration value is out of range.
    #[error("invalid log config: {0}")]
    InvalidConfig(String),
    /// A file of the log could not be read or written.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// An earlier I/O failure (a failed fsync, a write that could not be undone)
    /// made the log's durable state unknown; it serves nothing until reopened.
    #[error("log {dir} has failed and must be reopened: {reason}")]
    Failed {
        /// The partition's directory.
        dir: PathBuf,
        /// The failure that stopped it.
        reason: String,
    },
    /// An idempotent producer's batch does not follow its last one (a batch
    /// was lost in between); nothing was appended.
    #[error("producer {producer_id}: sequence {got} does not follow the last batch (expected {expected})")]
    OutOfOrderSequence {
        /// The producer.
        producer_id: i64,
        /// The sequence the next batch must start with.
        expected: i32,
        /// The batch's.
        got: i32,
    },
    /// A batch from an older epoch of the producer (a zombie instance).
    #[error("producer {producer_id}: epoch {epoch} is older than its current epoch {current}")]
    InvalidProducerEpoch {
        /// The producer.
        producer_id: i64,
        /// The batch's epoch.
        epoch: i16,
        /// The newest epoch seen.
        current: i16,
    },
    /// The log's writer task has stopped.
    #[error("log writer stopped")]
    WriterStopped,
    /// The partition changed role after the append was decided; nothing was
    /// appended.
    #[error("the partition changed role; nothing was appended")]
    Fenced,
}

impl LogError {
    /// An `Io` error naming the file.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        LogError::Io {
            path: path.into(),
            source,
        }
    }
}

/// A `Result` with a [`LogError`].
pub type LogResult<T> = Result<T, LogError>;
