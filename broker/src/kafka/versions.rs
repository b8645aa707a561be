//! The API versions this listener implements, exactly (a peer that
//! advertised more than it implemented broke librdkafka).

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

/// Every API served, with its lowest and highest version.
///
/// - Produce v0-2 (message formats v0 and v1) are advertised but refused, as
///   Kafka 4 does: librdkafka turns compression off against a broker whose
///   Produce range does not start at 0. v3 and later carry RecordBatch v2,
///   stored as received. v12 and later (transactions v2, topic ids) are not
///   served.
/// - Fetch v4-12: by topic name (v13 and later address topics by id only).
///   No incremental fetch sessions: every answer says session 0, so clients
///   send full fetches.
/// - ListOffsets v1-6: earliest (-2), latest (-1) and by timestamp; v7 and
///   later add the max-timestamp and tiered-storage specs.
/// - Metadata v0-12, InitProducerId v0-4 (idempotence; no transactions),
///   ApiVersions v0-4.
/// - The classic group protocol: FindCoordinator v0-4 (v4 batched; groups
///   only), JoinGroup v0-9, SyncGroup v0-5, Heartbeat v0-4, LeaveGroup v0-5,
///   OffsetCommit v2-8 (v9 is the new protocol's member epochs), OffsetFetch
///   v1-7 (v8 and later batch groups).
/// - Admin: CreateTopics v2-7, DeleteTopics v1-6, CreatePartitions v0-3,
///   DescribeConfigs v1-4, DescribeCluster v0-2, ListGroups v0-5,
///   DescribeGroups v0-5, DeleteGroups v0-2, IncrementalAlterConfigs v0-1
///   (topics), ElectLeaders v0-2; OffsetForLeaderEpoch v2-4 (for
///   consumers' truncation checks).
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 11),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 6),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::ElectLeaders, 0, 2),
];

/// The lowest Produce version actually served.
pub const PRODUCE_MIN_SERVED: i16 = 3;

/// `key`'s supported range, if served at all.
pub fn supported(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|&(_, min, max)| (min, max))
}

/// An ApiVersions answer with `error_code` and every supported range.
pub(super) fn api_versions(error_code: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(
            SUPPORTED
                .iter()
                .map(|&(key, min, max)| {
                    ApiVersion::default()
                        .with_api_key(key as i16)
                        .with_min_version(min)
                        .with_max_version(max)
                })
                .collect(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{
        ApiVersionsRequest, CreatePartitionsRequest, CreateTopicsRequest, DeleteGroupsRequest,
        DeleteTopicsRequest, DescribeClusterRequest, DescribeConfigsRequest, DescribeGroupsRequest,
        ElectLeadersRequest, FetchRequest, FindCoordinatorRequest, HeartbeatRequest,
        IncrementalAlterConfigsRequest, InitProducerIdRequest, JoinGroupRequest, LeaveGroupRequest,
        ListGroupsRequest, ListOffsetsRequest, MetadataRequest, OffsetCommitRequest,
        OffsetFetchRequest, OffsetForLeaderEpochRequest, ProduceRequest, SyncGroupRequest,
    };
    use kafka_protocol::protocol::{Message, VersionRange};

    fn within(range: VersionRange, min: i16, max: i16) -> bool {
        range.min <= min && max <= range.max
    }

    #[test]
    fn every_advertised_version_is_one_the_codecs_decode() {
        for &(key, min, max) in SUPPORTED {
            let codec = match key {
                ApiKey::Produce => ProduceRequest::VERSIONS,
                ApiKey::Fetch => FetchRequest::VERSIONS,
                ApiKey::ListOffsets => ListOffsetsRequest::VERSIONS,
                ApiKey::Metadata => MetadataRequest::VERSIONS,
                ApiKey::ApiVersions => ApiVersionsRequest::VERSIONS,
                ApiKey::InitProducerId => InitProducerIdRequest::VERSIONS,
                ApiKey::OffsetCommit => OffsetCommitRequest::VERSIONS,
                ApiKey::OffsetFetch => OffsetFetchRequest::VERSIONS,
                ApiKey::FindCoordinator => FindCoordinatorRequest::VERSIONS,
                ApiKey::JoinGroup => JoinGroupRequest::VERSIONS,
                ApiKey::Heartbeat => HeartbeatRequest::VERSIONS,
                ApiKey::LeaveGroup => LeaveGroupRequest::VERSIONS,
                ApiKey::SyncGroup => SyncGroupRequest::VERSIONS,
                ApiKey::CreateTopics => CreateTopicsRequest::VERSIONS,
                ApiKey::DeleteTopics => DeleteTopicsRequest::VERSIONS,
                ApiKey::CreatePartitions => CreatePartitionsRequest::VERSIONS,
                ApiKey::DescribeConfigs => DescribeConfigsRequest::VERSIONS,
                ApiKey::DescribeCluster => DescribeClusterRequest::VERSIONS,
                ApiKey::ListGroups => ListGroupsRequest::VERSIONS,
                ApiKey::DescribeGroups => DescribeGroupsRequest::VERSIONS,
                ApiKey::DeleteGroups => DeleteGroupsRequest::VERSIONS,
                ApiKey::OffsetForLeaderEpoch => OffsetForLeaderEpochRequest::VERSIONS,
                ApiKey::IncrementalAlterConfigs => IncrementalAlterConfigsRequest::VERSIONS,
                ApiKey::ElectLeaders => ElectLeadersRequest::VERSIONS,
                other => panic!("{other:?} is advertised but has no handler"),
            };
            // Produce's advertised-but-refused versions are answered before
            // any decoding.
            let min = if key == ApiKey::Produce {
                PRODUCE_MIN_SERVED
            } else {
                min
            };
            assert!(within(codec, min, max), "{key:?} {min}..={max}");
        }
        assert_eq!(supported(ApiKey::Fetch), Some((4, 12)));
        assert_eq!(supported(ApiKey::AlterConfigs), None);
    }
}
