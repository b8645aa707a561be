//! The glue to Raft: [`ControllerMachine`] runs commands as bytes through
//! [`MetadataState::apply`].
//!
//! Commands, answers and snapshots are JSON: the metadata is small, and a
//! readable snapshot is worth more than a compact one.

use crate::command::{Applied, Command};
use crate::error::MetadataError;
use crate::model::MetadataState;
use raftline_raft_store::{RestoreError, StateMachine};
use tracing::{error, warn};

/// What a command's answer decodes to.
pub type ApplyResult = Result<Applied, MetadataError>;

/// The controller's Raft state machine: the metadata state behind byte commands.
#[derive(Clone, Debug, Default)]
pub struct ControllerMachine {
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
        serde_json::to_vec(&self.state).unwrap_or_else(|e| {
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
        let state: MetadataState =
            serde_json::from_slice(snapshot).map_err(|e| RestoreError(e.to_string()))?;
        if let Err(broken) = state.check_invariants() {
            warn!(%broken, "restored metadata snapshot breaks an invariant");
        }
        self.state = state;
        Ok(())
    }
}
