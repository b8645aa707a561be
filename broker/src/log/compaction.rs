//! Log compaction (`cleanup.policy=compact`): the cleaner keeps only the
//! latest record of each key, as Kafka's log cleaner does, so a compacted
//! topic (`__consumer_offsets`, a changelog) stays as large as its live keys.
//!
//! One pass over a log:
//!
//! 1. The *cleanable* range is the sealed segments wholly below the caller's
//!    limit (the high watermark: nothing a follower may still lack, nothing
//!    that truncation could take back) and older than `min.compaction.lag.ms`.
//!    Its part past the last pass's end is *dirty*; the pass runs once the dirty
//!    share of the cleanable bytes reaches `min.cleanable.dirty.ratio`.
//! 2. The dirty records are read into a map from key to its latest offset.
//! 3. Every cleanable segment whose records the map makes obsolete is rewritten
//!    beside itself (`<base>.cleaned`), then put in place by a rename. A record
//!    is kept if no later record in the map has its key. A tombstone (a key
//!    with no value) is also dropped once it has been through one pass and its
//!    batch is older than `delete.retention.ms`, so consumers reading from the
//!    start had that long to see the delete. Records without a key go.
//!
//! Batches keep their base offset, last offset delta and producer fields: a
//! kept record keeps its offset, and offsets are no longer dense (Kafka's
//! compacted topics are the same). A batch whose records all go is removed,
//! unless it is the last of its segment (so each segment still ends where the
//! next begins) or the last of its producer there (so producer state rebuilt
//! on open still knows the producer's latest sequence): those stay as empty
//! batches. Compressed and control batches are kept whole.
//!
//! Crash safety: the rewritten file is fsynced before the rename; the old
//! index files are removed before it, so a crash in between leaves a sealed
//! segment without indexes, which open rebuilds by a scan; `.cleaned` leftovers
//! are deleted on open.

use super::batch::{BatchError, BatchHeader, CRC_START, HEADER_LEN, LOG_OVERHEAD};
use super::segment::{self, Segment};
use super::{millis, Log};
use crate::error::{LogError, LogResult};
use crate::position::Offset;
use crate::storage::OpenMode;
use std::collections::{BTreeMap, HashMap};

/// The suffix of a segment being rewritten by the cleaner.
pub const CLEANED_SUFFIX: &str = "cleaned";

/// What one cleaner pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanOutcome {
    /// Base offsets of the segments rewritten.
    pub rewritten: Vec<Offset>,
    /// Records removed.
    pub records_removed: u64,
    /// Bytes of the cleanable segments before and after.
    pub bytes_before: u64,
    /// See `bytes_before`.
    pub bytes_after: u64,
    /// The end of the range this pass cleaned: the next pass's dirty part
    /// starts here.
    pub cleaned_to: Offset,
}

/// One record inside an uncompressed batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// The record's bytes, its length prefix included.
    pub raw: &'a [u8],
    /// Its offset: the batch's base offset plus its offset delta.
    pub offset: Offset,
    /// Its key, if it has one.
    pub key: Option<&'a [u8]>,
    /// Whether its value is null: a tombstone.
    pub tombstone: bool,
}

fn bad(reason: &'static str) -> BatchError {
    BatchError::Field(reason)
}

/// A zigzag varint at `buf[*pos..]`, as Kafka's records encode lengths.
fn varint(buf: &[u8], pos: &mut usize) -> Result<i64, BatchError> {
    let mut raw: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos).ok_or(bad("record cut short"))?;
        *pos += 1;
        raw |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    Err(bad("varint too long"))
}

/// A length-prefixed byte string: `None` for length -1.
fn bytes_field<'a>(buf: &'a [u8], pos: &mut usize) -> Result<Option<&'a [u8]>, BatchError> {
    let len = varint(buf, pos)?;
    if len < 0 {
        return Ok(None);
    }
    let end = usize::try_from(len)
        .ok()
        .and_then(|l| pos.checked_add(l))
        .filter(|&e| e <= buf.len())
        .ok_or(bad("record field runs past its record"))?;
    let field = &buf[*pos..end];
    *pos = end;
    Ok(Some(field))
}

/// The records of one whole, uncompressed batch (CRC already checked).
pub fn records<'a>(
    batch: &'a [u8],
    header: &BatchHeader,
) -> Result<Vec<RecordView<'a>>, BatchError> {
    if header.is_compressed() {
        return Err(bad("compressed records"));
    }
    let body = batch
        .get(HEADER_LEN..header.size as usize)
        .ok_or(bad("batch cut short"))?;
    let mut records = Vec::with_capacity(header.record_count as usize);
    let mut pos = 0;
    while pos < body.len() {
        let start = pos;
        let len = varint(body, &mut pos)?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| pos.checked_add(l))
            .filter(|&e| e <= body.len())
            .ok_or(bad("record length runs past the batch"))?;
        let record = &body[pos..end];
        let mut at = 1; // attributes
        varint(record, &mut at)?; // timestamp delta
        let delta = varint(record, &mut at)?;
        let key = bytes_field(record, &mut at)?;
        let value = bytes_field(record, &mut at)?;
        let delta = u32::try_from(delta)
            .ok()
            .filter(|&d| d <= header.last_offset_delta)
            .ok_or(bad("record offset delta outside its batch"))?;
        records.push(RecordView {
            raw: &body[start..end],
            offset: header.base_offset.plus(u64::from(delta)),
            key,
            tombstone: value.is_none(),
        });
        pos = end;
    }
    if records.len() != header.record_count as usize {
        return Err(bad("record count does not match the records"));
    }
    Ok(records)
}

/// Refuses what a compacted log cannot keep: a record without a key (Kafka
/// answers INVALID_RECORD too) or compressed records, which this build cannot
/// rewrite.
pub fn check_compactable(batch: &[u8], header: &BatchHeader) -> LogResult<()> {
    let invalid = |reason: String| Err(LogError::InvalidRecord { reason });
    if header.is_compressed() {
        return invalid("a compacted topic does not accept compressed batches yet".into());
    }
    let records = records(batch, header).map_err(|reason| LogError::CorruptRecord {
        offset: None,
        reason,
    })?;
    if records.iter().any(|r| r.key.is_none()) {
        return invalid("a compacted topic cannot accept a record without a key".into());
    }
    Ok(())
}

/// `batch` with only `kept` of its records: header fields kept, length,
/// record count and CRC recomputed.
fn rebuild(batch: &[u8], kept: &[RecordView<'_>]) -> Vec<u8> {
    let body: usize = kept.iter().map(|r| r.raw.len()).sum();
    let mut out = Vec::with_capacity(HEADER_LEN + body);
    out.extend_from_slice(&batch[..HEADER_LEN]);
    for record in kept {
        out.extend_from_slice(record.raw);
    }
    // Bounded by the original batch, itself at most i32::MAX bytes.
    let length = (out.len() - LOG_OVERHEAD) as i32;
    out[8..12].copy_from_slice(&length.to_be_bytes());
    out[57..61].copy_from_slice(&(kept.len() as i32).to_be_bytes());
    let crc = crc32c::crc32c(&out[CRC_START..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Decides, record by record, what a pass keeps.
struct Keep<'m> {
    /// Each dirty key's latest offset.
    latest: &'m HashMap<Vec<u8>, Offset>,
    /// Tombstones in batches at or below this timestamp may go...
    horizon_ms: i64,
    /// ...if they lie below this offset (they have been through a pass).
    previously_cleaned: Offset,
}

impl Keep<'_> {
    fn record(&self, record: &RecordView<'_>, header: &BatchHeader) -> bool {
        let Some(key) = record.key else {
            return false;
        };
        if self.latest.get(key).is_some_and(|&o| o > record.offset) {
            return false;
        }
        !(record.tombstone
            && record.offset < self.previously_cleaned
            && header.max_timestamp <= self.horizon_ms)
    }
}

impl Log {
    /// Runs one cleaner pass if compaction is on and enough of the log below
    /// `limit` is dirty (see the module docs). `Ok(None)` when there was
    /// nothing to do. A failure before a segment's rename leaves the log as it
    /// was; one after it fails the log.
    pub fn clean(&mut self, limit: Offset, now_ms: i64) -> LogResult<Option<CleanOutcome>> {
        self.check_healthy()?;
        if !self.config.cleanup.compact {
            return Ok(None);
        }
        // A pass may rewrite batches the tail holds as they were.
        self.tail.clear();
        let lag = millis(self.config.min_compaction_lag);
        let active = self.segments.keys().next_back().copied();
        let cleanable: Vec<Offset> = self
            .segments
            .values()
            .take_while(|s| {
                Some(s.base()) != active
                    && s.next_offset() <= limit
                    && s.max_timestamp()
                        .is_none_or(|t| now_ms.saturating_sub(t) >= lag)
            })
            .map(Segment::base)
            .collect();
        let size = |bases: &mut dyn Iterator<Item = &Offset>| -> u64 {
            bases
                .filter_map(|b| self.segments.get(b))
                .map(Segment::size)
                .sum()
        };
        let total = size(&mut cleanable.iter());
        let dirty = size(&mut cleanable.iter().filter(|&&b| b >= self.cleaned_to));
        if dirty == 0
            || dirty.saturating_mul(1000)
                < total.saturating_mul(u64::from(self.config.min_cleanable_dirty_permille))
        {
            return Ok(None);
        }
        let Some(end) = cleanable
            .last()
            .and_then(|b| self.segments.get(b))
            .map(Segment::next_offset)
        else {
            return Ok(None);
        };
        let mut latest: HashMap<Vec<u8>, Offset> = HashMap::new();
        for base in cleanable.iter().filter(|&&b| b >= self.cleaned_to) {
            let Some(segment) = self.segments.get(base) else {
                continue;
            };
            for (position, header) in segment.positions()? {
                if header.is_compressed() || header.is_control() {
                    continue;
                }
                let bytes = segment.read_batch(position, &header)?;
                for record in records(&bytes, &header).map_err(|reason| corrupt(&header, reason))? {
                    if let Some(key) = record.key {
                        latest.insert(key.to_vec(), record.offset);
                    }
                }
            }
        }
        let keep = Keep {
            latest: &latest,
            horizon_ms: now_ms.saturating_sub(millis(self.config.delete_retention)),
            previously_cleaned: self.cleaned_to,
        };
        let mut outcome = CleanOutcome {
            cleaned_to: end,
            ..CleanOutcome::default()
        };
        for base in cleanable {
            self.clean_segment(base, &keep, &mut outcome)?;
        }
        self.cleaned_to = end;
        Ok(Some(outcome))
    }

    /// Rewrites one segment if `keep` drops any of its records.
    fn clean_segment(
        &mut self,
        base: Offset,
        keep: &Keep<'_>,
        outcome: &mut CleanOutcome,
    ) -> LogResult<()> {
        let Some(segment) = self.segments.get(&base) else {
            return Ok(());
        };
        outcome.bytes_before += segment.size();
        let positions = segment.positions()?;
        // The last batch of each producer, and of the segment, stay even empty.
        let mut last_of_producer: BTreeMap<i64, usize> = BTreeMap::new();
        for (i, (_, h)) in positions.iter().enumerate() {
            if h.producer_id >= 0 {
                last_of_producer.insert(h.producer_id, i);
            }
        }
        let mut must_stay: Vec<bool> = vec![false; positions.len()];
        for &i in last_of_producer.values() {
            must_stay[i] = true;
        }
        if let Some(last) = must_stay.last_mut() {
            *last = true;
        }
        let mut out: Vec<Vec<u8>> = Vec::with_capacity(positions.len());
        let mut removed = 0u64;
        for (i, (position, header)) in positions.iter().enumerate() {
            let bytes = segment.read_batch(*position, header)?;
            if header.is_compressed() || header.is_control() {
                out.push(bytes);
                continue;
            }
            let all = records(&bytes, header).map_err(|reason| corrupt(header, reason))?;
            let kept: Vec<RecordView<'_>> = all
                .iter()
                .filter(|r| keep.record(r, header))
                .copied()
                .collect();
            removed += (all.len() - kept.len()) as u64;
            if kept.len() == all.len() {
                out.push(bytes);
            } else if !kept.is_empty() || must_stay[i] {
                out.push(rebuild(&bytes, &kept));
            }
        }
        if removed == 0 {
            outcome.bytes_after += segment.size();
            return Ok(());
        }
        let limit = segment.next_offset();
        let next_base = self
            .segments
            .range((std::ops::Bound::Excluded(base), std::ops::Bound::Unbounded))
            .next()
            .map(|(&b, _)| b);
        let cleaned = self.dir.join(segment::file_name(base, CLEANED_SUFFIX));
        self.write_cleaned(&cleaned, &out)?;
        // From here on, a failure leaves the files in a state only a restart
        // (which rescans) sorts out.
        let log_path = self.dir.join(segment::file_name(base, "log"));
        let swapped = (|| -> std::io::Result<()> {
            for suffix in ["index", "timeindex"] {
                let path = self.dir.join(segment::file_name(base, suffix));
                if self.storage.exists(&path) {
                    self.storage.remove_file(&path)?;
                }
            }
            self.storage.sync_dir(&self.dir)?;
            self.storage.rename(&cleaned, &log_path)?;
            self.storage.sync_dir(&self.dir)
        })();
        if let Err(e) = swapped {
            return Err(self.fail(format!(
                "putting cleaned segment {base} in place failed: {e}"
            )));
        }
        let settings = self.segment_settings();
        let reopened = Segment::recover(&*self.storage, log_path, base, next_base, settings);
        let mut fresh = match reopened {
            Ok((fresh, scan)) if scan.stopped_by.is_none() && fresh.next_offset() == limit => fresh,
            Ok((_, scan)) => {
                return Err(self.fail(format!(
                    "cleaned segment {base} does not read back whole: {}",
                    scan.stopped_by.unwrap_or_else(|| "it ends early".into())
                )))
            }
            Err(e) => return Err(self.fail(format!("reopening cleaned segment {base}: {e}"))),
        };
        let storage = self.storage.clone();
        let dir = self.dir.clone();
        if let Err(e) = fresh.seal(&*storage, &dir) {
            return Err(self.fail(format!("sealing cleaned segment {base}: {e}")));
        }
        outcome.bytes_after += fresh.size();
        outcome.records_removed += removed;
        outcome.rewritten.push(base);
        self.segments.insert(base, fresh);
        Ok(())
    }

    /// Writes the cleaned batches to `path` and fsyncs them; on failure the
    /// file is removed again and the log is unchanged.
    fn write_cleaned(&self, path: &std::path::Path, batches: &[Vec<u8>]) -> LogResult<()> {
        let written = (|| -> std::io::Result<()> {
            let file = self.storage.open(path, OpenMode::Truncate)?;
            let mut pos = 0u64;
            for batch in batches {
                file.write_all_at(batch, pos)?;
                pos += batch.len() as u64;
            }
            file.sync_data()
        })();
        written.map_err(|e| {
            let _ = self.storage.remove_file(path);
            LogError::io(path, e)
        })
    }
}

fn corrupt(header: &BatchHeader, reason: BatchError) -> LogError {
    LogError::CorruptRecord {
        offset: Some(header.base_offset),
        reason,
    }
}

/// Builders for the tests here and in `log`'s: records with keys, by hand.
#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::log::batch::parse_batches;

    fn zigzag(v: i64) -> Vec<u8> {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        let mut out = Vec::new();
        loop {
            if z < 0x80 {
                out.push(z as u8);
                return out;
            }
            out.push((z as u8 & 0x7f) | 0x80);
            z >>= 7;
        }
    }

    /// A batch at `base` of `(key, value)` records (`None` value: tombstone),
    /// optionally from producer `pid` starting at sequence `seq`.
    pub(crate) fn keyed_batch(
        base: u64,
        records: &[(Option<&str>, Option<&str>)],
        timestamp: i64,
        producer: Option<(i64, i32)>,
    ) -> Vec<u8> {
        let field = |f: Option<&str>| -> Vec<u8> {
            match f {
                None => zigzag(-1),
                Some(s) => {
                    let mut v = zigzag(s.len() as i64);
                    v.extend_from_slice(s.as_bytes());
                    v
                }
            }
        };
        let mut body = Vec::new();
        for (i, (key, value)) in records.iter().enumerate() {
            let mut rec = vec![0u8];
            rec.extend(zigzag(0));
            rec.extend(zigzag(i as i64));
            rec.extend(field(*key));
            rec.extend(field(*value));
            rec.extend(zigzag(0));
            body.extend(zigzag(rec.len() as i64));
            body.extend(rec);
        }
        let (pid, seq) = producer.unwrap_or((-1, -1));
        let mut b = Vec::new();
        b.extend((base as i64).to_be_bytes());
        b.extend(((HEADER_LEN - LOG_OVERHEAD + body.len()) as i32).to_be_bytes());
        b.extend(0i32.to_be_bytes());
        b.push(2);
        b.extend(0u32.to_be_bytes());
        b.extend(0i16.to_be_bytes());
        b.extend((records.len() as i32 - 1).to_be_bytes());
        b.extend(timestamp.to_be_bytes());
        b.extend(timestamp.to_be_bytes());
        b.extend(pid.to_be_bytes());
        b.extend((if pid >= 0 { 0i16 } else { -1 }).to_be_bytes());
        b.extend(seq.to_be_bytes());
        b.extend((records.len() as i32).to_be_bytes());
        b.extend(body);
        let crc = crc32c::crc32c(&b[CRC_START..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn records_are_parsed_with_offsets_keys_and_tombstones() {
        let b = keyed_batch(10, &[(Some("a"), Some("1")), (Some("b"), None)], 5, None);
        let h = parse_batches(&b).unwrap()[0];
        let r = records(&b, &h).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].offset, r[0].key, r[0].tombstone),
            (Offset(10), Some(&b"a"[..]), false)
        );
        assert_eq!(
            (r[1].offset, r[1].key, r[1].tombstone),
            (Offset(11), Some(&b"b"[..]), true)
        );
        // Damage inside the records is refused, never a panic.
        for cut in HEADER_LEN..b.len() {
            let mut short = b.clone();
            short.truncate(cut);
            let mut h = h;
            h.size = cut as u32;
            assert!(records(&short, &h).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn rebuilt_batches_keep_offsets_and_pass_their_crc() {
        let b = keyed_batch(
            7,
            &[
                (Some("a"), Some("1")),
                (Some("b"), Some("2")),
                (Some("c"), Some("3")),
            ],
            5,
            Some((4, 100)),
        );
        let h = parse_batches(&b).unwrap()[0];
        let all = records(&b, &h).unwrap();
        let kept = vec![all[1]];
        let rebuilt = rebuild(&b, &kept);
        let rh = parse_batches(&rebuilt).unwrap()[0];
        assert_eq!(
            (rh.base_offset, rh.last_offset_delta, rh.record_count),
            (Offset(7), 2, 1)
        );
        assert_eq!((rh.producer_id, rh.base_sequence), (4, 100));
        let back = records(&rebuilt, &rh).unwrap();
        assert_eq!((back[0].offset, back[0].key), (Offset(8), Some(&b"b"[..])));
        let empty = rebuild(&b, &[]);
        let eh = parse_batches(&empty).unwrap()[0];
        assert_eq!((eh.record_count, eh.next_offset()), (0, Offset(10)));
        assert!(records(&empty, &eh).unwrap().is_empty());
    }

    #[test]
    fn compacted_topics_refuse_keyless_records() {
        let ok = keyed_batch(0, &[(Some("a"), None)], 5, None);
        let h = parse_batches(&ok).unwrap()[0];
        assert!(check_compactable(&ok, &h).is_ok());
        let keyless = keyed_batch(0, &[(Some("a"), Some("1")), (None, Some("2"))], 5, None);
        let h = parse_batches(&keyless).unwrap()[0];
        let err = check_compactable(&keyless, &h).unwrap_err().to_string();
        assert!(err.contains("without a key"), "{err}");
    }
}
