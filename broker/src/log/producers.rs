//! Idempotent producers' state in one partition log: per producer id, its
//! epoch and its last few batches' sequence ranges, so a retried batch is
//! answered with its first append's offsets instead of being stored twice, and
//! a gap in the sequence is refused (Kafka's producer state, KIP-98).
//!
//! Kept on every append, leader's and follower's alike, so a new leader has it
//! at once; rebuilt from the last segments' batch headers when the log opens,
//! and cut back in memory when the log is truncated (rebuilt only if that
//! leaves a producer with no batch). A producer whose state is older than that is treated as
//! new (its next batch is taken as it comes), as Kafka does after retention.

use super::BatchHeader;
use crate::error::LogError;
use crate::position::Offset;
use std::collections::{BTreeMap, VecDeque};

/// Batches remembered per producer (Kafka's `max.in.flight.requests` bound).
pub const BATCHES_KEPT: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BatchMeta {
    first_seq: i32,
    last_seq: i32,
    first_offset: Offset,
    last_offset: Offset,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
}

/// What to do with a producer's batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Append,
    /// Already in the log at these offsets: answer with them.
    Duplicate {
        /// Its first record's offset.
        first_offset: Offset,
        /// Its last record's offset.
        last_offset: Offset,
    },
}

/// Every producer's state in one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerStates {
    producers: BTreeMap<i64, ProducerEntry>,
}

/// The sequence of a batch's last record (sequences wrap to 0 after i32::MAX).
fn last_sequence(h: &BatchHeader) -> i32 {
    let last = i64::from(h.base_sequence) + i64::from(h.last_offset_delta);
    if last > i64::from(i32::MAX) {
        (last - i64::from(i32::MAX) - 1) as i32
    } else {
        last as i32
    }
}

fn next_sequence(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl ProducerStates {
    /// Whether a leader may append `h`, is looking at a retry, or must refuse.
    pub fn check(&self, h: &BatchHeader) -> Result<SequenceCheck, LogError> {
        if h.producer_id < 0 {
            return Ok(SequenceCheck::Append);
        }
        let Some(entry) = self.producers.get(&h.producer_id) else {
            return Ok(SequenceCheck::Append);
        };
        if h.producer_epoch < entry.epoch {
            return Err(LogError::InvalidProducerEpoch {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                current: entry.epoch,
            });
        }
        if h.producer_epoch > entry.epoch {
            return match h.base_sequence {
                0 => Ok(SequenceCheck::Append),
                got => Err(LogError::OutOfOrderSequence {
                    producer_id: h.producer_id,
                    expected: 0,
                    got,
                }),
            };
        }
        let last = last_sequence(h);
        if let Some(b) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == last)
        {
            return Ok(SequenceCheck::Duplicate {
                first_offset: b.first_offset,
                last_offset: b.last_offset,
            });
        }
        let expected = entry
            .batches
            .back()
            .map_or(h.base_sequence, |b| next_sequence(b.last_seq));
        if h.base_sequence != expected {
            return Err(LogError::OutOfOrderSequence {
                producer_id: h.producer_id,
                expected,
                got: h.base_sequence,
            });
        }
        Ok(SequenceCheck::Append)
    }

    /// Notes an appended batch (with its final offsets).
    pub fn record(&mut self, h: &BatchHeader) {
        if h.producer_id < 0 {
            return;
        }
        let entry = self
            .producers
            .entry(h.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: h.producer_epoch,
                batches: VecDeque::new(),
            });
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        entry.batches.push_back(BatchMeta {
            first_seq: h.base_sequence,
            last_seq: last_sequence(h),
            first_offset: h.base_offset,
            last_offset: h.last_offset(),
        });
        while entry.batches.len() > BATCHES_KEPT {
            entry.batches.pop_front();
        }
    }

    /// Forgets the batches at or after `end` (a tail the log cut off).
    /// `false` if that leaves a producer with none: what it wrote before
    /// those is not kept here (an older batch, or an older epoch), so the
    /// caller rebuilds from the log instead. A producer that keeps some
    /// batches keeps every one a retry can name: it has at most
    /// [`BATCHES_KEPT`] in flight, and the ones cut off were among them.
    pub fn truncate_to(&mut self, end: Offset) -> bool {
        let mut whole = true;
        for entry in self.producers.values_mut() {
            while entry.batches.back().is_some_and(|b| b.last_offset >= end) {
                entry.batches.pop_back();
            }
            whole &= !entry.batches.is_empty();
        }
        whole
    }

    /// Forgets everything (before a rebuild).
    pub fn clear(&mut self) {
        self.producers.clear();
    }

    /// Producers known.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether none is known.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::position::LeaderEpoch;

    fn header(pid: i64, epoch: i16, seq: i32, count: u32, base: u64) -> BatchHeader {
        BatchHeader {
            attributes: 0,
            base_offset: Offset(base),
            size: 100,
            leader_epoch: LeaderEpoch(0),
            last_offset_delta: count - 1,
            max_timestamp: 0,
            crc: 0,
            record_count: count,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
        }
    }

    #[test]
    fn retries_are_duplicates_and_gaps_are_refused() {
        let mut s = ProducerStates::default();
        let first = header(7, 0, 0, 3, 10);
        assert_eq!(s.check(&first).ok(), Some(SequenceCheck::Append));
        s.record(&first);
        // The same batch again (a retry after a lost answer).
        assert_eq!(
            s.check(&header(7, 0, 0, 3, 99)).ok(),
            Some(SequenceCheck::Duplicate {
                first_offset: Offset(10),
                last_offset: Offset(12)
            })
        );
        // The next one in order.
        assert_eq!(
            s.check(&header(7, 0, 3, 2, 13)).ok(),
            Some(SequenceCheck::Append)
        );
        // A gap: sequence 5 before 3.
        assert!(matches!(
            s.check(&header(7, 0, 5, 1, 13)),
            Err(LogError::OutOfOrderSequence {
                expected: 3,
                got: 5,
                ..
            })
        ));
        // An old epoch is fenced; a new epoch starts at 0.
        s.record(&header(7, 1, 0, 1, 20));
        assert!(matches!(
            s.check(&header(7, 0, 3, 1, 21)),
            Err(LogError::InvalidProducerEpoch { current: 1, .. })
        ));
        assert!(s.check(&header(7, 2, 4, 1, 21)).is_err());
        assert_eq!(
            s.check(&header(7, 2, 0, 1, 21)).ok(),
            Some(SequenceCheck::Append)
        );
        // Non-idempotent batches and unknown producers are taken as they come.
        assert_eq!(
            s.check(&header(-1, -1, -1, 4, 0)).ok(),
            Some(SequenceCheck::Append)
        );
        assert_eq!(
            s.check(&header(8, 0, 42, 1, 0)).ok(),
            Some(SequenceCheck::Append)
        );
    }

    #[test]
    fn truncation_forgets_the_tail_and_asks_for_a_rebuild_when_a_producer_empties() {
        let mut s = ProducerStates::default();
        s.record(&header(7, 0, 0, 3, 10)); // 10-12
        s.record(&header(8, 0, 0, 2, 13)); // 13-14
        s.record(&header(7, 0, 3, 2, 15)); // 15-16
        s.record(&header(8, 0, 2, 1, 17)); // 17
        let mut emptied = s.clone();
        assert!(
            !emptied.truncate_to(Offset(13)),
            "producer 8 has nothing left"
        );
        // A cut inside 15-16 drops that batch whole, and 17.
        assert!(s.truncate_to(Offset(16)), "each producer keeps a batch");
        let dup = |first: u64, last: u64| {
            Some(SequenceCheck::Duplicate {
                first_offset: Offset(first),
                last_offset: Offset(last),
            })
        };
        assert_eq!(s.check(&header(7, 0, 0, 3, 99)).ok(), dup(10, 12));
        assert_eq!(s.check(&header(8, 0, 0, 2, 99)).ok(), dup(13, 14));
        // The batches cut off append again when retried.
        assert_eq!(
            s.check(&header(7, 0, 3, 2, 99)).ok(),
            Some(SequenceCheck::Append)
        );
        assert_eq!(
            s.check(&header(8, 0, 2, 1, 99)).ok(),
            Some(SequenceCheck::Append)
        );
    }

    #[test]
    fn only_the_last_batches_are_remembered_and_sequences_wrap() {
        let mut s = ProducerStates::default();
        for i in 0..10 {
            s.record(&header(1, 0, i, 1, i as u64));
        }
        assert!(matches!(
            s.check(&header(1, 0, 9, 1, 0)),
            Ok(SequenceCheck::Duplicate { .. })
        ));
        // Batch 2 is no longer remembered: it is out of order now.
        assert!(s.check(&header(1, 0, 2, 1, 0)).is_err());
        let mut w = ProducerStates::default();
        w.record(&header(2, 0, i32::MAX - 1, 2, 0));
        assert_eq!(
            w.check(&header(2, 0, 0, 1, 2)).ok(),
            Some(SequenceCheck::Append)
        );
    }
}
