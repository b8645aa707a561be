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

use crate::cluster::Probes;
use std::collections::BTreeMap;

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
    reported: std::collections::BTreeSet<(String, Tp)>,
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
    pub fn check(&mut self, probes: &Probes, at_ms: u64) {
        let running = probes.running();
        for probe in running.values() {
            for partition in probe.replicas.partitions() {
                let tp = partition.topic_partition();
                let newest = self
                    .newest
                    .entry((tp.topic.clone(), tp.partition))
                    .or_insert(0);
                *newest = (*newest).max(partition.progress().leader_epoch.0);
            }
        }
        for (node, probe) in running {
            for partition in probe.replicas.partitions() {
                let tp = partition.topic_partition();
                let tp: Tp = (tp.topic.clone(), tp.partition);
                let progress = partition.progress();
                let epoch = progress.leader_epoch.0;
                let (hw, end) = (progress.high_watermark.0, progress.log_end.0);

                let seen = self
                    .epochs
                    .entry((node, probe.started_ms, tp.clone()))
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
                    let committed = self.committed.get(&tp).copied().unwrap_or(0);
                    let current = self.newest.get(&tp).is_none_or(|&e| e <= epoch);
                    if current && end < committed {
                        self.breach(
                            "leader completeness",
                            &tp,
                            at_ms,
                            format!(
                                "node {node} leads epoch {epoch} with log end {end} below the committed {committed}"
                            ),
                        );
                    }
                    let key = (node, probe.started_ms, tp.clone(), progress.generation);
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
        }
    }

    /// What was found.
    pub fn violations(&self) -> &[String] {
        &self.violations
    }
}
