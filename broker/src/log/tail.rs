//! The leader's newest batches kept in memory, as written: followers and
//! tailing consumers read them from here instead of `pread`ing the file
//! and checking every batch's CRC again (both already done at the append,
//! on these very bytes). A read wholly inside one batch costs no copy at
//! all; several batches are joined into one buffer.
//!
//! Bounded in bytes per log (oldest batches go first; the newest is kept
//! whatever its size). It always ends at the log end, so a read it serves
//! is as long as one from the file: a follower append empties it. Anything
//! that rewrites or removes records (a truncation, a compaction pass,
//! retention) empties it or drops what it no longer holds, so it only ever
//! holds bytes equal to the log's.

use crate::position::Offset;
use bytes::Bytes;
use std::collections::VecDeque;

/// How many bytes of a log's newest leader appends stay in memory: a few
/// batches of the largest usual size (1 MiB), enough for two followers a
/// batch or two behind.
pub const TAIL_BYTES: usize = 4 << 20;

/// One batch: its offsets and its bytes as stored.
#[derive(Clone, Debug)]
struct Cached {
    base: Offset,
    next: Offset,
    bytes: Bytes,
}

/// Consecutive batches ending at the newest leader append.
#[derive(Debug, Default)]
pub struct Tail {
    batches: VecDeque<Cached>,
    bytes: usize,
}

impl Tail {
    /// Adds the batch `[base, next)`; forgets everything if it does not
    /// follow the newest batch held (a follower append came between).
    pub fn push(&mut self, base: Offset, next: Offset, bytes: Bytes) {
        if self.batches.back().is_some_and(|b| b.next != base) {
            self.clear();
        }
        self.bytes += bytes.len();
        self.batches.push_back(Cached { base, next, bytes });
        while self.bytes > TAIL_BYTES && self.batches.len() > 1 {
            if let Some(old) = self.batches.pop_front() {
                self.bytes -= old.bytes.len();
            }
        }
    }

    /// Forgets every batch.
    pub fn clear(&mut self) {
        self.batches.clear();
        self.bytes = 0;
    }

    /// Forgets the batches with any offset below `start` (retention moved
    /// the log start past them).
    pub fn drop_below(&mut self, start: Offset) {
        while let Some(front) = self.batches.front() {
            if front.base >= start {
                break;
            }
            self.bytes -= front.bytes.len();
            self.batches.pop_front();
        }
    }

    /// Forgets the batches with any offset at or above `end` (a truncation).
    pub fn drop_from(&mut self, end: Offset) {
        while let Some(back) = self.batches.back() {
            if back.next <= end {
                break;
            }
            self.bytes -= back.bytes.len();
            self.batches.pop_back();
        }
    }

    /// Whole batches from the one starting at `from`, as [`super::Log::read`]
    /// returns them: the first whatever its size, then more while the total
    /// stays within `max_bytes`, none reaching `upper`. `None` if no batch
    /// here starts at `from` (the caller reads the file); an empty read if
    /// the first batch reaches `upper`.
    pub fn read(&self, from: Offset, max_bytes: usize, upper: Offset) -> Option<(Bytes, Offset)> {
        let first = self.batches.partition_point(|b| b.base < from);
        let start = self.batches.get(first).filter(|b| b.base == from)?;
        if start.next > upper {
            return Some((Bytes::new(), from));
        }
        let mut end = first + 1;
        let mut total = start.bytes.len();
        while let Some(b) = self.batches.get(end) {
            if b.next > upper || total + b.bytes.len() > max_bytes {
                break;
            }
            total += b.bytes.len();
            end += 1;
        }
        let next = self.batches.get(end - 1).map_or(start.next, |b| b.next);
        if end == first + 1 {
            return Some((start.bytes.clone(), next));
        }
        let mut joined = Vec::with_capacity(total);
        for b in self.batches.range(first..end) {
            joined.extend_from_slice(&b.bytes);
        }
        Some((Bytes::from(joined), next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(fill: u8, len: usize) -> Bytes {
        Bytes::from(vec![fill; len])
    }

    fn tail_of(sizes: &[(u64, u64, usize)]) -> Tail {
        let mut tail = Tail::default();
        for (i, &(base, next, len)) in sizes.iter().enumerate() {
            tail.push(Offset(base), Offset(next), batch(i as u8, len));
        }
        tail
    }

    #[test]
    fn reads_whole_batches_within_the_bounds() {
        let tail = tail_of(&[(0, 10, 100), (10, 20, 100), (20, 30, 100)]);
        let (one, next) = tail.read(Offset(10), 1, Offset(30)).unwrap();
        assert_eq!(
            (one.len(), next),
            (100, Offset(20)),
            "the first batch whatever max_bytes"
        );
        let (two, next) = tail.read(Offset(0), 250, Offset(30)).unwrap();
        assert_eq!((two.len(), next), (200, Offset(20)));
        assert_eq!(&two[..100], &batch(0, 100)[..]);
        assert_eq!(&two[100..], &batch(1, 100)[..]);
        let (capped, next) = tail.read(Offset(0), 1000, Offset(25)).unwrap();
        assert_eq!(
            (capped.len(), next),
            (200, Offset(20)),
            "none reaching upper"
        );
        let (empty, next) = tail.read(Offset(20), 1000, Offset(25)).unwrap();
        assert_eq!((empty.len(), next), (0, Offset(20)));
        assert!(
            tail.read(Offset(5), 1000, Offset(30)).is_none(),
            "not a batch start here"
        );
        assert!(
            tail.read(Offset(30), 1000, Offset(40)).is_none(),
            "past the tail"
        );
    }

    #[test]
    fn keeps_only_consecutive_batches_within_its_budget() {
        let mut tail = tail_of(&[(0, 10, TAIL_BYTES / 2), (10, 20, TAIL_BYTES / 2)]);
        tail.push(Offset(20), Offset(30), batch(9, 10));
        assert!(
            tail.read(Offset(0), usize::MAX, Offset(30)).is_none(),
            "oldest dropped"
        );
        assert!(tail.read(Offset(10), usize::MAX, Offset(30)).is_some());
        tail.push(Offset(40), Offset(50), batch(9, 10));
        assert!(
            tail.read(Offset(10), usize::MAX, Offset(50)).is_none(),
            "a gap empties it"
        );
        assert!(tail.read(Offset(40), usize::MAX, Offset(50)).is_some());
        let mut big = Tail::default();
        big.push(Offset(0), Offset(1), batch(1, TAIL_BYTES * 2));
        assert!(
            big.read(Offset(0), 1, Offset(1)).is_some(),
            "the newest stays whatever its size"
        );
    }

    #[test]
    fn truncation_and_retention_drop_what_the_log_lost() {
        let mut tail = tail_of(&[(0, 10, 10), (10, 20, 10), (20, 30, 10)]);
        tail.drop_from(Offset(15));
        assert!(tail.read(Offset(10), 100, Offset(30)).is_none());
        assert_eq!(tail.read(Offset(0), 100, Offset(30)).unwrap().1, Offset(10));
        tail.drop_below(Offset(10));
        assert!(tail.read(Offset(0), 100, Offset(30)).is_none());
        assert_eq!(tail.bytes, 0);
    }
}
