//! AlterPartition and ElectLeader.

use crate::support::*;
use raftline_controller::*;
use tracing::info;

#[test]
fn alter_partition_shrinks_and_expands_the_isr() {
    let mut c = Cluster::with_live(&[1, 2, 3]);
    c.create("t", &[&[1, 2, 3]]);
    c.alter("t", 0, &[1, 2]);
    assert_eq!(summary(&c.partition("t", 0)), (Some(1), vec![1, 2], 0, 1));
    let applied = c.alter("t", 0, &[1, 2, 3]);
    assert_eq!(
        summary(&c.partition("t", 0)),
        (Some(1), vec![1, 2, 3], 0, 2)
    );
    assert_eq!(applied.deltas.len(), 1);
    info!("an unchanged ISR is accepted too, and still bumps the partition epoch");
    c.alter("t", 0, &[1, 2, 3]);
    assert_eq!(c.partition("t", 0).partition_epoch, PartitionEpoch(3));
}

#[test]
fn alter_partition_rejections() {
    let mut c = Cluster::with_live(&[1, 2, 3, 4]);
    c.create("t", &[&[1, 2, 3]]);
    c.alter("t", 0, &[1, 2]);
    let old_epoch_of_3 = c.broker(3).epoch;
    info!("broker 3 restarts (maybe with an empty disk) and is unfenced again");
    c.register(3, 333);
    c.unfence(3);
    c.fence(2); // ISR is now {1}
    let ok = c.alter_request("t", 0, &[1]);
    let with = |f: fn(&mut AlterPartitionRequest)| {
        let mut r = ok.clone();
        f(&mut r);
        r
    };
    let stale_3 = {
        let mut r = c.alter_request("t", 0, &[1, 3]);
        r.broker_epochs.insert(b(3), old_epoch_of_3);
        r
    };
    let cases: Vec<(&str, AlterPartitionRequest, Expect)> = vec![
        // (why, request, expected error)
        ("unknown topic", with(|r| r.topic = t("nope")), |e| {
            matches!(e, MetadataError::UnknownTopic { .. })
        }),
        (
            "unknown partition",
            with(|r| r.partition = p(5)),
            |e| matches!(e, MetadataError::UnknownPartition { partition, .. } if *partition == p(5)),
        ),
        (
            "other leader epoch",
            with(|r| r.leader_epoch = LeaderEpoch(7)),
            |e| {
                *e == MetadataError::FencedLeaderEpoch {
                    current: LeaderEpoch(0),
                    given: LeaderEpoch(7),
                }
            },
        ),
        (
            "older partition epoch",
            with(|r| r.partition_epoch = PartitionEpoch(1)),
            |e| {
                matches!(
                    e,
                    MetadataError::InvalidUpdateVersion {
                        given: PartitionEpoch(1),
                        ..
                    }
                )
            },
        ),
        (
            "not the leader",
            with(|r| {
                r.leader = b(3);
                r.new_isr = ids(&[3])
            }),
            |e| {
                *e == MetadataError::NotLeader {
                    leader: Some(BrokerId(1)),
                }
            },
        ),
        (
            "leader missing",
            with(|r| r.new_isr = ids(&[3])),
            |e| matches!(e, MetadataError::InvalidIsr { reason } if reason.contains("leader")),
        ),
        ("duplicate", with(|r| r.new_isr = ids(&[1, 1])), |e| {
            matches!(e, MetadataError::InvalidIsr { .. })
        }),
        ("not a replica", with(|r| r.new_isr = ids(&[1, 4])), |e| {
            matches!(
                e,
                MetadataError::IneligibleReplica {
                    broker: BrokerId(4),
                    ..
                }
            )
        }),
        (
            "fenced",
            with(|r| r.new_isr = ids(&[1, 2])),
            |e| matches!(e, MetadataError::IneligibleReplica { broker: BrokerId(2), reason } if reason.contains("fenced")),
        ),
        (
            "added without its broker epoch",
            with(|r| {
                r.new_isr = ids(&[1, 3]);
                r.broker_epochs.clear()
            }),
            |e| {
                matches!(
                    e,
                    MetadataError::IneligibleReplica {
                        broker: BrokerId(3),
                        ..
                    }
                )
            },
        ),
        (
            "KIP-903: added with its previous registration's epoch",
            stale_3,
            |e| matches!(e, MetadataError::IneligibleReplica { broker: BrokerId(3), reason } if reason.contains("current registration")),
        ),
    ];
    assert_eq!(ok.leader_epoch, LeaderEpoch(0));
    for (why, request, want) in cases {
        let err = c.reject(Command::AlterPartition(request));
        assert!(want(&err), "{why}: {err:?}");
    }
    info!("with the current epoch, 3 rejoins");
    c.alter("t", 0, &[1, 3]);
    assert_eq!(c.partition("t", 0).isr, set(&[1, 3]));
}

#[test]
fn stale_leader_is_fenced_by_its_leader_epoch() {
    let mut c = Cluster::with_live(&[1, 2]);
    c.create("t", &[&[1, 2]]);
    let from_old_leader = c.alter_request("t", 0, &[1]);
    c.fence(1);
    let err = c.reject(Command::AlterPartition(from_old_leader));
    assert_eq!(
        err,
        MetadataError::FencedLeaderEpoch {
            current: LeaderEpoch(1),
            given: LeaderEpoch(0)
        }
    );
}

#[test]
fn preferred_election_moves_leadership_back() {
    let mut c = Cluster::with_live(&[1, 2, 3]);
    c.create("t", &[&[1, 2, 3]]);
    let elect = || Command::ElectLeader {
        topic: t("t"),
        partition: p(0),
        election: ElectionType::Preferred,
    };
    assert!(matches!(
        c.reject(elect()),
        MetadataError::ElectionNotNeeded { .. }
    ));
    c.fence(1);
    assert!(matches!(
        c.reject(elect()),
        MetadataError::PreferredLeaderNotAvailable { broker: BrokerId(1), reason } if reason.contains("fenced")
    ));
    c.unfence(1);
    assert!(matches!(
        c.reject(elect()),
        MetadataError::PreferredLeaderNotAvailable { reason, .. } if reason.contains("ISR")
    ));
    c.alter("t", 0, &[1, 2, 3]);
    let before = c.partition("t", 0);
    c.apply(elect()).unwrap();
    let after = c.partition("t", 0);
    assert_eq!(after.leader, Some(b(1)));
    assert_eq!(after.leader_epoch, before.leader_epoch.next());
    assert_eq!(after.partition_epoch, before.partition_epoch.next());
}

#[test]
fn unclean_election_brings_an_offline_partition_back() {
    let mut c = Cluster::with_live(&[1, 2]);
    c.create("t", &[&[1, 2]]);
    let elect = || Command::ElectLeader {
        topic: t("t"),
        partition: p(0),
        election: ElectionType::Unclean,
    };
    assert!(matches!(
        c.reject(elect()),
        MetadataError::ElectionNotNeeded { .. }
    ));
    c.alter("t", 0, &[1]);
    c.fence(1);
    assert_eq!(summary(&c.partition("t", 0)), (None, vec![1], 1, 2));
    c.apply(elect()).unwrap();
    assert_eq!(summary(&c.partition("t", 0)), (Some(2), vec![2], 2, 3));

    info!("with every replica fenced there is nobody to elect");
    c.alter("t", 0, &[2]);
    c.fence(2);
    assert_eq!(
        c.reject(elect()),
        MetadataError::EligibleLeadersNotAvailable
    );
    assert_eq!(
        c.reject(Command::ElectLeader {
            topic: t("t"),
            partition: p(3),
            election: ElectionType::Unclean
        }),
        MetadataError::UnknownPartition {
            topic: t("t"),
            partition: p(3)
        }
    );
}

#[test]
fn the_leader_rebalance_picks_a_returned_brokers_partitions_once_it_is_in_sync() {
    // Broker 1 prefers ten partitions, broker 2 one.
    let mut c = Cluster::with_live(&[1, 2, 3]);
    let mut assignments: Vec<&[u32]> = vec![&[1, 2, 3]; 10];
    assignments.push(&[2, 3, 1]);
    c.create("t", &assignments);
    assert!(imbalanced_partitions(&c.state, 10).is_empty(), "balanced");

    info!("broker 1 fenced: its ten partitions move, it cannot take them back");
    c.fence(1);
    assert_eq!(c.partition("t", 0).leader, Some(b(2)));
    assert!(imbalanced_partitions(&c.state, 10).is_empty());
    c.unfence(1);
    assert!(
        imbalanced_partitions(&c.state, 10).is_empty(),
        "back but in no ISR"
    );

    info!("back in sync on some: those move back, once over the threshold");
    c.alter("t", 0, &[1, 2, 3]);
    assert_eq!(imbalanced_partitions(&c.state, 10), vec![(t("t"), p(0))]);
    assert!(
        imbalanced_partitions(&c.state, 100).is_empty(),
        "10 of 10 led elsewhere is not above 100%"
    );
    for i in 1..10 {
        c.alter("t", i, &[1, 2, 3]);
    }
    let all: Vec<_> = (0..10).map(|i| (t("t"), p(i))).collect();
    assert_eq!(imbalanced_partitions(&c.state, 10), all);

    info!("one of ten led elsewhere is at, not above, 10%");
    for i in 1..10 {
        c.apply(Command::ElectLeader {
            topic: t("t"),
            partition: p(i),
            election: ElectionType::Preferred,
        })
        .unwrap();
    }
    assert!(imbalanced_partitions(&c.state, 10).is_empty());
    assert_eq!(imbalanced_partitions(&c.state, 9), vec![(t("t"), p(0))]);
}
