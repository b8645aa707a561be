//! # raftline-controller
//!
//! Owns the cluster metadata model (brokers, topics, partitions, leaders, ISRs)
//! and its pure state machine: a command goes in with its Raft log index, a
//! decision comes out, nothing else happens. Also replica placement and leader
//! election, as pure functions. It must not touch partition data, and holds no
//! network, clock, RNG or Raft runtime: the controller service (to come) decides
//! *when* to propose a command; this crate decides *whether* it holds.
//!
//! ```text
//!  controller service ── Command ──> Raft log ──> ControllerMachine::apply(index, bytes)
//!  (place_replicas,                                 │ decode
//!   timing of fencing)                              v
//!                                    MetadataState::apply(index, &Command)
//!                                      plan (&self: validate, list deltas)
//!                                      commit (write deltas), version += 1
//!                                                   │
//!              Result<Applied { version, deltas }, MetadataError>
//!                 -> proposer's answer; deltas -> metadata stream to brokers
//! ```
//!
//! Main types: [`MetadataState`] (the state and its `apply`), [`Command`] and
//! [`MetadataDelta`] (what goes in and comes out), [`ControllerMachine`] (the
//! [`raftline_raft_store::StateMachine`] over bytes).

pub mod api;
mod apply;
mod brokers;
mod command;
mod convert;
mod election;
mod error;
mod ids;
mod invariants;
mod lifecycle;
mod machine;
mod model;
mod node;
mod partitions;
mod placement;
mod rebalance;
mod sessions;
mod topic_name;
mod topics;

pub use command::{AlterPartitionRequest, Applied, Command, ElectionType, MetadataDelta};
pub use election::{elect_leader, Election};
pub use error::MetadataError;
pub use ids::{
    BrokerEpoch, BrokerId, LeaderEpoch, MetadataVersion, PartitionEpoch, PartitionIndex, TopicId,
};
pub use lifecycle::BrokerLifecycle;
pub use machine::{
    decode_response, encode_command, ApplyResult, ControllerMachine, MetadataUpdate,
};
pub use model::{Broker, MetadataState, Partition, Topic, UNCLEAN_LEADER_ELECTION};
pub use node::{ClusterView, ControllerError, ControllerNode, ElectionOutcome, TopicsView};
pub use placement::place_replicas;
pub use rebalance::{imbalanced_partitions, spawn_leader_rebalance, LeaderRebalance};
pub use sessions::BrokerSessions;
pub use topic_name::{TopicName, MAX_TOPIC_NAME_LEN};
