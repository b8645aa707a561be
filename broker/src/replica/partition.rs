//! [`Partition`]: one hosted partition replica at run time. It owns the log's
//! writer handle and the replica's role: as leader it runs [`LeaderState`] over
//! produce and follower fetches; as follower it applies what its fetcher brings.
//!
//! ```text
//! metadata record ─> apply ─┬─ leader here:  generation++, assign epoch, LeaderState
//!                           └─ elsewhere:    generation++, follow (fetcher re-added)
//! produce ─> role check ─> fenced append: written ─> log end (followers fetch)
//!                                         durable ─> on_append ─> HW ─> waiters
//! replica fetch ─> on_fetch ─┬─ diverging ─> {epoch, end}
//!                            └─ read up to the log end; maybe an ISR expansion
//!   (the HW counts the leader up to its fsync, followers up to their fetch
//!    offset, which they send only once their own append is durable)
//! fetch result (follower) ─> truncate (diverging) | fenced append ─> position
//! ```
//!
//! Every role change bumps the generation before anything else is queued on
//! the log, and every append carries the generation it was decided under, so
//! an append can never land under a role that did not decide it.

use super::leader::{Diverging, FetchError, FetchOutcome, FollowerFetch, IsrChange, LeaderState};
use super::ReplicaError;
use crate::clock::Clock;
use crate::error::LogError;
use crate::log::{spawn_writer, AppendInfo, Chunks, Durable, Fence, Log, LogConfig, LogHandle};
use crate::metadata::{BrokerId, PartitionInfo};
use crate::position::{LeaderEpoch, Offset, TopicPartition};
use crate::storage::{self, Storage};
use bytes::Bytes;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

/// The file in a partition's directory naming the topic id its data belongs to.
const TOPIC_ID_FILE: &str = "partition.metadata";

/// How many replicas must have a batch before it is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    /// Every in-sync replica, at least `min.insync.replicas`.
    All,
    /// The leader's log.
    Leader,
    /// Nobody waits.
    None,
}

/// A replica's positions and role, published on every change: delayed produce
/// and long-poll fetches wait on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The role generation: changes with every role change.
    pub generation: u64,
    /// Whether this replica leads.
    pub leader: bool,
    /// The leader epoch of the current role.
    pub leader_epoch: LeaderEpoch,
    /// The log start offset.
    pub log_start: Offset,
    /// The log end this replica has counted (a leader: what it has written,
    /// durable or not; its own count toward the high watermark waits for
    /// the fsync).
    pub log_end: Offset,
    /// The high watermark.
    pub high_watermark: Offset,
}

/// A produce that was appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Produced {
    /// The offset of the batch's first record.
    pub base_offset: Offset,
    /// The log start offset.
    pub log_start: Offset,
}

/// A leader's append that is written but not yet durable or acknowledged:
/// [`Partition::stage_produce`]'s answer, for [`Partition::finish_produce`].
pub struct StagedProduce {
    info: AppendInfo,
    durable: Durable,
    acks: Acks,
    generation: u64,
}

/// What a read returns (consumer or follower).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadResult {
    /// Whole batches (a leader's answer to a follower leaves them in the
    /// buffers its tail holds them in).
    pub records: Chunks,
    /// The high watermark.
    pub high_watermark: Offset,
    /// The log start offset.
    pub log_start: Offset,
    /// The leader's log end.
    pub log_end: Offset,
    /// For followers: truncate first.
    pub diverging: Option<Diverging>,
}

/// A follower's position in its own log: where it fetches from next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowerPosition {
    /// Its log end.
    pub fetch_offset: Offset,
    /// The epoch of its last batch.
    pub last_fetched_epoch: Option<LeaderEpoch>,
}

/// An ISR change for the controller (AlterPartition).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsrProposal {
    /// The partition.
    pub partition: TopicPartition,
    /// The proposing leader.
    pub leader: BrokerId,
    /// Its leader epoch.
    pub leader_epoch: LeaderEpoch,
    /// The partition epoch the change is based on (compare-and-set).
    pub partition_epoch: u32,
    /// The change.
    pub change: IsrChange,
}

/// Which role a metadata record put the replica in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// It leads now.
    Lead,
    /// It follows `leader`: (re)start fetching under `generation`.
    Follow {
        /// The leader.
        leader: BrokerId,
        /// The role generation the fetches are fenced with.
        generation: u64,
    },
    /// No leader: stop fetching.
    Offline,
    /// Same role and epoch (an ISR change, say): nothing to restart.
    Unchanged,
}

/// The replica's settings that come from its topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaSettings {
    /// `min.insync.replicas`.
    pub min_insync: usize,
    /// `replica.lag.time.max.ms`.
    pub lag_max_ms: i64,
}

enum Role {
    Follower,
    Leader(Box<LeaderState>),
}

struct Inner {
    role: Role,
    info: Option<PartitionInfo>,
    settings: ReplicaSettings,
    high_watermark: Offset,
    log_start: Offset,
    log_end: Offset,
    /// The log's settings as last handed to the writer.
    log_config: LogConfig,
}

/// One partition replica on this broker. See the module docs.
pub struct Partition {
    tp: TopicPartition,
    topic_id: u64,
    local: BrokerId,
    log: LogHandle,
    clock: Arc<dyn Clock>,
    generation: Arc<AtomicU64>,
    inner: Mutex<Inner>,
    progress: watch::Sender<Progress>,
    /// Whether a retention pass has run since the replica opened.
    retention_ran: AtomicBool,
    /// Whether a cleaner pass has run since the replica opened.
    cleaner_ran: AtomicBool,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition")
            .field("partition", &self.tp)
            .field("progress", &*self.progress.borrow())
            .finish()
    }
}

fn lock(mutex: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Kafka's follower truncation on a diverging epoch (KIP-320, truncate on
/// fetch): `local` is this log's `end_offset_for_epoch(diverging.epoch)`. If
/// this log knows the leader's epoch, both logs agree up to the smaller of the
/// two ends; otherwise cut to where this log's largest earlier epoch ends and
/// let the next fetch check again.
pub fn truncation_point(
    diverging: Diverging,
    local: Option<(LeaderEpoch, Offset)>,
    log_end: Offset,
) -> Offset {
    let point = match local {
        Some((epoch, end)) if epoch == diverging.epoch => diverging.end_offset.min(end),
        Some((_, end)) => end,
        None => diverging.end_offset,
    };
    point.min(log_end)
}

impl Partition {
    /// Opens the replica's log in `dir` (emptying it first if it holds another
    /// incarnation of the topic) and starts its writer. The replica starts as a
    /// follower with no leader until [`apply`](Self::apply).
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        tp: TopicPartition,
        topic_id: u64,
        local: BrokerId,
        storage: Arc<dyn Storage>,
        dir: PathBuf,
        config: LogConfig,
        settings: ReplicaSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Partition>, ReplicaError> {
        let to_err = |e: LogError| ReplicaError::from_log(&tp, e);
        let id_file = dir.join(TOPIC_ID_FILE);
        let stale = storage.exists(&id_file)
            && storage::read_file(&*storage, &id_file)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.trim().parse::<u64>().ok())
                != Some(topic_id);
        if stale {
            tracing::info!(partition = %tp, topic_id, "removing the data of a deleted incarnation of the topic");
            Log::open(storage.clone(), dir.clone(), config.clone())
                .and_then(|log| log.delete(clock.now_ms()))
                .map_err(to_err)?;
        }
        let log = Log::open(storage.clone(), dir.clone(), config.clone()).map_err(to_err)?;
        if !storage.exists(&id_file) {
            storage::write_file_atomic(
                &*storage,
                &dir,
                TOPIC_ID_FILE,
                format!("{topic_id}\n").as_bytes(),
            )
            .map_err(|e| ReplicaError::Storage {
                partition: tp.clone(),
                reason: format!("writing {TOPIC_ID_FILE}: {e}"),
            })?;
        }
        let report = log.recovery();
        if report.truncated_bytes > 0 || !report.deleted_segments.is_empty() {
            tracing::warn!(partition = %tp, ?report, "log recovered from a crash");
        }
        let (log_start, log_end) = (log.log_start(), log.log_end());
        let (handle, _task) = spawn_writer(log, clock.clone());
        let progress = Progress {
            generation: 0,
            leader: false,
            leader_epoch: LeaderEpoch(0),
            log_start,
            log_end,
            high_watermark: Offset(0),
        };
        Ok(Arc::new(Partition {
            tp,
            topic_id,
            local,
            log: handle,
            clock,
            generation: Arc::new(AtomicU64::new(0)),
            inner: Mutex::new(Inner {
                role: Role::Follower,
                info: None,
                settings,
                high_watermark: Offset(0),
                log_start,
                log_end,
                log_config: config,
            }),
            progress: watch::channel(progress).0,
            retention_ran: AtomicBool::new(false),
            cleaner_ran: AtomicBool::new(false),
        }))
    }

    /// The partition.
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    /// The topic id its data belongs to.
    pub fn topic_id(&self) -> u64 {
        self.topic_id
    }

    /// The log's writer handle (tools and tests).
    pub fn log(&self) -> &LogHandle {
        &self.log
    }

    /// The current positions and role.
    pub fn progress(&self) -> Progress {
        *self.progress.borrow()
    }

    /// A receiver of every progress change, for long polls.
    pub fn watch(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// The current role generation.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn fence(&self, generation: u64) -> Fence {
        Fence {
            current: self.generation.clone(),
            expected: generation,
        }
    }

    fn publish(&self, inner: &Inner) {
        let (leader, epoch) = match (&inner.role, &inner.info) {
            (Role::Leader(_), Some(info)) => (true, info.leader_epoch),
            (_, Some(info)) => (false, info.leader_epoch),
            (_, None) => (false, LeaderEpoch(0)),
        };
        let now = Progress {
            generation: self.generation(),
            leader,
            leader_epoch: epoch,
            log_start: inner.log_start,
            log_end: inner.log_end,
            high_watermark: inner.high_watermark,
        };
        // Only a real change wakes waiters: a long poll that publishes an
        // unchanged state (a follower's fetch) must not wake itself.
        self.progress.send_if_modified(|p| {
            let changed = *p != now;
            *p = now;
            changed
        });
    }

    fn not_leader(&self, inner: &Inner) -> ReplicaError {
        ReplicaError::NotLeader {
            partition: self.tp.clone(),
            local: self.local,
            leader: inner.info.as_ref().and_then(|i| i.leader),
        }
    }

    fn log_err(&self, e: LogError) -> ReplicaError {
        ReplicaError::from_log(&self.tp, e)
    }

    /// New log settings (the topic's configs changed). The same settings
    /// cost nothing: every metadata change of the partition (a leader change
    /// on the failover path too) passes here, and must not queue behind the
    /// writer's appends.
    pub async fn reconfigure(&self, config: LogConfig) -> Result<(), ReplicaError> {
        if lock(&self.inner).log_config == config {
            return Ok(());
        }
        let applied = config.clone();
        self.log
            .with(move |log| log.set_config(config))
            .await
            .and_then(|r| r)
            .map_err(|e| self.log_err(e))?;
        lock(&self.inner).log_config = applied;
        Ok(())
    }

    /// Acts on the partition's metadata record: lead, follow, or update the ISR.
    pub async fn apply(
        &self,
        info: PartitionInfo,
        settings: ReplicaSettings,
    ) -> Result<Transition, ReplicaError> {
        let unchanged = {
            let mut inner = lock(&self.inner);
            // Metadata older than what this replica acts on (a lagging
            // controller's, replayed) must never take it back to an old
            // role: Kafka refuses such a LeaderAndIsr too.
            let stale = inner.info.as_ref().is_some_and(|old| {
                (info.leader_epoch, info.partition_epoch) < (old.leader_epoch, old.partition_epoch)
            });
            if stale {
                tracing::debug!(partition = %self.tp, epoch = %info.leader_epoch, "ignoring stale partition metadata");
                return Ok(Transition::Unchanged);
            }
            inner.settings = settings;
            if inner.info.as_ref() == Some(&info) {
                // The same record: only the topic's configs changed.
                if let Role::Leader(state) = &mut inner.role {
                    state.set_min_isr(settings.min_insync);
                    inner.high_watermark = state.high_watermark();
                }
                self.publish(&inner);
                return Ok(Transition::Unchanged);
            }
            let same_role = inner.info.as_ref().is_some_and(|old| {
                old.leader_epoch == info.leader_epoch && old.leader == info.leader
            });
            let newer = inner
                .info
                .as_ref()
                .is_none_or(|old| info.partition_epoch >= old.partition_epoch);
            if same_role && newer {
                tracing::debug!(partition = %self.tp, partition_epoch = info.partition_epoch, isr = ?info.isr, "partition record applied in place");
                if let Role::Leader(state) = &mut inner.role {
                    state.set_min_isr(settings.min_insync);
                    state.on_isr_answer(Some(&info.isr));
                    inner.high_watermark = state.high_watermark();
                }
                inner.info = Some(info.clone());
                self.publish(&inner);
            }
            same_role
        };
        if unchanged {
            return Ok(Transition::Unchanged);
        }
        if info.leader == Some(self.local) {
            self.become_leader(info, settings).await?;
            Ok(Transition::Lead)
        } else {
            let leader = info.leader;
            let generation = self.become_follower(info).await?;
            Ok(match leader {
                Some(leader) => Transition::Follow { leader, generation },
                None => Transition::Offline,
            })
        }
    }

    async fn become_leader(
        &self,
        info: PartitionInfo,
        settings: ReplicaSettings,
    ) -> Result<(), ReplicaError> {
        let generation = self.step_down();
        let epoch = info.leader_epoch;
        let clock = self.clock.clone();
        let fence = self.fence(generation);
        let positions = self
            .log
            .with(move |log| {
                if !fence.holds() {
                    return Err(LogError::Fenced);
                }
                // KIP-279: the new epoch starts at the log end at once.
                log.assign_epoch(epoch)?;
                log.flush(clock.now_ms())?;
                Ok((log.log_start(), log.durable_end()))
            })
            .await
            .and_then(|r| r)
            .map_err(|e| self.log_err(e))?;
        let (log_start, log_end) = positions;
        let mut inner = lock(&self.inner);
        if self.generation() != generation {
            return Err(self.not_leader(&inner));
        }
        let mut state = LeaderState::new(
            self.local,
            epoch,
            &info.replicas,
            &info.isr,
            log_end,
            inner.high_watermark,
            settings.min_insync,
            settings.lag_max_ms,
            self.clock.now_ms(),
        );
        // A sole in-sync replica (RF 1, or the others out) commits at once.
        state.on_append(log_end);
        inner.high_watermark = state.high_watermark();
        inner.role = Role::Leader(Box::new(state));
        inner.log_start = log_start;
        inner.log_end = log_end;
        inner.info = Some(info);
        self.publish(&inner);
        tracing::info!(partition = %self.tp, broker = %self.local, %epoch, %log_end, hw = %inner.high_watermark, "leading");
        Ok(())
    }

    /// Ends any leadership: a new generation under which no old append lands.
    fn step_down(&self) -> u64 {
        let mut inner = lock(&self.inner);
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        inner.role = Role::Follower;
        self.publish(&inner);
        generation
    }

    async fn become_follower(&self, info: PartitionInfo) -> Result<u64, ReplicaError> {
        let generation = self.step_down();
        let (log_start, log_end) = self
            .log
            .with(|log| (log.log_start(), log.log_end()))
            .await
            .map_err(|e| self.log_err(e))?;
        let mut inner = lock(&self.inner);
        inner.log_start = log_start;
        inner.log_end = log_end;
        inner.high_watermark = inner.high_watermark.min(log_end);
        tracing::info!(partition = %self.tp, broker = %self.local, epoch = %info.leader_epoch, leader = ?info.leader, "following");
        inner.info = Some(info);
        self.publish(&inner);
        Ok(generation)
    }

    /// Appends one producer batch as leader. With `Acks::All` it returns once
    /// the high watermark has passed the batch (or the timeout or a role change
    /// ends the wait).
    pub async fn produce(
        &self,
        records: Bytes,
        acks: Acks,
        timeout: Duration,
    ) -> Result<Produced, ReplicaError> {
        self.produce_in(records, acks, timeout, None).await
    }

    /// [`produce`](Self::produce), refused as not leader unless the role is
    /// still generation `expected` (if given): a writer whose state was read
    /// under one leadership (the group coordinator) never appends under the
    /// next.
    pub async fn produce_in(
        &self,
        records: Bytes,
        acks: Acks,
        timeout: Duration,
        expected: Option<u64>,
    ) -> Result<Produced, ReplicaError> {
        let staged = self.stage_produce(records, acks, expected).await?;
        self.finish_produce(staged, timeout).await
    }

    /// The first half of a produce: checks the role and the ISR, appends
    /// as leader and publishes the new log end (followers may fetch it from
    /// here). Batches staged one after another for this partition are in
    /// the log in that order; [`finish_produce`](Self::finish_produce)
    /// waits for durability and the acks, and may run concurrently with
    /// later stages (an ordered produce stream does).
    pub async fn stage_produce(
        &self,
        records: Bytes,
        acks: Acks,
        expected: Option<u64>,
    ) -> Result<StagedProduce, ReplicaError> {
        let (epoch, generation) = {
            let inner = lock(&self.inner);
            let Role::Leader(state) = &inner.role else {
                return Err(self.not_leader(&inner));
            };
            if expected.is_some_and(|g| g != self.generation()) {
                return Err(self.not_leader(&inner));
            }
            if acks == Acks::All {
                state
                    .check_acks_all()
                    .map_err(|e| ReplicaError::NotEnoughReplicas {
                        partition: self.tp.clone(),
                        isr: e.isr,
                        min: e.min,
                    })?;
            }
            let epoch = inner
                .info
                .as_ref()
                .map_or(LeaderEpoch(0), |i| i.leader_epoch);
            (epoch, self.generation())
        };
        let staged = self
            .log
            .append_as_leader_staged(records, epoch, Some(self.fence(generation)))
            .await;
        let (info, durable) = match staged {
            Ok(staged) => staged,
            Err(LogError::Fenced | LogError::FencedLeaderEpoch { .. }) => {
                return Err(self.not_leader(&lock(&self.inner)))
            }
            Err(e) => return Err(self.log_err(e)),
        };
        // Written: followers may fetch it now, while the leader's fsync runs.
        {
            let mut inner = lock(&self.inner);
            if self.generation() != generation {
                return Err(self.not_leader(&inner));
            }
            inner.log_end = inner.log_end.max(info.last_offset.plus(1));
            self.publish(&inner);
        }
        Ok(StagedProduce {
            info,
            durable,
            acks,
            generation,
        })
    }

    /// The second half of a produce: once the staged batch is durable the
    /// leader counts it toward the high watermark; with acks=all, waits
    /// until the high watermark has passed it (or `timeout`, or a role
    /// change).
    pub async fn finish_produce(
        &self,
        staged: StagedProduce,
        timeout: Duration,
    ) -> Result<Produced, ReplicaError> {
        let StagedProduce {
            info,
            durable,
            acks,
            generation,
        } = staged;
        let end = info.last_offset.plus(1);
        durable.wait().await.map_err(|e| self.log_err(e))?;
        // Durable here too: the high watermark may count the leader up to it.
        let log_start = {
            let mut inner = lock(&self.inner);
            if self.generation() != generation {
                return Err(self.not_leader(&inner));
            }
            if let Role::Leader(state) = &mut inner.role {
                state.on_append(end);
                inner.high_watermark = state.high_watermark();
            }
            self.publish(&inner);
            inner.log_start
        };
        if acks == Acks::All {
            self.wait_for_high_watermark(end, generation, timeout)
                .await?;
        }
        Ok(Produced {
            base_offset: info.first_offset,
            log_start,
        })
    }

    async fn wait_for_high_watermark(
        &self,
        end: Offset,
        generation: u64,
        timeout: Duration,
    ) -> Result<(), ReplicaError> {
        let mut rx = self.progress.subscribe();
        let wait = async {
            loop {
                {
                    let p = rx.borrow_and_update();
                    if p.generation != generation || !p.leader {
                        return false;
                    }
                    if p.high_watermark >= end {
                        return true;
                    }
                }
                if rx.changed().await.is_err() {
                    return false;
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(self.not_leader(&lock(&self.inner))),
            Err(_) => Err(ReplicaError::Timeout {
                partition: self.tp.clone(),
                timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }

    /// A follower's fetch, on the leader: its position updates the high
    /// watermark and maybe the ISR; the answer is records up to the log end,
    /// or where to truncate.
    ///
    /// An ISR change goes to `propose` at once, before the log is read: the
    /// leader counts it pending from that moment, so it must not be lost with
    /// a read that fails or a fetch whose caller goes away (a long poll whose
    /// client timed out). A lost one left the change pending for ever and the
    /// ISR frozen (found by the simulator, seeds 1068 and 1399).
    pub async fn replica_fetch(
        &self,
        fetch: FollowerFetch,
        max_bytes: usize,
        propose: impl FnOnce(IsrProposal),
    ) -> Result<ReadResult, ReplicaError> {
        // The common case, a follower already in this leader's epoch, needs no
        // epoch-cache lookup (a round trip through the writer on every fetch):
        // that epoch is the log's newest and ends at the log end, and the
        // follower holds only what this leader served, below its counted end.
        let progress = self.progress();
        let end_for = match fetch.last_fetched_epoch {
            Some(epoch) if progress.leader && epoch == progress.leader_epoch => {
                Some((epoch, progress.log_end))
            }
            Some(epoch) => self
                .log
                .with(move |log| log.end_offset_for_epoch(epoch))
                .await
                .map_err(|e| self.log_err(e))?,
            None => None,
        };
        let (outcome, proposal, hw, log_start, log_end) = {
            let mut inner = lock(&self.inner);
            let now = self.clock.now_ms();
            let log_end = inner.log_end;
            let Role::Leader(state) = &mut inner.role else {
                return Err(self.not_leader(&inner));
            };
            let outcome = state
                .on_fetch(fetch, log_end, now, |_| end_for)
                .map_err(|e| self.fetch_error(e))?;
            let hw = state.high_watermark();
            inner.high_watermark = hw;
            let proposal = match &outcome {
                FetchOutcome::Serve {
                    expand: Some(change),
                } => self.proposal(&inner, change.clone()),
                _ => None,
            };
            self.publish(&inner);
            (outcome, proposal, hw, inner.log_start, log_end)
        };
        if let Some(proposal) = proposal {
            propose(proposal);
        }
        let mut result = ReadResult {
            high_watermark: hw,
            log_start,
            log_end,
            ..ReadResult::default()
        };
        match outcome {
            FetchOutcome::Diverging(d) => result.diverging = Some(d),
            FetchOutcome::Serve { .. } => {
                // Up to what the leader has written: followers copy it while
                // the leader's fsync runs (the high watermark still waits for
                // that fsync).
                let read = self
                    .log
                    .read_chunks(fetch.fetch_offset, max_bytes, log_end)
                    .await
                    .map_err(|e| self.log_err(e))?;
                result.records = read.records;
                result.log_start = read.log_start;
            }
        }
        Ok(result)
    }

    fn fetch_error(&self, error: FetchError) -> ReplicaError {
        match error {
            FetchError::FencedLeaderEpoch { given, current } => ReplicaError::FencedLeaderEpoch {
                partition: self.tp.clone(),
                given,
                current,
            },
            FetchError::UnknownLeaderEpoch { given, current } => ReplicaError::UnknownLeaderEpoch {
                partition: self.tp.clone(),
                given,
                current,
            },
            FetchError::NotAReplica(b) => {
                ReplicaError::InvalidRequest(format!("broker {b} is not a replica of {}", self.tp))
            }
        }
    }

    fn proposal(&self, inner: &Inner, change: IsrChange) -> Option<IsrProposal> {
        let info = inner.info.as_ref()?;
        Some(IsrProposal {
            partition: self.tp.clone(),
            leader: self.local,
            leader_epoch: info.leader_epoch,
            partition_epoch: info.partition_epoch,
            change,
        })
    }

    /// A consumer's fetch, on the leader: committed records only (below the
    /// high watermark).
    pub async fn fetch(
        &self,
        offset: Offset,
        current_leader_epoch: Option<LeaderEpoch>,
        max_bytes: usize,
    ) -> Result<ReadResult, ReplicaError> {
        let hw = self.check_consumer_leader(current_leader_epoch)?;
        tracing::trace!(partition = %self.tp, broker = %self.local, ?current_leader_epoch, %hw, %offset, "consumer fetch served");
        let read = self
            .log
            .read(offset, max_bytes, hw)
            .await
            .map_err(|e| self.log_err(e))?;
        Ok(ReadResult {
            records: read.records.into(),
            high_watermark: hw,
            log_start: read.log_start,
            log_end: read.log_end,
            diverging: None,
        })
    }

    /// As [`check_leader`](Self::check_leader), for consumers: a new leader
    /// serves them only once its high watermark has reached the log end it
    /// was elected with. Before, it may lag the high watermark the previous
    /// leader (or, after every node restarted, this one) showed them; after,
    /// it is at or past it, since the leader holds every committed record.
    fn check_consumer_leader(&self, epoch: Option<LeaderEpoch>) -> Result<Offset, ReplicaError> {
        let inner = lock(&self.inner);
        let hw = self.leads_at(&inner, epoch)?;
        if let Role::Leader(state) = &inner.role {
            if hw < state.epoch_start() {
                return Err(ReplicaError::OffsetNotAvailable {
                    partition: self.tp.clone(),
                    high_watermark: hw,
                    epoch_start: state.epoch_start(),
                });
            }
        }
        Ok(hw)
    }

    /// Checks that this replica leads (at `epoch`, if given); returns the
    /// high watermark.
    fn leads_at(&self, inner: &Inner, epoch: Option<LeaderEpoch>) -> Result<Offset, ReplicaError> {
        let (Role::Leader(_), Some(info)) = (&inner.role, &inner.info) else {
            return Err(self.not_leader(inner));
        };
        match epoch {
            Some(given) if given < info.leader_epoch => Err(ReplicaError::FencedLeaderEpoch {
                partition: self.tp.clone(),
                given,
                current: info.leader_epoch,
            }),
            Some(given) if given > info.leader_epoch => Err(ReplicaError::UnknownLeaderEpoch {
                partition: self.tp.clone(),
                given,
                current: info.leader_epoch,
            }),
            _ => Ok(inner.high_watermark),
        }
    }

    /// ListOffsets on the leader: -2 the log start, -1 the high watermark,
    /// else the first committed record at or after the timestamp, as
    /// `(offset, timestamp)`.
    pub async fn list_offset(
        &self,
        timestamp: i64,
    ) -> Result<(Option<Offset>, i64, LeaderEpoch), ReplicaError> {
        self.list_offset_at(timestamp, None).await
    }

    /// OffsetForLeaderEpoch from a consumer (KIP-320): the largest epoch at
    /// or below `epoch` and where it ends, capped at the high watermark (a
    /// consumer's position never passes it); `None` below the first epoch.
    pub async fn end_offset_for_epoch(
        &self,
        epoch: LeaderEpoch,
        current_leader_epoch: Option<LeaderEpoch>,
    ) -> Result<Option<(LeaderEpoch, Offset)>, ReplicaError> {
        let hw = self.check_consumer_leader(current_leader_epoch)?;
        let found = self
            .log
            .with(move |log| log.end_offset_for_epoch(epoch))
            .await
            .map_err(|e| self.log_err(e))?;
        Ok(found.map(|(e, end)| (e, end.min(hw))))
    }

    /// [`list_offset`](Self::list_offset) from a client that names the
    /// leader epoch it knows (KIP-320): an older one is fenced, a newer one
    /// unknown here.
    pub async fn list_offset_at(
        &self,
        timestamp: i64,
        current_leader_epoch: Option<LeaderEpoch>,
    ) -> Result<(Option<Offset>, i64, LeaderEpoch), ReplicaError> {
        let hw = self.check_consumer_leader(current_leader_epoch)?;
        let epoch = self.progress().leader_epoch;
        match timestamp {
            -2 => {
                let start = self
                    .log
                    .with(|log| log.log_start())
                    .await
                    .map_err(|e| self.log_err(e))?;
                Ok((Some(start), -1, epoch))
            }
            -1 => Ok((Some(hw), -1, epoch)),
            t if t < 0 => Err(ReplicaError::InvalidRequest(format!(
                "timestamp {t}: use -2 (earliest), -1 (latest) or a time in ms"
            ))),
            t => {
                let found = self
                    .log
                    .with(move |log| log.offset_for_timestamp(t))
                    .await
                    .and_then(|r| r)
                    .map_err(|e| self.log_err(e))?;
                Ok(match found.filter(|(offset, _)| *offset < hw) {
                    Some((offset, ts)) => (Some(offset), ts, epoch),
                    None => (None, -1, epoch),
                })
            }
        }
    }

    /// Where this follower's next fetch starts.
    pub async fn follower_position(&self) -> Result<FollowerPosition, ReplicaError> {
        self.log
            .with(|log| FollowerPosition {
                fetch_offset: log.log_end(),
                last_fetched_epoch: log.latest_epoch().map(|(e, _)| e),
            })
            .await
            .map_err(|e| self.log_err(e))
    }

    /// Applies a leader's answer to this follower's fetch under `generation`:
    /// truncates on a divergence, appends records (durable before this returns,
    /// with the default flush policy), and takes the leader's high watermark.
    /// Returns the next fetch position.
    pub async fn apply_fetched(
        &self,
        generation: u64,
        result: ReadResult,
    ) -> Result<FollowerPosition, ReplicaError> {
        let fence = self.fence(generation);
        if let Some(diverging) = result.diverging {
            let fence = fence.clone();
            let tp = self.tp.clone();
            self.log
                .with(move |log| {
                    if !fence.holds() {
                        return Err(LogError::Fenced);
                    }
                    let local = log.end_offset_for_epoch(diverging.epoch);
                    let point = truncation_point(diverging, local, log.log_end());
                    tracing::info!(partition = %tp, ?diverging, %point, "truncating a divergent suffix");
                    log.truncate_to(point)
                })
                .await
                .and_then(|r| r)
                .map_err(|e| self.log_err(e))?;
        } else if !result.records.is_empty() {
            self.log
                .append_as_follower_fenced(result.records.into_bytes(), Some(fence))
                .await
                .map_err(|e| self.log_err(e))?;
        }
        let position = self.follower_position().await?;
        let mut inner = lock(&self.inner);
        if self.generation() == generation {
            inner.log_end = position.fetch_offset;
            inner.log_start = inner.log_start.max(result.log_start.min(inner.log_end));
            inner.high_watermark = result.high_watermark.min(inner.log_end);
            self.publish(&inner);
        }
        Ok(position)
    }

    /// The follower's fetch offset fell outside the leader's log: below its
    /// start (retention), start over there; above its end (the leader lost
    /// records in an unclean election), cut back to it.
    pub async fn reset_to_leader(
        &self,
        generation: u64,
        leader_start: Offset,
        leader_end: Offset,
    ) -> Result<FollowerPosition, ReplicaError> {
        let fence = self.fence(generation);
        self.log
            .with(move |log| {
                if !fence.holds() {
                    return Err(LogError::Fenced);
                }
                if log.log_end() < leader_start {
                    log.truncate_fully_and_start_at(leader_start)
                } else if log.log_end() > leader_end {
                    log.truncate_to(leader_end).map(|_| ())
                } else {
                    Ok(())
                }
            })
            .await
            .and_then(|r| r)
            .map_err(|e| self.log_err(e))?;
        self.follower_position().await
    }

    /// The lag check, on the leader: a shrink to propose, if any.
    pub fn check_lagging(&self) -> Option<IsrProposal> {
        let mut inner = lock(&self.inner);
        let now = self.clock.now_ms();
        let Role::Leader(state) = &mut inner.role else {
            return None;
        };
        let change = state.check_lagging(now)?;
        self.proposal(&inner, change)
    }

    /// The controller's answer to `proposal`: the new record, or `None` if it
    /// was refused (the next metadata record sets things right).
    /// Whether `proposal` is still this leader's unsettled ISR change, at
    /// the leader and partition epochs it was based on: its answer was lost,
    /// so it may be sent again.
    pub fn isr_change_still_pending(&self, proposal: &IsrProposal) -> bool {
        let inner = lock(&self.inner);
        let current = inner
            .info
            .as_ref()
            .map(|i| (i.leader_epoch, i.partition_epoch));
        let Role::Leader(state) = &inner.role else {
            return false;
        };
        current == Some((proposal.leader_epoch, proposal.partition_epoch))
            && state.pending() == Some(&proposal.change.new_isr)
    }

    pub fn on_isr_answer(&self, proposal: &IsrProposal, record: Option<PartitionInfo>) {
        let mut inner = lock(&self.inner);
        let current = inner
            .info
            .as_ref()
            .map(|i| (i.leader_epoch, i.partition_epoch));
        let answered = record.as_ref().map(|r| (r.leader_epoch, r.partition_epoch));
        let accepted = record.filter(|r| {
            Some(r.leader_epoch) == current.map(|c| c.0)
                && current.is_some_and(|c| r.partition_epoch > c.1)
        });
        tracing::debug!(partition = %self.tp, proposed_at = proposal.partition_epoch, ?answered, ?current, accepted = accepted.is_some(), "ISR change answered");
        if current.map(|c| c.0) != Some(proposal.leader_epoch) {
            return;
        }
        let Role::Leader(state) = &mut inner.role else {
            return;
        };
        state.on_isr_answer(accepted.as_ref().map(|r| r.isr.as_slice()));
        inner.high_watermark = state.high_watermark();
        if let Some(record) = accepted {
            tracing::info!(partition = %self.tp, isr = ?record.isr, "ISR changed");
            inner.info = Some(record);
        }
        self.publish(&inner);
    }

    /// Runs background work (retention, cleaning) on the log in its writer
    /// task, given the high watermark as of now and the time.
    async fn below_high_watermark<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Log, Offset, i64) -> Result<T, LogError> + Send + 'static,
    ) -> Result<T, ReplicaError> {
        let hw = self.progress().high_watermark;
        let now = self.clock.now_ms();
        self.log
            .with_blocking(move |log| job(log, hw, now))
            .await
            .and_then(|r| r)
            .map_err(|e| self.log_err(e))
    }

    /// Retention: deletes old segments entirely below the high watermark.
    pub async fn apply_retention(&self) -> Result<(), ReplicaError> {
        let outcome = self
            .below_high_watermark(|log, hw, now| log.apply_retention(now, hw))
            .await;
        // A failed pass counts too: the next comes on the interval, not
        // every poll.
        self.retention_ran.store(true, Ordering::Relaxed);
        let outcome = outcome?;
        if !outcome.deleted_segments.is_empty() {
            tracing::info!(partition = %self.tp, segments = outcome.deleted_segments.len(), log_start = %outcome.log_start, "retention deleted segments");
            let mut inner = lock(&self.inner);
            inner.log_start = inner.log_start.max(outcome.log_start);
            self.publish(&inner);
        }
        Ok(())
    }

    /// Whether this replica waits for its first retention pass and could
    /// delete something in it: it knows a high watermark above its log
    /// start. (An opened replica knows none until it leads or first fetches,
    /// so a pass as the broker starts finds nothing to delete.)
    pub fn awaits_first_retention(&self) -> bool {
        self.awaits_first(&self.retention_ran)
    }

    /// As [`awaits_first_retention`](Self::awaits_first_retention), for the
    /// cleaner: it cleans only below the high watermark.
    pub fn awaits_first_clean(&self) -> bool {
        self.awaits_first(&self.cleaner_ran)
    }

    fn awaits_first(&self, ran: &AtomicBool) -> bool {
        let progress = self.progress();
        !ran.load(Ordering::Relaxed) && progress.high_watermark > progress.log_start
    }

    /// Compaction: one cleaner pass over the sealed segments below the high
    /// watermark, if the topic is compacted and enough of it is dirty.
    pub async fn clean(&self) -> Result<(), ReplicaError> {
        let outcome = self
            .below_high_watermark(|log, hw, now| log.clean(hw, now))
            .await;
        self.cleaner_ran.store(true, Ordering::Relaxed);
        let outcome = outcome?;
        if let Some(out) = outcome.filter(|o| !o.rewritten.is_empty()) {
            tracing::info!(partition = %self.tp, segments = out.rewritten.len(), removed = out.records_removed, bytes_before = out.bytes_before, bytes_after = out.bytes_after, "log cleaned");
        }
        Ok(())
    }

    /// Stops the replica and deletes its log.
    pub async fn delete(&self) -> Result<(), ReplicaError> {
        self.step_down();
        self.log.delete().await.map_err(|e| self.log_err(e))
    }

    /// Stops the replica: no more appends; the writer flushes and closes when
    /// the last handle goes.
    pub fn stop(&self) {
        self.step_down();
    }
}
