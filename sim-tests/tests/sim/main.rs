//! Raftline clusters under simulated faults, real node code throughout.
//!
//! - `seeds`: the fixed seeds CI runs (every fault kind first once), one
//!   seed on demand (`SIM_SEED=S`), the long mode (`SIM_SEEDS=N`, ignored).
//! - `scenarios`: named regression cases from Kafka's history.
//! - `determinism`: one seed twice gives the same history.
//! - `producer`: partition lanes apart under a stalled leader.
//! - `maintenance`: a restarted broker's first retention and cleaner passes.
//! - `churn`: topics created and deleted beside one taking writes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod churn;
mod determinism;
mod maintenance;
mod producer;
mod scenarios;
mod seeds;
