//! The leader's newest batches kept in memory, as written: followers and
//! tailing consumers read them from here instead of `pread`ing the file
//! and checking every batch's CRC again (both already done at the append,
//! on these very bytes). A read returns the batches in the buffers they
//! were appended in, without a copy (runs of small batches are joined).
//!
//! Bounded in bytes per log (oldest batches go first; the newest is kept
//! whatever its size): [`TAIL_BYTES`] each, and up to [`TAIL_BYTES_MAX`]
//! while the broker's [`TailBudget`] for the bytes beyond [`TAIL_BYTES`]
//! lasts. A follower further behind than the tail reads the segment file,
//! which direct writes leave out of the page cache, with every CRC checked
//! again; under acks=1 followers fall that far behind. It always ends at the
//! log end, so a read it serves is as long as one from the file: a follower
//! append empties it. Anything that rewrites or removes records (a
//! truncation, a compaction pass, retention) empties it or drops what it no
//! longer holds, so it only ever holds bytes equal to the log's.

use super::Chunks;
use crate::position::Offset;
use bytes::Bytes;
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// How many bytes of a log's newest leader appends stay in memory whatever
/// the budget: a few batches of the largest usual size (1 MiB), enough for
/// two followers a batch or two behind.
pub const TAIL_BYTES: usize = 4 << 20;

/// A batch at least this large is read as its own buffer; smaller ones in
/// a row are joined (a copy costs less than a buffer each to send).
pub const CHUNK_MIN: usize = 16 << 10;

/// The most one log's tail holds with a [`TailBudget`]: followers of a
/// leader taking a few hundred MB/s stay within it.
pub const TAIL_BYTES_MAX: usize = 32 << 20;

/// A broker's bytes for its logs' tails beyond [`TAIL_BYTES`] each, shared
/// by every log that holds a handle (all of a broker's, through
/// [`LogConfig::leader_tail`](super::LogConfig::leader_tail)). A tail grows
/// past [`TAIL_BYTES`] only while the budget is not spent, so a broker's
/// tails hold at most [`TAIL_BYTES`] per log plus the budget (and, in
/// each log, its newest batch whatever its size).
pub struct TailBudget {
    bytes: usize,
    used: AtomicUsize,
}

impl TailBudget {
    /// A budget of `bytes` beyond [`TAIL_BYTES`] per log.
    pub fn new(bytes: u64) -> TailBudget {
        TailBudget {
            bytes: usize::try_from(bytes).unwrap_or(usize::MAX),
            used: AtomicUsize::new(0),
        }
    }

    /// The bytes beyond [`TAIL_BYTES`] the broker's tails hold now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn spent(&self) -> bool {
        self.used() > self.bytes
    }
}

/// Budgets compare by size: a log whose settings are otherwise the same is
/// not reopened for a new handle.
impl PartialEq for TailBudget {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for TailBudget {}

impl fmt::Debug for TailBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TailBudget")
            .field("bytes", &self.bytes)
            .field("used", &self.used())
            .finish()
    }
}

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
    budget: Option<Arc<TailBudget>>,
}

impl Tail {
    /// An empty tail growing past [`TAIL_BYTES`] on `budget`, if any.
    pub fn new(budget: Option<Arc<TailBudget>>) -> Tail {
        Tail {
            batches: VecDeque::new(),
            bytes: 0,
            budget,
        }
    }

    /// Adds the batch `[base, next)`; forgets everything if it does not
    /// follow the newest batch held (a follower append came between).
    pub fn push(&mut self, base: Offset, next: Offset, bytes: Bytes) {
        if self.batches.back().is_some_and(|b| b.next != base) {
            self.clear();
        }
        self.set_bytes(self.bytes + bytes.len());
        self.batches.push_back(Cached { base, next, bytes });
        while self.batches.len() > 1 && self.over_limit() {
            if let Some(old) = self.batches.pop_front() {
                self.set_bytes(self.bytes - old.bytes.len());
            }
        }
    }

    /// Whether the oldest batch must go.
    fn over_limit(&self) -> bool {
        match &self.budget {
            None => self.bytes > TAIL_BYTES,
            Some(budget) => {
                self.bytes > TAIL_BYTES_MAX || (self.bytes > TAIL_BYTES && budget.spent())
            }
        }
    }

    /// Sets the bytes held, counting those beyond [`TAIL_BYTES`] against
    /// the budget.
    fn set_bytes(&mut self, bytes: usize) {
        if let Some(budget) = &self.budget {
            let before = self.bytes.saturating_sub(TAIL_BYTES);
            let after = bytes.saturating_sub(TAIL_BYTES);
            if after > before {
                budget.used.fetch_add(after - before, Ordering::Relaxed);
            } else {
                budget.used.fetch_sub(before - after, Ordering::Relaxed);
            }
        }
        self.bytes = bytes;
    }

    /// Forgets every batch.
    pub fn clear(&mut self) {
        self.batches.clear();
        self.set_bytes(0);
    }

    /// Forgets the batches with any offset below `start` (retention moved
    /// the log start past them).
    pub fn drop_below(&mut self, start: Offset) {
        while let Some(front) = self.batches.front() {
            if front.base >= start {
                break;
            }
            let len = front.bytes.len();
            self.batches.pop_front();
            self.set_bytes(self.bytes - len);
        }
    }

    /// Forgets the batches with any offset at or above `end` (a truncation).
    pub fn drop_from(&mut self, end: Offset) {
        while let Some(back) = self.batches.back() {
            if back.next <= end {
                break;
            }
            let len = back.bytes.len();
            self.batches.pop_back();
            self.set_bytes(self.bytes - len);
        }
    }

    /// Whole batches from the one starting at `from`, as [`super::Log::read`]
    /// returns them: the first whatever its size, then more while the total
    /// stays within `max_bytes`, none reaching `upper`. `None` if no batch
    /// here starts at `from` (the caller reads the file); an empty read if
    /// the first batch reaches `upper`. Batches of [`CHUNK_MIN`] or more
    /// stay in their own buffers (no copy); runs of smaller ones are joined
    /// into one, so a read of many small batches is not as many buffers.
    pub fn read(&self, from: Offset, max_bytes: usize, upper: Offset) -> Option<(Chunks, Offset)> {
        let first = self.batches.partition_point(|b| b.base < from);
        let start = self.batches.get(first).filter(|b| b.base == from)?;
        if start.next > upper {
            return Some((Chunks::default(), from));
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
            return Some((Chunks::from(start.bytes.clone()), next));
        }
        let mut chunks = Vec::new();
        // Small batches in a row, joined when a large one or the end comes.
        let mut run: Vec<Bytes> = Vec::new();
        for b in self.batches.range(first..end) {
            if b.bytes.len() < CHUNK_MIN {
                run.push(b.bytes.clone());
                continue;
            }
            if !run.is_empty() {
                chunks.push(Chunks::from(std::mem::take(&mut run)).into_bytes());
            }
            chunks.push(b.bytes.clone());
        }
        if !run.is_empty() {
            chunks.push(Chunks::from(run).into_bytes());
        }
        Some((Chunks::from(chunks), next))
    }
}

/// A dropped log gives its share of the budget back.
impl Drop for Tail {
    fn drop(&mut self) {
        self.clear();
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
        let two = two.into_bytes();
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
    fn large_batches_are_read_as_their_own_buffers_and_runs_of_small_ones_joined() {
        let big = CHUNK_MIN;
        let tail = tail_of(&[
            (0, 1, 10),
            (1, 2, 20),
            (2, 3, big),
            (3, 4, 30),
            (4, 5, big + 1),
            (5, 6, big),
            (6, 7, 40),
            (7, 8, 50),
        ]);
        let stored: Vec<Bytes> = tail.batches.iter().map(|b| b.bytes.clone()).collect();
        let (read, next) = tail.read(Offset(0), usize::MAX, Offset(8)).unwrap();
        assert_eq!(next, Offset(8));
        let chunks = read.into_vec();
        let lens: Vec<usize> = chunks.iter().map(Bytes::len).collect();
        assert_eq!(lens, vec![30, big, 30, big + 1, big, 90]);
        // The large batches are the very buffers appended: no copy.
        for (chunk, batch) in [(1, 2), (3, 4), (4, 5)] {
            assert_eq!(chunks[chunk].as_ptr(), stored[batch].as_ptr());
        }
        let joined: Vec<u8> = chunks.concat();
        assert_eq!(joined, stored.concat(), "the bytes in log order");
        let (single, _) = tail.read(Offset(3), 30, Offset(8)).unwrap();
        assert_eq!(
            single.into_vec()[0].as_ptr(),
            stored[3].as_ptr(),
            "one small batch: no copy"
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

    const MIB: usize = 1 << 20;

    /// Batches of 1 MiB from `from` on, `count` of them.
    fn push_mib(tail: &mut Tail, from: u64, count: u64) {
        for i in from..from + count {
            tail.push(Offset(i), Offset(i + 1), batch(0, MIB));
        }
    }

    #[test]
    fn tails_grow_past_their_share_only_on_the_broker_budget() {
        let budget = Arc::new(TailBudget::new(8 * MIB as u64));
        let mut first = Tail::new(Some(budget.clone()));
        let mut second = Tail::new(Some(budget.clone()));
        push_mib(&mut first, 0, 20);
        assert_eq!(first.bytes, TAIL_BYTES + 8 * MIB, "4 MiB, and the budget");
        assert_eq!(budget.used(), 8 * MIB);
        push_mib(&mut second, 0, 20);
        assert_eq!(second.bytes, TAIL_BYTES, "the budget is spent");
        assert!(second.read(Offset(16), MIB, Offset(20)).is_some());
        assert!(second.read(Offset(15), MIB, Offset(20)).is_none());
        drop(first);
        assert_eq!(budget.used(), 0, "a dropped tail gives its bytes back");
        push_mib(&mut second, 20, 20);
        assert_eq!(second.bytes, TAIL_BYTES + 8 * MIB);

        // Whatever the budget, one tail holds at most TAIL_BYTES_MAX.
        let plenty = Arc::new(TailBudget::new(1 << 40));
        let mut big = Tail::new(Some(plenty.clone()));
        push_mib(&mut big, 0, 40);
        assert_eq!(big.bytes, TAIL_BYTES_MAX);
        assert_eq!(plenty.used(), TAIL_BYTES_MAX - TAIL_BYTES);
    }

    #[test]
    fn every_way_of_forgetting_gives_the_budget_back() {
        let budget = Arc::new(TailBudget::new(64 * MIB as u64));
        let mut tail = Tail::new(Some(budget.clone()));
        push_mib(&mut tail, 0, 10);
        assert_eq!(budget.used(), 6 * MIB);
        tail.drop_from(Offset(8));
        assert_eq!(budget.used(), 4 * MIB);
        tail.drop_below(Offset(3));
        assert_eq!((tail.bytes, budget.used()), (5 * MIB, MIB));
        tail.push(Offset(20), Offset(21), batch(0, MIB));
        assert_eq!(budget.used(), 0, "a gap empties it");
        push_mib(&mut tail, 21, 9);
        tail.clear();
        assert_eq!((tail.bytes, budget.used()), (0, 0));
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
