//! One consumer group's state on its coordinator, as a pure state machine
//! (Kafka's newer group protocol, KIP-848): members heartbeat with their
//! member epoch and what they own; the coordinator computes the target
//! assignment with the group's assignor whenever membership or subscriptions
//! change (bumping the group epoch, the generation), and reconciles each
//! member towards it cooperatively: a member first gives up what it must
//! lose, and only then does its epoch advance; a partition goes to its new
//! owner only once the old one has released it. Nobody ever stops consuming
//! what it keeps.
//!
//! ```text
//! heartbeat(epoch 0: join | n: renew | -1: leave | -2: static leave)
//!   ─> membership or subscriptions changed? group epoch + 1, target = assignor(members)
//!   ─> reconcile: revoking? wait for the member to report them released
//!                 else assigned - target: revoke those (assignment shrinks)
//!                 else epoch = group epoch; take target partitions nobody holds
//! expire(now): members silent past their session, or stuck revoking past
//!              the rebalance timeout, leave (group epoch + 1)
//! commit(member, epoch): only from a member at its current epoch
//! a subscribed topic created, grown or deleted: seen at the next heartbeat,
//!              which bumps the group epoch
//! ```
//!
//! Time comes in as `now_ms`; nothing here reads a clock or does I/O. The
//! coordinator runtime persists what changed in `__consumer_offsets` before
//! it answers.

use super::assignor::{Assignment, Assignor, MemberSpec};
use super::classic::{ClassicGroup, ClassicState};
use crate::position::TopicPartition;
use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

/// Member epochs a heartbeat may carry besides a member's current one.
pub mod epoch {
    /// Joining (or rejoining after being fenced): owns nothing.
    pub const JOIN: i32 = 0;
    /// Leaving for good.
    pub const LEAVE: i32 = -1;
    /// A static member going away for a while: its partitions stay reserved
    /// for its `group.instance.id` until its session expires.
    pub const STATIC_LEAVE: i32 = -2;
}

/// A group's timing settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupTimeouts {
    /// A member silent this long leaves the group.
    pub session_ms: i64,
    /// How often members should heartbeat.
    pub heartbeat_ms: i64,
    /// How long a member may take to release partitions it was told to.
    pub rebalance_ms: i64,
}

impl Default for GroupTimeouts {
    fn default() -> Self {
        GroupTimeouts {
            session_ms: 10_000,
            heartbeat_ms: 1_000,
            rebalance_ms: 30_000,
        }
    }
}

/// Why a group request was refused; nothing changed.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum GroupError {
    /// The member is not in the group (never joined, left, or was removed).
    #[error("member {member:?} is not in group {group:?}: join again with member epoch 0")]
    UnknownMemberId { group: String, member: String },
    /// A heartbeat with an epoch that is not the member's: it missed a change
    /// and must rejoin (epoch 0), giving up what it holds.
    #[error("member {member:?} of group {group:?} is at epoch {current}, not {given}: rejoin with member epoch 0")]
    FencedMemberEpoch {
        group: String,
        member: String,
        current: u32,
        given: i32,
    },
    /// An offset commit from an older generation than the member's.
    #[error("commit from member {member:?} of group {group:?} at epoch {given}, which is now {current}: refresh the assignment and commit again")]
    StaleMemberEpoch {
        group: String,
        member: String,
        current: u32,
        given: i32,
    },
    /// The request is malformed; the reason says how.
    #[error("invalid group request for {group:?}: {reason}")]
    InvalidRequest { group: String, reason: String },
    /// An operation that needs the group to have no members.
    #[error("group {group:?} has {members} member(s); stop its consumers first")]
    NonEmptyGroup { group: String, members: usize },
    /// A classic member's generation is not the group's.
    #[error("member {member:?} of group {group:?} is at generation {given}, the group at {current}: rejoin")]
    IllegalGeneration {
        group: String,
        member: String,
        current: i32,
        given: i32,
    },
    /// The group is rebalancing (classic protocol): rejoin.
    #[error("group {group:?} is rebalancing: rejoin")]
    RebalanceInProgress { group: String },
    /// The protocol type or protocols do not fit the group's members.
    #[error("group {group:?}: {reason}")]
    InconsistentGroupProtocol { group: String, reason: String },
    /// A classic member joined without an id; it must join again with this one.
    #[error("group {group:?}: join again with member id {member:?}")]
    MemberIdRequired { group: String, member: String },
    /// A session timeout out of bounds.
    #[error("group {group:?}: session timeout {given} ms is outside [{min}, {max}] ms")]
    InvalidSessionTimeout {
        group: String,
        given: i64,
        min: i64,
        max: i64,
    },
}

/// One heartbeat (which also joins and leaves).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Heartbeat {
    /// Chosen by the member (a random id), kept for its lifetime.
    pub member_id: String,
    /// `group.instance.id`: a static member's identity across restarts.
    pub instance_id: Option<String>,
    /// [`epoch::JOIN`], [`epoch::LEAVE`], [`epoch::STATIC_LEAVE`], or the
    /// member's current epoch.
    pub member_epoch: i32,
    /// Its subscription; required when joining, `None` for unchanged.
    pub topics: Option<BTreeSet<String>>,
    /// What it holds now, `None` for unchanged (a member reports this after
    /// releasing partitions).
    pub owned: Option<BTreeSet<TopicPartition>>,
    /// The assignor it asks for when joining; `None` for the group's.
    pub assignor: Option<Assignor>,
}

/// What a heartbeat is answered with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatReply {
    /// The member's id.
    pub member_id: String,
    /// Its epoch now ([`epoch::LEAVE`] once it left).
    pub member_epoch: i32,
    /// What it may own now: it stops consuming anything else.
    pub assignment: BTreeSet<TopicPartition>,
    /// When to heartbeat next.
    pub heartbeat_interval_ms: i64,
}

/// A member as the coordinator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its id.
    pub id: String,
    /// Its `group.instance.id`, if static.
    pub instance_id: Option<String>,
    /// Its epoch: the group epoch it last reconciled to.
    pub epoch: u32,
    /// The epoch before, accepted once from a member whose answer was lost.
    pub previous_epoch: u32,
    /// Its subscription.
    pub topics: BTreeSet<String>,
    /// What it may own now.
    pub assigned: BTreeSet<TopicPartition>,
    /// What it was told to give up and has not yet reported released.
    pub revoking: BTreeSet<TopicPartition>,
    /// When its session ends unless it heartbeats.
    pub session_deadline_ms: i64,
    /// When a pending revocation must be done by.
    pub revoke_deadline_ms: Option<i64>,
    /// A static member away (it sent [`epoch::STATIC_LEAVE`]).
    pub away: bool,
}

/// A committed offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The next offset to consume.
    pub offset: u64,
    /// Free text from the committer.
    pub metadata: String,
    /// When it was committed.
    pub commit_ms: i64,
}

/// Where a group stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupState {
    /// No members (committed offsets may remain).
    Empty,
    /// Some member has not reached the target assignment yet.
    Reconciling,
    /// Every member holds its target at the group epoch.
    Stable,
    /// Classic protocol: waiting for members to rejoin.
    PreparingRebalance,
    /// Classic protocol: waiting for the leader's assignment.
    CompletingRebalance,
}

impl GroupState {
    /// Its name for tools (Kafka's spelling).
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::Reconciling => "Reconciling",
            GroupState::Stable => "Stable",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
        }
    }
}

/// One consumer group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    id: String,
    assignor: Assignor,
    timeouts: GroupTimeouts,
    /// The generation: bumped by every change of membership or subscriptions.
    epoch: u32,
    members: BTreeMap<String, Member>,
    /// The assignor's answer at `epoch`.
    target: Assignment,
    /// The partition counts of the subscribed topics it was computed from.
    target_partitions: BTreeMap<String, u32>,
    offsets: BTreeMap<TopicPartition, CommittedOffset>,
    /// Members of Kafka's classic protocol (a group has members of one
    /// protocol at a time); not stored.
    classic: ClassicGroup,
}

/// What a change of a group must store before it is answered (see
/// [`Group::records_since`]); replayed in order, they rebuild the group.
/// Members are not stored: after the coordinator moves they rejoin, at a
/// higher epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupRecord {
    /// The generation, and the assignor the first member chose.
    Epoch {
        /// The group epoch.
        epoch: u32,
        /// Its assignor.
        assignor: Assignor,
    },
    /// A committed offset.
    Offset {
        /// The partition.
        partition: TopicPartition,
        /// What was committed.
        committed: CommittedOffset,
    },
    /// A committed offset was removed (a tombstone, so compaction drops the
    /// partition's older commits too).
    OffsetDeleted {
        /// The partition.
        partition: TopicPartition,
    },
    /// The group was deleted. Written after an [`OffsetDeleted`] for each of
    /// its offsets, so that none comes back once compaction has removed this
    /// record and the group is created anew.
    ///
    /// [`OffsetDeleted`]: GroupRecord::OffsetDeleted
    Deleted,
}

/// Applies one stored record to the groups loaded so far: a deletion drops
/// the group; an offset tombstone of a group not (or no longer) there is
/// ignored, so a deleted group's tombstones, which compaction may keep
/// longer than its other records, never make it up again.
pub fn replay_into(
    groups: &mut BTreeMap<String, Group>,
    id: String,
    record: &GroupRecord,
    timeouts: GroupTimeouts,
) {
    match record {
        GroupRecord::Deleted => {
            groups.remove(&id);
        }
        GroupRecord::OffsetDeleted { .. } => {
            if let Some(group) = groups.get_mut(&id) {
                group.replay(record);
            }
        }
        _ => groups
            .entry(id.clone())
            .or_insert_with(|| Group::new(id, timeouts))
            .replay(record),
    }
}

impl Group {
    /// A new, empty group.
    pub fn new(id: impl Into<String>, timeouts: GroupTimeouts) -> Group {
        Group {
            id: id.into(),
            assignor: Assignor::default(),
            timeouts,
            epoch: 0,
            members: BTreeMap::new(),
            target: Assignment::new(),
            target_partitions: BTreeMap::new(),
            offsets: BTreeMap::new(),
            classic: ClassicGroup::default(),
        }
    }

    /// The records that take a group stored as `before` to this one.
    pub fn records_since(&self, before: &Group) -> Vec<GroupRecord> {
        let mut records = Vec::new();
        if (self.epoch, self.assignor) != (before.epoch, before.assignor) {
            records.push(GroupRecord::Epoch {
                epoch: self.epoch,
                assignor: self.assignor,
            });
        }
        for (tp, committed) in &self.offsets {
            if before.offsets.get(tp) != Some(committed) {
                records.push(GroupRecord::Offset {
                    partition: tp.clone(),
                    committed: committed.clone(),
                });
            }
        }
        for tp in before.offsets.keys() {
            if !self.offsets.contains_key(tp) {
                records.push(GroupRecord::OffsetDeleted {
                    partition: tp.clone(),
                });
            }
        }
        records
    }

    /// The records that delete this group: a tombstone per committed offset,
    /// then the group's own.
    pub fn deletion_records(&self) -> Vec<GroupRecord> {
        let mut records: Vec<GroupRecord> = self
            .offsets
            .keys()
            .map(|tp| GroupRecord::OffsetDeleted {
                partition: tp.clone(),
            })
            .collect();
        records.push(GroupRecord::Deleted);
        records
    }

    /// Applies a stored record, as the coordinator loads the group. A
    /// [`GroupRecord::Deleted`] leaves it as new (the caller drops it).
    pub fn replay(&mut self, record: &GroupRecord) {
        match record {
            GroupRecord::Epoch { epoch, assignor } => {
                self.epoch = self.epoch.max(*epoch);
                self.assignor = *assignor;
            }
            GroupRecord::Offset {
                partition,
                committed,
            } => {
                self.offsets.insert(partition.clone(), committed.clone());
            }
            GroupRecord::OffsetDeleted { partition } => {
                self.offsets.remove(partition);
            }
            GroupRecord::Deleted => *self = Group::new(self.id.clone(), self.timeouts),
        }
    }

    /// Its id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The group epoch (generation).
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Its assignor.
    pub fn assignor(&self) -> Assignor {
        self.assignor
    }

    /// Its members by id.
    pub fn members(&self) -> &BTreeMap<String, Member> {
        &self.members
    }

    /// Its committed offsets.
    pub fn offsets(&self) -> &BTreeMap<TopicPartition, CommittedOffset> {
        &self.offsets
    }

    /// The target assignment at the group epoch.
    pub fn target(&self) -> &Assignment {
        &self.target
    }

    /// Its classic-protocol membership.
    pub fn classic(&self) -> &ClassicGroup {
        &self.classic
    }

    /// Its classic-protocol membership, to change: refused while members of
    /// the other protocol are in the group.
    pub fn classic_mut(&mut self) -> Result<&mut ClassicGroup, GroupError> {
        if !self.members.is_empty() {
            return Err(GroupError::InconsistentGroupProtocol {
                group: self.id.clone(),
                reason: "the group has members of Raftline's own (gRPC) group protocol".into(),
            });
        }
        Ok(&mut self.classic)
    }

    /// Time passes for its classic members; the ids of those removed.
    pub fn tick_classic(&mut self, now_ms: i64, initial_delay_ms: i64) -> Vec<String> {
        let before: Vec<String> = self.classic.members().keys().cloned().collect();
        self.classic.tick(now_ms, initial_delay_ms);
        before
            .into_iter()
            .filter(|id| !self.classic.members().contains_key(id))
            .collect()
    }

    /// Sets committed offsets whose commit was accepted (by
    /// [`commit`](Self::commit), or by the classic protocol's check).
    pub fn commit_classic(
        &mut self,
        offsets: &BTreeMap<TopicPartition, (u64, String)>,
        now_ms: i64,
    ) {
        for (tp, (offset, metadata)) in offsets {
            self.offsets.insert(
                tp.clone(),
                CommittedOffset {
                    offset: *offset,
                    metadata: metadata.clone(),
                    commit_ms: now_ms,
                },
            );
        }
    }

    /// Where it stands.
    pub fn state(&self) -> GroupState {
        if !self.classic.members().is_empty() {
            return match self.classic.state() {
                ClassicState::Empty => GroupState::Empty,
                ClassicState::PreparingRebalance { .. } => GroupState::PreparingRebalance,
                ClassicState::CompletingRebalance { .. } => GroupState::CompletingRebalance,
                ClassicState::Stable => GroupState::Stable,
            };
        }
        if self.members.is_empty() {
            return GroupState::Empty;
        }
        let settled = self.members.values().all(|m| {
            m.epoch == self.epoch
                && m.revoking.is_empty()
                && self.target.get(&m.id).is_none_or(|t| *t == m.assigned)
        });
        if settled {
            GroupState::Stable
        } else {
            GroupState::Reconciling
        }
    }

    fn invalid(&self, reason: impl Into<String>) -> GroupError {
        GroupError::InvalidRequest {
            group: self.id.clone(),
            reason: reason.into(),
        }
    }

    fn unknown(&self, member: &str) -> GroupError {
        GroupError::UnknownMemberId {
            group: self.id.clone(),
            member: member.to_string(),
        }
    }

    /// A heartbeat: joins, renews, reports released partitions, changes the
    /// subscription, or leaves. `partitions` are the topics' partition counts
    /// as the coordinator's metadata has them. On an error nothing changed.
    pub fn heartbeat(
        &mut self,
        request: &Heartbeat,
        partitions: &BTreeMap<String, u32>,
        now_ms: i64,
    ) -> Result<HeartbeatReply, GroupError> {
        let id = request.member_id.as_str();
        if id.is_empty() {
            return Err(self.invalid("a member id is required (the client picks a random one)"));
        }
        if !self.classic.members().is_empty() {
            return Err(GroupError::InconsistentGroupProtocol {
                group: self.id.clone(),
                reason: "the group has members of Kafka's classic protocol (JoinGroup)".into(),
            });
        }
        if request
            .topics
            .as_ref()
            .is_some_and(|t| t.iter().any(String::is_empty))
        {
            return Err(self.invalid("an empty topic name in the subscription"));
        }
        let mut changed = false;
        match request.member_epoch {
            epoch::LEAVE => {
                if self.members.remove(id).is_none() {
                    return Err(self.unknown(id));
                }
                self.bump(partitions);
                return Ok(self.reply_left(id));
            }
            epoch::STATIC_LEAVE => {
                let interval = self.timeouts.heartbeat_ms;
                match self.members.get(id) {
                    None => return Err(self.unknown(id)),
                    Some(m) if m.instance_id.is_none() => {
                        return Err(self.invalid(
                            "only a static member (with group.instance.id) can leave for a while",
                        ))
                    }
                    Some(_) => {}
                }
                if let Some(member) = self.members.get_mut(id) {
                    member.away = true;
                }
                return Ok(HeartbeatReply {
                    member_id: id.to_string(),
                    member_epoch: epoch::STATIC_LEAVE,
                    assignment: BTreeSet::new(),
                    heartbeat_interval_ms: interval,
                });
            }
            epoch::JOIN => changed |= self.join(request, now_ms)?,
            given => {
                let member = self.members.get(id).ok_or_else(|| self.unknown(id))?;
                let owned_ok = request.owned.as_ref().is_some_and(|owned| {
                    owned.is_subset(&member.assigned.union(&member.revoking).cloned().collect())
                });
                let current = i64::from(member.epoch) == i64::from(given);
                let retried = i64::from(member.previous_epoch) == i64::from(given) && owned_ok;
                if !current && !retried {
                    return Err(GroupError::FencedMemberEpoch {
                        group: self.id.clone(),
                        member: id.to_string(),
                        current: member.epoch,
                        given,
                    });
                }
                if let Some(topics) = &request.topics {
                    if *topics != member.topics {
                        changed = true;
                    }
                }
            }
        }
        let session = self.timeouts.session_ms;
        if let Some(member) = self.members.get_mut(id) {
            member.session_deadline_ms = now_ms.saturating_add(session);
            member.away = false;
            if let Some(topics) = &request.topics {
                member.topics = topics.clone();
            }
            if let Some(owned) = &request.owned {
                if owned.is_disjoint(&member.revoking) {
                    member.revoking.clear();
                    member.revoke_deadline_ms = None;
                }
            }
        }
        if changed || self.subscribed_counts(partitions) != self.target_partitions {
            self.bump(partitions);
        }
        self.reconcile(id, now_ms);
        let member = self.members.get(id).ok_or_else(|| self.unknown(id))?;
        Ok(HeartbeatReply {
            member_id: id.to_string(),
            member_epoch: i32::try_from(member.epoch).unwrap_or(i32::MAX),
            assignment: member.assigned.clone(),
            heartbeat_interval_ms: self.timeouts.heartbeat_ms,
        })
    }

    /// Epoch 0: a new member, a member rejoining after being fenced (it holds
    /// nothing now), or a static member's new process taking its place.
    /// Returns whether membership or subscriptions changed.
    fn join(&mut self, request: &Heartbeat, now_ms: i64) -> Result<bool, GroupError> {
        let id = request.member_id.as_str();
        let Some(topics) = request.topics.clone() else {
            return Err(self.invalid("joining needs a subscription (topics)"));
        };
        if let Some(wanted) = request.assignor {
            if wanted != self.assignor && !self.members.is_empty() {
                return Err(self.invalid(format!(
                    "the group uses the {} assignor; ask for it or for none",
                    self.assignor
                )));
            }
            if self.members.is_empty() {
                self.assignor = wanted;
            }
        }
        // A static member's new process takes over the old one's place,
        // epoch and assignment: no rebalance.
        if let Some(instance) = &request.instance_id {
            let previous = self
                .members
                .values()
                .find(|m| m.instance_id.as_ref() == Some(instance) && m.id != id)
                .map(|m| m.id.clone());
            if let Some(old_id) = previous {
                let Some(mut member) = self.members.remove(&old_id) else {
                    return Err(self.unknown(&old_id));
                };
                let changed = member.topics != topics;
                if let Some(target) = self.target.remove(&old_id) {
                    self.target.insert(id.to_string(), target);
                }
                member.id = id.to_string();
                member.topics = topics;
                // The new process owns nothing yet; what the old one was
                // releasing is released with it.
                member.revoking.clear();
                member.revoke_deadline_ms = None;
                self.members.insert(id.to_string(), member);
                return Ok(changed);
            }
        }
        match self.members.get_mut(id) {
            Some(member) => {
                // Rejoining: whatever it held, it released.
                member.assigned.clear();
                member.revoking.clear();
                member.revoke_deadline_ms = None;
                member.epoch = 0;
                member.previous_epoch = 0;
                member.instance_id = request.instance_id.clone();
                Ok(member.topics != topics)
            }
            None => {
                self.members.insert(
                    id.to_string(),
                    Member {
                        id: id.to_string(),
                        instance_id: request.instance_id.clone(),
                        epoch: 0,
                        previous_epoch: 0,
                        topics,
                        assigned: BTreeSet::new(),
                        revoking: BTreeSet::new(),
                        session_deadline_ms: now_ms.saturating_add(self.timeouts.session_ms),
                        revoke_deadline_ms: None,
                        away: false,
                    },
                );
                Ok(true)
            }
        }
    }

    fn reply_left(&self, id: &str) -> HeartbeatReply {
        HeartbeatReply {
            member_id: id.to_string(),
            member_epoch: epoch::LEAVE,
            assignment: BTreeSet::new(),
            heartbeat_interval_ms: self.timeouts.heartbeat_ms,
        }
    }

    /// The partition counts of the topics some member subscribes to.
    fn subscribed_counts(&self, partitions: &BTreeMap<String, u32>) -> BTreeMap<String, u32> {
        let topics: BTreeSet<&String> = self.members.values().flat_map(|m| &m.topics).collect();
        topics
            .into_iter()
            .filter_map(|t| partitions.get(t).map(|&n| (t.clone(), n)))
            .collect()
    }

    /// A new generation: the target assignment is computed again.
    fn bump(&mut self, partitions: &BTreeMap<String, u32>) {
        self.epoch += 1;
        self.target_partitions = self.subscribed_counts(partitions);
        let specs: BTreeMap<String, MemberSpec> = self
            .members
            .values()
            .map(|m| {
                let spec = MemberSpec {
                    topics: m.topics.clone(),
                    owned: m.assigned.union(&m.revoking).cloned().collect(),
                };
                (m.id.clone(), spec)
            })
            .collect();
        self.target = self.assignor.assign(&specs, partitions);
    }

    /// Moves member `id` one step towards its target (see the module docs).
    fn reconcile(&mut self, id: &str, now_ms: i64) {
        let empty = BTreeSet::new();
        let target = self.target.get(id).unwrap_or(&empty).clone();
        let held_elsewhere: BTreeSet<TopicPartition> = self
            .members
            .values()
            .filter(|m| m.id != id)
            .flat_map(|m| m.assigned.iter().chain(&m.revoking))
            .cloned()
            .collect();
        let (group_epoch, rebalance) = (self.epoch, self.timeouts.rebalance_ms);
        let Some(member) = self.members.get_mut(id) else {
            return;
        };
        if !member.revoking.is_empty() {
            return;
        }
        let lose: BTreeSet<TopicPartition> = member.assigned.difference(&target).cloned().collect();
        if !lose.is_empty() {
            member.assigned.retain(|tp| !lose.contains(tp));
            member.revoking = lose;
            member.revoke_deadline_ms = Some(now_ms.saturating_add(rebalance));
            return;
        }
        if member.epoch != group_epoch {
            member.previous_epoch = member.epoch;
            member.epoch = group_epoch;
        }
        for tp in target.difference(&held_elsewhere) {
            member.assigned.insert(tp.clone());
        }
    }

    /// Removes members whose session ended, or that were told to release
    /// partitions and did not within the rebalance timeout; returns their ids.
    pub fn expire(&mut self, partitions: &BTreeMap<String, u32>, now_ms: i64) -> Vec<String> {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.session_deadline_ms < now_ms || m.revoke_deadline_ms.is_some_and(|d| d < now_ms)
            })
            .map(|m| m.id.clone())
            .collect();
        if !gone.is_empty() {
            for id in &gone {
                self.members.remove(id);
            }
            self.bump(partitions);
        }
        gone
    }

    /// Commits offsets. A member commits at its current epoch; with no
    /// members, a commit without a member id (an admin tool, or a consumer
    /// that assigns partitions itself) is accepted.
    pub fn commit(
        &mut self,
        member_id: &str,
        member_epoch: i32,
        offsets: &BTreeMap<TopicPartition, (u64, String)>,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        if member_id.is_empty() {
            if !self.members.is_empty() || !self.classic.members().is_empty() {
                return Err(self.unknown(member_id));
            }
        } else {
            let member = self
                .members
                .get(member_id)
                .ok_or_else(|| self.unknown(member_id))?;
            if i64::from(member.epoch) != i64::from(member_epoch) {
                return Err(GroupError::StaleMemberEpoch {
                    group: self.id.clone(),
                    member: member_id.to_string(),
                    current: member.epoch,
                    given: member_epoch,
                });
            }
        }
        self.commit_classic(offsets, now_ms);
        Ok(())
    }

    /// Sets committed offsets as an operator asked (`group reset-offsets`):
    /// only while the group has no members.
    pub fn reset_offsets(
        &mut self,
        offsets: &BTreeMap<TopicPartition, u64>,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        self.check_empty()?;
        for (tp, &offset) in offsets {
            self.offsets.insert(
                tp.clone(),
                CommittedOffset {
                    offset,
                    metadata: String::new(),
                    commit_ms: now_ms,
                },
            );
        }
        Ok(())
    }

    /// Whether the group may be deleted or have its offsets reset.
    pub fn check_empty(&self) -> Result<(), GroupError> {
        match self.members.len() + self.classic.members().len() {
            0 => Ok(()),
            members => Err(GroupError::NonEmptyGroup {
                group: self.id.clone(),
                members,
            }),
        }
    }
}

#[cfg(test)]
#[path = "state_test.rs"]
mod tests;
