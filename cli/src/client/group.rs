//! [`GroupConsumer`]: a member of a consumer group. The coordinator decides
//! what it owns (server-side assignment); the member heartbeats, starts
//! reading partitions it is given (from the group's committed offset, else
//! the reset policy), and on losing one commits its position first, stops
//! reading it, and reports it released on the next heartbeat, which it sends
//! at once. Offsets are committed on an interval (auto-commit) or by
//! [`GroupConsumer::commit`].
//!
//! ```text
//! poll ─┬─ heartbeat due? ─> Heartbeat(owned) ─> assignment
//!       │     lost: commit, stop fetching, heartbeat again at once
//!       │     gained: FetchOffsets (else reset policy), start fetching
//!       │     UNKNOWN_MEMBER_ID / FENCED_MEMBER_EPOCH: drop everything, rejoin
//!       │     NOT_COORDINATOR / unavailable: find the coordinator again
//!       ├─ auto-commit due? ─> CommitOffsets(positions, epoch)
//!       └─ records of owned partitions from the fetch loops
//! ```

use super::consumer::{fetch_loop, StartAt};
use super::{rpc, Client, ClientError, ConsumerRecord};
use raftline_broker::group::{partitions_from_wire, partitions_to_wire};
pub use raftline_broker::TopicPartition;
use raftline_proto::pb::{self, ErrorCode};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How a member joins its group.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    /// The group.
    pub group: String,
    /// The topics it subscribes to.
    pub topics: Vec<String>,
    /// Its member id; `None` picks a random one.
    pub member_id: Option<String>,
    /// `group.instance.id`: a static member keeps its partitions across a
    /// restart within the session timeout.
    pub instance_id: Option<String>,
    /// `range`, `roundrobin` or `sticky` (the group's first member decides).
    pub assignor: Option<String>,
    /// Commit positions this often; `None` commits only when asked.
    pub auto_commit: Option<Duration>,
    /// Where a partition without a committed offset starts
    /// (`auto.offset.reset`): earliest or latest.
    pub reset: StartAt,
}

impl GroupConfig {
    /// Defaults: a random member id, the group's assignor, auto-commit
    /// every 5 s, and earliest for partitions without a committed offset.
    pub fn new(group: &str, topics: &[&str]) -> Self {
        GroupConfig {
            group: group.to_string(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            member_id: None,
            instance_id: None,
            assignor: None,
            auto_commit: Some(Duration::from_secs(5)),
            reset: StartAt::Earliest,
        }
    }
}

type Fetched = Result<Vec<ConsumerRecord>, ClientError>;

/// A member of a consumer group.
pub struct GroupConsumer {
    client: Client,
    config: GroupConfig,
    member_id: String,
    epoch: i32,
    coordinator: Option<String>,
    heartbeat_interval: Duration,
    next_heartbeat: Instant,
    next_commit: Option<Instant>,
    owned: BTreeSet<TopicPartition>,
    /// The next offset to hand out, per owned partition.
    positions: BTreeMap<TopicPartition, u64>,
    /// What this member last committed.
    committed: BTreeMap<TopicPartition, u64>,
    fetchers: BTreeMap<TopicPartition, JoinHandle<()>>,
    tx: mpsc::Sender<Fetched>,
    rx: mpsc::Receiver<Fetched>,
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        for task in self.fetchers.values() {
            task.abort();
        }
    }
}

/// Offset entries from the wire, by partition.
pub(super) fn offsets_from_wire(entries: Vec<pb::OffsetEntry>) -> BTreeMap<TopicPartition, u64> {
    entries
        .into_iter()
        .map(|o| {
            let tp = TopicPartition {
                topic: o.topic,
                partition: o.partition,
            };
            (tp, o.offset)
        })
        .collect()
}

fn code_of(error: &Option<pb::Error>) -> Option<ErrorCode> {
    error
        .as_ref()
        .map(|e| ErrorCode::try_from(e.code).unwrap_or(ErrorCode::Unspecified))
}

impl GroupConsumer {
    /// Joins `config.group`: returns once the coordinator has accepted the
    /// member (its partitions follow on later polls).
    pub async fn join(client: Client, config: GroupConfig) -> Result<GroupConsumer, ClientError> {
        if config.topics.is_empty() {
            return Err(ClientError::Invalid(
                "a group member needs at least one topic".into(),
            ));
        }
        let member_id = config.member_id.clone().unwrap_or_else(|| {
            format!(
                "{:016x}{:016x}",
                rand::random::<u64>(),
                rand::random::<u64>()
            )
        });
        let (tx, rx) = mpsc::channel(64);
        let now = Instant::now();
        let mut consumer = GroupConsumer {
            client,
            member_id,
            epoch: 0,
            coordinator: None,
            heartbeat_interval: Duration::from_secs(1),
            next_heartbeat: now,
            next_commit: config.auto_commit.map(|every| now + every),
            config,
            owned: BTreeSet::new(),
            positions: BTreeMap::new(),
            committed: BTreeMap::new(),
            fetchers: BTreeMap::new(),
            tx,
            rx,
        };
        let give_up = now + consumer.client.config().request_timeout;
        loop {
            if consumer.heartbeat().await? {
                break;
            }
            if Instant::now() >= give_up {
                return Err(ClientError::Transport(format!(
                    "group {:?}: no coordinator accepted the member in time",
                    consumer.config.group
                )));
            }
            tokio::time::sleep(consumer.client.config().retry_backoff).await;
        }
        Ok(consumer)
    }

    /// Its member id.
    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// Its member epoch (the generation it reconciled to).
    pub fn member_epoch(&self) -> i32 {
        self.epoch
    }

    /// What this member last committed, by partition (acknowledged).
    pub fn committed(&self) -> &BTreeMap<TopicPartition, u64> {
        &self.committed
    }

    /// The partitions it owns now.
    pub fn assignment(&self) -> &BTreeSet<TopicPartition> {
        &self.owned
    }

    /// The coordinator's address, found through any broker.
    async fn coordinator(&mut self) -> Result<String, ClientError> {
        if let Some(addr) = &self.coordinator {
            return Ok(addr.clone());
        }
        let addr = self.client.find_coordinator(&self.config.group).await?;
        self.coordinator = Some(addr.clone());
        Ok(addr)
    }

    /// One heartbeat, and what its answer asks for; whether the coordinator
    /// accepted it. Errors that a new coordinator or a rejoin fix are
    /// handled here; the rest are returned.
    async fn heartbeat(&mut self) -> Result<bool, ClientError> {
        self.next_heartbeat = Instant::now() + self.heartbeat_interval;
        let addr = match self.coordinator().await {
            Ok(addr) => addr,
            Err(e) if e.retriable() => return Ok(false),
            Err(e) => return Err(e),
        };
        let request = pb::GroupHeartbeatRequest {
            group: self.config.group.clone(),
            member_id: self.member_id.clone(),
            instance_id: self.config.instance_id.clone(),
            member_epoch: self.epoch,
            topics: (self.epoch == 0).then(|| pb::TopicList {
                names: self.config.topics.clone(),
            }),
            owned: Some(pb::PartitionList {
                topics: partitions_to_wire(&self.owned),
            }),
            assignor: self.config.assignor.clone().unwrap_or_default(),
        };
        let mut groups = self.client.groups(&addr)?;
        let deadline = self.client.config().request_timeout;
        let reply = match rpc("group heartbeat", deadline, groups.heartbeat(request)).await {
            Ok(reply) => reply,
            Err(e) if e.retriable() => {
                self.coordinator = None;
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        match code_of(&reply.error) {
            None => {}
            Some(
                ErrorCode::NotCoordinator
                | ErrorCode::CoordinatorNotAvailable
                | ErrorCode::CoordinatorLoadInProgress
                | ErrorCode::RequestTimedOut,
            ) => {
                self.coordinator = None;
                return Ok(false);
            }
            Some(ErrorCode::UnknownMemberId | ErrorCode::FencedMemberEpoch) => {
                // Fenced: whatever it held may be someone else's now.
                tracing::info!(group = %self.config.group, member = %self.member_id, "fenced: rejoining");
                self.stop_all();
                self.epoch = 0;
                self.next_heartbeat = Instant::now();
                return Ok(false);
            }
            Some(_) => {
                return Err(reply
                    .error
                    .map(ClientError::from_wire)
                    .unwrap_or_else(|| ClientError::Transport("heartbeat failed".into())))
            }
        }
        self.epoch = reply.member_epoch;
        self.heartbeat_interval =
            Duration::from_millis(u64::from(reply.heartbeat_interval_ms.max(10)));
        self.next_heartbeat = Instant::now() + self.heartbeat_interval;
        let given = partitions_from_wire(&reply.assignment);
        self.take(given).await?;
        Ok(true)
    }

    /// Moves to owning `given`: commits and stops what it loses, starts what
    /// it gains.
    async fn take(&mut self, given: BTreeSet<TopicPartition>) -> Result<(), ClientError> {
        let lost: BTreeSet<TopicPartition> = self.owned.difference(&given).cloned().collect();
        if !lost.is_empty() {
            if self.config.auto_commit.is_some() {
                // Best effort: the new owner starts from the last commit.
                let _ = self.commit_some(&lost).await;
            }
            for tp in &lost {
                if let Some(task) = self.fetchers.remove(tp) {
                    task.abort();
                }
                self.positions.remove(tp);
                self.owned.remove(tp);
            }
            // Report the release now, so the new owner need not wait.
            self.next_heartbeat = Instant::now();
        }
        let gained: BTreeSet<TopicPartition> = given.difference(&self.owned).cloned().collect();
        if gained.is_empty() {
            return Ok(());
        }
        let committed = self.fetch_committed(&gained).await?;
        for tp in gained {
            let start = match committed.get(&tp) {
                Some(&offset) => offset,
                None => {
                    let at = if self.config.reset == StartAt::Latest {
                        -1
                    } else {
                        -2
                    };
                    self.client
                        .list_offset(&tp.topic, tp.partition, at)
                        .await?
                        .unwrap_or(0)
                }
            };
            let task = tokio::spawn(fetch_loop(
                self.client.clone(),
                tp.topic.clone(),
                tp.partition,
                start,
                self.tx.clone(),
            ));
            self.fetchers.insert(tp.clone(), task);
            self.positions.insert(tp.clone(), start);
            self.owned.insert(tp);
        }
        Ok(())
    }

    fn stop_all(&mut self) {
        for (_, task) in std::mem::take(&mut self.fetchers) {
            task.abort();
        }
        self.positions.clear();
        self.owned.clear();
    }

    /// The group's committed offsets of `partitions`.
    async fn fetch_committed(
        &mut self,
        partitions: &BTreeSet<TopicPartition>,
    ) -> Result<BTreeMap<TopicPartition, u64>, ClientError> {
        let addr = self.coordinator().await?;
        let request = pb::FetchOffsetsRequest {
            group: self.config.group.clone(),
            partitions: partitions_to_wire(partitions),
        };
        let mut groups = self.client.groups(&addr)?;
        let deadline = self.client.config().request_timeout;
        let reply = rpc("fetch offsets", deadline, groups.fetch_offsets(request)).await?;
        if let Some(e) = reply.error {
            self.coordinator = None;
            return Err(ClientError::from_wire(e));
        }
        Ok(offsets_from_wire(reply.offsets))
    }

    /// Marks `record` and what followed it in its partition as not consumed,
    /// so the next commit stores its offset (a caller that stops in the
    /// middle of a poll's records). Records already handed out are not
    /// handed out again by this member.
    pub fn unconsume(&mut self, record: &ConsumerRecord) {
        if let Some(next) = self.positions.get_mut(&record.topic_partition()) {
            *next = (*next).min(record.offset);
        }
    }

    /// Commits the position of every owned partition that moved since the
    /// last commit.
    pub async fn commit(&mut self) -> Result<(), ClientError> {
        let owned = self.owned.clone();
        self.commit_some(&owned).await
    }

    async fn commit_some(
        &mut self,
        partitions: &BTreeSet<TopicPartition>,
    ) -> Result<(), ClientError> {
        let offsets: Vec<pb::OffsetEntry> = partitions
            .iter()
            .filter_map(|tp| {
                let position = *self.positions.get(tp)?;
                (self.committed.get(tp) != Some(&position)).then(|| pb::OffsetEntry {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    offset: position,
                    metadata: String::new(),
                })
            })
            .collect();
        if offsets.is_empty() {
            return Ok(());
        }
        let addr = self.coordinator().await?;
        let request = pb::CommitOffsetsRequest {
            group: self.config.group.clone(),
            member_id: self.member_id.clone(),
            member_epoch: self.epoch,
            offsets: offsets.clone(),
        };
        let mut groups = self.client.groups(&addr)?;
        let deadline = self.client.config().request_timeout;
        let reply = rpc("commit offsets", deadline, groups.commit_offsets(request)).await?;
        if let Some(e) = reply.error {
            if code_of(&Some(e.clone())) == Some(ErrorCode::NotCoordinator) {
                self.coordinator = None;
            }
            return Err(ClientError::from_wire(e));
        }
        self.committed.extend(offsets_from_wire(offsets));
        Ok(())
    }

    /// The next records of its partitions, waiting up to `max_wait`;
    /// heartbeats and auto-commits on the way.
    pub async fn poll(&mut self, max_wait: Duration) -> Result<Vec<ConsumerRecord>, ClientError> {
        let deadline = Instant::now() + max_wait;
        loop {
            let now = Instant::now();
            if now >= self.next_heartbeat {
                self.heartbeat().await?;
            }
            if let (Some(at), Some(every)) = (self.next_commit, self.config.auto_commit) {
                if now >= at {
                    self.next_commit = Some(now + every);
                    if let Err(e) = self.commit().await {
                        tracing::debug!(group = %self.config.group, error = %e, "auto-commit failed; the next one tries again");
                    }
                }
            }
            let mut wake = deadline.min(self.next_heartbeat);
            if let Some(at) = self.next_commit {
                wake = wake.min(at);
            }
            match tokio::time::timeout_at(wake, self.rx.recv()).await {
                Ok(Some(Ok(records))) => {
                    let fresh: Vec<ConsumerRecord> = records
                        .into_iter()
                        .filter(|r| {
                            self.positions
                                .get(&r.topic_partition())
                                .is_some_and(|&next| r.offset >= next)
                        })
                        .collect();
                    for r in &fresh {
                        self.positions.insert(r.topic_partition(), r.offset + 1);
                    }
                    if !fresh.is_empty() {
                        return Ok(fresh);
                    }
                }
                Ok(Some(Err(e))) if e.retriable() => {}
                Ok(Some(Err(e))) => return Err(e),
                Ok(None) => return Err(ClientError::Transport("the fetch channel closed".into())),
                Err(_) if Instant::now() >= deadline => return Ok(Vec::new()),
                Err(_) => {}
            }
        }
    }

    /// Leaves the group: commits (with auto-commit on), then tells the
    /// coordinator (a static member only steps away: its partitions wait for
    /// it for the session timeout).
    pub async fn close(mut self) -> Result<(), ClientError> {
        if self.config.auto_commit.is_some() {
            let _ = self.commit().await;
        }
        self.stop_all();
        let addr = self.coordinator().await?;
        let request = pb::GroupHeartbeatRequest {
            group: self.config.group.clone(),
            member_id: self.member_id.clone(),
            instance_id: self.config.instance_id.clone(),
            member_epoch: if self.config.instance_id.is_some() {
                -2
            } else {
                -1
            },
            ..Default::default()
        };
        let mut groups = self.client.groups(&addr)?;
        let deadline = self.client.config().request_timeout;
        let reply = rpc("leave group", deadline, groups.heartbeat(request)).await?;
        match reply.error {
            None => Ok(()),
            Some(e) => Err(ClientError::from_wire(e)),
        }
    }
}
