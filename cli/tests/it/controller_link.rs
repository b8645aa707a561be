//! A broker's controller link against three in-process controllers: it
//! registers, is unfenced once its metadata has caught up, receives the
//! partitions it hosts, and is fenced by its controlled shutdown.

use raftline_broker::controller_link::{self, LinkConfig, TcpConnector};
use raftline_broker::metadata::{BrokerId, PartitionChange};
use raftline_controller::api::{BrokerLifecycleService, MetadataStreamService};
use raftline_controller::{
    decode_response, encode_command, BrokerLifecycle, Command, ControllerMachine, ControllerNode,
    TopicName,
};
use raftline_proto::pb::broker_lifecycle_server::BrokerLifecycleServer;
use raftline_proto::pb::metadata_stream_server::MetadataStreamServer;
use raftline_raft_store::local_cluster::{wait_until, LocalCluster};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const WITHIN: Duration = Duration::from_secs(10);

/// Three in-process controllers serving the broker lifecycle (sessions of
/// 2 s, checked every 50 ms until `stop`) and metadata streams that go
/// silent when the returned switch moves (see [`Silenceable`]).
async fn controllers(
    stop: &CancellationToken,
) -> (
    LocalCluster<ControllerMachine>,
    Arc<std::sync::atomic::AtomicU64>,
) {
    let monitor_stop = stop.clone();
    let switch = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let services_switch = switch.clone();
    let cluster = LocalCluster::start_with_services(
        3,
        ControllerMachine::new,
        |_| {},
        move |handle, routes| {
            let node = Arc::new(ControllerNode::new(handle.clone(), Duration::from_secs(5)));
            let lifecycle = Arc::new(BrokerLifecycle::new(node, Duration::from_secs(2)));
            drop(
                lifecycle
                    .clone()
                    .spawn_monitor(Duration::from_millis(50), monitor_stop.clone()),
            );
            routes.add_service(BrokerLifecycleServer::new(BrokerLifecycleService::new(
                lifecycle,
            )));
            routes.add_service(MetadataStreamServer::new(Silenceable {
                inner: MetadataStreamService::new(handle.clone()),
                switch: services_switch.clone(),
            }));
        },
    )
    .await
    .unwrap();
    (cluster, switch)
}

/// Broker 1's link settings against `cluster`: heartbeats every 100 ms.
fn link_config(
    cluster: &LocalCluster<ControllerMachine>,
    incarnation: u64,
    session_timeout: Duration,
) -> LinkConfig {
    LinkConfig {
        broker_id: BrokerId(1),
        incarnation,
        endpoints: [("client".to_string(), "127.0.0.1:9091".to_string())].into(),
        rack: None,
        damaged: vec![],
        controllers: (1..=3).map(|id| (id, cluster.addr(id).unwrap())).collect(),
        heartbeat_interval: Duration::from_millis(100),
        rpc_timeout: Duration::from_secs(2),
        session_timeout,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_registers_catches_up_hosts_partitions_and_shuts_down_cleanly() {
    let stop = CancellationToken::new();
    let (cluster, _) = controllers(&stop).await;

    tracing::info!("the broker links up: registered, then unfenced once caught up");
    let link_stop = CancellationToken::new();
    let config = link_config(&cluster, 42, Duration::from_secs(6));
    let mut link =
        controller_link::spawn(config, Arc::new(TcpConnector::default()), link_stop.clone());
    let state = link.state.clone();
    // Unfenced comes first; the lease follows once this broker's metadata
    // has reached the offset the controller answered at.
    wait_until(
        "the broker to be registered, unfenced and leased",
        WITHIN,
        || {
            let s = state.borrow();
            (s.epoch.is_some() && !s.fenced && s.lease_until.is_some()).then_some(())
        },
    )
    .await
    .unwrap();
    let epoch = state.borrow().epoch.unwrap();
    assert!(
        state.borrow().metadata.offset() >= epoch,
        "unfenced only once caught up to its registration"
    );
    let lease = state
        .borrow()
        .lease_until
        .expect("the wait above saw a lease");
    let now = tokio::time::Instant::now();
    assert!(state.borrow().has_lease(now));
    assert!(
        lease <= now + Duration::from_millis(4_500),
        "the lease ends within three quarters of the 6 s session"
    );

    tracing::info!("a topic placed on it arrives as hosted partitions");
    let create = Command::CreateTopicPlaced {
        name: TopicName::new("orders").unwrap(),
        configs: BTreeMap::new(),
        partitions: 2,
        replication_factor: 1,
    };
    let (_, answer) = cluster
        .write(encode_command(&create).unwrap(), WITHIN)
        .await
        .unwrap();
    decode_response(&answer).unwrap().unwrap();
    let changes = tokio::time::timeout(WITHIN, link.changes.recv())
        .await
        .unwrap()
        .unwrap();
    let hosted: Vec<(String, Option<u32>)> = changes
        .iter()
        .map(|c| match c {
            PartitionChange::Changed {
                partition, info, ..
            } => (partition.to_string(), info.leader.map(|b| b.0)),
            PartitionChange::Removed { partition, .. } => panic!("{partition} removed"),
        })
        .collect();
    assert_eq!(
        hosted,
        vec![
            ("orders-0".to_string(), Some(1)),
            ("orders-1".to_string(), Some(1))
        ]
    );

    tracing::info!("stopping the link is a controlled shutdown: the broker is fenced");
    link_stop.cancel();
    link.task.await.unwrap();
    let fenced = cluster
        .read(
            |m| {
                m.state()
                    .broker(raftline_controller::BrokerId(1))
                    .map(|b| b.fenced)
            },
            WITHIN,
        )
        .await
        .unwrap();
    assert_eq!(fenced, Some(true));
    stop.cancel();
    cluster.stop_all().await.unwrap();
}

/// Metadata streams that go silent on a switch while their connections
/// stay open: what a paused or cut-off controller's stream looks like.
#[derive(Clone)]
struct Silenceable<S> {
    inner: S,
    /// Streams opened before the last switch say nothing more.
    switch: Arc<std::sync::atomic::AtomicU64>,
}

type Updates = std::pin::Pin<
    Box<
        dyn futures_util::Stream<Item = Result<raftline_proto::pb::MetadataUpdate, tonic::Status>>
            + Send,
    >,
>;

#[tonic::async_trait]
impl<S> raftline_proto::pb::metadata_stream_server::MetadataStream for Silenceable<S>
where
    S: raftline_proto::pb::metadata_stream_server::MetadataStream,
{
    type WatchStream = Updates;

    async fn watch(
        &self,
        request: tonic::Request<raftline_proto::pb::WatchMetadataRequest>,
    ) -> Result<tonic::Response<Updates>, tonic::Status> {
        use futures_util::StreamExt;
        use std::sync::atomic::Ordering;
        let inner = self.inner.watch(request).await?.into_inner();
        let switch = self.switch.clone();
        let mine = switch.load(Ordering::SeqCst);
        let updates = futures_util::stream::unfold(Box::pin(inner), move |mut inner| {
            let switch = switch.clone();
            async move {
                let item = inner.next().await?;
                if switch.load(Ordering::SeqCst) != mine {
                    std::future::pending::<()>().await;
                }
                Some((item, inner))
            }
        });
        Ok(tonic::Response::new(Box::pin(updates)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_whose_metadata_stream_goes_silent_resubscribes() {
    let stop = CancellationToken::new();
    let (cluster, switch) = controllers(&stop).await;
    let link_stop = CancellationToken::new();
    let config = link_config(&cluster, 7, Duration::from_secs(2));
    let mut link =
        controller_link::spawn(config, Arc::new(TcpConnector::default()), link_stop.clone());
    let state = link.state.clone();
    wait_until("the broker to be registered and unfenced", WITHIN, || {
        let s = state.borrow();
        (s.epoch.is_some() && !s.fenced).then_some(())
    })
    .await
    .unwrap();

    tracing::info!("its stream goes silent; a topic placed on it still arrives");
    switch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let create = Command::CreateTopicPlaced {
        name: TopicName::new("orders").unwrap(),
        configs: BTreeMap::new(),
        partitions: 1,
        replication_factor: 1,
    };
    cluster
        .write(encode_command(&create).unwrap(), WITHIN)
        .await
        .unwrap();
    let changes = tokio::time::timeout(WITHIN, link.changes.recv())
        .await
        .expect("the partition change never came: the link stayed on its silent stream")
        .unwrap();
    assert!(
        matches!(&changes[..], [PartitionChange::Changed { partition, .. }] if partition.to_string() == "orders-0"),
        "{changes:?}"
    );
    link_stop.cancel();
    link.task.await.unwrap();
    stop.cancel();
    cluster.stop_all().await.unwrap();
}
