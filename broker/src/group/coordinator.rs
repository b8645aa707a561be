//! The group coordinator: this broker's share of the consumer groups.
//!
//! Group G lives in partition `partition_for(G)` of the internal topic
//! `__consumer_offsets` (created on the first FindCoordinator, replicated like
//! any topic), and the leader of that partition coordinates it. Each
//! partition this broker leads is a *shard*: loaded from the log when first
//! used under a leadership (a role generation of the replica), dropped when
//! that leadership ends. Every change is applied to a copy of the group; what
//! must be stored (a new epoch, committed offsets, a deletion) is appended
//! acks=all within the same leadership before the copy replaces the group and
//! the caller is answered. A failed or uncertain write drops the shard, so the
//! next request reloads it from the log: memory never runs ahead of the log.
//!
//! ```text
//! request(G) ─> partition_for(G) leader here? (else NOT_COORDINATOR naming it)
//!            ─> shard loaded at this generation? (else load: read to the HW)
//!            ─> copy = group.clone(); op(copy) ─> records_since(group)
//!            ─> append acks=all in the generation ─> group = copy ─> answer
//! tick ─> expire silent members (a write, as above); drop shards of lost leaderships
//! ```

use super::codec;
use super::state::{replay_into, Group, GroupError, GroupRecord, GroupTimeouts};
use crate::clock::Clock;
use crate::controller_link::ClusterAdmin;
use crate::metadata::{BrokerId, MetadataCache};
use crate::position::{Offset, TopicPartition};
use crate::records::{batches_end, decode_batches, encode_batch};
use crate::replica::{Acks, Partition, ReplicaError, ReplicaManager};
use raftline_proto::pb::{self, ErrorCode};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

/// How long a lookup of another broker's offsets may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// The internal topic holding groups and their committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The partition of `__consumer_offsets` (of `partitions`) holding `group`:
/// Kafka's choice (`Utils.abs(groupId.hashCode) % partitions`, Java's
/// `String.hashCode`, with `i32::MIN` taken as 0), so a group lands where a
/// Kafka cluster with as many partitions would put it.
pub fn partition_for(group: &str, partitions: u32) -> u32 {
    let hash = group.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    hash.checked_abs().unwrap_or(0).unsigned_abs() % partitions.max(1)
}

/// The coordinator's settings.
#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    /// Partitions of `__consumer_offsets` when it is created
    /// (`offsets.topic.num.partitions`).
    pub offsets_partitions: u32,
    /// Its replication factor; it is not created while fewer brokers are live
    /// (`offsets.topic.replication.factor`).
    pub offsets_replication: u32,
    /// Its `segment.bytes` (`offsets.topic.segment.bytes`): the cleaner
    /// compacts only sealed segments, so smaller ones compact sooner.
    pub offsets_segment_bytes: u32,
    /// Groups' session, heartbeat and rebalance timeouts.
    pub timeouts: GroupTimeouts,
    /// How long a write of group state may wait for the in-sync replicas.
    pub write_timeout: Duration,
    /// Between checks for expired members.
    pub expire_interval: Duration,
    /// How long a classic group that was empty waits for more members before
    /// its first join completes (`group.initial.rebalance.delay.ms`).
    pub initial_rebalance_delay: Duration,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            offsets_partitions: 16,
            offsets_replication: 3,
            offsets_segment_bytes: 100 << 20,
            timeouts: GroupTimeouts::default(),
            write_timeout: Duration::from_secs(5),
            expire_interval: Duration::from_millis(250),
            initial_rebalance_delay: Duration::from_secs(3),
        }
    }
}

/// Why the coordinator refused a request; the group did not change.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum CoordinatorError {
    /// Another broker coordinates the group.
    #[error("this broker does not coordinate group {group:?}; {}", match (coordinator, address) {
        (Some(b), Some(a)) => format!("broker {b} at {a} does"),
        (Some(b), None) => format!("broker {b} does"),
        _ => "its partition has no leader right now".to_string(),
    })]
    NotCoordinator {
        /// The group.
        group: String,
        /// Who coordinates it, if known.
        coordinator: Option<BrokerId>,
        /// That broker's client address, if known.
        address: Option<String>,
    },
    /// The group's coordinator cannot work right now; retry.
    #[error("the coordinator of group {group:?} is not available: {reason}; retry")]
    NotAvailable {
        /// The group.
        group: String,
        /// Why.
        reason: String,
    },
    /// The coordinator is still reading the group's partition.
    #[error("the coordinator is loading group {group:?}; retry shortly")]
    LoadInProgress {
        /// The group.
        group: String,
    },
    /// The group id is not acceptable.
    #[error("invalid group id {group:?}: {reason}")]
    InvalidGroupId {
        /// The id.
        group: String,
        /// Why.
        reason: String,
    },
    /// No such group.
    #[error("group {group:?} does not exist")]
    GroupIdNotFound {
        /// The group.
        group: String,
    },
    /// A topic named in the request does not exist.
    #[error("topic {topic:?} does not exist")]
    UnknownTopic {
        /// The topic.
        topic: String,
    },
    /// The group refused the request.
    #[error(transparent)]
    Group(#[from] GroupError),
}

/// Where `reset_offsets` moves a topic's partitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetTarget {
    /// The log start.
    Earliest,
    /// The log end (high watermark).
    Latest,
    /// This offset, kept within the log.
    Offset(u64),
    /// The first record at or after this time (ms); the log end if none.
    Timestamp(i64),
    /// The committed offset (the log start if none) moved by this much,
    /// kept within the log.
    Shift(i64),
}

/// A partition's committed offset against its log end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionLag {
    /// The partition.
    pub partition: TopicPartition,
    /// What the group committed, if anything.
    pub committed: Option<u64>,
    /// Its high watermark, if its leader answered.
    pub log_end: Option<u64>,
    /// Who owns it in the group.
    pub member: Option<String>,
}

impl PartitionLag {
    /// The records between the committed offset (0 if none) and the log end.
    pub fn lag(&self) -> Option<u64> {
        self.log_end
            .map(|end| end.saturating_sub(self.committed.unwrap_or(0)))
    }
}

/// One `__consumer_offsets` partition this broker leads, under one leadership.
struct Shard {
    index: u32,
    partition: Arc<Partition>,
    generation: u64,
    /// `None` until loaded, and again after a failed write.
    groups: tokio::sync::Mutex<Option<BTreeMap<String, Group>>>,
    /// Bumped after every change of its groups: classic JoinGroup and
    /// SyncGroup calls wait on it.
    changed: tokio::sync::watch::Sender<u64>,
}

/// This broker's group coordinator.
pub struct GroupCoordinator {
    manager: Arc<ReplicaManager>,
    topics: Arc<dyn ClusterAdmin>,
    clock: Arc<dyn Clock>,
    config: CoordinatorConfig,
    shards: Mutex<BTreeMap<u32, Arc<Shard>>>,
    /// Makes classic member ids unique (with the broker id and the time).
    member_ids: std::sync::atomic::AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A group id is 1 to 249 characters (Kafka's bound for names).
fn check_group_id(group: &str) -> Result<(), CoordinatorError> {
    let reason = if group.is_empty() {
        "it is empty"
    } else if group.chars().count() > 249 {
        "it is longer than 249 characters"
    } else {
        return Ok(());
    };
    Err(CoordinatorError::InvalidGroupId {
        group: group.to_string(),
        reason: reason.to_string(),
    })
}

impl GroupCoordinator {
    /// A coordinator over `manager`'s replicas; `topics` creates
    /// `__consumer_offsets` when first needed.
    pub fn new(
        manager: Arc<ReplicaManager>,
        topics: Arc<dyn ClusterAdmin>,
        clock: Arc<dyn Clock>,
        config: CoordinatorConfig,
    ) -> Arc<Self> {
        Arc::new(GroupCoordinator {
            manager,
            topics,
            clock,
            config,
            shards: Mutex::new(BTreeMap::new()),
            member_ids: std::sync::atomic::AtomicU64::new(0),
        })
    }

    fn metadata(&self) -> Arc<MetadataCache> {
        self.manager.link().metadata
    }

    /// Partition counts of every topic but the internal one.
    fn partition_counts(metadata: &MetadataCache) -> BTreeMap<String, u32> {
        metadata
            .topics()
            .iter()
            .filter(|(name, _)| name.as_str() != OFFSETS_TOPIC)
            .map(|(name, t)| {
                (
                    name.clone(),
                    u32::try_from(t.partitions.len()).unwrap_or(u32::MAX),
                )
            })
            .collect()
    }

    /// Who coordinates `group`: broker, its client address, and the partition.
    /// Creates `__consumer_offsets` if it does not exist yet (and answers
    /// "not available" meanwhile).
    pub async fn find_coordinator(
        &self,
        group: &str,
    ) -> Result<(BrokerId, String, u32), CoordinatorError> {
        check_group_id(group)?;
        let metadata = self.metadata();
        let unavailable = |reason: String| CoordinatorError::NotAvailable {
            group: group.to_string(),
            reason,
        };
        let Some(topic) = metadata.topic(OFFSETS_TOPIC) else {
            self.create_offsets_topic(&metadata)
                .await
                .map_err(unavailable)?;
            return Err(unavailable(format!("{OFFSETS_TOPIC} is being created")));
        };
        let index = partition_for(group, u32::try_from(topic.partitions.len()).unwrap_or(1));
        let leader = topic
            .partitions
            .get(&index)
            .and_then(|p| p.leader)
            .ok_or_else(|| {
                unavailable(format!(
                    "partition {index} of {OFFSETS_TOPIC} has no leader"
                ))
            })?;
        let address = metadata
            .broker(leader)
            .and_then(|b| b.endpoints.get("client").cloned())
            .ok_or_else(|| unavailable(format!("broker {leader} has no client address")))?;
        Ok((leader, address, index))
    }

    /// Asks the controller for `__consumer_offsets`; one that exists already
    /// is fine.
    async fn create_offsets_topic(&self, metadata: &MetadataCache) -> Result<(), String> {
        // As Kafka does: never a less replicated offsets topic than asked
        // for just because brokers are still starting (or down).
        let live = u32::try_from(metadata.brokers().values().filter(|b| !b.fenced).count())
            .unwrap_or(u32::MAX);
        let replication = self.config.offsets_replication.max(1);
        if live < replication {
            return Err(format!(
                "it needs {replication} live brokers and {live} are live (a smaller cluster sets offsets_topic_replication_factor lower)"
            ));
        }
        // Compacted, as Kafka's: each group's latest epoch and each
        // partition's latest commit stay, older ones go.
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            (
                "segment.bytes".to_string(),
                self.config.offsets_segment_bytes.to_string(),
            ),
        ]);
        let create = self.topics.create_topic(
            OFFSETS_TOPIC.to_string(),
            self.config.offsets_partitions,
            replication,
            configs,
        );
        let created = match tokio::time::timeout(self.config.write_timeout, create).await {
            Ok(Err(e)) if e.code == ErrorCode::TopicAlreadyExists as i32 => Ok(Ok(0)),
            other => other,
        };
        match created {
            Ok(Ok(_)) => {
                tracing::info!(
                    partitions = self.config.offsets_partitions,
                    replication,
                    "{OFFSETS_TOPIC} created (or already there)"
                );
                Ok(())
            }
            Ok(Err(e)) => Err(format!("creating {OFFSETS_TOPIC}: {}", e.message)),
            Err(_) => Err(format!(
                "creating {OFFSETS_TOPIC}: the controller did not answer in time"
            )),
        }
    }

    /// The shard holding `group`, if this broker coordinates it.
    fn shard_for(&self, group: &str) -> Result<Arc<Shard>, CoordinatorError> {
        check_group_id(group)?;
        let metadata = self.metadata();
        let topic =
            metadata
                .topic(OFFSETS_TOPIC)
                .ok_or_else(|| CoordinatorError::NotAvailable {
                    group: group.to_string(),
                    reason: format!(
                        "{OFFSETS_TOPIC} does not exist yet (FindCoordinator creates it)"
                    ),
                })?;
        let index = partition_for(group, u32::try_from(topic.partitions.len()).unwrap_or(1));
        let leader = topic.partitions.get(&index).and_then(|p| p.leader);
        let not_coordinator = || CoordinatorError::NotCoordinator {
            group: group.to_string(),
            coordinator: leader,
            address: leader
                .and_then(|l| metadata.broker(l))
                .and_then(|b| b.endpoints.get("client").cloned()),
        };
        if leader != Some(metadata.local()) {
            return Err(not_coordinator());
        }
        // A broker that was paused or cut off may not know yet that another
        // took over: without a lease it answers nothing, not even reads
        // (a stale FetchOffsets would show committed offsets going back).
        if !self.manager.link().has_lease(tokio::time::Instant::now()) {
            return Err(CoordinatorError::NotAvailable {
                group: group.to_string(),
                reason: "this broker has not heard from the controller within its session; retry"
                    .into(),
            });
        }
        let tp = TopicPartition {
            topic: OFFSETS_TOPIC.to_string(),
            partition: index,
        };
        let partition =
            self.manager
                .partition(&tp)
                .ok_or_else(|| CoordinatorError::LoadInProgress {
                    group: group.to_string(),
                })?;
        let progress = partition.progress();
        if !progress.leader {
            return Err(CoordinatorError::LoadInProgress {
                group: group.to_string(),
            });
        }
        let mut shards = lock(&self.shards);
        let current = shards.get(&index).filter(|s| {
            s.generation == progress.generation && Arc::ptr_eq(&s.partition, &partition)
        });
        if let Some(shard) = current {
            return Ok(shard.clone());
        }
        let shard = Arc::new(Shard {
            index,
            partition,
            generation: progress.generation,
            groups: tokio::sync::Mutex::new(None),
            changed: tokio::sync::watch::channel(0).0,
        });
        shards.insert(index, shard.clone());
        Ok(shard)
    }

    /// Reads the shard's partition up to its high watermark into groups.
    async fn load(
        &self,
        shard: &Shard,
        group: &str,
    ) -> Result<BTreeMap<String, Group>, CoordinatorError> {
        let progress = shard.partition.progress();
        let mut groups: BTreeMap<String, Group> = BTreeMap::new();
        let mut offset = progress.log_start;
        loop {
            let read = shard
                .partition
                .fetch(offset, Some(progress.leader_epoch), 1 << 20)
                .await
                .map_err(|e| self.storage_error(group, e))?;
            let batches = read.records.into_bytes();
            let Some(next) = batches_end(&batches).map(Offset) else {
                break;
            };
            let records =
                decode_batches(batches, offset.0).map_err(|e| CoordinatorError::NotAvailable {
                    group: group.to_string(),
                    reason: format!("partition {} of {OFFSETS_TOPIC}: {e}", shard.index),
                })?;
            for record in &records {
                match codec::decode(record) {
                    Ok((id, group_record)) => {
                        tracing::trace!(
                            partition = shard.index,
                            offset = record.offset,
                            ?group_record,
                            "group record loaded"
                        );
                        replay_into(&mut groups, id, &group_record, self.config.timeouts)
                    }
                    Err(e) => {
                        tracing::warn!(partition = shard.index, error = %e, "skipping a record the coordinator cannot read")
                    }
                }
            }
            offset = next;
            if offset >= read.high_watermark {
                break;
            }
        }
        tracing::info!(broker = %self.metadata().local(), partition = shard.index, groups = groups.len(), up_to = %offset, "group coordinator loaded its partition");
        Ok(groups)
    }

    fn storage_error(&self, group: &str, e: ReplicaError) -> CoordinatorError {
        let group = group.to_string();
        match e {
            ReplicaError::NotLeader { .. } | ReplicaError::FencedLeaderEpoch { .. } => {
                CoordinatorError::NotCoordinator {
                    group,
                    coordinator: None,
                    address: None,
                }
            }
            ReplicaError::OffsetNotAvailable { .. } => CoordinatorError::LoadInProgress { group },
            other => CoordinatorError::NotAvailable {
                group,
                reason: other.to_string(),
            },
        }
    }

    /// Appends `records` of `group` in the shard's leadership, acks=all.
    async fn store(
        &self,
        shard: &Shard,
        group: &str,
        records: &[GroupRecord],
        now_ms: i64,
    ) -> Result<(), CoordinatorError> {
        if records.is_empty() {
            return Ok(());
        }
        let encoded: Vec<_> = records
            .iter()
            .map(|r| codec::encode(group, r, now_ms))
            .collect();
        let batch = encode_batch(&encoded, None).map_err(|e| CoordinatorError::NotAvailable {
            group: group.to_string(),
            reason: e.to_string(),
        })?;
        shard
            .partition
            .produce_in(
                batch,
                Acks::All,
                self.config.write_timeout,
                Some(shard.generation),
            )
            .await
            .map(|produced| {
                tracing::debug!(broker = %self.metadata().local(), partition = shard.index, generation = shard.generation, group, base_offset = %produced.base_offset, ?records, "group records stored");
            })
            .map_err(|e| self.storage_error(group, e))
    }

    /// Runs `op` on (a copy of) `group` and stores what changed; `create`
    /// makes a missing group, else it is GROUP_ID_NOT_FOUND. `op` returning
    /// `None` for the group deletes it.
    async fn mutate<T>(
        &self,
        group: &str,
        create: bool,
        op: impl FnOnce(&mut Group, &BTreeMap<String, u32>, i64) -> Result<(T, bool), CoordinatorError>,
    ) -> Result<T, CoordinatorError> {
        let shard = self.shard_for(group)?;
        let mut guard = shard.groups.lock().await;
        if guard.is_none() {
            *guard = Some(self.load(&shard, group).await?);
        }
        let Some(groups) = guard.as_mut() else {
            return Err(CoordinatorError::LoadInProgress {
                group: group.to_string(),
            });
        };
        let before = match groups.get(group) {
            Some(g) => g.clone(),
            None if create => Group::new(group, self.config.timeouts),
            None => {
                return Err(CoordinatorError::GroupIdNotFound {
                    group: group.to_string(),
                })
            }
        };
        let counts = Self::partition_counts(&self.metadata());
        let now = self.clock.now_ms();
        let mut after = before.clone();
        let (out, delete) = op(&mut after, &counts, now)?;
        let records = if delete {
            before.deletion_records()
        } else {
            after.records_since(&before)
        };
        if let Err(e) = self.store(&shard, group, &records, now).await {
            // The write may yet land: reload from the log next time.
            *guard = None;
            return Err(e);
        }
        if delete {
            groups.remove(group);
        } else {
            groups.insert(group.to_string(), after);
        }
        shard.changed.send_modify(|v| *v = v.wrapping_add(1));
        Ok(out)
    }

    /// Reads `group` (loading its shard if needed).
    async fn read<T>(
        &self,
        group: &str,
        read: impl FnOnce(Option<&Group>) -> T,
    ) -> Result<T, CoordinatorError> {
        let shard = self.shard_for(group)?;
        let mut guard = shard.groups.lock().await;
        if guard.is_none() {
            *guard = Some(self.load(&shard, group).await?);
        }
        Ok(read(guard.as_ref().and_then(|groups| groups.get(group))))
    }

    /// A member's heartbeat (join, renew, release, leave).
    pub async fn heartbeat(
        &self,
        group: &str,
        request: &super::Heartbeat,
    ) -> Result<super::HeartbeatReply, CoordinatorError> {
        self.mutate(group, true, |g, counts, now| {
            Ok((g.heartbeat(request, counts, now)?, false))
        })
        .await
    }

    /// Commits offsets for a member at `member_epoch` (or, in a group without
    /// members, for anyone with an empty member id).
    pub async fn commit(
        &self,
        group: &str,
        member_id: &str,
        member_epoch: i32,
        offsets: &BTreeMap<TopicPartition, (u64, String)>,
    ) -> Result<(), CoordinatorError> {
        self.mutate(group, true, |g, _, now| {
            Ok((g.commit(member_id, member_epoch, offsets, now)?, false))
        })
        .await
    }

    /// Committed offsets of `group` (all, or those of `partitions`); none
    /// for an unknown group.
    pub async fn fetch_offsets(
        &self,
        group: &str,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<BTreeMap<TopicPartition, super::CommittedOffset>, CoordinatorError> {
        self.read(group, |g| {
            let Some(g) = g else {
                return BTreeMap::new();
            };
            g.offsets()
                .iter()
                .filter(|(tp, _)| partitions.is_none_or(|wanted| wanted.contains(tp)))
                .map(|(tp, c)| (tp.clone(), c.clone()))
                .collect()
        })
        .await
        .inspect(|offsets| {
            tracing::trace!(broker = %self.metadata().local(), group, offsets = ?offsets.iter().map(|(tp, c)| (tp.partition, c.offset)).collect::<Vec<_>>(), "offsets fetched");
        })
    }

    /// A copy of `group` for describing it.
    pub async fn describe(&self, group: &str) -> Result<Group, CoordinatorError> {
        self.read(group, |g| g.cloned())
            .await?
            .ok_or_else(|| CoordinatorError::GroupIdNotFound {
                group: group.to_string(),
            })
    }

    /// ListOffsets for `tp` at its leader (this broker's replica if it
    /// leads): -2 the log start, -1 the high watermark, else the first
    /// record at or after a time (`None` past the last).
    pub async fn list_offset(
        &self,
        tp: &TopicPartition,
        timestamp: i64,
    ) -> Result<Option<u64>, String> {
        if let Some(local) = self.manager.partition(tp).filter(|p| p.progress().leader) {
            return local
                .list_offset(timestamp)
                .await
                .map(|(offset, _, _)| offset.map(|o| o.0))
                .map_err(|e| e.to_string());
        }
        let metadata = self.metadata();
        let leader = metadata
            .topic(&tp.topic)
            .and_then(|t| t.partitions.get(&tp.partition))
            .and_then(|p| p.leader)
            .ok_or_else(|| format!("{}/{} has no leader", tp.topic, tp.partition))?;
        let addr = metadata
            .broker(leader)
            .and_then(|b| b.endpoints.get("client").cloned())
            .ok_or_else(|| format!("broker {leader} has no client address"))?;
        let channel = self
            .manager
            .connector()
            .channel(&addr)
            .map_err(|e| format!("broker {leader} at {addr}: {e}"))?;
        let request = pb::ListOffsetsRequest {
            partitions: vec![pb::ListOffsetsPartition {
                topic: tp.topic.clone(),
                partition: tp.partition,
                timestamp,
            }],
        };
        let mut broker = pb::broker_client::BrokerClient::new(channel);
        let call = broker.list_offsets(request);
        let reply = tokio::time::timeout(LOOKUP_TIMEOUT, call)
            .await
            .map_err(|_| format!("broker {leader} did not answer in time"))?
            .map_err(|s| format!("broker {leader}: {}", s.message()))?
            .into_inner();
        let result = reply
            .partitions
            .into_iter()
            .next()
            .ok_or_else(|| format!("broker {leader}: an empty answer"))?;
        match result.error {
            Some(e) => Err(format!("broker {leader}: {}", e.message)),
            None => Ok(result.offset),
        }
    }

    /// Every partition of the topics `group` reads or has offsets in, with
    /// its committed offset, log end and owner.
    pub async fn lag(&self, group: &Group) -> Vec<PartitionLag> {
        let mut topics: BTreeSet<&String> =
            group.members().values().flat_map(|m| &m.topics).collect();
        topics.extend(group.offsets().keys().map(|tp| &tp.topic));
        let metadata = self.metadata();
        let mut out = Vec::new();
        for topic in topics {
            let Some(info) = metadata.topic(topic) else {
                continue;
            };
            for &partition in info.partitions.keys() {
                let tp = TopicPartition {
                    topic: topic.clone(),
                    partition,
                };
                let log_end = self.list_offset(&tp, -1).await.ok().flatten();
                let member = group
                    .members()
                    .values()
                    .find(|m| m.assigned.contains(&tp) || m.revoking.contains(&tp))
                    .map(|m| m.id.clone());
                out.push(PartitionLag {
                    committed: group.offsets().get(&tp).map(|c| c.offset),
                    partition: tp,
                    log_end,
                    member,
                });
            }
        }
        out
    }

    /// Moves `group`'s committed offsets of every partition of `topic` to
    /// `target` (a group without members); `dry_run` only computes. Returns
    /// each partition's committed offset before and the new one.
    pub async fn reset_offsets_to(
        &self,
        group: &str,
        topic: &str,
        target: OffsetTarget,
        dry_run: bool,
    ) -> Result<Vec<(TopicPartition, Option<u64>, u64)>, CoordinatorError> {
        let partitions: Vec<u32> = self
            .metadata()
            .topic(topic)
            .map(|t| t.partitions.keys().copied().collect())
            .ok_or_else(|| CoordinatorError::UnknownTopic {
                topic: topic.to_string(),
            })?;
        let committed = self.fetch_offsets(group, None).await?;
        let unavailable = |reason: String| CoordinatorError::NotAvailable {
            group: group.to_string(),
            reason,
        };
        let mut plan = Vec::new();
        for partition in partitions {
            let tp = TopicPartition {
                topic: topic.to_string(),
                partition,
            };
            let start = self
                .list_offset(&tp, -2)
                .await
                .map_err(unavailable)?
                .unwrap_or(0);
            let end = self
                .list_offset(&tp, -1)
                .await
                .map_err(unavailable)?
                .unwrap_or(start);
            let current = committed.get(&tp).map(|c| c.offset);
            let within = |o: i128| {
                u64::try_from(o.clamp(i128::from(start), i128::from(end))).unwrap_or(start)
            };
            let new = match target {
                OffsetTarget::Earliest => start,
                OffsetTarget::Latest => end,
                OffsetTarget::Offset(o) => within(i128::from(o)),
                OffsetTarget::Timestamp(ms) => self
                    .list_offset(&tp, ms.max(0))
                    .await
                    .map_err(unavailable)?
                    .unwrap_or(end),
                OffsetTarget::Shift(by) => {
                    within(i128::from(current.unwrap_or(start)) + i128::from(by))
                }
            };
            plan.push((tp, current, new));
        }
        if !dry_run {
            let offsets: BTreeMap<TopicPartition, u64> =
                plan.iter().map(|(tp, _, new)| (tp.clone(), *new)).collect();
            self.reset_offsets(group, &offsets).await?;
        }
        Ok(plan)
    }

    /// Deletes a group without members, with its offsets.
    pub async fn delete(&self, group: &str) -> Result<(), CoordinatorError> {
        self.mutate(group, false, |g, _, _| {
            g.check_empty()?;
            Ok(((), true))
        })
        .await
    }

    /// Sets committed offsets of a group without members.
    pub async fn reset_offsets(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, u64>,
    ) -> Result<(), CoordinatorError> {
        self.mutate(group, true, |g, _, now| {
            Ok((g.reset_offsets(offsets, now)?, false))
        })
        .await
    }

    /// Copies of the groups of every loaded shard, by id.
    pub async fn groups(&self) -> Vec<Group> {
        let shards: Vec<Arc<Shard>> = lock(&self.shards).values().cloned().collect();
        let mut out = Vec::new();
        for shard in shards {
            if let Some(groups) = shard.groups.lock().await.as_ref() {
                out.extend(groups.values().cloned());
            }
        }
        out.sort_by(|a, b| a.id().cmp(b.id()));
        out
    }

    /// The groups of every loaded shard: id, state name, member count (of
    /// either protocol).
    pub async fn list(&self) -> Vec<(String, &'static str, usize)> {
        self.groups()
            .await
            .into_iter()
            .map(|g| {
                let members = g.members().len() + g.classic().members().len();
                (g.id().to_string(), g.state().name(), members)
            })
            .collect()
    }

    /// Expires silent members on every loaded shard and forgets shards whose
    /// leadership ended, every `expire_interval` until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.config.expire_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => self.expire_once().await,
            }
        }
    }

    /// One pass of [`run`](Self::run).
    pub async fn expire_once(&self) {
        let delay = self.initial_delay_ms();
        let shards: Vec<Arc<Shard>> = {
            let mut shards = lock(&self.shards);
            shards.retain(|_, s| {
                let p = s.partition.progress();
                p.leader && p.generation == s.generation
            });
            shards.values().cloned().collect()
        };
        for shard in shards {
            let ids: Vec<String> = match shard.groups.lock().await.as_ref() {
                Some(groups) => groups
                    .values()
                    .filter(|g| !g.members().is_empty() || g.classic().is_active())
                    .map(|g| g.id().to_string())
                    .collect(),
                None => continue,
            };
            for id in ids {
                let expired = self
                    .mutate(&id, false, |g, counts, now| {
                        let mut gone = g.expire(counts, now);
                        gone.extend(g.tick_classic(now, delay));
                        Ok((gone, false))
                    })
                    .await;
                match expired {
                    Ok(gone) if !gone.is_empty() => {
                        tracing::info!(group = %id, members = ?gone, "members removed: session or rebalance timeout")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(group = %id, error = %e, "expiry pass skipped the group")
                    }
                }
            }
        }
    }
}

#[path = "classic_ops.rs"]
mod classic_ops;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_land_where_kafka_puts_them() {
        // Java: "billing".hashCode() is -109829509; Utils.abs, then % 50.
        assert_eq!(partition_for("billing", 50), 9);
        assert_eq!(partition_for("orders-service", 50), 17);
        assert_eq!(partition_for("g1", 50), 42);
        assert_eq!(partition_for("", 16), 0);
        let all: Vec<u32> = (0..100)
            .map(|i| partition_for(&format!("g{i}"), 7))
            .collect();
        assert!(all.iter().all(|&p| p < 7));
        assert!(all.iter().collect::<std::collections::BTreeSet<_>>().len() > 3);
        assert_eq!(partition_for("x", 0), 0, "no partitions: 0, not a panic");
    }

    #[test]
    fn group_ids_are_one_to_249_characters() {
        assert!(check_group_id("billing").is_ok());
        assert!(check_group_id(&"g".repeat(249)).is_ok());
        for bad in [String::new(), "g".repeat(250)] {
            assert!(matches!(
                check_group_id(&bad),
                Err(CoordinatorError::InvalidGroupId { .. })
            ));
        }
    }
}
