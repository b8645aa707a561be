//! Consumer groups (issue 6): partition assignment decided by the
//! coordinator.
//!
//! Built so far: the server-side assignors and one group's state machine
//! (membership, cooperative reconciliation, generation fencing, static
//! members, committed offsets). Its records in `__consumer_offsets`, the
//! coordinator runtime and the gRPC front end come next.

mod assignor;
mod state;

pub use assignor::{Assignment, Assignor, MemberSpec};
pub use state::{
    epoch, CommittedOffset, Group, GroupError, GroupState, GroupTimeouts, Heartbeat,
    HeartbeatReply, Member,
};
