//! Kafka's admin APIs: CreateTopics, DeleteTopics, CreatePartitions (through
//! the controller quorum, behind [`ClusterAdmin`]), DescribeConfigs, DescribeCluster, ListGroups,
//! DescribeGroups, DeleteGroups and OffsetForLeaderEpoch; IncrementalAlterConfigs
//! of topics, through the controller too.

use super::errors::{kafka_code, kafka_code_of};
use super::handlers::{text, topic_uuid};
use super::KafkaFrontEnd;
use crate::api::{error_code, lookup};
pub use crate::controller_link::{AdminFuture, ClusterAdmin, Elected};
use crate::group::{error_to_wire as group_error, Group};
use crate::position::{LeaderEpoch, TopicPartition};
use crate::replica::ReplicaError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteGroupsRequest, DeleteGroupsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, DescribeClusterRequest, DescribeClusterResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, DescribeGroupsRequest, DescribeGroupsResponse, ElectLeadersRequest,
    ElectLeadersResponse, GroupId, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    ListGroupsRequest, ListGroupsResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as K;
use raftline_proto::pb;
use std::collections::{BTreeMap, BTreeSet};

/// Topic configs with their defaults (what DescribeConfigs shows for a
/// config the topic does not set). `min.insync.replicas` depends on the
/// replication factor and is added per topic.
const TOPIC_DEFAULTS: &[(&str, &str)] = &[
    ("cleanup.policy", "delete"),
    ("delete.retention.ms", "86400000"),
    ("max.message.bytes", "1048588"),
    ("min.cleanable.dirty.ratio", "0.5"),
    ("min.compaction.lag.ms", "0"),
    ("retention.bytes", "-1"),
    ("retention.ms", "604800000"),
    ("segment.bytes", "1073741824"),
    ("segment.ms", "604800000"),
    ("unclean.leader.election.enable", "false"),
];

/// DescribeConfigs' resource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// DescribeConfigs' config sources.
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;

/// A refusal: Kafka's error code and the message.
type Refusal = (i16, Option<StrBytes>);

/// Configs to set, and names to delete.
type ConfigChanges = (BTreeMap<String, String>, BTreeSet<String>);

fn error_message(e: &pb::Error) -> Refusal {
    (kafka_code_of(e.code), Some(text(e.message.clone())))
}

fn invalid_request(message: impl Into<String>) -> Refusal {
    (K::InvalidRequest.code(), Some(text(message.into())))
}

impl KafkaFrontEnd {
    fn live_brokers(&self) -> usize {
        self.manager
            .link()
            .metadata
            .brokers()
            .values()
            .filter(|b| !b.fenced)
            .count()
    }

    pub(super) async fn create_topics(
        &self,
        request: CreateTopicsRequest,
        version: i16,
    ) -> CreateTopicsResponse {
        let mut results = Vec::with_capacity(request.topics.len());
        for topic in &request.topics {
            let name = topic.name.0.to_string();
            // -1: the broker's defaults (v4+): one partition, and three
            // replicas where three brokers are live.
            let partitions = if topic.num_partitions == -1 {
                Some(1)
            } else {
                u32::try_from(topic.num_partitions).ok().filter(|&n| n > 0)
            };
            let rf = if topic.replication_factor == -1 {
                u32::try_from(self.live_brokers().clamp(1, 3)).ok()
            } else {
                u32::try_from(topic.replication_factor)
                    .ok()
                    .filter(|&n| n > 0)
            };
            let configs: BTreeMap<String, String> = topic
                .configs
                .iter()
                .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                .collect();
            let outcome = match (partitions, rf) {
                _ if !topic.assignments.is_empty() => Err(invalid_request(
                    "manual replica assignments are not supported: give num_partitions and replication_factor",
                )),
                (None, _) => Err((
                    K::InvalidPartitions.code(),
                    Some(text(format!("num_partitions {} must be at least 1", topic.num_partitions))),
                )),
                (_, None) => Err((
                    K::InvalidReplicationFactor.code(),
                    Some(text(format!(
                        "replication_factor {} must be at least 1",
                        topic.replication_factor
                    ))),
                )),
                (Some(p), Some(rf)) if request.validate_only => {
                    if self.manager.link().metadata.topic(&name).is_some() {
                        Err((
                            K::TopicAlreadyExists.code(),
                            Some(text(format!("topic {name:?} already exists"))),
                        ))
                    } else if rf as usize > self.live_brokers() {
                        Err((
                            K::InvalidReplicationFactor.code(),
                            Some(text(format!(
                                "replication factor {rf} exceeds the {} live brokers",
                                self.live_brokers()
                            ))),
                        ))
                    } else {
                        Ok((p, rf, None))
                    }
                }
                (Some(p), Some(rf)) => self
                    .admin
                    .create_topic(name.clone(), p, rf, configs)
                    .await
                    .map(|id| (p, rf, Some(id)))
                    .map_err(|e| error_message(&e)),
            };
            let result = CreatableTopicResult::default().with_name(topic.name.clone());
            results.push(match outcome {
                Ok((p, rf, id)) => {
                    let result = if version >= 5 {
                        result
                            .with_num_partitions(i32::try_from(p).unwrap_or(i32::MAX))
                            .with_replication_factor(i16::try_from(rf).unwrap_or(i16::MAX))
                    } else {
                        result
                    };
                    match id {
                        Some(id) if version >= 7 => result.with_topic_id(topic_uuid(id)),
                        _ => result,
                    }
                }
                Err((code, message)) => result
                    .with_error_code(code)
                    .with_error_message(message.filter(|_| version >= 1)),
            });
        }
        CreateTopicsResponse::default().with_topics(results)
    }

    pub(super) async fn delete_topics(
        &self,
        request: DeleteTopicsRequest,
        version: i16,
    ) -> DeleteTopicsResponse {
        let names: Vec<Result<String, uuid::Uuid>> = if version >= 6 {
            request
                .topics
                .iter()
                .map(|t| match &t.name {
                    Some(n) => Ok(n.0.to_string()),
                    None => Err(t.topic_id),
                })
                .collect()
        } else {
            request
                .topic_names
                .iter()
                .map(|n| Ok(n.0.to_string()))
                .collect()
        };
        let mut responses = Vec::with_capacity(names.len());
        for wanted in names {
            let metadata = self.manager.link().metadata;
            let name = match wanted {
                Ok(name) => Some(name),
                Err(id) => metadata
                    .topics()
                    .iter()
                    .find(|(_, t)| topic_uuid(t.id) == id)
                    .map(|(n, _)| n.clone()),
            };
            let result = DeletableTopicResult::default()
                .with_name(name.as_deref().map(|n| TopicName(text(n))));
            let Some(name) = name else {
                responses.push(result.with_error_code(K::UnknownTopicId.code()));
                continue;
            };
            let outcome = if name == crate::group::OFFSETS_TOPIC {
                Err(invalid_request(format!(
                    "{name} holds every group's committed offsets and cannot be deleted"
                )))
            } else {
                self.admin
                    .delete_topic(name.clone())
                    .await
                    .map_err(|e| error_message(&e))
            };
            responses.push(match outcome {
                Ok(()) => result,
                Err((code, message)) => result
                    .with_error_code(code)
                    .with_error_message(message.filter(|_| version >= 5)),
            });
        }
        DeleteTopicsResponse::default().with_responses(responses)
    }

    pub(super) async fn create_partitions(
        &self,
        request: CreatePartitionsRequest,
    ) -> CreatePartitionsResponse {
        let mut results = Vec::with_capacity(request.topics.len());
        for topic in &request.topics {
            let name = topic.name.0.to_string();
            let current = self
                .manager
                .link()
                .metadata
                .topic(&name)
                .map(|t| t.partitions.len());
            let outcome = match (u32::try_from(topic.count), current) {
                _ if topic.assignments.as_ref().is_some_and(|a| !a.is_empty()) => {
                    Err(invalid_request(
                        "manual replica assignments are not supported: give the count only",
                    ))
                }
                (Err(_), _) => Err((
                    K::InvalidPartitions.code(),
                    Some(text(format!("count {} must be positive", topic.count))),
                )),
                (Ok(_), None) => Err((
                    K::UnknownTopicOrPartition.code(),
                    Some(text(format!("unknown topic {name:?}"))),
                )),
                (Ok(total), Some(current)) if request.validate_only => {
                    if (total as usize) <= current {
                        Err((
                            K::InvalidPartitions.code(),
                            Some(text(format!(
                                "topic {name:?} has {current} partitions; the count must be larger"
                            ))),
                        ))
                    } else {
                        Ok(())
                    }
                }
                (Ok(total), Some(_)) => self
                    .admin
                    .create_partitions(name.clone(), total)
                    .await
                    .map_err(|e| error_message(&e)),
            };
            let result = CreatePartitionsTopicResult::default()
                .with_name(topic.name.clone())
                .with_error_message(None);
            results.push(match outcome {
                Ok(()) => result,
                Err((code, message)) => result.with_error_code(code).with_error_message(message),
            });
        }
        CreatePartitionsResponse::default().with_results(results)
    }

    pub(super) fn describe_configs(
        &self,
        request: DescribeConfigsRequest,
        version: i16,
    ) -> DescribeConfigsResponse {
        let metadata = self.manager.link().metadata;
        let results = request
            .resources
            .iter()
            .map(|r| {
                let name = r.resource_name.to_string();
                let result = DescribeConfigsResult::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name.clone())
                    .with_error_message(None);
                let wanted = |key: &str| {
                    r.configuration_keys
                        .as_ref()
                        .is_none_or(|keys| keys.iter().any(|k| k.as_str() == key))
                };
                match r.resource_type {
                    RESOURCE_TOPIC => {
                        let Some(topic) = metadata.topic(&name) else {
                            return result
                                .with_error_code(K::UnknownTopicOrPartition.code())
                                .with_error_message(Some(text(format!("unknown topic {name:?}"))));
                        };
                        let rf = topic
                            .partitions
                            .values()
                            .map(|p| p.replicas.len())
                            .max()
                            .unwrap_or(1);
                        let min_isr =
                            raftline_proto::topic_config::min_insync_replicas(&BTreeMap::new(), rf)
                                .to_string();
                        let mut defaults: Vec<(&str, String)> = TOPIC_DEFAULTS
                            .iter()
                            .map(|(k, v)| (*k, v.to_string()))
                            .collect();
                        defaults.push(("min.insync.replicas", min_isr));
                        defaults.sort();
                        let configs = defaults
                            .into_iter()
                            .filter(|(k, _)| wanted(k))
                            .map(|(key, default)| {
                                let (value, source) = match topic.configs.get(key) {
                                    Some(v) => (v.clone(), SOURCE_DYNAMIC_TOPIC),
                                    None => (default, SOURCE_DEFAULT),
                                };
                                let entry = DescribeConfigsResourceResult::default()
                                    .with_name(text(key))
                                    .with_value(Some(text(value)))
                                    .with_read_only(false)
                                    .with_is_sensitive(false);
                                if version >= 1 {
                                    entry.with_config_source(source)
                                } else {
                                    entry
                                }
                            })
                            .collect();
                        result.with_configs(configs)
                    }
                    RESOURCE_BROKER => {
                        let local = metadata.local().0.to_string();
                        if !name.is_empty() && name != local {
                            return result
                                .with_error_code(K::InvalidRequest.code())
                                .with_error_message(Some(text(format!(
                                    "this is broker {local}: ask broker {name} for its configs"
                                ))));
                        }
                        let configs = [("broker.id", local)]
                            .into_iter()
                            .filter(|(k, _)| wanted(k))
                            .map(|(k, v)| {
                                DescribeConfigsResourceResult::default()
                                    .with_name(text(k))
                                    .with_value(Some(text(v)))
                                    .with_read_only(true)
                                    .with_config_source(if version >= 1 { 4 } else { -1 })
                            })
                            .collect();
                        result.with_configs(configs)
                    }
                    other => result
                        .with_error_code(K::InvalidRequest.code())
                        .with_error_message(Some(text(format!(
                        "resource type {other}: only topics (2) and brokers (4) have configs here"
                    )))),
                }
            })
            .collect();
        DescribeConfigsResponse::default().with_results(results)
    }

    pub(super) async fn incremental_alter_configs(
        &self,
        request: IncrementalAlterConfigsRequest,
    ) -> IncrementalAlterConfigsResponse {
        let mut responses = Vec::with_capacity(request.resources.len());
        for r in &request.resources {
            let response = AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone())
                .with_error_message(None);
            let outcome = match r.resource_type {
                RESOURCE_TOPIC => {
                    let name = r.resource_name.to_string();
                    match self.config_changes(&name, r) {
                        Err(e) => Err(e),
                        Ok(_) if request.validate_only => Ok(()),
                        Ok((set, delete)) => self
                            .admin
                            .alter_topic_configs(name, set, delete)
                            .await
                            .map_err(|e| error_message(&e)),
                    }
                }
                RESOURCE_BROKER => Err(invalid_request(
                    "broker configs are set in each node's config file, not at run time",
                )),
                other => Err(invalid_request(format!(
                    "resource type {other}: only topics (2) have configs to alter here"
                ))),
            };
            responses.push(match outcome {
                Ok(()) => response,
                Err((code, message)) => response.with_error_code(code).with_error_message(message),
            });
        }
        IncrementalAlterConfigsResponse::default().with_responses(responses)
    }

    /// ElectLeaders: preferred (v0 always; v1+ `election_type` 0) or unclean
    /// (1) elections of the partitions named, or of every partition when
    /// `topic_partitions` is null; one result per partition.
    pub(super) async fn elect_leaders(
        &self,
        request: ElectLeadersRequest,
        version: i16,
    ) -> ElectLeadersResponse {
        let response = ElectLeadersResponse::default();
        let unclean = match (version, request.election_type) {
            (0, _) | (_, 0) => false,
            (_, 1) => true,
            // Only v1+ carries the type, and only v1+ a top-level error.
            _ => return response.with_error_code(K::InvalidRequest.code()),
        };
        let asked: Vec<(Option<String>, Vec<i32>)> = match &request.topic_partitions {
            None => vec![(None, Vec::new())],
            Some(topics) => topics
                .iter()
                .map(|t| (Some(t.topic.0.to_string()), t.partitions.clone()))
                .collect(),
        };
        let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
        let refused = |partition: i32, (code, message): Refusal| {
            PartitionResult::default()
                .with_partition_id(partition)
                .with_error_code(code)
                .with_error_message(message)
        };
        for (topic, partitions) in asked {
            // A named topic with no partitions asks for none (Kafka's rule).
            if topic.is_some() && partitions.is_empty() {
                continue;
            }
            let (valid, negative): (Vec<i32>, Vec<i32>) = partitions.iter().partition(|&&p| p >= 0);
            if let Some(name) = &topic {
                let results = by_topic.entry(name.clone()).or_default();
                for p in negative {
                    results.push(refused(
                        p,
                        (
                            K::UnknownTopicOrPartition.code(),
                            Some(text(format!("partition {p} of {name:?} does not exist"))),
                        ),
                    ));
                }
                if valid.is_empty() {
                    continue;
                }
            }
            let indexes = valid.iter().map(|&p| p.unsigned_abs()).collect();
            match self
                .admin
                .elect_leaders(topic.clone(), indexes, unclean)
                .await
            {
                Ok(outcomes) => {
                    for (name, partition, outcome) in outcomes {
                        let id = i32::try_from(partition).unwrap_or(i32::MAX);
                        let result = match outcome {
                            Ok(_) => PartitionResult::default()
                                .with_partition_id(id)
                                .with_error_message(None),
                            Err(e) => refused(id, error_message(&e)),
                        };
                        by_topic.entry(name).or_default().push(result);
                    }
                }
                Err(e) => match &topic {
                    Some(name) => {
                        let results = by_topic.entry(name.clone()).or_default();
                        results.extend(valid.iter().map(|&p| refused(p, error_message(&e))));
                    }
                    None => {
                        return response
                            .with_error_code(kafka_code_of(e.code))
                            .with_replica_election_results(Vec::new())
                    }
                },
            }
        }
        let results = by_topic
            .into_iter()
            .map(|(name, partitions)| {
                ReplicaElectionResult::default()
                    .with_topic(TopicName(text(name)))
                    .with_partition_result(partitions)
            })
            .collect();
        response.with_replica_election_results(results)
    }

    /// A resource's operations as the values to set and the names to
    /// delete: SET (0) and DELETE (1) for any config, APPEND (2) and
    /// SUBTRACT (3) for the list-valued `cleanup.policy`.
    fn config_changes(
        &self,
        topic: &str,
        r: &AlterConfigsResource,
    ) -> Result<ConfigChanges, Refusal> {
        let metadata = self.manager.link().metadata;
        let Some(current) = metadata.topic(topic) else {
            return Err((
                K::UnknownTopicOrPartition.code(),
                Some(text(format!("unknown topic {topic:?}"))),
            ));
        };
        let mut set = BTreeMap::new();
        let mut delete = BTreeSet::new();
        for c in &r.configs {
            let key = c.name.to_string();
            let value = c.value.as_ref().map(|v| v.to_string());
            let invalid = |reason: String| {
                (
                    K::InvalidConfig.code(),
                    Some(text(format!("{key}: {reason}"))),
                )
            };
            match (c.config_operation, value) {
                (0, Some(v)) => {
                    set.insert(key, v);
                }
                (0, None) => return Err(invalid("SET needs a value".into())),
                (1, _) => {
                    delete.insert(key);
                }
                (op @ (2 | 3), Some(v)) if key == "cleanup.policy" => {
                    let existing = set
                        .get(&key)
                        .or_else(|| current.configs.get(&key))
                        .cloned()
                        .unwrap_or_else(|| "delete".to_string());
                    let mut items: Vec<String> = existing
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect();
                    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                        if op == 2 {
                            if !items.iter().any(|i| i == item) {
                                items.push(item.to_string());
                            }
                        } else {
                            items.retain(|i| i != item);
                        }
                    }
                    set.insert(key, items.join(","));
                }
                (2 | 3, _) => {
                    return Err(invalid(
                        "APPEND and SUBTRACT apply to list configs (cleanup.policy) with a value"
                            .into(),
                    ))
                }
                (op, _) => return Err(invalid(format!("unknown operation {op}"))),
            }
        }
        Ok((set, delete))
    }

    pub(super) fn describe_cluster(
        &self,
        request: DescribeClusterRequest,
        version: i16,
    ) -> DescribeClusterResponse {
        if version >= 1 && request.endpoint_type != 1 {
            return DescribeClusterResponse::default()
                .with_error_code(K::UnsupportedEndpointType.code())
                .with_error_message(Some(text("only broker endpoints (type 1) are served")))
                .with_endpoint_type(request.endpoint_type);
        }
        let metadata = self.manager.link().metadata;
        let brokers = metadata
            .brokers()
            .values()
            .filter(|b| request.include_fenced_brokers || !b.fenced)
            .filter_map(|b| {
                let (host, port) = b
                    .endpoints
                    .get(super::KAFKA_ENDPOINT)
                    .and_then(|a| super::handlers::host_port(a))?;
                let broker = DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(i32::try_from(b.id.0).unwrap_or(-1)))
                    .with_host(text(host))
                    .with_port(port)
                    .with_rack(b.rack.clone().map(text));
                Some(if version >= 2 {
                    broker.with_is_fenced(b.fenced)
                } else {
                    broker
                })
            })
            .collect();
        DescribeClusterResponse::default()
            .with_error_message(None)
            .with_endpoint_type(1)
            .with_cluster_id(text(self.config.cluster_id.clone()))
            .with_controller_id(BrokerId(i32::try_from(metadata.local().0).unwrap_or(-1)))
            .with_brokers(brokers)
    }

    pub(super) async fn list_groups(
        &self,
        request: ListGroupsRequest,
        version: i16,
    ) -> ListGroupsResponse {
        let groups = self
            .coordinator
            .groups()
            .await
            .into_iter()
            .filter(|g| {
                request.states_filter.is_empty()
                    || request
                        .states_filter
                        .iter()
                        .any(|s| s.as_str().eq_ignore_ascii_case(g.state().name()))
            })
            .map(|g| {
                let listed = ListedGroup::default()
                    .with_group_id(GroupId(text(g.id())))
                    .with_protocol_type(text(protocol_type(&g)));
                let listed = if version >= 4 {
                    listed.with_group_state(text(g.state().name()))
                } else {
                    listed
                };
                if version >= 5 {
                    listed.with_group_type(text(group_type(&g)))
                } else {
                    listed
                }
            })
            .collect();
        ListGroupsResponse::default().with_groups(groups)
    }

    pub(super) async fn describe_groups(
        &self,
        request: DescribeGroupsRequest,
    ) -> DescribeGroupsResponse {
        let mut groups = Vec::with_capacity(request.groups.len());
        for id in &request.groups {
            let described = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_error_message(None);
            groups.push(match self.coordinator.describe(id.0.as_str()).await {
                Ok(g) => {
                    let classic = g.classic();
                    let members = classic
                        .members()
                        .values()
                        .map(|m| {
                            let metadata = m
                                .protocols
                                .iter()
                                .find(|(n, _)| Some(n.as_str()) == classic.protocol())
                                .map(|(_, meta)| meta.clone())
                                .unwrap_or_default();
                            DescribedGroupMember::default()
                                .with_member_id(text(m.id.clone()))
                                .with_client_id(text(m.client_id.clone()))
                                .with_client_host(text(m.client_host.clone()))
                                .with_member_metadata(metadata)
                                .with_member_assignment(m.assignment.clone())
                        })
                        .chain(g.members().values().map(|m| {
                            DescribedGroupMember::default().with_member_id(text(m.id.clone()))
                        }))
                        .collect();
                    described
                        .with_group_state(text(g.state().name()))
                        .with_protocol_type(text(protocol_type(&g)))
                        .with_protocol_data(text(
                            classic
                                .protocol()
                                .map_or_else(|| g.assignor().name().to_string(), str::to_string),
                        ))
                        .with_members(members)
                }
                // Kafka answers an unknown group as Dead, without an error.
                Err(crate::group::CoordinatorError::GroupIdNotFound { .. }) => {
                    described.with_group_state(text("Dead"))
                }
                Err(e) => described.with_error_code(kafka_code_of(group_error(&e).code)),
            });
        }
        DescribeGroupsResponse::default().with_groups(groups)
    }

    pub(super) async fn delete_groups(&self, request: DeleteGroupsRequest) -> DeleteGroupsResponse {
        let mut results = Vec::with_capacity(request.groups_names.len());
        for id in &request.groups_names {
            let code = match self.coordinator.delete(id.0.as_str()).await {
                Ok(()) => 0,
                Err(e) => kafka_code_of(group_error(&e).code),
            };
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(id.clone())
                    .with_error_code(code),
            );
        }
        DeleteGroupsResponse::default().with_results(results)
    }

    pub(super) async fn offset_for_leader_epoch(
        &self,
        request: OffsetForLeaderEpochRequest,
    ) -> OffsetForLeaderEpochResponse {
        let mut topics = Vec::with_capacity(request.topics.len());
        for topic in &request.topics {
            let mut partitions = Vec::with_capacity(topic.partitions.len());
            for p in &topic.partitions {
                let answer = EpochEndOffset::default()
                    .with_partition(p.partition)
                    .with_leader_epoch(-1)
                    .with_end_offset(-1);
                let found = match (u32::try_from(p.partition), u32::try_from(p.leader_epoch)) {
                    (Ok(partition), Ok(epoch)) => {
                        let tp = TopicPartition {
                            topic: topic.topic.0.to_string(),
                            partition,
                        };
                        let current = u32::try_from(p.current_leader_epoch).ok().map(LeaderEpoch);
                        match lookup(&self.manager, &tp) {
                            Ok(partition) => {
                                partition
                                    .end_offset_for_epoch(LeaderEpoch(epoch), current)
                                    .await
                            }
                            Err(e) => Err(e),
                        }
                        .map_err(|e: ReplicaError| kafka_code(error_code(&e)))
                    }
                    (Err(_), _) => Err(K::UnknownTopicOrPartition.code()),
                    // No epoch asked for: nothing to answer but "undefined".
                    (_, Err(_)) => Ok(None),
                };
                partitions.push(match found {
                    Ok(Some((epoch, end))) => answer
                        .with_leader_epoch(i32::try_from(epoch.0).unwrap_or(i32::MAX))
                        .with_end_offset(i64::try_from(end.0).unwrap_or(i64::MAX)),
                    Ok(None) => answer,
                    Err(code) => answer.with_error_code(code),
                });
            }
            topics.push(
                OffsetForLeaderTopicResult::default()
                    .with_topic(topic.topic.clone())
                    .with_partitions(partitions),
            );
        }
        OffsetForLeaderEpochResponse::default().with_topics(topics)
    }
}

fn protocol_type(g: &Group) -> String {
    g.classic()
        .protocol_type()
        .unwrap_or("consumer")
        .to_string()
}

/// KIP-848's group types: `classic` for JoinGroup members, `consumer` for
/// Raftline's own protocol (server-side assignment, as KIP-848).
fn group_type(g: &Group) -> &'static str {
    if g.classic().members().is_empty() && !g.members().is_empty() {
        "consumer"
    } else {
        "classic"
    }
}
