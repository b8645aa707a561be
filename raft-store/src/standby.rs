//! Standing for election as soon as the leader's process is known to be gone.
//!
//! openraft 0.9 lets a follower stand only after the leader's lease (the
//! election timeout's maximum) and then a random election timeout have
//! passed since it last heard the leader: 450-600 ms with the defaults, the
//! larger part of a controller failover. A follower that has not heard the
//! leader for two heartbeats probes the leader's peer port; a refused
//! connection means no process listens there (crashed, killed), so waiting
//! for it can only cost time. Then the lowest-numbered other voter stands
//! the moment the lease runs out at the voters (plus two heartbeats: a
//! voter dates its lease from when its Raft core handled the leader's last
//! message, which may lag its arrival here), instead of after a further
//! random timeout.
//!
//! ```text
//! every heartbeat: following L, nothing from L for 2 heartbeats?
//!   ─> probe L's peer address: refused? ─> lowest voter but L is me?
//!   ─> at last heard + lease + 2 heartbeats, still nothing from L: elect
//! ```
//!
//! Safety does not depend on it: an election is always safe in Raft, and
//! the voters still refuse votes while their lease on the leader runs. A
//! leader that is only slow or cut off accepts the probe or does not answer
//! it, and is left to the ordinary timeouts. If this voter's log turns out
//! shorter than the other survivor's, its candidacy fails, and since it
//! voted for itself in that term the other's first candidacy (in the same
//! term) fails too: the failover then takes a further election timeout
//! (about 600-900 ms in all instead of 450-600).

use crate::types::{NodeId, TypeConfig};
use openraft::{Raft, ServerState};
use raftline_proto::transport::{Connector, Probe};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// When this node last heard a leader (an `AppendEntries`, heartbeats
/// included, or a snapshot), shared by the peer service that hears it and
/// the watcher.
#[derive(Clone, Debug)]
pub struct Heard(Arc<Mutex<Instant>>);

impl Heard {
    /// Heard now, as far as anyone knows.
    pub fn new() -> Self {
        Heard(Arc::new(Mutex::new(Instant::now())))
    }

    /// A leader was heard now.
    pub fn mark(&self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    /// When a leader was last heard.
    pub fn last(&self) -> Instant {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for Heard {
    fn default() -> Self {
        Heard::new()
    }
}

/// What the watcher needs to know of the node's settings.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// The leader's heartbeat interval.
    pub heartbeat: Duration,
    /// The leader's lease at the voters: the election timeout's maximum.
    pub lease: Duration,
}

/// Watches the leader until `shutdown` (see the module's notes).
pub async fn watch(
    id: NodeId,
    raft: Raft<TypeConfig>,
    connector: Arc<dyn Connector>,
    heard: Heard,
    timing: Timing,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(timing.heartbeat.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The leader and term this node last stood against: once is enough (the
    // metrics show the old leader until the election has begun).
    let mut stood = None;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some((leader, term, addr)) = gone_quiet(id, &raft, &heard, timing) else {
            continue;
        };
        if stood == Some((leader, term)) {
            continue;
        }
        let last = heard.last();
        if connector.probe(&addr).await != Probe::Refused {
            continue;
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep_until(last + timing.lease + 2 * timing.heartbeat) => {}
        }
        let still = heard.last() == last && raft.metrics().borrow().current_leader == Some(leader);
        if !still {
            continue;
        }
        tracing::info!(node = id, leader, %addr, "the leader's process is gone (its peer port refuses connections): standing for election");
        stood = Some((leader, term));
        if let Err(e) = raft.trigger().elect().await {
            tracing::warn!(node = id, error = %e, "cannot stand for election");
            return;
        }
    }
}

/// The leader, its term and its peer address if this node follows it, has
/// not heard it for two heartbeats, and is the lowest voter other than it
/// (so only one voter stands early, and no two split the vote).
fn gone_quiet(
    id: NodeId,
    raft: &Raft<TypeConfig>,
    heard: &Heard,
    timing: Timing,
) -> Option<(NodeId, u64, String)> {
    let metrics = raft.metrics();
    let m = metrics.borrow();
    let leader = m.current_leader?;
    if leader == id || m.state != ServerState::Follower {
        return None;
    }
    if heard.last().elapsed() < 2 * timing.heartbeat {
        return None;
    }
    let membership = m.membership_config.membership();
    let first_other = membership.voter_ids().filter(|&v| v != leader).min()?;
    if first_other != id {
        return None;
    }
    membership
        .get_node(&leader)
        .map(|node| (leader, m.current_term, node.addr.clone()))
}
