//! Consumer groups (issue 6): partition assignment decided by the
//! coordinator.
//!
//! Built so far: the server-side assignors and one group's state machine
//! (membership, cooperative reconciliation, generation fencing, static
//! members, committed offsets). Its records in `__consumer_offsets`, the
//! coordinator runtime and the gRPC front end come next.

mod assignor;
mod codec;
mod coordinator;
mod service;
mod state;

pub use assignor::{Assignment, Assignor, MemberSpec};
pub use codec::{decode, encode, CodecError};
pub use coordinator::{
    partition_for, CoordinatorConfig, CoordinatorError, GroupCoordinator, OffsetTarget,
    PartitionLag, TopicCreator, OFFSETS_TOPIC,
};
pub use service::{error_to_wire, partitions_from_wire, partitions_to_wire, GroupsService};
pub use state::{
    epoch, CommittedOffset, Group, GroupError, GroupRecord, GroupState, GroupTimeouts, Heartbeat,
    HeartbeatReply, Member,
};
