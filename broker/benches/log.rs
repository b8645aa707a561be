//! Partition log throughput on real files (criterion).
//!
//! `cargo bench -p raftline-broker --bench log`
//!
//! - append: ~16 KiB batches of 100 B and 1 KiB records, with fsync off
//!   (`FlushPolicy::Never`), with an fsync after every batch by a single writer
//!   (`EveryAppend`, nothing to share), and through the writer task with 8
//!   concurrent appenders (group commit).
//! - read: sequential 1 MiB reads of a 256 MiB log (mostly from the page cache).
//! - compaction: one cleaner pass over 64 MiB of sealed 8 MiB segments of
//!   100 B records under 10,000 keys (each key written ~50 times), next to
//!   its raw baseline in the same run: copying the same files (read, write,
//!   fsync), the least a rewrite costs.
//!
//! Files go under `$RAFTLINE_BENCH_DIR` (default: the system temp dir). Retention
//! keeps the log near 256 MiB so long runs do not fill the disk.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use raftline_broker::clock::SystemClock;
use raftline_broker::log::{spawn_writer, CleanupPolicy, FlushPolicy, Log, LogConfig};
use raftline_broker::storage::FsStorage;
use raftline_broker::{LeaderEpoch, Offset};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BATCH_BYTES: usize = 16 * 1024;

/// A ~16 KiB batch of `record_size`-byte values and its record count.
fn batch(record_size: usize) -> (Bytes, u64) {
    keyed_batch(record_size, |_| None)
}

/// A ~16 KiB batch whose record `i` has key `key(i)`.
fn keyed_batch(record_size: usize, key: impl Fn(usize) -> Option<Bytes>) -> (Bytes, u64) {
    let count = BATCH_BYTES / (record_size + 8);
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: 1_700_000_000_000,
            key: key(i),
            value: Some(Bytes::from(vec![b'x'; record_size])),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
    (buf.freeze(), count as u64)
}

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("RAFTLINE_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

fn config(flush: FlushPolicy) -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 20,
        retention_bytes: Some(256 << 20),
        retention_age: None,
        flush,
        ..LogConfig::default()
    }
}

fn open(dir: &tempfile::TempDir, flush: FlushPolicy) -> Log {
    Log::open(
        Arc::new(FsStorage),
        dir.path().join("bench-0"),
        config(flush),
    )
    .unwrap()
}

/// Appends one batch; every 64 MiB, applies retention (as a broker's background
/// task would) so the log stays bounded.
fn append(log: &mut Log, records: &[u8], appended: &mut u64) {
    log.append_as_leader(records, LeaderEpoch(0)).unwrap();
    *appended += records.len() as u64;
    if *appended >= 64 << 20 {
        *appended = 0;
        log.apply_retention(0, log.log_end()).unwrap();
    }
}

fn appends(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    for (record_size, label) in [(100, "100B"), (1024, "1KiB")] {
        let (records, count) = batch(record_size);
        group.throughput(Throughput::ElementsAndBytes {
            elements: count,
            bytes: records.len() as u64,
        });

        group.bench_function(BenchmarkId::new("fsync_off", label), |b| {
            let dir = bench_dir();
            let mut log = open(&dir, FlushPolicy::Never);
            let mut appended = 0;
            b.iter(|| append(&mut log, &records, &mut appended));
        });

        group.bench_function(BenchmarkId::new("fsync_each_batch", label), |b| {
            let dir = bench_dir();
            let mut log = open(&dir, FlushPolicy::EveryAppend);
            let mut appended = 0;
            b.iter(|| {
                append(&mut log, &records, &mut appended);
                log.flush(0).unwrap();
            });
        });

        group.bench_function(BenchmarkId::new("group_commit_8_writers", label), |b| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let dir = bench_dir();
            let log = open(&dir, FlushPolicy::EveryAppend);
            let (handle, _task) =
                runtime.block_on(async { spawn_writer(log, Arc::new(SystemClock)) });
            b.iter_custom(|iters| {
                let writers = 8;
                let per_writer = iters.div_ceil(writers);
                let start = Instant::now();
                runtime.block_on(async {
                    let tasks: Vec<_> = (0..writers)
                        .map(|_| {
                            let handle = handle.clone();
                            let records = records.clone();
                            tokio::spawn(async move {
                                for _ in 0..per_writer {
                                    handle
                                        .append_as_leader(records.clone(), LeaderEpoch(0))
                                        .await
                                        .unwrap();
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.unwrap();
                    }
                });
                // Count what ran (iters rounded up to whole writers).
                start
                    .elapsed()
                    .mul_f64(iters as f64 / (per_writer * writers) as f64)
            });
        });
    }
    group.finish();
}

fn reads(c: &mut Criterion) {
    let mut group = c.benchmark_group("read");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    let (records, _) = batch(1024);
    let dir = bench_dir();
    let mut log = open(&dir, FlushPolicy::Never);
    while log.size_bytes() < 256 << 20 {
        log.append_as_leader(&records, LeaderEpoch(0)).unwrap();
    }
    let end = log.log_end();
    let max_bytes = 1 << 20;
    group.throughput(Throughput::Bytes(
        log.read(Offset(0), max_bytes, end).unwrap().records.len() as u64,
    ));
    group.bench_function("sequential_1MiB_reads", |b| {
        let mut from = Offset(0);
        b.iter(|| {
            let read = log.read(from, max_bytes, end).unwrap();
            from = if read.next_offset >= end {
                Offset(0)
            } else {
                read.next_offset
            };
            read.records.len()
        });
    });
    group.finish();
}

const COMPACTION_LOG: u64 = 64 << 20;
const KEYS: usize = 10_000;

/// A compacted log of ~64 MiB in sealed segments, keys cycling over `KEYS`.
fn compaction_log(dir: &tempfile::TempDir) -> Log {
    let config = LogConfig {
        segment_bytes: 8 << 20,
        retention_age: None,
        flush: FlushPolicy::Never,
        cleanup: CleanupPolicy {
            delete: false,
            compact: true,
        },
        min_cleanable_dirty_permille: 0,
        ..LogConfig::default()
    };
    let mut log = Log::open(Arc::new(FsStorage), dir.path().join("compact-0"), config).unwrap();
    let mut next = 0usize;
    while log.size_bytes() < COMPACTION_LOG + (8 << 20) {
        let (records, count) = keyed_batch(100, |i| {
            Some(Bytes::from(format!("key-{:05}", (next + i) % KEYS)))
        });
        next += count as usize;
        log.append_as_leader(&records, LeaderEpoch(0)).unwrap();
    }
    log.flush(0).unwrap();
    log
}

fn compaction(c: &mut Criterion) {
    let mut group = c.benchmark_group("compaction");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    let probe = bench_dir();
    let sealed: u64 = {
        let log = compaction_log(&probe);
        let segments = log.segments();
        segments[..segments.len() - 1].iter().map(|s| s.size).sum()
    };
    group.throughput(Throughput::Bytes(sealed));
    group.bench_function("clean_64MiB_10k_keys", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = bench_dir();
                let mut log = compaction_log(&dir);
                let end = log.log_end();
                let start = Instant::now();
                let out = log.clean(end, 1_700_000_000_000).unwrap().unwrap();
                total += start.elapsed();
                assert!(out.bytes_after < out.bytes_before / 10);
            }
            total
        });
    });
    group.bench_function("baseline_copy_fsync", |b| {
        let source = probe.path().join("compact-0");
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&source)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        files.sort();
        files.pop(); // the active segment is not cleaned
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = bench_dir();
                let start = Instant::now();
                for (i, file) in files.iter().enumerate() {
                    let bytes = std::fs::read(file).unwrap();
                    let copy = dir.path().join(format!("{i}.copy"));
                    std::fs::write(&copy, &bytes).unwrap();
                    std::fs::File::open(&copy).unwrap().sync_data().unwrap();
                }
                total += start.elapsed();
            }
            total
        });
    });
    group.finish();
}

criterion_group!(benches, appends, reads, compaction);
criterion_main!(benches);
