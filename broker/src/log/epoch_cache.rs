//! The leader-epoch cache: for each leader epoch, the first offset written in it.
//!
//! Followers use it to answer and ask OffsetForLeaderEpoch (KIP-101): "where does
//! epoch E end in your log?" tells a follower where its log diverges from the
//! leader's, so it truncates exactly the divergent suffix and never acknowledged
//! data. Persisted beside the log as `leader-epoch-checkpoint`, in Kafka's text
//! format: a version line (`0`), an entry count, then `epoch start_offset` lines.

use crate::position::{LeaderEpoch, Offset};
use std::collections::BTreeMap;

/// The checkpoint file's name in the partition directory.
pub const CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";

/// Epoch -> start offset, with both strictly increasing together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    epochs: BTreeMap<LeaderEpoch, Offset>,
}

impl LeaderEpochCache {
    /// The newest epoch and its start offset.
    pub fn latest(&self) -> Option<(LeaderEpoch, Offset)> {
        self.epochs.last_key_value().map(|(&e, &o)| (e, o))
    }

    /// The epoch of the records at `offset`: the entry with the greatest
    /// start at or before it.
    pub fn epoch_at(&self, offset: Offset) -> Option<LeaderEpoch> {
        self.epochs
            .iter()
            .filter(|(_, &start)| start <= offset)
            .map(|(&e, _)| e)
            .next_back()
    }

    /// All entries, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = (LeaderEpoch, Offset)> + '_ {
        self.epochs.iter().map(|(&e, &o)| (e, o))
    }

    /// Records that the log's records from `start` on carry `epoch`. Returns
    /// whether the cache changed.
    ///
    /// Trailing entries the new one contradicts are dropped first: a newer epoch,
    /// or one starting at or after `start`, belongs to a suffix that is gone (or to
    /// an epoch that a KIP-279 leader recorded and never wrote in). This is Kafka's
    /// `assign`, except that an epoch already known from an earlier offset keeps
    /// its earlier start (Kafka would move it, forgetting where it began).
    pub fn assign(&mut self, epoch: LeaderEpoch, start: Offset) -> bool {
        let mut changed = false;
        while let Some((e, s)) = self.latest() {
            if e > epoch || s >= start && !(e == epoch && s == start) {
                self.epochs.remove(&e);
                changed = true;
            } else {
                break;
            }
        }
        if self.latest().is_none_or(|(e, _)| e < epoch) {
            self.epochs.insert(epoch, start);
            changed = true;
        }
        changed
    }

    /// Whether an epoch newer than `epoch` has records before `start`: appending
    /// records of `epoch` at `start` would make epochs go backwards in the log.
    pub fn has_newer_records_before(&self, epoch: LeaderEpoch, start: Offset) -> bool {
        self.epochs
            .range(epoch..)
            .any(|(&e, &s)| e > epoch && s < start)
    }

    /// Drops entries starting at or after `end` (the log was truncated to `end`).
    pub fn truncate_from_end(&mut self, end: Offset) -> bool {
        let before = self.epochs.len();
        self.epochs.retain(|_, &mut s| s < end);
        before != self.epochs.len()
    }

    /// The log now starts at `start`: entries wholly below it go, and the entry
    /// covering it is moved up to start there.
    pub fn truncate_from_start(&mut self, start: Offset) -> bool {
        let covering = self
            .epochs
            .iter()
            .rev()
            .find(|(_, &s)| s <= start)
            .map(|(&e, _)| e);
        let Some(covering) = covering else {
            return false;
        };
        let before = self.epochs.clone();
        self.epochs.retain(|&e, _| e >= covering);
        self.epochs.insert(covering, start);
        before != self.epochs
    }

    /// Kafka's `endOffsetFor`: for the requested epoch, the largest epoch `<=` it
    /// that this log knows and the offset where that epoch's records end, i.e. the
    /// start of the next newer epoch, or `log_end` for the newest. `None` (Kafka's
    /// UNDEFINED) when the requested epoch is newer than every epoch here.
    pub fn end_offset_for(
        &self,
        requested: LeaderEpoch,
        log_end: Offset,
    ) -> Option<(LeaderEpoch, Offset)> {
        let (latest, _) = self.latest()?;
        if requested == latest {
            return Some((latest, log_end));
        }
        let (_, &higher_start) = self
            .epochs
            .range(requested..)
            .find(|(&e, _)| e > requested)?;
        match self.epochs.range(..=requested).next_back() {
            Some((&floor, _)) => Some((floor, higher_start)),
            // Older than anything known: the earliest epoch's start ends it.
            None => Some((requested, higher_start)),
        }
    }

    /// The checkpoint file's contents.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!("0\n{}\n", self.epochs.len());
        for (epoch, start) in &self.epochs {
            out.push_str(&format!("{epoch} {start}\n"));
        }
        out.into_bytes()
    }

    /// Parses a checkpoint; `None` if it is damaged in any way.
    pub fn decode(bytes: &[u8]) -> Option<LeaderEpochCache> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut lines = text.lines();
        if lines.next()? != "0" {
            return None;
        }
        let count: usize = lines.next()?.parse().ok()?;
        let mut cache = LeaderEpochCache::default();
        for _ in 0..count {
            let mut fields = lines.next()?.split(' ');
            let epoch = LeaderEpoch(fields.next()?.parse().ok()?);
            let start = Offset(fields.next()?.parse().ok()?);
            if fields.next().is_some() {
                return None;
            }
            if cache.latest().is_some_and(|(e, s)| epoch <= e || start < s) {
                return None;
            }
            cache.epochs.insert(epoch, start);
        }
        if lines.next().is_some() {
            return None;
        }
        Some(cache)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(u32, u64)]) -> LeaderEpochCache {
        let mut c = LeaderEpochCache::default();
        for &(e, s) in entries {
            assert!(c.assign(LeaderEpoch(e), Offset(s)));
        }
        c
    }

    #[test]
    fn end_offset_for_follows_kafka() {
        // Epoch 1 from 0, epoch 3 from 10, epoch 5 from 25; log end 40.
        let c = cache(&[(1, 0), (3, 10), (5, 25)]);
        let end = Offset(40);
        let table = [
            (0, Some((0, 0))),  // older than all: (requested, first start)
            (1, Some((1, 10))), // ends where epoch 3 starts
            (2, Some((1, 10))), // unknown epoch between: floor epoch 1
            (3, Some((3, 25))),
            (4, Some((3, 25))),
            (5, Some((5, 40))), // latest: the log end
            (6, None),          // newer than all: undefined
        ];
        for (requested, want) in table {
            let got = c.end_offset_for(LeaderEpoch(requested), end);
            let want = want.map(|(e, o)| (LeaderEpoch(e), Offset(o)));
            assert_eq!(got, want, "requested epoch {requested}");
        }
        assert_eq!(
            LeaderEpochCache::default().end_offset_for(LeaderEpoch(0), end),
            None
        );
    }

    #[test]
    fn assign_ignores_known_epochs_and_drops_contradicted_suffix() {
        let mut c = cache(&[(1, 0), (3, 10)]);
        assert!(
            !c.assign(LeaderEpoch(3), Offset(12)),
            "known epoch, later offset"
        );
        // Epoch 4 starting at 8 means everything from 8 on was truncated.
        assert!(c.assign(LeaderEpoch(4), Offset(8)));
        assert_eq!(
            c.entries().collect::<Vec<_>>(),
            vec![(LeaderEpoch(1), Offset(0)), (LeaderEpoch(4), Offset(8))]
        );
    }

    #[test]
    fn an_empty_newer_epoch_gives_way_to_the_leaders_older_records() {
        // KIP-279: this replica recorded epoch 5 at its log end (20) and wrote
        // nothing in it; the new leader's log continues epoch 4 from there.
        let mut c = cache(&[(4, 0), (5, 20)]);
        assert!(!c.has_newer_records_before(LeaderEpoch(4), Offset(20)));
        assert!(c.assign(LeaderEpoch(4), Offset(20)));
        assert_eq!(
            c.entries().collect::<Vec<_>>(),
            vec![(LeaderEpoch(4), Offset(0))]
        );
        // Records of epoch 5 before offset 25 forbid appending epoch 4 there.
        let c = cache(&[(4, 0), (5, 20)]);
        assert!(c.has_newer_records_before(LeaderEpoch(4), Offset(25)));
    }

    #[test]
    fn truncation_from_either_end() {
        let mut c = cache(&[(1, 0), (3, 10), (5, 25)]);
        assert!(c.truncate_from_end(Offset(25)));
        assert_eq!(c.latest(), Some((LeaderEpoch(3), Offset(10))));
        assert!(c.truncate_from_start(Offset(12)));
        assert_eq!(
            c.entries().collect::<Vec<_>>(),
            vec![(LeaderEpoch(3), Offset(12))]
        );
    }

    #[test]
    fn checkpoint_round_trips_and_rejects_damage() {
        let c = cache(&[(1, 0), (3, 10)]);
        let bytes = c.encode();
        assert_eq!(std::str::from_utf8(&bytes).unwrap(), "0\n2\n1 0\n3 10\n");
        assert_eq!(LeaderEpochCache::decode(&bytes), Some(c));
        for bad in [
            "",
            "1\n0\n",
            "0\n2\n1 0\n",
            "0\n1\n1 x\n",
            "0\n2\n3 10\n1 0\n",
            "0\n1\n1 0\n9 9\n",
        ] {
            assert_eq!(LeaderEpochCache::decode(bad.as_bytes()), None, "{bad:?}");
        }
    }
}
