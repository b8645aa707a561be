//! Log compaction: the cleaner keeps each key's latest record, keeps offsets,
//! survives restarts and crashes, and followers copy a compacted log's gaps.

use crate::support::*;
use proptest::prelude::*;
use raftline_broker::log::{CleanupPolicy, Log, LogConfig};
use raftline_broker::storage::Storage;
use raftline_broker::{LeaderEpoch, LogError, Offset};
use std::collections::BTreeMap;
use std::time::Duration;
use tracing::info;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

fn compacted() -> LogConfig {
    LogConfig {
        cleanup: CleanupPolicy {
            delete: false,
            compact: true,
        },
        min_cleanable_dirty_permille: 0,
        ..small_config()
    }
}

type Row = (i64, String, Option<String>);

/// Each key's last record in `rows`.
fn latest(rows: &[Row]) -> BTreeMap<String, (i64, Option<String>)> {
    rows.iter()
        .map(|(o, k, v)| (k.clone(), (*o, v.clone())))
        .collect()
}

/// Appends `n` batches of 2 records over keys k0..k{keys}; returns every row.
fn fill(log: &mut Log, n: usize, keys: usize, timestamp: i64) -> Vec<Row> {
    let mut rows = Vec::new();
    for i in 0..n {
        let k1 = format!("k{}", (2 * i) % keys);
        let k2 = format!("k{}", (2 * i + 1) % keys);
        let (v1, v2) = (format!("v{}", 2 * i), format!("v{}", 2 * i + 1));
        let batch = keyed_batch(&[(&k1, Some(&v1)), (&k2, Some(&v2))], timestamp);
        let info = log.append_as_leader(&batch, LeaderEpoch(0)).unwrap();
        let first = info.first_offset.0 as i64;
        rows.push((first, k1, Some(v1)));
        rows.push((first + 1, k2, Some(v2)));
    }
    rows
}

#[test]
fn the_cleaner_keeps_each_keys_latest_record_at_its_offset() {
    let (disk, mut log) = fresh(compacted());
    let rows = fill(&mut log, 60, 5, 1_000);
    let end = log.log_end();
    let before = log.size_bytes();
    assert!(log.segments().len() > 3, "the test needs sealed segments");

    let out = log.clean(end, 2_000).unwrap().expect("a pass runs");
    info!(?out, "cleaned");
    assert!(out.records_removed > 0);
    assert!(out.bytes_after < out.bytes_before);
    assert!(log.size_bytes() < before);
    let after = read_keyed(&log, end);
    assert_eq!(
        latest(&after),
        latest(&rows),
        "the latest value of every key is kept"
    );
    for row in &after {
        assert!(
            rows.contains(row),
            "{row:?} is an original record at its offset"
        );
    }
    let sealed_end = log.segments().last().unwrap().base.0 as i64;
    let sealed: Vec<&Row> = after.iter().filter(|r| r.0 < sealed_end).collect();
    assert!(
        sealed.len() <= 5,
        "one record per key below the active segment: {sealed:?}"
    );
    assert_eq!(log.log_end(), end, "the log end does not move");
    assert_eq!(log.log_start(), Offset(0), "nor does the log start");

    info!("the same log after a restart, and nothing more to clean");
    let segments = log.segments();
    drop(log);
    let mut log = open(&disk, compacted());
    assert!(
        log.recovery().rebuilt_indexes.is_empty(),
        "cleaned segments are sealed"
    );
    assert_eq!(log.segments(), segments);
    assert_eq!(read_keyed(&log, end), after);
    log.clean(end, 2_000).unwrap();
    assert_eq!(
        log.clean(end, 2_000).unwrap(),
        None,
        "nothing dirty is left"
    );
}

#[test]
fn cleaning_stops_at_the_limit_and_the_compaction_lag() {
    let (_disk, mut log) = fresh(compacted());
    fill(&mut log, 60, 5, 1_000);
    let segments = log.segments();
    info!("below the first segment's end there is nothing to clean");
    assert_eq!(log.clean(segments[0].base, 2_000).unwrap(), None);
    let out = log.clean(segments[1].next_offset, 2_000).unwrap().unwrap();
    assert_eq!(out.cleaned_to, segments[1].next_offset);
    assert!(out.rewritten.iter().all(|b| *b <= segments[1].base));

    let (_disk, mut log) = fresh(LogConfig {
        min_compaction_lag: Duration::from_secs(60),
        ..compacted()
    });
    fill(&mut log, 60, 5, 1_000);
    let end = log.log_end();
    assert_eq!(log.clean(end, 30_000).unwrap(), None, "too young");
    assert!(log.clean(end, 61_000).unwrap().is_some());
}

#[test]
fn the_dirty_ratio_decides_when_a_pass_runs() {
    let (_disk, mut log) = fresh(LogConfig {
        min_cleanable_dirty_permille: 500,
        ..compacted()
    });
    fill(&mut log, 60, 5, 1_000);
    assert!(
        log.clean(log.log_end(), 2_000).unwrap().is_some(),
        "all dirty at first"
    );
    fill(&mut log, 4, 5, 1_000);
    assert_eq!(
        log.clean(log.log_end(), 2_000).unwrap(),
        None,
        "a little new data is below the ratio"
    );
    fill(&mut log, 60, 5, 1_000);
    assert!(log.clean(log.log_end(), 2_000).unwrap().is_some());
}

#[test]
fn tombstones_go_after_delete_retention_and_one_pass() {
    let (_disk, mut log) = fresh(LogConfig {
        delete_retention: Duration::from_millis(DAY_MS as u64),
        ..compacted()
    });
    fill(&mut log, 20, 5, 1_000);
    log.append_as_leader(&keyed_batch(&[("k1", None)], 1_000), LeaderEpoch(0))
        .unwrap();
    fill(&mut log, 40, 4, 1_000); // keys k0..k3, rolling past the tombstone: k1 comes back
    log.append_as_leader(&keyed_batch(&[("k4", None)], 1_000), LeaderEpoch(0))
        .unwrap();
    fill(&mut log, 30, 4, 1_000);
    let end = log.log_end();
    let has_k4 = |log: &Log| read_keyed(log, end).iter().any(|r| r.1 == "k4");
    log.clean(end, 2_000).unwrap().unwrap();
    let rows = read_keyed(&log, end);
    assert_eq!(
        latest(&rows).get("k4").map(|r| r.1.clone()),
        Some(None),
        "the tombstone is the key's latest record and stays"
    );
    assert_eq!(
        rows.iter().filter(|r| r.1 == "k4").count(),
        1,
        "older k4 values went"
    );
    info!("a second pass within delete.retention.ms keeps it");
    fill(&mut log, 60, 4, 1_000);
    let end = log.log_end();
    log.clean(end, 2_000).unwrap();
    assert!(has_k4(&log));
    info!("after delete.retention.ms it goes");
    fill(&mut log, 60, 4, 1_000);
    let end = log.log_end();
    log.clean(end, 1_000 + DAY_MS + 1).unwrap().unwrap();
    assert!(!read_keyed(&log, end).iter().any(|r| r.1 == "k4"));
}

#[test]
fn a_follower_copies_the_gaps_of_a_compacted_leader() {
    let (_l, mut leader) = fresh(compacted());
    let rows = fill(&mut leader, 60, 5, 1_000);
    let (_f, mut lagging) = fresh(compacted());
    info!("one follower copied the first 30 records before the clean");
    let early = leader.read(Offset(0), 1 << 20, Offset(30)).unwrap();
    lagging.append_as_follower(&early.records).unwrap();
    let end = leader.log_end();
    leader.clean(end, 2_000).unwrap().unwrap();

    for follower in [fresh(compacted()).1, lagging] {
        let mut follower = follower;
        while follower.log_end() < end {
            let read = leader.read(follower.log_end(), 500, end).unwrap();
            assert!(!read.records.is_empty());
            follower.append_as_follower(&read.records).unwrap();
        }
        assert_eq!(follower.log_end(), end);
        assert_eq!(latest(&read_keyed(&follower, end)), latest(&rows));
    }

    info!("a log that is not compacted refuses a gap");
    let (_d, mut plain) = fresh(small_config());
    let from = leader.read(Offset(0), 1 << 20, end).unwrap();
    let err = plain.append_as_follower(&from.records).unwrap_err();
    assert!(matches!(err, LogError::NonContiguousAppend { .. }), "{err}");
}

#[test]
fn a_compacted_topic_refuses_keyless_records_and_keeps_its_segments_forever() {
    let (_disk, mut log) = fresh(LogConfig {
        retention_age: Some(Duration::from_millis(1)),
        retention_bytes: Some(1),
        ..compacted()
    });
    let err = log
        .append_as_leader(&batch(2, 10, "no-key"), LeaderEpoch(0))
        .unwrap_err();
    assert!(
        matches!(&err, LogError::InvalidRecord { reason } if reason.contains("without a key")),
        "{err}"
    );
    assert_eq!(log.log_end(), Offset(0), "a refused batch changes nothing");
    fill(&mut log, 40, 40, 1_000);
    let out = log.apply_retention(10 * DAY_MS, log.log_end()).unwrap();
    assert!(
        out.deleted_segments.is_empty(),
        "compact alone never deletes by retention"
    );

    info!("compact,delete does both");
    let (_disk, mut both) = fresh(LogConfig {
        cleanup: CleanupPolicy {
            delete: true,
            compact: true,
        },
        retention_bytes: Some(1),
        ..compacted()
    });
    fill(&mut both, 40, 40, 1_000);
    assert!(!both
        .apply_retention(0, both.log_end())
        .unwrap()
        .deleted_segments
        .is_empty());
}

#[test]
fn a_crash_at_any_step_of_a_swap_leaves_a_whole_log() {
    let (disk, mut log) = fresh(compacted());
    let rows = fill(&mut log, 60, 5, 1_000);
    let end = log.log_end();
    let sealed = log.segments()[0].base;
    let before = snapshot(&disk);
    log.clean(end, 2_000).unwrap().unwrap();
    let after = snapshot(&disk);
    drop(log);

    let mut cases: Vec<(&str, BTreeMap<String, Vec<u8>>)> = Vec::new();
    let mut leftover = before.clone();
    leftover.insert(
        seg(sealed.0, "cleaned"),
        after[&seg(sealed.0, "log")].clone(),
    );
    cases.push(("a rewrite not yet renamed", leftover));
    let mut unindexed = before.clone();
    unindexed.remove(&seg(sealed.0, "index"));
    unindexed.remove(&seg(sealed.0, "timeindex"));
    cases.push(("old indexes removed, rename not done", unindexed.clone()));
    unindexed.insert(seg(sealed.0, "log"), after[&seg(sealed.0, "log")].clone());
    cases.push(("renamed, indexes not yet written", unindexed));
    for (why, files) in cases {
        let disk = restore(&files);
        let log = open(&disk, compacted());
        assert_eq!(log.log_end(), end, "{why}");
        assert_eq!(latest(&read_keyed(&log, end)), latest(&rows), "{why}");
        assert!(!log.recovery().damaged, "{why}: no damage");
        assert!(
            !disk.exists(&path(&seg(sealed.0, "cleaned"))),
            "{why}: leftovers are removed"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any appends (tombstones included), any cleaning points: every key's
    /// latest record is readable at its offset, before and after a reopen,
    /// and nothing is read that was not written there.
    #[test]
    fn compaction_never_changes_what_a_key_last_said(
        ops in prop::collection::vec(
            prop_oneof![
                4 => prop::collection::vec((0u8..6, prop::option::weighted(0.85, 0u16..1000)), 1..4)
                    .prop_map(Some),
                1 => Just(None),
            ],
            1..80,
        )
    ) {
        let (disk, mut log) = fresh(compacted());
        let mut rows: Vec<Row> = Vec::new();
        for op in ops {
            match op {
                Some(records) => {
                    let owned: Vec<(String, Option<String>)> = records
                        .iter()
                        .map(|(k, v)| (format!("k{k}"), v.map(|v| format!("v{v}"))))
                        .collect();
                    let refs: Vec<(&str, Option<&str>)> =
                        owned.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
                    let info = log.append_as_leader(&keyed_batch(&refs, 1_000), LeaderEpoch(0)).unwrap();
                    for (i, (k, v)) in owned.into_iter().enumerate() {
                        rows.push((info.first_offset.0 as i64 + i as i64, k, v));
                    }
                }
                None => {
                    log.clean(log.log_end(), 2_000).unwrap();
                }
            }
        }
        let end = log.log_end();
        log.clean(end, 2_000).unwrap();
        let read = read_keyed(&log, end);
        prop_assert_eq!(latest(&read), latest(&rows));
        for row in &read {
            prop_assert!(rows.contains(row));
        }
        drop(log);
        let log = open(&disk, compacted());
        prop_assert_eq!(log.log_end(), end);
        prop_assert_eq!(read_keyed(&log, end), read);
    }
}

#[test]
fn startup_recovery_without_topic_configs_accepts_a_compacted_logs_gaps() {
    let (disk, mut log) = fresh(compacted());
    let rows = fill(&mut log, 60, 5, 1_000);
    let end = log.log_end();
    log.clean(end, 2_000).unwrap().unwrap();
    drop(log);
    assert!(
        disk.exists(&path("compacted")),
        "the log says it is compacted"
    );
    info!("the broker scans every log before it knows topic configs; indexes lost");
    let mut files = snapshot(&disk);
    files.retain(|name, _| !name.ends_with("index"));
    let disk = restore(&files);
    let log = open(&disk, small_config());
    assert!(!log.recovery().damaged, "{:?}", log.recovery().reasons);
    assert_eq!(log.log_end(), end);
    assert_eq!(latest(&read_keyed(&log, end)), latest(&rows));
    info!("a log never compacted still calls a gap damage");
    let (disk, mut plain) = fresh(small_config());
    fill(&mut plain, 60, 5, 1_000);
    assert!(!disk.exists(&path("compacted")));
}

#[test]
fn a_flipped_byte_in_a_sealed_compacted_segment_is_found_at_open() {
    let (disk, mut log) = fresh(compacted());
    fill(&mut log, 60, 5, 1_000);
    log.clean(log.log_end(), 2_000).unwrap().unwrap();
    let sealed = log.segments()[1].clone();
    drop(log);
    info!("indexes intact; a byte inside a batch's records flips");
    disk.flip_byte(&path(&seg(sealed.base.0, "log")), sealed.size as usize - 3)
        .unwrap();
    let log = open(&disk, compacted());
    assert!(log.recovery().damaged, "{:?}", log.recovery().reasons);
    assert!(
        log.log_end() <= sealed.next_offset,
        "the log is cut at the damage"
    );

    info!("a byte of a batch's leader epoch (outside the CRC) flips");
    let (disk, mut log) = fresh(compacted());
    fill(&mut log, 60, 5, 1_000);
    log.clean(log.log_end(), 2_000).unwrap().unwrap();
    let sealed = log.segments()[1].clone();
    drop(log);
    disk.flip_byte(&path(&seg(sealed.base.0, "log")), 13)
        .unwrap();
    let log = open(&disk, compacted());
    assert!(log.recovery().damaged, "{:?}", log.recovery().reasons);
    assert!(log.log_end() <= sealed.next_offset);
}

#[test]
fn a_log_switched_to_compaction_is_marked_first_and_then_cleaned() {
    let (disk, mut log) = fresh(small_config());
    let rows = fill(&mut log, 60, 5, 1_000);
    assert!(!disk.exists(&path("compacted")));
    info!("a bad setting is refused and changes nothing");
    let bad = LogConfig {
        segment_bytes: 1,
        ..compacted()
    };
    assert!(matches!(
        log.set_config(bad),
        Err(LogError::InvalidConfig(_))
    ));
    assert!(!disk.exists(&path("compacted")));
    assert_eq!(log.config(), &small_config());
    info!("the topic turns compacted: the mark first, durably, then the cleaner may run");
    log.set_config(compacted()).unwrap();
    assert!(disk.exists(&path("compacted")));
    let end = log.log_end();
    log.clean(end, 2_000).unwrap().unwrap();
    assert_eq!(latest(&read_keyed(&log, end)), latest(&rows));
    assert!(
        read_keyed(&log, end).len() < rows.len(),
        "older values of each key went"
    );
}
