//! One handler per Kafka API: the request in, the broker core's calls, the
//! response out. Every failure is a Kafka error code in the response (the
//! partition's or the request's), never a dropped connection.

use super::errors::{kafka_code, kafka_code_of};
use super::versions::{self, PRODUCE_MIN_SERVED};
use super::{frame, KafkaFrontEnd, Reply};
use crate::api::{consumer_fetch, error_code, lookup, produce_to, DEFAULT_PRODUCE_TIMEOUT};
use crate::group::OFFSETS_TOPIC;
use crate::metadata::MetadataCache;
use crate::position::{LeaderEpoch, TopicPartition};
use crate::replica::{Acks, ReplicaError};
use bytes::Bytes;
use futures_util::future::join_all;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{
    LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{
    fetch_response, ApiKey, ApiVersionsRequest, BrokerId, FetchRequest, FetchResponse,
    InitProducerIdRequest, InitProducerIdResponse, ListOffsetsRequest, ListOffsetsResponse,
    MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse, ProducerId, RequestHeader,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::ResponseError as K;
use raftline_proto::pb;
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;

/// A fetched partition's place in the answer.
enum Slot {
    /// Read: its index among the partitions fetched.
    Fetch(usize),
    /// The fetcher's log diverged: (epoch, end offset, high watermark, log
    /// start).
    Diverged((i32, i64, i64, i64)),
    /// Refused with this code.
    Failed(i16),
}

/// The endpoint name under which a broker registers its Kafka listener.
pub const KAFKA_ENDPOINT: &str = "kafka";

/// The high 64 bits of every topic id Raftline shows Kafka clients (the low
/// 64 are the topic's own id): "raftline" in ASCII.
const TOPIC_ID_PREFIX: u64 = u64::from_be_bytes(*b"raftline");

/// A topic's Kafka id (non-zero: zero means "no id" in Kafka).
pub fn topic_uuid(id: u64) -> Uuid {
    Uuid::from_u64_pair(TOPIC_ID_PREFIX, id)
}

fn broker_id(id: crate::metadata::BrokerId) -> BrokerId {
    BrokerId(i32::try_from(id.0).unwrap_or(-1))
}

pub(super) fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

fn topic_name(s: &str) -> TopicName {
    TopicName(text(s))
}

/// `host:port` split, for an advertised listener (`[v6]:port` too).
pub(super) fn host_port(addr: &str) -> Option<(String, i32)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port.parse().ok()?))
}

/// The partition's leader and epoch as the metadata knows them.
fn current_leader(metadata: &MetadataCache, topic: &str, partition: i32) -> Option<(i32, i32)> {
    let p = metadata
        .topic(topic)?
        .partitions
        .get(&u32::try_from(partition).ok()?)?;
    let leader = p.leader?;
    Some((
        broker_id(leader).0,
        i32::try_from(p.leader_epoch.0).unwrap_or(i32::MAX),
    ))
}

/// A live broker's Kafka endpoint.
pub(super) fn endpoint(metadata: &MetadataCache, id: i32) -> Option<(String, i32, Option<String>)> {
    let b = metadata.broker(crate::metadata::BrokerId(u32::try_from(id).ok()?))?;
    if b.fenced {
        return None;
    }
    let (host, port) = host_port(b.endpoints.get(KAFKA_ENDPOINT)?)?;
    Some((host, port, b.rack.clone()))
}

fn decode<T: Decodable>(buf: &mut Bytes, key: ApiKey, version: i16) -> Result<T, Reply> {
    T::decode(buf, version)
        .map_err(|e| Reply::Close(format!("malformed {key:?} v{version} request: {e:#}")))
}

fn partition_of(p: i32) -> Option<u32> {
    u32::try_from(p).ok()
}

impl KafkaFrontEnd {
    /// One request frame (size prefix removed, at least 8 bytes) to its reply.
    pub(super) async fn handle(&self, mut buf: Bytes) -> Reply {
        let (api_key, version, correlation_id) = match buf.get(..8) {
            Some(h) => (
                i16::from_be_bytes([h[0], h[1]]),
                i16::from_be_bytes([h[2], h[3]]),
                i32::from_be_bytes([h[4], h[5], h[6], h[7]]),
            ),
            None => return Reply::Close("a request frame shorter than its header".into()),
        };
        let Ok(key) = ApiKey::try_from(api_key) else {
            return Reply::Close(format!(
                "unknown API key {api_key} (correlation id {correlation_id})"
            ));
        };
        let Some((min, max)) = versions::supported(key) else {
            return Reply::Close(format!(
                "{key:?} (API key {api_key}) is not supported by Raftline yet; \
                 docs/COMPATIBILITY.md lists what is"
            ));
        };
        if !(min..=max).contains(&version) {
            if key == ApiKey::ApiVersions {
                // In v0, which every client reads, with the ranges to pick from.
                return frame(
                    key,
                    0,
                    correlation_id,
                    &versions::api_versions(K::UnsupportedVersion.code()),
                );
            }
            return Reply::Close(format!(
                "{key:?} v{version} is not supported (this broker serves v{min}-{max}); \
                 the client should have picked a version from ApiVersions"
            ));
        }
        if key == ApiKey::Produce && version < PRODUCE_MIN_SERVED {
            return Reply::Close(format!(
                "Produce v{version} (message format v0/v1) is not supported: \
                 use a client that writes RecordBatch v2 (Produce v3 or later)"
            ));
        }
        let header = match RequestHeader::decode(&mut buf, key.request_header_version(version)) {
            Ok(h) => h,
            Err(e) => {
                return Reply::Close(format!(
                    "malformed {key:?} v{version} request header: {e:#}"
                ))
            }
        };
        // Array counts checked against the frame before the decoder reserves
        // memory for them (see `shapes`).
        if let Err(reason) = super::shapes::check(key, version, &buf) {
            return Reply::Close(format!(
                "malformed {key:?} v{version} request (correlation id {}): {reason}",
                header.correlation_id
            ));
        }
        let cid = header.correlation_id;
        // Decodes the body as the handler's request type and frames its answer.
        macro_rules! reply {
            ($r:ident => $answer:expr) => {
                match decode(&mut buf, key, version) {
                    Ok($r) => frame(key, version, cid, &$answer),
                    Err(reply) => reply,
                }
            };
        }
        match key {
            ApiKey::ApiVersions => match decode::<ApiVersionsRequest>(&mut buf, key, version) {
                Ok(_) => frame(key, version, cid, &versions::api_versions(0)),
                Err(reply) => reply,
            },
            ApiKey::Metadata => reply!(r => self.metadata(r, version).await),
            ApiKey::Produce => match decode(&mut buf, key, version) {
                Ok(r) => match self.produce(r, version).await {
                    Some(response) => frame(key, version, cid, &response),
                    None => Reply::Nothing,
                },
                Err(reply) => reply,
            },
            ApiKey::Fetch => reply!(r => self.fetch(r, version).await),
            ApiKey::ListOffsets => reply!(r => self.list_offsets(r, version).await),
            ApiKey::InitProducerId => reply!(r => self.init_producer_id(r).await),
            ApiKey::FindCoordinator => reply!(r => self.find_coordinator(r, version).await),
            ApiKey::JoinGroup => {
                let client = header.client_id.as_ref().map_or("", |c| c.as_str());
                reply!(r => self.join_group(r, version, client).await)
            }
            ApiKey::SyncGroup => reply!(r => self.sync_group(r, version).await),
            ApiKey::Heartbeat => reply!(r => self.heartbeat(r).await),
            ApiKey::LeaveGroup => reply!(r => self.leave_group(r, version).await),
            ApiKey::OffsetCommit => reply!(r => self.offset_commit(r).await),
            ApiKey::OffsetFetch => reply!(r => self.offset_fetch(r, version).await),
            ApiKey::CreateTopics => reply!(r => self.create_topics(r, version).await),
            ApiKey::DeleteTopics => reply!(r => self.delete_topics(r, version).await),
            ApiKey::CreatePartitions => reply!(r => self.create_partitions(r).await),
            ApiKey::DescribeConfigs => reply!(r => self.describe_configs(r, version)),
            ApiKey::IncrementalAlterConfigs => reply!(r => self.incremental_alter_configs(r).await),
            ApiKey::DescribeCluster => reply!(r => self.describe_cluster(r, version)),
            ApiKey::ListGroups => reply!(r => self.list_groups(r, version).await),
            ApiKey::DescribeGroups => reply!(r => self.describe_groups(r).await),
            ApiKey::DeleteGroups => reply!(r => self.delete_groups(r).await),
            ApiKey::OffsetForLeaderEpoch => reply!(r => self.offset_for_leader_epoch(r).await),
            ApiKey::ElectLeaders => reply!(r => self.elect_leaders(r, version).await),
            other => Reply::Close(format!("{other:?} is advertised but has no handler")),
        }
    }

    /// With `auto_create_topics` on and the request allowing it, unknown
    /// topics it names are created (1 partition, up to 3 replicas); each
    /// one's answer code: LEADER_NOT_AVAILABLE while it comes up, or why not.
    async fn auto_create(&self, request: &MetadataRequest) -> BTreeMap<String, i16> {
        let mut created = BTreeMap::new();
        if !self.config.auto_create_topics || !request.allow_auto_topic_creation {
            return created;
        }
        let metadata = self.manager.link().metadata;
        let live = metadata.brokers().values().filter(|b| !b.fenced).count();
        let names = request
            .topics
            .iter()
            .flatten()
            .filter_map(|t| t.name.as_ref());
        for name in names {
            let name = name.0.to_string();
            if metadata.topic(&name).is_some() || name == OFFSETS_TOPIC {
                continue;
            }
            let rf = u32::try_from(live.clamp(1, 3)).unwrap_or(1);
            let code = match self
                .admin
                .create_topic(name.clone(), 1, rf, BTreeMap::new())
                .await
            {
                Ok(_) => K::LeaderNotAvailable.code(),
                Err(e) if e.code == pb::ErrorCode::TopicAlreadyExists as i32 => {
                    K::LeaderNotAvailable.code()
                }
                Err(e) => kafka_code_of(e.code),
            };
            created.insert(name, code);
        }
        created
    }

    async fn metadata(&self, request: MetadataRequest, version: i16) -> MetadataResponse {
        let created = self.auto_create(&request).await;
        let metadata = self.manager.link().metadata;
        let brokers = metadata
            .brokers()
            .values()
            .filter_map(|b| {
                let (host, port, rack) = endpoint(&metadata, broker_id(b.id).0)?;
                Some(
                    MetadataResponseBroker::default()
                        .with_node_id(broker_id(b.id))
                        .with_host(text(host))
                        .with_port(port)
                        .with_rack(rack.filter(|_| version >= 1).map(text)),
                )
            })
            .collect();
        // v0: an empty list means every topic; v1 and later: null does.
        let all = match &request.topics {
            None => true,
            Some(t) => version == 0 && t.is_empty(),
        };
        let wanted: Vec<Result<String, Uuid>> = if all {
            metadata.topics().keys().cloned().map(Ok).collect()
        } else {
            request
                .topics
                .unwrap_or_default()
                .into_iter()
                .map(|t| match t.name {
                    Some(name) => Ok(name.0.to_string()),
                    None => Err(t.topic_id),
                })
                .collect()
        };
        let topics = wanted
            .into_iter()
            .map(|wanted| {
                let name = match wanted {
                    Ok(name) => name,
                    Err(id) => {
                        match metadata
                            .topics()
                            .iter()
                            .find(|(_, t)| topic_uuid(t.id) == id)
                        {
                            Some((name, _)) => name.clone(),
                            None => {
                                return MetadataResponseTopic::default()
                                    .with_topic_id(id)
                                    .with_error_code(K::UnknownTopicId.code())
                            }
                        }
                    }
                };
                let Some(topic) = metadata.topic(&name) else {
                    let code = created
                        .get(&name)
                        .copied()
                        .unwrap_or(K::UnknownTopicOrPartition.code());
                    return MetadataResponseTopic::default()
                        .with_name(Some(topic_name(&name)))
                        .with_error_code(code);
                };
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|(&index, p)| {
                        let offline = p
                            .replicas
                            .iter()
                            .filter(|r| metadata.broker(**r).is_none_or(|b| b.fenced))
                            .map(|r| broker_id(*r))
                            .collect();
                        MetadataResponsePartition::default()
                            .with_error_code(if p.leader.is_some() {
                                0
                            } else {
                                K::LeaderNotAvailable.code()
                            })
                            .with_partition_index(i32::try_from(index).unwrap_or(i32::MAX))
                            .with_leader_id(p.leader.map_or(BrokerId(-1), broker_id))
                            .with_leader_epoch(if version >= 7 {
                                i32::try_from(p.leader_epoch.0).unwrap_or(i32::MAX)
                            } else {
                                -1
                            })
                            .with_replica_nodes(p.replicas.iter().map(|r| broker_id(*r)).collect())
                            .with_isr_nodes(p.isr.iter().map(|r| broker_id(*r)).collect())
                            .with_offline_replicas(if version >= 5 { offline } else { Vec::new() })
                    })
                    .collect();
                MetadataResponseTopic::default()
                    .with_name(Some(topic_name(&name)))
                    .with_topic_id(if version >= 10 {
                        topic_uuid(topic.id)
                    } else {
                        Uuid::nil()
                    })
                    .with_is_internal(version >= 1 && name == OFFSETS_TOPIC)
                    .with_partitions(partitions)
            })
            .collect();
        MetadataResponse::default()
            .with_brokers(brokers)
            .with_cluster_id((version >= 2).then(|| text(self.config.cluster_id.clone())))
            .with_controller_id(if version >= 1 {
                broker_id(self.manager.local())
            } else {
                BrokerId(-1)
            })
            .with_topics(topics)
    }

    /// None for acks=0: Kafka answers such a request with nothing.
    async fn produce(&self, request: ProduceRequest, version: i16) -> Option<ProduceResponse> {
        let acks = match request.acks {
            0 => Some(Acks::None),
            1 => Some(Acks::Leader),
            -1 => Some(Acks::All),
            _ => None,
        };
        let timeout = u64::try_from(request.timeout_ms)
            .ok()
            .filter(|&ms| ms > 0)
            .map_or(DEFAULT_PRODUCE_TIMEOUT, Duration::from_millis);
        let refusal: Option<(i16, String)> = match (acks, &request.transactional_id) {
            (None, _) => Some((
                K::InvalidRequiredAcks.code(),
                format!("acks {} is not 0, 1 or -1 (all)", request.acks),
            )),
            (_, Some(id)) => Some((
                K::TransactionalIdAuthorizationFailed.code(),
                format!(
                    "transactional id {:?}: Raftline does not support transactions yet",
                    id.0.as_str()
                ),
            )),
            _ => None,
        };
        let mut asks = Vec::new();
        for topic in &request.topic_data {
            for p in &topic.partition_data {
                let tp = partition_of(p.index).map(|partition| TopicPartition {
                    topic: topic.name.0.to_string(),
                    partition,
                });
                let records = p.records.clone();
                let refusal = refusal.clone();
                let manager = &self.manager;
                asks.push(async move {
                    if let Some(refused) = refusal {
                        return Err(refused);
                    }
                    let (Some(tp), Some(acks)) = (tp, acks) else {
                        return Err((
                            K::UnknownTopicOrPartition.code(),
                            format!("partition {} does not exist", p.index),
                        ));
                    };
                    let Some(records) = records else {
                        return Err((
                            K::CorruptMessage.code(),
                            "the partition's records are null".to_string(),
                        ));
                    };
                    produce_to(manager, &tp, records, acks, timeout)
                        .await
                        .map_err(|e| (kafka_code(error_code(&e)), e.to_string()))
                });
            }
        }
        let mut results = join_all(asks).await.into_iter();
        if acks == Some(Acks::None) && refusal.is_none() {
            return None;
        }
        let metadata = self.manager.link().metadata;
        let mut leaders = Vec::new();
        let responses = request
            .topic_data
            .iter()
            .map(|topic| {
                let partition_responses = topic
                    .partition_data
                    .iter()
                    .map(|p| {
                        let response = PartitionProduceResponse::default().with_index(p.index);
                        match results.next() {
                            Some(Ok(produced)) => {
                                let (base, start) = produced.map_or((-1, -1), |p| {
                                    (offset_i64(p.base_offset.0), offset_i64(p.log_start.0))
                                });
                                response
                                    .with_base_offset(base)
                                    .with_log_append_time_ms(-1)
                                    .with_log_start_offset(if version >= 5 { start } else { -1 })
                            }
                            Some(Err((code, message))) => {
                                let mut response = response
                                    .with_error_code(code)
                                    .with_base_offset(-1)
                                    .with_log_append_time_ms(-1)
                                    .with_log_start_offset(-1)
                                    .with_error_message((version >= 8).then(|| text(message)));
                                if version >= 10 && code == K::NotLeaderOrFollower.code() {
                                    if let Some((leader, epoch)) =
                                        current_leader(&metadata, &topic.name.0, p.index)
                                    {
                                        leaders.push(leader);
                                        response = response.with_current_leader(
                                            LeaderIdAndEpoch::default()
                                                .with_leader_id(BrokerId(leader))
                                                .with_leader_epoch(epoch),
                                        );
                                    }
                                }
                                response
                            }
                            None => response.with_error_code(K::UnknownServerError.code()),
                        }
                    })
                    .collect();
                TopicProduceResponse::default()
                    .with_name(topic.name.clone())
                    .with_partition_responses(partition_responses)
            })
            .collect();
        leaders.sort_unstable();
        leaders.dedup();
        let node_endpoints = leaders
            .into_iter()
            .filter_map(|id| {
                let (host, port, rack) = endpoint(&metadata, id)?;
                Some(
                    NodeEndpoint::default()
                        .with_node_id(BrokerId(id))
                        .with_host(text(host))
                        .with_port(port)
                        .with_rack(rack.map(text)),
                )
            })
            .collect();
        Some(
            ProduceResponse::default()
                .with_responses(responses)
                .with_node_endpoints(node_endpoints),
        )
    }

    async fn fetch(&self, request: FetchRequest, version: i16) -> FetchResponse {
        // No fetch sessions: every answer is session 0 (a full fetch).
        if request.session_id != 0 {
            return FetchResponse::default()
                .with_error_code(K::FetchSessionIdNotFound.code())
                .with_session_id(0);
        }
        // The request's partitions in order: a valid one's index among those
        // fetched, or its error.
        let mut wanted = Vec::new();
        let mut slots = Vec::new();
        for topic in &request.topics {
            for p in &topic.partitions {
                let slot = match (partition_of(p.partition), u64::try_from(p.fetch_offset)) {
                    (None, _) => Slot::Failed(K::UnknownTopicOrPartition.code()),
                    (_, Err(_)) => Slot::Failed(K::OffsetOutOfRange.code()),
                    (Some(partition), Ok(offset)) if p.last_fetched_epoch >= 0 => {
                        // The fetcher says which epoch its last record had
                        // (v12+): a log that diverged from ours is told where
                        // that epoch ends here, with no records (KIP-320).
                        let tp = TopicPartition {
                            topic: topic.topic.0.to_string(),
                            partition,
                        };
                        match self.diverging(&tp, p, offset).await {
                            Err(code) => Slot::Failed(code),
                            Ok(Some(diverged)) => Slot::Diverged(diverged),
                            Ok(None) => {
                                wanted.push(pb::FetchPartition {
                                    topic: tp.topic,
                                    partition,
                                    offset,
                                    current_leader_epoch: u32::try_from(p.current_leader_epoch)
                                        .ok(),
                                    max_bytes: u32::try_from(p.partition_max_bytes).unwrap_or(0),
                                    last_fetched_epoch: None,
                                });
                                Slot::Fetch(wanted.len() - 1)
                            }
                        }
                    }
                    (Some(partition), Ok(offset)) => {
                        wanted.push(pb::FetchPartition {
                            topic: topic.topic.0.to_string(),
                            partition,
                            offset,
                            current_leader_epoch: u32::try_from(p.current_leader_epoch).ok(),
                            max_bytes: u32::try_from(p.partition_max_bytes).unwrap_or(0),
                            last_fetched_epoch: None,
                        });
                        Slot::Fetch(wanted.len() - 1)
                    }
                };
                slots.push(slot);
            }
        }
        let results = consumer_fetch(
            &self.manager,
            &wanted,
            Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0)),
            usize::try_from(request.min_bytes).unwrap_or(0),
            u32::try_from(request.max_bytes).unwrap_or(0),
        )
        .await;
        let metadata = self.manager.link().metadata;
        let mut slots = slots.into_iter();
        let responses = request
            .topics
            .iter()
            .map(|topic| {
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        let data = PartitionData::default().with_partition_index(p.partition);
                        let result = match slots.next() {
                            Some(Slot::Fetch(i)) => results.get(i),
                            Some(Slot::Diverged((epoch, end, hw, start))) => {
                                return data
                                    .with_high_watermark(hw)
                                    .with_last_stable_offset(hw)
                                    .with_log_start_offset(start)
                                    .with_diverging_epoch(
                                        fetch_response::EpochEndOffset::default()
                                            .with_epoch(epoch)
                                            .with_end_offset(end),
                                    );
                            }
                            Some(Slot::Failed(code)) => {
                                return data.with_error_code(code).with_high_watermark(-1)
                            }
                            None => None,
                        };
                        let Some(result) = result else {
                            return data
                                .with_error_code(K::UnknownServerError.code())
                                .with_high_watermark(-1);
                        };
                        match &result.error {
                            None => data
                                .with_high_watermark(offset_i64(result.high_watermark))
                                .with_last_stable_offset(offset_i64(result.high_watermark))
                                .with_log_start_offset(if version >= 5 {
                                    offset_i64(result.log_start)
                                } else {
                                    -1
                                })
                                .with_records(Some(result.records.clone())),
                            Some(e) => {
                                let code = kafka_code_of(e.code);
                                let mut data = data.with_error_code(code).with_high_watermark(-1);
                                if version >= 12
                                    && (code == K::NotLeaderOrFollower.code()
                                        || code == K::FencedLeaderEpoch.code())
                                {
                                    if let Some((leader, epoch)) =
                                        current_leader(&metadata, &topic.topic.0, p.partition)
                                    {
                                        data = data.with_current_leader(
                                            fetch_response::LeaderIdAndEpoch::default()
                                                .with_leader_id(BrokerId(leader))
                                                .with_leader_epoch(epoch),
                                        );
                                    }
                                }
                                data
                            }
                        }
                    })
                    .collect();
                FetchableTopicResponse::default()
                    .with_topic(topic.topic.clone())
                    .with_topic_id(topic.topic_id)
                    .with_partitions(partitions)
            })
            .collect();
        FetchResponse::default()
            .with_session_id(0)
            .with_responses(responses)
    }

    /// Whether a fetch at `offset` whose last record had epoch
    /// `p.last_fetched_epoch` diverges from this leader's log: where that
    /// epoch ends here (with the high watermark and log start to answer), or
    /// `None` to fetch as usual.
    async fn diverging(
        &self,
        tp: &TopicPartition,
        p: &kafka_protocol::messages::fetch_request::FetchPartition,
        offset: u64,
    ) -> Result<Option<(i32, i64, i64, i64)>, i16> {
        let last = u32::try_from(p.last_fetched_epoch).map_err(|_| K::InvalidRequest.code())?;
        let current = u32::try_from(p.current_leader_epoch).ok().map(LeaderEpoch);
        let partition =
            lookup(&self.manager, tp).map_err(|e: ReplicaError| kafka_code(error_code(&e)))?;
        let end = partition
            .end_offset_for_epoch(LeaderEpoch(last), current)
            .await
            .map_err(|e| kafka_code(error_code(&e)))?;
        let progress = partition.progress();
        let answer = |epoch: i32, end: i64| {
            Some((
                epoch,
                end,
                offset_i64(progress.high_watermark.0),
                offset_i64(progress.log_start.0),
            ))
        };
        Ok(match end {
            None => answer(-1, -1),
            Some((epoch, end)) if epoch.0 < last || end.0 < offset => answer(
                i32::try_from(epoch.0).unwrap_or(i32::MAX),
                offset_i64(end.0),
            ),
            Some(_) => None,
        })
    }

    async fn list_offsets(&self, request: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
        let mut topics = Vec::with_capacity(request.topics.len());
        for topic in &request.topics {
            let mut partitions = Vec::with_capacity(topic.partitions.len());
            for p in &topic.partitions {
                let response = ListOffsetsPartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_timestamp(-1)
                    .with_offset(-1);
                let found = match partition_of(p.partition_index) {
                    None => Err(K::UnknownTopicOrPartition.code()),
                    Some(partition) => {
                        let tp = TopicPartition {
                            topic: topic.name.0.to_string(),
                            partition,
                        };
                        let epoch = u32::try_from(p.current_leader_epoch).ok().map(LeaderEpoch);
                        let listed = match lookup(&self.manager, &tp) {
                            Ok(partition) => partition.list_offset_at(p.timestamp, epoch).await,
                            Err(e) => Err(e),
                        };
                        listed.map_err(|e: ReplicaError| kafka_code(error_code(&e)))
                    }
                };
                partitions.push(match found {
                    Ok((offset, timestamp, epoch)) => response
                        .with_offset(offset.map_or(-1, |o| offset_i64(o.0)))
                        .with_timestamp(timestamp)
                        .with_leader_epoch(if version >= 4 {
                            i32::try_from(epoch.0).unwrap_or(i32::MAX)
                        } else {
                            -1
                        }),
                    Err(code) => response.with_error_code(code),
                });
            }
            topics.push(
                ListOffsetsTopicResponse::default()
                    .with_name(topic.name.clone())
                    .with_partitions(partitions),
            );
        }
        ListOffsetsResponse::default().with_topics(topics)
    }

    async fn init_producer_id(&self, request: InitProducerIdRequest) -> InitProducerIdResponse {
        let refused = InitProducerIdResponse::default()
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        // As Kafka: null is an idempotent producer, "" is malformed.
        match &request.transactional_id {
            None => {}
            Some(id) if id.0.is_empty() => {
                return refused.with_error_code(K::InvalidRequest.code())
            }
            Some(_) => {
                return refused.with_error_code(K::TransactionalIdAuthorizationFailed.code())
            }
        }
        match self.manager.next_producer_id().await {
            Ok(id) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(0),
            Err(e) => refused.with_error_code(kafka_code(error_code(&e))),
        }
    }
}

fn offset_i64(offset: u64) -> i64 {
    i64::try_from(offset).unwrap_or(i64::MAX)
}
