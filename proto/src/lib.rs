//! # raftline-proto
//!
//! Owns Raftline's `.proto` files (under `proto/raftline/v1/`) and the code tonic
//! and prost generate from them. It holds no logic (except [`topic_config`], the config defaults both
//! sides must read alike): every other crate converts these
//! wire types into its own domain types in one place (its `convert.rs`), so storage,
//! partition state and metadata never see `pb::` types.
//!
//! ```text
//! proto/raftline/v1/*.proto --(build.rs: protox, no system protoc)--> pb::* (prost + tonic)
//! ```
//!
//! Main items: [`pb::ErrorCode`] (the wire error codes a client can see),
//! [`pb::Error`], and the `RaftPeer` service (Raft between controller nodes,
//! carrying openraft's serialized messages in [`pb::RaftPayload`]), and
//! [`transport::Connector`], the one way every crate makes channels to peers,
//! and [`wire`], the replica fetch's own framing beside gRPC on the peer port.

pub mod date;
pub mod topic_config;
pub mod transport;
pub mod wire;

/// The encoded `FileDescriptorSet` of every Raftline `.proto`, for gRPC server
/// reflection (grpcurl and other generic clients discover the services).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/raftline_descriptor.bin"));

/// Generated protobuf and gRPC types of package `raftline.v1`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("raftline.v1");
}

#[cfg(test)]
mod tests {
    use super::pb::ErrorCode;

    #[test]
    fn error_codes_keep_their_wire_numbers() {
        // Wire numbers are a contract with every client: a change here breaks them.
        assert_eq!(ErrorCode::UnknownTopicOrPartition as i32, 1);
        assert_eq!(ErrorCode::CorruptRecord as i32, 7);
        assert_eq!(
            ErrorCode::from_str_name("OFFSET_OUT_OF_RANGE"),
            Some(ErrorCode::OffsetOutOfRange)
        );
    }
}
