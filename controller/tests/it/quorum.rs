//! Three controller nodes on loopback, the metadata state machine replicated by
//! Raft: topics are created through a leader failure and every node converges.

use raftline_controller::{
    decode_response, encode_command, place_replicas, ApplyResult, BrokerEpoch, BrokerId, Command,
    ControllerMachine, MetadataError, MetadataState, TopicName,
};
use raftline_raft_store::local_cluster::{wait_until, LocalCluster};
use std::collections::BTreeMap;
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(10);

pub async fn propose(cluster: &LocalCluster<ControllerMachine>, command: &Command) -> ApplyResult {
    let (_, answer) = cluster
        .write(encode_command(command).unwrap(), WITHIN)
        .await
        .unwrap();
    decode_response(&answer).expect("a metadata answer")
}

/// The committed metadata, read linearizably through the leader.
pub async fn leader_state(cluster: &LocalCluster<ControllerMachine>) -> MetadataState {
    cluster.read(|m| m.state().clone(), WITHIN).await.unwrap()
}

async fn create_topic(cluster: &LocalCluster<ControllerMachine>, name: &str) -> ApplyResult {
    let state = leader_state(cluster).await;
    let assignments =
        place_replicas(state.brokers(), 3, 3, state.next_topic_id().0 as u32).unwrap();
    let command = Command::CreateTopic {
        name: TopicName::new(name).unwrap(),
        configs: BTreeMap::new(),
        assignments,
    };
    propose(cluster, &command).await
}

/// Registers brokers `1..=n` and unfences them, through Raft.
pub async fn register_brokers(cluster: &LocalCluster<ControllerMachine>, n: u32) {
    for id in 1..=n {
        let registered = Command::RegisterBroker {
            id: BrokerId(id),
            incarnation: u64::from(id) * 1000,
            endpoints: BTreeMap::from([("client".to_string(), format!("127.0.0.1:{}", 9090 + id))]),
            rack: None,
            damaged: vec![],
        };
        let applied = propose(cluster, &registered).await.unwrap();
        assert!(!applied.deltas.is_empty());
        let epoch = leader_state(cluster)
            .await
            .broker(BrokerId(id))
            .unwrap()
            .epoch;
        propose(
            cluster,
            &Command::UnfenceBroker {
                id: BrokerId(id),
                epoch,
            },
        )
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_are_created_through_a_raft_leader_failure_and_all_nodes_converge() {
    tracing::info!("three controllers; three brokers register and are unfenced");
    let mut cluster = LocalCluster::start(3, ControllerMachine::new, |_| {})
        .await
        .unwrap();
    register_brokers(&cluster, 3).await;
    let stale = propose(
        &cluster,
        &Command::UnfenceBroker {
            id: BrokerId(1),
            epoch: BrokerEpoch(1),
        },
    )
    .await;
    assert!(
        matches!(stale, Err(MetadataError::StaleBrokerEpoch { .. })),
        "{stale:?}"
    );

    tracing::info!("topics are created; a duplicate is refused through Raft too");
    for i in 0..3 {
        create_topic(&cluster, &format!("before-{i}"))
            .await
            .unwrap();
    }
    let version = leader_state(&cluster).await.version();
    assert!(matches!(
        create_topic(&cluster, "before-0").await,
        Err(MetadataError::TopicAlreadyExists { .. })
    ));
    assert_eq!(
        leader_state(&cluster).await.version(),
        version,
        "a refused command changes nothing"
    );

    tracing::info!("the Raft leader dies; topics keep being created through the survivors");
    let old_leader = cluster.leader().await.unwrap();
    cluster.kill(old_leader).await.unwrap();
    for i in 0..3 {
        create_topic(&cluster, &format!("after-{i}")).await.unwrap();
    }

    tracing::info!("the old leader restarts and converges to the same metadata");
    cluster.restart(old_leader).await.unwrap();
    let expected = leader_state(&cluster).await;
    assert_eq!(expected.topics().len(), 6);
    expected.check_invariants().unwrap();
    for (&id, node) in cluster.nodes() {
        wait_until(&format!("controller {id} to converge"), WITHIN, || {
            node.handle()
                .machine()
                .with_machine(|m| (m.state() == &expected).then_some(()))
        })
        .await
        .unwrap();
    }
    cluster.stop_all().await.unwrap();
}
