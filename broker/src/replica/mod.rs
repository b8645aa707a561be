//! Partition replicas: the decisions a partition leader makes about its
//! followers, as a pure state type (`now` passed in, no I/O). The runtime that
//! owns a partition's log and carries these decisions out comes next.
//!
//! ```text
//! follower fetch ─> LeaderState::on_fetch ─┬─ fenced / unknown epoch ─> error
//!                                          ├─ diverging ─> {epoch, end offset}: truncate
//!                                          └─ ok ─> follower LEO, maybe ISR expansion,
//!                                                   high watermark = min LEO over the
//!                                                   maximal ISR (if ISR >= min.insync)
//! lag check ─> ISR shrink proposal; AlterPartition answer ─> committed or rolled back
//! ```

mod leader;

pub use leader::{
    Diverging, FetchError, FetchOutcome, FollowerFetch, IsrChange, LeaderState, NotEnoughReplicas,
};
