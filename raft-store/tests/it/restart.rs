//! What survives a restart: log, vote, purge point and snapshot, on both disks.

use crate::kv::{set, Kv};
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder, Vote};
use raftline_raft_store::{
    LogStore, MemDisk, RaftDisk, Request, SledDisk, StateMachineStore, TypeConfig,
};

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn entry(term: u64, index: u64, command: Vec<u8>) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(Request(command)),
    }
}

/// Writes through the stores, "restarts" them on the same disk, checks the state.
async fn survives_restart<D: RaftDisk>(disk: D, reopen: impl Fn(D) -> D) {
    let mut sm = StateMachineStore::open(Kv::default(), disk.clone()).unwrap();
    let mut log = LogStore::new(disk.clone());
    log.save_vote(&Vote::new(3, 2)).await.unwrap();
    let entries: Vec<_> = (1..=5)
        .map(|i| entry(1, i, set(&format!("k{i}"), "v")))
        .collect();
    for e in &entries {
        let responses = sm.apply([e.clone()]).await.unwrap();
        assert_eq!(responses.len(), 1);
    }
    sm.get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    sm.apply([entry(1, 6, set("k6", "v"))]).await.unwrap();
    log.purge(log_id(1, 3)).await.unwrap();
    drop((sm, log));

    let disk = reopen(disk);
    let mut sm = StateMachineStore::open(Kv::default(), disk.clone()).unwrap();
    let mut log = LogStore::new(disk);
    assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(3, 2)));
    assert_eq!(
        log.get_log_state().await.unwrap().last_purged_log_id,
        Some(log_id(1, 3))
    );
    // The snapshot restored the machine up to entry 5; entry 6 is re-applied by
    // openraft from the log (here by hand), and an old entry is skipped.
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 5)));
    assert_eq!(sm.with_machine(|kv| kv.map.len()), 5);
    sm.apply([entry(1, 4, set("k4", "again")), entry(1, 6, set("k6", "v"))])
        .await
        .unwrap();
    assert_eq!(
        sm.with_machine(|kv| kv.applied.clone()),
        vec![6],
        "entry 4 was not applied twice"
    );
    assert_eq!(
        sm.with_machine(|kv| kv.map.get("k4").cloned()),
        Some("v".to_string())
    );
}

#[tokio::test]
async fn memory_disk_keeps_state_across_a_restart() {
    survives_restart(MemDisk::new(), |disk| disk).await;
}

#[tokio::test]
async fn sled_disk_keeps_state_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    survives_restart(SledDisk::open(&path).unwrap(), move |disk| {
        drop(disk); // sled locks its directory
        SledDisk::open(&path).unwrap()
    })
    .await;
}
