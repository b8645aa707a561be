//! The `raftline.v1.Groups` gRPC service: a thin adapter from the wire to the
//! [`GroupCoordinator`]. Group-level failures travel in each response's
//! `error` (a typed code and a message naming the group); only a request
//! that cannot be read at all is a gRPC status.

use super::assignor::Assignor;
use super::coordinator::{CoordinatorError, GroupCoordinator, OffsetTarget};
use super::state::{GroupError, Heartbeat};
use crate::position::TopicPartition;
use raftline_proto::pb::{self, ErrorCode};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The service over one broker's coordinator.
pub struct GroupsService {
    coordinator: Arc<GroupCoordinator>,
}

impl GroupsService {
    /// The service of `coordinator`.
    pub fn new(coordinator: Arc<GroupCoordinator>) -> Self {
        GroupsService { coordinator }
    }

    /// As a tonic service.
    pub fn into_server(self) -> pb::groups_server::GroupsServer<Self> {
        pb::groups_server::GroupsServer::new(self)
            .max_decoding_message_size(4 << 20)
            .max_encoding_message_size(16 << 20)
    }
}

/// The wire error of a coordinator refusal.
pub fn error_to_wire(error: &CoordinatorError) -> pb::Error {
    let (code, leader_hint, leader_address) = match error {
        CoordinatorError::NotCoordinator {
            coordinator,
            address,
            ..
        } => (
            ErrorCode::NotCoordinator,
            coordinator.map(|b| u64::from(b.0)),
            address.clone(),
        ),
        CoordinatorError::NotAvailable { .. } => (ErrorCode::CoordinatorNotAvailable, None, None),
        CoordinatorError::LoadInProgress { .. } => {
            (ErrorCode::CoordinatorLoadInProgress, None, None)
        }
        CoordinatorError::InvalidGroupId { .. } => (ErrorCode::InvalidGroupId, None, None),
        CoordinatorError::GroupIdNotFound { .. } => (ErrorCode::GroupIdNotFound, None, None),
        CoordinatorError::UnknownTopic { .. } => (ErrorCode::UnknownTopicOrPartition, None, None),
        CoordinatorError::Group(e) => (
            match e {
                GroupError::UnknownMemberId { .. } => ErrorCode::UnknownMemberId,
                GroupError::FencedMemberEpoch { .. } => ErrorCode::FencedMemberEpoch,
                GroupError::StaleMemberEpoch { .. } => ErrorCode::StaleMemberEpoch,
                GroupError::InvalidRequest { .. } => ErrorCode::InvalidRequest,
                GroupError::NonEmptyGroup { .. } => ErrorCode::NonEmptyGroup,
                GroupError::IllegalGeneration { .. } => ErrorCode::IllegalGeneration,
                GroupError::RebalanceInProgress { .. } => ErrorCode::RebalanceInProgress,
                GroupError::InconsistentGroupProtocol { .. } => {
                    ErrorCode::InconsistentGroupProtocol
                }
                GroupError::MemberIdRequired { .. } => ErrorCode::MemberIdRequired,
                GroupError::InvalidSessionTimeout { .. } => ErrorCode::InvalidSessionTimeout,
            },
            None,
            None,
        ),
    };
    pb::Error {
        code: code as i32,
        message: error.to_string(),
        leader_hint,
        leader_address,
    }
}

/// Partitions on the wire: grouped by topic.
pub fn partitions_to_wire(partitions: &BTreeSet<TopicPartition>) -> Vec<pb::TopicPartitions> {
    let mut by_topic: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for tp in partitions {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    by_topic
        .into_iter()
        .map(|(topic, partitions)| pb::TopicPartitions {
            topic: topic.to_string(),
            partitions,
        })
        .collect()
}

/// Partitions from the wire.
pub fn partitions_from_wire(lists: &[pb::TopicPartitions]) -> BTreeSet<TopicPartition> {
    lists
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|&partition| TopicPartition {
                topic: t.topic.clone(),
                partition,
            })
        })
        .collect()
}

fn offsets_to_wire<'a>(
    offsets: impl IntoIterator<Item = (&'a TopicPartition, &'a super::CommittedOffset)>,
) -> Vec<pb::OffsetEntry> {
    offsets
        .into_iter()
        .map(|(tp, c)| pb::OffsetEntry {
            topic: tp.topic.clone(),
            partition: tp.partition,
            offset: c.offset,
            metadata: c.metadata.clone(),
        })
        .collect()
}

/// The partition an offset entry names.
fn entry_partition(o: &pb::OffsetEntry) -> TopicPartition {
    TopicPartition {
        topic: o.topic.clone(),
        partition: o.partition,
    }
}

fn invalid(message: String) -> Status {
    let error = pb::Error {
        code: ErrorCode::InvalidRequest as i32,
        message: message.clone(),
        leader_hint: None,
        leader_address: None,
    };
    Status::with_details(
        tonic::Code::InvalidArgument,
        message,
        prost::Message::encode_to_vec(&error).into(),
    )
}

#[tonic::async_trait]
impl pb::groups_server::Groups for GroupsService {
    async fn find_coordinator(
        &self,
        request: Request<pb::FindCoordinatorRequest>,
    ) -> Result<Response<pb::FindCoordinatorResponse>, Status> {
        let group = request.into_inner().group;
        Ok(Response::new(
            match self.coordinator.find_coordinator(&group).await {
                Ok((broker, address, partition)) => pb::FindCoordinatorResponse {
                    error: None,
                    broker_id: broker.0,
                    address,
                    partition,
                },
                Err(e) => pb::FindCoordinatorResponse {
                    error: Some(error_to_wire(&e)),
                    ..Default::default()
                },
            },
        ))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::GroupHeartbeatRequest>,
    ) -> Result<Response<pb::GroupHeartbeatResponse>, Status> {
        let r = request.into_inner();
        let assignor = match r.assignor.as_str() {
            "" => None,
            name => Some(Assignor::from_name(name).ok_or_else(|| {
                invalid(format!(
                    "unknown assignor {name:?}; use one of {}",
                    Assignor::ALL.map(Assignor::name).join(", ")
                ))
            })?),
        };
        let heartbeat = Heartbeat {
            member_id: r.member_id,
            instance_id: r.instance_id,
            member_epoch: r.member_epoch,
            topics: r.topics.map(|t| t.names.into_iter().collect()),
            owned: r.owned.map(|o| partitions_from_wire(&o.topics)),
            assignor,
        };
        Ok(Response::new(
            match self.coordinator.heartbeat(&r.group, &heartbeat).await {
                Ok(reply) => pb::GroupHeartbeatResponse {
                    error: None,
                    member_id: reply.member_id,
                    member_epoch: reply.member_epoch,
                    assignment: partitions_to_wire(&reply.assignment),
                    heartbeat_interval_ms: u32::try_from(reply.heartbeat_interval_ms)
                        .unwrap_or(u32::MAX),
                },
                Err(e) => pb::GroupHeartbeatResponse {
                    error: Some(error_to_wire(&e)),
                    ..Default::default()
                },
            },
        ))
    }

    async fn commit_offsets(
        &self,
        request: Request<pb::CommitOffsetsRequest>,
    ) -> Result<Response<pb::CommitOffsetsResponse>, Status> {
        let r = request.into_inner();
        let offsets = r
            .offsets
            .iter()
            .map(|o| (entry_partition(o), (o.offset, o.metadata.clone())))
            .collect();
        let done = self
            .coordinator
            .commit(&r.group, &r.member_id, r.member_epoch, &offsets)
            .await;
        Ok(Response::new(pb::CommitOffsetsResponse {
            error: done.err().map(|e| error_to_wire(&e)),
        }))
    }

    async fn fetch_offsets(
        &self,
        request: Request<pb::FetchOffsetsRequest>,
    ) -> Result<Response<pb::FetchOffsetsResponse>, Status> {
        let r = request.into_inner();
        let wanted: Vec<TopicPartition> = partitions_from_wire(&r.partitions).into_iter().collect();
        let filter = (!wanted.is_empty()).then_some(wanted.as_slice());
        Ok(Response::new(
            match self.coordinator.fetch_offsets(&r.group, filter).await {
                Ok(offsets) => pb::FetchOffsetsResponse {
                    error: None,
                    offsets: offsets_to_wire(&offsets),
                },
                Err(e) => pb::FetchOffsetsResponse {
                    error: Some(error_to_wire(&e)),
                    offsets: Vec::new(),
                },
            },
        ))
    }

    async fn list_groups(
        &self,
        _request: Request<pb::ListGroupsRequest>,
    ) -> Result<Response<pb::ListGroupsResponse>, Status> {
        let groups = self.coordinator.list().await;
        Ok(Response::new(pb::ListGroupsResponse {
            groups: groups
                .into_iter()
                .map(|(group, state, members)| pb::GroupListing {
                    group,
                    state: state.to_string(),
                    members: u32::try_from(members).unwrap_or(u32::MAX),
                })
                .collect(),
        }))
    }

    async fn describe_group(
        &self,
        request: Request<pb::DescribeGroupRequest>,
    ) -> Result<Response<pb::DescribeGroupResponse>, Status> {
        let group = request.into_inner().group;
        let described = match self.coordinator.describe(&group).await {
            Ok(g) => {
                let lag = self.coordinator.lag(&g).await;
                Ok((g, lag))
            }
            Err(e) => Err(e),
        };
        Ok(Response::new(match described {
            Ok((g, lag)) => pb::DescribeGroupResponse {
                error: None,
                group,
                state: g.state().name().to_string(),
                group_epoch: g.epoch(),
                assignor: g.assignor().name().to_string(),
                members: g
                    .members()
                    .values()
                    .map(|m| pb::GroupMemberDescription {
                        member_id: m.id.clone(),
                        instance_id: m.instance_id.clone(),
                        member_epoch: m.epoch,
                        topics: m.topics.iter().cloned().collect(),
                        assignment: partitions_to_wire(&m.assigned),
                        revoking: partitions_to_wire(&m.revoking),
                    })
                    .collect(),
                offsets: offsets_to_wire(g.offsets()),
                partitions: lag
                    .iter()
                    .map(|l| pb::PartitionLag {
                        topic: l.partition.topic.clone(),
                        partition: l.partition.partition,
                        committed_offset: l.committed,
                        log_end_offset: l.log_end,
                        lag: l.lag(),
                        member_id: l.member.clone(),
                    })
                    .collect(),
            },
            Err(e) => pb::DescribeGroupResponse {
                error: Some(error_to_wire(&e)),
                group,
                ..Default::default()
            },
        }))
    }

    async fn delete_group(
        &self,
        request: Request<pb::DeleteGroupRequest>,
    ) -> Result<Response<pb::DeleteGroupResponse>, Status> {
        let group = request.into_inner().group;
        let done = self.coordinator.delete(&group).await;
        Ok(Response::new(pb::DeleteGroupResponse {
            error: done.err().map(|e| error_to_wire(&e)),
        }))
    }

    async fn reset_offsets(
        &self,
        request: Request<pb::ResetOffsetsRequest>,
    ) -> Result<Response<pb::ResetOffsetsResponse>, Status> {
        use pb::reset_offsets_request::To;
        let r = request.into_inner();
        let target = match r.to {
            Some(To::Earliest(_)) => OffsetTarget::Earliest,
            Some(To::Latest(_)) => OffsetTarget::Latest,
            Some(To::Offset(o)) => OffsetTarget::Offset(o),
            Some(To::TimestampMs(ms)) => OffsetTarget::Timestamp(ms),
            Some(To::ShiftBy(by)) => OffsetTarget::Shift(by),
            None => {
                return Err(invalid(
                    "say where to: earliest, latest, offset, timestamp_ms or shift_by".into(),
                ))
            }
        };
        let planned = self
            .coordinator
            .reset_offsets_to(&r.group, &r.topic, target, r.dry_run)
            .await;
        Ok(Response::new(match planned {
            Ok(plan) => pb::ResetOffsetsResponse {
                error: None,
                partitions: plan
                    .into_iter()
                    .map(|(tp, current, new)| pb::OffsetReset {
                        topic: tp.topic,
                        partition: tp.partition,
                        current_offset: current,
                        new_offset: new,
                    })
                    .collect(),
            },
            Err(e) => pb::ResetOffsetsResponse {
                error: Some(error_to_wire(&e)),
                partitions: Vec::new(),
            },
        }))
    }
}
