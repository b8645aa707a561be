//! The controller's runtime side: the admin operations, turned into commands,
//! proposed through Raft from any node (a non-leader forwards to the leader), and
//! answered from the replicated metadata.
//!
//! ```text
//! Admin RPC ─> ControllerNode::create_topic ─ place_replicas(local view) ─> Command
//!                 ─> RaftHandle::propose (forwarded to the leader) ─> apply on every node
//!                 <─ Applied deltas ─> Topic
//! ```

use crate::command::{Applied, Command, ElectionType, MetadataDelta};
use crate::error::MetadataError;
use crate::ids::{BrokerId, MetadataVersion, PartitionIndex};
use crate::machine::{decode_response, encode_command, ControllerMachine};
use crate::model::{Broker, MetadataState, Topic};
use crate::topic_name::TopicName;
use raftline_raft_store::{NodeId, RaftDisk, RaftHandle, WriteError};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use thiserror::Error;

/// Why an admin operation failed.
#[derive(Debug, Error)]
pub enum ControllerError {
    /// The metadata state machine refused the command (or its input).
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// This node does not lead the controller quorum; `leader` is the one it
    /// knows of (none while an election runs: retry shortly).
    #[error("this controller is not the leader (leader: {leader:?}); retry with the leader")]
    NotController {
        /// The leader's node id, if known.
        leader: Option<NodeId>,
    },
    /// The request cannot be carried out as asked (e.g. a membership change
    /// while another is in progress, or removing an unknown controller).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The quorum could not be reached or the node is stopping.
    #[error("controller unavailable: {0}")]
    Unavailable(String),
}

/// One partition's outcome in [`ControllerNode::elect_leaders`].
#[derive(Debug)]
pub struct ElectionOutcome {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// Its leader after the election, or why the election did not happen.
    pub result: Result<Option<BrokerId>, ControllerError>,
}

/// Topics as [`ControllerNode::topics`] answers them.
#[derive(Clone, Debug)]
pub struct TopicsView {
    /// The topics asked for.
    pub topics: Vec<Topic>,
    /// The metadata version they reflect.
    pub version: MetadataVersion,
    /// `Some(why)` when this node could not catch up with the quorum first
    /// and answered from its own view.
    pub stale: Option<String>,
}

/// The cluster as one node sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterView {
    /// Registered brokers.
    pub brokers: Vec<Broker>,
    /// The controller leader this node knows of.
    pub controller_leader: Option<NodeId>,
    /// Controllers: id -> (peer address, voter?).
    pub controllers: BTreeMap<NodeId, (String, bool)>,
    /// The metadata version of this view.
    pub version: MetadataVersion,
    /// This node's Raft term.
    pub raft_term: u64,
    /// The index of the last command this node applied.
    pub raft_applied_index: u64,
    /// Partitions without a leader: (topic, partition).
    pub offline: Vec<(String, u32)>,
    /// Partitions whose ISR is smaller than their replicas.
    pub under_replicated: Vec<(String, u32)>,
    /// Why this view may trail the quorum, if it may (see
    /// [`ControllerNode::describe_cluster`]).
    pub stale: Option<String>,
}

/// How long an admin read waits for this node to catch up with the Raft
/// leader before it answers from its own state.
const CATCH_UP: Duration = Duration::from_secs(2);

/// A controller node's admin operations over its Raft handle.
pub struct ControllerNode<D: RaftDisk> {
    raft: RaftHandle<ControllerMachine, D>,
    /// How long a proposal may take, forwarding included.
    timeout: Duration,
}

impl<D: RaftDisk> ControllerNode<D> {
    /// Operations over `raft`, each proposal bounded by `timeout`.
    pub fn new(raft: RaftHandle<ControllerMachine, D>, timeout: Duration) -> Self {
        ControllerNode { raft, timeout }
    }

    /// Proposes `command` from any node (forwarded to the leader); returns what
    /// it changed, or why it was refused.
    pub(crate) async fn propose(&self, command: &Command) -> Result<Applied, ControllerError> {
        let bytes = encode_command(command)?;
        answer(self.raft.propose(bytes, self.timeout).await)
    }

    /// Writes `command` only if this node leads, never forwarding it: for
    /// decisions taken from the leader's own view (broker sessions), which must
    /// die with its leadership rather than reach the next leader.
    pub(crate) async fn propose_as_leader(
        &self,
        command: &Command,
    ) -> Result<Applied, ControllerError> {
        let bytes = encode_command(command)?;
        answer(self.raft.write(bytes).await)
    }

    /// The metadata this node has applied (it may trail the leader by a few
    /// commands, as a Kafka broker's metadata cache does).
    pub(crate) fn state(&self) -> MetadataState {
        self.raft.machine().with_machine(|m| m.state().clone())
    }

    /// The offset of the last metadata update published here: a broker
    /// whose metadata offset has reached it has every change applied here.
    pub(crate) fn metadata_offset(&self) -> u64 {
        self.raft.machine().with_machine(|m| m.published_offset())
    }

    /// This controller's node id.
    pub fn id(&self) -> NodeId {
        self.raft.id()
    }

    /// The controller leader this node knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.leader()
    }

    /// Whether a quorum confirms this node's leadership now (see
    /// `RaftNode::confirm_leadership`).
    pub async fn confirm_leadership(&self, within: std::time::Duration) -> bool {
        self.raft.confirm_leadership(within).await
    }

    /// Whether this node leads with every earlier committed change applied
    /// (see `RaftNode::leads_with_current_state`).
    pub fn leads_with_current_state(&self) -> bool {
        self.raft.leads_with_current_state()
    }

    /// Creates a topic with replicas placed round-robin (rack-aware when every
    /// live broker has a rack) by the controller when the command is applied.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        replication_factor: u32,
        configs: BTreeMap<String, String>,
    ) -> Result<Topic, ControllerError> {
        let name = TopicName::new(name)?;
        let command = Command::CreateTopicPlaced {
            name: name.clone(),
            configs,
            partitions,
            replication_factor,
        };
        let applied = self.propose(&command).await?;
        topic_from_deltas(&name, &applied.deltas, None).ok_or_else(|| {
            ControllerError::Unavailable("the topic was created but not reported".into())
        })
    }

    /// Deletes a topic.
    pub async fn delete_topic(&self, name: &str) -> Result<(), ControllerError> {
        let name = TopicName::new(name)?;
        self.propose(&Command::DeleteTopic { name })
            .await
            .map(|_| ())
    }

    /// Grows a topic to `total` partitions (Kafka's CreatePartitions: never
    /// shrinks). The answer shows the earlier partitions as this node has them.
    pub async fn create_partitions(
        &self,
        topic: &str,
        total: u32,
    ) -> Result<Topic, ControllerError> {
        let name = TopicName::new(topic)?;
        let command = Command::CreatePartitionsPlaced {
            topic: name.clone(),
            total,
        };
        self.propose_for_topic(&name, &command).await
    }

    /// Changes a topic's configs: `set` replaces values, `delete` restores
    /// defaults (Kafka's IncrementalAlterConfigs). The answer shows the
    /// topic with its new configs, its partitions as this node has them.
    pub async fn alter_topic_configs(
        &self,
        topic: &str,
        set: BTreeMap<String, String>,
        delete: BTreeSet<String>,
    ) -> Result<Topic, ControllerError> {
        let name = TopicName::new(topic)?;
        let command = Command::AlterTopicConfigs {
            topic: name.clone(),
            set,
            delete,
        };
        self.propose_for_topic(&name, &command).await
    }

    /// Proposes `command`, a change to topic `name`; the topic as the
    /// command left it (partitions it did not touch as this node has them).
    async fn propose_for_topic(
        &self,
        name: &TopicName,
        command: &Command,
    ) -> Result<Topic, ControllerError> {
        let applied = self.propose(command).await?;
        let before = self.state().topic(name).cloned();
        topic_from_deltas(name, &applied.deltas, before.as_ref()).ok_or_else(|| {
            ControllerError::Unavailable(format!("topic {name} was changed but not reported"))
        })
    }

    /// Leader elections (Kafka's ElectLeaders): one `election` per partition
    /// of `topic` (those in `partitions`, or all), or of every topic if
    /// `topic` is `None`; each partition's leader afterwards, or why not.
    /// An unknown topic refuses the whole request; an unknown partition
    /// gets its own error.
    pub async fn elect_leaders(
        &self,
        topic: Option<&str>,
        partitions: &[u32],
        election: ElectionType,
    ) -> Result<Vec<ElectionOutcome>, ControllerError> {
        // Which partitions exist is read here (after catching up, so a topic
        // just created is known); each election is decided by the leader.
        let view = match topic {
            Some(name) => self.topics(&[name.to_string()]).await?,
            None if partitions.is_empty() => self.topics(&[]).await?,
            None => {
                return Err(ControllerError::InvalidRequest(
                    "partitions can be named only with their topic".into(),
                ))
            }
        };
        let mut targets = Vec::new();
        for t in &view.topics {
            if partitions.is_empty() {
                targets.extend(t.partitions.keys().map(|p| (t.name.clone(), p.0)));
            } else {
                targets.extend(partitions.iter().map(|&p| (t.name.clone(), p)));
            }
        }
        let mut outcomes = Vec::with_capacity(targets.len());
        for (name, index) in targets {
            let command = Command::ElectLeader {
                topic: name.clone(),
                partition: PartitionIndex(index),
                election,
            };
            let result = self.propose(&command).await.map(|applied| {
                applied
                    .deltas
                    .iter()
                    .find_map(|delta| match delta {
                        MetadataDelta::PartitionChanged {
                            topic: t,
                            index: i,
                            partition,
                            ..
                        } if *t == name && i.0 == index => Some(partition.leader),
                        _ => None,
                    })
                    .flatten()
            });
            outcomes.push(ElectionOutcome {
                topic: name.as_str().to_string(),
                partition: index,
                result,
            });
        }
        Ok(outcomes)
    }

    /// Adds controller `id` (reachable at `peer_address`) as a voter. Runs on
    /// the Raft leader; elsewhere `NotController` names it.
    pub async fn add_controller(
        &self,
        id: NodeId,
        peer_address: String,
    ) -> Result<ClusterView, ControllerError> {
        self.raft
            .add_voter(id, peer_address)
            .await
            .map_err(controller_error)?;
        Ok(self.cluster())
    }

    /// Removes controller `id` from the voters. Runs on the Raft leader.
    pub async fn remove_controller(&self, id: NodeId) -> Result<ClusterView, ControllerError> {
        self.raft.remove_voter(id).await.map_err(controller_error)?;
        Ok(self.cluster())
    }

    /// Topics by name (all of them if `names` is empty), current as of the
    /// call; with no quorum to catch up with, as this node has them (as a
    /// Kafka broker answers from its metadata cache), marked stale.
    pub async fn topics(&self, names: &[String]) -> Result<TopicsView, ControllerError> {
        let stale = self.catch_up().await.err();
        let state = self.state();
        let topics = if names.is_empty() {
            state.topics().values().cloned().collect()
        } else {
            names
                .iter()
                .map(|n| {
                    let name = TopicName::new(n.as_str())?;
                    state
                        .topic(&name)
                        .cloned()
                        .ok_or(MetadataError::UnknownTopic { name })
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        Ok(TopicsView {
            topics,
            version: state.version(),
            stale,
        })
    }

    /// Waits (up to [`CATCH_UP`]) until this node has applied every change
    /// committed before the call, so an admin read answered from its state
    /// is as current as the leader's; `Err(why)` if no quorum answered.
    /// Without it a node just restarted answers from the past: ISRs it was
    /// in before it died, a fenced broker still live.
    async fn catch_up(&self) -> Result<(), String> {
        self.raft.catch_up(CATCH_UP).await.map_err(|e| {
            format!("this node could not catch up with the controller quorum within {CATCH_UP:?} ({e}); its view may be stale")
        })
    }

    /// Brokers, controllers and the controller leader, current as of the
    /// call; with no quorum to catch up with, this node's own view, marked
    /// stale (a cluster in trouble is when it is needed most).
    pub async fn describe_cluster(&self) -> ClusterView {
        let stale = self.catch_up().await.err();
        ClusterView {
            stale,
            ..self.cluster()
        }
    }

    /// Brokers, controllers and the controller leader, as this node sees them.
    pub fn cluster(&self) -> ClusterView {
        let state = self.state();
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let controllers = membership
            .nodes()
            .map(|(&id, node)| {
                (
                    id,
                    (node.addr.clone(), membership.voter_ids().any(|v| v == id)),
                )
            })
            .collect();
        let (mut offline, mut under_replicated) = (Vec::new(), Vec::new());
        for (name, topic) in state.topics() {
            for (index, p) in &topic.partitions {
                let id = (name.as_str().to_string(), index.0);
                if p.leader.is_none() {
                    offline.push(id.clone());
                }
                if p.isr.len() < p.replicas.len() {
                    under_replicated.push(id);
                }
            }
        }
        ClusterView {
            brokers: state.brokers().values().cloned().collect(),
            controller_leader: metrics.current_leader,
            controllers,
            version: state.version(),
            raft_term: metrics.current_term,
            raft_applied_index: metrics.last_applied.map_or(0, |l| l.index),
            offline,
            under_replicated,
            stale: None,
        }
    }
}

/// A failed write or membership change, as the controller's error.
fn controller_error(error: WriteError) -> ControllerError {
    match error {
        WriteError::NotLeader { leader, .. } => ControllerError::NotController { leader },
        WriteError::Membership(reason) | WriteError::MembershipInProgress(reason) => {
            ControllerError::InvalidRequest(reason)
        }
        WriteError::Unavailable(reason) => ControllerError::Unavailable(reason),
    }
}

/// A write's outcome as the controller's answer.
fn answer(written: Result<(u64, Vec<u8>), WriteError>) -> Result<Applied, ControllerError> {
    let (_, bytes) = written.map_err(controller_error)?;
    let result = decode_response(&bytes).ok_or_else(|| {
        ControllerError::Unavailable("the controller's answer did not decode".into())
    })?;
    Ok(result?)
}

/// The topic `name` as the deltas of one command describe it, on top of
/// `before` (for commands that add partitions).
fn topic_from_deltas(
    name: &TopicName,
    deltas: &[MetadataDelta],
    before: Option<&Topic>,
) -> Option<Topic> {
    let mut topic = before.cloned();
    for delta in deltas {
        match delta {
            MetadataDelta::TopicChanged {
                name: n,
                id,
                configs,
                ..
            } if n == name => {
                let partitions = topic.take().map(|t| t.partitions).unwrap_or_default();
                topic = Some(Topic {
                    name: n.clone(),
                    id: *id,
                    configs: configs.clone(),
                    partitions,
                });
            }
            MetadataDelta::PartitionChanged {
                topic: n,
                index,
                partition,
                ..
            } if n == name => {
                if let Some(t) = topic.as_mut() {
                    t.partitions
                        .insert(PartitionIndex(index.0), partition.clone());
                }
            }
            _ => {}
        }
    }
    topic
}
