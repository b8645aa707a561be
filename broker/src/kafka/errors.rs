//! Raftline's error codes as Kafka's: one to one, so a Kafka client's retry
//! logic (refresh metadata on NOT_LEADER_OR_FOLLOWER, back off on
//! NOT_ENOUGH_REPLICAS, reset on OFFSET_OUT_OF_RANGE) does the right thing.

use kafka_protocol::ResponseError as K;
use raftline_proto::pb::ErrorCode;

/// Kafka's code for one of Raftline's (every typed error in the broker,
/// controller and group coordinator has one of these wire codes).
pub fn kafka_code(code: ErrorCode) -> i16 {
    let kafka = match code {
        ErrorCode::Unspecified => return 0,
        ErrorCode::UnknownTopicOrPartition => K::UnknownTopicOrPartition,
        ErrorCode::NotLeaderOrFollower => K::NotLeaderOrFollower,
        ErrorCode::NotEnoughReplicas => K::NotEnoughReplicas,
        ErrorCode::OffsetOutOfRange => K::OffsetOutOfRange,
        ErrorCode::InvalidTopicName => K::InvalidTopicException,
        ErrorCode::RecordTooLarge => K::MessageTooLarge,
        ErrorCode::CorruptRecord => K::CorruptMessage,
        ErrorCode::FencedLeaderEpoch => K::FencedLeaderEpoch,
        ErrorCode::UnknownLeaderEpoch => K::UnknownLeaderEpoch,
        ErrorCode::RebalanceInProgress => K::RebalanceInProgress,
        ErrorCode::InvalidRequest => K::InvalidRequest,
        ErrorCode::KafkaStorageError => K::KafkaStorageError,
        ErrorCode::RequestTimedOut => K::RequestTimedOut,
        ErrorCode::TopicAlreadyExists => K::TopicAlreadyExists,
        ErrorCode::InvalidPartitions => K::InvalidPartitions,
        ErrorCode::InvalidReplicationFactor => K::InvalidReplicationFactor,
        ErrorCode::InvalidReplicaAssignment => K::InvalidReplicaAssignment,
        ErrorCode::InvalidConfig => K::InvalidConfig,
        ErrorCode::NotController => K::NotController,
        ErrorCode::StaleBrokerEpoch => K::StaleBrokerEpoch,
        ErrorCode::InvalidUpdateVersion => K::InvalidUpdateVersion,
        ErrorCode::IneligibleReplica => K::IneligibleReplica,
        ErrorCode::BrokerNotAvailable => K::BrokerNotAvailable,
        ErrorCode::OutOfOrderSequenceNumber => K::OutOfOrderSequenceNumber,
        ErrorCode::InvalidProducerEpoch => K::InvalidProducerEpoch,
        ErrorCode::OffsetNotAvailable => K::OffsetNotAvailable,
        ErrorCode::NotCoordinator => K::NotCoordinator,
        ErrorCode::CoordinatorNotAvailable => K::CoordinatorNotAvailable,
        ErrorCode::CoordinatorLoadInProgress => K::CoordinatorLoadInProgress,
        ErrorCode::UnknownMemberId => K::UnknownMemberId,
        ErrorCode::FencedMemberEpoch => K::FencedMemberEpoch,
        ErrorCode::StaleMemberEpoch => K::StaleMemberEpoch,
        ErrorCode::NonEmptyGroup => K::NonEmptyGroup,
        ErrorCode::GroupIdNotFound => K::GroupIdNotFound,
        ErrorCode::InvalidGroupId => K::InvalidGroupId,
        ErrorCode::InvalidRecord => K::InvalidRecord,
        ErrorCode::IllegalGeneration => K::IllegalGeneration,
        ErrorCode::InconsistentGroupProtocol => K::InconsistentGroupProtocol,
        ErrorCode::MemberIdRequired => K::MemberIdRequired,
        ErrorCode::InvalidSessionTimeout => K::InvalidSessionTimeout,
        ErrorCode::ElectionNotNeeded => K::ElectionNotNeeded,
        ErrorCode::PreferredLeaderNotAvailable => K::PreferredLeaderNotAvailable,
        ErrorCode::EligibleLeadersNotAvailable => K::EligibleLeadersNotAvailable,
    };
    kafka.code()
}

/// Kafka's code for a wire error code as carried in a `pb::Error`.
pub fn kafka_code_of(code: i32) -> i16 {
    ErrorCode::try_from(code).map_or(K::UnknownServerError.code(), kafka_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_to_a_distinct_kafka_code() {
        let mut seen = std::collections::BTreeMap::new();
        for raw in 1..200 {
            let Ok(code) = ErrorCode::try_from(raw) else {
                continue;
            };
            let kafka = kafka_code(code);
            assert!(kafka > 0, "{code:?} maps to {kafka}");
            if let Some(other) = seen.insert(kafka, code) {
                panic!("{code:?} and {other:?} both map to Kafka code {kafka}");
            }
        }
        assert_eq!(kafka_code(ErrorCode::NotLeaderOrFollower), 6);
        assert_eq!(kafka_code(ErrorCode::FencedLeaderEpoch), 74);
        assert_eq!(kafka_code(ErrorCode::NotEnoughReplicas), 19);
        assert_eq!(kafka_code(ErrorCode::UnknownTopicOrPartition), 3);
        assert_eq!(kafka_code(ErrorCode::OffsetOutOfRange), 1);
        assert_eq!(kafka_code_of(9999), -1);
    }
}
