//! Shared helpers: batches built with kafka-protocol's encoder, logs on a fresh
//! in-memory disk, and disk snapshots for crash tests.

#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use raftline_broker::log::{Log, LogConfig};
use raftline_broker::records::{encode_batch, NewRecord};
use raftline_broker::storage::{self, MemStorage, OpenMode, Storage};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The partition directory every test uses on its in-memory disk.
pub fn dir() -> PathBuf {
    PathBuf::from("/data/orders-0")
}

/// A RecordBatch v2 of `count` records with values `"{tag}-{i}"` padded to
/// `value_len`, base offset `base`, leader epoch `epoch`, all at `timestamp`.
pub fn batch_at(
    base: u64,
    epoch: i32,
    count: usize,
    value_len: usize,
    timestamp: i64,
    tag: &str,
) -> Bytes {
    batch_with_timestamps(base, epoch, &vec![timestamp; count], value_len, tag)
}

/// A RecordBatch v2 with one record per timestamp in `timestamps`.
pub fn batch_with_timestamps(
    base: u64,
    epoch: i32,
    timestamps: &[i64],
    value_len: usize,
    tag: &str,
) -> Bytes {
    build_batch(base, epoch, timestamps, value_len, tag, None)
}

/// An idempotent producer's batch of `count` records: producer id, epoch and
/// base sequence as given, base offset 0 and no leader epoch (as sent).
pub fn producer_batch(producer: (i64, i16, i32), count: usize, tag: &str) -> Bytes {
    build_batch(0, -1, &vec![1_000; count], 0, tag, Some(producer))
}

fn build_batch(
    base: u64,
    epoch: i32,
    timestamps: &[i64],
    value_len: usize,
    tag: &str,
    producer: Option<(i64, i16, i32)>,
) -> Bytes {
    let records: Vec<Record> = timestamps
        .iter()
        .enumerate()
        .map(|(i, &timestamp)| {
            let mut value = format!("{tag}-{i}").into_bytes();
            value.resize(value_len.max(value.len()), b'.');
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: epoch,
                producer_id: producer.map_or(-1, |p| p.0),
                producer_epoch: producer.map_or(-1, |p| p.1),
                timestamp_type: TimestampType::Creation,
                offset: (base + i as u64) as i64,
                // The encoder keeps records in one batch only while offset - sequence
                // stays constant.
                sequence: producer.map_or(0, |p| p.2) + i as i32,
                timestamp,
                key: None,
                value: Some(Bytes::from(value)),
                headers: Default::default(),
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    if let Err(e) = RecordBatchEncoder::encode(&mut buf, &records, &options) {
        panic!("encoding a test batch failed: {e}");
    }
    buf.freeze()
}

/// A batch as a producer sends it of `(key, value)` records (a `None` value
/// is a tombstone), all at `timestamp`.
pub fn keyed_batch(records: &[(&str, Option<&str>)], timestamp: i64) -> Bytes {
    let records: Vec<NewRecord> = records
        .iter()
        .map(|(key, value)| NewRecord {
            key: Some(Bytes::copy_from_slice(key.as_bytes())),
            value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            timestamp,
        })
        .collect();
    encode_batch(&records, None).unwrap_or_else(|e| panic!("encoding a test batch failed: {e}"))
}

/// Decodes batches into `(offset, key, value)`.
pub fn decode_keyed(records: &[u8]) -> Vec<(i64, String, Option<String>)> {
    let mut buf = Bytes::copy_from_slice(records);
    let sets = RecordBatchDecoder::decode_all(&mut buf).unwrap_or_else(|e| panic!("decode: {e}"));
    let text = |b: Bytes| String::from_utf8_lossy(&b).into_owned();
    sets.into_iter()
        .flat_map(|set| set.records)
        .map(|r| {
            (
                r.offset,
                r.key.map(text).unwrap_or_default(),
                r.value.map(text),
            )
        })
        .collect()
}

/// Everything readable below `upper` as `(offset, key, value)`.
pub fn read_keyed(log: &Log, upper: raftline_broker::Offset) -> Vec<(i64, String, Option<String>)> {
    let mut from = log.log_start();
    let mut out = Vec::new();
    while from < upper {
        let read = log
            .read(from, 700, upper)
            .unwrap_or_else(|e| panic!("read at {from}: {e}"));
        if read.records.is_empty() {
            break;
        }
        out.extend(decode_keyed(&read.records));
        assert!(read.next_offset > from, "a read must progress");
        from = read.next_offset;
    }
    out
}

/// A batch as a producer sends it: base offset 0, no epoch, timestamp 1000.
pub fn batch(count: usize, value_len: usize, tag: &str) -> Bytes {
    batch_at(0, 0, count, value_len, 1_000, tag)
}

/// Decodes batches into `(offset, value)` pairs, checking them with
/// kafka-protocol's decoder (CRC included), as a Kafka client would.
pub fn decode(records: &[u8]) -> Vec<(i64, String)> {
    let mut buf = Bytes::copy_from_slice(records);
    let sets = RecordBatchDecoder::decode_all(&mut buf).unwrap_or_else(|e| panic!("decode: {e}"));
    sets.into_iter()
        .flat_map(|set| set.records)
        .map(|r| {
            let value = r
                .value
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .unwrap_or_default();
            (r.offset, value.trim_end_matches('.').to_string())
        })
        .collect()
}

/// Small segments and a dense index, so a few batches span several segments.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        segment_age: None,
        retention_age: None,
        ..LogConfig::default()
    }
}

/// Opens the log in [`dir`] on `storage`.
pub fn open(storage: &MemStorage, config: LogConfig) -> Log {
    Log::open(Arc::new(storage.clone()), dir(), config).unwrap_or_else(|e| panic!("open: {e}"))
}

/// A log on a fresh in-memory disk.
pub fn fresh(config: LogConfig) -> (MemStorage, Log) {
    let storage = MemStorage::new();
    let log = open(&storage, config);
    (storage, log)
}

/// Every file in [`dir`], by name.
pub fn snapshot(storage: &MemStorage) -> BTreeMap<String, Vec<u8>> {
    let names = storage.list_dir(&dir()).unwrap_or_default();
    names
        .into_iter()
        .map(|name| {
            let bytes = storage::read_file(storage, &dir().join(&name)).unwrap_or_default();
            (name, bytes)
        })
        .collect()
}

/// A new disk holding `files` in [`dir`], all synced.
pub fn restore(files: &BTreeMap<String, Vec<u8>>) -> MemStorage {
    let storage = MemStorage::new();
    let d = dir();
    storage.create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
    for (name, bytes) in files {
        let file = storage
            .open(&d.join(name), OpenMode::CreateNew)
            .unwrap_or_else(|e| panic!("{e}"));
        file.write_all_at(bytes, 0)
            .unwrap_or_else(|e| panic!("{e}"));
        file.sync_data().unwrap_or_else(|e| panic!("{e}"));
    }
    storage.sync_dir(&d).unwrap_or_else(|e| panic!("{e}"));
    storage
}

/// Everything readable from the log start to `upper`, in reads of `max_bytes`.
pub fn read_all(log: &Log, upper: raftline_broker::Offset, max_bytes: usize) -> Vec<(i64, String)> {
    let mut from = log.log_start();
    let mut out = Vec::new();
    while from < upper {
        let read = log
            .read(from, max_bytes, upper)
            .unwrap_or_else(|e| panic!("read at {from}: {e}"));
        if read.records.is_empty() {
            break;
        }
        out.extend(decode(&read.records));
        from = read.next_offset;
    }
    out
}

/// The name of a segment file.
pub fn seg(base: u64, suffix: &str) -> String {
    format!("{base:020}.{suffix}")
}

/// Path of a file in [`dir`].
pub fn path(name: &str) -> PathBuf {
    dir().join(Path::new(name))
}

/// Rewrites a big-endian header field of a single batch and fixes its CRC, to
/// build well-framed batches with odd contents.
pub fn with_field(batch: &[u8], at: usize, value: &[u8]) -> Bytes {
    let mut b = batch.to_vec();
    b[at..at + value.len()].copy_from_slice(value);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

/// Byte offsets of RecordBatch v2 header fields.
pub const LAST_OFFSET_DELTA: usize = 23;
/// Byte offset of `recordsCount`.
pub const RECORDS_COUNT: usize = 57;
