//! [`LeaderState`]: a partition leader's view of its followers.

use crate::metadata::BrokerId;
use crate::position::{LeaderEpoch, Offset};
use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

/// What a follower's fetch tells the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowerFetch {
    /// The follower.
    pub follower: BrokerId,
    /// The follower's registration epoch, as its fetch carries it (KIP-903).
    pub broker_epoch: u64,
    /// The leader epoch the follower believes current (KIP-320).
    pub current_leader_epoch: LeaderEpoch,
    /// Where the follower wants to read from: its log end.
    pub fetch_offset: Offset,
    /// The epoch of the follower's last batch, for the divergence check.
    pub last_fetched_epoch: Option<LeaderEpoch>,
}

/// Why a fetch is refused.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum FetchError {
    /// The follower is behind on leadership: it must refresh its metadata.
    #[error("fenced leader epoch {given}: the partition is at epoch {current}")]
    FencedLeaderEpoch {
        /// The epoch the fetch carried.
        given: LeaderEpoch,
        /// This leader's epoch.
        current: LeaderEpoch,
    },
    /// The follower knows a newer epoch than this leader: this broker is stale.
    #[error("unknown leader epoch {given}: this leader is at epoch {current}")]
    UnknownLeaderEpoch {
        /// The epoch the fetch carried.
        given: LeaderEpoch,
        /// This leader's epoch.
        current: LeaderEpoch,
    },
    /// The broker is not a replica of the partition.
    #[error("broker {0} is not a replica of this partition")]
    NotAReplica(BrokerId),
}

/// The follower's log diverges from the leader's: it must truncate to
/// `end_offset` (at most) and fetch again (Kafka's truncate-on-fetch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Diverging {
    /// The largest epoch the leader has at or below the follower's last epoch.
    pub epoch: LeaderEpoch,
    /// Where that epoch ends in the leader's log.
    pub end_offset: Offset,
}

/// An ISR change the leader should propose to the controller (AlterPartition).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsrChange {
    /// The proposed ISR.
    pub new_isr: BTreeSet<BrokerId>,
    /// The broker epochs of its members, as their fetches carried them.
    pub broker_epochs: BTreeMap<BrokerId, u64>,
}

/// What a fetch led to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchOutcome {
    /// Serve the fetch from `fetch_offset`; maybe propose an ISR expansion.
    Serve {
        /// An ISR expansion to propose, if the follower has just become eligible.
        expand: Option<IsrChange>,
    },
    /// Answer with the divergence instead of data.
    Diverging(Diverging),
}

/// Refused acks=all produce: the ISR is smaller than `min.insync.replicas`.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[error("not enough replicas: ISR has {isr}, min.insync.replicas is {min}")]
pub struct NotEnoughReplicas {
    /// The ISR's size.
    pub isr: usize,
    /// The setting.
    pub min: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Follower {
    /// The follower's log end, as its last fetch said. `None` before any fetch.
    log_end: Option<Offset>,
    /// When it last was caught up to the leader's log end (ms).
    caught_up_ms: i64,
    /// Its broker epoch from its last fetch.
    broker_epoch: Option<u64>,
}

/// A partition leader's decisions about its followers.
///
/// Invariants: `high_watermark` never decreases and never exceeds the log end
/// of any member of the maximal ISR (committed plus proposed); it moves only
/// while the committed ISR has at least `min_isr` members (KIP-966).
#[derive(Clone, Debug)]
pub struct LeaderState {
    local: BrokerId,
    leader_epoch: LeaderEpoch,
    /// The leader's log end when this leadership began: a follower below it has
    /// not yet fetched anything of this epoch and may not join the ISR.
    epoch_start: Offset,
    isr: BTreeSet<BrokerId>,
    /// An ISR change sent to the controller and not yet answered.
    pending: Option<BTreeSet<BrokerId>>,
    followers: BTreeMap<BrokerId, Follower>,
    /// How far the leader's own log is durable. Followers may be served
    /// records before the leader's fsync ends (the two overlap), but the high
    /// watermark counts the leader only up to here.
    local_durable: Offset,
    high_watermark: Offset,
    min_isr: usize,
    lag_max_ms: i64,
}

impl LeaderState {
    /// The log end this leadership began with.
    pub fn epoch_start(&self) -> Offset {
        self.epoch_start
    }

    /// Leadership of a partition begins: `replicas` and `isr` from the
    /// controller, the local log ending at `log_end` (all of it durable),
    /// `high_watermark` as the log had it.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        local: BrokerId,
        leader_epoch: LeaderEpoch,
        replicas: &[BrokerId],
        isr: &[BrokerId],
        log_end: Offset,
        high_watermark: Offset,
        min_isr: usize,
        lag_max_ms: i64,
        now_ms: i64,
    ) -> Self {
        let followers = replicas
            .iter()
            .filter(|&&b| b != local)
            .map(|&b| {
                let follower = Follower {
                    log_end: None,
                    // A follower gets a full lag window from the start of leadership.
                    caught_up_ms: now_ms,
                    broker_epoch: None,
                };
                (b, follower)
            })
            .collect();
        LeaderState {
            local,
            leader_epoch,
            epoch_start: log_end,
            isr: isr.iter().copied().collect(),
            pending: None,
            followers,
            local_durable: log_end,
            high_watermark: high_watermark.min(log_end),
            min_isr,
            lag_max_ms,
        }
    }

    /// The high watermark: consumers read below it; acks=all waits for it.
    pub fn high_watermark(&self) -> Offset {
        self.high_watermark
    }

    /// The committed ISR.
    pub fn isr(&self) -> &BTreeSet<BrokerId> {
        &self.isr
    }

    /// Whether an acks=all produce may be appended now.
    pub fn check_acks_all(&self) -> Result<(), NotEnoughReplicas> {
        if self.isr.len() < self.min_isr {
            return Err(NotEnoughReplicas {
                isr: self.isr.len(),
                min: self.min_isr,
            });
        }
        Ok(())
    }

    /// A follower's fetch. `leader_log_end` is the local log end; `end_offset_for`
    /// is the local log's OffsetForLeaderEpoch. Returns what to answer.
    pub fn on_fetch(
        &mut self,
        fetch: FollowerFetch,
        leader_log_end: Offset,
        now_ms: i64,
        end_offset_for: impl Fn(LeaderEpoch) -> Option<(LeaderEpoch, Offset)>,
    ) -> Result<FetchOutcome, FetchError> {
        if fetch.current_leader_epoch < self.leader_epoch {
            return Err(FetchError::FencedLeaderEpoch {
                given: fetch.current_leader_epoch,
                current: self.leader_epoch,
            });
        }
        if fetch.current_leader_epoch > self.leader_epoch {
            return Err(FetchError::UnknownLeaderEpoch {
                given: fetch.current_leader_epoch,
                current: self.leader_epoch,
            });
        }
        if !self.followers.contains_key(&fetch.follower) {
            return Err(FetchError::NotAReplica(fetch.follower));
        }
        // Divergence: the follower's last epoch ends earlier here than the
        // follower's log claims (or this log has no such epoch at all).
        if let Some(last_epoch) = fetch.last_fetched_epoch {
            let diverging = match end_offset_for(last_epoch) {
                Some((epoch, end)) => {
                    (epoch < last_epoch || end < fetch.fetch_offset).then_some(Diverging {
                        epoch,
                        end_offset: end,
                    })
                }
                None => None,
            };
            if let Some(d) = diverging {
                return Ok(FetchOutcome::Diverging(d));
            }
        }
        if let Some(f) = self.followers.get_mut(&fetch.follower) {
            f.log_end = Some(fetch.fetch_offset.min(leader_log_end));
            f.broker_epoch = Some(fetch.broker_epoch);
            if fetch.fetch_offset >= leader_log_end {
                f.caught_up_ms = now_ms;
            }
        }
        let expand = self.expansion(fetch, leader_log_end);
        self.advance_high_watermark();
        Ok(FetchOutcome::Serve { expand })
    }

    /// A follower may join the ISR when it has reached the high watermark and
    /// the start of this leader epoch, in a fetch of the current epoch (checked
    /// above), carrying its broker epoch; one change in flight at a time.
    fn expansion(&mut self, fetch: FollowerFetch, leader_log_end: Offset) -> Option<IsrChange> {
        if self.pending.is_some() || self.isr.contains(&fetch.follower) {
            return None;
        }
        let eligible = fetch.fetch_offset >= self.high_watermark
            && fetch.fetch_offset >= self.epoch_start.min(leader_log_end);
        if !eligible {
            return None;
        }
        let mut new_isr = self.isr.clone();
        new_isr.insert(fetch.follower);
        Some(self.propose(new_isr))
    }

    /// The local log is durable up to `durable_end` (an append's fsync
    /// ended): the high watermark may move.
    pub fn on_append(&mut self, durable_end: Offset) {
        self.local_durable = self.local_durable.max(durable_end);
        self.advance_high_watermark();
    }

    /// Followers that have not caught up within `replica.lag.time.max.ms`
    /// leave the ISR: returns the shrink to propose, if any.
    pub fn check_lagging(&mut self, now_ms: i64) -> Option<IsrChange> {
        if self.pending.is_some() {
            return None;
        }
        let lagging: Vec<BrokerId> = self
            .isr
            .iter()
            .filter(|&&b| b != self.local)
            .filter(|b| {
                self.followers
                    .get(b)
                    .is_some_and(|f| now_ms - f.caught_up_ms > self.lag_max_ms)
            })
            .copied()
            .collect();
        if lagging.is_empty() {
            return None;
        }
        let new_isr: BTreeSet<BrokerId> = self
            .isr
            .iter()
            .filter(|b| !lagging.contains(b))
            .copied()
            .collect();
        Some(self.propose(new_isr))
    }

    fn propose(&mut self, new_isr: BTreeSet<BrokerId>) -> IsrChange {
        self.pending = Some(new_isr.clone());
        let broker_epochs = new_isr
            .iter()
            .filter_map(|b| {
                self.followers
                    .get(b)
                    .and_then(|f| f.broker_epoch)
                    .map(|e| (*b, e))
            })
            .collect();
        IsrChange {
            new_isr,
            broker_epochs,
        }
    }

    /// The ISR change sent to the controller and not yet settled, if any.
    pub fn pending(&self) -> Option<&BTreeSet<BrokerId>> {
        self.pending.as_ref()
    }

    /// `min.insync.replicas` changed (the topic's configs): the high
    /// watermark may move now (a lower minimum) or stop (a higher one).
    pub fn set_min_isr(&mut self, min_isr: usize) {
        self.min_isr = min_isr;
        self.advance_high_watermark();
    }

    /// The controller answered the pending change: `Some(isr)` committed,
    /// `None` refused (the leader keeps its committed ISR and may try again).
    pub fn on_isr_answer(&mut self, committed: Option<&[BrokerId]>) {
        if let Some(isr) = committed {
            self.isr = isr.iter().copied().collect();
        }
        self.pending = None;
        self.advance_high_watermark();
    }

    /// High watermark = the smallest durable log end over the maximal ISR
    /// (committed plus pending, so a replica being removed still counts until
    /// the controller agrees; a follower's fetch offset is durable, as it
    /// fetches only after its fsync), and only while the committed ISR meets
    /// min.insync.replicas. Never backwards.
    fn advance_high_watermark(&mut self) {
        if self.isr.len() < self.min_isr {
            return;
        }
        let mut maximal = self.isr.clone();
        if let Some(pending) = &self.pending {
            maximal.extend(pending.iter().copied());
        }
        let mut candidate = self.local_durable;
        for member in maximal.iter().filter(|&&b| b != self.local) {
            match self.followers.get(member).and_then(|f| f.log_end) {
                Some(end) => candidate = candidate.min(end),
                // A member that has not fetched yet holds the watermark.
                None => return,
            }
        }
        self.high_watermark = self.high_watermark.max(candidate);
    }
}

#[cfg(test)]
#[path = "leader_test.rs"]
mod tests;
