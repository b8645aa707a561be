//! An in-memory Raft disk. The test or simulation owns it (a cheap shared handle),
//! so it outlives a simulated crash of the node's tasks: everything written is
//! kept, as if every write were synced (openraft only relies on what it was told
//! is flushed, so keeping more is safe).

use super::{RaftDisk, Record};
use crate::error::DiskError;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// A shared in-memory Raft disk.
#[derive(Clone, Debug, Default)]
pub struct MemDisk {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: BTreeMap<u64, Vec<u8>>,
    records: BTreeMap<&'static str, Vec<u8>>,
}

impl MemDisk {
    /// An empty disk.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every critical section leaves the maps consistent: a poisoned lock's
        // data is still good.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl RaftDisk for MemDisk {
    fn read(&self, record: Record) -> Result<Option<Vec<u8>>, DiskError> {
        Ok(self.lock().records.get(record.key()).cloned())
    }

    fn write(&self, record: Record, value: &[u8]) -> Result<(), DiskError> {
        self.lock().records.insert(record.key(), value.to_vec());
        Ok(())
    }

    fn entries(&self, from: u64, to: u64) -> Result<Vec<Vec<u8>>, DiskError> {
        if from >= to {
            return Ok(Vec::new());
        }
        Ok(self
            .lock()
            .entries
            .range(from..to)
            .map(|(_, v)| v.clone())
            .collect())
    }

    fn last_entry(&self) -> Result<Option<Vec<u8>>, DiskError> {
        Ok(self.lock().entries.last_key_value().map(|(_, v)| v.clone()))
    }

    fn put_entries(&self, entries: Vec<(u64, Vec<u8>)>) -> Result<(), DiskError> {
        self.lock().entries.extend(entries);
        Ok(())
    }

    fn remove_entries(&self, from: u64, to: u64) -> Result<(), DiskError> {
        if from < to {
            let mut inner = self.lock();
            let doomed: Vec<u64> = inner.entries.range(from..to).map(|(&k, _)| k).collect();
            for key in doomed {
                inner.entries.remove(&key);
            }
        }
        Ok(())
    }

    async fn flush(&self) -> Result<(), DiskError> {
        Ok(())
    }
}
