//! Consumer groups: a coordinator per group on a partition of
//! `__consumer_offsets`, serving two protocols over one store of committed
//! offsets: Raftline's own (gRPC; assignment decided by the coordinator,
//! cooperative reconciliation, member epochs, static members) and Kafka's
//! classic one (`classic`: JoinGroup/SyncGroup, the leader member assigns).

mod assignor;
mod classic;
mod codec;
mod coordinator;
mod service;
mod state;

pub use assignor::{Assignment, Assignor, MemberSpec};
pub use classic::{ClassicGroup, ClassicMember, ClassicState, Join, Joined};
pub use codec::{decode, encode, CodecError};
pub use coordinator::{
    partition_for, CoordinatorConfig, CoordinatorError, GroupCoordinator, OffsetTarget,
    PartitionLag, OFFSETS_TOPIC,
};
pub use service::{error_to_wire, partitions_from_wire, partitions_to_wire, GroupsService};
pub use state::{
    epoch, CommittedOffset, Group, GroupError, GroupRecord, GroupState, GroupTimeouts, Heartbeat,
    HeartbeatReply, Member,
};
