//! Automatic preferred-leader rebalancing (Kafka's
//! `auto.leader.rebalance.enable`). A broker that restarts comes back as a
//! follower of every partition; without this, leadership stays piled on the
//! brokers that did not restart. On its interval the controller leader looks,
//! per broker, at the partitions whose preferred (first) replica it is: if
//! more than the threshold share of them are led by another broker, each of
//! those whose preferred replica is unfenced and in the ISR gets a preferred
//! election (a clean one: only an ISR member leads).
//!
//! ```text
//! every interval, on the leader: imbalanced_partitions(state, threshold)
//!     ─> ElectLeader { Preferred } per partition (propose_as_leader: dies with
//!        the leadership) ─> brokers follow the new leader epochs
//! ```

use crate::command::{Command, ElectionType};
use crate::ids::{BrokerId, PartitionIndex};
use crate::lifecycle::spawn_on_ticks;
use crate::model::MetadataState;
use crate::node::{ControllerError, ControllerNode};
use crate::topic_name::TopicName;
use raftline_raft_store::RaftDisk;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// When and how much imbalance the rebalance acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaderRebalance {
    /// Between checks (`leader.imbalance.check.interval.seconds`, 300 s).
    pub interval: Duration,
    /// A broker's share of its preferred partitions led elsewhere above
    /// which they move back, in percent
    /// (`leader.imbalance.per.broker.percentage`, 10).
    pub threshold_percent: u32,
}

impl Default for LeaderRebalance {
    fn default() -> Self {
        LeaderRebalance {
            interval: Duration::from_secs(300),
            threshold_percent: 10,
        }
    }
}

/// The partitions a rebalance of `state` elects their preferred replica for:
/// of each broker whose preferred partitions led elsewhere exceed
/// `threshold_percent` of its preferred partitions, those it can take (it
/// is unfenced and in their ISR).
pub fn imbalanced_partitions(
    state: &MetadataState,
    threshold_percent: u32,
) -> Vec<(TopicName, PartitionIndex)> {
    // Per preferred broker: its preferred partitions, and those led elsewhere
    // (with whether it could take each now).
    type Led = Vec<(TopicName, PartitionIndex, bool)>;
    let mut per_broker: BTreeMap<BrokerId, (u64, Led)> = BTreeMap::new();
    for (name, topic) in state.topics() {
        for (index, p) in &topic.partitions {
            let Some(&preferred) = p.replicas.first() else {
                continue;
            };
            let entry = per_broker.entry(preferred).or_default();
            entry.0 += 1;
            if p.leader != Some(preferred) {
                let electable = state.is_unfenced(preferred) && p.isr.contains(&preferred);
                entry.1.push((name.clone(), *index, electable));
            }
        }
    }
    per_broker
        .into_values()
        .filter(|(total, elsewhere)| {
            elsewhere.len() as u64 * 100 > total * u64::from(threshold_percent)
        })
        .flat_map(|(_, elsewhere)| elsewhere)
        .filter(|(_, _, electable)| *electable)
        .map(|(name, index, _)| (name, index))
        .collect()
}

impl<D: RaftDisk> ControllerNode<D> {
    /// One rebalance pass, on the controller leader only (elsewhere it does
    /// nothing): a preferred election for each of
    /// [`imbalanced_partitions`]; how many partitions changed leader.
    pub async fn rebalance_leaders(&self, threshold_percent: u32) -> usize {
        if self.leader() != Some(self.id()) || !self.leads_with_current_state() {
            return 0;
        }
        let mut moved = 0;
        for (topic, partition) in imbalanced_partitions(&self.state(), threshold_percent) {
            let command = Command::ElectLeader {
                topic: topic.clone(),
                partition,
                election: ElectionType::Preferred,
            };
            match self.propose_as_leader(&command).await {
                Ok(_) => {
                    tracing::info!(%topic, %partition, "leadership moved back to the preferred replica");
                    moved += 1;
                }
                // The partition changed meanwhile (the replica left the ISR,
                // another election ran): the next pass looks again.
                Err(ControllerError::Metadata(e)) => {
                    tracing::debug!(%topic, %partition, error = %e, "no preferred election");
                }
                Err(e) => {
                    tracing::debug!(error = %e, "leader rebalance stopped");
                    break;
                }
            }
        }
        moved
    }
}

/// Runs [`ControllerNode::rebalance_leaders`] every `rebalance.interval`
/// (the first one interval after the start) until `shutdown`.
pub fn spawn_leader_rebalance<D: RaftDisk>(
    node: Arc<ControllerNode<D>>,
    rebalance: LeaderRebalance,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let every = rebalance.interval;
    let tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    spawn_on_ticks(tick, shutdown, move || {
        let node = node.clone();
        async move {
            node.rebalance_leaders(rebalance.threshold_percent).await;
        }
    })
}
