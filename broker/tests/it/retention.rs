//! Retention deletes whole old segments by size and by age, and never past the
//! high watermark.

use crate::support::*;
use raftline_broker::log::{Log, LogConfig};
use raftline_broker::storage::{MemStorage, Storage};
use raftline_broker::{LeaderEpoch, LogError, Offset};
use std::time::Duration;

/// A log of 20 small batches over several segments, past a 2 KiB
/// `retention.bytes`, and its config.
fn over_the_size_limit() -> (MemStorage, Log, LogConfig) {
    let config = LogConfig {
        retention_bytes: Some(2048),
        ..small_config()
    };
    let (disk, mut log) = fresh(config.clone());
    for i in 0..20 {
        log.append_as_leader(&batch(3, 50, &format!("r{i}")), LeaderEpoch(i / 5))
            .unwrap();
    }
    (disk, log, config)
}

#[test]
fn retention_bytes_deletes_oldest_segments_and_moves_the_log_start() {
    let (disk, mut log, config) = over_the_size_limit();
    let before = log.segments();
    let total: u64 = before.iter().map(|s| s.size).sum();
    assert!(
        total > 2048 + 1024,
        "test needs more than the limit: {total}"
    );

    let out = log.apply_retention(0, log.log_end()).unwrap();
    assert!(!out.deleted_segments.is_empty());
    assert_eq!(out.deleted_segments[0], Offset(0));
    assert!(
        log.size_bytes() <= 2048 + 1024,
        "at most one segment over the limit"
    );
    assert!(
        log.size_bytes() - log.segments()[0].size < 2048,
        "deleted no more than needed"
    );
    assert_eq!(log.log_start(), out.log_start);
    assert_eq!(log.log_start(), log.segments()[0].base);
    // Renamed under the writer; removed when the writer hands them off.
    let retired = |base: &Offset| path(&format!("{}.deleted", seg(base.0, "log")));
    for base in &out.deleted_segments {
        assert!(!disk.exists(&path(&seg(base.0, "log"))));
        assert!(disk.exists(&retired(base)));
    }
    log.take_retired()
        .expect("the deleted segments' files")
        .remove();
    assert!(log.take_retired().is_none(), "handed off once");
    for base in &out.deleted_segments {
        assert!(!disk.exists(&retired(base)));
    }
    // Reads below the new start are out of range; from it, everything is there.
    let below = Offset(log.log_start().0 - 1);
    assert!(matches!(
        log.read(below, 1024, log.log_end()),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    let rest = read_all(&log, log.log_end(), 1 << 20);
    assert_eq!(rest.len() as u64, log.log_end().0 - log.log_start().0);
    // The epoch cache starts at the log start too, and it all survives a reopen.
    assert_eq!(
        log.epoch_cache().entries().next().map(|(_, o)| o),
        Some(log.log_start())
    );
    let start = log.log_start();
    drop(log);
    let log = open(&disk, config);
    assert_eq!(log.log_start(), start);
}

#[test]
fn retention_ms_deletes_segments_whose_newest_record_is_too_old() {
    let config = LogConfig {
        retention_age: Some(Duration::from_millis(1_000)),
        ..small_config()
    };
    let (_disk, mut log) = fresh(config);
    let mut base = 0;
    for ts in [
        1_000, 1_000, 1_000, 1_000, 5_000, 5_000, 5_000, 5_000, 9_000,
    ] {
        log.append_as_follower(&batch_at(base, 0, 3, 100, ts, "t"))
            .unwrap();
        base += 3;
    }
    let segments = log.segments();
    // At 5_500 only segments entirely at 1_000 have expired.
    let out = log.apply_retention(5_500, log.log_end()).unwrap();
    let expected: Vec<Offset> = segments
        .iter()
        .filter(|s| s.max_timestamp == Some(1_000))
        .map(|s| s.base)
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(out.deleted_segments, expected);
    assert!(log
        .segments()
        .iter()
        .all(|s| s.max_timestamp.unwrap_or(i64::MAX) >= 5_000 || s.size == 0));
}

#[test]
fn retention_never_deletes_at_or_above_the_high_watermark() {
    let config = LogConfig {
        retention_bytes: Some(1),
        ..small_config()
    };
    let (_disk, mut log) = fresh(config);
    for i in 0..12 {
        log.append_as_leader(&batch(3, 50, &format!("h{i}")), LeaderEpoch(0))
            .unwrap();
    }
    let segments = log.segments();
    let high_watermark = segments[1].next_offset;
    let out = log.apply_retention(0, high_watermark).unwrap();
    assert_eq!(
        out.deleted_segments,
        vec![segments[0].base, segments[1].base]
    );
    assert_eq!(log.log_start(), high_watermark);
}

#[test]
fn an_expired_active_segment_is_rolled_and_deleted() {
    let config = LogConfig {
        retention_age: Some(Duration::from_millis(10)),
        ..LogConfig::default()
    };
    let (_disk, mut log) = fresh(config);
    log.append_as_follower(&batch_at(0, 0, 5, 10, 100, "old"))
        .unwrap();
    let out = log.apply_retention(1_000, log.log_end()).unwrap();
    assert_eq!(out.deleted_segments, vec![Offset(0)]);
    assert_eq!((log.log_start(), log.log_end()), (Offset(5), Offset(5)));
    let info = log
        .append_as_leader(&batch(1, 10, "next"), LeaderEpoch(0))
        .unwrap();
    assert_eq!(info.first_offset, Offset(5));
}

#[test]
fn files_of_deleted_segments_left_by_a_crash_are_swept_at_open() {
    let (disk, mut log, config) = over_the_size_limit();
    log.flush(0).unwrap();
    let out = log.apply_retention(0, log.log_end()).unwrap();
    assert!(!out.deleted_segments.is_empty());
    let start = log.log_start();
    // The power goes before the renamed files are removed.
    drop(log);
    disk.crash();
    let leftovers = |disk: &MemStorage| {
        disk.list_dir(&dir())
            .unwrap()
            .into_iter()
            .filter(|n| n.ends_with(".deleted"))
            .count()
    };
    assert!(
        leftovers(&disk) > 0,
        "the rename was durable, the removal never ran"
    );
    let log = open(&disk, config);
    assert_eq!(leftovers(&disk), 0, "swept at open");
    assert_eq!(log.log_start(), start, "the deleted segments stay deleted");
}
