//! Appends, reads, epochs and truncation on a healthy log.

use crate::support::*;
use raftline_broker::log::LogConfig;
use raftline_broker::storage::Storage;
use raftline_broker::{LeaderEpoch, LogError, Offset};

fn values(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{tag}-{i}")).collect()
}

#[test]
fn leader_assigns_offsets_from_the_log_end() {
    let (_disk, mut log) = fresh(LogConfig::default());
    let a = log
        .append_as_leader(&batch(5, 10, "a"), LeaderEpoch(1))
        .unwrap();
    let b = log
        .append_as_leader(&batch(3, 10, "b"), LeaderEpoch(1))
        .unwrap();
    let c = log
        .append_as_leader(&batch(1, 10, "c"), LeaderEpoch(1))
        .unwrap();
    assert_eq!((a.first_offset, a.last_offset), (Offset(0), Offset(4)));
    assert_eq!((b.first_offset, b.last_offset), (Offset(5), Offset(7)));
    assert_eq!((c.first_offset, c.last_offset), (Offset(8), Offset(8)));
    assert_eq!(log.log_end(), Offset(9));

    let all = read_all(&log, log.log_end(), 1 << 20);
    let offsets: Vec<i64> = all.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, (0..9).collect::<Vec<_>>());
    let got: Vec<String> = all.into_iter().map(|(_, v)| v).collect();
    let want: Vec<String> = [values("a", 5), values("b", 3), values("c", 1)].concat();
    assert_eq!(got, want);
}

#[test]
fn a_leader_s_tail_reads_large_batches_as_their_own_buffers() {
    let (_disk, mut log) = fresh(LogConfig::default());
    // Two batches of about 40 KiB, then two small ones.
    for (count, tag) in [(40, "a"), (40, "b"), (2, "c"), (2, "d")] {
        log.append_as_leader(&batch(count, 1000, tag), LeaderEpoch(1))
            .unwrap();
    }
    let end = log.log_end();
    let chunked = log.read_chunks(Offset(0), 1 << 20, end).unwrap();
    let joined = log.read(Offset(0), 1 << 20, end).unwrap();
    assert_eq!((chunked.next_offset, joined.next_offset), (end, end));
    let chunks = chunked.records.into_vec();
    assert_eq!(
        chunks.len(),
        3,
        "two large batches apart, the small ones joined"
    );
    assert_eq!(chunks.concat(), joined.records.to_vec());
    let got: Vec<String> = decode(&joined.records)
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    let want = [
        values("a", 40),
        values("b", 40),
        values("c", 2),
        values("d", 2),
    ]
    .concat();
    assert_eq!(got, want);
}

#[test]
fn reads_stop_below_the_upper_bound_and_start_at_the_containing_batch() {
    let (_disk, mut log) = fresh(LogConfig::default());
    for tag in ["a", "b", "c"] {
        log.append_as_leader(&batch(3, 10, tag), LeaderEpoch(0))
            .unwrap();
    }
    // Batches cover [0,2], [3,5], [6,8].
    let cases = [
        // (from, upper, offsets returned)
        (0, 9, 0..9),
        (0, 3, 0..3),
        (0, 5, 0..3), // [3,5] reaches 5: excluded whole
        (4, 9, 3..9), // starts at the batch containing 4
        (4, 6, 3..6),
        (3, 3, 0..0),
        (9, 9, 0..0),
    ];
    for (from, upper, want) in cases {
        let read = log.read(Offset(from), 1 << 20, Offset(upper)).unwrap();
        let got: Vec<i64> = decode(&read.records).into_iter().map(|(o, _)| o).collect();
        assert_eq!(
            got,
            want.clone().collect::<Vec<_>>(),
            "from {from} upper {upper}"
        );
        let next = if want.is_empty() {
            from
        } else {
            want.end as u64
        };
        assert_eq!(read.next_offset, Offset(next), "from {from} upper {upper}");
    }
}

#[test]
fn max_bytes_limits_reads_but_a_first_batch_always_comes_whole() {
    let (_disk, mut log) = fresh(LogConfig::default());
    for tag in ["a", "b", "c"] {
        log.append_as_leader(&batch(2, 100, tag), LeaderEpoch(0))
            .unwrap();
    }
    let one = log.read(Offset(0), 1, Offset(6)).unwrap();
    assert_eq!(
        decode(&one.records).len(),
        2,
        "one whole batch despite max_bytes 1"
    );
    let size = one.records.len();
    let two = log.read(Offset(0), 2 * size, Offset(6)).unwrap();
    assert_eq!(decode(&two.records).len(), 4);
    let almost = log.read(Offset(0), 2 * size - 1, Offset(6)).unwrap();
    assert_eq!(decode(&almost.records).len(), 2);
}

#[test]
fn reads_outside_the_log_are_out_of_range() {
    let (_disk, mut log) = fresh(LogConfig::default());
    log.append_as_leader(&batch(3, 10, "a"), LeaderEpoch(0))
        .unwrap();
    match log.read(Offset(4), 1024, Offset(3)) {
        Err(LogError::OffsetOutOfRange {
            offset,
            log_start,
            log_end,
        }) => {
            assert_eq!(
                (offset, log_start, log_end),
                (Offset(4), Offset(0), Offset(3))
            );
        }
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }
    let at_end = log.read(Offset(3), 1024, Offset(3)).unwrap();
    assert!(at_end.records.is_empty());
}

#[test]
fn bad_input_gets_a_typed_error_and_changes_nothing() {
    let (disk, mut log) = fresh(LogConfig {
        max_batch_bytes: 500,
        ..LogConfig::default()
    });
    log.append_as_leader(&batch(2, 10, "ok"), LeaderEpoch(0))
        .unwrap();
    let before = snapshot(&disk);

    let mut corrupt = batch(2, 10, "x").to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x40;
    let good = batch(1, 10, "y");
    let mut second_bad = good.to_vec();
    second_bad.extend_from_slice(&corrupt);

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("crc", corrupt),
        ("second batch corrupt", second_bad),
        ("empty", Vec::new()),
        (
            "garbage",
            b"not a record batch at all, not even close to one".to_vec(),
        ),
        ("too large", batch(10, 100, "big").to_vec()),
    ];
    for (name, records) in cases {
        let err = log.append_as_leader(&records, LeaderEpoch(0)).unwrap_err();
        match (name, &err) {
            ("too large", LogError::RecordTooLarge { max: 500, .. }) => {}
            ("too large", _) => panic!("{name}: {err:?}"),
            (_, LogError::CorruptRecord { .. }) => {}
            _ => panic!("{name}: expected CorruptRecord, got {err:?}"),
        }
        assert_eq!(log.log_end(), Offset(2), "{name} moved the log end");
    }
    assert_eq!(snapshot(&disk), before, "rejected appends wrote to disk");
}

#[test]
fn follower_appends_keep_offsets_and_reject_gaps_and_overlaps() {
    let (_disk, mut log) = fresh(LogConfig::default());
    log.append_as_follower(&batch_at(0, 1, 3, 10, 1, "a"))
        .unwrap();
    let info = log
        .append_as_follower(&batch_at(3, 2, 2, 10, 1, "b"))
        .unwrap();
    assert_eq!(
        (info.first_offset, info.last_offset),
        (Offset(3), Offset(4))
    );

    for (name, base) in [("overlap", 4), ("gap", 6), ("repeat", 0)] {
        match log.append_as_follower(&batch_at(base, 2, 1, 10, 1, name)) {
            Err(LogError::NonContiguousAppend { expected, got }) => {
                assert_eq!((expected, got), (Offset(5), Offset(base)), "{name}");
            }
            other => panic!("{name}: expected NonContiguousAppend, got {other:?}"),
        }
    }
    // Two batches in one call must chain too.
    let mut chained = batch_at(5, 2, 1, 10, 1, "c").to_vec();
    chained.extend_from_slice(&batch_at(7, 2, 1, 10, 1, "d"));
    assert!(matches!(
        log.append_as_follower(&chained),
        Err(LogError::NonContiguousAppend { .. })
    ));
    // An epoch older than the log's newest is refused.
    assert!(matches!(
        log.append_as_follower(&batch_at(5, 1, 1, 10, 1, "old")),
        Err(LogError::FencedLeaderEpoch { .. })
    ));
    assert_eq!(log.log_end(), Offset(5));
    assert_eq!(read_all(&log, Offset(5), 1 << 20).len(), 5);
}

#[test]
fn leader_epochs_are_cached_and_answer_offset_for_leader_epoch() {
    let (disk, mut log) = fresh(LogConfig::default());
    log.append_as_leader(&batch(4, 10, "a"), LeaderEpoch(1))
        .unwrap(); // 0..=3
    log.append_as_leader(&batch(4, 10, "b"), LeaderEpoch(3))
        .unwrap(); // 4..=7
    log.append_as_leader(&batch(2, 10, "c"), LeaderEpoch(3))
        .unwrap(); // 8..=9
    assert!(matches!(
        log.append_as_leader(&batch(1, 10, "stale"), LeaderEpoch(2)),
        Err(LogError::FencedLeaderEpoch {
            epoch: LeaderEpoch(2),
            latest: LeaderEpoch(3)
        })
    ));
    let end_for = |log: &raftline_broker::log::Log, e| log.end_offset_for_epoch(LeaderEpoch(e));
    assert_eq!(end_for(&log, 1), Some((LeaderEpoch(1), Offset(4))));
    assert_eq!(end_for(&log, 2), Some((LeaderEpoch(1), Offset(4))));
    assert_eq!(end_for(&log, 3), Some((LeaderEpoch(3), Offset(10))));
    assert_eq!(end_for(&log, 4), None);

    // KIP-279: a new leader's epoch starts at its log end before any append.
    log.assign_epoch(LeaderEpoch(5)).unwrap();
    assert_eq!(end_for(&log, 3), Some((LeaderEpoch(3), Offset(10))));
    assert_eq!(end_for(&log, 5), Some((LeaderEpoch(5), Offset(10))));

    // The cache survives a reopen (minus the empty epoch 5, as in Kafka).
    drop(log);
    let log = open(&disk, LogConfig::default());
    let entries: Vec<_> = log.epoch_cache().entries().collect();
    assert_eq!(
        entries,
        vec![(LeaderEpoch(1), Offset(0)), (LeaderEpoch(3), Offset(4))]
    );
}

#[test]
fn truncation_removes_the_containing_batch_and_its_epochs() {
    let (disk, mut log) = fresh(small_config());
    for (i, epoch) in [1, 1, 2, 2, 3, 3].into_iter().enumerate() {
        log.append_as_leader(&batch(5, 60, &format!("b{i}")), LeaderEpoch(epoch))
            .unwrap();
    }
    assert!(
        log.segments().len() > 2,
        "test needs several segments: {:?}",
        log.segments()
    );
    // Offset 12 is inside batch [10, 14]: that whole batch goes.
    let end = log.truncate_to(Offset(12)).unwrap();
    assert_eq!(end, Offset(10));
    assert_eq!(log.log_end(), Offset(10));
    // Epochs 2 and 3 started in the removed suffix: only epoch 1 is left.
    assert_eq!(log.latest_epoch(), Some((LeaderEpoch(1), Offset(0))));
    assert_eq!(
        log.end_offset_for_epoch(LeaderEpoch(1)),
        Some((LeaderEpoch(1), Offset(10)))
    );
    assert_eq!(log.end_offset_for_epoch(LeaderEpoch(2)), None);
    assert_eq!(read_all(&log, log.log_end(), 1 << 20).len(), 10);

    // New data after the cut, then a reopen: exactly the surviving prefix plus it.
    log.append_as_leader(&batch(2, 10, "new"), LeaderEpoch(4))
        .unwrap();
    log.flush(0).unwrap();
    drop(log);
    let log = open(&disk, small_config());
    let all = read_all(&log, log.log_end(), 1 << 20);
    assert_eq!(all.len(), 12);
    assert_eq!(all[10], (10, "new-0".to_string()));
    assert_eq!(
        log.end_offset_for_epoch(LeaderEpoch(3)),
        Some((LeaderEpoch(1), Offset(10)))
    );
}

#[test]
fn truncating_at_or_past_the_end_is_a_no_op_and_below_the_start_an_error() {
    let (_disk, mut log) = fresh(LogConfig::default());
    log.append_as_leader(&batch(3, 10, "a"), LeaderEpoch(0))
        .unwrap();
    assert_eq!(log.truncate_to(Offset(3)).unwrap(), Offset(3));
    assert_eq!(log.truncate_to(Offset(99)).unwrap(), Offset(3));
    assert_eq!(log.truncate_to(Offset(0)).unwrap(), Offset(0));
    assert_eq!(log.log_end(), Offset(0));
    log.truncate_fully_and_start_at(Offset(100)).unwrap();
    assert_eq!((log.log_start(), log.log_end()), (Offset(100), Offset(100)));
    assert!(matches!(
        log.truncate_to(Offset(5)),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    let info = log
        .append_as_follower(&batch_at(100, 0, 2, 10, 1, "x"))
        .unwrap();
    assert_eq!(info.first_offset, Offset(100));
}

#[test]
fn offset_for_timestamp_finds_the_first_batch_at_or_after_it() {
    let (_disk, mut log) = fresh(small_config());
    for (i, ts) in [100, 200, 200, 300, 250, 400].into_iter().enumerate() {
        log.append_as_follower(&batch_at(i as u64 * 4, 0, 4, 50, ts, "t"))
            .unwrap();
    }
    assert!(log.segments().len() > 1);
    let cases = [
        (0, Some((0, 100))),
        (100, Some((0, 100))),
        (150, Some((4, 200))),
        (201, Some((12, 300))),
        (260, Some((12, 300))),
        (301, Some((20, 400))),
        (401, None),
    ];
    for (ts, want) in cases {
        let got = log.offset_for_timestamp(ts).unwrap();
        assert_eq!(got, want.map(|(o, t)| (Offset(o), t)), "timestamp {ts}");
    }
}

#[test]
fn segments_roll_by_size_and_age_with_kafka_file_names() {
    let (disk, mut log) = fresh(small_config());
    for i in 0..8 {
        log.append_as_leader(&batch(4, 60, &format!("s{i}")), LeaderEpoch(0))
            .unwrap();
    }
    let segments = log.segments();
    assert!(segments.len() >= 3, "{segments:?}");
    for s in &segments {
        assert!(s.size <= 1024, "segment over segment.bytes: {s:?}");
        assert!(disk.exists(&path(&seg(s.base.0, "log"))));
    }
    for pair in segments.windows(2) {
        assert_eq!(
            pair[0].next_offset, pair[1].base,
            "segments must be contiguous"
        );
        assert!(
            disk.exists(&path(&seg(pair[0].base.0, "index"))),
            "sealed segment has an index"
        );
    }

    let aged = LogConfig {
        segment_age: Some(std::time::Duration::from_millis(1_000)),
        ..LogConfig::default()
    };
    let (_disk, mut log) = fresh(aged);
    log.append_as_follower(&batch_at(0, 0, 1, 10, 10_000, "a"))
        .unwrap();
    log.append_as_follower(&batch_at(1, 0, 1, 10, 10_999, "b"))
        .unwrap();
    assert_eq!(log.segments().len(), 1, "not old enough yet");
    log.append_as_follower(&batch_at(2, 0, 1, 10, 11_000, "c"))
        .unwrap();
    assert_eq!(log.segments().len(), 2, "segment.ms reached: rolled");
    assert_eq!(log.segments()[1].base, Offset(2));
}

/// The writer runs an append that rolls off the runtime's thread, so it must
/// know one before it runs: `rolls_for_size` foresees every roll for size. A
/// roll syncs four times, and a crash right after it keeps every sealed
/// segment's index files.
#[test]
fn a_roll_is_foreseen_and_costs_four_syncs_that_a_crash_keeps() {
    let (disk, mut log) = fresh(small_config());
    let mut rolls = 0;
    for i in 0..16 {
        let records = batch(1 + i % 4, 60, &format!("r{i}"));
        let foreseen = log.rolls_for_size(records.len() as u64);
        let (segments, syncs) = (log.segments().len(), disk.syncs());
        log.append_as_leader(&records, LeaderEpoch(0)).unwrap();
        let rolled = log.segments().len() > segments;
        assert_eq!(foreseen, rolled, "append {i}");
        if rolled {
            rolls += 1;
            assert_eq!(
                disk.syncs() - syncs,
                4,
                "the sealed segment, its two index files, the directory once"
            );
        }
    }
    assert!(rolls >= 3, "{rolls} rolls");
    log.flush(0).unwrap();
    let (end, bases) = (
        log.log_end(),
        log.segments().iter().map(|s| s.base).collect::<Vec<_>>(),
    );
    drop(log);
    disk.crash();
    let log = open(&disk, small_config());
    assert_eq!(log.log_end(), end);
    assert_eq!(
        log.segments().iter().map(|s| s.base).collect::<Vec<_>>(),
        bases
    );
    assert_eq!(
        log.recovery().rebuilt_indexes,
        Vec::<Offset>::new(),
        "the index files' names were made durable by the roll's one directory sync"
    );
}

#[test]
fn a_produce_request_carries_one_batch_whose_count_matches_its_offsets() {
    let (_disk, mut log) = fresh(LogConfig::default());
    let mut two = batch(1, 10, "a").to_vec();
    two.extend_from_slice(&batch(1, 10, "b"));
    let skewed = with_field(&batch(3, 10, "c"), LAST_OFFSET_DELTA, &7i32.to_be_bytes());
    let empty = with_field(&batch(1, 10, "d"), RECORDS_COUNT, &0i32.to_be_bytes());
    for (name, records) in [
        ("two batches", two.into()),
        ("delta 7 for 3 records", skewed),
        ("zero records", empty),
    ] {
        match log.append_as_leader(&records, LeaderEpoch(0)) {
            Err(LogError::InvalidRecord { reason }) => assert!(!reason.is_empty()),
            other => panic!("{name}: expected InvalidRecord, got {other:?}"),
        }
    }
    assert_eq!(log.log_end(), Offset(0));
    assert!(matches!(
        log.append_as_leader(&batch(1, 10, "e"), LeaderEpoch(i32::MAX as u32 + 1)),
        Err(LogError::InvalidRecord { .. })
    ));
    assert!(matches!(
        log.assign_epoch(LeaderEpoch(u32::MAX)),
        Err(LogError::InvalidRecord { .. })
    ));
}

#[test]
fn follower_batches_may_be_sparse_but_not_overfull_and_spans_stay_indexable() {
    let (_disk, mut log) = fresh(LogConfig::default());
    let overfull = with_field(
        &batch_at(0, 0, 3, 10, 1, "o"),
        RECORDS_COUNT,
        &5i32.to_be_bytes(),
    );
    assert!(matches!(
        log.append_as_follower(&overfull),
        Err(LogError::InvalidRecord { .. })
    ));

    // Compacted batches: one record standing for 2^31 offsets.
    let half = 1u64 << 31;
    let sparse = |base: u64| {
        with_field(
            &batch_at(base, 0, 1, 10, 1, "s"),
            LAST_OFFSET_DELTA,
            &((half - 1) as i32).to_be_bytes(),
        )
    };
    let mut all = sparse(0).to_vec();
    all.extend_from_slice(&sparse(half));
    all.extend_from_slice(&sparse(2 * half));
    assert!(
        matches!(
            log.append_as_follower(&all),
            Err(LogError::InvalidRecord { .. })
        ),
        "one append may not span more than 2^32 offsets"
    );
    for base in [0, half, 2 * half] {
        log.append_as_follower(&sparse(base)).unwrap();
    }
    assert_eq!(log.log_end(), Offset(3 * half));
    assert_eq!(
        log.segments().len(),
        2,
        "rolled before relative offsets overflowed"
    );
    for (from, want) in [(5, 0), (half + 1, half), (2 * half + 7, 2 * half)] {
        let read = log.read(Offset(from), 1 << 20, log.log_end()).unwrap();
        assert_eq!(decode(&read.records)[0].0 as u64, want, "read at {from}");
    }
}

#[test]
fn a_follower_continues_the_leaders_epoch_after_recording_an_empty_one() {
    let (_disk, mut log) = fresh(LogConfig::default());
    log.append_as_leader(&batch(4, 10, "a"), LeaderEpoch(4))
        .unwrap();
    // Elected for epoch 5 (KIP-279: recorded at once), then it lost leadership
    // before writing; the epoch-6 leader's log continues epoch 4 from here.
    log.assign_epoch(LeaderEpoch(5)).unwrap();
    log.append_as_follower(&batch_at(4, 4, 2, 10, 1, "b"))
        .unwrap();
    let entries: Vec<_> = log.epoch_cache().entries().collect();
    assert_eq!(entries, vec![(LeaderEpoch(4), Offset(0))]);
    log.append_as_follower(&batch_at(6, 6, 1, 10, 1, "c"))
        .unwrap();
    // Records of epoch 6 now exist: an epoch-4 batch after them is refused.
    assert!(matches!(
        log.append_as_follower(&batch_at(7, 4, 1, 10, 1, "d")),
        Err(LogError::FencedLeaderEpoch { .. })
    ));
}

#[test]
fn offset_for_timestamp_finds_the_record_inside_a_batch() {
    let (_disk, mut log) = fresh(LogConfig::default());
    log.append_as_follower(&batch_with_timestamps(0, 0, &[100, 150, 200], 10, "a"))
        .unwrap();
    log.append_as_follower(&batch_with_timestamps(3, 0, &[250, 240, 300], 10, "b"))
        .unwrap();
    let cases = [
        (0, Some((0, 100))),
        (150, Some((1, 150))),
        (151, Some((2, 200))),
        (201, Some((3, 250))),
        (260, Some((5, 300))),
        (301, None),
    ];
    for (ts, want) in cases {
        let got = log.offset_for_timestamp(ts).unwrap();
        assert_eq!(got, want.map(|(o, t)| (Offset(o), t)), "timestamp {ts}");
    }
}

#[test]
fn truncation_cuts_producer_state_to_what_a_rebuild_from_disk_finds() {
    // One segment: a rebuild reads the last two, so it sees every batch.
    let (disk, mut log) = fresh(LogConfig::default());
    // Two producers, interleaved, fewer batches each than are remembered
    // (beyond that the cut keeps fewer than a rebuild: see ProducerStates).
    for i in 0..4 {
        for (pid, tag) in [(7, "a"), (8, "b")] {
            log.append_as_leader(&producer_batch((pid, 0, i * 3), 3, tag), LeaderEpoch(0))
                .unwrap();
        }
    }
    log.flush(0).unwrap();
    // Cut inside the last batch of producer 7: it and producer 8's after it go.
    let end = log.truncate_to(Offset(log.log_end().0 - 4)).unwrap();
    assert_eq!(end, Offset(18));
    let cut = log.producers().clone();
    drop(log);
    let reopened = open(&disk, LogConfig::default());
    assert_eq!(
        &cut,
        reopened.producers(),
        "in-memory cut agrees with a rebuild"
    );
    assert_eq!(cut.len(), 2);
}

#[test]
fn reads_of_the_newest_leader_batches_match_the_files() {
    // The leader keeps its newest batches in memory and serves reads that
    // start at one of them from there; a reopened log has only the files.
    let (disk, mut log) = fresh(LogConfig::default());
    let mut starts = Vec::new();
    for (i, count) in [3, 1, 7, 2, 5].into_iter().enumerate() {
        let info = log
            .append_as_leader(
                &batch(count, 100 + i * 50, &format!("b{i}")),
                LeaderEpoch(2),
            )
            .unwrap();
        starts.push(info.first_offset);
    }
    let end = log.log_end();
    let reopened = open(&disk, LogConfig::default());
    for &from in &starts {
        for max_bytes in [1, 500, 1500, 1 << 20] {
            for upper in [from.plus(1), from.plus(6), end] {
                let live = log.read(from, max_bytes, upper).unwrap();
                let files = reopened.read(from, max_bytes, upper).unwrap();
                assert_eq!(
                    (live.records, live.next_offset),
                    (files.records, files.next_offset),
                    "from {from:?}, max {max_bytes}, upper {upper:?}"
                );
            }
        }
    }
    drop(reopened);
    // A truncation drops what it cut: the same offsets written again read
    // as the new batches.
    log.truncate_to(starts[2]).unwrap();
    log.append_as_leader(&batch(4, 10, "new"), LeaderEpoch(3))
        .unwrap();
    let read = log.read(starts[2], 1 << 20, log.log_end()).unwrap();
    let got: Vec<String> = decode(&read.records).into_iter().map(|(_, v)| v).collect();
    assert_eq!(got, values("new", 4));
    let all: Vec<String> = read_all(&log, log.log_end(), 1 << 20)
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        all,
        [values("b0", 3), values("b1", 1), values("new", 4)].concat()
    );
}
