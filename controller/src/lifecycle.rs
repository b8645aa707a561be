//! Broker lifecycle on the controller leader: registration, heartbeats, fencing
//! a broker whose session expired, unfencing a broker once it has caught up.
//!
//! ```text
//! RegisterBroker ─> Command::RegisterBroker (epoch = its Raft index; fenced)
//!                  (a controlled shutdown is final for that epoch: a late
//!                   heartbeat from it never unfences it again)
//! BrokerHeartbeat ─> session renewed ─┬─ shutting down ──────────> FenceBroker
//!                                     └─ fenced, offset >= epoch ─> UnfenceBroker
//! monitor tick (leader only) ─> sessions expired ─────────────────> FenceBroker
//!                              └> silent a while, and its listener
//!                                 refuses connections (process gone) ─> FenceBroker
//! ```
//!
//! The probe is what makes a crash fail over well within the session
//! timeout: a killed process's port refuses connections at once, while a
//! paused process's kernel still accepts them and a cut-off host does not
//! answer, so neither of those is fenced before its session (and so its
//! lease, see the broker's `LinkState`) has run out.
//!
//! Sessions live only on the leader; every decision is a command written
//! through Raft by the leader itself, never forwarded, so a deposed leader's
//! decisions die with its leadership; and commands carry the broker epoch they
//! are about, which apply checks.

use crate::command::{AlterPartitionRequest, Command, MetadataDelta};
use crate::error::MetadataError;
use crate::ids::{BrokerEpoch, BrokerId, PartitionIndex};
use crate::node::{ControllerError, ControllerNode};
use crate::sessions::BrokerSessions;
use crate::topic_name::TopicName;
use raftline_proto::transport::{Connector, Probe};
use raftline_raft_store::RaftDisk;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The leader's broker sessions and the decisions made on them.
pub struct BrokerLifecycle<D: RaftDisk> {
    node: Arc<ControllerNode<D>>,
    /// A std mutex: held for table lookups and updates only, never across an
    /// await.
    sessions: Mutex<Sessions>,
    /// How long a heartbeat waits for a quorum to confirm this leader.
    confirm_within: Duration,
    /// Probes a silent broker's listener, if set.
    probes: Option<Probes>,
}

/// When and how the monitor probes silent brokers.
struct Probes {
    connector: Arc<dyn Connector>,
    /// A broker not heard from for this long is probed each monitor tick.
    after: Duration,
}

struct Sessions {
    table: BrokerSessions,
    /// Broker registrations that asked for a controlled shutdown: they stay
    /// fenced whatever a late heartbeat says, until the broker registers anew.
    shut_down: BTreeSet<(BrokerId, BrokerEpoch)>,
    /// Whether this node led at the last check (a new leader resets sessions).
    leading: bool,
}

impl<D: RaftDisk> BrokerLifecycle<D> {
    /// Lifecycle handling over `node`, fencing brokers silent for `session_timeout`.
    pub fn new(node: Arc<ControllerNode<D>>, session_timeout: Duration) -> Self {
        BrokerLifecycle {
            node,
            sessions: Mutex::new(Sessions {
                table: BrokerSessions::new(session_timeout),
                shut_down: BTreeSet::new(),
                leading: false,
            }),
            confirm_within: (session_timeout / 4).max(Duration::from_millis(50)),
            probes: None,
        }
    }

    /// Probes (through `connector`) the listener of each broker silent for
    /// `after`, and fences one whose listener refuses connections without
    /// waiting out its session. `after` should be a few heartbeat intervals;
    /// it is capped at the session timeout.
    pub fn with_probes(mut self, connector: Arc<dyn Connector>, after: Duration) -> Self {
        let after = after.min(self.lock().table.timeout());
        self.probes = Some(Probes { connector, after });
        self
    }

    fn lock(&self) -> MutexGuard<'_, Sessions> {
        self.sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a broker process; returns its new epoch. `damaged` lists the
    /// partitions whose local copy it found damaged at start.
    pub async fn register(
        &self,
        id: BrokerId,
        incarnation: u64,
        endpoints: BTreeMap<String, String>,
        rack: Option<String>,
        damaged: Vec<(TopicName, PartitionIndex)>,
    ) -> Result<BrokerEpoch, ControllerError> {
        let command = Command::RegisterBroker {
            id,
            incarnation,
            endpoints,
            rack,
            damaged,
        };
        let applied = self.node.propose(&command).await?;
        applied
            .deltas
            .iter()
            .find_map(|d| match d {
                MetadataDelta::BrokerChanged(b) if b.id == id => Some(b.epoch),
                _ => None,
            })
            .ok_or_else(|| {
                ControllerError::Unavailable("registration applied but not reported".into())
            })
    }

    /// The metadata offset applied on this controller (heartbeat answers
    /// carry it: see `BrokerHeartbeatResponse.metadata_offset`).
    pub fn metadata_offset(&self) -> u64 {
        self.node.metadata_offset()
    }

    /// A heartbeat: renews the session and fences or unfences as the broker's
    /// state asks. Returns whether the broker is now fenced.
    pub async fn heartbeat(
        &self,
        id: BrokerId,
        epoch: BrokerEpoch,
        metadata_offset: u64,
        shutting_down: bool,
    ) -> Result<bool, ControllerError> {
        let now = Instant::now();
        self.check_leading(now)?;
        // The answer grants the broker a lease (it acts on what it leads as
        // if nothing moved until the session could have expired): read the
        // state as a linearizable read, so a leader cut off from the quorum,
        // which still believes it leads, cannot answer from a stale state
        // (found by the simulator: a broker cut off with its node's
        // controller was told it was unfenced and served group offsets it
        // no longer coordinated).
        if !self.node.confirm_leadership(self.confirm_within).await {
            return Err(ControllerError::NotController { leader: None });
        }
        let broker = self
            .node
            .state()
            .broker(id)
            .cloned()
            .ok_or(MetadataError::UnknownBroker { broker: id })?;
        if broker.epoch != epoch {
            return Err(MetadataError::StaleBrokerEpoch {
                broker: id,
                current: broker.epoch,
                given: epoch,
            }
            .into());
        }
        {
            let mut sessions = self.lock();
            if sessions.shut_down.contains(&(id, epoch)) {
                return Ok(true);
            }
            sessions.table.heartbeat(id, epoch, now);
            if shutting_down {
                sessions.shut_down.insert((id, epoch));
            }
        }
        if shutting_down {
            if !broker.fenced {
                self.node
                    .propose_as_leader(&Command::FenceBroker {
                        id,
                        epoch: Some(epoch),
                    })
                    .await?;
            }
            self.lock().table.remove(id);
            return Ok(true);
        }
        // Caught up to its own registration record: it has seen the metadata it
        // needs to serve, so it may lead and join ISRs (KRaft's rule).
        if broker.fenced && metadata_offset >= epoch.0 {
            self.node
                .propose_as_leader(&Command::UnfenceBroker { id, epoch })
                .await?;
            return Ok(false);
        }
        Ok(broker.fenced)
    }

    /// A partition leader's ISR change (compare-and-set on its epochs); returns
    /// the partition's new record. From any node: the epochs make a stale
    /// request harmless, so it may be forwarded to the leader.
    pub async fn alter_partition(
        &self,
        request: AlterPartitionRequest,
    ) -> Result<MetadataDelta, ControllerError> {
        let (topic, partition) = (request.topic.clone(), request.partition);
        let applied = self.node.propose(&Command::AlterPartition(request)).await?;
        applied
            .deltas
            .into_iter()
            .find(|d| matches!(d, MetadataDelta::PartitionChanged { topic: t, index, .. } if *t == topic && *index == partition))
            .ok_or_else(|| ControllerError::Unavailable("the ISR change applied but was not reported".into()))
    }

    /// A block of producer ids for broker `id` at registration `epoch`:
    /// `(first, count)`.
    pub async fn allocate_producer_ids(
        &self,
        id: BrokerId,
        epoch: BrokerEpoch,
    ) -> Result<(u64, u64), ControllerError> {
        let applied = self
            .node
            .propose(&Command::AllocateProducerIds {
                broker: id,
                broker_epoch: epoch,
            })
            .await?;
        applied
            .deltas
            .into_iter()
            .find_map(|d| match d {
                MetadataDelta::ProducerIdsAllocated { first, count, .. } => Some((first, count)),
                _ => None,
            })
            .ok_or_else(|| {
                ControllerError::Unavailable(
                    "the producer ids were allocated but not reported".into(),
                )
            })
    }

    /// One pass of the session monitor: on the leader, fences every unfenced
    /// broker whose session has expired. Returns the brokers fenced.
    pub async fn check_sessions(&self, now: Instant) -> Result<Vec<BrokerId>, ControllerError> {
        if self.check_leading(now).is_err() {
            return Ok(Vec::new());
        }
        let mut expired = self.lock().table.expired(now);
        expired.extend(self.gone(now).await);
        let state = self.node.state();
        let mut fenced = Vec::new();
        for (id, epoch) in expired {
            let live = state
                .broker(id)
                .is_some_and(|b| b.epoch == epoch && !b.fenced);
            if live {
                tracing::warn!(broker = %id, epoch = %epoch, "broker session expired or its process is gone: fencing it");
                self.node
                    .propose_as_leader(&Command::FenceBroker {
                        id,
                        epoch: Some(epoch),
                    })
                    .await?;
                fenced.push(id);
            }
            self.lock().table.remove(id);
        }
        Ok(fenced)
    }

    /// The silent brokers whose listener refuses connections: their process
    /// is gone. Probed concurrently; a probe not answered within `after` (a
    /// cut-off host) counts as not refused, so a partition never holds up
    /// the monitor's tick, and with it the other brokers' expiry, for the
    /// connector's whole connect deadline.
    async fn gone(&self, now: Instant) -> Vec<(BrokerId, BrokerEpoch)> {
        let Some(Probes { connector, after }) = &self.probes else {
            return Vec::new();
        };
        let silent = self.lock().table.silent(now, *after);
        if silent.is_empty() {
            return Vec::new();
        }
        let state = self.node.state();
        let attempts = silent.into_iter().filter_map(|(id, epoch)| {
            let broker = state.broker(id)?;
            if broker.epoch != epoch || broker.fenced {
                return None;
            }
            // Every listener of the process: gone only if all refuse.
            let probes: Vec<_> = broker
                .endpoints
                .values()
                .map(|addr| connector.probe(addr))
                .collect();
            let endpoints: Vec<String> = broker.endpoints.values().cloned().collect();
            Some(async move {
                let found = tokio::time::timeout(*after, futures_util::future::join_all(probes))
                    .await
                    .unwrap_or_default();
                let refused = !found.is_empty() && found.iter().all(|p| *p == Probe::Refused);
                if refused {
                    tracing::warn!(broker = %id, epoch = %epoch, ?endpoints, "broker silent and its listeners refuse connections: its process is gone");
                }
                refused.then_some((id, epoch))
            })
        });
        futures_util::future::join_all(attempts)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Errs with `NotController` unless this node leads; a node that has just
    /// become leader starts every unfenced broker's session afresh.
    fn check_leading(&self, now: Instant) -> Result<(), ControllerError> {
        let leader = self.node.leader();
        // A new leader answers nothing until it has applied what its
        // predecessors committed: a broker fenced just before the change must
        // not be told it is unfenced from a state that has not seen the fence
        // yet (found by the simulator: such a broker took its lease and served
        // group offsets it no longer coordinated).
        let leading = leader == Some(self.node.id()) && self.node.leads_with_current_state();
        let mut sessions = self.lock();
        if !leading {
            sessions.table.clear();
            sessions.leading = false;
            return Err(ControllerError::NotController { leader });
        }
        if !sessions.leading {
            let state = self.node.state();
            let live = state
                .brokers()
                .values()
                .filter(|b| !b.fenced)
                .map(|b| (b.id, b.epoch));
            sessions.table.reset(live, now);
            sessions.leading = true;
        }
        Ok(())
    }

    /// Runs the session monitor every `every` until `shutdown`.
    pub fn spawn_monitor(
        self: Arc<Self>,
        every: Duration,
        shutdown: CancellationToken,
    ) -> JoinHandle<()> {
        spawn_on_ticks(tokio::time::interval(every), shutdown, move || {
            let this = self.clone();
            async move {
                if let Err(e) = this.check_sessions(Instant::now()).await {
                    tracing::warn!(error = %e, "broker session check failed; retrying next tick");
                }
            }
        })
    }
}

/// Runs `pass` at each tick of `tick` (a late tick delays the next ones
/// rather than bunching them) until `shutdown`.
pub(crate) fn spawn_on_ticks<F, Fut>(
    mut tick: tokio::time::Interval,
    shutdown: CancellationToken,
    mut pass: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            pass().await;
        }
    })
}
