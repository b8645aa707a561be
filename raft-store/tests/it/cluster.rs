//! Three (and four) Raft nodes in one process on loopback TCP: failover, restart,
//! catch-up by snapshot, voter changes.

use crate::kv::{set, Kv};
use raftline_raft_store::local_cluster::{wait_until, LocalCluster};
use raftline_raft_store::NodeId;
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(10);

/// Waits until node `id` has applied `keys` keys.
async fn converged(cluster: &LocalCluster<Kv>, id: NodeId, keys: usize) {
    let node = cluster.node(id).unwrap();
    wait_until(&format!("node {id} to hold {keys} keys"), WITHIN, || {
        (node.machine().with_machine(|kv| kv.map.len()) >= keys).then_some(())
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_continue_through_a_leader_failure_and_the_old_leader_converges() {
    tracing::info!("three voters elect a leader and commit writes");
    let mut cluster = LocalCluster::start(3, Kv::default, |_| {}).await.unwrap();
    for i in 0..10 {
        cluster
            .write(set(&format!("before{i}"), "x"), WITHIN)
            .await
            .unwrap();
    }

    tracing::info!("the leader dies; the survivors elect another and keep committing");
    let old_leader = cluster.leader().await.unwrap();
    cluster.kill(old_leader).await.unwrap();
    for i in 0..10 {
        cluster
            .write(set(&format!("after{i}"), "y"), WITHIN)
            .await
            .unwrap();
    }
    let new_leader = cluster.leader().await.unwrap();
    assert_ne!(new_leader, old_leader);

    tracing::info!("the old leader restarts from its disk and catches up");
    cluster.restart(old_leader).await.unwrap();
    for id in cluster.nodes().keys().copied().collect::<Vec<_>>() {
        converged(&cluster, id, 20).await;
    }
    let states: Vec<_> = cluster
        .nodes()
        .values()
        .map(|n| n.handle().machine().with_machine(|kv| kv.map.clone()))
        .collect();
    assert!(states.windows(2).all(|w| w[0] == w[1]), "replicas diverged");
    cluster.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_down_through_a_log_purge_catches_up_by_snapshot() {
    let mut cluster = LocalCluster::start(3, Kv::default, |config| {
        config.snapshot_after_entries = 10;
        config.keep_after_snapshot = 0;
    })
    .await
    .unwrap();
    let leader = cluster.leader().await.unwrap();
    let follower = *cluster.nodes().keys().find(|&&id| id != leader).unwrap();

    tracing::info!("a follower goes down; the others write past a snapshot and purge");
    cluster.kill(follower).await.unwrap();
    // openraft postpones a purge while a replication stream (here, the retries
    // to the down follower) has the range in flight, and retries it on later
    // events: keep writing until it happens.
    let mut written = 0;
    loop {
        cluster
            .write(set(&format!("k{written}"), "v"), WITHIN)
            .await
            .unwrap();
        written += 1;
        let leader_node = cluster.node(cluster.leader().await.unwrap()).unwrap();
        let purged = leader_node.metrics().borrow().purged.map_or(0, |p| p.index);
        if written >= 40 && purged >= 20 {
            break;
        }
        assert!(
            written < 2_000,
            "the leader never purged its log (purged up to {purged})"
        );
    }

    tracing::info!("it comes back and is sent the snapshot: the purged entries are gone");
    cluster.restart(follower).await.unwrap();
    converged(&cluster, follower, written).await;
    let metrics = cluster.node(follower).unwrap().metrics();
    assert!(
        metrics.borrow().snapshot.is_some(),
        "caught up by installing a snapshot"
    );
    cluster.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_is_added_and_removed() {
    let mut cluster = LocalCluster::start(3, Kv::default, |_| {}).await.unwrap();
    cluster.write(set("a", "1"), WITHIN).await.unwrap();

    tracing::info!("node 4 starts empty and is added as a voter");
    cluster.start_extra(4).await.unwrap();
    cluster.add_voter(4, WITHIN).await.unwrap();
    cluster.write(set("b", "2"), WITHIN).await.unwrap();
    converged(&cluster, 4, 2).await;
    cluster.voters_become(&[1, 2, 3, 4], WITHIN).await.unwrap();

    tracing::info!("a voter other than the leader is removed");
    let leader = cluster.leader().await.unwrap();
    let removed = *cluster
        .nodes()
        .keys()
        .find(|&&id| id != leader && id != 4)
        .unwrap();
    cluster.remove_voter(removed, WITHIN).await.unwrap();
    let expected: Vec<NodeId> = [1, 2, 3, 4]
        .into_iter()
        .filter(|&id| id != removed)
        .collect();
    cluster.voters_become(&expected, WITHIN).await.unwrap();
    cluster.kill(removed).await.unwrap();
    cluster.write(set("c", "3"), WITHIN).await.unwrap();
    converged(&cluster, 4, 3).await;
    cluster.stop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_catches_up_with_the_leader_before_it_answers_a_read() {
    let mut cluster = LocalCluster::start(3, Kv::default, |_| {}).await.unwrap();
    cluster.write(set("first", "x"), WITHIN).await.unwrap();
    let leader = cluster.leader().await.unwrap();
    let follower = *cluster.nodes().keys().find(|&&id| id != leader).unwrap();
    cluster.kill(follower).await.unwrap();
    for i in 0..50 {
        cluster
            .write(set(&format!("while-down{i}"), "y"), WITHIN)
            .await
            .unwrap();
    }

    tracing::info!("the follower restarts with 50 writes to catch up on");
    cluster.restart(follower).await.unwrap();
    let node = cluster.node(follower).unwrap();
    node.catch_up(WITHIN).await.unwrap();
    assert_eq!(
        node.machine().with_machine(|kv| kv.map.len()),
        51,
        "after catch_up the restarted node holds every write committed before it"
    );
    // On the leader it is a read index of its own.
    cluster
        .node(leader)
        .unwrap()
        .catch_up(WITHIN)
        .await
        .unwrap();
    cluster.stop_all().await.unwrap();
}

/// A leader whose process is gone (its peer port refuses connections) is
/// replaced as soon as its lease runs out at the voters: the lowest other
/// voter stands then (3.4 s after it last heard the leader, with these
/// settings), instead of after a further random election timeout. With a
/// lease of 3 s and timeouts of 2-3 s, the ordinary timers could elect no
/// one before 5 s after the leader was last heard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_process_is_gone_is_replaced_when_its_lease_ends() {
    let mut cluster = LocalCluster::start(3, Kv::default, |config| {
        config.heartbeat = Duration::from_millis(200);
        config.election_timeout = (Duration::from_millis(2_000), Duration::from_millis(3_000));
    })
    .await
    .unwrap();
    cluster.write(set("k", "v"), WITHIN).await.unwrap();
    let old = cluster.leader().await.unwrap();
    let killed = tokio::time::Instant::now();
    cluster.kill(old).await.unwrap();
    let standing = *cluster.nodes().keys().min().unwrap();
    let new = cluster.leader().await.unwrap();
    let took = killed.elapsed();
    assert_eq!(new, standing, "the lowest other voter stood");
    assert!(
        took < Duration::from_millis(4_500),
        "a new leader after {took:?}: the ordinary timers, not the standby"
    );
    cluster.write(set("k2", "v"), WITHIN).await.unwrap();
    cluster.stop_all().await.unwrap();
}
