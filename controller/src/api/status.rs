//! Every controller error as a gRPC status, in one place: a gRPC code for
//! generic clients, and the typed `raftline.v1.Error` (code + message) in the
//! status details for Raftline's own clients.

use crate::error::MetadataError;
use crate::node::ControllerError;
use prost::Message;
use raftline_proto::pb::{self, ErrorCode};
use tonic::{Code, Status};

/// The status a client gets for `error`.
pub fn status(error: &ControllerError) -> Status {
    let details = error_to_wire(error);
    let message = details.message.clone();
    Status::with_details(code_of(error).1, message, details.encode_to_vec().into())
}

/// The typed error for `error` (code, message, leader hint), as every front
/// end carries it.
pub fn error_to_wire(error: &ControllerError) -> pb::Error {
    let leader_hint = match error {
        ControllerError::NotController { leader } => *leader,
        ControllerError::Metadata(MetadataError::NotLeader { leader }) => {
            leader.map(|b| u64::from(b.0))
        }
        _ => None,
    };
    pb::Error {
        code: code_of(error).0 as i32,
        message: error.to_string(),
        leader_hint,
        leader_address: None,
    }
}

fn code_of(error: &ControllerError) -> (ErrorCode, Code) {
    match error {
        ControllerError::Metadata(e) => metadata_code(e),
        ControllerError::NotController { .. } => (ErrorCode::NotController, Code::Unavailable),
        ControllerError::InvalidRequest(_) => (ErrorCode::InvalidRequest, Code::FailedPrecondition),
        ControllerError::Unavailable(_) => (ErrorCode::RequestTimedOut, Code::Unavailable),
    }
}

fn metadata_code(error: &MetadataError) -> (ErrorCode, Code) {
    use MetadataError as E;
    match error {
        E::InvalidTopicName { .. } => (ErrorCode::InvalidTopicName, Code::InvalidArgument),
        E::TopicAlreadyExists { .. } => (ErrorCode::TopicAlreadyExists, Code::AlreadyExists),
        E::UnknownTopic { .. } | E::UnknownPartition { .. } => {
            (ErrorCode::UnknownTopicOrPartition, Code::NotFound)
        }
        E::UnknownBroker { .. } => (ErrorCode::BrokerNotAvailable, Code::NotFound),
        E::InvalidPartitions { .. } => (ErrorCode::InvalidPartitions, Code::InvalidArgument),
        E::InvalidReplicationFactor { .. } => {
            (ErrorCode::InvalidReplicationFactor, Code::InvalidArgument)
        }
        E::InvalidReplicaAssignment { .. } => {
            (ErrorCode::InvalidReplicaAssignment, Code::InvalidArgument)
        }
        E::InvalidConfig { .. } => (ErrorCode::InvalidConfig, Code::InvalidArgument),
        E::StaleBrokerEpoch { .. } | E::DuplicateBrokerRegistration { .. } => {
            (ErrorCode::StaleBrokerEpoch, Code::FailedPrecondition)
        }
        E::FencedLeaderEpoch { .. } => (ErrorCode::FencedLeaderEpoch, Code::FailedPrecondition),
        E::InvalidUpdateVersion { .. } => {
            (ErrorCode::InvalidUpdateVersion, Code::FailedPrecondition)
        }
        E::NotLeader { .. } => (ErrorCode::NotLeaderOrFollower, Code::FailedPrecondition),
        E::InvalidIsr { .. } | E::IneligibleReplica { .. } => {
            (ErrorCode::IneligibleReplica, Code::FailedPrecondition)
        }
        E::ElectionNotNeeded { .. } => (ErrorCode::ElectionNotNeeded, Code::FailedPrecondition),
        E::PreferredLeaderNotAvailable { .. } => (
            ErrorCode::PreferredLeaderNotAvailable,
            Code::FailedPrecondition,
        ),
        E::EligibleLeadersNotAvailable => (
            ErrorCode::EligibleLeadersNotAvailable,
            Code::FailedPrecondition,
        ),
        E::MalformedCommand { .. } => (ErrorCode::InvalidRequest, Code::InvalidArgument),
    }
}

/// The typed error inside a status from a Raftline server, if any.
pub fn error_of(status: &Status) -> Option<pb::Error> {
    pb::Error::decode(status.details()).ok()
}
