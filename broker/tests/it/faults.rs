//! Disk faults at the log level: a full disk while rolling or checkpointing an
//! epoch, and fsync failures, leave the log either usable and unchanged or failed.

use crate::support::*;
use raftline_broker::log::LogConfig;
use raftline_broker::storage::{MemStorage, Storage};
use raftline_broker::{LeaderEpoch, LogError, Offset};

fn used(disk: &MemStorage) -> u64 {
    snapshot(disk).values().map(|f| f.len() as u64).sum()
}

#[test]
fn a_full_disk_while_rolling_is_reported_and_the_log_goes_on() {
    let (disk, mut log) = fresh(small_config());
    while log.segments().len() == 1 {
        log.append_as_leader(&batch(3, 40, "fill"), LeaderEpoch(0))
            .unwrap();
    }
    // Fill the active segment up to the next roll.
    let mut appended = Vec::new();
    loop {
        let before = log.segments().len();
        let end = log.log_end();
        let info = log
            .append_as_leader(&batch(3, 40, "x"), LeaderEpoch(0))
            .unwrap();
        if log.segments().len() > before {
            log.truncate_to(end).unwrap();
            assert!(
                log.segments().len() > before,
                "truncation keeps the new empty segment"
            );
            break;
        }
        appended.push(info);
    }
    // Now make the active segment full again and the disk full.
    let segments_before = log.segments().len();
    let sealing = log.segments().last().unwrap().base.0;
    let end_before = log.log_end();
    disk.set_capacity(Some(used(&disk)));
    let mut result = Ok(());
    for _ in 0..20 {
        match log.append_as_leader(&batch(3, 40, "y"), LeaderEpoch(0)) {
            Ok(_) => continue,
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    assert!(
        matches!(result, Err(LogError::DiskFull { .. })),
        "{result:?}"
    );
    assert_eq!(log.log_end(), end_before, "nothing appended on a full disk");
    assert_eq!(log.segments().len(), segments_before);
    for suffix in ["index", "timeindex"] {
        assert!(
            !disk.exists(&path(&format!("{}.tmp", seg(sealing, suffix)))),
            "the failed roll left no temporary {suffix} file"
        );
    }
    assert_eq!(
        read_all(&log, log.log_end(), 1 << 20).len() as u64,
        log.log_end().0
    );

    disk.set_capacity(None);
    for _ in 0..8 {
        log.append_as_leader(&batch(3, 40, "z"), LeaderEpoch(0))
            .unwrap();
    }
    assert!(
        log.segments().len() > segments_before,
        "rolls again once there is room"
    );
}

#[test]
fn a_full_disk_while_checkpointing_a_new_epoch_appends_nothing() {
    let (disk, mut log) = fresh(LogConfig::default());
    log.append_as_leader(&batch(2, 10, "a"), LeaderEpoch(1))
        .unwrap();
    disk.set_capacity(Some(used(&disk)));
    let err = log
        .append_as_leader(&batch(2, 10, "b"), LeaderEpoch(2))
        .unwrap_err();
    assert!(matches!(err, LogError::DiskFull { .. }), "{err:?}");
    assert_eq!(log.log_end(), Offset(2));
    assert_eq!(log.latest_epoch(), Some((LeaderEpoch(1), Offset(0))));
    disk.set_capacity(None);
    log.append_as_leader(&batch(2, 10, "b"), LeaderEpoch(2))
        .unwrap();
    assert_eq!(log.latest_epoch(), Some((LeaderEpoch(2), Offset(2))));
}

#[test]
fn a_failed_fsync_while_rolling_or_truncating_fails_the_log() {
    for operation in ["roll", "truncate", "retention"] {
        let config = LogConfig {
            retention_bytes: Some(1),
            ..small_config()
        };
        let (disk, mut log) = fresh(config);
        for i in 0..6 {
            log.append_as_leader(&batch(3, 40, &format!("f{i}")), LeaderEpoch(0))
                .unwrap();
        }
        disk.set_fail_syncs(true);
        let result = match operation {
            "roll" => (0..10)
                .map(|_| {
                    log.append_as_leader(&batch(3, 40, "r"), LeaderEpoch(0))
                        .map(|_| ())
                })
                .find(Result::is_err)
                .unwrap_or(Ok(())),
            "truncate" => log.truncate_to(Offset(1)).map(|_| ()),
            _ => log.apply_retention(0, log.log_end()).map(|_| ()),
        };
        assert!(
            matches!(result, Err(LogError::Failed { .. })),
            "{operation}: {result:?}"
        );
        disk.set_fail_syncs(false);
        assert!(
            matches!(
                log.append_as_leader(&batch(1, 1, "after"), LeaderEpoch(0)),
                Err(LogError::Failed { .. })
            ),
            "{operation}: the log stays failed"
        );
    }
}
