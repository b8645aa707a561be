//! The checks on a chaos run's history: the simulator checker's properties,
//! on what real clients saw of real processes. Pure: the run gathers the
//! [`History`] and the [`FinalLog`]; [`verify`] judges them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A record a producer had acknowledged (acks=all).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acked {
    /// Its unique value.
    pub value: String,
    /// Where the leader put it.
    pub partition: u32,
    /// At which offset.
    pub offset: u64,
    /// When the acknowledgement came, since the load started.
    pub at: Duration,
}

/// A record a group consumer read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// Its partition.
    pub partition: u32,
    /// Its offset.
    pub offset: u64,
    /// Its value.
    pub value: String,
}

/// The group's committed offset of a partition, as read at some moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitSample {
    /// When it was read, since the load started.
    pub at: Duration,
    /// The partition.
    pub partition: u32,
    /// The committed offset (the next record to read).
    pub offset: u64,
}

/// Everything the clients saw during the run.
#[derive(Debug, Default)]
pub struct History {
    /// Every value a producer sent (acknowledged or not).
    pub sent: BTreeSet<String>,
    /// The acknowledged ones.
    pub acked: Vec<Acked>,
    /// What the group's consumers read.
    pub seen: Vec<Seen>,
    /// The group's committed offsets, sampled through the run in order.
    pub commits: Vec<CommitSample>,
}

/// Each partition's records read from its start after the run, and where
/// that start was.
#[derive(Debug, Default)]
pub struct FinalLog {
    /// Partition -> (log start offset, records in offset order).
    pub partitions: BTreeMap<u32, (u64, Vec<(u64, String)>)>,
}

/// A stretch with no acknowledgement at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// The last acknowledgement before it, since the load started.
    pub from: Duration,
    /// The first one after it.
    pub to: Duration,
}

impl Window {
    /// How long it lasted.
    pub fn length(&self) -> Duration {
        self.to.saturating_sub(self.from)
    }
}

/// What the checks found. Any entry in a `Vec` but `windows` is a violation.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Acknowledged records.
    pub acknowledged: usize,
    /// Records in the final log.
    pub stored: usize,
    /// Records the group's consumers read (a record read again after a
    /// rebalance counts again).
    pub read: usize,
    /// Committed offsets sampled.
    pub commit_samples: usize,
    /// Acknowledged values missing from the final log.
    pub lost: Vec<Acked>,
    /// Acknowledged values found at another offset than acknowledged.
    pub moved: Vec<(Acked, u64)>,
    /// Values stored more than once: (value, how often).
    pub duplicated: Vec<(String, usize)>,
    /// Values stored that no producer sent.
    pub unknown: Vec<(u32, u64, String)>,
    /// Holes in a partition's offsets: (partition, expected, found).
    pub gaps: Vec<(u32, u64, u64)>,
    /// Records a consumer read that the final log holds differently or not
    /// at all (served above the high watermark, then lost).
    pub dirty_reads: Vec<(Seen, Option<String>)>,
    /// Committed offsets that went backwards: (partition, before, after).
    pub backwards_commits: Vec<(u32, u64, u64)>,
    /// Committed offsets beyond the end of the final log.
    pub commits_past_end: Vec<(u32, u64, u64)>,
    /// Stretches without any acknowledgement longer than the threshold.
    pub windows: Vec<Window>,
}

impl Verdict {
    /// Whether every property held.
    pub fn passed(&self) -> bool {
        self.lost.is_empty()
            && self.moved.is_empty()
            && self.duplicated.is_empty()
            && self.unknown.is_empty()
            && self.gaps.is_empty()
            && self.dirty_reads.is_empty()
            && self.backwards_commits.is_empty()
            && self.commits_past_end.is_empty()
    }
}

/// Checks `history` against `log`; reports acknowledgement gaps longer than
/// `window_threshold`.
pub fn verify(history: &History, log: &FinalLog, window_threshold: Duration) -> Verdict {
    let mut verdict = Verdict {
        acknowledged: history.acked.len(),
        read: history.seen.len(),
        commit_samples: history.commits.len(),
        ..Verdict::default()
    };
    // Where each value is stored, and how often.
    let mut stored: BTreeMap<&str, Vec<(u32, u64)>> = BTreeMap::new();
    let mut at: BTreeMap<(u32, u64), &str> = BTreeMap::new();
    for (&p, (start, records)) in &log.partitions {
        let mut expected = *start;
        for (offset, value) in records {
            if *offset != expected {
                verdict.gaps.push((p, expected, *offset));
            }
            expected = offset + 1;
            stored.entry(value).or_default().push((p, *offset));
            at.insert((p, *offset), value);
            if !history.sent.contains(value) {
                verdict.unknown.push((p, *offset, value.clone()));
            }
            verdict.stored += 1;
        }
    }
    for (value, places) in &stored {
        if places.len() > 1 {
            verdict.duplicated.push((value.to_string(), places.len()));
        }
    }
    for acked in &history.acked {
        match stored.get(acked.value.as_str()) {
            None => verdict.lost.push(acked.clone()),
            Some(places) => {
                if !places.contains(&(acked.partition, acked.offset)) {
                    verdict.moved.push((acked.clone(), places[0].1));
                }
            }
        }
    }
    for seen in &history.seen {
        // Below the log start now (none here: no retention) is not judged.
        let start = log.partitions.get(&seen.partition).map_or(0, |(s, _)| *s);
        if seen.offset < start {
            continue;
        }
        let now = at.get(&(seen.partition, seen.offset)).copied();
        if now != Some(seen.value.as_str()) {
            verdict
                .dirty_reads
                .push((seen.clone(), now.map(str::to_string)));
        }
    }
    let mut last: BTreeMap<u32, u64> = BTreeMap::new();
    for sample in &history.commits {
        if let Some(&before) = last.get(&sample.partition) {
            if sample.offset < before {
                verdict
                    .backwards_commits
                    .push((sample.partition, before, sample.offset));
            }
        }
        last.insert(sample.partition, sample.offset);
    }
    for (&p, &committed) in &last {
        let end = log.partitions.get(&p).map_or(0, |(start, records)| {
            records.last().map_or(*start, |r| r.0 + 1)
        });
        if committed > end {
            verdict.commits_past_end.push((p, committed, end));
        }
    }
    let mut times: Vec<Duration> = history.acked.iter().map(|a| a.at).collect();
    times.sort();
    verdict.windows = times
        .windows(2)
        .map(|w| Window {
            from: w[0],
            to: w[1],
        })
        .filter(|w| w.length() > window_threshold)
        .collect();
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn acked(value: &str, partition: u32, offset: u64, at: u64) -> Acked {
        Acked {
            value: value.into(),
            partition,
            offset,
            at: ms(at),
        }
    }

    /// Two partitions, every value acknowledged where it is stored.
    fn healthy() -> (History, FinalLog) {
        let history = History {
            sent: ["a", "b", "c", "d"].map(String::from).into(),
            acked: vec![
                acked("a", 0, 0, 10),
                acked("b", 0, 1, 20),
                acked("c", 1, 0, 30),
            ],
            seen: vec![Seen {
                partition: 0,
                offset: 1,
                value: "b".into(),
            }],
            commits: vec![
                CommitSample {
                    at: ms(5),
                    partition: 0,
                    offset: 1,
                },
                CommitSample {
                    at: ms(50),
                    partition: 0,
                    offset: 2,
                },
            ],
        };
        let log = FinalLog {
            partitions: [
                (0, (0, vec![(0, "a".into()), (1, "b".into())])),
                // "d" was sent, its send failed, and it landed: allowed.
                (1, (0, vec![(0, "c".into()), (1, "d".into())])),
            ]
            .into(),
        };
        (history, log)
    }

    #[test]
    fn a_clean_history_passes() {
        let (history, log) = healthy();
        let verdict = verify(&history, &log, ms(1000));
        assert!(verdict.passed(), "{verdict:?}");
        assert_eq!((verdict.acknowledged, verdict.stored), (3, 4));
        assert!(verdict.windows.is_empty());
    }

    #[test]
    fn each_violation_is_named() {
        let (mut history, mut log) = healthy();
        history.acked.push(acked("e", 1, 2, 2_000)); // never stored
        history.acked[1].offset = 5; // stored at 1
        history.seen.push(Seen {
            partition: 1,
            offset: 0,
            value: "x".into(), // read, then the log holds "c" there
        });
        history.commits.push(CommitSample {
            at: ms(60),
            partition: 0,
            offset: 1,
        });
        history.commits.push(CommitSample {
            at: ms(70),
            partition: 1,
            offset: 9,
        });
        let p1 = &mut log.partitions.get_mut(&1).unwrap().1;
        p1.push((3, "a".into())); // a hole at 2, "a" twice
        p1.push((4, "zz".into())); // never sent
        let verdict = verify(&history, &log, ms(1000));
        assert!(!verdict.passed());
        assert_eq!(verdict.lost, vec![acked("e", 1, 2, 2_000)]);
        assert_eq!(verdict.moved.len(), 1);
        assert_eq!(verdict.moved[0].1, 1);
        assert_eq!(verdict.duplicated, vec![("a".to_string(), 2)]);
        assert_eq!(verdict.unknown, vec![(1, 4, "zz".to_string())]);
        assert_eq!(verdict.gaps, vec![(1, 2, 3)]);
        assert_eq!(verdict.dirty_reads.len(), 1);
        assert_eq!(verdict.dirty_reads[0].1.as_deref(), Some("c"));
        assert_eq!(verdict.backwards_commits, vec![(0, 2, 1)]);
        assert_eq!(verdict.commits_past_end, vec![(1, 9, 5)]);
        assert_eq!(
            verdict.windows,
            vec![Window {
                from: ms(30),
                to: ms(2_000)
            }]
        );
    }
}
