//! openraft's log storage (storage-v2) over a [`RaftDisk`].

use crate::disk::{RaftDisk, Record};
use crate::error::DiskError;
use crate::types::{NodeId, TypeConfig};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, RaftLogReader, StorageError, StorageIOError, Vote};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

/// The Raft log, vote and committed id of one node. Clones share the disk (the
/// log reader openraft asks for is a clone).
#[derive(Clone, Debug)]
pub struct LogStore<D: RaftDisk> {
    disk: D,
}

impl<D: RaftDisk> LogStore<D> {
    /// The log store on `disk`.
    pub fn new(disk: D) -> Self {
        LogStore { disk }
    }

    fn read_record<T: DeserializeOwned>(&self, record: Record) -> Result<Option<T>, DiskError> {
        self.disk
            .read(record)?
            .map(|bytes| decode(record.key(), &bytes))
            .transpose()
    }

    fn write_record<T: Serialize>(&self, record: Record, value: &T) -> Result<(), DiskError> {
        self.disk.write(record, &encode(record.key(), value)?)
    }
}

/// Serializes a stored value.
pub(crate) fn encode<T: Serialize>(what: &str, value: &T) -> Result<Vec<u8>, DiskError> {
    serde_json::to_vec(value).map_err(|e| DiskError::Corrupt {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

/// Deserializes a stored value; a failure means the store is damaged.
pub(crate) fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, DiskError> {
    serde_json::from_slice(bytes).map_err(|e| DiskError::Corrupt {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

/// `[from, to)` from any range of indices.
fn index_range<R: RangeBounds<u64>>(range: &R) -> (u64, u64) {
    let from = match range.start_bound() {
        Bound::Included(&i) => i,
        Bound::Excluded(&i) => i.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let to = match range.end_bound() {
        Bound::Included(&i) => i.saturating_add(1),
        Bound::Excluded(&i) => i,
        Bound::Unbounded => u64::MAX,
    };
    (from, to)
}

impl<D: RaftDisk> RaftLogReader<TypeConfig> for LogStore<D> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let (from, to) = index_range(&range);
        let raw = self
            .disk
            .entries(from, to)
            .map_err(|e| StorageIOError::read_logs(&e))?;
        raw.iter()
            .map(|bytes| {
                decode("log entry", bytes).map_err(|e| StorageIOError::read_logs(&e).into())
            })
            .collect()
    }
}

impl<D: RaftDisk> RaftLogStorage<TypeConfig> for LogStore<D> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let last_purged: Option<LogId<NodeId>> = self
            .read_record(Record::LastPurged)
            .map_err(|e| StorageIOError::read_logs(&e))?;
        let last = match self
            .disk
            .last_entry()
            .map_err(|e| StorageIOError::read_logs(&e))?
        {
            Some(bytes) => {
                let entry: Entry<TypeConfig> =
                    decode("log entry", &bytes).map_err(|e| StorageIOError::read_logs(&e))?;
                Some(entry.log_id)
            }
            None => last_purged,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write_record(Record::Vote, vote)
            .map_err(|e| StorageIOError::write_vote(&e))?;
        // A vote acted upon must survive a crash, or a node could vote twice in a term.
        self.disk
            .flush()
            .await
            .map_err(|e| StorageIOError::write_vote(&e))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self
            .read_record(Record::Vote)
            .map_err(|e| StorageIOError::read_vote(&e))?)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        // Not flushed: a lost committed id only means re-applying less at start.
        self.write_record(Record::Committed, &committed)
            .map_err(|e| StorageIOError::write(&e))?;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        let committed: Option<Option<LogId<NodeId>>> = self
            .read_record(Record::Committed)
            .map_err(|e| StorageIOError::read(&e))?;
        Ok(committed.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut batch = Vec::new();
        for entry in entries {
            let bytes = encode("log entry", &entry).map_err(|e| StorageIOError::write_logs(&e))?;
            batch.push((entry.log_id.index, bytes));
        }
        self.disk
            .put_entries(batch)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        // Report the entries flushed only once they are: openraft counts this
        // node toward the quorum from then on.
        let flushed = self.disk.flush().await;
        let result = flushed
            .as_ref()
            .map(|_| ())
            .map_err(|e| std::io::Error::other(e.to_string()));
        callback.log_io_completed(result);
        flushed.map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.disk
            .remove_entries(log_id.index, u64::MAX)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        self.disk
            .flush()
            .await
            .map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        // Record the purge point first: a crash between the two steps then leaves
        // extra entries below it, never a log that claims entries it lost.
        self.write_record(Record::LastPurged, &log_id)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        self.disk
            .flush()
            .await
            .map_err(|e| StorageIOError::write_logs(&e))?;
        self.disk
            .remove_entries(0, log_id.index.saturating_add(1))
            .map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }
}
