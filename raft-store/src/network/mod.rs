//! The Raft network between controller nodes: openraft's RPCs over tonic gRPC on
//! each node's peer port.
//!
//! ```text
//! openraft ─> PeerClient (RaftNetwork) ─ gRPC RaftPeer ─> RaftPeerService ─> Raft on the peer
//!               │ channel from a Connector (TCP, or turmoil's in the simulator)
//! ```
//!
//! Messages are openraft's serde types as JSON inside `RaftPayload`; a peer's
//! `RaftError` travels back inside the payload and becomes a `RemoteError`.

mod client;
mod server;

pub use client::{GrpcNetwork, PeerClient};
pub use raftline_proto::transport::{Connector, TcpConnector};
pub use server::RaftPeerService;
