//! The Admin gRPC API end to end: three controllers, the API served by a node
//! that does not lead (writes are forwarded to the leader), typed errors.

use crate::quorum::{leader_state, propose, register_brokers};
use raftline_controller::api::status::error_of;
use raftline_controller::api::AdminService;
use raftline_controller::{
    AlterPartitionRequest, Command, ControllerMachine, ControllerNode, Partition, PartitionIndex,
    TopicName,
};
use raftline_proto::pb::admin_client::AdminClient;
use raftline_proto::pb::admin_server::AdminServer;
use raftline_proto::pb::{self, ErrorCode};
use raftline_raft_store::local_cluster::LocalCluster;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Channel;

/// Serves Admin for controller `id` on a loopback port; returns a client.
async fn admin_on(cluster: &LocalCluster<ControllerMachine>, id: u64) -> AdminClient<Channel> {
    let node = Arc::new(ControllerNode::new(
        cluster.node(id).unwrap().clone(),
        Duration::from_secs(5),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AdminServer::new(AdminService::new(node)))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    AdminClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

/// Calls the Admin API on the controller leader as an admin tool does:
/// following NOT_CONTROLLER to the current leader until the call succeeds.
async fn on_leader<F, Fut, T>(cluster: &LocalCluster<ControllerMachine>, call: F) -> T
where
    F: Fn(AdminClient<Channel>) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let leader = cluster.leader().await.unwrap();
        match call(admin_on(cluster, leader).await).await {
            Ok(response) => return response.into_inner(),
            Err(status)
                if code_of(&status) == ErrorCode::NotController
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(status) => panic!("{status:?}"),
        }
    }
}

fn code_of(status: &tonic::Status) -> ErrorCode {
    let error = error_of(status).unwrap_or_else(|| panic!("no typed error in {status:?}"));
    ErrorCode::try_from(error.code).unwrap()
}

/// Three controllers with three registered brokers, and the Admin API of
/// a controller that does not lead (its writes are forwarded).
async fn three_brokers_and_a_followers_admin(
) -> (LocalCluster<ControllerMachine>, AdminClient<Channel>) {
    let cluster = LocalCluster::start(3, ControllerMachine::new, |_| {})
        .await
        .unwrap();
    register_brokers(&cluster, 3).await;
    let leader = cluster.leader().await.unwrap();
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let admin = admin_on(&cluster, follower).await;
    (cluster, admin)
}

fn create(name: &str, partitions: u32, rf: u32) -> pb::CreateTopicRequest {
    pb::CreateTopicRequest {
        name: name.into(),
        partitions,
        replication_factor: rf,
        configs: [("retention.ms".to_string(), "60000".to_string())].into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_creates_lists_grows_and_deletes_topics_with_typed_errors() {
    let (cluster, mut admin) = three_brokers_and_a_followers_admin().await;

    tracing::info!(
        "a topic created through a follower: placed on all three brokers, leaders spread"
    );
    let topic = admin
        .create_topic(create("orders", 3, 3))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(topic.name, "orders");
    assert_eq!(
        topic.configs.get("retention.ms").map(String::as_str),
        Some("60000")
    );
    assert_eq!(topic.partitions.len(), 3);
    let leaders: BTreeSet<u32> = topic.partitions.iter().filter_map(|p| p.leader).collect();
    assert_eq!(
        leaders.len(),
        3,
        "one partition leader per broker: {topic:?}"
    );
    for p in &topic.partitions {
        assert_eq!(p.replicas.len(), 3);
        assert_eq!(p.isr.len(), 3);
    }

    tracing::info!("bad requests get typed errors and change nothing");
    let version = leader_state(&cluster).await.version();
    let cases = [
        (
            create("orders", 1, 1),
            ErrorCode::TopicAlreadyExists,
            tonic::Code::AlreadyExists,
        ),
        (
            create("bad name!", 1, 1),
            ErrorCode::InvalidTopicName,
            tonic::Code::InvalidArgument,
        ),
        (
            create("..", 1, 1),
            ErrorCode::InvalidTopicName,
            tonic::Code::InvalidArgument,
        ),
        (
            create("wide", 1, 4),
            ErrorCode::InvalidReplicationFactor,
            tonic::Code::InvalidArgument,
        ),
        (
            create("empty", 0, 1),
            ErrorCode::InvalidPartitions,
            tonic::Code::InvalidArgument,
        ),
    ];
    for (request, code, grpc) in cases {
        let name = request.name.clone();
        let status = admin.create_topic(request).await.unwrap_err();
        assert_eq!(
            (code_of(&status), status.code()),
            (code, grpc),
            "{name}: {status:?}"
        );
    }
    let status = admin.create_topic(create("wide", 1, 4)).await.unwrap_err();
    assert!(
        status.message().contains('4') && status.message().contains('3'),
        "names both numbers: {}",
        status.message()
    );
    assert_eq!(
        leader_state(&cluster).await.version(),
        version,
        "rejected requests changed the metadata"
    );

    tracing::info!("partitions are added, never removed");
    let grown = admin
        .create_partitions(pb::CreatePartitionsRequest {
            topic: "orders".into(),
            total_count: 5,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(grown.partitions.len(), 5);
    let status = admin
        .create_partitions(pb::CreatePartitionsRequest {
            topic: "orders".into(),
            total_count: 2,
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(&status), ErrorCode::InvalidPartitions);

    tracing::info!("the cluster view names brokers and controllers");
    let view = admin
        .describe_cluster(pb::DescribeClusterRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        view.brokers.iter().map(|b| b.id).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(view.brokers.iter().all(|b| !b.fenced));
    assert_eq!(view.controllers.len(), 3);
    assert!(view.controller_leader.is_some());

    tracing::info!("a deleted topic is gone; asking for it is UNKNOWN_TOPIC_OR_PARTITION");
    admin
        .delete_topic(pb::DeleteTopicRequest {
            name: "orders".into(),
        })
        .await
        .unwrap();
    let mut listed = admin
        .list_topics(pb::ListTopicsRequest { names: vec![] })
        .await
        .unwrap()
        .into_inner();
    // The follower's view may trail the leader by a command: poll briefly.
    for _ in 0..100 {
        if listed.topics.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        listed = admin
            .list_topics(pb::ListTopicsRequest { names: vec![] })
            .await
            .unwrap()
            .into_inner();
    }
    assert!(listed.topics.is_empty(), "{listed:?}");
    let status = admin
        .list_topics(pb::ListTopicsRequest {
            names: vec!["orders".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(&status), ErrorCode::UnknownTopicOrPartition);
    let status = admin
        .delete_topic(pb::DeleteTopicRequest {
            name: "orders".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(&status), ErrorCode::UnknownTopicOrPartition);
    cluster.stop_all().await.unwrap();
}

fn alter(topic: &str, set: &[(&str, &str)], delete: &[&str]) -> pb::AlterTopicConfigsRequest {
    pb::AlterTopicConfigsRequest {
        topic: topic.into(),
        set: set
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        delete: delete.iter().map(|k| k.to_string()).collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_alters_topic_configs_and_refuses_bad_ones_changing_nothing() {
    let (cluster, mut admin) = three_brokers_and_a_followers_admin().await;
    admin.create_topic(create("orders", 1, 3)).await.unwrap();

    tracing::info!("set and delete in one change, through a follower; the answer shows it");
    let altered = admin
        .alter_topic_configs(alter(
            "orders",
            &[("retention.bytes", "1048576"), ("segment.bytes", "65536")],
            &["retention.ms"],
        ))
        .await
        .unwrap()
        .into_inner();
    let want: Vec<(&str, &str)> = vec![("retention.bytes", "1048576"), ("segment.bytes", "65536")];
    let got: Vec<(&str, &str)> = altered
        .configs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        got, want,
        "retention.ms back to its default, the others set"
    );
    let version = leader_state(&cluster).await.version();

    tracing::info!("bad changes are refused, typed, and change nothing");
    for (request, code) in [
        (
            alter("orders", &[("retention.mss", "1")], &[]),
            ErrorCode::InvalidConfig,
        ),
        (
            alter("orders", &[("retention.ms", "soon")], &[]),
            ErrorCode::InvalidConfig,
        ),
        (
            alter("orders", &[("min.insync.replicas", "4")], &[]),
            ErrorCode::InvalidConfig,
        ),
        (
            alter("orders", &[], &["segment.bytess"]),
            ErrorCode::InvalidConfig,
        ),
        (
            alter("invoices", &[("retention.ms", "1")], &[]),
            ErrorCode::UnknownTopicOrPartition,
        ),
    ] {
        let status = admin
            .alter_topic_configs(request.clone())
            .await
            .unwrap_err();
        assert_eq!(code_of(&status), code, "{request:?}: {status:?}");
    }
    assert_eq!(
        leader_state(&cluster).await.version(),
        version,
        "refused changes changed the metadata"
    );
    let listed = admin
        .list_topics(pb::ListTopicsRequest {
            names: vec!["orders".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.topics[0].configs, altered.configs);
    cluster.stop_all().await.unwrap();
}

fn elect(topic: &str, partitions: &[u32], election: pb::ElectionType) -> pb::ElectLeadersRequest {
    pb::ElectLeadersRequest {
        topic: topic.into(),
        partitions: partitions.to_vec(),
        election: election as i32,
    }
}

/// ElectLeaders through `admin`, which must answer.
async fn elected(
    admin: &mut AdminClient<Channel>,
    request: pb::ElectLeadersRequest,
) -> pb::ElectLeadersResponse {
    admin.elect_leaders(request).await.unwrap().into_inner()
}

/// Partition 0 of `orders` as the controller leader has it.
async fn orders_0(cluster: &LocalCluster<ControllerMachine>) -> Partition {
    let orders = TopicName::new("orders").unwrap();
    leader_state(cluster)
        .await
        .topic(&orders)
        .unwrap()
        .partitions[&PartitionIndex(0)]
        .clone()
}

/// Each result as (partition, leader, error code).
fn outcomes(response: &pb::ElectLeadersResponse) -> Vec<(u32, Option<u32>, Option<ErrorCode>)> {
    response
        .results
        .iter()
        .map(|r| {
            let code = r
                .error
                .as_ref()
                .map(|e| ErrorCode::try_from(e.code).unwrap());
            (r.partition, r.leader, code)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_elects_preferred_leaders_once_they_are_back_in_sync() {
    let (cluster, mut admin) = three_brokers_and_a_followers_admin().await;
    admin.create_topic(create("orders", 3, 3)).await.unwrap();
    let orders = TopicName::new("orders").unwrap();
    let preferred = orders_0(&cluster).await.replicas[0];
    let elect_all = |election| elect("orders", &[], election);

    tracing::info!("every preferred replica leads: nothing to do");
    let answer = elected(&mut admin, elect_all(pb::ElectionType::Preferred)).await;
    let not_needed = Some(ErrorCode::ElectionNotNeeded);
    assert!(
        outcomes(&answer)
            .iter()
            .all(|(_, _, code)| *code == not_needed),
        "{answer:?}"
    );
    assert_eq!(answer.results.len(), 3);

    tracing::info!("partition 0's preferred leader is fenced, then back but not in sync");
    propose(
        &cluster,
        &Command::FenceBroker {
            id: preferred,
            epoch: None,
        },
    )
    .await
    .unwrap();
    let epoch = leader_state(&cluster)
        .await
        .broker(preferred)
        .unwrap()
        .epoch;
    propose(
        &cluster,
        &Command::UnfenceBroker {
            id: preferred,
            epoch,
        },
    )
    .await
    .unwrap();
    let moved = orders_0(&cluster).await;
    let acting = moved.leader.unwrap();
    assert_ne!(acting, preferred);
    let answer = elected(
        &mut admin,
        elect("orders", &[0], pb::ElectionType::Preferred),
    )
    .await;
    assert_eq!(
        outcomes(&answer),
        vec![(0, None, Some(ErrorCode::PreferredLeaderNotAvailable))]
    );

    tracing::info!(
        "once the leader takes it back into the ISR, the election moves leadership to it"
    );
    let mut broker_epochs = BTreeMap::new();
    broker_epochs.insert(preferred, epoch);
    propose(
        &cluster,
        &Command::AlterPartition(AlterPartitionRequest {
            topic: orders.clone(),
            partition: PartitionIndex(0),
            leader: acting,
            leader_epoch: moved.leader_epoch,
            partition_epoch: moved.partition_epoch,
            new_isr: moved.replicas.clone(),
            broker_epochs,
        }),
    )
    .await
    .unwrap();
    let answer = elected(&mut admin, elect_all(pb::ElectionType::Preferred)).await;
    let got = outcomes(&answer);
    assert_eq!(got[0], (0, Some(preferred.0), None), "{answer:?}");
    assert!(got[1..].iter().all(|(_, _, code)| *code == not_needed));
    let after = orders_0(&cluster).await;
    assert_eq!(after.leader, Some(preferred));
    assert_eq!(after.leader_epoch, moved.leader_epoch.next());

    tracing::info!("every topic's partitions, and an unclean election where a leader is live");
    let everything = elected(&mut admin, elect("", &[], pb::ElectionType::Preferred)).await;
    assert_eq!(everything.results.len(), 3);
    let unclean = elected(&mut admin, elect_all(pb::ElectionType::Unclean)).await;
    assert!(outcomes(&unclean)
        .iter()
        .all(|(_, _, code)| *code == not_needed));

    tracing::info!("bad requests: typed errors, nothing changed");
    let version = leader_state(&cluster).await.version();
    let unknown_partition = elected(
        &mut admin,
        elect("orders", &[7], pb::ElectionType::Preferred),
    )
    .await;
    assert_eq!(
        outcomes(&unknown_partition),
        vec![(7, None, Some(ErrorCode::UnknownTopicOrPartition))]
    );
    let mut bad_type = elect("orders", &[], pb::ElectionType::Preferred);
    bad_type.election = 5;
    for (request, code) in [
        (
            elect("invoices", &[], pb::ElectionType::Preferred),
            ErrorCode::UnknownTopicOrPartition,
        ),
        (
            elect("", &[0], pb::ElectionType::Preferred),
            ErrorCode::InvalidRequest,
        ),
        (bad_type, ErrorCode::InvalidRequest),
    ] {
        let status = admin.elect_leaders(request.clone()).await.unwrap_err();
        assert_eq!(code_of(&status), code, "{request:?}: {status:?}");
    }
    assert_eq!(leader_state(&cluster).await.version(), version);
    cluster.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_are_added_and_removed_through_the_admin_api() {
    let mut cluster = LocalCluster::start(3, ControllerMachine::new, |_| {})
        .await
        .unwrap();
    cluster.start_extra(4).await.unwrap();
    let leader = cluster.leader().await.unwrap();
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let voters = |view: &pb::DescribeClusterResponse| -> Vec<u64> {
        view.controllers
            .iter()
            .filter(|c| c.voter)
            .map(|c| c.id)
            .collect()
    };

    tracing::info!("a membership change asked of a node that cannot lead is NOT_CONTROLLER");
    let add = pb::AddControllerRequest {
        id: 4,
        peer_address: cluster.addr(4).unwrap(),
    };
    let status = admin_on(&cluster, 4)
        .await
        .add_controller(add)
        .await
        .unwrap_err();
    let error = error_of(&status).unwrap();
    assert_eq!(
        ErrorCode::try_from(error.code).unwrap(),
        ErrorCode::NotController,
        "{}",
        error.message
    );

    tracing::info!("the leader adds controller 4 as a voter, then removes the follower");
    let add = pb::AddControllerRequest {
        id: 4,
        peer_address: cluster.addr(4).unwrap(),
    };
    let view = on_leader(&cluster, |mut admin| {
        let add = add.clone();
        async move { admin.add_controller(add).await }
    })
    .await;
    assert_eq!(voters(&view), vec![1, 2, 3, 4]);
    let view = on_leader(&cluster, |mut admin| async move {
        admin
            .remove_controller(pb::RemoveControllerRequest { id: follower })
            .await
    })
    .await;
    let expected: Vec<u64> = [1, 2, 3, 4]
        .into_iter()
        .filter(|&id| id != follower)
        .collect();
    assert_eq!(voters(&view), expected);
    cluster.stop_all().await.unwrap();
}
