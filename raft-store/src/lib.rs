//! # raftline-raft-store
//!
//! Will own openraft's type configuration, the sled-backed and in-memory Raft log,
//! vote and snapshot storage, and the Raft network over gRPC. It is generic over the
//! state machine it replicates and knows nothing of topics: the controller plugs in
//! through one small trait (apply, snapshot, restore).
//!
//! Not built yet: this crate is the subject of issue 3 (the Raft metadata quorum).
//! It exists now so the workspace has its fixed shape and dependency direction
//! (`proto <- raft-store <- controller`).
