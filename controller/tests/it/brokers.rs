//! RegisterBroker, UnfenceBroker and FenceBroker.

use crate::support::*;
use raftline_controller::*;
use std::collections::BTreeMap;
use tracing::info;

#[test]
fn registration_takes_the_log_index_as_epoch_and_starts_fenced() {
    let mut c = Cluster::new();
    c.index = 41;
    let applied = c
        .apply(Command::RegisterBroker {
            id: b(1),
            incarnation: 7,
            endpoints: endpoints(1),
            rack: Some("r1".into()),
            damaged: vec![],
        })
        .unwrap();
    let want = Broker {
        id: b(1),
        epoch: BrokerEpoch(42),
        incarnation: 7,
        endpoints: endpoints(1),
        rack: Some("r1".into()),
        fenced: true,
    };
    assert_eq!(
        applied.deltas,
        vec![MetadataDelta::BrokerChanged(want.clone())]
    );
    assert_eq!(c.broker(1), want);
    assert_eq!(applied.version, MetadataVersion(1));
}

#[test]
fn same_incarnation_again_is_a_retry_that_changes_nothing() {
    let mut c = Cluster::with_live(&[1]);
    let before = c.broker(1);
    let applied = c
        .apply(Command::RegisterBroker {
            id: b(1),
            incarnation: 1,
            endpoints: endpoints(1),
            rack: None,
            damaged: vec![],
        })
        .unwrap();
    info!("accepted (version bumps), registration untouched: same epoch, still unfenced");
    assert_eq!(c.broker(1), before);
    assert_eq!(applied.deltas, vec![MetadataDelta::BrokerChanged(before)]);

    info!("the same incarnation with other details is two processes claiming one id");
    let err = c.reject(Command::RegisterBroker {
        id: b(1),
        incarnation: 1,
        endpoints: endpoints(9),
        rack: None,
        damaged: vec![],
    });
    assert!(
        matches!(err, MetadataError::DuplicateBrokerRegistration { broker, .. } if broker == b(1))
    );
}

#[test]
fn new_incarnation_gets_a_new_epoch_and_is_fenced_everywhere() {
    let mut c = Cluster::with_live(&[1, 2, 3]);
    c.create("t", &[&[1, 2, 3], &[2, 1, 3]]);
    let old = c.broker(1).epoch;
    let new = c.register(1, 99);
    assert!(new > old);
    assert!(c.broker(1).fenced);
    info!("partition 0 was led by 1: 2 takes over; 1 leaves both ISRs");
    assert_eq!(summary(&c.partition("t", 0)), (Some(2), vec![2, 3], 1, 1));
    assert_eq!(summary(&c.partition("t", 1)), (Some(2), vec![2, 3], 0, 1));
    info!("the old registration's epoch no longer unfences");
    let err = c.reject(Command::UnfenceBroker {
        id: b(1),
        epoch: old,
    });
    assert_eq!(
        err,
        MetadataError::StaleBrokerEpoch {
            broker: b(1),
            current: new,
            given: old
        }
    );
}

#[test]
fn unfence_checks_the_registration_epoch() {
    let mut c = Cluster::new();
    let epoch = c.register(1, 1);
    let cases = [
        // (command, expected error)
        (
            Command::UnfenceBroker { id: b(2), epoch },
            MetadataError::UnknownBroker { broker: b(2) },
        ),
        (
            Command::UnfenceBroker {
                id: b(1),
                epoch: BrokerEpoch(epoch.0 + 1),
            },
            MetadataError::StaleBrokerEpoch {
                broker: b(1),
                current: epoch,
                given: BrokerEpoch(epoch.0 + 1),
            },
        ),
    ];
    for (command, want) in cases {
        assert_eq!(c.reject(command), want);
    }
    c.apply(Command::UnfenceBroker { id: b(1), epoch }).unwrap();
    assert!(!c.broker(1).fenced);
}

#[test]
fn unfencing_an_isr_member_brings_its_offline_partitions_back() {
    let mut c = Cluster::with_live(&[1, 2]);
    c.create("t", &[&[1, 2]]);
    c.alter("t", 0, &[1]);
    c.fence(1);
    assert_eq!(summary(&c.partition("t", 0)), (None, vec![1], 1, 2));
    info!("2 is live but out of sync: it stays offline until 1 returns");
    let applied = c.unfence(1);
    assert_eq!(summary(&c.partition("t", 0)), (Some(1), vec![1], 2, 3));
    assert_eq!(applied.deltas.len(), 2, "{:?}", applied.deltas);
}

#[test]
fn fencing_moves_leadership_and_shrinks_isrs() {
    let unclean = BTreeMap::from([(UNCLEAN_LEADER_ELECTION.to_string(), "true".to_string())]);
    type Case = (
        &'static str,
        bool,
        &'static [u32],
        &'static [u32],
        u32,
        Summary,
    );
    let cases: &[Case] = &[
        // (why, unclean, replicas, isr before, fenced broker, (leader, isr, leader epoch, partition epoch) after)
        (
            "leader fenced: next ISR member leads",
            false,
            &[1, 2, 3],
            &[1, 2, 3],
            1,
            (Some(2), vec![2, 3], 1, 1),
        ),
        (
            "follower fenced: leaves the ISR only",
            false,
            &[1, 2, 3],
            &[1, 2, 3],
            2,
            (Some(1), vec![1, 3], 0, 1),
        ),
        (
            "leader is last ISR member, nobody eligible (min.insync 1): offline, kept in ISR",
            false,
            &[1, 2],
            &[1],
            1,
            (None, vec![1], 1, 2),
        ),
        (
            "same, unclean allowed: first live replica",
            true,
            &[1, 2],
            &[1],
            1,
            (Some(2), vec![2], 1, 2),
        ),
        (
            "leader is last ISR member, 2 and 3 eligible (they left below min.insync 2): 2 leads",
            false,
            &[1, 2, 3],
            &[1],
            1,
            (Some(2), vec![2], 1, 2),
        ),
        (
            "not a replica: untouched",
            false,
            &[2, 3],
            &[2, 3],
            1,
            (Some(2), vec![2, 3], 0, 0),
        ),
    ];
    for (why, is_unclean, replicas, isr, fenced, want) in cases {
        let mut c = Cluster::with_live(&[1, 2, 3]);
        let configs = if *is_unclean {
            unclean.clone()
        } else {
            BTreeMap::new()
        };
        c.create_with("t", configs, &[replicas]);
        if isr.len() != replicas.len() {
            c.alter("t", 0, isr);
        }
        c.fence(*fenced);
        assert_eq!(&summary(&c.partition("t", 0)), want, "{why}");
    }
}

#[test]
fn fence_rejections_and_repeats() {
    let mut c = Cluster::with_live(&[1, 2]);
    c.create("t", &[&[1, 2]]);
    let epoch = c.broker(1).epoch;
    let stale = BrokerEpoch(epoch.0 - 1);
    assert_eq!(
        c.reject(Command::FenceBroker {
            id: b(3),
            epoch: None
        }),
        MetadataError::UnknownBroker { broker: b(3) }
    );
    assert_eq!(
        c.reject(Command::FenceBroker {
            id: b(1),
            epoch: Some(stale)
        }),
        MetadataError::StaleBrokerEpoch {
            broker: b(1),
            current: epoch,
            given: stale
        }
    );
    c.apply(Command::FenceBroker {
        id: b(1),
        epoch: Some(epoch),
    })
    .unwrap();
    info!("fencing again is accepted and changes no partition");
    let again = c.fence(1);
    assert_eq!(
        again.deltas,
        vec![MetadataDelta::BrokerChanged(c.broker(1))]
    );
}

#[test]
fn producer_id_blocks_never_overlap_and_need_the_current_registration() {
    let mut c = Cluster::new();
    let epoch = c.register(1, 7);
    let allocate = |c: &mut Cluster, broker_epoch| {
        c.apply(Command::AllocateProducerIds {
            broker: b(1),
            broker_epoch,
        })
    };
    let first = allocate(&mut c, epoch).unwrap();
    let second = allocate(&mut c, epoch).unwrap();
    let block = |a: &Applied| match a.deltas.as_slice() {
        [MetadataDelta::ProducerIdsAllocated { first, count, .. }] => (*first, *count),
        other => panic!("unexpected deltas {other:?}"),
    };
    let (a, n) = block(&first);
    let (b2, _) = block(&second);
    assert_eq!(b2, a + n, "the second block starts where the first ends");
    assert_eq!(c.state.next_producer_id(), b2 + n);
    info!("a stale registration gets nothing, and nothing changes");
    let stale = c.reject(Command::AllocateProducerIds {
        broker: b(1),
        broker_epoch: BrokerEpoch(epoch.0 + 100),
    });
    assert!(
        matches!(stale, MetadataError::StaleBrokerEpoch { .. }),
        "{stale:?}"
    );
    assert_eq!(c.state.next_producer_id(), b2 + n);
}
