//! openraft's type configuration for Raftline.

use serde::{Deserialize, Serialize};
use std::io::Cursor;

/// A node's id in the Raft quorum (the controller's node id).
pub type NodeId = u64;

/// A command for the replicated state machine, serialized by its owner: the
/// Raft layer never looks inside.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request(pub Vec<u8>);

/// The state machine's answer to a command, serialized by its owner.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response(pub Vec<u8>);

openraft::declare_raft_types!(
    /// Raftline's Raft types: byte commands, `u64` node ids, nodes known by their
    /// peer address (`BasicNode { addr }`), snapshots as in-memory buffers.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = crate::runtime::SeededRuntime,
);
