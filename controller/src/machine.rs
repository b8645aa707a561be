//! The glue to Raft: [`ControllerMachine`] runs commands as bytes through
//! [`MetadataState::apply`].
//!
//! Commands, answers and snapshots are JSON: the metadata is small, and a
//! readable snapshot is worth more than a compact one.

use crate::command::{Applied, Command, MetadataDelta};
use crate::error::MetadataError;
use crate::ids::MetadataVersion;
use crate::model::MetadataState;
use raftline_raft_store::{RestoreError, StateMachine};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tracing::{error, warn};

/// What a command's answer decodes to.
pub type ApplyResult = Result<Applied, MetadataError>;

/// How many updates a slow metadata subscriber may fall behind before it is
/// sent a fresh full image instead.
const UPDATE_BUFFER: usize = 1024;

/// One accepted command's changes (or a full image), as published to
/// metadata subscribers.
#[derive(Clone, Debug, PartialEq)]
pub struct MetadataUpdate {
    /// The Raft log index of the command (for an image: of the last command
    /// applied): a broker's metadata offset.
    pub offset: u64,
    /// The metadata version after it.
    pub version: MetadataVersion,
    /// Whether this replaces everything (an image) or changes it (a delta).
    pub full_image: bool,
    /// The records changed, or every record for an image.
    pub deltas: Vec<MetadataDelta>,
}

/// The controller's Raft state machine: the metadata state behind byte
/// commands, publishing every accepted change to subscribers.
#[derive(Clone, Debug)]
pub struct ControllerMachine {
    state: MetadataState,
    /// The Raft index of the last command applied.
    offset: u64,
    /// The offset of the last update published to subscribers (a refused
    /// command is applied but publishes nothing): what a broker's metadata
    /// offset reaches once it has every change.
    published: u64,
    updates: broadcast::Sender<MetadataUpdate>,
}

impl Default for ControllerMachine {
    fn default() -> Self {
        ControllerMachine {
            state: MetadataState::default(),
            offset: 0,
            published: 0,
            updates: broadcast::channel(UPDATE_BUFFER).0,
        }
    }
}

/// The snapshot: the state and the offset it reflects.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    offset: u64,
    state: MetadataState,
}

impl ControllerMachine {
    /// A machine over an empty cluster.
    pub fn new() -> Self {
        Self::default()
    }

    /// The metadata state.
    pub fn state(&self) -> &MetadataState {
        &self.state
    }

    /// The Raft index of the last command applied.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The offset of the last update published to subscribers.
    pub fn published_offset(&self) -> u64 {
        self.published
    }

    /// Every record as one full image.
    pub fn image(&self) -> MetadataUpdate {
        let mut deltas: Vec<MetadataDelta> = self
            .state
            .brokers()
            .values()
            .cloned()
            .map(MetadataDelta::BrokerChanged)
            .collect();
        for topic in self.state.topics().values() {
            deltas.push(MetadataDelta::TopicChanged {
                name: topic.name.clone(),
                id: topic.id,
                configs: topic.configs.clone(),
                partition_count: topic.partitions.len() as u32,
            });
            deltas.extend(topic.partitions.iter().map(|(&index, p)| {
                MetadataDelta::PartitionChanged {
                    topic: topic.name.clone(),
                    topic_id: topic.id,
                    index,
                    partition: p.clone(),
                }
            }));
        }
        MetadataUpdate {
            offset: self.offset,
            version: self.state.version(),
            full_image: true,
            deltas,
        }
    }

    /// A full image and a subscription to every update after it. Call it under
    /// the state machine's lock (`with_machine`) so nothing falls between.
    pub fn subscribe(&self) -> (MetadataUpdate, broadcast::Receiver<MetadataUpdate>) {
        (self.image(), self.updates.subscribe())
    }
}

/// A command's bytes as proposed to Raft.
pub fn encode_command(command: &Command) -> Result<Vec<u8>, MetadataError> {
    serde_json::to_vec(command).map_err(|e| MetadataError::MalformedCommand {
        reason: e.to_string(),
    })
}

/// Reads the answer [`ControllerMachine`] gave a command; `None` if the bytes are
/// not one (e.g. the empty answer Raft gives a blank entry).
pub fn decode_response(bytes: &[u8]) -> Option<ApplyResult> {
    serde_json::from_slice(bytes).ok()
}

impl StateMachine for ControllerMachine {
    /// Bytes that do not decode to a [`Command`] are answered with
    /// `MalformedCommand` and change nothing.
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8> {
        let result: ApplyResult = match serde_json::from_slice::<Command>(command) {
            Ok(command) => self.state.apply(index, &command),
            Err(e) => Err(MetadataError::MalformedCommand {
                reason: e.to_string(),
            }),
        };
        self.offset = index;
        if let Ok(applied) = &result {
            self.published = index;
            // No subscriber is not an error: brokers subscribe when they connect.
            let _ = self.updates.send(MetadataUpdate {
                offset: index,
                version: applied.version,
                full_image: false,
                deltas: applied.deltas.clone(),
            });
        }
        serde_json::to_vec(&result).unwrap_or_else(|e| {
            // Unreachable for these plain types; answer something decodable.
            error!(error = %e, "cannot encode a metadata answer");
            let fallback: ApplyResult = Err(MetadataError::MalformedCommand {
                reason: format!("answer not encodable: {e}"),
            });
            serde_json::to_vec(&fallback).unwrap_or_default()
        })
    }

    fn snapshot(&self) -> Vec<u8> {
        let snapshot = Snapshot {
            offset: self.offset,
            state: self.state.clone(),
        };
        serde_json::to_vec(&snapshot).unwrap_or_else(|e| {
            // Unreachable for these plain types; an empty snapshot fails to
            // restore loudly rather than restoring a wrong state.
            error!(error = %e, "cannot encode the metadata snapshot");
            Vec::new()
        })
    }

    /// Replaces the state. A snapshot that decodes but breaks an invariant is
    /// restored all the same (refusing it would stop the node for good) and
    /// reported.
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), RestoreError> {
        let snapshot: Snapshot =
            serde_json::from_slice(snapshot).map_err(|e| RestoreError(e.to_string()))?;
        if let Err(broken) = snapshot.state.check_invariants() {
            warn!(%broken, "restored metadata snapshot breaks an invariant");
        }
        self.state = snapshot.state;
        self.offset = snapshot.offset;
        self.published = snapshot.offset;
        // Subscribers' views are now stale: send them the whole new state.
        let _ = self.updates.send(self.image());
        Ok(())
    }
}
