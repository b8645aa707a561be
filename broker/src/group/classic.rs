//! Kafka's classic group protocol (JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup) as a pure state machine (time passed in): the membership
//! part of a group whose members assign partitions themselves (the leader
//! member's assignor), with opaque protocol metadata, so Kafka Connect
//! (`connect`) and consumers (`consumer`) both fit.
//!
//! ```text
//! Empty ─join─> PreparingRebalance ─every member rejoined, or the rebalance
//!   timeout─> CompletingRebalance (generation+1, leader, protocol chosen)
//!   ─leader's SyncGroup─> Stable ─join, leave, expiry─> PreparingRebalance
//! ```
//!
//! Membership is not stored: when the coordinator moves, members learn they
//! are unknown and rejoin (committed offsets are stored, by the group).

use super::state::GroupError;
use bytes::Bytes;
use std::collections::BTreeMap;

/// The bounds on a member's session timeout (Kafka's
/// `group.min.session.timeout.ms` is 6 s; lower here for quick tests).
pub const MIN_SESSION_MS: i64 = 1_000;
/// Kafka's `group.max.session.timeout.ms`.
pub const MAX_SESSION_MS: i64 = 1_800_000;

/// One member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassicMember {
    /// Its id (given by the coordinator).
    pub id: String,
    /// Its client id and host, for tools.
    pub client_id: String,
    /// Its client host.
    pub client_host: String,
    /// The protocols it supports, by preference, with their metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// Its session timeout, ms.
    pub session_ms: i64,
    /// Its rebalance timeout, ms.
    pub rebalance_ms: i64,
    /// When its session ends unless heard from.
    pub session_deadline_ms: i64,
    /// What the leader assigned it (opaque), at the current generation.
    pub assignment: Bytes,
    /// Whether it has joined the rebalance under way.
    pub joined: bool,
}

/// Where a classic group stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassicState {
    /// No members.
    Empty,
    /// Waiting for members to (re)join, until the deadline.
    PreparingRebalance {
        /// When the join phase ends whoever has rejoined.
        deadline_ms: i64,
        /// Before this, a group that was empty waits for more members
        /// (`group.initial.rebalance.delay.ms`).
        not_before_ms: i64,
    },
    /// Joined; waiting for the leader's assignment until the deadline.
    CompletingRebalance {
        /// When the group rebalances again without it.
        deadline_ms: i64,
    },
    /// Every member has its assignment.
    Stable,
}

impl ClassicState {
    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            ClassicState::Empty => "Empty",
            ClassicState::PreparingRebalance { .. } => "PreparingRebalance",
            ClassicState::CompletingRebalance { .. } => "CompletingRebalance",
            ClassicState::Stable => "Stable",
        }
    }
}

/// A JoinGroup.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Join {
    /// Empty for a new member.
    pub member_id: String,
    /// Its client id.
    pub client_id: String,
    /// Its client host.
    pub client_host: String,
    /// `consumer`, `connect`, ...
    pub protocol_type: String,
    /// Protocols by preference, with metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// Session timeout, ms.
    pub session_ms: i64,
    /// Rebalance timeout, ms (v0: the session timeout).
    pub rebalance_ms: i64,
    /// v4+: a new member must first get its id (MEMBER_ID_REQUIRED).
    pub require_known_member_id: bool,
}

/// A completed join, as one member's JoinGroup answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joined {
    /// The new generation.
    pub generation: i32,
    /// The protocol chosen.
    pub protocol: String,
    /// The protocol type.
    pub protocol_type: String,
    /// The leader's member id.
    pub leader: String,
    /// This member's id.
    pub member_id: String,
    /// Every member and its metadata for the chosen protocol (the leader's
    /// answer only).
    pub members: Vec<(String, Bytes)>,
}

/// One classic group's membership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassicGroup {
    state: ClassicState,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, ClassicMember>,
    /// Ids handed out with MEMBER_ID_REQUIRED, by when they must join.
    pending: BTreeMap<String, i64>,
}

impl Default for ClassicGroup {
    fn default() -> Self {
        ClassicGroup {
            state: ClassicState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: BTreeMap::new(),
        }
    }
}

pub(super) fn unknown(group: &str, member: &str) -> GroupError {
    GroupError::UnknownMemberId {
        group: group.to_string(),
        member: member.to_string(),
    }
}

impl ClassicGroup {
    /// Where it stands.
    pub fn state(&self) -> ClassicState {
        self.state
    }

    /// Whether it has members, handed-out ids or a phase with a deadline.
    pub fn is_active(&self) -> bool {
        !self.members.is_empty() || !self.pending.is_empty()
    }

    /// `member_id`'s assignment at `generation`: `Ok(None)` while the leader
    /// has not synced; an error if the member or generation is no longer
    /// current or the group rebalances.
    pub fn assignment(
        &self,
        group: &str,
        member_id: &str,
        generation: i32,
    ) -> Result<Option<Bytes>, GroupError> {
        self.member(group, member_id, generation)?;
        match self.state {
            ClassicState::Stable => Ok(self.members.get(member_id).map(|m| m.assignment.clone())),
            ClassicState::CompletingRebalance { .. } => Ok(None),
            _ => Err(GroupError::RebalanceInProgress {
                group: group.to_string(),
            }),
        }
    }

    /// The generation.
    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// The members.
    pub fn members(&self) -> &BTreeMap<String, ClassicMember> {
        &self.members
    }

    /// The protocol type (while it has members).
    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    /// The chosen protocol, once a join completed.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The leader's member id.
    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }

    /// The longest rebalance timeout of its members.
    fn rebalance_timeout(&self) -> i64 {
        self.members
            .values()
            .map(|m| m.rebalance_ms)
            .max()
            .unwrap_or(0)
    }

    fn rebalance(&mut self, now_ms: i64, initial_delay_ms: i64) {
        let was_empty = self.state == ClassicState::Empty;
        let timeout = self.rebalance_timeout();
        match self.state {
            ClassicState::PreparingRebalance { .. } => {}
            _ => {
                for m in self.members.values_mut() {
                    m.joined = false;
                }
                self.state = ClassicState::PreparingRebalance {
                    deadline_ms: now_ms + timeout,
                    not_before_ms: if was_empty {
                        now_ms + initial_delay_ms.min(timeout)
                    } else {
                        now_ms
                    },
                };
            }
        }
    }

    /// A JoinGroup: the member is in the rebalance (which this may start);
    /// its answer comes from [`joined`](Self::joined) once the join phase
    /// completes. `new_id` names a new member.
    pub fn join(
        &mut self,
        group: &str,
        join: &Join,
        now_ms: i64,
        initial_delay_ms: i64,
        new_id: impl FnOnce() -> String,
    ) -> Result<String, GroupError> {
        if join.protocol_type.is_empty() || join.protocols.is_empty() {
            return Err(GroupError::InconsistentGroupProtocol {
                group: group.to_string(),
                reason: "a join needs a protocol type and at least one protocol".into(),
            });
        }
        if !(MIN_SESSION_MS..=MAX_SESSION_MS).contains(&join.session_ms) {
            return Err(GroupError::InvalidSessionTimeout {
                group: group.to_string(),
                given: join.session_ms,
                min: MIN_SESSION_MS,
                max: MAX_SESSION_MS,
            });
        }
        if !self.members.is_empty() {
            let others = self.members.values().filter(|m| m.id != join.member_id);
            let fits = |m: &ClassicMember| {
                m.protocols
                    .iter()
                    .any(|(name, _)| join.protocols.iter().any(|(n, _)| n == name))
            };
            if self.protocol_type.as_deref() != Some(join.protocol_type.as_str())
                || !others.clone().all(fits)
            {
                return Err(GroupError::InconsistentGroupProtocol {
                    group: group.to_string(),
                    reason: format!(
                        "protocol type {:?} with protocols {:?} does not fit the group's members",
                        join.protocol_type,
                        join.protocols.iter().map(|(n, _)| n).collect::<Vec<_>>()
                    ),
                });
            }
        }
        let id = if join.member_id.is_empty() {
            let id = new_id();
            if join.require_known_member_id {
                self.pending
                    .insert(id.clone(), now_ms + join.session_ms.max(join.rebalance_ms));
                return Err(GroupError::MemberIdRequired {
                    group: group.to_string(),
                    member: id,
                });
            }
            id
        } else if self.members.contains_key(&join.member_id)
            || self.pending.remove(&join.member_id).is_some()
        {
            join.member_id.clone()
        } else {
            return Err(unknown(group, &join.member_id));
        };
        let unchanged = self
            .members
            .get(&id)
            .is_some_and(|m| m.protocols == join.protocols);
        let member = self
            .members
            .entry(id.clone())
            .or_insert_with(|| ClassicMember {
                id: id.clone(),
                client_id: String::new(),
                client_host: String::new(),
                protocols: Vec::new(),
                session_ms: 0,
                rebalance_ms: 0,
                session_deadline_ms: 0,
                assignment: Bytes::new(),
                joined: false,
            });
        member.client_id = join.client_id.clone();
        member.client_host = join.client_host.clone();
        member.protocols = join.protocols.clone();
        member.session_ms = join.session_ms;
        member.rebalance_ms = join.rebalance_ms.max(1);
        member.session_deadline_ms = now_ms + join.session_ms;
        self.protocol_type = Some(join.protocol_type.clone());
        // A follower rejoining a stable group with the same metadata gets the
        // current generation again, without a rebalance (as Kafka).
        let is_leader = self.leader.as_deref() == Some(id.as_str());
        if !(self.state == ClassicState::Stable && unchanged && !is_leader) {
            self.rebalance(now_ms, initial_delay_ms);
        }
        if let Some(m) = self.members.get_mut(&id) {
            m.joined = true;
        }
        self.complete_join(now_ms);
        Ok(id)
    }

    /// The answer for `member_id` if the join phase it entered at
    /// `generation_before` has completed: `Ok(None)` while it runs.
    pub fn joined(
        &self,
        group: &str,
        member_id: &str,
        generation_before: i32,
    ) -> Result<Option<Joined>, GroupError> {
        let Some(member) = self.members.get(member_id) else {
            return Err(unknown(group, member_id));
        };
        // Completed after this member's join began; or, for a follower that
        // rejoined a stable group with the same metadata, the current one.
        let done = match self.state {
            ClassicState::CompletingRebalance { .. } => self.generation > generation_before,
            ClassicState::Stable => self.generation >= generation_before && member.joined,
            _ => false,
        };
        if !done {
            return Ok(None);
        }
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let members = if leader == member_id {
            self.members
                .values()
                .map(|m| {
                    let metadata = m
                        .protocols
                        .iter()
                        .find(|(n, _)| *n == protocol)
                        .map(|(_, meta)| meta.clone())
                        .unwrap_or_default();
                    (m.id.clone(), metadata)
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(Some(Joined {
            generation: self.generation,
            protocol,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            leader,
            member_id: member_id.to_string(),
            members,
        }))
    }

    /// Ends the join phase if every member has rejoined (after the initial
    /// delay) or its deadline passed: members that did not rejoin are
    /// removed, the generation moves on, the leader and protocol are chosen.
    /// Whether it ended.
    pub fn complete_join(&mut self, now_ms: i64) -> bool {
        let ClassicState::PreparingRebalance {
            deadline_ms,
            not_before_ms,
        } = self.state
        else {
            return false;
        };
        let all = self.members.values().all(|m| m.joined);
        if !((all && now_ms >= not_before_ms) || now_ms >= deadline_ms) {
            return false;
        }
        self.members.retain(|_, m| m.joined);
        self.generation += 1;
        if self.members.is_empty() {
            self.state = ClassicState::Empty;
            self.protocol = None;
            self.protocol_type = None;
            self.leader = None;
            return true;
        }
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        // The leader's most preferred protocol that every member supports.
        let leader = self.leader.as_ref().and_then(|l| self.members.get(l));
        self.protocol = leader.and_then(|l| {
            l.protocols
                .iter()
                .map(|(n, _)| n)
                .find(|n| {
                    self.members
                        .values()
                        .all(|m| m.protocols.iter().any(|(x, _)| x == *n))
                })
                .cloned()
        });
        let timeout = self.rebalance_timeout();
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
            m.session_deadline_ms = m.session_deadline_ms.max(now_ms + m.session_ms);
        }
        self.state = ClassicState::CompletingRebalance {
            deadline_ms: now_ms + timeout,
        };
        true
    }

    fn member(&self, group: &str, member_id: &str, generation: i32) -> Result<(), GroupError> {
        if !self.members.contains_key(member_id) {
            return Err(unknown(group, member_id));
        }
        if generation != self.generation {
            return Err(GroupError::IllegalGeneration {
                group: group.to_string(),
                member: member_id.to_string(),
                current: self.generation,
                given: generation,
            });
        }
        Ok(())
    }

    fn renew(&mut self, member_id: &str, now_ms: i64) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.session_deadline_ms = now_ms + m.session_ms;
        }
    }

    /// A SyncGroup: the leader hands out assignments (members not named get
    /// none); everyone's answer is its assignment, `Ok(None)` while the
    /// leader has not synced.
    pub fn sync(
        &mut self,
        group: &str,
        member_id: &str,
        generation: i32,
        assignments: &[(String, Bytes)],
        now_ms: i64,
    ) -> Result<Option<Bytes>, GroupError> {
        self.member(group, member_id, generation)?;
        self.renew(member_id, now_ms);
        match self.state {
            ClassicState::Empty | ClassicState::PreparingRebalance { .. } => {
                Err(GroupError::RebalanceInProgress {
                    group: group.to_string(),
                })
            }
            ClassicState::CompletingRebalance { .. } => {
                if self.leader.as_deref() == Some(member_id) {
                    for m in self.members.values_mut() {
                        m.assignment = assignments
                            .iter()
                            .find(|(id, _)| *id == m.id)
                            .map(|(_, a)| a.clone())
                            .unwrap_or_default();
                    }
                    self.state = ClassicState::Stable;
                    Ok(self.members.get(member_id).map(|m| m.assignment.clone()))
                } else {
                    Ok(None)
                }
            }
            ClassicState::Stable => Ok(self.members.get(member_id).map(|m| m.assignment.clone())),
        }
    }

    /// A Heartbeat.
    pub fn heartbeat(
        &mut self,
        group: &str,
        member_id: &str,
        generation: i32,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        if !self.members.contains_key(member_id) {
            return Err(unknown(group, member_id));
        }
        self.renew(member_id, now_ms);
        if matches!(self.state, ClassicState::PreparingRebalance { .. }) {
            return Err(GroupError::RebalanceInProgress {
                group: group.to_string(),
            });
        }
        self.member(group, member_id, generation)
    }

    /// Whether an offset commit from `member_id` at `generation` is accepted
    /// now: a member of the current generation of a stable group, or (no
    /// member id, generation -1) anyone while the group has no members.
    pub fn check_commit(
        &mut self,
        group: &str,
        member_id: &str,
        generation: i32,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        if member_id.is_empty() && generation < 0 {
            return if self.members.is_empty() {
                Ok(())
            } else {
                Err(unknown(group, ""))
            };
        }
        self.member(group, member_id, generation)?;
        self.renew(member_id, now_ms);
        match self.state {
            ClassicState::Stable => Ok(()),
            _ => Err(GroupError::RebalanceInProgress {
                group: group.to_string(),
            }),
        }
    }

    /// A LeaveGroup of `members`; each one's result.
    pub fn leave(
        &mut self,
        group: &str,
        members: &[String],
        now_ms: i64,
        initial_delay_ms: i64,
    ) -> Vec<Result<(), GroupError>> {
        let results: Vec<_> = members
            .iter()
            .map(|id| match self.members.remove(id) {
                Some(_) => Ok(()),
                None => Err(unknown(group, id)),
            })
            .collect();
        if results.iter().any(Result::is_ok) {
            self.after_removal(now_ms, initial_delay_ms);
        }
        results
    }

    fn after_removal(&mut self, now_ms: i64, initial_delay_ms: i64) {
        if self.members.is_empty() {
            if self.state != ClassicState::Empty {
                self.generation += 1;
            }
            self.state = ClassicState::Empty;
            self.protocol = None;
            self.protocol_type = None;
            self.leader = None;
        } else {
            self.rebalance(now_ms, initial_delay_ms);
            self.complete_join(now_ms);
        }
    }

    /// Time passes: sessions and handed-out ids expire, a join phase or a
    /// leader's sync past its deadline ends. Whether anything changed.
    pub fn tick(&mut self, now_ms: i64, initial_delay_ms: i64) -> bool {
        let before = self.clone();
        self.pending.retain(|_, deadline| *deadline >= now_ms);
        // A member waiting in JoinGroup is not expired (as Kafka): the join
        // phase may outlast its session, up to the rebalance timeout.
        let joining = matches!(self.state, ClassicState::PreparingRebalance { .. });
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.session_deadline_ms < now_ms && !(joining && m.joined))
            .map(|m| m.id.clone())
            .collect();
        if !gone.is_empty() {
            for id in &gone {
                self.members.remove(id);
            }
            self.after_removal(now_ms, initial_delay_ms);
        }
        if let ClassicState::CompletingRebalance { deadline_ms } = self.state {
            if now_ms >= deadline_ms {
                // The leader never synced: everyone rejoins.
                self.rebalance(now_ms, 0);
            }
        }
        self.complete_join(now_ms);
        *self != before
    }
}

#[cfg(test)]
#[path = "classic_test.rs"]
mod tests;
