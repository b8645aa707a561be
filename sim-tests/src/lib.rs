//! # raftline-sim-tests
//!
//! Will hold the turmoil harness that runs the real controller and broker code as
//! simulated hosts, the seeded fault schedules, and the history checker (lost,
//! duplicated and reordered records; reads above the high watermark).
//!
//! Not built yet: this crate is the subject of issue 5. The broker's in-memory
//! disk (`raftline_broker::storage::MemStorage`, which loses unsynced writes on a
//! simulated crash) is already in place for it.
