//! openraft::testing::Suite on the in-memory and the sled store.

use crate::kv::Kv;
use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use raftline_raft_store::{LogStore, MemDisk, NodeId, SledDisk, StateMachineStore, TypeConfig};

struct MemBuilder;

impl StoreBuilder<TypeConfig, LogStore<MemDisk>, StateMachineStore<Kv, MemDisk>, ()>
    for MemBuilder
{
    async fn build(
        &self,
    ) -> Result<((), LogStore<MemDisk>, StateMachineStore<Kv, MemDisk>), StorageError<NodeId>> {
        let disk = MemDisk::new();
        let sm = StateMachineStore::open(Kv::default(), disk.clone()).unwrap();
        Ok(((), LogStore::new(disk), sm))
    }
}

struct SledBuilder;

impl
    StoreBuilder<TypeConfig, LogStore<SledDisk>, StateMachineStore<Kv, SledDisk>, tempfile::TempDir>
    for SledBuilder
{
    async fn build(
        &self,
    ) -> Result<
        (
            tempfile::TempDir,
            LogStore<SledDisk>,
            StateMachineStore<Kv, SledDisk>,
        ),
        StorageError<NodeId>,
    > {
        let dir = tempfile::tempdir().unwrap();
        let disk = SledDisk::open(dir.path()).unwrap();
        let sm = StateMachineStore::open(Kv::default(), disk.clone()).unwrap();
        Ok((dir, LogStore::new(disk), sm))
    }
}

// The suite runs its own tokio runtimes: these are plain tests.
#[test]
#[allow(clippy::result_large_err)]
fn memory_store_passes_openraft_suite() -> Result<(), StorageError<NodeId>> {
    Suite::test_all(MemBuilder)
}

#[test]
#[allow(clippy::result_large_err)]
fn sled_store_passes_openraft_suite() -> Result<(), StorageError<NodeId>> {
    Suite::test_all(SledBuilder)
}
