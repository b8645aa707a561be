//! Invariants checked after every simulation step, on every running node's
//! replicas (after Kafka's replication TLA+ specification, KIP-966 edition):
//!
//! - Monotonic epochs: a node (one process) never sees a partition's leader
//!   epoch go back.
//! - One leader per epoch: no two nodes lead a partition in the same epoch.
//! - Leader completeness: a leader's log ends at or past the highest high
//!   watermark any replica of the partition has ever had (the committed
//!   records are all on it).
//! - A replica's high watermark never passes its own log end, and a leader's
//!   high watermark never goes back while it leads.
//! - Log matching below the high watermark ([`Invariants::check_logs`], every
//!   simulated second: it reads the disks): any two replicas hold the same
//!   batches (offsets, epoch, CRC) below the lower of their high watermarks.
//!   Replicas of a compacted topic compact on their own, so there the check
//!   is per record: an offset both still hold carries the same record (bytes
//!   and leader epoch) on both.

use crate::cluster::{Probes, LOG_DIR};
use raftline_broker::log::{records, BatchHeader, COMPACTED_MARK};
use raftline_broker::replica::{Partition, Progress};
use raftline_broker::storage::{MemStorage, Storage};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

type Tp = (String, u32);

/// The state the checks carry from step to step.
#[derive(Default)]
pub struct Invariants {
    /// (node, its start, partition) -> the highest leader epoch seen there.
    epochs: BTreeMap<(usize, u64, Tp), u32>,
    /// (partition, epoch) -> the node that led it.
    leaders: BTreeMap<(Tp, u32), usize>,
    /// partition -> the highest high watermark ever seen on any replica.
    committed: BTreeMap<Tp, u64>,
    /// partition -> the newest leader epoch any node has seen.
    newest: BTreeMap<Tp, u32>,
    /// (node, its start, partition, generation) -> the leader's last high
    /// watermark.
    leader_hw: BTreeMap<(usize, u64, Tp, u64), u64>,
    /// Everything found, first occurrence of each kind of breach per partition.
    violations: Vec<String>,
    reported: BTreeSet<(String, Tp)>,
    /// (node, its start) -> its replicas in the order the node lists them,
    /// with the progress each had when last checked.
    seen: BTreeMap<(usize, u64), Vec<Seen>>,
}

/// A replica as the last step found it.
struct Seen {
    partition: Arc<Partition>,
    tp: Tp,
    progress: Option<Progress>,
}

impl Invariants {
    /// Nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn breach(&mut self, kind: &str, tp: &Tp, at_ms: u64, detail: String) {
        if self.reported.insert((kind.to_string(), tp.clone())) {
            self.violations
                .push(format!("{at_ms} ms: {kind} on {}/{}: {detail}", tp.0, tp.1));
        }
    }

    /// Checks every running node now.
    ///
    /// Runs after every simulated millisecond, so it only judges replicas
    /// whose [`Progress`] changed since the last step: one that did not
    /// would find again what it found last time (the same epoch, high
    /// watermark, log end and leader claim). Leader completeness also
    /// depends on the other replicas, so every leader of a partition with a
    /// changed replica is judged on it again.
    pub fn check(&mut self, probes: &Probes, at_ms: u64) {
        let running = probes.running_replicas();
        self.seen.retain(|k, _| {
            running
                .iter()
                .any(|&(node, started_ms, _)| *k == (node, started_ms))
        });
        let mut changed = Vec::new();
        for (node, started_ms, replicas) in running {
            let partitions = replicas.partitions();
            let seen = self.seen.entry((node, started_ms)).or_default();
            let same_replicas = seen.len() == partitions.len()
                && seen
                    .iter()
                    .zip(&partitions)
                    .all(|(s, p)| Arc::ptr_eq(&s.partition, p));
            if !same_replicas {
                *seen = partitions
                    .into_iter()
                    .map(|partition| {
                        let tp = partition.topic_partition();
                        Seen {
                            tp: (tp.topic.clone(), tp.partition),
                            partition,
                            progress: None,
                        }
                    })
                    .collect();
            }
            for replica in seen.iter_mut() {
                let progress = replica.partition.progress();
                if replica.progress != Some(progress) {
                    replica.progress = Some(progress);
                    changed.push((node, started_ms, replica.tp.clone(), progress));
                }
            }
        }
        let moved: BTreeSet<&Tp> = changed.iter().map(|(_, _, tp, _)| tp).collect();
        let mut leaders = Vec::new();
        for (&(node, _), replicas) in &self.seen {
            for replica in replicas.iter().filter(|r| moved.contains(&r.tp)) {
                if let Some(progress) = replica.progress.filter(|p| p.leader) {
                    leaders.push((node, replica.tp.clone(), progress));
                }
            }
        }
        self.judge(changed, leaders, at_ms);
    }

    /// The checks themselves, on what [`Invariants::check`] gathered: the
    /// `changed` replicas as (node, its start, partition, progress), then
    /// leader completeness for `leaders`, (node, partition, progress): every
    /// leader of a partition in `changed`, changed or not.
    fn judge(
        &mut self,
        changed: Vec<(usize, u64, Tp, Progress)>,
        leaders: Vec<(usize, Tp, Progress)>,
        at_ms: u64,
    ) {
        for (_, _, tp, progress) in &changed {
            let newest = self.newest.entry(tp.clone()).or_insert(0);
            *newest = (*newest).max(progress.leader_epoch.0);
        }
        for (node, started_ms, tp, progress) in changed {
            let epoch = progress.leader_epoch.0;
            let (hw, end) = (progress.high_watermark.0, progress.log_end.0);

            let seen = self
                .epochs
                .entry((node, started_ms, tp.clone()))
                .or_insert(epoch);
            if epoch < *seen {
                let was = *seen;
                self.breach(
                    "epoch went back",
                    &tp,
                    at_ms,
                    format!("node {node} at epoch {epoch} after {was}"),
                );
            } else {
                *seen = epoch;
            }

            if hw > end {
                self.breach(
                    "high watermark past the log end",
                    &tp,
                    at_ms,
                    format!("node {node}: high watermark {hw}, log end {end}"),
                );
            }

            if progress.leader {
                let other = *self.leaders.entry((tp.clone(), epoch)).or_insert(node);
                if other != node {
                    self.breach(
                        "two leaders in one epoch",
                        &tp,
                        at_ms,
                        format!("nodes {other} and {node} both lead epoch {epoch}"),
                    );
                }
                let key = (node, started_ms, tp.clone(), progress.generation);
                let last = self.leader_hw.entry(key).or_insert(hw);
                if hw < *last {
                    let was = *last;
                    self.breach(
                        "leader high watermark went back",
                        &tp,
                        at_ms,
                        format!("node {node} epoch {epoch}: {hw} after {was}"),
                    );
                } else {
                    *last = hw;
                }
            }
            let committed = self.committed.entry(tp).or_insert(0);
            *committed = (*committed).max(hw);
        }
        // Once every change is counted: what is committed may have risen.
        for (node, tp, progress) in leaders {
            self.check_completeness(node, &tp, &progress, at_ms);
        }
    }

    /// Leader completeness: a leader of the newest epoch seen holds every
    /// record any replica has counted as committed.
    fn check_completeness(&mut self, node: usize, tp: &Tp, progress: &Progress, at_ms: u64) {
        let (epoch, end) = (progress.leader_epoch.0, progress.log_end.0);
        let committed = self.committed.get(tp).copied().unwrap_or(0);
        let current = self.newest.get(tp).is_none_or(|&e| e <= epoch);
        if current && end < committed {
            self.breach(
                "leader completeness",
                tp,
                at_ms,
                format!(
                    "node {node} leads epoch {epoch} with log end {end} below the committed {committed}"
                ),
            );
        }
    }

    /// Log matching: on every running node, the batches of each hosted
    /// partition below its high watermark, read from its disk (`disks[i - 1]`
    /// is node `i`'s); any two replicas must agree below the lower of their
    /// high watermarks.
    pub fn check_logs(&mut self, probes: &Probes, disks: &[MemStorage], at_ms: u64) {
        // partition -> node -> (high watermark, base offset -> (last, epoch, crc))
        let mut logs: BTreeMap<Tp, BTreeMap<usize, (u64, Batches)>> = BTreeMap::new();
        let mut compacted: BTreeSet<Tp> = Default::default();
        for (node, probe) in probes.running() {
            let Some(disk) = disks.get(node - 1) else {
                continue;
            };
            for partition in probe.replicas.partitions() {
                let tp = partition.topic_partition();
                let hw = partition.progress().high_watermark.0;
                let dir = Path::new(LOG_DIR).join(tp.dir_name());
                let per_record = disk.exists(&dir.join(COMPACTED_MARK));
                if per_record {
                    compacted.insert((tp.topic.clone(), tp.partition));
                }
                let batches = committed_batches(disk, &dir, hw, per_record);
                logs.entry((tp.topic.clone(), tp.partition))
                    .or_default()
                    .insert(node, (hw, batches));
            }
        }
        for (tp, replicas) in logs {
            let mut found = None;
            let nodes: Vec<&usize> = replicas.keys().collect();
            'pairs: for (k, a) in nodes.iter().enumerate() {
                for b in &nodes[k + 1..] {
                    let per_record = compacted.contains(&tp);
                    if let Some(detail) = disagreement(&replicas[*a], &replicas[*b], per_record) {
                        found = Some(format!("nodes {a} and {b} {detail}"));
                        break 'pairs;
                    }
                }
            }
            if let Some(detail) = found {
                self.breach("log matching below the high watermark", &tp, at_ms, detail);
            }
        }
    }

    /// What was found.
    pub fn violations(&self) -> &[String] {
        &self.violations
    }
}

/// Offset -> (last offset, leader epoch, checksum): of each batch, or of
/// each record for a compacted log.
type Batches = BTreeMap<u64, (u64, u32, u32)>;

/// Where two replicas `(high watermark, batches)` disagree below the lower
/// of their high watermarks, from where both logs start: any difference in
/// batches, or, `per_record` (compacted logs), a different record at an
/// offset both hold.
fn disagreement(
    (hw_a, log_a): &(u64, Batches),
    (hw_b, log_b): &(u64, Batches),
    per_record: bool,
) -> Option<String> {
    let below = (*hw_a).min(*hw_b);
    let start = |log: &Batches| log.keys().next().copied().unwrap_or(0);
    let from = start(log_a).max(start(log_b));
    let part = |log: &Batches, other: &Batches| -> Vec<(u64, (u64, u32, u32))> {
        log.range(from..)
            .filter(|(_, (last, _, _))| *last < below)
            .filter(|(b, _)| !per_record || other.contains_key(b))
            .map(|(b, v)| (*b, *v))
            .collect()
    };
    let (a, b) = (part(log_a, log_b), part(log_b, log_a));
    (a != b).then(|| {
        let first = a.iter().zip(&b).find(|(x, y)| x != y);
        format!(
            "hold different batches below {below} (from {from}); first difference {first:?}, counts {} and {}",
            a.len(),
            b.len()
        )
    })
}

/// The batches (or, `per_record`, the records) of the partition in `dir`
/// that end below `hw`, from the segments on `disk` (what the node wrote,
/// synced or not); reading stops at the first batch that does not parse or
/// check (a torn tail).
fn committed_batches(disk: &MemStorage, dir: &Path, hw: u64, per_record: bool) -> Batches {
    let mut batches = BTreeMap::new();
    let mut segments: Vec<String> = disk
        .list_dir(dir)
        .unwrap_or_default()
        .into_iter()
        .filter(|name| name.ends_with(".log"))
        .collect();
    segments.sort();
    for name in segments {
        let read = disk.inspect(&dir.join(&name), |data| {
            read_batches(data, hw, per_record, &mut batches)
        });
        if read.is_ok_and(|past_hw| past_hw) {
            break;
        }
    }
    batches
}

/// Adds the batches (or records) of one segment's `data` that end below
/// `hw` to `batches`, stopping at the first that does not parse or check;
/// true once a batch reaches `hw` (no later segment can add any).
fn read_batches(data: &[u8], hw: u64, per_record: bool, batches: &mut Batches) -> bool {
    let mut pos = 0;
    while let Some(rest) = data.get(pos..).filter(|r| !r.is_empty()) {
        let Ok(header) = BatchHeader::parse(rest) else {
            break;
        };
        let size = header.size as usize;
        let Some(batch) = rest.get(..size) else {
            break;
        };
        if header.verify_crc(batch).is_err() {
            break;
        }
        let last = header.base_offset.0 + u64::from(header.last_offset_delta);
        if last >= hw {
            return true;
        }
        if per_record {
            // Records keep their bytes (deltas from the batch's base
            // offset and first timestamp, which compaction keeps).
            for record in records(batch, &header).unwrap_or_default() {
                let mut hasher = std::hash::DefaultHasher::new();
                std::hash::Hash::hash(record.raw, &mut hasher);
                let sum = std::hash::Hasher::finish(&hasher) as u32;
                let offset = record.offset.0;
                batches.insert(offset, (offset, header.leader_epoch.0, sum));
            }
        } else {
            batches.insert(
                header.base_offset.0,
                (last, header.leader_epoch.0, header.crc),
            );
        }
        pos += size;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use raftline::client::{encode_batch, ProducerRecord};
    use raftline_broker::storage::OpenMode;
    use raftline_broker::{LeaderEpoch, Offset};

    /// A one-record batch at `base` in leader epoch 1, as a leader stamps it
    /// (base offset and epoch are outside the CRC).
    fn batch(base: u64, value: &str) -> Vec<u8> {
        let record = ProducerRecord {
            key: None,
            value: Some(Bytes::from(value.to_string())),
            timestamp: 0,
        };
        let mut bytes = encode_batch(&[record], None)
            .map(|b| b.to_vec())
            .unwrap_or_default();
        bytes[..8].copy_from_slice(&base.to_be_bytes());
        bytes[12..16].copy_from_slice(&1i32.to_be_bytes());
        bytes
    }

    /// A replica's progress: `leader` in `epoch`, log end `end`, high
    /// watermark `hw`.
    fn progress(leader: bool, epoch: u32, end: u64, hw: u64) -> Progress {
        Progress {
            generation: u64::from(epoch),
            leader,
            leader_epoch: LeaderEpoch(epoch),
            log_start: Offset(0),
            log_end: Offset(end),
            high_watermark: Offset(hw),
        }
    }

    fn tp() -> Tp {
        ("t".to_string(), 0)
    }

    fn kinds(invariants: &Invariants) -> Vec<String> {
        invariants
            .violations()
            .iter()
            .map(|v| v.split(": ").nth(1).unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn a_leader_that_did_not_change_is_still_checked_against_what_others_committed() {
        let mut inv = Invariants::new();
        let stale = progress(true, 2, 10, 5);
        inv.judge(vec![(1, 0, tp(), stale)], vec![(1, tp(), stale)], 1);
        assert!(inv.violations().is_empty());
        // Node 2 leads a newer epoch and counts 20 as committed; node 1's
        // stale leader is not the newest, so it may lag.
        inv.judge(
            vec![(2, 0, tp(), progress(true, 3, 20, 20))],
            vec![
                (1, tp(), progress(true, 2, 10, 5)),
                (2, tp(), progress(true, 3, 20, 20)),
            ],
            2,
        );
        assert!(inv.violations().is_empty(), "{:?}", inv.violations());
        // A leader of the newest epoch below the committed 20, unchanged
        // since the step before: found.
        let mut inv = Invariants::new();
        let leader = progress(true, 2, 10, 5);
        inv.judge(vec![(1, 0, tp(), leader)], vec![(1, tp(), leader)], 1);
        inv.judge(
            vec![(2, 0, tp(), progress(false, 2, 20, 20))],
            vec![(1, tp(), progress(true, 2, 10, 5))],
            2,
        );
        assert_eq!(kinds(&inv), ["leader completeness on t/0"]);
    }

    #[test]
    fn each_breach_of_a_replica_s_progress_is_found_once() {
        let mut inv = Invariants::new();
        inv.judge(
            vec![
                (1, 0, tp(), progress(true, 3, 10, 10)),
                (2, 0, tp(), progress(true, 3, 10, 10)),
            ],
            vec![],
            1,
        );
        inv.judge(vec![(1, 0, tp(), progress(true, 3, 10, 8))], vec![], 2);
        inv.judge(vec![(1, 0, tp(), progress(true, 2, 10, 8))], vec![], 3);
        inv.judge(vec![(3, 0, tp(), progress(false, 3, 4, 9))], vec![], 4);
        inv.judge(vec![(3, 0, tp(), progress(false, 3, 5, 9))], vec![], 5);
        assert_eq!(
            kinds(&inv),
            [
                "two leaders in one epoch on t/0",
                "leader high watermark went back on t/0",
                "epoch went back on t/0",
                "high watermark past the log end on t/0",
            ]
        );
        // A restart (a new start time) may begin at any epoch.
        let mut inv = Invariants::new();
        inv.judge(vec![(1, 0, tp(), progress(false, 3, 10, 10))], vec![], 1);
        inv.judge(vec![(1, 7, tp(), progress(false, 1, 10, 10))], vec![], 8);
        assert!(inv.violations().is_empty(), "{:?}", inv.violations());
    }

    #[test]
    fn the_committed_batches_end_below_the_high_watermark_and_stop_at_a_torn_tail() {
        let disk = MemStorage::new();
        let dir = Path::new(LOG_DIR).join("t-0");
        assert!(disk.create_dir_all(&dir).is_ok());
        let mut data = batch(0, "a");
        data.extend(batch(1, "b"));
        let torn = batch(2, "c");
        data.extend(&torn[..torn.len() - 3]);
        let file = disk.open(&dir.join("00000000000000000000.log"), OpenMode::CreateNew);
        assert!(file.and_then(|f| f.write_all_at(&data, 0)).is_ok());

        let bases = |hw| {
            committed_batches(&disk, &dir, hw, false)
                .into_keys()
                .collect::<Vec<_>>()
        };
        assert_eq!(bases(1), vec![0]);
        assert_eq!(bases(2), vec![0, 1]);
        assert_eq!(bases(10), vec![0, 1], "the torn batch is not read");
        let all = committed_batches(&disk, &dir, 10, false);
        assert_ne!(all[&0].2, all[&1].2, "each batch's CRC is kept");
    }

    #[test]
    fn compacted_replicas_may_differ_in_what_they_removed_but_not_in_a_record() {
        let log = |entries: &[(u64, u32)]| -> (u64, Batches) {
            (
                10,
                entries.iter().map(|&(o, sum)| (o, (o, 1, sum))).collect(),
            )
        };
        let full = log(&[(0, 7), (1, 8), (2, 9), (3, 5)]);
        let cleaned = log(&[(1, 8), (3, 5)]);
        assert_eq!(disagreement(&full, &cleaned, true), None);
        assert!(
            disagreement(&full, &cleaned, false).is_some(),
            "batch by batch they differ"
        );
        let diverged = log(&[(1, 8), (3, 6)]);
        assert!(disagreement(&full, &diverged, true).is_some());
        let above = (3, diverged.1.clone());
        assert_eq!(
            disagreement(&full, &above, true),
            None,
            "only below the lower high watermark"
        );
    }
}
