//! The coordinator's side of Kafka's classic group protocol: the pure
//! [`ClassicGroup`](super::super::classic::ClassicGroup) of each group,
//! driven inside the same shards as Raftline's own groups (so committed
//! offsets are one store), with the waits the protocol needs: a JoinGroup
//! answers when the join phase ends, a follower's SyncGroup when the leader
//! has assigned.

use super::{CoordinatorError, GroupCoordinator};
use crate::group::classic::{unknown, Join, Joined};
use crate::group::state::GroupError;
use crate::position::TopicPartition;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

/// Beyond a member's own timeouts, how long a JoinGroup or SyncGroup waits
/// before answering REBALANCE_IN_PROGRESS (the member retries).
const WAIT_MARGIN: Duration = Duration::from_secs(5);

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn wait_limit(timeout_ms: i64) -> Instant {
    Instant::now() + Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0)) + WAIT_MARGIN
}

impl GroupCoordinator {
    pub(super) fn initial_delay_ms(&self) -> i64 {
        ms(self.config.initial_rebalance_delay)
    }

    fn new_member_id(&self, client_id: &str) -> String {
        let n = self.member_ids.fetch_add(1, Ordering::Relaxed);
        let prefix = if client_id.is_empty() {
            "member"
        } else {
            client_id
        };
        format!(
            "{prefix}-{}-{}-{n}",
            self.metadata().local(),
            self.clock.now_ms()
        )
    }

    /// Waits for the next change of the shard holding `group`, at most until
    /// `limit`; false if the limit passed or the shard went away.
    async fn changed(changes: &mut tokio::sync::watch::Receiver<u64>, limit: Instant) -> bool {
        matches!(
            tokio::time::timeout_at(limit, changes.changed()).await,
            Ok(Ok(()))
        )
    }

    /// A JoinGroup: the member joins (a new one without `require_known_member_id`
    /// gets its id at once), then the answer waits for the join phase to end.
    pub async fn join_group(&self, group: &str, join: Join) -> Result<Joined, CoordinatorError> {
        let shard = self.shard_for(group)?;
        let mut changes = shard.changed.subscribe();
        let delay = self.initial_delay_ms();
        let (id, before) = self
            .mutate(group, true, |g, _, now| {
                let classic = g.classic_mut()?;
                let before = classic.generation();
                match classic.join(group, &join, now, delay, || {
                    self.new_member_id(&join.client_id)
                }) {
                    Ok(id) => Ok((Ok((id, before)), false)),
                    // The id handed out is kept (pending): a change to keep.
                    Err(e @ GroupError::MemberIdRequired { .. }) => Ok((Err(e), false)),
                    Err(e) => Err(e.into()),
                }
            })
            .await??;
        let limit = wait_limit(join.rebalance_ms.max(join.session_ms));
        loop {
            let answer = self
                .read(group, |g| match g {
                    Some(g) => g.classic().joined(group, &id, before),
                    None => Err(unknown(group, &id)),
                })
                .await?;
            if let Some(joined) = answer? {
                return Ok(joined);
            }
            if !Self::changed(&mut changes, limit).await {
                // Answer once more from the latest state, then give up.
                let last = self
                    .read(group, |g| g.map(|g| g.classic().joined(group, &id, before)))
                    .await?;
                return match last {
                    Some(Ok(Some(joined))) => Ok(joined),
                    _ => Err(GroupError::RebalanceInProgress {
                        group: group.to_string(),
                    }
                    .into()),
                };
            }
        }
    }

    /// A SyncGroup: the leader's assignments are taken; every member's answer
    /// is its own assignment, once the leader has synced.
    pub async fn sync_group(
        &self,
        group: &str,
        member_id: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> Result<Bytes, CoordinatorError> {
        let shard = self.shard_for(group)?;
        let mut changes = shard.changed.subscribe();
        let (answer, rebalance_ms) = self
            .mutate(group, false, |g, _, now| {
                let classic = g.classic_mut()?;
                let answer = classic.sync(group, member_id, generation, &assignments, now)?;
                let rebalance_ms = classic
                    .members()
                    .get(member_id)
                    .map_or(0, |m| m.rebalance_ms);
                Ok(((answer, rebalance_ms), false))
            })
            .await?;
        if let Some(assignment) = answer {
            return Ok(assignment);
        }
        let limit = wait_limit(rebalance_ms);
        loop {
            if !Self::changed(&mut changes, limit).await {
                return Err(GroupError::RebalanceInProgress {
                    group: group.to_string(),
                }
                .into());
            }
            let answer = self
                .read(group, |g| match g {
                    Some(g) => g.classic().assignment(group, member_id, generation),
                    None => Err(unknown(group, member_id)),
                })
                .await?;
            if let Some(assignment) = answer? {
                return Ok(assignment);
            }
        }
    }

    /// A classic Heartbeat.
    pub async fn heartbeat_classic(
        &self,
        group: &str,
        member_id: &str,
        generation: i32,
    ) -> Result<(), CoordinatorError> {
        self.mutate(group, false, |g, _, now| {
            g.classic_mut()?
                .heartbeat(group, member_id, generation, now)?;
            Ok(((), false))
        })
        .await
    }

    /// A LeaveGroup: each member's result.
    pub async fn leave_group(
        &self,
        group: &str,
        members: &[String],
    ) -> Result<Vec<Result<(), GroupError>>, CoordinatorError> {
        let delay = self.initial_delay_ms();
        self.mutate(group, false, |g, _, now| {
            let results = g.classic_mut()?.leave(group, members, now, delay);
            Ok((results, false))
        })
        .await
    }

    /// A classic OffsetCommit: from a member of the current generation of a
    /// stable group, or with no member id and generation -1 while the group
    /// has no members (a consumer that assigns partitions itself).
    pub async fn commit_classic(
        &self,
        group: &str,
        member_id: &str,
        generation: i32,
        offsets: &BTreeMap<TopicPartition, (u64, String)>,
    ) -> Result<(), CoordinatorError> {
        let metadata = self.metadata();
        if let Some(tp) = offsets.keys().find(|tp| {
            metadata
                .topic(&tp.topic)
                .is_none_or(|t| !t.partitions.contains_key(&tp.partition))
        }) {
            return Err(CoordinatorError::UnknownTopic {
                topic: tp.topic.clone(),
            });
        }
        self.mutate(group, true, |g, _, now| {
            g.classic_mut()?
                .check_commit(group, member_id, generation, now)?;
            g.commit_classic(offsets, now);
            Ok(((), false))
        })
        .await
    }
}
