//! The Kafka protocol listener against a three-node cluster, at the wire:
//! every advertised version of every API is sent and its answer decoded with
//! the `kafka-protocol` crate (a field this listener set that a version does
//! not carry would fail the encode and close the connection), and bad input
//! is refused the way Kafka refuses it. Real clients (librdkafka,
//! kafka-python, kcat) run against the same listener in scripts/kafka-compat.sh.

use crate::procs::{wait_for, ProcCluster};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions as ElectTopicPartitions;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreatePartitionsRequest, CreateTopicsRequest,
    DeleteGroupsRequest, DeleteTopicsRequest, DescribeClusterRequest, DescribeConfigsRequest,
    DescribeGroupsRequest, ElectLeadersRequest, ElectLeadersResponse, FetchRequest,
    FindCoordinatorRequest, GroupId, HeartbeatRequest, IncrementalAlterConfigsRequest,
    InitProducerIdRequest, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    ListGroupsRequest, ListOffsetsRequest, MetadataRequest, MetadataResponse, OffsetCommitRequest,
    OffsetFetchRequest, OffsetForLeaderEpochRequest, ProduceRequest, RequestHeader, ResponseHeader,
    SyncGroupRequest, SyncGroupResponse, TopicName, TransactionalId,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use raftline_broker::kafka::SUPPORTED;
use raftline_broker::records::{decode_batches, encode_batch, NewRecord, ProducerStamp};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use tracing::info;

/// One connection speaking the protocol, a request at a time.
struct Conn {
    stream: TcpStream,
    correlation: i32,
}

impl Conn {
    fn open(addr: &str) -> Conn {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Conn {
            stream,
            correlation: 0,
        }
    }

    fn frame<R: Request>(&mut self, request: &R, version: i16) -> (Vec<u8>, i32) {
        self.correlation += 1;
        let mut body = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("raftline-test")))
            .encode(&mut body, R::header_version(version))
            .unwrap();
        request.encode(&mut body, version).unwrap();
        let mut framed = (body.len() as i32).to_be_bytes().to_vec();
        framed.extend_from_slice(&body);
        (framed, self.correlation)
    }

    /// The next response frame, or None if the broker closed the connection.
    fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).ok()?;
        let mut buf = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut buf).ok()?;
        Some(Bytes::from(buf))
    }

    fn call<R: Request>(&mut self, request: &R, version: i16) -> R::Response {
        let (framed, correlation) = self.frame(request, version);
        self.stream.write_all(&framed).unwrap();
        self.answer::<R::Response>(correlation, version)
    }

    fn answer<T: Decodable + HeaderVersion>(&mut self, correlation: i32, version: i16) -> T {
        let mut buf = self
            .read_frame()
            .unwrap_or_else(|| panic!("the broker closed the connection (request {correlation})"));
        let header = ResponseHeader::decode(&mut buf, T::header_version(version)).unwrap();
        assert_eq!(header.correlation_id, correlation);
        let body = T::decode(&mut buf, version).unwrap();
        assert!(!buf.has_remaining(), "{} bytes left over", buf.remaining());
        body
    }

    /// Whether the broker closes the connection after `bytes`.
    fn closed_after(mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).unwrap();
        self.read_frame().is_none()
    }
}

fn range(key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let (_, min, max) = SUPPORTED.iter().find(|(k, _, _)| *k == key).unwrap();
    *min..=*max
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn records(n: usize, tag: &str, stamp: Option<ProducerStamp>) -> Bytes {
    let records: Vec<NewRecord> = (0..n)
        .map(|i| NewRecord {
            key: None,
            value: Some(Bytes::from(format!("{tag}-{i}"))),
            // Now: a time older than retention.ms would be deleted.
            timestamp: crate::data::now_ms() + i as i64,
        })
        .collect();
    encode_batch(&records, stamp).unwrap()
}

fn produce(topic: &str, batch: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch))])])
}

fn fetch(topic: &str, offset: i64, leader_epoch: i32) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_current_leader_epoch(leader_epoch)
                .with_partition_max_bytes(1 << 20)])])
}

fn list_offsets(topic: &str, timestamp: i64) -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(timestamp)])])
}

/// The metadata can name a leader a moment before that broker has taken the
/// partition up: waits until `conn`'s broker answers for `topic`-0 as leader.
fn await_leader(conn: &mut Conn, topic: &str) {
    wait_for(
        "the leader to take up the partition",
        Duration::from_secs(10),
        || conn.call(&list_offsets(topic, -1), 6).topics[0].partitions[0].error_code == 0,
    );
}

/// A topic created through the controller reaches each broker's metadata a
/// moment later (as in Kafka, whose clients retry UNKNOWN_TOPIC_OR_PARTITION):
/// waits until `conn`'s broker knows `topic` and a leader for each partition.
fn await_topic(conn: &mut Conn, topic: &str) {
    wait_for(
        "the topic in the broker's metadata",
        Duration::from_secs(10),
        || {
            let r = metadata_of(conn, topic, 9);
            r.topics[0].error_code == 0
                && !r.topics[0].partitions.is_empty()
                && r.topics[0].partitions.iter().all(|p| p.leader_id.0 >= 0)
        },
    );
}

fn metadata_of(conn: &mut Conn, topic: &str, version: i16) -> MetadataResponse {
    let request = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(name(topic))),
    ]));
    conn.call(&request, version)
}

#[test]
fn kafka_listener_serves_every_advertised_version() {
    let cluster = ProcCluster::start(3);
    cluster.ok(&[
        "topic",
        "create",
        "k",
        "--partitions",
        "1",
        "--replication-factor",
        "3",
    ]);
    let mut any = Conn::open(&cluster.kafka_addr(1));
    await_topic(&mut any, "k");

    info!("ApiVersions: the advertised ranges, and v0 with UNSUPPORTED_VERSION for a newer one");
    for v in range(ApiKey::ApiVersions) {
        let r = any.call(&ApiVersionsRequest::default(), v);
        assert_eq!(r.error_code, 0);
        let advertised: Vec<(i16, i16, i16)> = r
            .api_keys
            .iter()
            .map(|k| (k.api_key, k.min_version, k.max_version))
            .collect();
        let expected: Vec<(i16, i16, i16)> = SUPPORTED
            .iter()
            .map(|&(k, min, max)| (k as i16, min, max))
            .collect();
        assert_eq!(advertised, expected, "v{v}");
    }
    let (mut newer, correlation) = any.frame(&ApiVersionsRequest::default(), 3);
    newer[6..8].copy_from_slice(&99i16.to_be_bytes());
    any.stream.write_all(&newer).unwrap();
    let r: ApiVersionsResponse = any.answer(correlation, 0);
    assert_eq!(r.error_code, 35, "UNSUPPORTED_VERSION");
    assert!(r.api_keys.iter().any(|k| k.api_key == ApiKey::Fetch as i16));

    info!("Metadata at every version: three brokers on their Kafka ports, the partition's leader");
    let mut leader = -1;
    let mut epoch = -1;
    for v in range(ApiKey::Metadata) {
        let r = metadata_of(&mut any, "k", v);
        let mut ports: Vec<String> = r
            .brokers
            .iter()
            .map(|b| format!("{}:{}", b.host.as_str(), b.port))
            .collect();
        ports.sort();
        let mut expected: Vec<String> = (1..=3).map(|i| cluster.kafka_addr(i)).collect();
        expected.sort();
        assert_eq!(ports, expected, "v{v}");
        let topic = &r.topics[0];
        assert_eq!(topic.error_code, 0, "v{v}");
        let p = &topic.partitions[0];
        assert_eq!(p.replica_nodes.len(), 3);
        leader = p.leader_id.0;
        assert!((1..=3).contains(&leader), "v{v}: leader {leader}");
        if v >= 7 {
            epoch = p.leader_epoch;
            assert!(epoch >= 0);
        }
        if v >= 10 {
            assert!(!topic.topic_id.is_nil());
        }
    }
    let unknown = metadata_of(&mut any, "no-such-topic", 9);
    assert_eq!(
        unknown.topics[0].error_code, 3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    let leader_addr = cluster.kafka_addr(leader as usize);
    let follower_addr = cluster.kafka_addr(if leader == 1 { 2 } else { 1 });
    let mut lead = Conn::open(&leader_addr);
    await_leader(&mut lead, "k");

    info!("Produce at every served version, acks=all; the offsets follow on");
    let mut total = 0i64;
    for v in 3..=*range(ApiKey::Produce).end() {
        let r = lead.call(&produce("k", records(2, &format!("v{v}"), None), -1), v);
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "v{v}: {:?}", p.error_message);
        assert_eq!(p.base_offset, total, "v{v}");
        total += 2;
    }

    info!("an idempotent producer: a retried batch is not written twice");
    let idempotent = InitProducerIdRequest::default().with_transactional_id(None);
    let init = lead.call(&idempotent, 4);
    assert_eq!(init.error_code, 0);
    assert!(init.producer_id.0 >= 0);
    let stamp = ProducerStamp {
        producer_id: init.producer_id.0,
        producer_epoch: init.producer_epoch,
        base_sequence: 0,
    };
    let batch = records(3, "idem", Some(stamp));
    for attempt in 0..2 {
        let r = lead.call(&produce("k", batch.clone(), -1), 9);
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "attempt {attempt}");
        assert_eq!(p.base_offset, total, "attempt {attempt}: same offset");
    }
    total += 3;
    for v in range(ApiKey::InitProducerId) {
        let r = any.call(&idempotent, v);
        assert_eq!((r.error_code, r.producer_epoch), (0, 0), "v{v}");
    }
    let transactional = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx"))));
    assert_eq!(
        any.call(&transactional, 4).error_code,
        53,
        "transactions are refused"
    );
    assert_eq!(
        any.call(&InitProducerIdRequest::default(), 4).error_code,
        42,
        "an empty transactional id is malformed"
    );

    info!("a follower refuses a produce and names the leader (v10+)");
    let mut follow = Conn::open(&follower_addr);
    for v in [9, 10] {
        let r = follow.call(&produce("k", records(1, "no", None), -1), v);
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 6, "NOT_LEADER_OR_FOLLOWER");
        if v >= 10 {
            assert_eq!(p.current_leader.leader_id.0, leader);
            assert!(r.node_endpoints.iter().any(|n| n.node_id.0 == leader
                && format!("{}:{}", n.host.as_str(), n.port) == leader_addr));
        }
    }
    let bad_acks = lead.call(&produce("k", records(1, "x", None), 2), 9);
    assert_eq!(
        bad_acks.responses[0].partition_responses[0].error_code, 21,
        "INVALID_REQUIRED_ACKS"
    );

    info!("Fetch at every served version: every record, up to the high watermark");
    wait_for("the high watermark", Duration::from_secs(10), || {
        let r = lead.call(&list_offsets("k", -1), 6);
        r.topics[0].partitions[0].offset == total
    });
    for v in range(ApiKey::Fetch) {
        let r = lead.call(&fetch("k", 0, if v >= 9 { epoch } else { -1 }), v);
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "v{v}");
        assert_eq!(p.high_watermark, total, "v{v}");
        let got = decode_batches(p.records.clone().unwrap(), 0).unwrap();
        assert_eq!(got.len() as i64, total, "v{v}");
        assert_eq!(got[0].value.as_deref(), Some(&b"v3-0"[..]));
        assert_eq!(got.last().unwrap().value.as_deref(), Some(&b"idem-2"[..]));
    }
    info!("a fetcher whose last epoch this log never had is told where ours ends (KIP-320)");
    let mut same = fetch("k", 0, epoch);
    same.topics[0].partitions[0].last_fetched_epoch = epoch;
    let r = lead.call(&same, 12);
    let p = &r.responses[0].partitions[0];
    assert_eq!(
        (p.error_code, p.diverging_epoch.epoch),
        (0, -1),
        "no divergence"
    );
    assert!(p.records.as_ref().is_some_and(|r| !r.is_empty()));
    // A log that went past where our epoch ends.
    let mut ahead = fetch("k", total + 3, epoch);
    ahead.topics[0].partitions[0].last_fetched_epoch = epoch;
    let r = lead.call(&ahead, 12);
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    assert_eq!(
        (p.diverging_epoch.epoch, p.diverging_epoch.end_offset),
        (epoch, total)
    );
    assert!(
        p.records.as_ref().is_none_or(|r| r.is_empty()),
        "no records with a divergence"
    );
    let out_of_range = lead.call(&fetch("k", total + 10, -1), 12);
    assert_eq!(out_of_range.responses[0].partitions[0].error_code, 1);
    let newer_epoch = lead.call(&fetch("k", 0, epoch + 1), 12);
    assert_eq!(
        newer_epoch.responses[0].partitions[0].error_code, 75,
        "UNKNOWN_LEADER_EPOCH"
    );
    let at_follower = follow.call(&fetch("k", 0, epoch), 12);
    let p = &at_follower.responses[0].partitions[0];
    assert_eq!(p.error_code, 6);
    assert_eq!(p.current_leader.leader_id.0, leader);

    info!("ListOffsets at every served version: earliest and latest");
    for v in range(ApiKey::ListOffsets) {
        let earliest = lead.call(&list_offsets("k", -2), v);
        assert_eq!(earliest.topics[0].partitions[0].offset, 0, "v{v}");
        let latest = lead.call(&list_offsets("k", -1), v);
        assert_eq!(latest.topics[0].partitions[0].offset, total, "v{v}");
    }

    info!("acks=0 is answered with nothing; the next request still is");
    let (framed, _) = lead.frame(&produce("k", records(1, "zero", None), 0), 9);
    lead.stream.write_all(&framed).unwrap();
    let r = lead.call(&ApiVersionsRequest::default(), 3);
    assert_eq!(r.error_code, 0);
    wait_for("the acks=0 record", Duration::from_secs(10), || {
        let r = lead.call(&list_offsets("k", -1), 6);
        r.topics[0].partitions[0].offset == total + 1
    });

    info!("bad input closes that connection only");
    let oversized = (200i32 << 20).to_be_bytes();
    assert!(Conn::open(&leader_addr).closed_after(&oversized));
    let negative = (-5i32).to_be_bytes();
    assert!(Conn::open(&leader_addr).closed_after(&negative));
    let mut unknown_key = BytesMut::new();
    unknown_key.put_i32(10);
    unknown_key.put_i16(999);
    unknown_key.put_i16(0);
    unknown_key.put_i32(1);
    unknown_key.put_i16(-1);
    assert!(Conn::open(&leader_addr).closed_after(&unknown_key));
    // Metadata v1 claiming 2^31 - 1 topics in 14 bytes: once enough to make
    // the decoder reserve 150 GB and abort the broker.
    let mut huge = BytesMut::new();
    huge.put_i32(14);
    huge.put_i16(3);
    huge.put_i16(1);
    huge.put_i32(1);
    huge.put_i16(-1);
    huge.put_i32(i32::MAX);
    assert!(Conn::open(&leader_addr).closed_after(&huge));
    let mut old = Conn::open(&leader_addr);
    let (mut v2, _) = old.frame(&produce("k", records(1, "old", None), -1), 3);
    v2[6..8].copy_from_slice(&2i16.to_be_bytes());
    assert!(
        old.closed_after(&v2),
        "Produce v2 is advertised but refused"
    );
    let mut garbage = Conn::open(&leader_addr);
    let (mut broken, _) = garbage.frame(&metadata_request_all(), 9);
    broken.truncate(14);
    broken[..4].copy_from_slice(&10i32.to_be_bytes());
    assert!(garbage.closed_after(&broken));
    let r = metadata_of(&mut Conn::open(&leader_addr), "k", 12);
    assert_eq!(r.topics[0].error_code, 0, "the listener still serves");
    let log =
        std::fs::read_to_string(cluster.dir.path().join(format!("node{leader}.log"))).unwrap();
    assert!(
        log.contains("socket.request.max.bytes")
            && log.contains("unknown API key 999")
            && log.contains("2147483647 elements"),
        "each close says why in the log"
    );
}

fn metadata_request_all() -> MetadataRequest {
    MetadataRequest::default()
}

/// The coordinator of `group`, found through any node (polling while
/// `__consumer_offsets` is created).
fn coordinator(cluster: &ProcCluster, group: &str) -> String {
    coordinator_via(cluster, 1, group, None)
}

/// The coordinator of `group` as node `via` sees it, other than `not`.
fn coordinator_via(cluster: &ProcCluster, via: usize, group: &str, not: Option<&str>) -> String {
    let mut conn = Conn::open(&cluster.kafka_addr(via));
    let mut found = None;
    wait_for("a group coordinator", Duration::from_secs(30), || {
        let r = conn.call(
            &FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.into())),
            3,
        );
        if r.error_code == 0 {
            found = Some(format!("{}:{}", r.host.as_str(), r.port))
                .filter(|addr| Some(addr.as_str()) != not);
        } else {
            assert_eq!(
                r.error_code, 15,
                "COORDINATOR_NOT_AVAILABLE while it is created"
            );
        }
        found.is_some()
    });
    found.unwrap()
}

fn join_request(group: &str, member: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(StrBytes::from_string(member.into()))
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(Bytes::from(format!("sub-{member}")))])
}

/// Joins `group` at `version` (getting a member id first from v4 on).
/// Joins as a Kafka client does: COORDINATOR_LOAD_IN_PROGRESS (14) while
/// the coordinator's offsets partition is still taking leadership is retried
/// at the same coordinator, within a deadline.
fn join(conn: &mut Conn, group: &str, member: &str, version: i16) -> JoinGroupResponse {
    let mut r = conn.call(&join_request(group, member), version);
    if r.error_code == 14 {
        wait_for(
            "the coordinator to load its groups",
            Duration::from_secs(30),
            || {
                r = conn.call(&join_request(group, member), version);
                r.error_code != 14
            },
        );
    }
    if r.error_code == 79 {
        assert!(version >= 4 && member.is_empty());
        return conn.call(&join_request(group, r.member_id.as_str()), version);
    }
    r
}

fn sync(
    conn: &mut Conn,
    group: &str,
    member: &str,
    generation: i32,
    assign: &[(&str, &str)],
    version: i16,
) -> SyncGroupResponse {
    let request = SyncGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_generation_id(generation)
        .with_member_id(StrBytes::from_string(member.into()))
        .with_protocol_type((version >= 5).then(|| StrBytes::from_static_str("consumer")))
        .with_protocol_name((version >= 5).then(|| StrBytes::from_static_str("range")))
        .with_assignments(
            assign
                .iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(StrBytes::from_string(m.to_string()))
                        .with_assignment(Bytes::from(a.to_string()))
                })
                .collect(),
        );
    conn.call(&request, version)
}

fn heartbeat(conn: &mut Conn, group: &str, member: &str, generation: i32, version: i16) -> i16 {
    let request = HeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_generation_id(generation)
        .with_member_id(StrBytes::from_string(member.into()));
    conn.call(&request, version).error_code
}

fn commit(
    conn: &mut Conn,
    group: &str,
    member: &str,
    generation: i32,
    offset: i64,
    version: i16,
) -> i16 {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(StrBytes::from_string(member.into()))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(name("g"))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)])]);
    conn.call(&request, version).topics[0].partitions[0].error_code
}

fn committed(conn: &mut Conn, group: &str, version: i16) -> i64 {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(name("g"))
            .with_partition_indexes(vec![0])]));
    let r = conn.call(&request, version);
    assert_eq!(r.error_code, 0);
    r.topics[0].partitions[0].committed_offset
}

fn leave(conn: &mut Conn, group: &str, member: &str, version: i16) -> i16 {
    let request =
        LeaveGroupRequest::default().with_group_id(GroupId(StrBytes::from_string(group.into())));
    let request = if version >= 3 {
        request.with_members(vec![
            MemberIdentity::default().with_member_id(StrBytes::from_string(member.into()))
        ])
    } else {
        request.with_member_id(StrBytes::from_string(member.into()))
    };
    let r = conn.call(&request, version);
    if version >= 3 {
        assert_eq!(r.error_code, 0);
        r.members[0].error_code
    } else {
        r.error_code
    }
}

#[test]
fn kafka_classic_groups_rebalance_fence_generations_and_keep_offsets() {
    let cluster = ProcCluster::start(3);
    cluster.ok(&[
        "topic",
        "create",
        "g",
        "--partitions",
        "2",
        "--replication-factor",
        "3",
    ]);

    info!("every advertised version of every group API, one member per group");
    for v in 0..=9i16 {
        let group = format!("wire-v{v}");
        let mut c = Conn::open(&coordinator(&cluster, &group));
        let joined = join(&mut c, &group, "", v);
        assert_eq!(joined.error_code, 0, "JoinGroup v{v}");
        assert_eq!(joined.generation_id, 1);
        assert_eq!(joined.leader, joined.member_id, "alone: its own leader");
        assert_eq!(joined.members.len(), 1);
        assert_eq!(
            joined.members[0].metadata,
            Bytes::from(format!(
                "sub-{}",
                if v >= 4 {
                    joined.member_id.as_str()
                } else {
                    ""
                }
            )),
            "the member's own protocol metadata, passed through"
        );
        let member = joined.member_id.to_string();
        let sv = v.min(5);
        let synced = sync(&mut c, &group, &member, 1, &[(&member, "p0,p1")], sv);
        assert_eq!(
            (synced.error_code, synced.assignment.clone()),
            (0, Bytes::from("p0,p1")),
            "SyncGroup v{sv}"
        );
        assert_eq!(heartbeat(&mut c, &group, &member, 1, v.min(4)), 0);
        let cv = v.clamp(2, 8);
        assert_eq!(
            commit(&mut c, &group, &member, 1, 40 + i64::from(v), cv),
            0,
            "OffsetCommit v{cv}"
        );
        let fv = v.clamp(1, 7);
        assert_eq!(
            committed(&mut c, &group, fv),
            40 + i64::from(v),
            "OffsetFetch v{fv}"
        );
        assert_eq!(
            leave(&mut c, &group, &member, v.min(5)),
            0,
            "LeaveGroup v{}",
            v.min(5)
        );
        assert_eq!(
            heartbeat(&mut c, &group, &member, 1, 4),
            25,
            "gone: UNKNOWN_MEMBER_ID"
        );
        assert_eq!(
            commit(&mut c, &group, "", -1, 7, 8),
            0,
            "an empty group takes simple commits"
        );
    }

    info!("two members: a join makes the other rejoin, generations fence the past");
    let group = "pair";
    let addr = coordinator(&cluster, group);
    let mut a = Conn::open(&addr);
    let first = join(&mut a, group, "", 9);
    let ida = first.member_id.to_string();
    assert_eq!(
        sync(&mut a, group, &ida, 1, &[(&ida, "all")], 5).error_code,
        0
    );
    let b_addr = addr.clone();
    let b = std::thread::spawn(move || {
        let mut b = Conn::open(&b_addr);
        let joined = join(&mut b, "pair", "", 9);
        let idb = joined.member_id.to_string();
        let synced = sync(&mut b, "pair", &idb, joined.generation_id, &[], 5);
        (joined, synced)
    });
    wait_for(
        "the rebalance B's join starts",
        Duration::from_secs(10),
        || heartbeat(&mut a, group, &ida, 1, 4) == 27,
    );
    assert_eq!(
        commit(&mut a, group, &ida, 1, 5, 8),
        27,
        "no commits while partitions move"
    );
    let second = join(&mut a, group, &ida, 9);
    assert_eq!(second.generation_id, 2);
    assert_eq!(second.leader.as_str(), ida, "the leader stays");
    assert_eq!(second.members.len(), 2);
    let idb = second
        .members
        .iter()
        .map(|m| m.member_id.to_string())
        .find(|m| *m != ida)
        .unwrap();
    assert_eq!(
        sync(&mut a, group, &ida, 2, &[(&ida, "p0"), (&idb, "p1")], 5).assignment,
        Bytes::from("p0")
    );
    let (joined_b, synced_b) = b.join().unwrap();
    assert_eq!((joined_b.error_code, joined_b.generation_id), (0, 2));
    assert!(
        joined_b.members.is_empty(),
        "only the leader sees the members"
    );
    assert_eq!(
        (synced_b.error_code, synced_b.assignment),
        (0, Bytes::from("p1"))
    );
    assert_eq!(
        commit(&mut a, group, &ida, 1, 5, 8),
        22,
        "ILLEGAL_GENERATION"
    );
    assert_eq!(
        commit(&mut a, group, "stranger", 2, 5, 8),
        25,
        "UNKNOWN_MEMBER_ID"
    );
    assert_eq!(commit(&mut a, group, &ida, 2, 123, 8), 0);
    assert_eq!(committed(&mut a, group, 7), 123);
    let mut other = join_request(group, "");
    other.protocol_type = StrBytes::from_static_str("connect");
    assert_eq!(
        a.call(&other, 9).error_code,
        23,
        "INCONSISTENT_GROUP_PROTOCOL"
    );
    let mut b = Conn::open(&addr);
    assert_eq!(leave(&mut b, group, &idb, 5), 0);
    assert_eq!(
        heartbeat(&mut a, group, &ida, 2, 4),
        27,
        "B left: rebalance"
    );
    let third = join(&mut a, group, &ida, 9);
    assert_eq!((third.generation_id, third.members.len()), (3, 1));

    info!("the offsets survive the coordinator moving; members must rejoin");
    let coordinator_id = addr_node(&cluster, &addr);
    drop(a);
    let mut cluster = cluster;
    cluster.kill(coordinator_id);
    let via = if coordinator_id == 1 { 2 } else { 1 };
    let moved = coordinator_via(&cluster, via, group, Some(&addr));
    let mut a = Conn::open(&moved);
    wait_for("the new coordinator", Duration::from_secs(30), || {
        let code = heartbeat(&mut a, group, &ida, 3, 4);
        assert!(
            [14, 15, 16, 25].contains(&code),
            "heartbeat after the move: {code}"
        );
        code == 25
    });
    assert_eq!(
        committed(&mut a, group, 7),
        123,
        "the committed offset survived"
    );
}

/// The node whose Kafka listener is `addr`.
fn addr_node(cluster: &ProcCluster, addr: &str) -> usize {
    (1..=3).find(|&i| cluster.kafka_addr(i) == addr).unwrap()
}

fn create_topics(
    conn: &mut Conn,
    topic: &str,
    partitions: i32,
    rf: i16,
    configs: &[(&str, &str)],
    validate_only: bool,
    version: i16,
) -> CreatableTopicResult {
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_validate_only(validate_only)
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(rf)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.to_string()))
                            .with_value(Some(StrBytes::from_string(v.to_string())))
                    })
                    .collect(),
            )]);
    conn.call(&request, version).topics.remove(0)
}

fn partitions_of(conn: &mut Conn, topic: &str) -> usize {
    let r = metadata_of(conn, topic, 12);
    if r.topics[0].error_code == 0 {
        r.topics[0].partitions.len()
    } else {
        0
    }
}

#[test]
fn kafka_admin_apis_manage_topics_configs_and_groups() {
    let cluster = ProcCluster::start(3);
    let mut c = Conn::open(&cluster.kafka_addr(2));

    info!("CreateTopics at every version; the metadata shows each topic");
    for v in range(ApiKey::CreateTopics) {
        let topic = format!("a-v{v}");
        let r = create_topics(
            &mut c,
            &topic,
            2,
            3,
            &[("retention.ms", "3600000")],
            false,
            v,
        );
        assert_eq!(r.error_code, 0, "v{v}: {:?}", r.error_message);
        if v >= 5 {
            assert_eq!((r.num_partitions, r.replication_factor), (2, 3));
        }
        if v >= 7 {
            assert!(!r.topic_id.is_nil());
        }
        wait_for("the new topic's metadata", Duration::from_secs(10), || {
            partitions_of(&mut c, &topic) == 2
        });
    }
    let again = create_topics(&mut c, "a-v2", 1, 3, &[], false, 7);
    assert_eq!(again.error_code, 36, "TOPIC_ALREADY_EXISTS");
    let bad_config = create_topics(&mut c, "bad", 1, 3, &[("retention.mss", "1")], false, 7);
    assert_eq!(bad_config.error_code, 40, "INVALID_CONFIG");
    assert!(bad_config.error_message.unwrap().contains("retention.mss"));
    let too_many = create_topics(&mut c, "bad", 1, 5, &[], false, 7);
    assert_eq!(too_many.error_code, 38, "INVALID_REPLICATION_FACTOR");
    let checked = create_topics(&mut c, "only-checked", 1, 3, &[], true, 7);
    assert_eq!(checked.error_code, 0);
    let defaults = create_topics(&mut c, "defaults", -1, -1, &[], false, 7);
    assert_eq!(
        (
            defaults.error_code,
            defaults.num_partitions,
            defaults.replication_factor
        ),
        (0, 1, 3)
    );
    assert_eq!(
        partitions_of(&mut c, "only-checked"),
        0,
        "validate_only creates nothing"
    );

    info!("DescribeConfigs: set values as dynamic topic configs, the rest as defaults");
    for v in range(ApiKey::DescribeConfigs) {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("a-v2"))
                .with_configuration_keys(None),
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("nope")),
        ]);
        let r = c.call(&request, v);
        assert_eq!(r.results[0].error_code, 0);
        let get = |key: &str| {
            r.results[0]
                .configs
                .iter()
                .find(|e| e.name.as_str() == key)
                .map(|e| (e.value.clone().unwrap().to_string(), e.config_source))
                .unwrap()
        };
        assert_eq!(get("retention.ms"), ("3600000".to_string(), 1), "v{v}");
        assert_eq!(get("cleanup.policy"), ("delete".to_string(), 5));
        assert_eq!(get("min.insync.replicas"), ("2".to_string(), 5));
        assert_eq!(r.results[1].error_code, 3, "unknown topic");
    }

    info!("CreatePartitions grows a topic, never shrinks it");
    for v in range(ApiKey::CreatePartitions) {
        let topic = format!("a-v{}", v + 2);
        let request = CreatePartitionsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(name(&topic))
                .with_count(3)]);
        let r = c.call(&request, v);
        assert_eq!(
            r.results[0].error_code, 0,
            "v{v}: {:?}",
            r.results[0].error_message
        );
        wait_for("the new partition", Duration::from_secs(10), || {
            partitions_of(&mut c, &topic) == 3
        });
        let shrink =
            CreatePartitionsRequest::default().with_topics(vec![CreatePartitionsTopic::default()
                .with_name(name(&topic))
                .with_count(1)]);
        assert_eq!(
            c.call(&shrink, v).results[0].error_code,
            37,
            "INVALID_PARTITIONS"
        );
    }

    info!("DescribeCluster: the brokers on their Kafka listeners");
    for v in range(ApiKey::DescribeCluster) {
        let r = c.call(&DescribeClusterRequest::default().with_endpoint_type(1), v);
        assert_eq!(r.error_code, 0);
        assert_eq!(r.brokers.len(), 3);
        assert_eq!(r.cluster_id.as_str(), "raftline");
    }

    info!("ElectLeaders: nothing to elect while preferred replicas lead; typed refusals");
    await_topic(&mut c, "defaults");
    let elect = |topics: Option<Vec<(&str, Vec<i32>)>>, kind: i8| {
        let topics = topics.map(|ts| {
            ts.into_iter()
                .map(|(t, ps)| {
                    ElectTopicPartitions::default()
                        .with_topic(name(t))
                        .with_partitions(ps)
                })
                .collect()
        });
        ElectLeadersRequest::default()
            .with_election_type(kind)
            .with_topic_partitions(topics)
            .with_timeout_ms(10_000)
    };
    let codes = |r: &ElectLeadersResponse| -> Vec<(String, i32, i16)> {
        r.replica_election_results
            .iter()
            .flat_map(|t| {
                t.partition_result
                    .iter()
                    .map(move |p| (t.topic.0.to_string(), p.partition_id, p.error_code))
            })
            .collect()
    };
    for v in range(ApiKey::ElectLeaders) {
        let named = elect(
            Some(vec![("defaults", vec![0, -1]), ("never-was", vec![0])]),
            0,
        );
        let r = c.call(&named, v);
        assert_eq!(r.error_code, 0);
        let want = vec![
            ("defaults".to_string(), -1, 3),
            ("defaults".to_string(), 0, 84),
            ("never-was".to_string(), 0, 3),
        ];
        assert_eq!(
            codes(&r),
            want,
            "v{v}: ELECTION_NOT_NEEDED, UNKNOWN_TOPIC_OR_PARTITION"
        );
        let all = codes(&c.call(&elect(None, 0), v));
        assert!(all.iter().any(|(t, _, _)| t == "defaults"), "v{v}: {all:?}");
        assert!(all.iter().all(|&(_, _, code)| code == 84), "v{v}: {all:?}");
    }
    let unclean = c.call(&elect(Some(vec![("defaults", vec![0])]), 1), 2);
    assert_eq!(codes(&unclean), vec![("defaults".to_string(), 0, 84)]);
    let bad = c.call(&elect(Some(vec![("defaults", vec![0])]), 7), 2);
    assert_eq!(bad.error_code, 42, "INVALID_REQUEST");

    info!("OffsetForLeaderEpoch: where epoch 0 ends");
    let meta = metadata_of(&mut c, "defaults", 12);
    let leader = meta.topics[0].partitions[0].leader_id.0 as usize;
    let mut lead = Conn::open(&cluster.kafka_addr(leader));
    await_leader(&mut lead, "defaults");
    let r = lead.call(&produce("defaults", records(4, "e", None), -1), 9);
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    for v in range(ApiKey::OffsetForLeaderEpoch) {
        let request = OffsetForLeaderEpochRequest::default().with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(name("defaults"))
                .with_partitions(vec![OffsetForLeaderPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(0)
                    .with_leader_epoch(0)]),
        ]);
        let r = lead.call(&request, v);
        let p = &r.topics[0].partitions[0];
        assert_eq!(
            (p.error_code, p.leader_epoch, p.end_offset),
            (0, 0, 4),
            "v{v}"
        );
    }

    info!("ListGroups, DescribeGroups, DeleteGroups");
    let group = "admin-group";
    let addr = coordinator(&cluster, group);
    let mut g = Conn::open(&addr);
    let joined = join(&mut g, group, "", 9);
    let member = joined.member_id.to_string();
    sync(&mut g, group, &member, 1, &[(&member, "all")], 5);
    for v in range(ApiKey::ListGroups) {
        let r = g.call(&ListGroupsRequest::default(), v);
        let listed = r
            .groups
            .iter()
            .find(|l| l.group_id.0.as_str() == group)
            .unwrap();
        assert_eq!(listed.protocol_type.as_str(), "consumer");
        if v >= 4 {
            assert_eq!(listed.group_state.as_str(), "Stable");
        }
    }
    for v in range(ApiKey::DescribeGroups) {
        let request = DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_static_str(group))]);
        let r = g.call(&request, v);
        let d = &r.groups[0];
        assert_eq!(
            (
                d.error_code,
                d.group_state.as_str(),
                d.protocol_data.as_str()
            ),
            (0, "Stable", "range")
        );
        assert_eq!(d.members[0].member_assignment, Bytes::from("all"));
    }
    let delete = DeleteGroupsRequest::default()
        .with_groups_names(vec![GroupId(StrBytes::from_static_str(group))]);
    assert_eq!(
        g.call(&delete, 2).results[0].error_code,
        68,
        "NON_EMPTY_GROUP"
    );
    leave(&mut g, group, &member, 5);
    for v in range(ApiKey::DeleteGroups) {
        let code = g.call(&delete, v).results[0].error_code;
        assert!(code == 0 || (v > 0 && code == 69), "v{v}: {code}");
    }
    let gone = g.call(
        &DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_static_str(group))]),
        5,
    );
    assert_eq!(gone.groups[0].group_state.as_str(), "Dead");

    info!("DeleteTopics at every version");
    for v in range(ApiKey::DeleteTopics) {
        let topic = format!("a-v{}", v + 1);
        let request = if v >= 6 {
            DeleteTopicsRequest::default().with_topics(vec![
                DeleteTopicState::default().with_name(Some(name(&topic)))
            ])
        } else {
            DeleteTopicsRequest::default().with_topic_names(vec![name(&topic)])
        };
        let r = c.call(&request.with_timeout_ms(10_000), v);
        assert_eq!(
            r.responses[0].error_code, 0,
            "v{v}: {:?}",
            r.responses[0].error_message
        );
        wait_for("the topic gone", Duration::from_secs(10), || {
            partitions_of(&mut c, &topic) == 0
        });
    }
    let offsets_topic =
        DeleteTopicsRequest::default().with_topic_names(vec![name("__consumer_offsets")]);
    assert_eq!(c.call(&offsets_topic, 5).responses[0].error_code, 42);
    let unknown = DeleteTopicsRequest::default().with_topic_names(vec![name("never-was")]);
    assert_eq!(c.call(&unknown, 5).responses[0].error_code, 3);

    info!("IncrementalAlterConfigs: the leader applies the change (compaction refuses unkeyed records)");
    assert_eq!(
        create_topics(&mut c, "alter", 1, 3, &[], false, 7).error_code,
        0
    );
    wait_for("the topic", Duration::from_secs(10), || {
        partitions_of(&mut c, "alter") == 1
    });
    let leader = metadata_of(&mut c, "alter", 12).topics[0].partitions[0]
        .leader_id
        .0 as usize;
    let mut lead = Conn::open(&cluster.kafka_addr(leader));
    let produce_code = |lead: &mut Conn| {
        lead.call(&produce("alter", records(1, "x", None), -1), 9)
            .responses[0]
            .partition_responses[0]
            .error_code
    };
    let r = alter(
        &mut c,
        "alter",
        &[
            ("retention.ms", 0, Some("5000")),
            ("cleanup.policy", 2, Some("compact")),
        ],
        0,
    );
    assert_eq!(r, 0);
    described(&mut c, "alter", "retention.ms", ("5000", 1));
    described(&mut c, "alter", "cleanup.policy", ("delete,compact", 1));
    wait_for("compaction at the leader", Duration::from_secs(10), || {
        produce_code(&mut lead) == 87
    });
    let r = alter(
        &mut c,
        "alter",
        &[
            ("retention.ms", 1, None),
            ("cleanup.policy", 3, Some("compact")),
        ],
        1,
    );
    assert_eq!(r, 0);
    described(&mut c, "alter", "retention.ms", ("604800000", 5));
    described(&mut c, "alter", "cleanup.policy", ("delete", 1));
    wait_for("compaction off again", Duration::from_secs(10), || {
        produce_code(&mut lead) == 0
    });
    assert_eq!(
        alter(&mut c, "alter", &[("retention.ms", 0, Some("soon"))], 1),
        40,
        "INVALID_CONFIG"
    );
    assert_eq!(
        alter(&mut c, "alter", &[("retention.mss", 0, Some("1"))], 1),
        40
    );
    assert_eq!(
        alter(&mut c, "never-was", &[("retention.ms", 0, Some("1"))], 1),
        3
    );
    described(&mut c, "alter", "retention.ms", ("604800000", 5));

    info!("min.insync.replicas 3, a follower killed: acks=all refused until it is 2 again");
    assert_eq!(
        alter(&mut c, "alter", &[("min.insync.replicas", 0, Some("3"))], 1),
        0
    );
    wait_for(
        "produce with three in sync",
        Duration::from_secs(10),
        || produce_code(&mut lead) == 0,
    );
    let follower = (1..=3).find(|&n| n != leader && n != 2).unwrap();
    let mut cluster = cluster;
    cluster.kill(follower);
    wait_for("NOT_ENOUGH_REPLICAS", Duration::from_secs(30), || {
        produce_code(&mut lead) == 19
    });
    assert_eq!(
        alter(&mut c, "alter", &[("min.insync.replicas", 0, Some("2"))], 1),
        0
    );
    wait_for("acks=all with two in sync", Duration::from_secs(10), || {
        produce_code(&mut lead) == 0
    });
}

/// IncrementalAlterConfigs of one topic: (name, operation, value); the code.
fn alter(conn: &mut Conn, topic: &str, configs: &[(&str, i8, Option<&str>)], version: i16) -> i16 {
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.into()))
            .with_configs(
                configs
                    .iter()
                    .map(|(k, op, v)| {
                        AlterableConfig::default()
                            .with_name(StrBytes::from_string(k.to_string()))
                            .with_config_operation(*op)
                            .with_value(v.map(|v| StrBytes::from_string(v.to_string())))
                    })
                    .collect(),
            ),
    ]);
    conn.call(&request, version).responses[0].error_code
}

/// Waits until DescribeConfigs gives `key` of `topic` as `expected` (value,
/// source): the answering broker's metadata may trail the controller's.
fn described(conn: &mut Conn, topic: &str, key: &str, expected: (&str, i8)) {
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.into()))
            .with_configuration_keys(Some(vec![StrBytes::from_string(key.into())]))]);
    let what = format!("{key} of {topic} to read {expected:?}");
    wait_for(&what, Duration::from_secs(10), || {
        let r = conn.call(&request, 4);
        let last = r.results[0].configs.first().map(|e| {
            (
                e.value.clone().unwrap_or_default().to_string(),
                e.config_source,
            )
        });
        last.as_ref()
            .is_some_and(|(v, src)| v == expected.0 && *src == expected.1)
    });
}

#[test]
fn kafka_metadata_creates_topics_only_when_the_cluster_allows_it() {
    let cluster = ProcCluster::start_with(3, "auto_create_topics_enable = true");
    let mut c = Conn::open(&cluster.kafka_addr(1));
    let refused = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name("not-asked")))
        ]))
        .with_allow_auto_topic_creation(false);
    assert_eq!(
        c.call(&refused, 9).topics[0].error_code,
        3,
        "the client did not allow it"
    );
    let first = metadata_of(&mut c, "auto-made", 9);
    assert!(
        [0, 5].contains(&first.topics[0].error_code),
        "created: LEADER_NOT_AVAILABLE until this broker has it, {}",
        first.topics[0].error_code
    );
    wait_for("the created topic", Duration::from_secs(10), || {
        let r = metadata_of(&mut c, "auto-made", 9);
        r.topics[0].error_code == 0 && r.topics[0].partitions[0].replica_nodes.len() == 3
    });
    let code = metadata_of(&mut c, "not-asked", 9).topics[0].error_code;
    assert!([0, 5].contains(&code), "now allowed: created ({code})");
    assert_eq!(
        metadata_of(&mut c, "bad/name", 9).topics[0].error_code,
        17,
        "INVALID_TOPIC_EXCEPTION"
    );
}
