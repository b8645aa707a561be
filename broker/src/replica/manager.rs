//! [`ReplicaManager`]: the partitions this broker hosts, made leaders or
//! followers as the controller's metadata says, with one fetcher per source
//! broker, the lag check, retention, and ISR proposals to the controller.
//!
//! ```text
//! ControllerLink.changes ─> apply_changes ─┬─ Changed: open the log if new; Partition::apply
//!                                          │    Lead ─> drop from fetchers
//!                                          │    Follow(leader) ─> fetcher[leader].add
//!                                          └─ Removed: drop from fetchers; delete the log
//! tick ─> check_lagging ─> AlterPartition (controller leader) ─> on_isr_answer
//! ```

use super::fetcher::{self, FetcherCommand, FetcherConfig};
use super::partition::{IsrProposal, Partition, ReplicaSettings, Transition};
use super::ReplicaError;
use crate::clock::Clock;
use crate::controller_link::{Connector, ControllerClient, LinkState};
use crate::log::{CleanupPolicy, LogConfig};
use crate::metadata::{partition_from_wire, BrokerId, PartitionChange, PartitionInfo};
use crate::position::TopicPartition;
use crate::storage::Storage;
use prost::Message as _;
use raftline_proto::pb;
use raftline_proto::topic_config::min_insync_replicas;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// After a refused ISR change, before the partition may propose again.
const ISR_RETRY_BACKOFF: Duration = Duration::from_secs(1);
/// How often replicas are checked for a first retention or cleaner pass
/// they could now make (a look at their progress; no log is touched until
/// one can).
const FIRST_PASS_POLL: Duration = Duration::from_secs(1);

/// The replica manager's settings.
#[derive(Clone, Debug)]
pub struct ReplicaManagerConfig {
    /// This broker.
    pub local: BrokerId,
    /// Where partition directories live.
    pub log_dir: PathBuf,
    /// Log settings before topic configs override them.
    pub log_defaults: LogConfig,
    /// `replica.lag.time.max.ms`.
    pub lag_max: Duration,
    /// A follower fetch's long-poll wait.
    pub fetch_max_wait: Duration,
    /// A follower fetch's size bound, per partition.
    pub fetch_partition_max_bytes: u32,
    /// Each RPC's deadline beyond its long poll.
    pub rpc_timeout: Duration,
    /// Between retention passes.
    pub retention_check: Duration,
    /// Between cleaner passes over compacted partitions
    /// (`log.cleaner.backoff.ms`).
    pub cleaner_check: Duration,
}

impl ReplicaManagerConfig {
    /// Defaults for broker `local` with partitions under `log_dir`.
    pub fn new(local: BrokerId, log_dir: PathBuf) -> Self {
        ReplicaManagerConfig {
            local,
            log_dir,
            log_defaults: LogConfig::default(),
            lag_max: Duration::from_secs(10),
            fetch_max_wait: Duration::from_millis(500),
            fetch_partition_max_bytes: 1 << 20,
            rpc_timeout: Duration::from_secs(2),
            retention_check: Duration::from_secs(30),
            cleaner_check: Duration::from_secs(15),
        }
    }
}

/// The hosted partitions and their fetchers.
pub struct ReplicaManager {
    config: ReplicaManagerConfig,
    storage: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    connector: Arc<dyn Connector>,
    link: watch::Receiver<LinkState>,
    controller: ControllerClient,
    partitions: Mutex<BTreeMap<TopicPartition, Arc<Partition>>>,
    fetchers: Mutex<BTreeMap<BrokerId, mpsc::UnboundedSender<FetcherCommand>>>,
    /// The unused rest of this broker's producer id block: `next..end`.
    producer_ids: tokio::sync::Mutex<(u64, u64)>,
    shutdown: CancellationToken,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The log settings of a topic: the defaults with its configs applied.
pub fn log_config_for(defaults: &LogConfig, configs: &BTreeMap<String, String>) -> LogConfig {
    let mut config = defaults.clone();
    let int = |key: &str| configs.get(key).and_then(|v| v.parse::<i64>().ok());
    let ms = |n: i64| (n >= 0).then(|| Duration::from_millis(n.unsigned_abs()));
    if let Some(n) = int("retention.ms") {
        config.retention_age = ms(n);
    }
    if let Some(n) = int("retention.bytes") {
        config.retention_bytes = u64::try_from(n).ok();
    }
    if let Some(n) = int("segment.bytes").and_then(|n| u64::try_from(n).ok()) {
        config.segment_bytes = n;
    }
    if let Some(n) = int("segment.ms") {
        config.segment_age = ms(n);
    }
    if let Some(n) = int("max.message.bytes").and_then(|n| u64::try_from(n).ok()) {
        config.max_batch_bytes = n;
    }
    config.cleanup = CleanupPolicy::of(configs);
    if let Some(d) = int("delete.retention.ms").and_then(ms) {
        config.delete_retention = d;
    }
    if let Some(d) = int("min.compaction.lag.ms").and_then(ms) {
        config.min_compaction_lag = d;
    }
    let ratio = configs
        .get("min.cleanable.dirty.ratio")
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|r| (0.0..=1.0).contains(r));
    if let Some(r) = ratio {
        // In [0, 1000] by the filter above.
        config.min_cleanable_dirty_permille = (r * 1000.0).round() as u16;
    }
    config
}

impl ReplicaManager {
    /// A manager with no partitions yet; [`run`](Self::run) feeds it.
    pub fn new(
        config: ReplicaManagerConfig,
        storage: Arc<dyn Storage>,
        clock: Arc<dyn Clock>,
        connector: Arc<dyn Connector>,
        link: watch::Receiver<LinkState>,
        controller: ControllerClient,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(ReplicaManager {
            config,
            storage,
            clock,
            connector,
            link,
            controller,
            partitions: Mutex::new(BTreeMap::new()),
            fetchers: Mutex::new(BTreeMap::new()),
            producer_ids: tokio::sync::Mutex::new((0, 0)),
            shutdown,
        })
    }

    /// This broker.
    pub fn local(&self) -> BrokerId {
        self.config.local
    }

    /// How this broker reaches other brokers.
    pub fn connector(&self) -> &Arc<dyn Connector> {
        &self.connector
    }

    /// What the controller link knows (metadata, broker epoch).
    pub fn link(&self) -> LinkState {
        self.link.borrow().clone()
    }

    /// A hosted partition.
    pub fn partition(&self, tp: &TopicPartition) -> Option<Arc<Partition>> {
        lock(&self.partitions).get(tp).cloned()
    }

    /// Every hosted partition.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        lock(&self.partitions).values().cloned().collect()
    }

    /// Applies partition changes until the link's channel closes or shutdown;
    /// runs the lag check on its interval meanwhile, and retention and the
    /// cleaner in a task of their own.
    pub async fn run(self: Arc<Self>, mut changes: mpsc::Receiver<Vec<PartitionChange>>) {
        let mut lag_tick =
            tokio::time::interval((self.config.lag_max / 4).max(Duration::from_millis(50)));
        lag_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A pass over every log can take seconds (a cleaner rewriting
        // segments, retention on a broker that was down a while), so it runs
        // beside this loop: a leader change must not wait for it. It stops
        // with this loop, however this loop ends (a dropped future too).
        let stop = self.shutdown.child_token();
        let _stop_maintenance = stop.clone().drop_guard();
        tokio::spawn(self.clone().maintain_logs(stop));
        loop {
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => break,
                batch = changes.recv() => match batch {
                    Some(batch) => self.apply_changes(batch).await,
                    None => break,
                },
                _ = lag_tick.tick() => self.check_lagging(),
            }
        }
        for partition in self.partitions() {
            partition.stop();
        }
        lock(&self.fetchers).clear();
    }

    /// Retention and the cleaner, each on its interval, until `stop`; and
    /// each replica's first pass of either as soon as it knows its high
    /// watermark. A pass as the broker starts would find no replica opened
    /// or none knowing a high watermark: a broker restarted more often than
    /// the interval would never delete (a kill loop filled a disk so) nor
    /// compact.
    async fn maintain_logs(self: Arc<Self>, stop: CancellationToken) {
        let every = |period: Duration| {
            let mut tick = tokio::time::interval_at(Instant::now() + period, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick
        };
        let (retention, cleaner) = (self.config.retention_check, self.config.cleaner_check);
        let mut retention_tick = every(retention);
        let mut cleaner_tick = every(cleaner);
        let mut first_pass_tick = every(FIRST_PASS_POLL.min(retention).min(cleaner));
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                _ = retention_tick.tick() => self.apply_retention(|_| true).await,
                _ = cleaner_tick.tick() => self.clean_logs(|_| true).await,
                _ = first_pass_tick.tick() => {
                    self.apply_retention(|p| p.awaits_first_retention()).await;
                    self.clean_logs(|p| p.awaits_first_clean()).await;
                }
            }
        }
    }

    /// Acts on each change in order.
    pub async fn apply_changes(self: &Arc<Self>, changes: Vec<PartitionChange>) {
        for change in changes {
            match change {
                PartitionChange::Changed {
                    partition,
                    topic_id,
                    info,
                } => {
                    if let Err(e) = self.apply_change(&partition, topic_id, info).await {
                        tracing::error!(%partition, error = %e, "cannot take up the replica's role");
                    }
                }
                PartitionChange::Removed {
                    partition,
                    topic_id,
                } => self.remove(&partition, topic_id).await,
            }
        }
    }

    async fn apply_change(
        self: &Arc<Self>,
        tp: &TopicPartition,
        topic_id: u64,
        info: PartitionInfo,
    ) -> Result<(), ReplicaError> {
        let configs = self
            .link
            .borrow()
            .metadata
            .topic(&tp.topic)
            .map(|t| t.configs.clone())
            .unwrap_or_default();
        let settings = ReplicaSettings {
            min_insync: min_insync_replicas(&configs, info.replicas.len()),
            lag_max_ms: i64::try_from(self.config.lag_max.as_millis()).unwrap_or(i64::MAX),
        };
        let existing = self.partition(tp);
        let partition = match existing {
            Some(p) if p.topic_id() == topic_id => {
                p.reconfigure(log_config_for(&self.config.log_defaults, &configs))
                    .await?;
                p
            }
            other => {
                if other.is_some() {
                    self.remove(tp, 0).await;
                }
                let dir = self.config.log_dir.join(tp.dir_name());
                let partition = Partition::open(
                    tp.clone(),
                    topic_id,
                    self.config.local,
                    self.storage.clone(),
                    dir,
                    log_config_for(&self.config.log_defaults, &configs),
                    settings,
                    self.clock.clone(),
                )?;
                lock(&self.partitions).insert(tp.clone(), partition.clone());
                partition
            }
        };
        match partition.apply(info, settings).await? {
            Transition::Lead | Transition::Offline => self.unfollow(tp, None),
            Transition::Follow { leader, generation } => {
                self.unfollow(tp, Some(leader));
                self.fetcher(leader).map(|f| {
                    f.send(FetcherCommand::Add {
                        partition: partition.clone(),
                        generation,
                    })
                });
            }
            Transition::Unchanged => {}
        }
        Ok(())
    }

    /// Drops `tp` from every fetcher except `keep`'s.
    fn unfollow(&self, tp: &TopicPartition, keep: Option<BrokerId>) {
        for (source, fetcher) in lock(&self.fetchers).iter() {
            if Some(*source) != keep {
                let _ = fetcher.send(FetcherCommand::Remove(tp.clone()));
            }
        }
    }

    /// The fetcher for `source`, started on first use.
    fn fetcher(&self, source: BrokerId) -> Option<mpsc::UnboundedSender<FetcherCommand>> {
        if source == self.config.local {
            return None;
        }
        let mut fetchers = lock(&self.fetchers);
        let fetcher = fetchers.entry(source).or_insert_with(|| {
            fetcher::spawn(
                source,
                FetcherConfig {
                    local: self.config.local,
                    max_wait: self.config.fetch_max_wait,
                    partition_max_bytes: self.config.fetch_partition_max_bytes,
                    rpc_timeout: self.config.rpc_timeout,
                },
                self.connector.clone(),
                self.link.clone(),
                self.shutdown.child_token(),
            )
        });
        Some(fetcher.clone())
    }

    async fn remove(&self, tp: &TopicPartition, _topic_id: u64) {
        self.unfollow(tp, None);
        let removed = lock(&self.partitions).remove(tp);
        if let Some(partition) = removed {
            match partition.delete().await {
                Ok(()) => tracing::info!(partition = %tp, "replica removed and its log deleted"),
                Err(e) => {
                    tracing::error!(partition = %tp, error = %e, "cannot delete the replica's log")
                }
            }
        }
    }

    /// One cleaner pass over each of the replicas `which` picks that is
    /// compacted and needs one.
    async fn clean_logs(&self, which: impl Fn(&Partition) -> bool) {
        for partition in self.partitions().into_iter().filter(|p| which(p)) {
            if let Err(e) = partition.clean().await {
                tracing::warn!(partition = %partition.topic_partition(), error = %e, "log cleaning failed");
            }
        }
    }

    fn check_lagging(self: &Arc<Self>) {
        for partition in self.partitions() {
            if let Some(proposal) = partition.check_lagging() {
                self.propose_isr(partition, proposal);
            }
        }
    }

    /// A retention pass over the replicas `which` picks.
    async fn apply_retention(&self, which: impl Fn(&Partition) -> bool) {
        for partition in self.partitions().into_iter().filter(|p| which(p)) {
            if let Err(e) = partition.apply_retention().await {
                tracing::warn!(partition = %partition.topic_partition(), error = %e, "retention failed");
            }
        }
    }

    /// A new producer id, from this broker's block (a new block from the
    /// controller when it runs out).
    pub async fn next_producer_id(&self) -> Result<i64, ReplicaError> {
        let mut block = self.producer_ids.lock().await;
        if block.0 >= block.1 {
            let unavailable = |reason: String| ReplicaError::Unavailable {
                what: "the controller (producer id allocation)".into(),
                reason,
            };
            let epoch = self
                .link
                .borrow()
                .epoch
                .ok_or_else(|| unavailable("this broker is not registered yet".into()))?;
            let request = pb::AllocateProducerIdsRequest {
                broker_id: self.config.local.0,
                broker_epoch: epoch,
            };
            let reply = self
                .controller
                .call(|mut c| async move { c.allocate_producer_ids(request).await })
                .await
                .map_err(|s| unavailable(s.message().to_string()))?;
            *block = (reply.first, reply.first.saturating_add(reply.count));
        }
        let id = block.0;
        block.0 += 1;
        i64::try_from(id).map_err(|_| ReplicaError::Unavailable {
            what: "producer ids".into(),
            reason: "exhausted".into(),
        })
    }

    /// Sends an ISR change to the controller leader (in the background) and
    /// hands the answer back to the partition.
    pub fn propose_isr(self: &Arc<Self>, partition: Arc<Partition>, proposal: IsrProposal) {
        tracing::info!(partition = %proposal.partition, isr = ?proposal.change.new_isr, "proposing an ISR change");
        let controller = self.controller.clone();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let request = pb::AlterPartitionRequest {
                topic: proposal.partition.topic.clone(),
                partition: proposal.partition.partition,
                leader: proposal.leader.0,
                leader_epoch: proposal.leader_epoch.0,
                partition_epoch: proposal.partition_epoch,
                new_isr: proposal.change.new_isr.iter().map(|b| b.0).collect(),
                broker_epochs: proposal
                    .change
                    .broker_epochs
                    .iter()
                    .map(|(b, e)| (b.0, *e))
                    .collect(),
            };
            loop {
                let answer = controller
                    .call(|mut c| {
                        let request = request.clone();
                        async move { c.alter_partition(request).await }
                    })
                    .await;
                let status = match answer {
                    Ok(record) => {
                        partition.on_isr_answer(&proposal, Some(partition_from_wire(record)));
                        return;
                    }
                    Err(status) => status,
                };
                let code = pb::Error::decode(status.details())
                    .ok()
                    .and_then(|e| pb::ErrorCode::try_from(e.code).ok())
                    .filter(|c| *c != pb::ErrorCode::Unspecified);
                // Back off before anything else (a follower the controller
                // keeps refusing must not fill the Raft log).
                tokio::time::sleep(ISR_RETRY_BACKOFF).await;
                match code {
                    // The partition record moved on, maybe by this very change
                    // (its answer lost): the metadata update settles the ISR.
                    // Until then the maximal ISR (committed plus pending) holds
                    // the high watermark, as Kafka's AlterPartition does.
                    Some(pb::ErrorCode::InvalidUpdateVersion) => {
                        tracing::info!(partition = %proposal.partition, %status, "ISR change overtaken; waiting for the metadata");
                        return;
                    }
                    // A definite refusal at the version it was based on.
                    Some(c)
                        if !matches!(
                            c,
                            pb::ErrorCode::NotController
                                | pb::ErrorCode::RequestTimedOut
                                | pb::ErrorCode::BrokerNotAvailable
                        ) =>
                    {
                        tracing::info!(partition = %proposal.partition, %status, "ISR change refused");
                        partition.on_isr_answer(&proposal, None);
                        return;
                    }
                    // No answer: the change may have committed. Forgetting it
                    // would let the high watermark pass a replica the
                    // controller counts in the ISR (and may elect). Ask again.
                    _ => {
                        if shutdown.is_cancelled() || !partition.isr_change_still_pending(&proposal)
                        {
                            return;
                        }
                        tracing::info!(partition = %proposal.partition, %status, "ISR change unanswered; asking again");
                    }
                }
            }
        });
    }
}
