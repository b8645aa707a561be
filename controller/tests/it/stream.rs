//! The metadata stream: a full image on connect, then every change in order,
//! from any controller.

use crate::quorum::{propose, register_brokers};
use raftline_controller::api::MetadataStreamService;
use raftline_controller::{Command, ControllerMachine, TopicName};
use raftline_proto::pb::metadata_record::Record;
use raftline_proto::pb::metadata_stream_client::MetadataStreamClient;
use raftline_proto::pb::metadata_stream_server::MetadataStreamServer;
use raftline_proto::pb::{self, MetadataUpdate};
use raftline_raft_store::local_cluster::LocalCluster;
use std::collections::BTreeMap;
use std::time::Duration;
use tonic::Streaming;

async fn watch(cluster: &LocalCluster<ControllerMachine>, id: u64) -> Streaming<MetadataUpdate> {
    let mut client = MetadataStreamClient::connect(format!("http://{}", cluster.addr(id).unwrap()))
        .await
        .unwrap();
    client
        .watch(pb::WatchMetadataRequest {})
        .await
        .unwrap()
        .into_inner()
}

async fn next(stream: &mut Streaming<MetadataUpdate>) -> MetadataUpdate {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an update within 10 s")
        .unwrap()
        .expect("the stream stays open")
}

/// Reads updates until one satisfies `wanted`, checking offsets and versions
/// only ever increase on the way.
async fn until(
    stream: &mut Streaming<MetadataUpdate>,
    last: &mut MetadataUpdate,
    wanted: impl Fn(&MetadataUpdate) -> bool,
) -> MetadataUpdate {
    loop {
        let update = next(stream).await;
        assert!(
            update.offset > last.offset && update.version > last.version,
            "{update:?} after {last:?}"
        );
        *last = update.clone();
        if wanted(&update) {
            return update;
        }
    }
}

fn topics(update: &MetadataUpdate) -> Vec<String> {
    update
        .records
        .iter()
        .filter_map(|r| match &r.record {
            Some(Record::Topic(t)) => Some(t.name.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_gets_an_image_then_every_change_in_order() {
    let cluster = LocalCluster::start_with_services(
        3,
        ControllerMachine::new,
        |_| {},
        |handle, routes| {
            routes.add_service(MetadataStreamServer::new(MetadataStreamService::new(
                handle.clone(),
            )));
        },
    )
    .await
    .unwrap();
    register_brokers(&cluster, 2).await;
    let leader = cluster.leader().await.unwrap();
    let follower = (1..=3).find(|&id| id != leader).unwrap();

    tracing::info!("the first message is a full image");
    let mut stream = watch(&cluster, follower).await;
    let mut last = next(&mut stream).await;
    // The follower may trail the leader: updates bring it to the committed offset.
    let committed = cluster
        .read(|m| m.offset(), Duration::from_secs(10))
        .await
        .unwrap();
    while last.offset < committed {
        last = next(&mut stream).await;
        assert!(!last.full_image);
    }

    tracing::info!("a created topic arrives as one update: the topic, then each partition");
    let name = TopicName::new("orders").unwrap();
    propose(
        &cluster,
        &Command::CreateTopicPlaced {
            name: name.clone(),
            configs: BTreeMap::new(),
            partitions: 2,
            replication_factor: 2,
        },
    )
    .await
    .unwrap();
    let created = until(&mut stream, &mut last, |u| topics(u) == ["orders"]).await;
    assert!(!created.full_image);
    let partitions: Vec<(u32, usize, Option<u32>)> = created
        .records
        .iter()
        .filter_map(|r| match &r.record {
            Some(Record::Partition(p)) => Some((p.index, p.replicas.len(), p.leader)),
            _ => None,
        })
        .collect();
    assert_eq!(partitions.len(), 2);
    assert!(partitions
        .iter()
        .all(|&(_, replicas, leader)| replicas == 2 && leader.is_some()));

    tracing::info!("a deletion arrives too");
    propose(&cluster, &Command::DeleteTopic { name })
        .await
        .unwrap();
    until(&mut stream, &mut last, |u| {
        u.records
            .iter()
            .any(|r| matches!(&r.record, Some(Record::TopicDeleted(t)) if t.name == "orders"))
    })
    .await;

    tracing::info!("a later subscriber's image holds the current state");
    propose(
        &cluster,
        &Command::CreateTopicPlaced {
            name: TopicName::new("payments").unwrap(),
            configs: BTreeMap::new(),
            partitions: 1,
            replication_factor: 1,
        },
    )
    .await
    .unwrap();
    let mut late = watch(&cluster, leader).await;
    let image = next(&mut late).await;
    assert!(image.full_image);
    assert_eq!(topics(&image), ["payments"]);
    cluster.stop_all().await.unwrap();
}
