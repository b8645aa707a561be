//! One segment: a `<base>.log` file of whole batches, with its sparse offset and
//! time indexes held in memory.
//!
//! The active (last) segment takes appends and is always scanned on open. A segment
//! is sealed when the log rolls past it: its file is fsynced and its indexes are
//! written beside it (`<base>.index`, `<base>.timeindex`), after which it never
//! changes unless a truncation makes it the active segment again. Sealing is the
//! segment's clean-shutdown marker: a sealed segment is trusted on open once its
//! index files pass their checks, and rebuilt by a full scan otherwise.

use crate::error::{LogError, LogResult};
use crate::log::batch::{BatchError, BatchHeader, HEADER_LEN};
use crate::log::index::{OffsetIndex, TimeIndex};
use crate::position::{LeaderEpoch, Offset};
use crate::storage::{self, OpenMode, Storage, StorageFile, WriteError};
use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a segment written and synced up to `size` hands back to the kernel
/// after its last release ended at `released_to`, keeping the last `keep`
/// bytes cached: `(from, len)`, whole pages, once at least
/// `RELEASE_STEP` (1 MiB) has gone cold; `None` before.
pub fn cold_range(released_to: u64, size: u64, keep: u64) -> Option<(u64, u64)> {
    let to = size.saturating_sub(keep) / PAGE * PAGE;
    (to >= released_to.saturating_add(RELEASE_STEP)).then(|| (released_to, to - released_to))
}

/// Bytes read at a time while scanning a segment.
const SCAN_CHUNK: usize = 256 * 1024;
/// The cache is handed back in steps of at least this much (one call each).
const RELEASE_STEP: u64 = 1 << 20;
const PAGE: u64 = 4096;
/// How far past a batch that seems cut short recovery looks for signs that it
/// is whole but damaged: beyond the largest batch a topic takes by default.
pub const DAMAGE_SEARCH_MAX: usize = 16 << 20;

/// A segment file's name for a base offset: 20 digits, zero-padded, as Kafka's.
pub fn file_name(base: Offset, suffix: &str) -> String {
    format!("{:020}.{suffix}", base.0)
}

/// Parses `<20 digits>.log` back into a base offset.
pub fn parse_log_name(name: &str) -> Option<Offset> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(Offset)
}

/// How a scan of a segment ended.
#[derive(Debug)]
pub struct ScanOutcome {
    /// Bytes cut off the end because they were torn, corrupt or out of sequence.
    pub truncated_bytes: u64,
    /// Why the scan stopped early, if it did.
    pub stopped_by: Option<String>,
    /// Whether what stopped it is damage to whole batches (a failed CRC, a
    /// broken header, a length field pointing past a batch that is there)
    /// rather than a write cut short by a crash: records that were synced,
    /// and perhaps acknowledged, are gone.
    pub damaged: bool,
    /// `(epoch, base offset)` of each batch that starts a new leader epoch.
    pub epoch_starts: Vec<(LeaderEpoch, Offset)>,
}

/// How a log lays out its segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentSettings {
    /// Bytes between sparse offset-index entries.
    pub index_interval: u64,
    /// Whether a batch may start beyond where the one before it ended. Only a
    /// compacted log has such gaps: the cleaner removes whole batches whose
    /// records all have newer values, and followers copy the gaps. Elsewhere
    /// a gap is damage (a base offset sits outside the batch CRC).
    pub gaps: bool,
    /// Synced bytes kept in the page cache behind the segment's end
    /// ([`LogConfig::cached_tail`](crate::log::LogConfig::cached_tail)).
    pub cached_tail: Option<u64>,
    /// Whether appends may wait in memory until the segment's next sync
    /// ([`StorageFile::hold_appends`]): every append is synced before it is
    /// acknowledged (the default flush policy).
    pub hold_appends: bool,
}

impl SegmentSettings {
    /// Opens the file of a segment that will be appended to. With
    /// `cached_tail` set the log keeps little in the page cache anyway, so
    /// while every append is synced the file is written around it
    /// ([`Storage::open_log`], appends held until their sync). Otherwise it
    /// is a plain file: the kernel's cache keeps what it likes, as Kafka's
    /// does, or (other flush policies) takes each append at once without
    /// the writer waiting for the disk.
    fn open_active(
        &self,
        storage: &dyn Storage,
        path: &Path,
        mode: OpenMode,
    ) -> io::Result<Box<dyn StorageFile>> {
        if self.cached_tail.is_none() || !self.hold_appends {
            return storage.open(path, mode);
        }
        storage.open_log(path, mode)
    }
}

/// Why an append to a segment failed.
pub struct AppendFailure {
    /// The error from the file.
    pub error: io::Error,
    /// Whether the partial write was cut off again, leaving the segment as it was.
    pub undone: bool,
}

/// One segment of a partition log.
#[derive(Debug)]
pub struct Segment {
    base: Offset,
    path: PathBuf,
    file: Arc<dyn StorageFile>,
    /// Bytes of whole, valid batches; the file is exactly this long.
    size: u64,
    /// The offset after the last batch; `base` when empty.
    next_offset: Offset,
    index: OffsetIndex,
    time_index: TimeIndex,
    /// The largest batch max timestamp and its batch's relative offset.
    max_timestamp: Option<(i64, u32)>,
    /// The first batch's max timestamp: the segment's age for `segment.ms`.
    first_timestamp: Option<i64>,
    bytes_since_index: u64,
    settings: SegmentSettings,
    /// Bytes below this were synced and handed back to the kernel's cache.
    released_to: u64,
}

impl Segment {
    /// Creates an empty segment file (durably) at `base`, replacing any leftover
    /// file of that name.
    pub fn create(
        storage: &dyn Storage,
        dir: &Path,
        base: Offset,
        settings: SegmentSettings,
    ) -> Result<Segment, WriteError> {
        let segment = Self::create_unsynced_dir(storage, dir, base, settings)?;
        storage.sync_dir(dir).map_err(WriteError::Sync)?;
        Ok(segment)
    }

    /// [`create`](Self::create) without the directory's sync: nothing may
    /// be appended to it until the caller has synced `dir`.
    pub fn create_unsynced_dir(
        storage: &dyn Storage,
        dir: &Path,
        base: Offset,
        settings: SegmentSettings,
    ) -> Result<Segment, WriteError> {
        let path = dir.join(file_name(base, "log"));
        let file = settings
            .open_active(storage, &path, OpenMode::Truncate)
            .map_err(WriteError::Write)?;
        Ok(Segment::empty(base, path, file, settings))
    }

    fn empty(
        base: Offset,
        path: PathBuf,
        file: Box<dyn StorageFile>,
        settings: SegmentSettings,
    ) -> Segment {
        Segment {
            base,
            path,
            file: Arc::from(file),
            size: 0,
            next_offset: base,
            index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            max_timestamp: None,
            first_timestamp: None,
            bytes_since_index: 0,
            settings,
            released_to: 0,
        }
    }

    /// Whether a batch at `base` may follow a batch that ended at `expected`.
    fn continues(&self, base: Offset, expected: Offset) -> bool {
        base == expected || (self.settings.gaps && base > expected)
    }

    /// Opens a segment by scanning it whole: every batch's framing, CRC and offset
    /// sequence is checked and the indexes are rebuilt. Anything after the first bad
    /// batch (or at or past `limit`, the next segment's base) is left for
    /// [`cut_scanned_tail`](Self::cut_scanned_tail) to cut, so the caller can
    /// record damage durably first.
    pub fn recover(
        storage: &dyn Storage,
        path: PathBuf,
        base: Offset,
        limit: Option<Offset>,
        settings: SegmentSettings,
    ) -> LogResult<(Segment, ScanOutcome)> {
        // Only the last segment is appended to.
        let file = match limit {
            None => settings.open_active(storage, &path, OpenMode::Existing),
            Some(_) => storage.open(&path, OpenMode::Existing),
        }
        .map_err(|e| LogError::io(&path, e))?;
        let file_len = file.len().map_err(|e| LogError::io(&path, e))?;
        let mut segment = Segment::empty(base, path, file, settings);
        let file = segment.file.clone();
        let mut reader = ChunkReader::new(&*file, file_len, SCAN_CHUNK);
        let mut stopped_by = None;
        let mut damaged = false;
        let mut epoch_starts = Vec::new();
        let mut last_epoch = None;
        let err_path = segment.path.clone();
        let io = |e: io::Error| LogError::io(&err_path, e);
        while segment.size < file_len {
            let pos = segment.size;
            // A crash leaves a tail cut short, or zeros where the file system
            // had not written the data yet; anything else is damage.
            let mut stop = |reason: String, torn: bool| {
                damaged = !torn;
                stopped_by = Some(reason);
            };
            let header = match reader.batch_at(pos, true) {
                Ok(Some(header)) => header,
                Ok(None) => {
                    match reader.damaged_length_at(pos).map_err(io)? {
                        Some(size) => stop(format!("batch at byte {pos} runs past the end of the file, yet its first {size} bytes pass its CRC: a damaged length field"), false),
                        None => stop(format!("torn batch at byte {pos}"), true),
                    }
                    break;
                }
                Err(ScanError::Io(e)) => return Err(io(e)),
                Err(ScanError::Batch(e)) => {
                    let zeros = reader.zeros_to_end(pos).map_err(io)?;
                    stop(format!("corrupt batch at byte {pos}: {e}"), zeros);
                    break;
                }
            };
            if !segment.continues(header.base_offset, segment.next_offset) {
                let zeros = reader.zeros_to_end(pos).map_err(io)?;
                stop(
                    format!(
                        "batch at byte {pos} has offset {}, expected {}",
                        header.base_offset, segment.next_offset
                    ),
                    zeros,
                );
                break;
            }
            if limit.is_some_and(|l| header.next_offset() > l) {
                stop(
                    format!("batch at byte {pos} overlaps the next segment"),
                    false,
                );
                break;
            }
            if last_epoch.is_none_or(|e| header.leader_epoch > e) {
                epoch_starts.push((header.leader_epoch, header.base_offset));
                last_epoch = Some(header.leader_epoch);
            }
            segment.note_appended(&header);
        }
        let truncated_bytes = file_len - segment.size;
        Ok((
            segment,
            ScanOutcome {
                truncated_bytes,
                stopped_by,
                damaged,
                epoch_starts,
            },
        ))
    }

    /// Cuts what [`recover`](Self::recover) found past the last good batch,
    /// durably.
    pub fn cut_scanned_tail(&mut self) -> LogResult<()> {
        let len = self.file.len().map_err(|e| LogError::io(&self.path, e))?;
        if len > self.size {
            self.cut_file(self.size)?;
        }
        Ok(())
    }

    /// Opens a sealed segment from its index files, if they are present and agree
    /// with the log file: the last indexed batch must start a chain of batch headers
    /// that ends exactly at the file's end and at `next_base`. `Ok(None)` when they
    /// do not, and the caller rebuilds with [`recover`](Self::recover).
    pub fn open_sealed(
        storage: &dyn Storage,
        dir: &Path,
        base: Offset,
        next_base: Offset,
        settings: SegmentSettings,
    ) -> LogResult<Option<Segment>> {
        let path = dir.join(file_name(base, "log"));
        let read_index =
            |suffix: &str| storage::read_file(storage, &dir.join(file_name(base, suffix))).ok();
        let (Some(index), Some(time_index)) = (
            read_index("index").and_then(|b| OffsetIndex::decode(&b)),
            read_index("timeindex").and_then(|b| TimeIndex::decode(&b)),
        ) else {
            return Ok(None);
        };
        let file = storage
            .open(&path, OpenMode::Existing)
            .map_err(|e| LogError::io(&path, e))?;
        let file_len = file.len().map_err(|e| LogError::io(&path, e))?;
        let mut segment = Segment::empty(base, path, file, settings);
        let (rel, mut pos) = index.last().map_or((0, 0), |(r, p)| (r, u64::from(p)));
        let mut expected = base.plus(u64::from(rel));
        let mut reader = ChunkReader::new(&*segment.file, file_len, HEADER_LEN);
        while pos < file_len {
            match reader.batch_at(pos, false) {
                Ok(Some(h)) if segment.continues(h.base_offset, expected) => {
                    expected = h.next_offset();
                    pos += u64::from(h.size);
                }
                _ => return Ok(None),
            }
        }
        let max = time_index.last();
        if pos != file_len || expected != next_base || (file_len > 0 && max.is_none()) {
            return Ok(None);
        }
        if file_len > 0 {
            match reader.batch_at(0, false) {
                Ok(Some(first)) => segment.first_timestamp = Some(first.max_timestamp),
                _ => return Ok(None),
            }
        }
        segment.size = file_len;
        segment.next_offset = next_base;
        segment.index = index;
        segment.time_index = time_index;
        segment.max_timestamp = max;
        Ok(Some(segment))
    }

    /// The offset of the segment's first batch (and its file name).
    pub fn base(&self) -> Offset {
        self.base
    }

    /// The offset after its last batch.
    pub fn next_offset(&self) -> Offset {
        self.next_offset
    }

    /// Bytes in the segment.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether it holds no batch.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The largest record timestamp in it.
    pub fn max_timestamp(&self) -> Option<i64> {
        self.max_timestamp.map(|(t, _)| t)
    }

    /// The first batch's max timestamp.
    pub fn first_timestamp(&self) -> Option<i64> {
        self.first_timestamp
    }

    /// The `.log` file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// See [`SegmentSettings::hold_appends`]; held appends go out now if
    /// `hold` is off.
    pub fn set_hold_appends(&mut self, hold: bool) -> io::Result<()> {
        self.settings.hold_appends = hold;
        self.file.hold_appends(hold)
    }

    /// Appends `data`, whose batches are `headers` (already validated and carrying
    /// their final offsets). On failure the segment is unchanged if `undone`.
    pub fn append(&mut self, data: &[u8], headers: &[BatchHeader]) -> Result<(), AppendFailure> {
        if let Err(error) = self.file.write_all_at(data, self.size) {
            let undone = self.file.set_len(self.size).is_ok();
            return Err(AppendFailure { error, undone });
        }
        for header in headers {
            self.note_appended(header);
        }
        Ok(())
    }

    /// Updates size, offsets and indexes for a batch just written at `self.size`.
    fn note_appended(&mut self, header: &BatchHeader) {
        // Callers check the offset chain and the 32-bit span before this.
        let rel = header.base_offset.0.saturating_sub(self.base.0) as u32;
        let position = self.size as u32;
        if self
            .max_timestamp
            .is_none_or(|(t, _)| header.max_timestamp > t)
        {
            self.max_timestamp = Some((header.max_timestamp, rel));
        }
        if self.first_timestamp.is_none() {
            self.first_timestamp = Some(header.max_timestamp);
        }
        if self.size > 0 && self.bytes_since_index >= self.settings.index_interval {
            self.index.push(rel, position);
            if let Some((t, r)) = self.max_timestamp {
                self.time_index.push(t, r);
            }
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += u64::from(header.size);
        self.size += u64::from(header.size);
        self.next_offset = header.next_offset();
    }

    /// Whether a batch starting at `offset` still fits the 32-bit relative offsets
    /// of this segment's index.
    pub fn can_index(&self, last_offset: Offset) -> bool {
        last_offset.0 - self.base.0 <= u64::from(u32::MAX)
    }

    /// Reads whole batches from the one containing `from`, stopping before a batch
    /// that reaches `upper` or would take the total past `max_bytes` (the first
    /// batch is returned whole even if larger, so readers always progress).
    /// Returns the bytes and the offset after the last batch; `None` if no batch
    /// in this segment ends at or after `from`.
    pub fn read(
        &self,
        from: Offset,
        max_bytes: usize,
        upper: Offset,
    ) -> LogResult<Option<(Bytes, Offset)>> {
        let Some((start, first)) = self.find_batch(from)? else {
            return Ok(None);
        };
        if first.next_offset() > upper {
            return Ok(None);
        }
        let want = max_bytes.max(first.size as usize) as u64;
        let len = want.min(self.size - start) as usize;
        let mut buf = self
            .file
            .read_vec_at(len, start)
            .map_err(|e| LogError::io(&self.path, e))?;
        let mut used = 0;
        let mut next = first.base_offset;
        while used + HEADER_LEN <= buf.len() {
            let rest = &buf[used..];
            let checked = BatchHeader::parse(rest).and_then(|h| {
                let size = h.size as usize;
                if size > rest.len() {
                    return Ok(None);
                }
                h.verify_crc(&rest[..size]).map(|()| Some(h))
            });
            let header = match checked {
                Ok(Some(h)) if self.continues(h.base_offset, next) && h.next_offset() <= upper => h,
                Ok(_) => break,
                Err(reason) if used == 0 => {
                    return Err(LogError::CorruptRecord {
                        offset: Some(next),
                        reason,
                    })
                }
                // Serve the good prefix; the bad batch fails the next read.
                Err(_) => break,
            };
            used += header.size as usize;
            next = header.next_offset();
        }
        buf.truncate(used);
        Ok(Some((Bytes::from(buf), next)))
    }

    /// The byte position and header of the batch containing `offset`, if any.
    fn find_batch(&self, offset: Offset) -> LogResult<Option<(u64, BatchHeader)>> {
        if offset >= self.next_offset || offset < self.base {
            return Ok(None);
        }
        let rel = (offset.0 - self.base.0).min(u64::from(u32::MAX)) as u32;
        let (entry_rel, position) = self.index.lookup(rel);
        self.walk_from(
            u64::from(position),
            self.base.plus(u64::from(entry_rel)),
            |h| h.last_offset() >= offset,
        )
    }

    /// Walks batch headers from byte `pos`, where the batch at `expected` starts,
    /// to the end; returns the first for which `stop` holds. Each header must
    /// continue the offset chain: a base offset is outside the CRC, so a damaged
    /// one is caught only here.
    fn walk_from(
        &self,
        mut pos: u64,
        mut expected: Offset,
        mut stop: impl FnMut(&BatchHeader) -> bool,
    ) -> LogResult<Option<(u64, BatchHeader)>> {
        let mut reader = ChunkReader::new(&*self.file, self.size, HEADER_LEN);
        while pos < self.size {
            let header = match reader.batch_at(pos, false) {
                Ok(Some(h)) if self.continues(h.base_offset, expected) => h,
                Ok(_) | Err(ScanError::Batch(_)) => {
                    return Err(LogError::CorruptRecord {
                        offset: Some(expected),
                        reason: BatchError::Field("batch header damaged on disk"),
                    })
                }
                Err(ScanError::Io(e)) => return Err(LogError::io(&self.path, e)),
            };
            if stop(&header) {
                return Ok(Some((pos, header)));
            }
            pos += u64::from(header.size);
            expected = header.next_offset();
        }
        Ok(None)
    }

    /// Kafka's ListOffsets by timestamp within this segment: the first record
    /// whose timestamp is at least `timestamp`, as `(offset, its timestamp)`.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> LogResult<Option<(Offset, i64)>> {
        if self.max_timestamp().is_none_or(|max| max < timestamp) {
            return Ok(None);
        }
        let rel = self.time_index.lookup(timestamp);
        let (entry_rel, position) = self.index.lookup(rel);
        let start = self.base.plus(u64::from(entry_rel));
        let found = self.walk_from(u64::from(position), start, |h| h.max_timestamp >= timestamp)?;
        let Some((position, header)) = found else {
            return Ok(None);
        };
        let batch = self.read_batch(position, &header)?;
        // Find the record inside the batch. A batch compressed with a codec this
        // build does not decode is answered at batch granularity.
        let mut bytes = bytes::Bytes::from(batch);
        let exact = RecordBatchDecoder::decode(&mut bytes).ok().and_then(|set| {
            set.records
                .into_iter()
                .find(|r| r.timestamp >= timestamp)
                .and_then(|r| {
                    u64::try_from(r.offset)
                        .ok()
                        .map(|o| (Offset(o), r.timestamp))
                })
        });
        Ok(Some(
            exact.unwrap_or((header.base_offset, header.max_timestamp)),
        ))
    }

    /// Removes every batch whose last offset is at or after `offset` (so a batch
    /// containing `offset` goes whole), durably. Returns the new next offset.
    pub fn truncate_to(&mut self, offset: Offset) -> LogResult<Offset> {
        let Some((position, header)) = self.find_batch(offset)? else {
            return Ok(self.next_offset);
        };
        self.cut_file(position)?;
        let rel = header.base_offset.0.saturating_sub(self.base.0) as u32;
        self.index.truncate_to_position(position as u32);
        self.time_index.truncate_to_offset(rel);
        self.size = position;
        self.next_offset = header.base_offset;
        // Recompute what the removed batches may have set. In a log with gaps
        // the kept batches may end before the removed one began.
        self.max_timestamp = None;
        self.first_timestamp = None;
        let mut max = None;
        let mut first = None;
        let mut end = self.base;
        let base = self.base;
        self.walk_from(0, base, |h| {
            end = h.next_offset();
            first.get_or_insert(h.max_timestamp);
            if max.is_none_or(|(t, _)| h.max_timestamp > t) {
                max = Some((
                    h.max_timestamp,
                    h.base_offset.0.saturating_sub(base.0) as u32,
                ));
            }
            false
        })?;
        self.max_timestamp = max;
        self.first_timestamp = first;
        self.next_offset = end;
        self.bytes_since_index = match self.index.last() {
            Some((_, p)) => position - u64::from(p),
            None => position,
        };
        Ok(self.next_offset)
    }

    fn cut_file(&mut self, len: u64) -> LogResult<()> {
        self.file
            .set_len(len)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| LogError::io(&self.path, e))
    }

    /// Makes the segment's data durable, then releases its cold pages.
    pub fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()?;
        self.release_cold();
        Ok(())
    }

    /// The segment's file, for an fsync run away from the writer (see
    /// [`Log::begin_flush`](crate::log::Log::begin_flush)).
    pub fn file(&self) -> Arc<dyn StorageFile> {
        self.file.clone()
    }

    /// Right after a sync (the bytes are clean), everything but the last
    /// `cached_tail` bytes goes back to the kernel (`None`: nothing does). Followers and tailing consumers read the
    /// tail, while older data only slows down the next writes if it stays (they
    /// find no free page cache and wait for the kernel to reclaim, or on a VM
    /// for the host to back fresh memory). Readers of older data read the disk,
    /// as after a restart.
    pub fn release_cold(&mut self) {
        let Some(keep) = self.settings.cached_tail else {
            return;
        };
        let Some((from, len)) = cold_range(self.released_to, self.size, keep) else {
            return;
        };
        // Advice only: if the kernel refuses, the pages stay cached.
        if self.file.release_cache(from, len).is_ok() {
            self.released_to = from + len;
        }
    }

    /// Seals the segment: fsyncs it and writes its index files durably.
    pub fn seal(&mut self, storage: &dyn Storage, dir: &Path) -> Result<(), WriteError> {
        self.seal_unsynced_dir(storage, dir)?;
        storage.sync_dir(dir).map_err(WriteError::Sync)
    }

    /// [`seal`](Self::seal) without the directory's sync: the segment and its
    /// index files' contents are durable, their names once the caller syncs
    /// `dir` (a roll syncs it once for these and the next segment's file).
    pub fn seal_unsynced_dir(
        &mut self,
        storage: &dyn Storage,
        dir: &Path,
    ) -> Result<(), WriteError> {
        // Durably its exact length before anything relies on it (the index
        // files, the next segment).
        self.file.finish_appends().map_err(WriteError::Sync)?;
        self.release_cold();
        // No more appends: a plain file for the reads (readers holding the
        // appender's file keep it until they are done).
        if self.settings.cached_tail.is_some() {
            self.file = Arc::from(
                storage
                    .open(&self.path, OpenMode::Existing)
                    .map_err(WriteError::Write)?,
            );
        }
        if let Some((t, rel)) = self.max_timestamp {
            self.time_index.push(t, rel);
        }
        let (index, time_index) = (self.index.encode(), self.time_index.encode());
        storage::write_files_atomic_unsynced_dir(
            storage,
            dir,
            &[
                (&file_name(self.base, "index"), &index),
                (&file_name(self.base, "timeindex"), &time_index),
            ],
        )
    }

    /// Every batch's byte position and header, in order.
    pub fn positions(&self) -> LogResult<Vec<(u64, BatchHeader)>> {
        let mut found = Vec::new();
        let mut pos = 0;
        self.walk_from(0, self.base, |h| {
            found.push((pos, *h));
            pos += u64::from(h.size);
            false
        })?;
        Ok(found)
    }

    /// Reads every batch whole: `None` unless each passes its CRC and
    /// continues the offset chain; else the epoch starts seen (as
    /// [`epoch_starts`](Self::epoch_starts)), for the caller to check the
    /// one header field outside the CRC against the epoch checkpoint.
    pub fn verify(&self) -> Option<Vec<(LeaderEpoch, Offset)>> {
        let mut starts: Vec<(LeaderEpoch, Offset)> = Vec::new();
        for (position, header) in self.positions().ok()? {
            self.read_batch(position, &header).ok()?;
            if starts.last().is_none_or(|&(e, _)| header.leader_epoch > e) {
                starts.push((header.leader_epoch, header.base_offset));
            }
        }
        Some(starts)
    }

    /// The whole batch at byte `position`, its CRC checked.
    pub fn read_batch(&self, position: u64, header: &BatchHeader) -> LogResult<Vec<u8>> {
        let batch = self
            .file
            .read_vec_at(header.size as usize, position)
            .map_err(|e| LogError::io(&self.path, e))?;
        header
            .verify_crc(&batch)
            .map_err(|reason| LogError::CorruptRecord {
                offset: Some(header.base_offset),
                reason,
            })?;
        Ok(batch)
    }

    /// Every batch header in the segment, in order.
    pub fn headers(&self) -> LogResult<Vec<BatchHeader>> {
        let mut headers = Vec::new();
        self.walk_from(0, self.base, |h| {
            headers.push(*h);
            false
        })?;
        Ok(headers)
    }

    /// The leader epochs that start in this segment: `(epoch, first offset)` for
    /// each batch whose epoch is newer than every batch before it.
    pub fn epoch_starts(&self) -> LogResult<Vec<(LeaderEpoch, Offset)>> {
        let mut starts: Vec<(LeaderEpoch, Offset)> = Vec::new();
        self.walk_from(0, self.base, |h| {
            if starts.last().is_none_or(|&(e, _)| h.leader_epoch > e) {
                starts.push((h.leader_epoch, h.base_offset));
            }
            false
        })?;
        Ok(starts)
    }
}

/// The suffix a segment's files take when the log lets go of them (`<name>.deleted`):
/// the rename is quick, so the log's writer does it; the unlink, which takes
/// tens of milliseconds for a large file (the kernel frees its pages and
/// extents), happens later off the writer
/// ([`RetiredFiles`](super::RetiredFiles)); and [`Log::open`](super::Log::open)
/// sweeps any a crash left behind.
pub const RETIRED_SUFFIX: &str = "deleted";

/// The files of one segment, by suffix.
const SEGMENT_FILES: [&str; 3] = ["log", "index", "timeindex"];

/// Renames the files of the segment at `base` to `<name>.deleted` (not yet
/// durably: the caller syncs the directory) and returns their new paths, for
/// [`RetiredFiles`](super::RetiredFiles). Files already gone are skipped.
pub fn retire_files(storage: &dyn Storage, dir: &Path, base: Offset) -> LogResult<Vec<PathBuf>> {
    let mut retired = Vec::new();
    for suffix in SEGMENT_FILES {
        let path = dir.join(file_name(base, suffix));
        let to = dir.join(format!("{}.{RETIRED_SUFFIX}", file_name(base, suffix)));
        match storage.rename(&path, &to) {
            Ok(()) => retired.push(to),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(LogError::io(path, e)),
        }
    }
    Ok(retired)
}

/// Deletes the files of the segment at `base` (not yet durably: the caller syncs
/// the directory). Files already gone are fine.
pub fn delete_files(storage: &dyn Storage, dir: &Path, base: Offset) -> LogResult<()> {
    for suffix in SEGMENT_FILES {
        let path = dir.join(file_name(base, suffix));
        match storage.remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(LogError::io(path, e)),
            _ => {}
        }
    }
    Ok(())
}

enum ScanError {
    Io(io::Error),
    Batch(BatchError),
}

/// Reads batches sequentially through a buffer of `chunk` bytes.
struct ChunkReader<'a> {
    file: &'a dyn StorageFile,
    file_len: u64,
    chunk: usize,
    buf: Vec<u8>,
    buf_pos: u64,
}

impl<'a> ChunkReader<'a> {
    fn new(file: &'a dyn StorageFile, file_len: u64, chunk: usize) -> Self {
        ChunkReader {
            file,
            file_len,
            chunk,
            buf: Vec::new(),
            buf_pos: 0,
        }
    }

    /// `len` bytes at `pos`, or `None` if the file ends first.
    fn bytes(&mut self, pos: u64, len: usize) -> Result<Option<&[u8]>, io::Error> {
        let end = pos + len as u64;
        if end > self.file_len {
            return Ok(None);
        }
        let buf_end = self.buf_pos + self.buf.len() as u64;
        if pos < self.buf_pos || end > buf_end {
            let read = (len.max(self.chunk) as u64).min(self.file_len - pos) as usize;
            self.buf.resize(read, 0);
            self.file.read_exact_at(&mut self.buf, pos)?;
            self.buf_pos = pos;
        }
        let at = (pos - self.buf_pos) as usize;
        Ok(Some(&self.buf[at..at + len]))
    }

    /// The file from `pos` to its end, at most `max` bytes.
    fn tail(&mut self, pos: u64, max: usize) -> Result<&[u8], io::Error> {
        let len = (self.file_len.saturating_sub(pos)).min(max as u64) as usize;
        Ok(self.bytes(pos, len)?.unwrap_or_default())
    }

    /// For a batch at `pos` running past the end of the file: the size at which
    /// its CRC passes after all (its length field is what was damaged), if any
    /// within [`DAMAGE_SEARCH_MAX`] bytes.
    fn damaged_length_at(&mut self, pos: u64) -> Result<Option<usize>, io::Error> {
        let tail = self.tail(pos, DAMAGE_SEARCH_MAX)?;
        Ok(tail
            .get(..HEADER_LEN)
            .and_then(|h| BatchHeader::parse(h).ok())
            .and_then(|header| header.crc_passes_within(tail)))
    }

    /// Whether the file holds only zeros from `pos` on (looked at up to
    /// [`DAMAGE_SEARCH_MAX`] bytes).
    fn zeros_to_end(&mut self, pos: u64) -> Result<bool, io::Error> {
        Ok(self.tail(pos, DAMAGE_SEARCH_MAX)?.iter().all(|&b| b == 0))
    }

    /// The header of the batch at `pos`, checking the whole batch's CRC if
    /// `verify`; `None` if the batch runs past the end of the file.
    fn batch_at(&mut self, pos: u64, verify: bool) -> Result<Option<BatchHeader>, ScanError> {
        let header = match self.bytes(pos, HEADER_LEN).map_err(ScanError::Io)? {
            Some(bytes) => BatchHeader::parse(bytes).map_err(ScanError::Batch)?,
            None => return Ok(None),
        };
        if pos + u64::from(header.size) > self.file_len {
            return Ok(None);
        }
        if verify {
            let Some(batch) = self
                .bytes(pos, header.size as usize)
                .map_err(ScanError::Io)?
            else {
                return Ok(None);
            };
            header.verify_crc(batch).map_err(ScanError::Batch)?;
        }
        Ok(Some(header))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_names_round_trip() {
        assert_eq!(file_name(Offset(42), "log"), "00000000000000000042.log");
        assert_eq!(parse_log_name("00000000000000000042.log"), Some(Offset(42)));
        for bad in [
            "42.log",
            "00000000000000000042.index",
            "0000000000000000004x.log",
        ] {
            assert_eq!(parse_log_name(bad), None, "{bad}");
        }
    }
}
