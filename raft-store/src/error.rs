//! raft-store's typed errors.

use thiserror::Error;

/// A failure of the disk under the Raft stores.
#[derive(Debug, Error)]
pub enum DiskError {
    /// sled reported an error.
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// A stored record could not be decoded: the store is damaged.
    #[error("corrupt raft store record {what}: {reason}")]
    Corrupt {
        /// Which record.
        what: String,
        /// What was wrong.
        reason: String,
    },
}

/// A state machine could not load a snapshot.
#[derive(Debug, Error)]
#[error("cannot restore state machine from snapshot: {0}")]
pub struct RestoreError(pub String);
