//! Kafka's classic group APIs over Raftline's group coordinator:
//! FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch. The coordinator is the same one Raftline's own
//! (gRPC) groups use; its classic state machine is `group::classic`.

use super::errors::kafka_code_of;
use super::handlers::{endpoint, text};
use super::KafkaFrontEnd;
use crate::group::{error_to_wire, CoordinatorError, GroupError, Join};
use crate::position::TopicPartition;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as K;
use std::collections::BTreeMap;

fn code(e: &CoordinatorError) -> i16 {
    kafka_code_of(error_to_wire(e).code)
}

fn group_code(e: &GroupError) -> i16 {
    code(&CoordinatorError::Group(e.clone()))
}

impl KafkaFrontEnd {
    /// The coordinator of one key: (node id, host, port) or an error code.
    async fn coordinator_of(&self, key: &str, key_type: i8) -> Result<(i32, String, i32), i16> {
        if key_type != 0 {
            // Transactions have no coordinator here.
            return Err(K::CoordinatorNotAvailable.code());
        }
        let (leader, _, _) = self
            .coordinator
            .find_coordinator(key)
            .await
            .map_err(|e| code(&e))?;
        let id = i32::try_from(leader.0).unwrap_or(-1);
        let metadata = self.manager.link().metadata;
        let (host, port, _) = endpoint(&metadata, id).ok_or(K::CoordinatorNotAvailable.code())?;
        Ok((id, host, port))
    }

    pub(super) async fn find_coordinator(
        &self,
        request: FindCoordinatorRequest,
        version: i16,
    ) -> FindCoordinatorResponse {
        if version >= 4 {
            let mut coordinators = Vec::new();
            for key in &request.coordinator_keys {
                let c = Coordinator::default().with_key(key.clone());
                coordinators.push(match self.coordinator_of(key, request.key_type).await {
                    Ok((id, host, port)) => c
                        .with_node_id(BrokerId(id))
                        .with_host(text(host))
                        .with_port(port),
                    Err(code) => c.with_error_code(code).with_node_id(BrokerId(-1)),
                });
            }
            return FindCoordinatorResponse::default()
                .with_error_message(None)
                .with_coordinators(coordinators);
        }
        let response = FindCoordinatorResponse::default().with_error_message(None);
        match self.coordinator_of(&request.key, request.key_type).await {
            Ok((id, host, port)) => response
                .with_node_id(BrokerId(id))
                .with_host(text(host))
                .with_port(port),
            Err(code) => response.with_error_code(code).with_node_id(BrokerId(-1)),
        }
    }

    pub(super) async fn join_group(
        &self,
        request: JoinGroupRequest,
        version: i16,
        client_id: &str,
    ) -> JoinGroupResponse {
        let join = Join {
            member_id: request.member_id.to_string(),
            client_id: client_id.to_string(),
            client_host: String::new(),
            protocol_type: request.protocol_type.to_string(),
            protocols: request
                .protocols
                .iter()
                .map(|p| (p.name.to_string(), p.metadata.clone()))
                .collect(),
            session_ms: i64::from(request.session_timeout_ms),
            rebalance_ms: if version >= 1 {
                i64::from(request.rebalance_timeout_ms)
            } else {
                i64::from(request.session_timeout_ms)
            },
            require_known_member_id: version >= 4,
        };
        let group = request.group_id.0.to_string();
        let named = |s: String| if version >= 7 { Some(text(s)) } else { None };
        match self.coordinator.join_group(&group, join).await {
            Ok(joined) => JoinGroupResponse::default()
                .with_generation_id(joined.generation)
                .with_protocol_type(named(joined.protocol_type))
                .with_protocol_name(Some(text(joined.protocol)))
                .with_leader(text(joined.leader))
                .with_member_id(text(joined.member_id))
                .with_members(
                    joined
                        .members
                        .into_iter()
                        .map(|(id, metadata)| {
                            JoinGroupResponseMember::default()
                                .with_member_id(text(id))
                                .with_metadata(metadata)
                        })
                        .collect(),
                ),
            Err(e) => {
                let member = match &e {
                    CoordinatorError::Group(GroupError::MemberIdRequired { member, .. }) => {
                        member.clone()
                    }
                    _ => request.member_id.to_string(),
                };
                JoinGroupResponse::default()
                    .with_error_code(code(&e))
                    .with_generation_id(-1)
                    .with_protocol_name((version < 7).then(StrBytes::default))
                    .with_member_id(text(member))
            }
        }
    }

    pub(super) async fn sync_group(
        &self,
        request: SyncGroupRequest,
        version: i16,
    ) -> SyncGroupResponse {
        let group = request.group_id.0.to_string();
        let assignments = request
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect();
        let answer = self
            .coordinator
            .sync_group(
                &group,
                request.member_id.as_str(),
                request.generation_id,
                assignments,
            )
            .await;
        let response = if version >= 5 {
            SyncGroupResponse::default()
                .with_protocol_type(request.protocol_type.clone())
                .with_protocol_name(request.protocol_name.clone())
        } else {
            SyncGroupResponse::default()
        };
        match answer {
            Ok(assignment) => response.with_assignment(assignment),
            Err(e) => response.with_error_code(code(&e)),
        }
    }

    pub(super) async fn heartbeat(&self, request: HeartbeatRequest) -> HeartbeatResponse {
        let answer = self
            .coordinator
            .heartbeat_classic(
                request.group_id.0.as_str(),
                request.member_id.as_str(),
                request.generation_id,
            )
            .await;
        HeartbeatResponse::default().with_error_code(match answer {
            Ok(()) => 0,
            Err(e) => code(&e),
        })
    }

    pub(super) async fn leave_group(
        &self,
        request: LeaveGroupRequest,
        version: i16,
    ) -> LeaveGroupResponse {
        let members: Vec<String> = if version >= 3 {
            request
                .members
                .iter()
                .map(|m| m.member_id.to_string())
                .collect()
        } else {
            vec![request.member_id.to_string()]
        };
        let answer = self
            .coordinator
            .leave_group(request.group_id.0.as_str(), &members)
            .await;
        match answer {
            Err(e) => LeaveGroupResponse::default().with_error_code(code(&e)),
            Ok(results) if version >= 3 => LeaveGroupResponse::default().with_members(
                members
                    .iter()
                    .zip(&results)
                    .map(|(id, result)| {
                        MemberResponse::default()
                            .with_member_id(text(id.clone()))
                            .with_error_code(result.as_ref().err().map_or(0, group_code))
                    })
                    .collect(),
            ),
            Ok(results) => LeaveGroupResponse::default().with_error_code(
                results
                    .first()
                    .and_then(|r| r.as_ref().err())
                    .map_or(0, group_code),
            ),
        }
    }

    pub(super) async fn offset_commit(&self, request: OffsetCommitRequest) -> OffsetCommitResponse {
        let mut offsets = BTreeMap::new();
        let mut invalid = BTreeMap::new();
        for topic in &request.topics {
            for p in &topic.partitions {
                match (
                    u32::try_from(p.partition_index),
                    u64::try_from(p.committed_offset),
                ) {
                    (Ok(partition), Ok(offset)) => {
                        let metadata = p
                            .committed_metadata
                            .as_ref()
                            .map_or(String::new(), |m| m.to_string());
                        offsets.insert(
                            TopicPartition {
                                topic: topic.name.0.to_string(),
                                partition,
                            },
                            (offset, metadata),
                        );
                    }
                    (Err(_), _) => {
                        invalid.insert(
                            (topic.name.0.to_string(), p.partition_index),
                            K::UnknownTopicOrPartition.code(),
                        );
                    }
                    (_, Err(_)) => {
                        invalid.insert(
                            (topic.name.0.to_string(), p.partition_index),
                            K::InvalidCommitOffsetSize.code(),
                        );
                    }
                }
            }
        }
        let all = if offsets.is_empty() {
            0
        } else {
            match self
                .coordinator
                .commit_classic(
                    request.group_id.0.as_str(),
                    request.member_id.as_str(),
                    request.generation_id_or_member_epoch,
                    &offsets,
                )
                .await
            {
                Ok(()) => 0,
                Err(e) => code(&e),
            }
        };
        OffsetCommitResponse::default().with_topics(
            request
                .topics
                .iter()
                .map(|topic| {
                    OffsetCommitResponseTopic::default()
                        .with_name(topic.name.clone())
                        .with_partitions(
                            topic
                                .partitions
                                .iter()
                                .map(|p| {
                                    let key = (topic.name.0.to_string(), p.partition_index);
                                    OffsetCommitResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(invalid.get(&key).copied().unwrap_or(all))
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
    }

    pub(super) async fn offset_fetch(
        &self,
        request: OffsetFetchRequest,
        version: i16,
    ) -> OffsetFetchResponse {
        let group = request.group_id.0.to_string();
        let wanted: Option<Vec<TopicPartition>> = request.topics.as_ref().map(|topics| {
            topics
                .iter()
                .flat_map(|t| {
                    t.partition_indexes.iter().filter_map(|&p| {
                        Some(TopicPartition {
                            topic: t.name.0.to_string(),
                            partition: u32::try_from(p).ok()?,
                        })
                    })
                })
                .collect()
        });
        let fetched = self
            .coordinator
            .fetch_offsets(&group, wanted.as_deref())
            .await;
        let committed = match fetched {
            Ok(c) => c,
            Err(e) => {
                let code = code(&e);
                // v1 has no top-level error: each partition asked carries it.
                let topics = request
                    .topics
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| {
                        OffsetFetchResponseTopic::default()
                            .with_partitions(
                                t.partition_indexes
                                    .iter()
                                    .map(|&p| {
                                        OffsetFetchResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(-1)
                                            .with_error_code(code)
                                    })
                                    .collect(),
                            )
                            .with_name(t.name)
                    })
                    .collect();
                let response = OffsetFetchResponse::default().with_topics(topics);
                return if version >= 2 {
                    response.with_error_code(code)
                } else {
                    response
                };
            }
        };
        // The partitions asked for (unknown ones answered -1), or every
        // committed one.
        let mut by_topic: BTreeMap<String, Vec<OffsetFetchResponsePartition>> = BTreeMap::new();
        let asked: Vec<(String, i32)> = match &request.topics {
            Some(topics) => topics
                .iter()
                .flat_map(|t| {
                    t.partition_indexes
                        .iter()
                        .map(|&p| (t.name.0.to_string(), p))
                })
                .collect(),
            None => committed
                .keys()
                .map(|tp| {
                    (
                        tp.topic.clone(),
                        i32::try_from(tp.partition).unwrap_or(i32::MAX),
                    )
                })
                .collect(),
        };
        for (topic, p) in asked {
            let found = u32::try_from(p).ok().and_then(|partition| {
                committed.get(&TopicPartition {
                    topic: topic.clone(),
                    partition,
                })
            });
            let partition = OffsetFetchResponsePartition::default().with_partition_index(p);
            by_topic.entry(topic).or_default().push(match found {
                Some(c) => partition
                    .with_committed_offset(i64::try_from(c.offset).unwrap_or(i64::MAX))
                    .with_metadata(Some(text(c.metadata.clone()))),
                None => partition.with_committed_offset(-1),
            });
        }
        OffsetFetchResponse::default().with_topics(
            by_topic
                .into_iter()
                .map(|(name, partitions)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(text(name)))
                        .with_partitions(partitions)
                })
                .collect(),
        )
    }
}
