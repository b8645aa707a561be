//! The writer task: group commit, flush policies, and what a failed fsync or a
//! full disk does.

use crate::support::*;
use bytes::Bytes;
use raftline_broker::clock::TokioClock;
use raftline_broker::log::{spawn_writer, FlushPolicy, LogConfig, LogHandle};
use raftline_broker::storage::Storage;
use raftline_broker::{LeaderEpoch, LogError, Offset};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

fn start(
    config: LogConfig,
) -> (
    raftline_broker::storage::MemStorage,
    LogHandle,
    tokio::task::JoinHandle<raftline_broker::LogResult<()>>,
) {
    let (disk, log) = fresh(config);
    let (handle, task) = spawn_writer(log, Arc::new(TokioClock::starting_at(0)));
    (disk, handle, task)
}

#[tokio::test]
async fn concurrent_appends_share_fsyncs_and_are_all_durable() {
    let (disk, handle, task) = start(LogConfig::default());
    let appenders: Vec<_> = (0..16)
        .map(|i| {
            let handle = handle.clone();
            tokio::spawn(async move {
                handle
                    .append_as_leader(batch(2, 20, &format!("g{i}")), LeaderEpoch(0))
                    .await
            })
        })
        .collect();
    let mut firsts = Vec::new();
    for appender in appenders {
        firsts.push(appender.await.unwrap().unwrap().first_offset.0);
    }
    firsts.sort_unstable();
    assert_eq!(
        firsts,
        (0..16).map(|i| i * 2).collect::<Vec<_>>(),
        "dense, distinct offsets"
    );
    let stats = handle.stats();
    let (appends, fsyncs) = (
        stats.appends.load(Ordering::Relaxed),
        stats.fsyncs.load(Ordering::Relaxed),
    );
    assert_eq!(appends, 16);
    assert!(
        fsyncs < appends,
        "group commit: {fsyncs} fsyncs for {appends} appends"
    );

    // Every acknowledged append survives a power loss.
    drop(handle);
    task.await.unwrap().unwrap();
    disk.crash();
    let log = open(&disk, LogConfig::default());
    assert_eq!(log.log_end(), Offset(32));
}

#[tokio::test]
async fn a_failed_fsync_fails_the_partition_and_acknowledges_nothing() {
    let (disk, handle, task) = start(LogConfig::default());
    handle
        .append_as_leader(batch(1, 10, "ok"), LeaderEpoch(0))
        .await
        .unwrap();
    disk.set_fail_syncs(true);
    let err = handle
        .append_as_leader(batch(1, 10, "unsynced"), LeaderEpoch(0))
        .await
        .unwrap_err();
    assert!(matches!(err, LogError::Failed { .. }), "{err:?}");
    // No silent retry: the log stays failed even once the disk recovers.
    disk.set_fail_syncs(false);
    let err = handle
        .append_as_leader(batch(1, 10, "after"), LeaderEpoch(0))
        .await
        .unwrap_err();
    assert!(matches!(err, LogError::Failed { .. }), "{err:?}");
    assert!(matches!(
        handle.read(Offset(0), 1024, Offset(1)).await,
        Err(LogError::Failed { .. })
    ));
    drop(handle);
    assert!(
        task.await.unwrap().is_err(),
        "closing a failed log reports the failure"
    );

    // Reopening (after the fault is gone) serves the acknowledged record.
    disk.crash();
    let log = open(&disk, LogConfig::default());
    assert_eq!(log.log_end(), Offset(1));
    assert_eq!(
        read_all(&log, Offset(1), 1024),
        vec![(0, "ok-0".to_string())]
    );
}

#[tokio::test]
async fn a_full_disk_is_an_error_that_leaves_the_log_usable() {
    let (disk, handle, _task) = start(LogConfig::default());
    handle
        .append_as_leader(batch(2, 10, "before"), LeaderEpoch(0))
        .await
        .unwrap();
    let used: usize = snapshot(&disk).values().map(Vec::len).sum();
    disk.set_capacity(Some(used as u64 + 50));
    let err = handle
        .append_as_leader(batch(4, 100, "big"), LeaderEpoch(0))
        .await
        .unwrap_err();
    assert!(matches!(err, LogError::DiskFull { .. }), "{err:?}");

    let read = handle.read(Offset(0), 1 << 20, Offset(100)).await.unwrap();
    assert_eq!(read.log_end, Offset(2), "the partial write was undone");
    assert_eq!(decode(&read.records).len(), 2);

    disk.set_capacity(None);
    let info = handle
        .append_as_leader(batch(1, 10, "after"), LeaderEpoch(0))
        .await
        .unwrap();
    assert_eq!(info.first_offset, Offset(2));
}

#[tokio::test(start_paused = true)]
async fn periodic_flush_acknowledges_first_and_syncs_on_the_interval() {
    let config = LogConfig {
        flush: FlushPolicy::Periodic {
            messages: 1_000,
            interval: Duration::from_millis(100),
        },
        ..LogConfig::default()
    };
    let (disk, handle, _task) = start(config);
    handle
        .append_as_leader(batch(3, 10, "p"), LeaderEpoch(0))
        .await
        .unwrap();
    assert_eq!(
        handle.stats().fsyncs.load(Ordering::Relaxed),
        0,
        "acknowledged before any fsync"
    );
    // Poll (in paused time) until the interval's flush has run.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while handle.stats().fsyncs.load(Ordering::Relaxed) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no periodic flush");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    disk.crash();
    let log = open(&disk, LogConfig::default());
    assert_eq!(log.log_end(), Offset(3));
}

#[tokio::test]
async fn flush_policy_never_leaves_durability_to_the_os() {
    let config = LogConfig {
        flush: FlushPolicy::Never,
        ..LogConfig::default()
    };
    let (disk, handle, _task) = start(config);
    handle
        .append_as_leader(Bytes::from(batch(3, 10, "n").to_vec()), LeaderEpoch(0))
        .await
        .unwrap();
    assert_eq!(handle.stats().fsyncs.load(Ordering::Relaxed), 0);
    disk.crash();
    let log = open(&disk, LogConfig::default());
    assert_eq!(
        log.log_end(),
        Offset(0),
        "unsynced data is lost on power loss"
    );
}

/// Checks `done` each time the writer task has had a turn (the test runtime
/// has one thread) until it holds, failing after 10 s.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::task::yield_now().await;
    }
}

/// A leader append of one record tagged `tag`, running on its own task.
fn spawn_append(
    handle: &LogHandle,
    tag: &'static str,
) -> tokio::task::JoinHandle<raftline_broker::LogResult<raftline_broker::log::AppendInfo>> {
    let handle = handle.clone();
    tokio::spawn(async move {
        handle
            .append_as_leader(batch(1, 10, tag), LeaderEpoch(0))
            .await
    })
}

#[tokio::test]
async fn while_an_fsync_runs_reads_are_served_and_new_appends_wait_for_the_next() {
    let (disk, handle, task) = start(LogConfig::default());
    // The epoch's first append checkpoints the epoch cache (an fsync in place).
    handle
        .append_as_leader(batch(1, 10, "w"), LeaderEpoch(0))
        .await
        .unwrap();
    disk.hold_syncs(true);
    let first = spawn_append(&handle, "a");
    let stats = handle.stats();
    eventually("the first fsync begins", || {
        stats.fsyncs.load(Ordering::Relaxed) == 2
    })
    .await;
    let second = spawn_append(&handle, "b");
    eventually("the second append is written", || {
        stats.appends.load(Ordering::Relaxed) == 3
    })
    .await;
    // The fsync is still held, yet the writer serves a read of both records:
    // it does not wait behind the disk.
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        handle.read(Offset(1), 1 << 20, Offset(3)),
    )
    .await
    .expect("a read is served while an fsync runs")
    .unwrap();
    assert_eq!(
        decode(&read.records),
        vec![(1, "a-0".to_string()), (2, "b-0".to_string())]
    );
    assert!(
        !first.is_finished() && !second.is_finished(),
        "nothing is acknowledged before its fsync"
    );
    assert_eq!(stats.fsyncs.load(Ordering::Relaxed), 2);

    disk.hold_syncs(false);
    assert_eq!(first.await.unwrap().unwrap().first_offset, Offset(1));
    assert_eq!(second.await.unwrap().unwrap().first_offset, Offset(2));
    assert_eq!(
        stats.fsyncs.load(Ordering::Relaxed),
        3,
        "the second append, written during the first fsync, waited for its own"
    );
    drop(handle);
    task.await.unwrap().unwrap();
    disk.crash();
    assert_eq!(open(&disk, LogConfig::default()).log_end(), Offset(3));
}

#[tokio::test]
async fn a_crash_during_an_fsync_keeps_what_was_acknowledged() {
    let (disk, handle, _task) = start(LogConfig::default());
    handle
        .append_as_leader(batch(1, 10, "acked"), LeaderEpoch(0))
        .await
        .unwrap();
    disk.hold_syncs(true);
    let stats = handle.stats();
    let pending = spawn_append(&handle, "pending");
    eventually("the second fsync begins", || {
        stats.fsyncs.load(Ordering::Relaxed) == 2
    })
    .await;
    assert!(!pending.is_finished());
    // Power fails with the fsync under way: the acknowledged record is there.
    disk.crash();
    // (Opening syncs; the held fsync finishes on the files the crash discarded.)
    disk.hold_syncs(false);
    let log = open(&disk, LogConfig::default());
    assert_eq!(
        read_all(&log, Offset(1), 1024),
        vec![(0, "acked-0".to_string())]
    );
}

#[tokio::test]
async fn the_writer_removes_the_files_of_segments_retention_deleted() {
    let (disk, log) = fresh(LogConfig {
        retention_bytes: Some(2048),
        ..small_config()
    });
    let (handle, _task) = spawn_writer(log, Arc::new(TokioClock::starting_at(0)));
    for i in 0..20 {
        handle
            .append_as_leader(batch(3, 50, &format!("r{i}")), LeaderEpoch(0))
            .await
            .unwrap();
    }
    let out = handle
        .with(|log| log.apply_retention(0, log.log_end()))
        .await
        .unwrap()
        .unwrap();
    assert!(!out.deleted_segments.is_empty());
    // The writer removes them after the job, before its next request.
    let start = handle.with(|log| log.log_start()).await.unwrap();
    assert_eq!(start, out.log_start);
    let names = disk.list_dir(&dir()).unwrap();
    for base in &out.deleted_segments {
        let name = seg(base.0, "log");
        assert!(
            !names.iter().any(|n| n.starts_with(&name)),
            "{name} or its .deleted rename still there: {names:?}"
        );
    }
}
