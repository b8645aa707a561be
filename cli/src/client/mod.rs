//! The Rust client: bootstrap, metadata, and produce, fetch and offset calls
//! routed to partition leaders, with retries on the errors that say "ask the
//! new leader" (Kafka's retriable errors), up to a deadline.
//!
//! ```text
//! Client::connect(bootstrap) ─> Metadata from the first node that answers
//! produce(topic, p, batch) ─> leader of p ─┬─ ok ─> base offset
//!                                         └─ NOT_LEADER(leader address) / unavailable
//!                                            ─> re-route (or refresh metadata), back off, retry
//! Producer: partitioner + batching per partition; Consumer: positions + fetch per leader
//! ```

mod consumer;
mod group;
mod group_admin;
mod partitioner;
mod producer;
mod records;
mod stream;

pub use consumer::{Consumer, StartAt};
pub use group::{GroupConfig, GroupConsumer, TopicPartition};
pub use group_admin::is_non_empty_group;
pub use partitioner::{murmur2, partition_for_key};
pub use producer::{Producer, Sent};
pub use records::{decode_batches, encode_batch, ConsumerRecord, ProducerRecord, ProducerStamp};

use prost::Message;
use raftline_proto::pb::{
    self, broker_client::BrokerClient, groups_client::GroupsClient, ErrorCode,
};
use raftline_proto::transport::sized_endpoint;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use thiserror::Error;
use tonic::transport::{Channel, Endpoint};

pub use pb::Acks;

/// How long a produce waits before the client checks whether its partition's
/// leader moved, and how often then.
pub const LEADER_CHECK: std::time::Duration = std::time::Duration::from_millis(500);

/// How long an unknown topic is looked for before it is called unknown.
pub const METADATA_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What can go wrong talking to the cluster.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ClientError {
    /// No bootstrap server answered.
    #[error("cannot reach any node at {servers} ({last}). Is the cluster up? Start it with `scripts/cluster.sh up`, or pass --bootstrap-server host:port")]
    NoBroker {
        /// The servers tried.
        servers: String,
        /// The last failure.
        last: String,
    },
    /// The server answered with a typed error.
    #[error("{}: {message}", code.as_str_name())]
    Server {
        /// The code.
        code: ErrorCode,
        /// The server's message (names the partition).
        message: String,
        /// For NOT_LEADER: the leader's client address.
        leader_address: Option<String>,
    },
    /// The connection or call failed.
    #[error("{0}")]
    Transport(String),
    /// Records could not be decoded.
    #[error("corrupt records: {0}")]
    Corrupt(String),
    /// The caller's input is unusable.
    #[error("{0}")]
    Invalid(String),
}

impl ClientError {
    /// The typed code, when the server sent one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether trying again (after re-routing) may succeed, as Kafka's
    /// clients treat these codes.
    pub fn retriable(&self) -> bool {
        match self {
            ClientError::Server { code, .. } => matches!(
                code,
                ErrorCode::NotLeaderOrFollower
                    | ErrorCode::UnknownLeaderEpoch
                    | ErrorCode::OffsetNotAvailable
                    | ErrorCode::FencedLeaderEpoch
                    | ErrorCode::NotEnoughReplicas
                    | ErrorCode::RequestTimedOut
                    | ErrorCode::UnknownTopicOrPartition
                    | ErrorCode::KafkaStorageError
                    | ErrorCode::NotCoordinator
                    | ErrorCode::CoordinatorNotAvailable
                    | ErrorCode::CoordinatorLoadInProgress
            ),
            ClientError::Transport(_) | ClientError::NoBroker { .. } => true,
            ClientError::Corrupt(_) | ClientError::Invalid(_) => false,
        }
    }

    fn from_wire(error: pb::Error) -> ClientError {
        ClientError::Server {
            code: ErrorCode::try_from(error.code).unwrap_or(ErrorCode::Unspecified),
            message: error.message,
            leader_address: error.leader_address,
        }
    }

    fn from_status(status: tonic::Status) -> ClientError {
        match pb::Error::decode(status.details()) {
            Ok(e) if e.code != 0 => ClientError::from_wire(e),
            _ => ClientError::Transport(format!("{}: {}", status.code(), status.message())),
        }
    }
}

/// One call with a deadline: the answer, the typed error in a failed
/// status, or a transport error naming `what`.
async fn rpc<T>(
    what: &str,
    deadline: Duration,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, ClientError> {
    tokio::time::timeout(deadline, call)
        .await
        .map_err(|_| ClientError::Transport(format!("{what}: no answer in time")))?
        .map(tonic::Response::into_inner)
        .map_err(ClientError::from_status)
}

/// How the client connects and how long it keeps trying.
#[derive(Clone)]
pub struct ClientConfig {
    /// Client ports to ask first, `host:port`.
    pub bootstrap: Vec<String>,
    /// One call's deadline (beyond a fetch's long poll).
    pub request_timeout: Duration,
    /// A connection attempt's deadline.
    pub connect_timeout: Duration,
    /// Between retries.
    pub retry_backoff: Duration,
    /// How long a produce keeps retrying before it fails (Kafka's
    /// `delivery.timeout.ms`).
    pub delivery_timeout: Duration,
    /// How channels are made; `None` is plain TCP (the simulator hands in
    /// its own network).
    pub connector: Option<Arc<dyn raftline_proto::transport::Connector>>,
}

impl ClientConfig {
    /// Defaults for `bootstrap` (comma-separated `host:port` also accepted).
    pub fn new(bootstrap: &str) -> Self {
        ClientConfig {
            bootstrap: bootstrap
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(2),
            retry_backoff: Duration::from_millis(100),
            delivery_timeout: Duration::from_secs(30),
            connector: None,
        }
    }
}

/// The cluster as one node described it.
#[derive(Clone, Debug, Default)]
pub struct Metadata {
    /// Broker id -> its description.
    pub brokers: BTreeMap<u32, pb::BrokerMetadata>,
    /// Topic name -> its description.
    pub topics: BTreeMap<String, pb::TopicMetadata>,
}

impl Metadata {
    /// The client address of `topic`'s partition `p`'s leader.
    pub fn leader_address(&self, topic: &str, p: u32) -> Option<String> {
        let leader = self
            .topics
            .get(topic)?
            .partitions
            .iter()
            .find(|m| m.index == p)?
            .leader?;
        self.brokers
            .get(&leader)
            .map(|b| b.address.clone())
            .filter(|a| !a.is_empty())
    }

    /// `newer`, except that a partition this metadata knows in a later leader
    /// epoch (same topic id) keeps this metadata's entry, and a topic `newer`
    /// does not know (or reports an error for) keeps this metadata's view: an
    /// answer from a broker that has not caught up never takes the client
    /// back to a deposed leader (KIP-320).
    pub fn merged_with(&self, mut newer: Metadata) -> Metadata {
        for (name, known) in &self.topics {
            let answered = newer.topics.get(name).filter(|t| t.error.is_none());
            match answered {
                // A broker that does not know the topic (yet: a restarted
                // node's first image may come from a lagging controller)
                // does not make the client forget it: a later answer from a
                // deposed leader would then take it back to an older epoch.
                None if known.error.is_none() => {
                    newer.topics.insert(name.clone(), known.clone());
                }
                Some(topic) if topic.id == known.id => {
                    let mut topic = topic.clone();
                    for partition in topic.partitions.iter_mut() {
                        let kept = known.partitions.iter().find(|k| {
                            k.index == partition.index && k.leader_epoch > partition.leader_epoch
                        });
                        if let Some(kept) = kept {
                            *partition = kept.clone();
                        }
                    }
                    for k in &known.partitions {
                        if !topic.partitions.iter().any(|p| p.index == k.index) {
                            topic.partitions.push(k.clone());
                        }
                    }
                    topic.partitions.sort_by_key(|p| p.index);
                    newer.topics.insert(name.clone(), topic);
                }
                _ => {}
            }
        }
        for (id, broker) in &self.brokers {
            newer.brokers.entry(*id).or_insert_with(|| broker.clone());
        }
        newer
    }

    /// The leader epoch of `topic`'s partition `p`, as this metadata has it.
    pub fn leader_epoch(&self, topic: &str, p: u32) -> Option<u32> {
        self.topics
            .get(topic)?
            .partitions
            .iter()
            .find(|m| m.index == p)
            .map(|m| m.leader_epoch)
    }
}

struct State {
    channels: BTreeMap<String, Channel>,
    metadata: Arc<Metadata>,
    /// Leaders learned from NOT_LEADER errors, ahead of metadata.
    leaders: BTreeMap<(String, u32), String>,
    /// When `metadata` was last fetched.
    refreshed: Option<tokio::time::Instant>,
    /// Produce streams by broker address.
    streams: BTreeMap<String, stream::ProduceStream>,
}

/// A cloneable connection to a Raftline cluster.
#[derive(Clone)]
pub struct Client {
    config: Arc<ClientConfig>,
    state: Arc<Mutex<State>>,
}

impl Client {
    /// Connects: asks the bootstrap servers for metadata until one answers.
    pub async fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        let client = Client {
            config: Arc::new(config),
            state: Arc::new(Mutex::new(State {
                channels: BTreeMap::new(),
                metadata: Arc::new(Metadata::default()),
                leaders: BTreeMap::new(),
                refreshed: None,
                streams: BTreeMap::new(),
            })),
        };
        client.refresh_metadata().await?;
        Ok(client)
    }

    /// The client's settings.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn channel(&self, addr: &str) -> Result<Channel, ClientError> {
        let mut state = self.state();
        if let Some(channel) = state.channels.get(addr) {
            return Ok(channel.clone());
        }
        let invalid = |e: tonic::transport::Error| {
            ClientError::Invalid(format!("{addr:?} is not host:port: {e}"))
        };
        let channel = match &self.config.connector {
            Some(connector) => connector.channel(addr).map_err(invalid)?,
            None => {
                sized_endpoint(Endpoint::from_shared(format!("http://{addr}")).map_err(invalid)?)
                    .connect_timeout(self.config.connect_timeout)
                    .tcp_nodelay(true)
                    .connect_lazy()
            }
        };
        state.channels.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }

    fn broker(&self, addr: &str) -> Result<BrokerClient<Channel>, ClientError> {
        Ok(BrokerClient::new(self.channel(addr)?)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX))
    }

    fn groups(&self, addr: &str) -> Result<GroupsClient<Channel>, ClientError> {
        Ok(GroupsClient::new(self.channel(addr)?))
    }

    /// The client address of `group`'s coordinator: asks every known broker
    /// in turn, retrying while it is unavailable (`__consumer_offsets` being
    /// created, an election) up to the request timeout.
    pub async fn find_coordinator(&self, group: &str) -> Result<String, ClientError> {
        let give_up = tokio::time::Instant::now() + self.config.request_timeout;
        loop {
            let metadata = self.metadata();
            let mut addrs: Vec<String> = metadata
                .brokers
                .values()
                .map(|b| b.address.clone())
                .collect();
            addrs.extend(self.config.bootstrap.iter().cloned());
            let mut last = ClientError::NoBroker {
                servers: self.config.bootstrap.join(","),
                last: "no broker known".into(),
            };
            for addr in addrs {
                let mut groups = self.groups(&addr)?;
                let request = pb::FindCoordinatorRequest {
                    group: group.to_string(),
                };
                match rpc(
                    "find coordinator",
                    self.config.connect_timeout * 2,
                    groups.find_coordinator(request),
                )
                .await
                {
                    Ok(reply) => match reply.error {
                        None => return Ok(reply.address),
                        Some(e) => last = ClientError::from_wire(e),
                    },
                    Err(e) => last = e,
                }
                if !last.retriable() {
                    return Err(last);
                }
            }
            if tokio::time::Instant::now() >= give_up {
                return Err(last);
            }
            tokio::time::sleep(self.config.retry_backoff).await;
            let _ = self.refresh_metadata().await;
        }
    }

    /// The metadata last fetched.
    pub fn metadata(&self) -> Arc<Metadata> {
        self.state().metadata.clone()
    }

    /// Fetches metadata from the known brokers and the bootstrap servers,
    /// all at once: the first answer wins, so a broker that died without
    /// closing its connections (power loss, a partition) costs nothing.
    pub async fn refresh_metadata(&self) -> Result<Arc<Metadata>, ClientError> {
        let mut candidates: Vec<String> = self
            .metadata()
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| b.address.clone())
            .collect();
        for addr in &self.config.bootstrap {
            if !candidates.contains(addr) {
                candidates.push(addr.clone());
            }
        }
        let asks: Vec<_> = candidates
            .iter()
            .map(|addr| Box::pin(self.ask_metadata(addr)))
            .collect();
        let last = if asks.is_empty() {
            String::from("no address given")
        } else {
            match futures_util::future::select_ok(asks).await {
                Ok((metadata, _)) => {
                    let mut state = self.state();
                    let metadata = Arc::new(state.metadata.merged_with(metadata));
                    state.metadata = metadata.clone();
                    state.leaders.clear();
                    state.refreshed = Some(tokio::time::Instant::now());
                    return Ok(metadata);
                }
                Err(last) => last,
            }
        };
        Err(ClientError::NoBroker {
            servers: self.config.bootstrap.join(","),
            last,
        })
    }

    /// `topic`'s partitions. An unknown topic is asked for again for up to
    /// [`METADATA_WAIT`] (a topic just created reaches every broker's
    /// metadata a moment later), then refused.
    pub async fn partitions(&self, topic: &str) -> Result<Vec<pb::PartitionMetadata>, ClientError> {
        let give_up = tokio::time::Instant::now() + METADATA_WAIT;
        let mut metadata = self.metadata();
        loop {
            if let Some(t) = metadata.topics.get(topic).filter(|t| t.error.is_none()) {
                return Ok(t.partitions.clone());
            }
            if tokio::time::Instant::now() >= give_up {
                return Err(ClientError::Server {
                    code: ErrorCode::UnknownTopicOrPartition,
                    message: format!(
                        "unknown topic {topic:?}: create it with `raftline topic create {topic} --partitions N --replication-factor R`"
                    ),
                    leader_address: None,
                });
            }
            tokio::time::sleep(self.config.retry_backoff).await;
            metadata = self.refresh_metadata().await?;
        }
    }

    /// One broker's metadata, or why not.
    async fn ask_metadata(&self, addr: &str) -> Result<Metadata, String> {
        let mut broker = self.broker(addr).map_err(|e| e.to_string())?;
        let call = broker.metadata(pb::MetadataRequest { topics: Vec::new() });
        match tokio::time::timeout(self.config.connect_timeout * 2, call).await {
            Ok(Ok(reply)) => {
                let reply = reply.into_inner();
                Ok(Metadata {
                    brokers: reply.brokers.into_iter().map(|b| (b.id, b)).collect(),
                    topics: reply
                        .topics
                        .into_iter()
                        .map(|t| (t.name.clone(), t))
                        .collect(),
                })
            }
            Ok(Err(status)) => Err(format!("{addr}: {}", status.message())),
            Err(_) => Err(format!("{addr}: no answer in time")),
        }
    }

    /// Returns once the metadata names a leader of `topic`/`p` in an epoch
    /// newer than `epoch`, other than `used`: checked after [`LEADER_CHECK`]
    /// and every [`LEADER_CHECK`] then. Raced against a produce, it ends the
    /// wait on a leader that died without a word (power loss, a partition)
    /// as soon as another leads.
    async fn leader_moved(&self, topic: &str, p: u32, used: &str, epoch: Option<u32>) {
        loop {
            tokio::time::sleep(LEADER_CHECK).await;
            // Many produces may wait at once (one per partition): metadata
            // fetched within the last check serves them all.
            let recent = self
                .state()
                .refreshed
                .is_some_and(|at| at.elapsed() < LEADER_CHECK);
            let metadata = if recent {
                Ok(self.metadata())
            } else {
                self.refresh_metadata().await
            };
            if let Ok(metadata) = metadata {
                let newer = metadata.leader_epoch(topic, p) > epoch;
                let elsewhere = metadata
                    .leader_address(topic, p)
                    .is_some_and(|now| now != used);
                if newer && elsewhere {
                    return;
                }
            }
        }
    }

    /// Where to send requests for `topic`'s partition `p`.
    fn leader(&self, topic: &str, p: u32) -> Option<String> {
        let state = self.state();
        state
            .leaders
            .get(&(topic.to_string(), p))
            .cloned()
            .or_else(|| state.metadata.leader_address(topic, p))
    }

    /// Why there is no address for `topic`/`p`: no such partition in the
    /// metadata, or no leader right now.
    fn no_leader(&self, topic: &str, p: u32) -> ClientError {
        let metadata = self.metadata();
        let known = metadata
            .topics
            .get(topic)
            .is_some_and(|t| t.partitions.iter().any(|m| m.index == p));
        if known {
            ClientError::Server {
                code: ErrorCode::NotLeaderOrFollower,
                message: format!("{topic}-{p} has no leader right now; retry shortly"),
                leader_address: None,
            }
        } else {
            ClientError::Server {
                code: ErrorCode::UnknownTopicOrPartition,
                message: format!("unknown topic or partition {topic}-{p}"),
                leader_address: None,
            }
        }
    }

    /// After a failed call for `topic`/`p`: learn the leader from the error,
    /// or refresh metadata.
    async fn reroute(&self, topic: &str, p: u32, error: &ClientError) {
        if let ClientError::Server {
            leader_address: Some(addr),
            ..
        } = error
        {
            self.state()
                .leaders
                .insert((topic.to_string(), p), addr.clone());
            return;
        }
        let _ = self.refresh_metadata().await;
    }

    /// Runs `call` against `topic`/`p`'s leader, re-routing and retrying
    /// retriable failures until `deadline` has passed.
    async fn with_leader<T, F, Fut>(
        &self,
        topic: &str,
        p: u32,
        deadline: Duration,
        call: F,
    ) -> Result<T, ClientError>
    where
        F: Fn(BrokerClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        let give_up = tokio::time::Instant::now() + deadline;
        loop {
            let result = match self.leader(topic, p) {
                Some(addr) => match self.broker(&addr) {
                    Ok(broker) => call(broker).await,
                    Err(e) => Err(e),
                },
                None => Err(self.no_leader(topic, p)),
            };
            match result {
                Ok(v) => return Ok(v),
                Err(e) if e.retriable() && tokio::time::Instant::now() < give_up => {
                    tracing::debug!(%topic, partition = p, error = %e, "retriable; retrying after the backoff");
                    tokio::time::sleep(self.config.retry_backoff).await;
                    self.reroute(topic, p, &e).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Appends one batch to `topic`/`p` on its leader; the base offset
    /// (`None` with acks=0). Retries retriable errors for the delivery timeout.
    pub async fn produce(
        &self,
        topic: &str,
        p: u32,
        records: bytes::Bytes,
        acks: Acks,
    ) -> Result<Option<u64>, ClientError> {
        let timeout_ms = u32::try_from(self.config.request_timeout.as_millis()).unwrap_or(u32::MAX);
        let request = pb::ProduceRequest {
            topic: topic.to_string(),
            partition: p,
            acks: acks as i32,
            timeout_ms,
            records,
        };
        let rpc_deadline = self.config.request_timeout + self.config.connect_timeout;
        self.with_leader(topic, p, self.config.delivery_timeout, |mut broker| {
            let request = request.clone();
            let used = self.leader(topic, p);
            let epoch = self.metadata().leader_epoch(topic, p);
            async move {
                let call = rpc("produce", rpc_deadline, broker.produce(request));
                let reply = match used {
                    Some(used) => tokio::select! {
                        reply = call => reply?,
                        () = self.leader_moved(topic, p, &used, epoch) => {
                            return Err(ClientError::Transport(format!(
                                "{topic}-{p}: its leader moved away from {used} during the produce; retrying on the new leader"
                            )))
                        }
                    },
                    None => call.await?,
                };
                match reply.error {
                    Some(e) => Err(ClientError::from_wire(e)),
                    None if acks == Acks::None => Ok(None),
                    None => Ok(Some(reply.base_offset)),
                }
            }
        })
        .await
    }

    /// Reads committed records of `topic`/`p` from `offset` (long poll up to
    /// `max_wait`): the result as the leader sent it.
    pub async fn fetch(
        &self,
        topic: &str,
        p: u32,
        offset: u64,
        max_wait: Duration,
        max_bytes: u32,
    ) -> Result<pb::FetchResult, ClientError> {
        let request = pb::FetchRequest {
            partitions: vec![pb::FetchPartition {
                topic: topic.to_string(),
                partition: p,
                offset,
                current_leader_epoch: None,
                max_bytes,
                last_fetched_epoch: None,
            }],
            max_wait_ms: u32::try_from(max_wait.as_millis()).unwrap_or(u32::MAX),
            min_bytes: 1,
            max_bytes,
        };
        let rpc_deadline = max_wait + self.config.request_timeout;
        self.with_leader(topic, p, self.config.request_timeout, |mut broker| {
            // The leader epoch the client knows: a deposed leader that has not
            // heard yet answers UNKNOWN_LEADER_EPOCH instead of serving an
            // older high watermark (KIP-320); the client then re-routes.
            let mut request = request.clone();
            if let Some(part) = request.partitions.first_mut() {
                part.current_leader_epoch = self.metadata().leader_epoch(topic, p);
            }
            async move {
                let reply = rpc("fetch", rpc_deadline, broker.fetch(request)).await?;
                let result = reply
                    .partitions
                    .into_iter()
                    .next()
                    .ok_or_else(|| ClientError::Transport("fetch: an empty answer".into()))?;
                match result.error.clone() {
                    Some(e) if e.code != ErrorCode::OffsetOutOfRange as i32 => {
                        Err(ClientError::from_wire(e))
                    }
                    _ => Ok(result),
                }
            }
        })
        .await
    }

    /// A producer id and epoch for an idempotent producer, from any broker.
    pub async fn init_producer_id(&self) -> Result<(i64, i16), ClientError> {
        let give_up = tokio::time::Instant::now() + self.config.delivery_timeout;
        loop {
            let metadata = self.metadata();
            let addrs: Vec<String> = metadata
                .brokers
                .values()
                .filter(|b| !b.fenced && !b.address.is_empty())
                .map(|b| b.address.clone())
                .chain(self.config.bootstrap.iter().cloned())
                .collect();
            let mut last = ClientError::Transport("no broker to ask".into());
            for addr in addrs {
                let mut broker = self.broker(&addr)?;
                let call = broker.init_producer_id(pb::InitProducerIdRequest {});
                let answer = rpc("init producer id", self.config.request_timeout, call)
                    .await
                    .and_then(|reply| match reply.error {
                        Some(e) => Err(ClientError::from_wire(e)),
                        None => Ok((
                            reply.producer_id,
                            i16::try_from(reply.producer_epoch).unwrap_or(0),
                        )),
                    });
                match answer {
                    Ok(ids) => return Ok(ids),
                    Err(e) if e.retriable() => last = e,
                    Err(e) => return Err(e),
                }
            }
            if tokio::time::Instant::now() >= give_up {
                return Err(last);
            }
            tokio::time::sleep(self.config.retry_backoff).await;
            let _ = self.refresh_metadata().await;
        }
    }

    /// ListOffsets for `topic`/`p`: -2 earliest, -1 latest, else a timestamp.
    pub async fn list_offset(
        &self,
        topic: &str,
        p: u32,
        timestamp: i64,
    ) -> Result<Option<u64>, ClientError> {
        let request = pb::ListOffsetsRequest {
            partitions: vec![pb::ListOffsetsPartition {
                topic: topic.to_string(),
                partition: p,
                timestamp,
            }],
        };
        let rpc_deadline = self.config.request_timeout;
        self.with_leader(topic, p, self.config.request_timeout, |mut broker| {
            let request = request.clone();
            async move {
                let reply = rpc("list offsets", rpc_deadline, broker.list_offsets(request)).await?;
                let result = reply.partitions.into_iter().next().ok_or_else(|| {
                    ClientError::Transport("list offsets: an empty answer".into())
                })?;
                match result.error {
                    Some(e) => Err(ClientError::from_wire(e)),
                    None => Ok(result.offset),
                }
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(topic_id: u64, leader: u32, epoch: u32) -> Metadata {
        let broker = |id: u32| pb::BrokerMetadata {
            id,
            address: format!("n{id}:9001"),
            rack: None,
            fenced: false,
        };
        Metadata {
            brokers: [(leader, broker(leader))].into(),
            topics: [(
                "t".to_string(),
                pb::TopicMetadata {
                    name: "t".into(),
                    id: topic_id,
                    error: None,
                    partitions: vec![pb::PartitionMetadata {
                        index: 0,
                        leader: Some(leader),
                        leader_epoch: epoch,
                        replicas: vec![1, 2, 3],
                        isr: vec![1, 2, 3],
                    }],
                },
            )]
            .into(),
        }
    }

    #[test]
    fn a_lagging_broker_s_metadata_never_takes_a_partition_back_to_an_older_epoch() {
        let known = metadata(7, 2, 5);
        let stale = known.merged_with(metadata(7, 1, 4));
        assert_eq!(stale.leader_epoch("t", 0), Some(5));
        assert_eq!(stale.leader_address("t", 0).as_deref(), Some("n2:9001"));
        let newer = known.merged_with(metadata(7, 3, 6));
        assert_eq!(newer.leader_epoch("t", 0), Some(6));
        assert_eq!(newer.leader_address("t", 0).as_deref(), Some("n3:9001"));
        // A topic deleted and created again (a new id) starts over.
        let recreated = known.merged_with(metadata(8, 1, 0));
        assert_eq!(recreated.leader_epoch("t", 0), Some(0));
        // A broker that does not know the topic (a restarted node's first
        // image) does not make the client forget it, so a deposed leader's
        // answer afterwards cannot take it back (found by seed 1009).
        let mut blind = metadata(7, 2, 5);
        blind.topics.clear();
        let after_blind = known.merged_with(blind);
        assert_eq!(after_blind.leader_epoch("t", 0), Some(5));
        let stale = after_blind.merged_with(metadata(7, 1, 4));
        assert_eq!(stale.leader_epoch("t", 0), Some(5));
        assert_eq!(stale.leader_address("t", 0).as_deref(), Some("n2:9001"));
    }
}
