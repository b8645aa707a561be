//! The broker's gRPC front end: `Broker` (Metadata, Produce, Fetch,
//! ListOffsets) on the client port and `Replication` (ReplicaFetch, over gRPC
//! and over the replication wire, `raftline_proto::wire`) on the
//! peer port. Thin adapters: wire types in, [`ReplicaManager`] and
//! [`Partition`] calls, wire types out; every [`ReplicaError`] becomes one
//! typed code with the partition named and, for NOT_LEADER, the leader.
//!
//! ```text
//! Produce ─> partition.produce (acks 0: answered at once, appended in the background)
//! Fetch / ReplicaFetch ─> a pass over the partitions ─> enough bytes, an error,
//!     or the deadline? answer : wait for any partition's progress, pass again
//! ```

use crate::lanes::{serve_in_lanes, Staged};
use crate::log::Chunks;
use crate::metadata::{BrokerId, MetadataCache};
use crate::position::{LeaderEpoch, Offset, TopicPartition};
use crate::replica::{Acks, FollowerFetch, Partition, ReadResult, ReplicaError, ReplicaManager};
use futures_util::future::select_all;
use raftline_proto::pb::{self, ErrorCode};
use raftline_proto::wire;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

/// acks=all's wait when the request names none (Kafka's `request.timeout.ms`).
pub(crate) const DEFAULT_PRODUCE_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest long poll a client may ask for.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// A partition's read bound when the request names none.
const DEFAULT_PARTITION_MAX_BYTES: u32 = 1 << 20;
/// The most a fetch answer carries (Kafka's `fetch.max.bytes` default).
pub const MAX_FETCH_RESPONSE_BYTES: u32 = 50 << 20;
/// The largest request a broker service decodes: a 1 MiB batch and headroom,
/// or a fetch request naming many partitions.
pub const MAX_REQUEST_BYTES: usize = 8 << 20;
/// The largest answer it encodes.
pub const MAX_RESPONSE_BYTES: usize = (MAX_FETCH_RESPONSE_BYTES as usize) + (1 << 20);

/// The wire code of an error.
pub fn error_code(error: &ReplicaError) -> ErrorCode {
    match error {
        ReplicaError::UnknownTopicOrPartition { .. } => ErrorCode::UnknownTopicOrPartition,
        ReplicaError::NotLeader { .. } => ErrorCode::NotLeaderOrFollower,
        ReplicaError::NotEnoughReplicas { .. } => ErrorCode::NotEnoughReplicas,
        ReplicaError::FencedLeaderEpoch { .. } => ErrorCode::FencedLeaderEpoch,
        ReplicaError::UnknownLeaderEpoch { .. } => ErrorCode::UnknownLeaderEpoch,
        ReplicaError::OffsetNotAvailable { .. } => ErrorCode::OffsetNotAvailable,
        ReplicaError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        ReplicaError::RecordTooLarge { .. } => ErrorCode::RecordTooLarge,
        ReplicaError::CorruptRecord { .. } => ErrorCode::CorruptRecord,
        ReplicaError::InvalidRecord { .. } => ErrorCode::InvalidRecord,
        ReplicaError::InternalTopic { .. } => ErrorCode::InvalidTopicName,
        ReplicaError::InvalidRequest(_) => ErrorCode::InvalidRequest,
        ReplicaError::Storage { .. } => ErrorCode::KafkaStorageError,
        ReplicaError::Timeout { .. } | ReplicaError::Unavailable { .. } => {
            ErrorCode::RequestTimedOut
        }
        ReplicaError::OutOfOrderSequence { .. } => ErrorCode::OutOfOrderSequenceNumber,
        ReplicaError::InvalidProducerEpoch { .. } => ErrorCode::InvalidProducerEpoch,
    }
}

/// An error as the wire carries it, with the leader's address for NOT_LEADER.
pub fn error_to_wire(error: &ReplicaError, metadata: &MetadataCache) -> pb::Error {
    let leader = match error {
        ReplicaError::NotLeader { leader, .. } => *leader,
        _ => None,
    };
    pb::Error {
        code: error_code(error) as i32,
        message: error.to_string(),
        leader_hint: leader.map(|b| u64::from(b.0)),
        leader_address: leader
            .and_then(|b| metadata.broker(b))
            .and_then(|b| b.endpoints.get("client").cloned()),
    }
}

fn invalid(message: impl Into<String>) -> Status {
    let error = ReplicaError::InvalidRequest(message.into());
    let details = prost::Message::encode_to_vec(&pb::Error {
        code: ErrorCode::InvalidRequest as i32,
        message: error.to_string(),
        leader_hint: None,
        leader_address: None,
    });
    Status::with_details(
        tonic::Code::InvalidArgument,
        error.to_string(),
        details.into(),
    )
}

/// The hosted partition `tp`, or why a client cannot use this broker for it.
pub(crate) fn lookup(
    manager: &ReplicaManager,
    tp: &TopicPartition,
) -> Result<Arc<Partition>, ReplicaError> {
    if let Some(p) = manager.partition(tp) {
        return Ok(p);
    }
    let link = manager.link();
    match link
        .metadata
        .topic(&tp.topic)
        .and_then(|t| t.partitions.get(&tp.partition))
    {
        Some(info) => Err(ReplicaError::NotLeader {
            partition: tp.clone(),
            local: manager.local(),
            leader: info.leader,
        }),
        None => Err(ReplicaError::UnknownTopicOrPartition {
            partition: tp.clone(),
        }),
    }
}

/// A partition's fetch result, its records apart (in the buffers they were
/// read in), and whether it must be answered at once.
fn result_of(
    tp: &TopicPartition,
    read: Result<ReadResult, ReplicaError>,
    metadata: &MetadataCache,
) -> (pb::FetchResult, Chunks, bool) {
    let mut result = pb::FetchResult {
        topic: tp.topic.clone(),
        partition: tp.partition,
        ..pb::FetchResult::default()
    };
    match read {
        Ok(read) => {
            result.high_watermark = read.high_watermark.0;
            result.log_start = read.log_start.0;
            result.log_end = read.log_end.0;
            let done = read.diverging.is_some();
            result.diverging = read.diverging.map(|d| pb::DivergingEpoch {
                epoch: d.epoch.0,
                end_offset: d.end_offset.0,
            });
            (result, read.records, done)
        }
        Err(e) => {
            if let ReplicaError::OffsetOutOfRange {
                log_start, log_end, ..
            } = &e
            {
                result.log_start = log_start.0;
                result.log_end = log_end.0;
            }
            result.error = Some(error_to_wire(&e, metadata));
            (result, Chunks::default(), true)
        }
    }
}

/// One pass over a fetch's partitions: their results and, apart, their
/// records, the bytes read, and whether something must be answered at once
/// (an error, a divergence).
#[derive(Default)]
struct Pass {
    results: Vec<pb::FetchResult>,
    records: Vec<Chunks>,
    bytes: usize,
    answer_now: bool,
}

impl Pass {
    fn push(
        &mut self,
        tp: &TopicPartition,
        read: Result<ReadResult, ReplicaError>,
        metadata: &MetadataCache,
    ) {
        let (result, records, now) = result_of(tp, read, metadata);
        self.bytes += records.len();
        self.answer_now |= now;
        self.results.push(result);
        self.records.push(records);
    }

    /// The results with their records each in one buffer (for a message
    /// that holds them: gRPC, the Kafka front end).
    fn joined(self) -> Vec<pb::FetchResult> {
        self.results
            .into_iter()
            .zip(self.records)
            .map(|(mut result, records)| {
                result.records = records.into_bytes();
                result
            })
            .collect()
    }

    /// The answer for the replication wire, which sends each buffer as it is.
    fn into_answer(self) -> wire::Answer {
        wire::Answer {
            response: pb::FetchResponse {
                partitions: self.results,
            },
            records: self.records.into_iter().map(Chunks::into_vec).collect(),
        }
    }
}

/// Runs `pass` until it has `min_bytes`, reports something to answer at once
/// (an error, a divergence), or `max_wait` is over; between passes it waits
/// for any of the partitions' progress to change.
async fn long_poll<F, Fut>(
    partitions: &[Arc<Partition>],
    max_wait: Duration,
    min_bytes: usize,
    mut pass: F,
) -> Pass
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Pass>,
{
    let deadline = tokio::time::Instant::now() + max_wait.min(MAX_WAIT);
    let mut watches: Vec<_> = partitions.iter().map(|p| p.watch()).collect();
    loop {
        for w in &mut watches {
            w.borrow_and_update();
        }
        let done = pass().await;
        if done.answer_now
            || done.bytes >= min_bytes.max(1)
            || watches.is_empty()
            || tokio::time::Instant::now() >= deadline
        {
            return done;
        }
        let any = select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
        let woke = match tokio::time::timeout_at(deadline, any).await {
            Err(_) => return done,
            Ok((changed, index, _)) => changed.err().map(|_| index),
        };
        // A partition that went away wakes no one again.
        if let Some(index) = woke {
            watches.remove(index);
        }
    }
}

/// The partition a client may produce to: hosted here, and not the
/// coordinator's own `__consumer_offsets`.
fn writable(manager: &ReplicaManager, tp: &TopicPartition) -> Result<Arc<Partition>, ReplicaError> {
    if tp.topic == crate::group::OFFSETS_TOPIC {
        return Err(ReplicaError::InternalTopic {
            topic: tp.topic.clone(),
        });
    }
    lookup(manager, tp)
}

/// A client's produce to `tp` (either front end): `None` when acks=0, whose
/// append runs in the background and answers nothing.
pub(crate) async fn produce_to(
    manager: &ReplicaManager,
    tp: &TopicPartition,
    records: bytes::Bytes,
    acks: Acks,
    timeout: Duration,
) -> Result<Option<crate::replica::Produced>, ReplicaError> {
    let partition = writable(manager, tp)?;
    if acks == Acks::None {
        tokio::spawn(async move {
            if let Err(e) = partition.produce(records, Acks::Leader, timeout).await {
                tracing::debug!(error = %e, "acks=0 produce failed");
            }
        });
        return Ok(None);
    }
    partition.produce(records, acks, timeout).await.map(Some)
}

/// A consumer's fetch (either front end): a long poll over `partitions`
/// until `min_bytes` are readable or `max_wait` is over, at most `max_bytes`
/// (0: the default) in all.
pub(crate) async fn consumer_fetch(
    manager: &ReplicaManager,
    partitions: &[pb::FetchPartition],
    max_wait: Duration,
    min_bytes: usize,
    max_bytes: u32,
) -> Vec<pb::FetchResult> {
    let hosted: Vec<Arc<Partition>> = partitions
        .iter()
        .filter_map(|p| manager.partition(&topic_partition(p)))
        .collect();
    let total_max = match max_bytes {
        0 => MAX_FETCH_RESPONSE_BYTES,
        n => n.min(MAX_FETCH_RESPONSE_BYTES),
    } as usize;
    long_poll(&hosted, max_wait, min_bytes, || async move {
        let metadata = manager.link().metadata;
        let mut pass = Pass::default();
        for p in partitions {
            let tp = topic_partition(p);
            let budget = partition_max(p).min(total_max.saturating_sub(pass.bytes));
            let read = if budget == 0 && pass.bytes > 0 {
                Ok(ReadResult::default())
            } else {
                match lookup(manager, &tp) {
                    Ok(partition) => {
                        partition
                            .fetch(
                                Offset(p.offset),
                                p.current_leader_epoch.map(LeaderEpoch),
                                budget.max(1),
                            )
                            .await
                    }
                    Err(e) => Err(e),
                }
            };
            pass.push(&tp, read, &metadata);
        }
        pass
    })
    .await
    .joined()
}

fn topic_partition(p: &pb::FetchPartition) -> TopicPartition {
    TopicPartition {
        topic: p.topic.clone(),
        partition: p.partition,
    }
}

fn partition_max(p: &pb::FetchPartition) -> usize {
    let max = if p.max_bytes == 0 {
        DEFAULT_PARTITION_MAX_BYTES
    } else {
        p.max_bytes
    };
    max.min(MAX_FETCH_RESPONSE_BYTES) as usize
}

/// The client port's data-path service.
#[derive(Clone)]
pub struct BrokerService {
    manager: Arc<ReplicaManager>,
}

impl BrokerService {
    /// The service over `manager`.
    pub fn new(manager: Arc<ReplicaManager>) -> Self {
        BrokerService { manager }
    }

    /// As a tonic server with its message size limits set.
    pub fn into_server(self) -> pb::broker_server::BrokerServer<Self> {
        pb::broker_server::BrokerServer::new(self)
            .max_decoding_message_size(MAX_REQUEST_BYTES)
            .max_encoding_message_size(MAX_RESPONSE_BYTES)
    }
}

/// Answers a produce stream holds before it stops reading requests (the
/// client is not reading its answers).
const STREAM_ANSWERS: usize = 64;

/// Requests a produce stream's partition lane holds not yet staged before
/// the stream stops reading: the producer keeps at most 5 batches in flight
/// per partition.
const STREAM_LANE_DEPTH: usize = 8;

/// A produce request's partition, acks and timeout, or why it is invalid.
fn produce_args(r: &pb::ProduceRequest) -> Result<(TopicPartition, Acks, Duration), String> {
    let acks = match pb::Acks::try_from(r.acks) {
        Ok(pb::Acks::All) => Acks::All,
        Ok(pb::Acks::Leader) => Acks::Leader,
        Ok(pb::Acks::None) => Acks::None,
        Err(_) => return Err(format!("acks {} is not ALL, LEADER or NONE", r.acks)),
    };
    let timeout = match r.timeout_ms {
        0 => DEFAULT_PRODUCE_TIMEOUT,
        ms => Duration::from_millis(u64::from(ms)),
    };
    let tp = TopicPartition {
        topic: r.topic.clone(),
        partition: r.partition,
    };
    Ok((tp, acks, timeout))
}

impl BrokerService {
    /// A produce's answer: its offsets, or its typed error.
    fn produce_response(
        &self,
        produced: Result<crate::replica::Produced, ReplicaError>,
    ) -> pb::ProduceResponse {
        match produced {
            Ok(p) => pb::ProduceResponse {
                error: None,
                base_offset: p.base_offset.0,
                log_start: p.log_start.0,
            },
            Err(e) => pb::ProduceResponse {
                error: Some(error_to_wire(&e, &self.manager.link().metadata)),
                ..pb::ProduceResponse::default()
            },
        }
    }

    /// One produce stream, in a lane per partition (`crate::lanes`): a
    /// partition's batches are staged (appended) one after another in the
    /// order they came, so they land in the order sent, while other
    /// partitions' batches on the same stream go on; their completions
    /// (durable, acknowledged) run concurrently and are answered as each
    /// ends. When the client stops sending, the staged batches still
    /// complete (their answers are dropped if it has gone).
    async fn serve_produce_stream(
        self,
        inbound: tonic::Streaming<pb::ProduceStreamRequest>,
        answers: tokio::sync::mpsc::Sender<pb::ProduceStreamResponse>,
    ) {
        use futures_util::stream::StreamExt;
        // A broken stream ends the requests; what was staged still completes.
        let requests = inbound.take_while(|m| std::future::ready(m.is_ok()));
        let requests = Box::pin(requests.filter_map(|m| std::future::ready(m.ok())));
        let partition_of = |m: &pb::ProduceStreamRequest| {
            m.request.as_ref().map(|r| (r.topic.clone(), r.partition))
        };
        let this = &self;
        let stage = |m: pb::ProduceStreamRequest| async move {
            let id = m.correlation_id;
            let answer = move |response| pb::ProduceStreamResponse {
                correlation_id: id,
                response: Some(response),
            };
            match this.stage(m.request.unwrap_or_default()).await {
                Ok((partition, staged, timeout, acks)) => Staged {
                    // acks=0: answered once appended, nothing after.
                    now: (acks == Acks::None).then(|| answer(pb::ProduceResponse::default())),
                    later: Some(async move {
                        let done = partition.finish_produce(staged, timeout).await;
                        if acks != Acks::None {
                            return Some(answer(this.produce_response(done)));
                        }
                        if let Err(e) = done {
                            tracing::warn!(
                                partition = %partition.topic_partition(),
                                error = %e,
                                "an acks=0 batch on a produce stream was appended but not completed"
                            );
                        }
                        None
                    }),
                },
                Err(e) => Staged {
                    now: Some(answer(this.produce_response(Err(e)))),
                    later: None,
                },
            }
        };
        serve_in_lanes(requests, partition_of, stage, answers, STREAM_LANE_DEPTH).await;
    }

    /// A stream request's first half: checked and appended (see
    /// [`Partition::stage_produce`]).
    async fn stage(
        &self,
        r: pb::ProduceRequest,
    ) -> Result<
        (
            Arc<Partition>,
            crate::replica::StagedProduce,
            Duration,
            Acks,
        ),
        ReplicaError,
    > {
        let (tp, acks, timeout) = produce_args(&r).map_err(ReplicaError::InvalidRequest)?;
        let partition = writable(&self.manager, &tp)?;
        let effective = if acks == Acks::None {
            Acks::Leader
        } else {
            acks
        };
        let staged = partition.stage_produce(r.records, effective, None).await?;
        Ok((partition, staged, timeout, acks))
    }

    /// `tp`'s log start, high watermark and log end: from the local replica
    /// if it leads, else asked of the leader at `leader_addr` (no log end).
    async fn offsets(
        &self,
        tp: &TopicPartition,
        leader_addr: Option<String>,
    ) -> (Option<u64>, Option<u64>, Option<u64>) {
        if let Some(p) = self
            .manager
            .partition(tp)
            .map(|p| p.progress())
            .filter(|p| p.leader)
        {
            return (
                Some(p.log_start.0),
                Some(p.high_watermark.0),
                Some(p.log_end.0),
            );
        }
        let Some(channel) = leader_addr.and_then(|a| self.manager.connector().channel(&a).ok())
        else {
            return (None, None, None);
        };
        let mut client = pb::broker_client::BrokerClient::new(channel);
        let request = pb::ListOffsetsRequest {
            partitions: [-2, -1]
                .into_iter()
                .map(|timestamp| pb::ListOffsetsPartition {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    timestamp,
                })
                .collect(),
        };
        match tokio::time::timeout(Duration::from_secs(2), client.list_offsets(request)).await {
            Ok(Ok(reply)) => {
                let r = reply.into_inner().partitions;
                let at = |i: usize| {
                    r.get(i)
                        .filter(|r| r.error.is_none())
                        .and_then(|r| r.offset)
                };
                (at(0), at(1), None)
            }
            _ => (None, None, None),
        }
    }
}

#[tonic::async_trait]
impl pb::broker_server::Broker for BrokerService {
    async fn metadata(
        &self,
        request: Request<pb::MetadataRequest>,
    ) -> Result<Response<pb::MetadataResponse>, Status> {
        let wanted = request.into_inner().topics;
        let metadata = self.manager.link().metadata;
        let brokers = metadata
            .brokers()
            .values()
            .map(|b| pb::BrokerMetadata {
                id: b.id.0,
                address: b.endpoints.get("client").cloned().unwrap_or_default(),
                rack: b.rack.clone(),
                fenced: b.fenced,
            })
            .collect();
        let names: Vec<String> = if wanted.is_empty() {
            metadata.topics().keys().cloned().collect()
        } else {
            wanted
        };
        let topics = names
            .into_iter()
            .map(|name| match metadata.topic(&name) {
                Some(topic) => pb::TopicMetadata {
                    name: name.clone(),
                    id: topic.id,
                    error: None,
                    partitions: topic
                        .partitions
                        .iter()
                        .map(|(&index, p)| pb::PartitionMetadata {
                            index,
                            leader: p.leader.map(|b| b.0),
                            leader_epoch: p.leader_epoch.0,
                            replicas: p.replicas.iter().map(|b| b.0).collect(),
                            isr: p.isr.iter().map(|b| b.0).collect(),
                        })
                        .collect(),
                },
                None => pb::TopicMetadata {
                    error: Some(pb::Error {
                        code: ErrorCode::UnknownTopicOrPartition as i32,
                        message: format!(
                            "unknown topic {name:?}: create it with `raftline topic create`"
                        ),
                        leader_hint: None,
                        leader_address: None,
                    }),
                    name,
                    ..pb::TopicMetadata::default()
                },
            })
            .collect();
        Ok(Response::new(pb::MetadataResponse {
            brokers,
            topics,
            metadata_version: metadata.version(),
        }))
    }

    async fn produce(
        &self,
        request: Request<pb::ProduceRequest>,
    ) -> Result<Response<pb::ProduceResponse>, Status> {
        let r = request.into_inner();
        let (tp, acks, timeout) = produce_args(&r).map_err(invalid)?;
        let produced = match produce_to(&self.manager, &tp, r.records, acks, timeout).await {
            Ok(None) => return Ok(Response::new(pb::ProduceResponse::default())),
            Ok(Some(p)) => Ok(p),
            Err(e) => Err(e),
        };
        Ok(Response::new(self.produce_response(produced)))
    }

    type ProduceStreamStream = std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<pb::ProduceStreamResponse, Status>> + Send>,
    >;

    async fn produce_stream(
        &self,
        request: Request<tonic::Streaming<pb::ProduceStreamRequest>>,
    ) -> Result<Response<Self::ProduceStreamStream>, Status> {
        let inbound = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(STREAM_ANSWERS);
        tokio::spawn(self.clone().serve_produce_stream(inbound, tx));
        let answers = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|answer| (Ok(answer), rx))
        });
        Ok(Response::new(Box::pin(answers)))
    }

    async fn fetch(
        &self,
        request: Request<pb::FetchRequest>,
    ) -> Result<Response<pb::FetchResponse>, Status> {
        let r = request.into_inner();
        if r.partitions.is_empty() {
            return Err(invalid("a fetch must name at least one partition"));
        }
        if r.partitions.iter().any(|p| p.last_fetched_epoch.is_some()) {
            return Err(invalid(
                "last_fetched_epoch is for replicas: use Replication.ReplicaFetch",
            ));
        }
        let results = consumer_fetch(
            &self.manager,
            &r.partitions,
            Duration::from_millis(u64::from(r.max_wait_ms)),
            r.min_bytes as usize,
            r.max_bytes,
        )
        .await;
        Ok(Response::new(pb::FetchResponse {
            partitions: results,
        }))
    }

    async fn init_producer_id(
        &self,
        _request: Request<pb::InitProducerIdRequest>,
    ) -> Result<Response<pb::InitProducerIdResponse>, Status> {
        Ok(Response::new(match self.manager.next_producer_id().await {
            Ok(producer_id) => pb::InitProducerIdResponse {
                error: None,
                producer_id,
                producer_epoch: 0,
            },
            Err(e) => pb::InitProducerIdResponse {
                error: Some(error_to_wire(&e, &self.manager.link().metadata)),
                producer_id: -1,
                producer_epoch: -1,
            },
        }))
    }

    async fn describe_topics(
        &self,
        request: Request<pb::DescribeTopicsRequest>,
    ) -> Result<Response<pb::DescribeTopicsResponse>, Status> {
        let wanted = request.into_inner().topics;
        let metadata = self.manager.link().metadata;
        let names: Vec<String> = if wanted.is_empty() {
            metadata.topics().keys().cloned().collect()
        } else {
            wanted
        };
        let mut topics = Vec::with_capacity(names.len());
        for name in names {
            let Some(topic) = metadata.topic(&name) else {
                topics.push(pb::TopicDetail {
                    error: Some(error_to_wire(
                        &ReplicaError::UnknownTopicOrPartition {
                            partition: TopicPartition {
                                topic: name.clone(),
                                partition: 0,
                            },
                        },
                        &metadata,
                    )),
                    name,
                    ..pb::TopicDetail::default()
                });
                continue;
            };
            let asks = topic.partitions.iter().map(|(&index, p)| {
                let tp = TopicPartition {
                    topic: name.clone(),
                    partition: index,
                };
                let leader_addr = p
                    .leader
                    .and_then(|l| metadata.broker(l))
                    .and_then(|b| b.endpoints.get("client").cloned());
                async move {
                    let (start, hw, end) = self.offsets(&tp, leader_addr).await;
                    pb::PartitionDetail {
                        index,
                        leader: p.leader.map(|b| b.0),
                        leader_epoch: p.leader_epoch.0,
                        replicas: p.replicas.iter().map(|b| b.0).collect(),
                        isr: p.isr.iter().map(|b| b.0).collect(),
                        log_start: start,
                        high_watermark: hw,
                        log_end: end,
                    }
                }
            });
            let partitions = futures_util::future::join_all(asks).await;
            topics.push(pb::TopicDetail {
                name: name.clone(),
                id: topic.id,
                error: None,
                configs: topic.configs.clone(),
                partitions,
            });
        }
        Ok(Response::new(pb::DescribeTopicsResponse { topics }))
    }

    async fn list_offsets(
        &self,
        request: Request<pb::ListOffsetsRequest>,
    ) -> Result<Response<pb::ListOffsetsResponse>, Status> {
        let r = request.into_inner();
        let mut results = Vec::with_capacity(r.partitions.len());
        for p in r.partitions {
            let tp = TopicPartition {
                topic: p.topic.clone(),
                partition: p.partition,
            };
            let found = match lookup(&self.manager, &tp) {
                Ok(partition) => partition.list_offset(p.timestamp).await,
                Err(e) => Err(e),
            };
            let mut result = pb::ListOffsetsResult {
                topic: p.topic,
                partition: p.partition,
                timestamp: -1,
                ..pb::ListOffsetsResult::default()
            };
            match found {
                Ok((offset, timestamp, epoch)) => {
                    result.offset = offset.map(|o| o.0);
                    result.timestamp = timestamp;
                    result.leader_epoch = epoch.0;
                }
                Err(e) => result.error = Some(error_to_wire(&e, &self.manager.link().metadata)),
            }
            results.push(result);
        }
        Ok(Response::new(pb::ListOffsetsResponse {
            partitions: results,
        }))
    }
}

/// The peer port's replication service.
#[derive(Clone)]
pub struct ReplicationService {
    manager: Arc<ReplicaManager>,
}

impl ReplicationService {
    /// The service over `manager`.
    pub fn new(manager: Arc<ReplicaManager>) -> Self {
        ReplicationService { manager }
    }

    /// As a tonic server with its message size limits set.
    pub fn into_server(self) -> pb::replication_server::ReplicationServer<Self> {
        pb::replication_server::ReplicationServer::new(self)
            .max_decoding_message_size(MAX_REQUEST_BYTES)
            .max_encoding_message_size(usize::MAX)
    }
}

impl ReplicationService {
    /// Answers a follower's fetch (both transports): the long poll over its
    /// partitions, or why the request itself is refused.
    async fn replica_fetch_answer(&self, r: pb::ReplicaFetchRequest) -> Result<Pass, ReplicaError> {
        let follower = BrokerId(r.replica_id);
        let mut fetches = Vec::with_capacity(r.partitions.len());
        for p in &r.partitions {
            let Some(epoch) = p.current_leader_epoch else {
                return Err(ReplicaError::InvalidRequest(
                    "a replica fetch must carry each partition's current_leader_epoch".into(),
                ));
            };
            fetches.push((
                topic_partition(p),
                FollowerFetch {
                    follower,
                    broker_epoch: r.broker_epoch,
                    current_leader_epoch: LeaderEpoch(epoch),
                    fetch_offset: Offset(p.offset),
                    last_fetched_epoch: p.last_fetched_epoch.map(LeaderEpoch),
                },
                partition_max(p),
            ));
        }
        let hosted: Vec<Arc<Partition>> = fetches
            .iter()
            .filter_map(|(tp, _, _)| self.manager.partition(tp))
            .collect();
        let manager = &self.manager;
        let fetches = &fetches;
        let pass = long_poll(
            &hosted,
            Duration::from_millis(u64::from(r.max_wait_ms)),
            r.min_bytes as usize,
            || async move {
                let metadata = manager.link().metadata;
                let mut pass = Pass::default();
                for (tp, fetch, max_bytes) in fetches {
                    let read = match lookup(manager, tp) {
                        Ok(partition) => {
                            let proposer = partition.clone();
                            partition
                                .replica_fetch(*fetch, *max_bytes, |proposal| {
                                    manager.propose_isr(proposer, proposal)
                                })
                                .await
                        }
                        Err(e) => Err(e),
                    };
                    pass.push(tp, read, &metadata);
                }
                pass
            },
        )
        .await;
        Ok(pass)
    }

    /// Serves the replication wire's connections (`raftline_proto::wire`,
    /// split from the peer port's gRPC by their preface) until `stop`: each
    /// on a task of its own, one call at a time.
    pub async fn serve_wire<S, IO>(self, connections: S, stop: CancellationToken)
    where
        S: futures_util::Stream<Item = IO> + Send + 'static,
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let mut connections = std::pin::pin!(connections);
        loop {
            let io = tokio::select! {
                () = stop.cancelled() => return,
                next = futures_util::StreamExt::next(&mut connections) => match next {
                    Some(io) => io,
                    None => return,
                },
            };
            let (service, stop) = (self.clone(), stop.clone());
            tokio::spawn(async move {
                let handle = |request| {
                    let service = service.clone();
                    async move {
                        service
                            .replica_fetch_answer(request)
                            .await
                            .map(Pass::into_answer)
                            .map_err(|e| error_to_wire(&e, &service.manager.link().metadata))
                    }
                };
                if let Err(e) = wire::serve_connection(io, handle, stop.cancelled()).await {
                    tracing::debug!(error = %e, "replication connection ended");
                }
            });
        }
    }
}

#[tonic::async_trait]
impl pb::replication_server::Replication for ReplicationService {
    async fn replica_fetch(
        &self,
        request: Request<pb::ReplicaFetchRequest>,
    ) -> Result<Response<pb::FetchResponse>, Status> {
        match self.replica_fetch_answer(request.into_inner()).await {
            Ok(pass) => Ok(Response::new(pb::FetchResponse {
                partitions: pass.joined(),
            })),
            Err(ReplicaError::InvalidRequest(message)) => Err(invalid(message)),
            Err(e) => Err(Status::internal(e.to_string())),
        }
    }
}
