//! Partition replicas: the decisions a partition leader makes about its
//! followers, as a pure state type ([`LeaderState`], `now` passed in, no I/O);
//! the run-time replica that carries them out ([`Partition`]); the fetchers
//! that pull followers' data from leaders; and the [`ReplicaManager`] that
//! turns the controller's metadata into roles.
//!
//! ```text
//! follower fetch ─> LeaderState::on_fetch ─┬─ fenced / unknown epoch ─> error
//!                                          ├─ diverging ─> {epoch, end offset}: truncate
//!                                          └─ ok ─> follower LEO, maybe ISR expansion,
//!                                                   high watermark = min LEO over the
//!                                                   maximal ISR (if ISR >= min.insync)
//! lag check ─> ISR shrink proposal; AlterPartition answer ─> committed or rolled back
//! ```

mod error;
mod fetcher;
mod leader;
mod manager;
mod partition;
mod startup;

pub use error::ReplicaError;
pub use leader::{
    Diverging, FetchError, FetchOutcome, FollowerFetch, IsrChange, LeaderState, NotEnoughReplicas,
};
pub use manager::{ReplicaManager, ReplicaManagerConfig};
pub use partition::{
    truncation_point, Acks, FollowerPosition, IsrProposal, Partition, Produced, Progress,
    ReadResult, ReplicaSettings, StagedProduce, Transition,
};
pub use startup::{clear_damage_marks, recover_local_logs};
