//! # raftline-controller
//!
//! Will own the cluster metadata model (brokers, topics, partitions, leaders, ISRs)
//! with its pure `apply(command) -> result` state machine, and the controller
//! service that runs on the Raft leader: broker registration and fencing, topic
//! lifecycle, replica placement, leader election, ISR changes and the metadata
//! stream to brokers. It never touches partition data.
//!
//! Not built yet: this crate is the subject of issue 3 (the Raft metadata quorum).
