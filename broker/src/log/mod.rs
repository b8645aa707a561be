//! The partition log: an ordered set of segments in one directory, with the
//! leader-epoch cache beside them.
//!
//! ```text
//! <topic>-<partition>/
//!   00000000000000000000.log        RecordBatch v2 batches, stored as received
//!   00000000000000000000.index      sparse offset -> position (sealed segments)
//!   00000000000000000000.timeindex  sparse timestamp -> offset (sealed segments)
//!   00000000000000004096.log        the active segment: appends go here
//!   leader-epoch-checkpoint         epoch -> start offset
//!   damaged                         present while recovery's finding of
//!                                   damage (synced records cut) is unreported
//!   compacted                       present once the log was opened compacted:
//!                                   gaps between batches are not damage
//! ```
//!
//! [`Log`] is a plain synchronous type with one owner (the partition's task): it
//! decides nothing about replication, it stores and serves batches.

mod batch;
mod compaction;
mod config;
mod epoch_cache;
mod index;
mod producers;
mod segment;
mod tail;
mod writer;

pub use batch::{parse_batches, BatchError, BatchHeader, HEADER_LEN};
pub use compaction::{records, CleanOutcome, RecordView};
pub use config::{CleanupPolicy, FlushPolicy, LogConfig, DEFAULT_CACHED_TAIL};
pub use epoch_cache::LeaderEpochCache;
pub use producers::{ProducerStates, SequenceCheck};
pub use segment::{cold_range, DAMAGE_SEARCH_MAX};
pub use tail::TailBudget;
pub use writer::{spawn_writer, Durable, Fence, LogHandle, WriterStats};

use crate::error::{LogError, LogResult};
use crate::position::{LeaderEpoch, Offset};
use crate::storage::{self, Storage, StorageFile, WriteError};
use bytes::Bytes;
use epoch_cache::CHECKPOINT_FILE;
use segment::{Segment, SegmentSettings};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What an append stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended.
    pub first_offset: Offset,
    /// Offset of the last record appended.
    pub last_offset: Offset,
    /// Batches appended; 0 when an idempotent producer's retry was answered
    /// with its first append's offsets and nothing was written.
    pub batches: usize,
    /// Bytes appended.
    pub bytes: u64,
    /// The largest record timestamp appended.
    pub max_timestamp: i64,
}

/// Whole batches in log order, in one or more buffers that each hold whole
/// batches: a read from the leader's in-memory tail returns the batches as
/// they were appended, so a sender that can gather buffers (the
/// replication wire) never joins them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chunks(Vec<Bytes>);

impl Chunks {
    /// Bytes in all.
    pub fn len(&self) -> usize {
        self.0.iter().map(Bytes::len).sum()
    }

    /// No bytes at all.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Bytes::is_empty)
    }

    /// One buffer: the chunk itself when there is one, else a copy of all.
    pub fn into_bytes(self) -> Bytes {
        let mut chunks = self.0;
        if chunks.len() <= 1 {
            return chunks.pop().unwrap_or_default();
        }
        let mut joined = Vec::with_capacity(chunks.iter().map(Bytes::len).sum());
        for chunk in &chunks {
            joined.extend_from_slice(chunk);
        }
        Bytes::from(joined)
    }

    /// The buffers, in order.
    pub fn into_vec(self) -> Vec<Bytes> {
        self.0
    }
}

impl From<Bytes> for Chunks {
    fn from(bytes: Bytes) -> Self {
        Chunks(if bytes.is_empty() {
            Vec::new()
        } else {
            vec![bytes]
        })
    }
}

impl From<Vec<Bytes>> for Chunks {
    fn from(chunks: Vec<Bytes>) -> Self {
        Chunks(chunks)
    }
}

/// Batches read from the log: [`Log::read`] joins them into one buffer,
/// [`Log::read_chunks`] leaves them in the buffers they were read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRead<R = Bytes> {
    /// Whole batches, concatenated as stored (empty when nothing is readable).
    pub records: R,
    /// The offset after the last batch returned: where the next read starts.
    pub next_offset: Offset,
    /// The log start offset at the time of the read.
    pub log_start: Offset,
    /// The log end offset at the time of the read.
    pub log_end: Offset,
}

impl LogRead<Chunks> {
    /// The same read with its batches in one buffer.
    pub fn joined(self) -> LogRead {
        LogRead {
            records: self.records.into_bytes(),
            next_offset: self.next_offset,
            log_start: self.log_start,
            log_end: self.log_end,
        }
    }
}

/// What [`Log::open`] found and repaired.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Bytes cut from segment tails (torn writes, corrupt batches).
    pub truncated_bytes: u64,
    /// Segments removed because an earlier segment had to be cut short.
    pub deleted_segments: Vec<Offset>,
    /// Sealed segments whose index files were missing or damaged and rebuilt.
    pub rebuilt_indexes: Vec<Offset>,
    /// Whether the leader-epoch checkpoint was missing or damaged and rebuilt.
    pub rebuilt_epoch_cache: bool,
    /// Why a scan stopped early, for the log line.
    pub reasons: Vec<String>,
    /// Whether records that had been synced (and so perhaps acknowledged)
    /// were cut, now or at an earlier open whose finding is not yet reported
    /// (see [`DAMAGE_MARK`]); a torn write or a zeroed tail left by a crash
    /// does not count.
    pub damaged: bool,
}

/// The file in a partition directory saying that recovery cut synced records
/// there. Written durably before the cut, so a crash cannot forget it; the
/// broker reports the partition to the controller at registration, then calls
/// [`clear_damage_mark`].
pub const DAMAGE_MARK: &str = "damaged";

/// The file in a partition directory saying the log is (or was) compacted,
/// so its batches may leave gaps between them. Recovery at startup runs
/// before the broker knows topic configs; this file tells it.
pub const COMPACTED_MARK: &str = "compacted";

/// Removes `dir`'s [`DAMAGE_MARK`] once the controller knows.
pub fn clear_damage_mark(storage: &dyn Storage, dir: &Path) -> std::io::Result<()> {
    let path = dir.join(DAMAGE_MARK);
    if storage.exists(&path) {
        storage.remove_file(&path)?;
        storage.sync_dir(dir)?;
    }
    Ok(())
}

/// One segment, for tools and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Offset of its first record.
    pub base: Offset,
    /// Offset after its last record.
    pub next_offset: Offset,
    /// Bytes.
    pub size: u64,
    /// Largest record timestamp.
    pub max_timestamp: Option<i64>,
}

/// A partition replica's log. See the module docs for the layout.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    storage: Arc<dyn Storage>,
    config: LogConfig,
    /// Contiguous segments by base offset; never empty; the last is active.
    segments: BTreeMap<Offset, Segment>,
    epochs: LeaderEpochCache,
    /// Everything below is fsynced. `<= log_end`.
    durable_end: Offset,
    /// Records appended since the last fsync, for `flush.messages`.
    unflushed_records: u64,
    /// When the last fsync ran (ms), for `flush.ms`.
    last_flush_ms: i64,
    /// Set by a failure that leaves the on-disk state unknown.
    failed: Option<String>,
    /// The newest leader appends, served to reads without the file.
    tail: tail::Tail,
    /// Idempotent producers' recent batches.
    producers: ProducerStates,
    recovery: RecoveryReport,
    /// Where the last cleaner pass ended (0 after open): compaction's dirty
    /// part starts here.
    cleaned_to: Offset,
    /// Whether batches may leave gaps: the log is compacted now or was
    /// (see [`COMPACTED_MARK`]).
    gaps: bool,
    /// Files of segments let go of (renamed `*.deleted`) and not yet
    /// removed: the writer removes them off its own task
    /// ([`take_retired`](Log::take_retired)).
    retired: Vec<PathBuf>,
}

/// An fsync begun by [`Log::begin_flush`]: [`run`](Self::run) it anywhere
/// (it blocks), then hand the outcome to [`Log::finish_flush`].
#[derive(Clone, Debug)]
pub struct PendingFlush {
    file: Arc<dyn StorageFile>,
    /// The base offset of the segment it syncs.
    segment: Offset,
    end: Offset,
}

impl PendingFlush {
    /// The fsync.
    pub fn run(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// The end of the name a deleted log's directory is renamed to (see
/// [`Log::delete_later`]): `<topic>-<partition>.<n>-delete`, as Kafka's.
/// Such a name is no partition's, so nothing opens it as a log.
pub const DELETED_DIR_SUFFIX: &str = "-delete";

/// Files of deleted segments to remove (see [`Log::take_retired`]), or a
/// deleted log's directory (see [`Log::delete_later`]).
pub struct RetiredFiles {
    storage: Arc<dyn Storage>,
    paths: Vec<PathBuf>,
    /// The directory the files are in, removed after them.
    dir: Option<PathBuf>,
}

impl RetiredFiles {
    /// Everything in `dir`, a deleted log's directory, and then `dir`.
    pub fn dead_dir(storage: Arc<dyn Storage>, dir: PathBuf) -> io::Result<RetiredFiles> {
        let paths = storage
            .list_dir(&dir)?
            .into_iter()
            .map(|name| dir.join(name))
            .collect();
        Ok(RetiredFiles {
            storage,
            paths,
            dir: Some(dir),
        })
    }

    /// Removes them (it blocks on a disk). A failure is only logged: the
    /// file stays behind under its `.deleted` name (or in its `-delete`
    /// directory) and the next start sweeps it.
    pub fn remove(self) {
        if let Err((path, e)) = self.try_remove() {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove a deleted log's file; the next start removes it");
        }
    }

    /// Removes every file (one missing already is fine), then the directory
    /// if there is one and every file went, durably; the first failure and
    /// its path.
    pub fn try_remove(self) -> Result<(), (PathBuf, io::Error)> {
        let mut first = None;
        for path in self.paths {
            match self.storage.remove_dead_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    first.get_or_insert((path, e));
                }
                _ => {}
            }
        }
        if let Some(failed) = first {
            return Err(failed);
        }
        let Some(dir) = self.dir else { return Ok(()) };
        let storage = &self.storage;
        let at = |path: &Path| {
            let path = path.to_path_buf();
            move |e| (path, e)
        };
        storage.sync_dir(&dir).map_err(at(&dir))?;
        storage.remove_dir(&dir).map_err(at(&dir))?;
        match dir.parent() {
            Some(parent) => storage.sync_dir(parent).map_err(at(parent)),
            None => Ok(()),
        }
    }
}

/// What [`Log::apply_retention`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Base offsets of the deleted segments.
    pub deleted_segments: Vec<Offset>,
    /// The log start offset afterwards.
    pub log_start: Offset,
}

/// `Duration` as whole milliseconds, saturating instead of wrapping.
fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn invalid(reason: String) -> LogError {
    LogError::InvalidRecord { reason }
}

/// Kafka carries leader epochs as `i32`: larger ones cannot be stamped.
fn check_epoch_range(epoch: LeaderEpoch) -> LogResult<()> {
    if epoch.0 > i32::MAX as u32 {
        return Err(invalid(format!("leader epoch {epoch} exceeds 2^31 - 1")));
    }
    Ok(())
}

/// The I/O error inside a [`WriteError`], for paths where either kind is fatal.
fn write_error_source(error: WriteError) -> std::io::Error {
    match error {
        WriteError::Write(e) | WriteError::Sync(e) => e,
    }
}

impl Log {
    /// Opens (or creates) the log in `dir`, recovering from any crash: the active
    /// segment is scanned and a torn or corrupt tail cut off; sealed segments with
    /// missing or damaged indexes are rebuilt by a scan; a corrupt sealed segment is
    /// cut at the damage and every later segment removed (a follower fetches the
    /// rest again from its leader).
    pub fn open(storage: Arc<dyn Storage>, dir: PathBuf, config: LogConfig) -> LogResult<Log> {
        config.validate()?;
        storage
            .create_dir_all(&dir)
            .map_err(|e| LogError::io(&dir, e))?;
        let names = storage.list_dir(&dir).map_err(|e| LogError::io(&dir, e))?;
        let cleaned = format!(".{}", compaction::CLEANED_SUFFIX);
        let retired = format!(".{}", segment::RETIRED_SUFFIX);
        for name in names
            .iter()
            .filter(|n| n.ends_with(".tmp") || n.ends_with(&cleaned) || n.ends_with(&retired))
        {
            // A write_file_atomic, or a cleaner's rewrite, that never reached
            // its rename, or a deleted segment's file whose removal a crash
            // cut short: harmless leftovers.
            let _ = storage.remove_dead_file(&dir.join(name));
        }
        let bases: Vec<Offset> = names
            .iter()
            .filter_map(|n| segment::parse_log_name(n))
            .collect();
        let tail = tail::Tail::new(config.leader_tail.clone());
        let mut log = Log {
            dir,
            storage,
            config,
            segments: BTreeMap::new(),
            epochs: LeaderEpochCache::default(),
            durable_end: Offset(0),
            unflushed_records: 0,
            last_flush_ms: 0,
            failed: None,
            tail,
            producers: ProducerStates::default(),
            recovery: RecoveryReport::default(),
            cleaned_to: Offset(0),
            gaps: false,
            retired: Vec::new(),
        };
        log.gaps = log.storage.exists(&log.dir.join(COMPACTED_MARK));
        log.mark_compacted_if_needed()?;
        if log.storage.exists(&log.dir.join(DAMAGE_MARK)) {
            log.recovery.damaged = true;
            log.recovery
                .reasons
                .push("damage found at an earlier start, not yet reported".into());
        }
        let scanned_epochs = log.load_segments(&bases)?;
        log.load_epoch_cache(scanned_epochs)?;
        // What the active segment holds may still sit in the page cache only (the
        // process, not the machine, went down): sync it before calling it durable.
        if let Some(active) = log.active_mut() {
            active.sync().map_err(|e| LogError::io(active.path(), e))?;
        }
        log.durable_end = log.log_end();
        log.rebuild_producers()?;
        Ok(log)
    }

    /// Segments scanned for producer state on open and after truncation.
    const PRODUCER_SCAN_SEGMENTS: usize = 2;

    /// Rebuilds producer state from the batch headers of the last segments. A
    /// header damaged on disk ends the scan there (reads report the damage;
    /// the state is only a retry filter and errs towards accepting).
    fn rebuild_producers(&mut self) -> LogResult<()> {
        let mut states = ProducerStates::default();
        for segment in self
            .segments
            .values()
            .rev()
            .take(Self::PRODUCER_SCAN_SEGMENTS)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            match segment.headers() {
                Ok(headers) => headers.iter().for_each(|h| states.record(h)),
                Err(e) => {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "producer state rebuilt only up to a damaged batch header");
                    break;
                }
            }
        }
        self.producers = states;
        Ok(())
    }

    /// The idempotent producers' state (tests and tools).
    pub fn producers(&self) -> &ProducerStates {
        &self.producers
    }

    /// Loads every segment; returns the epoch starts seen in scanned segments.
    fn load_segments(&mut self, bases: &[Offset]) -> LogResult<Vec<(LeaderEpoch, Offset)>> {
        let interval = self.segment_settings();
        let storage = self.storage.clone();
        let mut epoch_starts = Vec::new();
        for (i, &base) in bases.iter().enumerate() {
            let next_base = bases.get(i + 1).copied();
            let sealed = match next_base {
                Some(next) => Segment::open_sealed(&*storage, &self.dir, base, next, interval)?,
                None => None,
            };
            // A compacted log is small by design and rewritten by the
            // cleaner: its sealed segments are read whole at every open (CRCs,
            // offset chain, and epochs against the checkpoint below), so
            // damage there is reported before an election, not found by a
            // read (which for `__consumer_offsets` would leave its groups
            // without a coordinator). Other logs trust intact indexes.
            let sealed = match sealed {
                Some(segment) if self.gaps => match segment.verify() {
                    Some(starts) => {
                        epoch_starts.extend(starts);
                        Some(segment)
                    }
                    None => None,
                },
                other => other,
            };
            let scanned = sealed.is_none();
            let (mut segment, clean_end) = match sealed {
                Some(segment) => (segment, true),
                None => {
                    let path = self.dir.join(segment::file_name(base, "log"));
                    let (mut segment, outcome) =
                        Segment::recover(&*storage, path, base, next_base, interval)?;
                    // A sealed segment was synced whole before the next began:
                    // whatever stops its scan is damage.
                    if outcome.damaged || (next_base.is_some() && outcome.stopped_by.is_some()) {
                        let reason = outcome.stopped_by.clone().unwrap_or_default();
                        self.mark_damaged(&format!("segment {base}: {reason}"))?;
                    }
                    segment.cut_scanned_tail()?;
                    self.recovery.truncated_bytes += outcome.truncated_bytes;
                    let clean_end = outcome.stopped_by.is_none();
                    self.recovery.reasons.extend(outcome.stopped_by);
                    epoch_starts.extend(outcome.epoch_starts);
                    (segment, clean_end)
                }
            };
            match next_base {
                Some(next) if segment.next_offset() == next => {
                    if scanned {
                        // Its index files were missing or damaged: write them anew.
                        self.recovery.rebuilt_indexes.push(base);
                        segment
                            .seal(&*storage, &self.dir)
                            .map_err(|e| LogError::io(&self.dir, write_error_source(e)))?;
                    }
                    self.segments.insert(base, segment);
                }
                Some(next) if clean_end && segment.next_offset() < next => {
                    // Whole and undamaged, yet it stops short of the next segment:
                    // a leftover of retention whose deletion did not reach the
                    // disk before a later one did. The newer segments are the log.
                    self.recovery.reasons.push(format!(
                        "segment {base} ends at {} before segment {next}: removing it and older segments",
                        segment.next_offset()
                    ));
                    let mut older: Vec<Offset> = self.segments.keys().copied().collect();
                    older.push(base);
                    for old in older {
                        segment::delete_files(&*storage, &self.dir, old)?;
                        self.recovery.deleted_segments.push(old);
                    }
                    self.segments.clear();
                    self.sync_dir()?;
                }
                Some(_) => {
                    // Damaged: the log ends here, and later segments would leave a
                    // gap after it. A follower fetches the rest from its leader.
                    self.segments.insert(base, segment);
                    for &later in &bases[i + 1..] {
                        segment::delete_files(&*storage, &self.dir, later)?;
                        self.recovery.deleted_segments.push(later);
                    }
                    self.sync_dir()?;
                    break;
                }
                None => {
                    self.segments.insert(base, segment);
                }
            }
        }
        if self.segments.is_empty() {
            let segment = Segment::create(&*storage, &self.dir, Offset(0), interval)
                .map_err(|e| LogError::io(&self.dir, write_error_source(e)))?;
            self.segments.insert(Offset(0), segment);
        }
        Ok(epoch_starts)
    }

    /// Loads the leader-epoch checkpoint (rebuilding it from batch headers if it is
    /// missing or damaged), adds epochs found by the recovery scan that the
    /// checkpoint had not recorded yet, and drops entries outside the log.
    fn load_epoch_cache(&mut self, scanned: Vec<(LeaderEpoch, Offset)>) -> LogResult<()> {
        let path = self.dir.join(CHECKPOINT_FILE);
        let loaded = storage::read_file(&*self.storage, &path)
            .ok()
            .and_then(|bytes| LeaderEpochCache::decode(&bytes));
        let mut changed = false;
        let from_checkpoint = loaded.is_some();
        match loaded {
            Some(cache) => self.epochs = cache,
            None if self.log_end() == self.log_start() => {}
            None => {
                self.recovery.rebuilt_epoch_cache = true;
                changed = true;
                for segment in self.segments.values() {
                    for (epoch, start) in segment.epoch_starts()? {
                        self.epochs.assign(epoch, start);
                    }
                }
            }
        }
        // Entries for records that did not survive go first; then epochs that the
        // scan saw in surviving records and the checkpoint had not recorded yet.
        changed |= self.epochs.truncate_from_end(self.log_end());
        changed |= self.epochs.truncate_from_start(self.log_start());
        if from_checkpoint {
            // A new epoch is checkpointed (durably) before any record carrying
            // it, so a scanned batch whose epoch the checkpoint does not place
            // at its offset has a damaged epoch field: the one header field
            // outside the batch CRC. Cut the log there, as for any corrupt
            // batch; a follower fetches the rest again.
            let damaged = scanned.iter().find(|(epoch, start)| {
                *start >= self.log_start() && self.epochs.epoch_at(*start) != Some(*epoch)
            });
            if let Some(&(epoch, start)) = damaged {
                let before = self.log_end();
                self.mark_damaged(&format!(
                    "leader epoch {epoch} of the batch at offset {start}"
                ))?;
                self.truncate_to(start)?;
                self.recovery.reasons.push(format!(
                    "batch at offset {start} carries leader epoch {epoch}, which the epoch checkpoint does not place there: a damaged header; cut from {start} (log end was {before})"
                ));
                changed |= self.epochs.truncate_from_end(self.log_end());
            }
        } else {
            for (epoch, start) in scanned {
                if start >= self.log_start() {
                    changed |= self.epochs.assign(epoch, start);
                }
            }
        }
        if changed {
            let bytes = self.epochs.encode();
            storage::write_file_atomic(&*self.storage, &self.dir, CHECKPOINT_FILE, &bytes)
                .map_err(|e| LogError::io(self.dir.join(CHECKPOINT_FILE), write_error_source(e)))?;
        }
        Ok(())
    }

    /// Records durably, before recovery cuts anything, that synced records
    /// are about to go (see [`DAMAGE_MARK`]).
    fn mark_damaged(&mut self, what: &str) -> LogResult<()> {
        self.recovery.damaged = true;
        storage::write_file_atomic(&*self.storage, &self.dir, DAMAGE_MARK, what.as_bytes())
            .map_err(|e| LogError::io(self.dir.join(DAMAGE_MARK), write_error_source(e)))
    }

    /// How this log's segments are laid out.
    fn segment_settings(&self) -> SegmentSettings {
        SegmentSettings {
            index_interval: self.config.index_interval_bytes,
            gaps: self.gaps,
            cached_tail: self.config.cached_tail,
            hold_appends: self.config.flush == FlushPolicy::EveryAppend,
        }
    }

    /// The partition's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log's settings.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// New settings for the open log (its topic's configs changed), checked
    /// first. They apply from the next append, roll and retention or cleaner
    /// pass; turning compaction on writes the compacted mark first.
    pub fn set_config(&mut self, config: LogConfig) -> LogResult<()> {
        config.validate()?;
        let before = std::mem::replace(&mut self.config, config);
        if let Err(e) = self.mark_compacted_if_needed() {
            self.config = before;
            return Err(e);
        }
        // Appends held in memory for the next sync must reach the kernel
        // at once when a sync no longer comes with each of them.
        let hold = self.segment_settings().hold_appends;
        if let Some(active) = self.active_mut() {
            active
                .set_hold_appends(hold)
                .map_err(|e| LogError::io(active.path(), e))?;
        }
        Ok(())
    }

    /// A compacted log gets its mark durably, before the cleaner or a
    /// follower fetch can leave a gap.
    fn mark_compacted_if_needed(&mut self) -> LogResult<()> {
        if self.config.cleanup.compact && !self.gaps {
            let mark = self.dir.join(COMPACTED_MARK);
            storage::write_file_atomic(&*self.storage, &self.dir, COMPACTED_MARK, b"")
                .map_err(|e| LogError::io(&mark, write_error_source(e)))?;
            self.gaps = true;
        }
        Ok(())
    }

    /// What the last open found and repaired.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The first offset the log holds.
    pub fn log_start(&self) -> Offset {
        self.segments.keys().next().copied().unwrap_or_default()
    }

    /// The offset the next appended record gets (Kafka's log end offset, LEO).
    pub fn log_end(&self) -> Offset {
        self.active().map_or(Offset(0), Segment::next_offset)
    }

    /// Everything below this offset has been fsynced.
    pub fn durable_end(&self) -> Offset {
        self.durable_end
    }

    /// Whether an fsync blocks its thread (see [`Storage::syncs_block`]).
    pub fn syncs_block(&self) -> bool {
        self.storage.syncs_block()
    }

    /// How long an in-place fsync takes (see [`Storage::sync_latency`]).
    pub fn sync_latency(&self) -> std::time::Duration {
        self.storage.sync_latency()
    }

    /// Total bytes in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(Segment::size).sum()
    }

    /// The segments, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.segments
            .values()
            .map(|s| SegmentInfo {
                base: s.base(),
                next_offset: s.next_offset(),
                size: s.size(),
                max_timestamp: s.max_timestamp(),
            })
            .collect()
    }

    /// The newest leader epoch in the log and where it starts.
    pub fn latest_epoch(&self) -> Option<(LeaderEpoch, Offset)> {
        self.epochs.latest()
    }

    /// The epoch cache, for tools and tests.
    pub fn epoch_cache(&self) -> &LeaderEpochCache {
        &self.epochs
    }

    /// Kafka's OffsetForLeaderEpoch on this log: the largest epoch `<= epoch` known
    /// here and the offset where it ends. `None` if `epoch` is newer than any here.
    pub fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> Option<(LeaderEpoch, Offset)> {
        self.epochs.end_offset_for(epoch, self.log_end())
    }

    /// Appends a producer's batch as the partition's leader: its base offset is
    /// rewritten to the log end and its partition leader epoch to `epoch`. As in
    /// Kafka, a produce request carries exactly one batch, whose last offset
    /// delta is its record count minus one. A rejected append changes nothing.
    pub fn append_as_leader(
        &mut self,
        records: &[u8],
        epoch: LeaderEpoch,
    ) -> LogResult<AppendInfo> {
        self.check_healthy()?;
        check_epoch_range(epoch)?;
        if let Some((latest, _)) = self.epochs.latest().filter(|&(latest, _)| epoch < latest) {
            return Err(LogError::FencedLeaderEpoch { epoch, latest });
        }
        // The leader's stamp goes on first: producers send base offset 0 and
        // partition leader epoch -1, both outside the CRC.
        let mut buf = records.to_vec();
        let base = self.log_end();
        if buf.len() >= HEADER_LEN {
            batch::set_base_offset(&mut buf, base);
            batch::set_leader_epoch(&mut buf, epoch);
        }
        let info = self.append_stamped(&buf)?;
        if info.batches > 0 {
            self.tail.push(
                info.first_offset,
                info.last_offset.plus(1),
                Bytes::from(buf),
            );
        }
        Ok(info)
    }

    fn append_stamped(&mut self, buf: &[u8]) -> LogResult<AppendInfo> {
        let headers = self.validate(buf)?;
        let [header] = headers[..] else {
            return Err(invalid(format!(
                "a produce request must carry exactly one record batch, not {}",
                headers.len()
            )));
        };
        if header.record_count == 0
            || u64::from(header.last_offset_delta) + 1 != u64::from(header.record_count)
        {
            return Err(invalid(format!(
                "batch of {} records has last offset delta {}",
                header.record_count, header.last_offset_delta
            )));
        }
        if self.config.cleanup.compact {
            compaction::check_compactable(buf, &header)?;
        }
        if let SequenceCheck::Duplicate {
            first_offset,
            last_offset,
        } = self.producers.check(&header)?
        {
            // A retry of a batch already stored: its first append's offsets,
            // nothing written (`batches` 0 says so).
            return Ok(AppendInfo {
                first_offset,
                last_offset,
                batches: 0,
                bytes: 0,
                max_timestamp: header.max_timestamp,
            });
        }
        self.append_validated(buf, &[header])
    }

    /// Appends batches fetched from the leader, offsets and epochs as given. The
    /// first batch must start at the log end and each next one where the previous
    /// ended (no overlaps, and no gaps except in a compacted log, whose leader's
    /// cleaner removed whole batches); epochs must not go backwards, neither
    /// within the batches nor against records already in the log.
    pub fn append_as_follower(&mut self, records: &[u8]) -> LogResult<AppendInfo> {
        self.check_healthy()?;
        let headers = self.validate(records)?;
        let mut expected = self.log_end();
        let mut previous_epoch = None;
        let gaps = self.gaps;
        for header in &headers {
            if header.base_offset != expected && !(gaps && header.base_offset > expected) {
                return Err(LogError::NonContiguousAppend {
                    expected,
                    got: header.base_offset,
                });
            }
            if u64::from(header.record_count) > u64::from(header.last_offset_delta) + 1 {
                return Err(invalid(format!(
                    "batch at {} holds {} records in {} offsets",
                    header.base_offset,
                    header.record_count,
                    u64::from(header.last_offset_delta) + 1
                )));
            }
            check_epoch_range(header.leader_epoch)?;
            if let Some(previous) = previous_epoch.filter(|&p| header.leader_epoch < p) {
                return Err(LogError::FencedLeaderEpoch {
                    epoch: header.leader_epoch,
                    latest: previous,
                });
            }
            previous_epoch = Some(header.leader_epoch);
            expected = header.next_offset();
        }
        let first = headers[0];
        if self
            .epochs
            .has_newer_records_before(first.leader_epoch, first.base_offset)
        {
            let latest = self.epochs.latest().map_or(first.leader_epoch, |(e, _)| e);
            return Err(LogError::FencedLeaderEpoch {
                epoch: first.leader_epoch,
                latest,
            });
        }
        // The tail holds only batches up to the log end.
        self.tail.clear();
        self.append_validated(records, &headers)
    }

    /// KIP-279: a new leader records its epoch at its log end at once, so a
    /// follower asking for the previous epoch's end learns it even before the new
    /// leader has appended anything.
    pub fn assign_epoch(&mut self, epoch: LeaderEpoch) -> LogResult<()> {
        self.check_healthy()?;
        check_epoch_range(epoch)?;
        if let Some((latest, _)) = self.epochs.latest().filter(|&(latest, _)| epoch < latest) {
            return Err(LogError::FencedLeaderEpoch { epoch, latest });
        }
        let mut epochs = self.epochs.clone();
        if epochs.assign(epoch, self.log_end()) {
            self.persist_epochs(epochs)?;
        }
        Ok(())
    }

    /// Checks framing, CRCs and sizes of every batch in `records`.
    fn validate(&self, records: &[u8]) -> LogResult<Vec<BatchHeader>> {
        let headers = batch::parse_batches(records).map_err(|reason| LogError::CorruptRecord {
            offset: None,
            reason,
        })?;
        let max = self.config.max_batch_bytes;
        if let Some(h) = headers.iter().find(|h| u64::from(h.size) > max) {
            return Err(LogError::RecordTooLarge {
                size: u64::from(h.size),
                max,
            });
        }
        Ok(headers)
    }

    /// Writes validated batches with their final offsets to the active segment,
    /// rolling first if it is full or old. A new epoch is checkpointed before the
    /// records that carry it, so a crash can leave an epoch without records
    /// (dropped on open) but never records whose epoch the cache lost.
    fn append_validated(&mut self, data: &[u8], headers: &[BatchHeader]) -> LogResult<AppendInfo> {
        let (Some(first), Some(last)) = (headers.first(), headers.last()) else {
            return Err(invalid("no record batch".into()));
        };
        if last.last_offset().0 - first.base_offset.0 > u64::from(u32::MAX) {
            return Err(invalid("an append may span at most 2^32 offsets".into()));
        }
        let max_timestamp = headers
            .iter()
            .map(|h| h.max_timestamp)
            .max()
            .unwrap_or(first.max_timestamp);
        if self.should_roll(data.len() as u64, last.last_offset(), max_timestamp) {
            self.roll()?;
        }
        let new_epoch = |h: &BatchHeader, cache: &LeaderEpochCache| {
            cache
                .latest()
                .is_none_or(|(e, s)| e != h.leader_epoch || s > h.base_offset)
        };
        if headers.iter().any(|h| new_epoch(h, &self.epochs)) {
            let mut epochs = self.epochs.clone();
            for h in headers {
                epochs.assign(h.leader_epoch, h.base_offset);
            }
            self.persist_epochs(epochs)?;
        }
        let Some(active) = self.segments.values_mut().next_back() else {
            return Err(self.fail("the log has no active segment".into()));
        };
        if let Err(failure) = active.append(data, headers) {
            let path = active.path().to_path_buf();
            if !failure.undone {
                return Err(self.fail(format!(
                    "write to {} failed and could not be undone: {}",
                    path.display(),
                    failure.error
                )));
            }
            if failure.error.kind() == std::io::ErrorKind::StorageFull {
                return Err(LogError::DiskFull { path });
            }
            return Err(LogError::io(path, failure.error));
        }
        let records: u64 = headers.iter().map(|h| u64::from(h.record_count)).sum();
        self.unflushed_records += records;
        for h in headers {
            self.producers.record(h);
        }
        Ok(AppendInfo {
            first_offset: first.base_offset,
            last_offset: last.last_offset(),
            batches: headers.len(),
            bytes: data.len() as u64,
            max_timestamp,
        })
    }

    fn should_roll(&self, incoming: u64, last_offset: Offset, max_timestamp: i64) -> bool {
        let Some(active) = self.active() else {
            return false;
        };
        if active.is_empty() {
            return false;
        }
        let full = self.rolls_for_size(incoming);
        // Kafka measures segment age by record timestamps, not the broker clock.
        let old = match (self.config.segment_age, active.first_timestamp()) {
            (Some(age), Some(first)) => {
                max_timestamp.saturating_sub(first) >= age.as_millis() as i64
            }
            _ => false,
        };
        full || old || !active.can_index(last_offset)
    }

    /// Seals the active segment and starts a new one at the log end. A full disk
    /// is reported and leaves the active segment in place (it is sealed again at
    /// the next roll); a failed fsync fails the log. Four syncs: the sealed
    /// segment, its two index files, and one of the directory for the index
    /// files' names and the new segment's file together.
    fn roll(&mut self) -> LogResult<()> {
        let end = self.log_end();
        let storage = self.storage.clone();
        let dir = self.dir.clone();
        let sealed = match self.segments.values_mut().next_back() {
            Some(active) => active.seal_unsynced_dir(&*storage, &dir),
            None => return Err(self.fail("the log has no active segment".into())),
        };
        sealed.map_err(|e| self.absorb(&dir, e))?;
        let segment = Segment::create_unsynced_dir(&*storage, &dir, end, self.segment_settings())
            .map_err(|e| self.absorb(&dir, e))?;
        storage
            .sync_dir(&dir)
            .map_err(|e| self.absorb(&dir, WriteError::Sync(e)))?;
        self.segments.insert(end, segment);
        Ok(())
    }

    /// Whether appending `incoming` bytes would roll the active segment for
    /// its size (the roll under load; one for age, `segment.ms`, is not
    /// foreseen here).
    pub fn rolls_for_size(&self, incoming: u64) -> bool {
        self.active().is_some_and(|active| {
            !active.is_empty() && active.size() + incoming > self.config.segment_bytes
        })
    }

    /// Reads whole batches from the one containing `from`, up to about
    /// `max_bytes` (at least one batch), never including a batch that reaches
    /// `upper_bound` (consumers pass the high watermark). Every batch returned
    /// has passed its CRC check.
    pub fn read(&self, from: Offset, max_bytes: usize, upper_bound: Offset) -> LogResult<LogRead> {
        self.read_chunks(from, max_bytes, upper_bound)
            .map(LogRead::joined)
    }

    /// As [`read`](Self::read), the batches left in the buffers they were
    /// read from (several only when the in-memory tail serves the read).
    pub fn read_chunks(
        &self,
        from: Offset,
        max_bytes: usize,
        upper_bound: Offset,
    ) -> LogResult<LogRead<Chunks>> {
        self.check_healthy()?;
        let (log_start, log_end) = (self.log_start(), self.log_end());
        if from < log_start || from > log_end {
            return Err(LogError::OffsetOutOfRange {
                offset: from,
                log_start,
                log_end,
            });
        }
        let upper = upper_bound.min(log_end);
        let empty = LogRead {
            records: Chunks::default(),
            next_offset: from,
            log_start,
            log_end,
        };
        if from >= upper {
            return Ok(empty);
        }
        if let Some((records, next_offset)) = self.tail.read(from, max_bytes, upper) {
            return Ok(LogRead {
                records,
                next_offset,
                log_start,
                log_end,
            });
        }
        for segment in self
            .segments
            .range(..=from)
            .next_back()
            .into_iter()
            .map(|(_, s)| s)
            .chain(
                self.segments
                    .range((std::ops::Bound::Excluded(from), std::ops::Bound::Unbounded))
                    .map(|(_, s)| s),
            )
        {
            if let Some((records, next_offset)) = segment.read(from, max_bytes, upper)? {
                return Ok(LogRead {
                    records: Chunks::from(records),
                    next_offset,
                    log_start,
                    log_end,
                });
            }
            if segment.next_offset() > from {
                break;
            }
        }
        Ok(empty)
    }

    /// Kafka's ListOffsets by timestamp: the first record whose timestamp is at
    /// least `timestamp`, as `(offset, its timestamp)`; `None` if every record is
    /// older. Batches compressed with a codec this build does not decode are
    /// answered at batch granularity (their base offset and max timestamp).
    pub fn offset_for_timestamp(&self, timestamp: i64) -> LogResult<Option<(Offset, i64)>> {
        self.check_healthy()?;
        for segment in self.segments.values() {
            if let Some(found) = segment.offset_for_timestamp(timestamp)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Removes every batch whose last offset is at or after `offset` (a batch
    /// containing `offset` goes whole), as a follower does when its log diverges
    /// from its leader's. Returns the new log end (`<= offset`). Truncating at or
    /// past the log end removes no batch, only epoch entries starting there (a
    /// leadership that wrote nothing, KIP-279); below the log start, see
    /// [`truncate_fully_and_start_at`](Self::truncate_fully_and_start_at).
    pub fn truncate_to(&mut self, offset: Offset) -> LogResult<Offset> {
        self.check_healthy()?;
        if offset >= self.log_end() {
            let mut epochs = self.epochs.clone();
            if epochs.truncate_from_end(offset) {
                self.persist_epochs(epochs)?;
            }
            return Ok(self.log_end());
        }
        if offset < self.log_start() {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: self.log_start(),
                log_end: self.log_end(),
            });
        }
        self.tail.drop_from(offset);
        // Later segments go first and durably, so a crash midway leaves the
        // containing segment last, where recovery rescans it. Any failure here
        // fails the log: its files and its segment map may no longer agree.
        let keep = self
            .segments
            .range(..=offset)
            .next_back()
            .map_or(offset, |(&b, _)| b);
        let doomed: Vec<Offset> = self
            .segments
            .range(keep..)
            .skip(1)
            .map(|(&b, _)| b)
            .collect();
        for &base in &doomed {
            self.delete_segment(base)?;
        }
        self.sync_dir()?;
        let end = match self.segments.values_mut().next_back() {
            Some(active) => active.truncate_to(offset),
            None => return Err(self.fail("the log has no active segment".into())),
        };
        let end = end.map_err(|e| self.fail(format!("truncation failed: {e}")))?;
        self.durable_end = self.durable_end.min(end);
        let mut epochs = self.epochs.clone();
        if epochs.truncate_from_end(end) {
            self.persist_epochs(epochs)?;
        }
        // Cut back in memory: a rebuild reads every batch header of the
        // last segments, one small read each, from disk when the page cache
        // no longer holds them (the log hands synced pages back): seconds
        // on a follower truncating at a failover, its writer stalled.
        if !self.producers.truncate_to(end) {
            self.rebuild_producers()?;
        }
        Ok(end)
    }

    /// Empties the log and restarts it at `offset` (a follower whose leader's log
    /// starts beyond this log's end, as Kafka's `truncateFullyAndStartAt`).
    pub fn truncate_fully_and_start_at(&mut self, offset: Offset) -> LogResult<()> {
        self.tail.clear();
        self.check_healthy()?;
        // The epochs go first: no record may outlive its epoch entry's removal
        // the other way round. A crash midway leaves the old log, an empty one,
        // or a suffix of the old one: each a consistent log to re-fetch into.
        self.persist_epochs(LeaderEpochCache::default())?;
        let bases: Vec<Offset> = self.segments.keys().copied().collect();
        for base in bases {
            self.delete_segment(base)?;
        }
        self.sync_dir()?;
        let created = Segment::create(&*self.storage, &self.dir, offset, self.segment_settings());
        let segment =
            created.map_err(|e| self.fail(format!("creating segment {offset} failed: {e}")))?;
        self.segments.insert(offset, segment);
        self.durable_end = offset;
        self.producers.clear();
        Ok(())
    }

    /// Whether the flush policy wants an fsync now (for `Periodic`; `EveryAppend`
    /// flushes before every acknowledgement and `Never` never).
    pub fn flush_due(&self, now_ms: i64) -> bool {
        match self.config.flush {
            FlushPolicy::EveryAppend => self.durable_end < self.log_end(),
            FlushPolicy::Periodic { messages, interval } => {
                self.durable_end < self.log_end()
                    && (self.unflushed_records >= messages
                        || now_ms.saturating_sub(self.last_flush_ms) >= millis(interval))
            }
            FlushPolicy::Never => false,
        }
    }

    /// Fsyncs everything appended so far; returns the new durable end. A failed
    /// fsync fails the log: the kernel may have dropped the dirty pages, so the
    /// log can no longer say what is on disk, and retrying could report data
    /// durable that is not.
    pub fn flush(&mut self, now_ms: i64) -> LogResult<Offset> {
        match self.begin_flush()? {
            Some(flush) => {
                let synced = flush.run();
                self.finish_flush(flush, synced, now_ms)
            }
            None => {
                self.unflushed_records = 0;
                self.last_flush_ms = now_ms;
                Ok(self.durable_end)
            }
        }
    }

    /// [`flush`](Self::flush) in two steps, so the fsync itself can run on
    /// another thread while the log takes more appends and serves reads: the
    /// fsync of everything appended so far, or `None` when that is durable
    /// already. Hand its outcome to [`finish_flush`](Self::finish_flush).
    ///
    /// Sealed segments were synced when they rolled, so syncing the active
    /// segment makes the whole log up to now durable, even if it rolls while
    /// the fsync runs.
    pub fn begin_flush(&mut self) -> LogResult<Option<PendingFlush>> {
        self.check_healthy()?;
        let end = self.log_end();
        if self.durable_end >= end {
            return Ok(None);
        }
        let Some((&segment, active)) = self.segments.iter().next_back() else {
            return Err(self.fail("the log has no active segment".into()));
        };
        Ok(Some(PendingFlush {
            file: active.file(),
            segment,
            end,
        }))
    }

    /// Takes the outcome of a [`PendingFlush`]: the new durable end, or the
    /// failed log's error.
    pub fn finish_flush(
        &mut self,
        flush: PendingFlush,
        synced: io::Result<()>,
        now_ms: i64,
    ) -> LogResult<Offset> {
        if let Err(e) = synced {
            let path = self.dir.join(segment::file_name(flush.segment, "log"));
            return Err(self.fail(format!("fsync of {} failed: {e}", path.display())));
        }
        self.check_healthy()?;
        // Never past the log end: the writer truncates only with no fsync in
        // flight, but the durable end must not claim what the log no longer has.
        self.durable_end = self.durable_end.max(flush.end).min(self.log_end());
        if let Some(segment) = self.segments.get_mut(&flush.segment) {
            segment.release_cold();
        }
        self.unflushed_records = 0;
        self.last_flush_ms = now_ms;
        Ok(self.durable_end)
    }

    /// Deletes whole old segments by `retention.ms` (measured against `now_ms`)
    /// and `retention.bytes` when `cleanup.policy` includes `delete`, never a segment holding offsets at or above
    /// `max_deletable` (the high watermark: nothing is deleted that a follower may
    /// still need). The log start moves to the first remaining segment.
    pub fn apply_retention(
        &mut self,
        now_ms: i64,
        max_deletable: Offset,
    ) -> LogResult<RetentionOutcome> {
        self.check_healthy()?;
        if !self.config.cleanup.delete {
            // `cleanup.policy=compact` alone: the cleaner, not age or size, decides.
            return Ok(RetentionOutcome {
                deleted_segments: Vec::new(),
                log_start: self.log_start(),
            });
        }
        let expired = |s: &Segment, age: std::time::Duration| {
            s.max_timestamp()
                .is_some_and(|t| now_ms.saturating_sub(t) > millis(age))
        };
        // An expired active segment is rolled so that it can go too (as Kafka does).
        if let (Some(age), Some(active)) = (self.config.retention_age, self.active()) {
            if !active.is_empty() && active.next_offset() <= max_deletable && expired(active, age) {
                self.roll()?;
            }
        }
        let mut deleted = Vec::new();
        let mut total = self.size_bytes();
        while self.segments.len() > 1 {
            let Some(oldest) = self.segments.values().next() else {
                break;
            };
            if oldest.next_offset() > max_deletable {
                break;
            }
            let by_age = self
                .config
                .retention_age
                .is_some_and(|age| expired(oldest, age));
            let by_size = self
                .config
                .retention_bytes
                .is_some_and(|limit| total - oldest.size() >= limit);
            if !(by_age || by_size) {
                break;
            }
            let (base, size) = (oldest.base(), oldest.size());
            self.delete_segment(base)?;
            total -= size;
            deleted.push(base);
        }
        if !deleted.is_empty() {
            self.tail.drop_below(self.log_start());
            self.sync_dir()?;
            let mut epochs = self.epochs.clone();
            if epochs.truncate_from_start(self.log_start()) {
                self.persist_epochs(epochs)?;
            }
        }
        Ok(RetentionOutcome {
            deleted_segments: deleted,
            log_start: self.log_start(),
        })
    }

    /// Flushes and closes the log.
    pub fn close(mut self, now_ms: i64) -> LogResult<()> {
        self.flush(now_ms).map(|_| ())
    }

    /// Deletes every file of the log and its directory (a partition removed
    /// from this broker). Whatever else lies in the directory goes too.
    pub fn delete(self, _now_ms: i64) -> LogResult<()> {
        let storage = self.storage.clone();
        let dir = self.dir.clone();
        drop(self);
        RetiredFiles::dead_dir(storage, dir.clone())
            .map_err(|e| LogError::io(&dir, e))?
            .try_remove()
            .map_err(|(path, e)| LogError::io(path, e))
    }

    /// Deletes the log as [`delete`](Self::delete) does, but only renames
    /// its directory out of the way now (`<name>.<n>-delete`, durably), so
    /// that a log of any size is gone at once and a partition of the same
    /// name can be created meanwhile; the returned files are to be removed
    /// off the caller's path ([`RetiredFiles::remove`]). Needs a storage
    /// that renames directories (a disk).
    pub fn delete_later(self, now_ms: i64) -> LogResult<RetiredFiles> {
        let storage = self.storage.clone();
        let dir = self.dir.clone();
        drop(self);
        let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
            return Err(LogError::InvalidConfig(format!(
                "log directory {} has no parent",
                dir.display()
            )));
        };
        let name = name.to_string_lossy();
        let mut n = now_ms.max(0);
        let mut gone = parent.join(format!("{name}.{n}{DELETED_DIR_SUFFIX}"));
        while storage.exists(&gone) {
            n += 1;
            gone = parent.join(format!("{name}.{n}{DELETED_DIR_SUFFIX}"));
        }
        storage
            .rename_dir(&dir, &gone)
            .map_err(|e| LogError::io(&dir, e))?;
        storage
            .sync_dir(parent)
            .map_err(|e| LogError::io(parent, e))?;
        RetiredFiles::dead_dir(storage, gone.clone()).map_err(|e| LogError::io(&gone, e))
    }

    fn active(&self) -> Option<&Segment> {
        self.segments.values().next_back()
    }

    fn active_mut(&mut self) -> Option<&mut Segment> {
        self.segments.values_mut().next_back()
    }

    /// Checkpoints `epochs` durably, then makes it the cache. A full disk leaves
    /// both as they were; a failed fsync fails the log.
    fn persist_epochs(&mut self, epochs: LeaderEpochCache) -> LogResult<()> {
        let written = storage::write_file_atomic(
            &*self.storage,
            &self.dir,
            CHECKPOINT_FILE,
            &epochs.encode(),
        );
        let dir = self.dir.clone();
        written.map_err(|e| self.absorb(&dir, e))?;
        self.epochs = epochs;
        Ok(())
    }

    /// Lets go of a segment: its files are renamed `*.deleted` (removed
    /// later, see [`take_retired`](Self::take_retired)), then it is
    /// forgotten. A failure fails the log.
    fn delete_segment(&mut self, base: Offset) -> LogResult<()> {
        let retired = segment::retire_files(&*self.storage, &self.dir, base);
        let retired =
            retired.map_err(|e| self.fail(format!("deleting segment {base} failed: {e}")))?;
        self.retired.extend(retired);
        self.segments.remove(&base);
        Ok(())
    }

    /// The files of deleted segments still to remove, and a way to remove
    /// them: retention, truncation and resets rename a segment's files under
    /// the writer, since unlinking a large file blocks for tens of
    /// milliseconds and the writer's appends would wait behind it.
    pub fn take_retired(&mut self) -> Option<RetiredFiles> {
        if self.retired.is_empty() {
            return None;
        }
        Some(RetiredFiles {
            storage: self.storage.clone(),
            paths: std::mem::take(&mut self.retired),
            dir: None,
        })
    }

    /// Turns a failed metadata write into the error to report: a full disk or a
    /// failed write changed nothing durable and the log goes on; a failed fsync
    /// fails it.
    fn absorb(&mut self, path: &Path, error: WriteError) -> LogError {
        match error {
            WriteError::Write(e) if e.kind() == std::io::ErrorKind::StorageFull => {
                LogError::DiskFull {
                    path: path.to_path_buf(),
                }
            }
            WriteError::Write(e) => LogError::io(path, e),
            WriteError::Sync(e) => self.fail(format!("fsync in {} failed: {e}", path.display())),
        }
    }

    fn sync_dir(&mut self) -> LogResult<()> {
        let result = self.storage.sync_dir(&self.dir);
        result.map_err(|e| self.fail(format!("fsync of directory failed: {e}")))
    }

    fn check_healthy(&self) -> LogResult<()> {
        match &self.failed {
            Some(reason) => Err(LogError::Failed {
                dir: self.dir.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Puts the log into the failed state and returns the error to report.
    fn fail(&mut self, reason: String) -> LogError {
        tracing::error!(dir = %self.dir.display(), %reason, "partition log failed");
        self.failed.get_or_insert(reason);
        LogError::Failed {
            dir: self.dir.clone(),
            reason: self.failed.clone().unwrap_or_default(),
        }
    }
}
