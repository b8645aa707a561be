//! A view of Kafka's RecordBatch v2 header, and the checks every batch passes
//! before it is stored or served.
//!
//! Layout (big-endian), from Kafka's `DefaultRecordBatch`:
//!
//! ```text
//!  0 baseOffset i64       | not covered by the CRC: the leader rewrites
//!  8 batchLength i32      |   baseOffset and partitionLeaderEpoch in place
//! 12 partitionLeaderEpoch |
//! 16 magic i8 (= 2)
//! 17 crc u32 (CRC-32C of bytes 21..end)
//! 21 attributes i16, 23 lastOffsetDelta i32, 27 baseTimestamp i64,
//! 35 maxTimestamp i64, 43 producerId i64, 51 producerEpoch i16,
//! 53 baseSequence i32, 57 recordsCount i32, 61 records...
//! ```
//!
//! The records themselves (possibly compressed) are stored and served as received;
//! only this fixed header is read.

use crate::position::{LeaderEpoch, Offset};
use thiserror::Error;

/// Bytes before the records: the smallest possible batch.
pub const HEADER_LEN: usize = 61;
/// Bytes before the `batchLength` field's count starts.
pub const LOG_OVERHEAD: usize = 12;
const MAGIC_V2: i8 = 2;
pub(crate) const CRC_START: usize = 21;

/// Why a batch was rejected: the detail of a `CorruptRecord` error.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// Fewer bytes than a batch header.
    #[error("batch truncated: {have} bytes, a batch needs at least {need}")]
    Truncated {
        /// Bytes present.
        have: usize,
        /// Bytes needed.
        need: usize,
    },
    /// The magic byte is not 2 (only RecordBatch v2 is accepted).
    #[error("unsupported record format: magic {0}, only magic 2 (RecordBatch v2) is accepted")]
    Magic(i8),
    /// The length field is impossible.
    #[error("invalid batch length {0}")]
    Length(i32),
    /// The stored CRC does not match the bytes.
    #[error("CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Crc {
        /// The CRC in the header.
        stored: u32,
        /// The CRC of the bytes.
        computed: u32,
    },
    /// A header field is out of range.
    #[error("invalid batch header: {0}")]
    Field(&'static str),
}

/// The fixed header fields the log needs from one batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: Offset,
    /// Total bytes of the batch, header included.
    pub size: u32,
    /// The epoch of the leader that appended the batch.
    pub leader_epoch: LeaderEpoch,
    /// `lastOffsetDelta`: the batch covers `base_offset ..= base_offset + delta`.
    pub last_offset_delta: u32,
    /// The largest record timestamp in the batch (ms since the Unix epoch).
    pub max_timestamp: i64,
    /// The stored CRC-32C.
    pub crc: u32,
    /// `attributes`: compression codec (bits 0-2), timestamp type, and the
    /// transactional and control flags.
    pub attributes: i16,
    /// `recordsCount`: records in the batch (fewer than the offset span after
    /// compaction).
    pub record_count: u32,
    /// The idempotent producer's id; -1 for none.
    pub producer_id: i64,
    /// The producer's epoch.
    pub producer_epoch: i16,
    /// The first record's sequence number.
    pub base_sequence: i32,
}

fn be_i64(buf: &[u8], at: usize) -> i64 {
    let mut b = [0; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    i64::from_be_bytes(b)
}

fn be_i32(buf: &[u8], at: usize) -> i32 {
    let mut b = [0; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    i32::from_be_bytes(b)
}

impl BatchHeader {
    /// Parses the header at the start of `buf` (which holds at least the header; the
    /// rest of the batch need not be present). Checks the fields, not the CRC.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < HEADER_LEN {
            return Err(BatchError::Truncated {
                have: buf.len(),
                need: HEADER_LEN,
            });
        }
        let magic = buf[16] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::Magic(magic));
        }
        let length = be_i32(buf, 8);
        let size = usize::try_from(length)
            .ok()
            .and_then(|l| l.checked_add(LOG_OVERHEAD))
            .filter(|&s| s >= HEADER_LEN && s <= i32::MAX as usize)
            .ok_or(BatchError::Length(length))?;
        let base_offset =
            u64::try_from(be_i64(buf, 0)).map_err(|_| BatchError::Field("negative base offset"))?;
        let leader_epoch = u32::try_from(be_i32(buf, 12))
            .map_err(|_| BatchError::Field("negative partition leader epoch"))?;
        let last_offset_delta = u32::try_from(be_i32(buf, 23))
            .map_err(|_| BatchError::Field("negative last offset delta"))?;
        base_offset
            .checked_add(u64::from(last_offset_delta))
            .filter(|&last| last < i64::MAX as u64)
            .ok_or(BatchError::Field("last offset overflows"))?;
        let record_count = u32::try_from(be_i32(buf, 57))
            .map_err(|_| BatchError::Field("negative record count"))?;
        Ok(BatchHeader {
            base_offset: Offset(base_offset),
            size: size as u32,
            leader_epoch: LeaderEpoch(leader_epoch),
            last_offset_delta,
            max_timestamp: be_i64(buf, 35),
            crc: u32::from_be_bytes([buf[17], buf[18], buf[19], buf[20]]),
            attributes: i16::from_be_bytes([buf[21], buf[22]]),
            record_count,
            producer_id: be_i64(buf, 43),
            producer_epoch: i16::from_be_bytes([buf[51], buf[52]]),
            base_sequence: be_i32(buf, 53),
        })
    }

    /// Whether the records are compressed (attribute bits 0-2 name a codec).
    pub fn is_compressed(&self) -> bool {
        self.attributes & 0x07 != 0
    }

    /// Whether this is a control batch (a transaction marker), not data.
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }

    /// Offset of the last record in the batch.
    pub fn last_offset(&self) -> Offset {
        self.base_offset.plus(u64::from(self.last_offset_delta))
    }

    /// The offset after the batch.
    pub fn next_offset(&self) -> Offset {
        self.last_offset().plus(1)
    }

    /// For a batch that seems to run past the end of its file: the smallest
    /// size, within `bytes` (the batch as far as the file goes), whose body
    /// passes the header's CRC. `Some` means the length field was damaged and
    /// the batch is whole; `None` that it was really cut short (a torn write).
    /// A chance match (about one in 2^32 per byte tried) only errs towards
    /// calling a torn write damaged.
    pub fn crc_passes_within(&self, bytes: &[u8]) -> Option<usize> {
        let mut crc = crc32c::crc32c(bytes.get(CRC_START..HEADER_LEN)?);
        if crc == self.crc {
            return Some(HEADER_LEN);
        }
        for (i, byte) in bytes.iter().enumerate().skip(HEADER_LEN) {
            crc = crc32c::crc32c_append(crc, std::slice::from_ref(byte));
            if crc == self.crc {
                return Some(i + 1);
            }
        }
        None
    }

    /// Checks the CRC of the whole batch in `batch` (exactly `self.size` bytes).
    pub fn verify_crc(&self, batch: &[u8]) -> Result<(), BatchError> {
        let body = batch
            .get(CRC_START..self.size as usize)
            .ok_or(BatchError::Truncated {
                have: batch.len(),
                need: self.size as usize,
            })?;
        let computed = crc32c::crc32c(body);
        if computed != self.crc {
            return Err(BatchError::Crc {
                stored: self.crc,
                computed,
            });
        }
        Ok(())
    }
}

/// Rewrites a batch's base offset in place (outside the CRC).
pub fn set_base_offset(batch: &mut [u8], offset: Offset) {
    batch[0..8].copy_from_slice(&(offset.0 as i64).to_be_bytes());
}

/// Rewrites a batch's partition leader epoch in place (outside the CRC).
pub fn set_leader_epoch(batch: &mut [u8], epoch: LeaderEpoch) {
    batch[12..16].copy_from_slice(&(epoch.0 as i32).to_be_bytes());
}

/// Splits a buffer of concatenated batches, checking each one whole (header,
/// length, CRC). Either every batch is valid or nothing is returned.
pub fn parse_batches(records: &[u8]) -> Result<Vec<BatchHeader>, BatchError> {
    let mut headers = Vec::new();
    let mut pos = 0;
    while pos < records.len() {
        let rest = &records[pos..];
        let header = BatchHeader::parse(rest)?;
        let size = header.size as usize;
        if rest.len() < size {
            return Err(BatchError::Truncated {
                have: rest.len(),
                need: size,
            });
        }
        header.verify_crc(&rest[..size])?;
        headers.push(header);
        pos += size;
    }
    if headers.is_empty() {
        return Err(BatchError::Truncated {
            have: 0,
            need: HEADER_LEN,
        });
    }
    Ok(headers)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A valid batch of `count` keyless records of `value_len` bytes each,
    /// built by hand for unit tests (the integration tests use
    /// kafka-protocol's encoder).
    pub(crate) fn batch(base: u64, count: u32, value_len: usize, timestamp: i64) -> Vec<u8> {
        let value = "v".repeat(value_len);
        let records = vec![(None, Some(value.as_str())); count as usize];
        crate::log::compaction::tests::keyed_batch(base, &records, timestamp, None)
    }

    #[test]
    fn parses_a_valid_batch() {
        let b = batch(5, 3, 10, 1_000);
        let headers = parse_batches(&b).unwrap();
        assert_eq!(headers.len(), 1);
        let h = headers[0];
        assert_eq!(h.base_offset, Offset(5));
        assert_eq!(h.last_offset(), Offset(7));
        assert_eq!(h.size as usize, b.len());
        assert_eq!(h.max_timestamp, 1_000);
    }

    #[test]
    fn rewriting_offset_and_epoch_keeps_the_crc_valid() {
        let mut b = batch(0, 2, 4, 0);
        set_base_offset(&mut b, Offset(42));
        set_leader_epoch(&mut b, LeaderEpoch(7));
        let h = parse_batches(&b).unwrap()[0];
        assert_eq!(
            (h.base_offset, h.leader_epoch),
            (Offset(42), LeaderEpoch(7))
        );
    }

    #[test]
    fn rejects_damage_anywhere_in_the_crc_range() {
        let good = batch(0, 2, 8, 0);
        for pos in CRC_START..good.len() {
            let mut bad = good.clone();
            bad[pos] ^= 0x01;
            assert!(parse_batches(&bad).is_err(), "flip at {pos} accepted");
        }
    }

    #[test]
    fn rejects_bad_framing() {
        let good = batch(0, 1, 8, 0);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("short", good[..30].to_vec()),
            ("cut body", good[..good.len() - 1].to_vec()),
            ("magic", {
                let mut b = good.clone();
                b[16] = 1;
                b
            }),
            ("length", {
                let mut b = good.clone();
                b[8..12].copy_from_slice(&(-5i32).to_be_bytes());
                b
            }),
            ("negative base", {
                let mut b = good.clone();
                b[0] = 0x80;
                b
            }),
            ("trailing garbage", {
                let mut b = good.clone();
                b.extend([0u8; 10]);
                b
            }),
        ];
        for (name, bytes) in cases {
            assert!(parse_batches(&bytes).is_err(), "{name} accepted");
        }
    }
}
