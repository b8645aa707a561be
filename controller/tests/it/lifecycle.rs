//! Broker registration, heartbeats, session-timeout fencing and unfencing over
//! gRPC against three controllers.

use crate::quorum::{leader_state, propose};
use raftline_controller::api::status::error_of;
use raftline_controller::api::BrokerLifecycleService;
use raftline_controller::{
    BrokerId, BrokerLifecycle, Command, ControllerMachine, ControllerNode, TopicName,
};
use raftline_proto::pb::broker_lifecycle_client::BrokerLifecycleClient;
use raftline_proto::pb::broker_lifecycle_server::BrokerLifecycleServer;
use raftline_proto::pb::{self, ErrorCode};
use raftline_proto::transport::TcpConnector;
use raftline_raft_store::local_cluster::{wait_until, LocalCluster};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

const SESSION: Duration = Duration::from_millis(1_000);
const WITHIN: Duration = Duration::from_secs(10);

async fn client(
    cluster: &LocalCluster<ControllerMachine>,
    id: u64,
) -> BrokerLifecycleClient<Channel> {
    BrokerLifecycleClient::connect(format!("http://{}", cluster.addr(id).unwrap()))
        .await
        .unwrap()
}

/// Sends a heartbeat to the controller leader as a broker does: to the node
/// the last NOT_CONTROLLER named, retrying while an election runs.
async fn beat(
    cluster: &LocalCluster<ControllerMachine>,
    request: pb::BrokerHeartbeatRequest,
) -> Result<pb::BrokerHeartbeatResponse, tonic::Status> {
    let deadline = tokio::time::Instant::now() + WITHIN;
    let mut target = cluster.leader().await.unwrap();
    loop {
        match client(cluster, target)
            .await
            .broker_heartbeat(request)
            .await
        {
            Err(status)
                if error_of(&status).is_some_and(|e| e.code == ErrorCode::NotController as i32) =>
            {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no controller leader: {status:?}"
                );
                target = match error_of(&status).and_then(|e| e.leader_hint) {
                    Some(leader) => leader,
                    None => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        cluster.leader().await.unwrap()
                    }
                };
            }
            other => return other.map(tonic::Response::into_inner),
        }
    }
}

/// Whether controller `node`'s applied state has `broker` fenced.
fn fenced_on(cluster: &LocalCluster<ControllerMachine>, node: u64, broker: u32) -> bool {
    cluster
        .node(node)
        .unwrap()
        .machine()
        .with_machine(|m| m.state().broker(BrokerId(broker)).is_some_and(|b| b.fenced))
}

fn heartbeat(id: u32, epoch: u64, offset: u64, shutting_down: bool) -> pb::BrokerHeartbeatRequest {
    pb::BrokerHeartbeatRequest {
        broker_id: id,
        broker_epoch: epoch,
        metadata_offset: offset,
        shutting_down,
    }
}

fn register(id: u32, incarnation: u64) -> pb::RegisterBrokerRequest {
    pb::RegisterBrokerRequest {
        broker_id: id,
        incarnation,
        endpoints: [("client".to_string(), format!("127.0.0.1:{}", 9090 + id))].into(),
        rack: None,
        damaged: vec![],
    }
}

/// Three controllers serving BrokerLifecycle, each with a session monitor
/// that runs until `stop`.
async fn start(stop: &CancellationToken) -> LocalCluster<ControllerMachine> {
    start_with(stop, SESSION, None).await
}

/// As [`start`], with another session timeout and, given `probe_after`,
/// probes of silent brokers' listeners.
async fn start_with(
    stop: &CancellationToken,
    session: Duration,
    probe_after: Option<Duration>,
) -> LocalCluster<ControllerMachine> {
    let monitor_stop = stop.clone();
    LocalCluster::start_with_services(
        3,
        ControllerMachine::new,
        |_| {},
        move |handle, routes| {
            let node = Arc::new(ControllerNode::new(handle.clone(), Duration::from_secs(5)));
            let mut lifecycle = BrokerLifecycle::new(node, session);
            if let Some(after) = probe_after {
                lifecycle = lifecycle.with_probes(Arc::new(TcpConnector::default()), after);
            }
            let lifecycle = Arc::new(lifecycle);
            drop(
                lifecycle
                    .clone()
                    .spawn_monitor(Duration::from_millis(50), monitor_stop.clone()),
            );
            routes.add_service(BrokerLifecycleServer::new(BrokerLifecycleService::new(
                lifecycle,
            )));
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_register_heartbeat_and_are_fenced_when_silent() {
    let stop = CancellationToken::new();
    let cluster = start(&stop).await;
    let leader = cluster.leader().await.unwrap();
    let follower = (1..=3).find(|&id| id != leader).unwrap();

    tracing::info!("registration gives an epoch and starts fenced; catching up unfences");
    let mut epochs = BTreeMap::new();
    for id in 1..=3u32 {
        let epoch = client(&cluster, follower)
            .await
            .register_broker(register(id, u64::from(id)))
            .await
            .unwrap()
            .into_inner()
            .broker_epoch;
        epochs.insert(id, epoch);
        let behind = beat(&cluster, heartbeat(id, epoch, epoch - 1, false))
            .await
            .unwrap();
        assert!(
            behind.fenced,
            "broker {id} behind its registration stays fenced"
        );
        let caught_up = beat(&cluster, heartbeat(id, epoch, epoch, false))
            .await
            .unwrap();
        assert!(!caught_up.fenced, "broker {id} caught up is unfenced");
    }

    tracing::info!("heartbeats to a follower name the leader; stale epochs are refused");
    let leader = cluster.leader().await.unwrap();
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let status = client(&cluster, follower)
        .await
        .broker_heartbeat(heartbeat(1, epochs[&1], epochs[&1], false))
        .await
        .unwrap_err();
    let error = error_of(&status).unwrap();
    assert_eq!(
        ErrorCode::try_from(error.code).unwrap(),
        ErrorCode::NotController
    );
    assert_ne!(
        error.leader_hint,
        Some(follower),
        "a follower never names itself"
    );
    let status = beat(&cluster, heartbeat(1, epochs[&1] - 1, 0, false))
        .await
        .unwrap_err();
    assert_eq!(
        ErrorCode::try_from(error_of(&status).unwrap().code).unwrap(),
        ErrorCode::StaleBrokerEpoch
    );

    tracing::info!("a damaged-partition report naming a bad topic is refused");
    let mut bad = register(4, 4);
    bad.damaged.push(pb::PartitionRef {
        topic: "no/slash".into(),
        partition: 0,
    });
    let status = client(&cluster, leader)
        .await
        .register_broker(bad)
        .await
        .unwrap_err();
    assert_eq!(
        ErrorCode::try_from(error_of(&status).unwrap().code).unwrap(),
        ErrorCode::InvalidTopicName
    );

    tracing::info!(
        "a topic is placed on all three brokers; brokers 1 and 3 keep heartbeating, 2 falls silent"
    );
    let topic = TopicName::new("orders").unwrap();
    let create = Command::CreateTopicPlaced {
        name: topic.clone(),
        configs: BTreeMap::new(),
        partitions: 3,
        replication_factor: 3,
    };
    propose(&cluster, &create).await.unwrap();
    let alive: Arc<Mutex<BTreeMap<u32, u64>>> = Arc::new(Mutex::new(
        epochs
            .iter()
            .filter(|(&id, _)| id != 2)
            .map(|(&id, &e)| (id, e))
            .collect(),
    ));
    let addrs: BTreeMap<u64, String> = (1..=3).map(|id| (id, cluster.addr(id).unwrap())).collect();
    let beating = {
        let alive = alive.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            // Heartbeats go to every controller; the leader takes them, the
            // others answer NOT_CONTROLLER. Simple, and immune to elections.
            let mut clients = Vec::new();
            for addr in addrs.values() {
                clients.push(
                    BrokerLifecycleClient::connect(format!("http://{addr}"))
                        .await
                        .unwrap(),
                );
            }
            while !stop.is_cancelled() {
                let brokers: Vec<(u32, u64)> = alive
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|(&id, &e)| (id, e))
                    .collect();
                for (id, epoch) in brokers {
                    for c in clients.iter_mut() {
                        let _ = c.broker_heartbeat(heartbeat(id, epoch, epoch, false)).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let led_by_2: BTreeSet<u32> = leader_state(&cluster)
        .await
        .topic(&topic)
        .unwrap()
        .partitions
        .iter()
        .filter(|(_, p)| p.leader == Some(BrokerId(2)))
        .map(|(i, _)| i.0)
        .collect();
    assert_eq!(
        led_by_2.len(),
        1,
        "placement gives broker 2 one partition to lead"
    );
    wait_until("broker 2 to be fenced after its session", WITHIN, || {
        fenced_on(&cluster, 1, 2).then_some(())
    })
    .await
    .unwrap();
    let state = leader_state(&cluster).await;
    assert!(
        !state.broker(BrokerId(1)).unwrap().fenced && !state.broker(BrokerId(3)).unwrap().fenced,
        "live brokers kept"
    );
    for (index, p) in &state.topic(&topic).unwrap().partitions {
        assert_ne!(
            p.leader,
            Some(BrokerId(2)),
            "partition {index} still led by a fenced broker"
        );
        assert!(
            !p.isr.contains(&BrokerId(2)),
            "partition {index} keeps a fenced broker in its ISR"
        );
        if led_by_2.contains(&index.0) {
            assert!(p.leader_epoch.0 > 0, "new leader, new leader epoch");
        }
    }

    tracing::info!("broker 2 restarts: a new registration, a new epoch, unfenced once caught up");
    let epoch = client(&cluster, follower)
        .await
        .register_broker(register(2, 22))
        .await
        .unwrap()
        .into_inner()
        .broker_epoch;
    assert!(epoch > epochs[&2]);
    assert!(
        !beat(&cluster, heartbeat(2, epoch, epoch, false))
            .await
            .unwrap()
            .fenced
    );
    alive.lock().unwrap().insert(2, epoch);

    tracing::info!("a controlled shutdown fences at once");
    alive.lock().unwrap().remove(&3);
    let bye = beat(&cluster, heartbeat(3, epochs[&3], epochs[&3], true))
        .await
        .unwrap();
    assert!(bye.fenced);
    assert!(
        leader_state(&cluster)
            .await
            .broker(BrokerId(3))
            .unwrap()
            .fenced
    );

    stop.cancel();
    beating.await.unwrap();
    cluster.stop_all().await.unwrap();
}

/// A silent broker whose listener refuses connections (its process is gone)
/// is fenced long before its session expires; one whose listener still
/// accepts (a paused or slow process) keeps its session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_broker_whose_listener_refuses_is_fenced_before_its_session_ends() {
    let stop = CancellationToken::new();
    let cluster = start_with(
        &stop,
        Duration::from_secs(60),
        Some(Duration::from_millis(200)),
    )
    .await;
    let leader = cluster.leader().await.unwrap();
    // Broker 1's port had a listener that is gone; broker 2's listens.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone_addr = gone.local_addr().unwrap().to_string();
    drop(gone);
    let listening = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listening_addr = listening.local_addr().unwrap().to_string();
    let mut epochs = BTreeMap::new();
    for (id, addr) in [(1u32, &gone_addr), (2, &listening_addr)] {
        let mut request = register(id, u64::from(id));
        request.endpoints = [("client".to_string(), addr.clone())].into();
        let epoch = client(&cluster, leader)
            .await
            .register_broker(request)
            .await
            .unwrap()
            .into_inner()
            .broker_epoch;
        let answer = beat(&cluster, heartbeat(id, epoch, epoch, false))
            .await
            .unwrap();
        assert!(!answer.fenced, "broker {id} caught up is unfenced");
        epochs.insert(id, epoch);
    }
    // Both fall silent; the session (60 s) is far from over.
    let started = tokio::time::Instant::now();
    wait_until(
        "the broker whose listener refuses to be fenced (within 10 s, not its 60 s session)",
        WITHIN,
        || fenced_on(&cluster, leader, 1).then_some(()),
    )
    .await
    .unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    let state = leader_state(&cluster).await;
    let listening_broker = state.broker(BrokerId(2)).unwrap();
    assert!(
        !listening_broker.fenced,
        "a broker whose listener accepts keeps its session: {listening_broker:?}"
    );
    assert_eq!(listening_broker.epoch.0, epochs[&2]);
    drop(listening);
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_partition_is_a_compare_and_set_on_the_partitions_epochs() {
    let stop = CancellationToken::new();
    let cluster = start(&stop).await;
    crate::quorum::register_brokers(&cluster, 3).await;
    let topic = TopicName::new("orders").unwrap();
    let create = Command::CreateTopicPlaced {
        name: topic.clone(),
        configs: BTreeMap::new(),
        partitions: 1,
        replication_factor: 3,
    };
    propose(&cluster, &create).await.unwrap();
    let partition = leader_state(&cluster)
        .await
        .topic(&topic)
        .unwrap()
        .partitions
        .values()
        .next()
        .unwrap()
        .clone();
    let leader = partition.leader.unwrap().0;
    let shrunk: Vec<u32> = partition
        .replicas
        .iter()
        .map(|b| b.0)
        .filter(|&b| b != 3 || leader == 3)
        .take(2)
        .collect();
    assert!(shrunk.contains(&leader));
    let controller_leader = cluster.leader().await.unwrap();
    let follower = (1..=3).find(|&id| id != controller_leader).unwrap();
    let mut c = client(&cluster, follower).await;
    let request = pb::AlterPartitionRequest {
        topic: "orders".into(),
        partition: 0,
        leader,
        leader_epoch: partition.leader_epoch.0,
        partition_epoch: partition.partition_epoch.0,
        new_isr: shrunk.clone(),
        broker_epochs: BTreeMap::new(),
    };

    tracing::info!(
        "the leader shrinks the ISR at the current epochs: accepted, partition epoch bumped"
    );
    let record = c
        .alter_partition(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        record.isr.iter().copied().collect::<BTreeSet<_>>(),
        shrunk.iter().copied().collect()
    );
    assert_eq!(record.partition_epoch, partition.partition_epoch.0 + 1);
    assert_eq!(record.leader_epoch, partition.leader_epoch.0);

    tracing::info!(
        "the same request again carries a stale partition epoch; a stale leader epoch is fenced"
    );
    let status = c.alter_partition(request.clone()).await.unwrap_err();
    assert_eq!(
        ErrorCode::try_from(error_of(&status).unwrap().code).unwrap(),
        ErrorCode::InvalidUpdateVersion
    );
    let stale_leader = pb::AlterPartitionRequest {
        leader_epoch: partition.leader_epoch.0 + 5,
        partition_epoch: record.partition_epoch,
        ..request
    };
    let status = c.alter_partition(stale_leader).await.unwrap_err();
    assert_eq!(
        ErrorCode::try_from(error_of(&status).unwrap().code).unwrap(),
        ErrorCode::FencedLeaderEpoch
    );
    stop.cancel();
    cluster.stop_all().await.unwrap();
}
