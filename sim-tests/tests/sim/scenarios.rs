//! Named regression scenarios: the failures that lost acknowledged writes in
//! Kafka's history, each as a fixed fault schedule (the workload and every
//! other choice still follow the seed).

use crate::seeds::must_pass;
use raftline_sim_tests::faults::{Episode, FaultKind};
use raftline_sim_tests::scenario::{Outcome, Scenario};

/// One fault aimed (through `PICK`) at partition t0/1.
fn at(kind: FaultKind, start_ms: u64, duration_ms: u64) -> Episode {
    Episode {
        start_ms,
        duration_ms,
        kind,
        pick: PICK,
    }
}

/// Picks t0/1 (`(PICK >> 8) % 3 == 1`) and the first follower.
const PICK: u64 = 1 << 8;

/// Every fault found its target (none resolved to "nothing").
fn every_fault_applied(outcome: &Outcome) {
    let trace = outcome.history.trace();
    assert!(
        !trace.contains("Nothing"),
        "a fault found no target:\n{}",
        trace
            .lines()
            .filter(|l| l.contains("driver"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Jepsen, 2013: the partition's followers fall out of its ISR (cut off from
/// the leader, which still reaches the controller), then the leader, alone
/// in the ISR, is cut off from every node while clients still reach it.
/// Kafka then acknowledged writes that a new leader never had. Here acks=all
/// below min.insync.replicas is refused, and no replica outside the ISR is
/// elected.
#[test]
fn jepsen_2013_isr_shrinks_to_the_leader_then_the_leader_is_isolated() {
    let scenario = Scenario::named(
        "jepsen-2013",
        2013,
        5,
        vec![
            at(FaultKind::IsolateFollowers, 8_000, 10_000),
            at(FaultKind::IsolatePartitionLeader, 14_000, 8_000),
        ],
    );
    every_fault_applied(&must_pass(&scenario));
}

/// KIP-101: a follower restarts (losing its unsynced tail) and is elected
/// before it has caught up, as the leader crashes.
#[test]
fn kip_101_restart_then_elect() {
    let scenario = Scenario::named(
        "kip-101",
        101,
        3,
        vec![
            at(FaultKind::CrashFollower, 10_000, 300),
            at(FaultKind::CrashPartitionLeader, 10_400, 3_000),
        ],
    );
    let outcome = must_pass(&scenario);
    every_fault_applied(&outcome);
    assert!(
        !outcome.failovers_ms.is_empty(),
        "the leader crash was measured"
    );
}

/// KIP-279: the leader crashes, and its successor crashes moments after its
/// election; the replicas' logs diverge and must be reconciled by epoch.
#[test]
fn kip_279_fast_double_failover() {
    let scenario = Scenario::named(
        "kip-279",
        279,
        3,
        vec![
            at(FaultKind::CrashPartitionLeader, 10_000, 4_000),
            at(FaultKind::CrashPartitionLeader, 12_500, 4_000),
        ],
    );
    let outcome = must_pass(&scenario);
    every_fault_applied(&outcome);
    assert!(
        outcome.failovers_ms.len() >= 2,
        "two leader crashes: {:?}",
        outcome.failovers_ms
    );
}

/// KIP-966: both followers crash, the ISR shrinks to the leader, then the
/// last replica standing crashes too (losing what it had not synced); all
/// come back. Nothing acknowledged may be lost: acks=all needs
/// min.insync.replicas, and only a replica with every committed record leads.
#[test]
fn kip_966_last_replica_standing() {
    let scenario = Scenario::named(
        "kip-966",
        966,
        3,
        vec![
            at(FaultKind::CrashFollower, 10_000, 8_000),
            at(FaultKind::CrashFollower, 10_100, 8_000),
            at(FaultKind::CrashPartitionLeader, 15_000, 3_000),
        ],
    );
    every_fault_applied(&must_pass(&scenario));
}

/// Consumer groups under failure: three members of one group read t0 and
/// commit after every poll; each crashes once (no goodbye) and returns as a
/// new member; meanwhile a node crashes, every node crashes at once (so the
/// group's coordinator moves for sure), and a 2/1 split cuts the cluster.
/// No acknowledged commit may be lost, and committed offsets never go back.
#[test]
fn consumer_group_coordinator_failover_and_member_crashes() {
    let mut scenario = Scenario::named(
        "groups",
        6,
        3,
        vec![
            at(FaultKind::Crash, 10_000, 3_000),
            at(FaultKind::CrashAll, 20_000, 2_000),
            at(FaultKind::Split, 26_000, 4_000),
        ],
    );
    scenario.workload.group_members = 3;
    let outcome = must_pass(&scenario);
    every_fault_applied(&outcome);
}

/// Without faults, the nodes keep their connections: the replica fetchers
/// and the brokers' controller calls reuse one channel per peer instead of
/// a TCP and HTTP/2 handshake per fetch round or heartbeat (which, on the
/// acks=all path, cost latency and CPU on every acknowledgement).
#[test]
fn without_faults_the_nodes_keep_their_connections() {
    let outcome = must_pass(&Scenario::named("steady", 7, 3, Vec::new()));
    let acked = outcome
        .history
        .trace()
        .lines()
        .filter(|l| l.contains("SendOk"))
        .count();
    assert!(acked > 100, "the workload ran ({acked} sends acknowledged)");
    assert!(
        outcome.node_dials < 100,
        "{} connections opened between 3 nodes in a run without faults",
        outcome.node_dials
    );
}
