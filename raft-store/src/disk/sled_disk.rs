//! The Raft disk on sled: a `log` tree keyed by big-endian index (so key order is
//! index order) and a `meta` tree for the small records.

use super::{RaftDisk, Record};
use crate::error::DiskError;
use std::path::Path;

/// A Raft disk in a sled database. Clones share the database.
#[derive(Clone, Debug)]
pub struct SledDisk {
    db: sled::Db,
    log: sled::Tree,
    meta: sled::Tree,
}

impl SledDisk {
    /// Opens (or creates) the database in `dir`. sled locks the directory: every
    /// clone must be dropped before it is opened again.
    pub fn open(dir: &Path) -> Result<SledDisk, DiskError> {
        let db = sled::Config::new().path(dir).open()?;
        let log = db.open_tree("log")?;
        let meta = db.open_tree("meta")?;
        Ok(SledDisk { db, log, meta })
    }
}

impl RaftDisk for SledDisk {
    fn read(&self, record: Record) -> Result<Option<Vec<u8>>, DiskError> {
        Ok(self.meta.get(record.key())?.map(|v| v.to_vec()))
    }

    fn write(&self, record: Record, value: &[u8]) -> Result<(), DiskError> {
        self.meta.insert(record.key(), value)?;
        Ok(())
    }

    fn entries(&self, from: u64, to: u64) -> Result<Vec<Vec<u8>>, DiskError> {
        if from >= to {
            return Ok(Vec::new());
        }
        self.log
            .range(from.to_be_bytes()..to.to_be_bytes())
            .map(|kv| Ok(kv?.1.to_vec()))
            .collect()
    }

    fn last_entry(&self) -> Result<Option<Vec<u8>>, DiskError> {
        Ok(self.log.last()?.map(|(_, v)| v.to_vec()))
    }

    fn put_entries(&self, entries: Vec<(u64, Vec<u8>)>) -> Result<(), DiskError> {
        let mut batch = sled::Batch::default();
        for (index, value) in entries {
            batch.insert(&index.to_be_bytes(), value);
        }
        self.log.apply_batch(batch)?;
        Ok(())
    }

    fn remove_entries(&self, from: u64, to: u64) -> Result<(), DiskError> {
        if from >= to {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for key in self.log.range(from.to_be_bytes()..to.to_be_bytes()).keys() {
            batch.remove(key?);
        }
        self.log.apply_batch(batch)?;
        Ok(())
    }

    async fn flush(&self) -> Result<(), DiskError> {
        self.db.flush_async().await?;
        Ok(())
    }
}
