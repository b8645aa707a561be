//! The broker's link to the controller quorum: registration, heartbeats to the
//! controller leader, and the metadata stream feeding the [`MetadataCache`].
//!
//! ```text
//! spawn ─> RegisterBroker (any controller, retried) ─> epoch
//!   loop (one task):
//!     metadata stream message ─> MetadataCache::apply ─> changes ─> replica manager
//!     every heartbeat interval ─> BrokerHeartbeat{epoch, metadata offset} ─> leader
//!                                  (follows NOT_CONTROLLER hints; fenced flag back)
//!   shutdown ─> a last heartbeat with shutting_down: controlled shutdown
//! ```

mod admin;
mod client;

pub use admin::{AdminFuture, ClusterAdmin, Elected};
pub use client::ControllerClient;
pub use raftline_proto::transport::{Connector, TcpConnector};

use crate::metadata::{update_from_wire, BrokerId, MetadataCache, PartitionChange};
use crate::position::TopicPartition;
use raftline_proto::pb;
use raftline_proto::pb::metadata_stream_client::MetadataStreamClient;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::Streaming;

/// How a broker finds and talks to the controllers.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// This broker.
    pub broker_id: BrokerId,
    /// A random id of this process (a restart registers anew).
    pub incarnation: u64,
    /// Listener name -> `host:port`, as clients should reach this broker.
    pub endpoints: BTreeMap<String, String>,
    /// This broker's rack.
    pub rack: Option<String>,
    /// Partitions whose local copy recovery found damaged, reported at
    /// registration (see [`crate::log::DAMAGE_MARK`]).
    pub damaged: Vec<TopicPartition>,
    /// Controller node id -> peer address.
    pub controllers: BTreeMap<u64, String>,
    /// Between heartbeats. KRaft's default is 2 s; the session timeout should be
    /// several of these.
    pub heartbeat_interval: Duration,
    /// Each RPC's deadline.
    pub rpc_timeout: Duration,
    /// The controller fences a broker it has not heard from for this long
    /// (`broker.session.timeout.ms`); it bounds the broker's lease.
    pub session_timeout: Duration,
}

/// What the link knows, published on a `watch`.
#[derive(Clone, Debug)]
pub struct LinkState {
    /// This broker's registration epoch, once registered.
    pub epoch: Option<u64>,
    /// Whether the controller has this broker fenced (no leading, no ISR).
    pub fenced: bool,
    /// The metadata as of the last update.
    pub metadata: Arc<MetadataCache>,
    /// Until when nothing this broker leads can have moved: three quarters
    /// of the session timeout after the last heartbeat the controller
    /// answered unfenced was sent, taken only once this broker's metadata has
    /// reached the offset the controller answered at. Leadership moves off
    /// an unfenced broker only by its own requests; otherwise the controller
    /// must fence it first, a session after the heartbeat arrived (later
    /// than it was sent). So a paused or cut-off broker's lease runs out
    /// before anyone replaces it, and a broker fenced and unfenced again has
    /// none until it has learnt what moved meanwhile.
    pub lease_until: Option<tokio::time::Instant>,
}

impl LinkState {
    /// Whether the lease holds at `now`.
    pub fn has_lease(&self, now: tokio::time::Instant) -> bool {
        self.lease_until.is_some_and(|until| now < until)
    }
}

/// The running link: its published state, the partition changes for the
/// replica manager, and the task.
pub struct ControllerLink {
    /// The latest state.
    pub state: watch::Receiver<LinkState>,
    /// Hosted-partition changes, in order.
    pub changes: mpsc::Receiver<Vec<PartitionChange>>,
    /// The task; it ends after `shutdown` is cancelled (with a controlled
    /// shutdown heartbeat).
    pub task: JoinHandle<()>,
}

/// Starts the link.
pub fn spawn(
    config: LinkConfig,
    connector: Arc<dyn Connector>,
    shutdown: CancellationToken,
) -> ControllerLink {
    let initial = LinkState {
        epoch: None,
        fenced: true,
        metadata: Arc::new(MetadataCache::new(config.broker_id)),
        lease_until: None,
    };
    let (state_tx, state) = watch::channel(initial);
    let (changes_tx, changes) = mpsc::channel(256);
    let client = ControllerClient::new(config.controllers.clone(), connector, config.rpc_timeout);
    let link = Link {
        config,
        client,
        state: state_tx,
        changes: changes_tx,
    };
    let task = tokio::spawn(link.run(shutdown));
    ControllerLink {
        state,
        changes,
        task,
    }
}

struct Link {
    config: LinkConfig,
    client: ControllerClient,
    state: watch::Sender<LinkState>,
    changes: mpsc::Sender<Vec<PartitionChange>>,
}

impl Link {
    async fn run(mut self, shutdown: CancellationToken) {
        let epoch = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            epoch = self.register() => epoch,
        };
        self.state.send_modify(|s| s.epoch = Some(epoch));
        let mut cache = MetadataCache::new(self.config.broker_id);
        let mut stream: Option<Streaming<pb::MetadataUpdate>> = None;
        let mut tick = tokio::time::interval(self.config.heartbeat_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // An unfenced answer's lease, waiting for this broker's metadata to
        // reach the answering controller's offset.
        let mut pending_lease: Option<(u64, tokio::time::Instant)> = None;
        // A controller leader's metadata offset this broker's stream has yet
        // to deliver, and when a heartbeat first reported it.
        let mut awaited: Option<(u64, tokio::time::Instant)> = None;
        loop {
            if stream.is_none() {
                stream = self.subscribe().await;
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {
                    let sent = tokio::time::Instant::now();
                    let answer = self.heartbeat(epoch, cache.offset(), false).await;
                    if let Some((fenced, controller_offset)) = answer {
                        tracing::trace!(broker = %self.config.broker_id, fenced, controller_offset, applied = cache.offset(), "heartbeat answered");
                        self.state.send_modify(|s| s.fenced = fenced);
                        pending_lease = None;
                        if fenced {
                            self.state.send_modify(|s| s.lease_until = None);
                        } else {
                            let until = sent + self.config.session_timeout * 3 / 4;
                            pending_lease = Some((controller_offset, until));
                        }
                        let now = tokio::time::Instant::now();
                        if self.stream_stalled(&mut awaited, controller_offset, cache.offset(), now) {
                            tracing::warn!(broker = %self.config.broker_id, controller_offset, applied = cache.offset(), "metadata stream behind the controller leader: resubscribing");
                            stream = None;
                        }
                    }
                    self.take_lease(&mut pending_lease, cache.offset());
                }
                message = next_message(&mut stream) => match message {
                    Some(update) => match cache.apply(update_from_wire(update)) {
                        Ok(changes) => {
                            // A stream that delivers is not stalled, however
                            // far behind it still is (a large image).
                            if let Some((_, since)) = &mut awaited {
                                *since = tokio::time::Instant::now();
                            }
                            self.state.send_modify(|s| s.metadata = Arc::new(cache.clone()));
                            self.take_lease(&mut pending_lease, cache.offset());
                            if !changes.is_empty() && self.changes.send(changes).await.is_err() {
                                tracing::debug!("no replica manager listens for partition changes");
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "metadata stream out of step: resubscribing");
                            stream = None;
                        }
                    },
                    None => stream = None,
                },
            }
        }
        // Controlled shutdown: move leaderships away before the process goes.
        // The lease goes first: once the controller fences this broker (now,
        // or on finding its listener closed), others may take over at once.
        self.state.send_modify(|s| s.lease_until = None);
        self.heartbeat(epoch, cache.offset(), true).await;
    }

    /// Registers with the controller leader, retrying until one answers.
    async fn register(&mut self) -> u64 {
        loop {
            let request = pb::RegisterBrokerRequest {
                broker_id: self.config.broker_id.0,
                incarnation: self.config.incarnation,
                endpoints: self.config.endpoints.clone(),
                rack: self.config.rack.clone(),
                damaged: self
                    .config
                    .damaged
                    .iter()
                    .map(|tp| pb::PartitionRef {
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                    })
                    .collect(),
            };
            match self
                .client
                .call(|mut c| {
                    let request = request.clone();
                    async move { c.register_broker(request).await }
                })
                .await
            {
                Ok(reply) => return reply.broker_epoch,
                Err(status) => {
                    tracing::info!(%status, "registration not accepted; trying again")
                }
            }
            tokio::time::sleep(
                self.config
                    .heartbeat_interval
                    .min(Duration::from_millis(200)),
            )
            .await;
        }
    }

    /// Whether the metadata stream has stalled at `at`: the controller
    /// leader reported an offset this broker has not applied, and the
    /// stream has delivered nothing for [`stream_lag_max`] since (or since
    /// the report). A stream's controller that was paused or cut off keeps
    /// its connection open and says nothing; the leader's heartbeat answers
    /// tell. Tracks the offset awaited in `awaited`.
    fn stream_stalled(
        &self,
        awaited: &mut Option<(u64, tokio::time::Instant)>,
        controller_offset: u64,
        applied: u64,
        at: tokio::time::Instant,
    ) -> bool {
        *awaited = match *awaited {
            Some((offset, since)) if applied < offset => Some((offset, since)),
            _ if applied < controller_offset => Some((controller_offset, at)),
            _ => None,
        };
        match *awaited {
            Some((_, since)) if at.duration_since(since) >= stream_lag_max(&self.config) => {
                *awaited = None;
                true
            }
            _ => false,
        }
    }

    /// Takes the pending lease once the metadata here has reached the offset
    /// the controller answered at: until then this broker may still believe
    /// it leads what was moved while it was fenced.
    fn take_lease(&self, pending: &mut Option<(u64, tokio::time::Instant)>, applied: u64) {
        if let Some((offset, until)) = *pending {
            if applied >= offset {
                tracing::trace!(broker = %self.config.broker_id, controller_offset = offset, applied, "lease taken");
                self.state.send_modify(|s| s.lease_until = Some(until));
                *pending = None;
            }
        }
    }

    /// One heartbeat to the leader; `Some((fenced, the controller's metadata
    /// offset))` if a controller answered.
    async fn heartbeat(
        &mut self,
        epoch: u64,
        offset: u64,
        shutting_down: bool,
    ) -> Option<(bool, u64)> {
        let request = pb::BrokerHeartbeatRequest {
            broker_id: self.config.broker_id.0,
            broker_epoch: epoch,
            metadata_offset: offset,
            shutting_down,
        };
        self.client
            .call(|mut c| async move { c.broker_heartbeat(request).await })
            .await
            .ok()
            .map(|reply| (reply.fenced, reply.metadata_offset))
    }

    /// Opens the metadata stream on some controller (any will do).
    async fn subscribe(&mut self) -> Option<Streaming<pb::MetadataUpdate>> {
        let (_, addr) = self.client.next_controller()?;
        let channel = self.client.channel(&addr)?;
        let mut client = MetadataStreamClient::new(channel).max_decoding_message_size(64 << 20);
        let call = tokio::time::timeout(
            self.config.rpc_timeout,
            client.watch(pb::WatchMetadataRequest {}),
        );
        match call.await {
            Ok(Ok(reply)) => Some(reply.into_inner()),
            _ => {
                self.client.forget(&addr);
                None
            }
        }
    }
}

/// How long the metadata stream may lag an offset the controller leader
/// reported before the link resubscribes: a quarter of the session (at
/// least two heartbeats), so a broker learns of a failover well within the
/// session that decided it.
fn stream_lag_max(config: &LinkConfig) -> Duration {
    (config.session_timeout / 4).max(config.heartbeat_interval * 2)
}

/// The next stream message; pends forever without a stream (the heartbeat
/// tick then drives the loop and a new subscription is tried).
async fn next_message(
    stream: &mut Option<Streaming<pb::MetadataUpdate>>,
) -> Option<pb::MetadataUpdate> {
    match stream {
        Some(s) => s.message().await.ok().flatten(),
        None => std::future::pending().await,
    }
}
