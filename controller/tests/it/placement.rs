//! `place_replicas`: balance, racks, errors.

use crate::support::Expect;
use raftline_controller::*;
use std::collections::{BTreeMap, BTreeSet};

fn brokers(specs: &[(u32, Option<&str>, bool)]) -> BTreeMap<BrokerId, Broker> {
    specs
        .iter()
        .map(|&(id, rack, fenced)| {
            let broker = Broker {
                id: BrokerId(id),
                epoch: BrokerEpoch(u64::from(id)),
                incarnation: 0,
                endpoints: BTreeMap::new(),
                rack: rack.map(str::to_string),
                fenced,
            };
            (BrokerId(id), broker)
        })
        .collect()
}

fn live(n: u32) -> BTreeMap<BrokerId, Broker> {
    let specs: Vec<_> = (1..=n).map(|id| (id, None, false)).collect();
    brokers(&specs)
}

/// (leader count, replica count) per broker.
fn load(assignment: &[Vec<BrokerId>]) -> BTreeMap<BrokerId, (usize, usize)> {
    let mut out: BTreeMap<BrokerId, (usize, usize)> = BTreeMap::new();
    for replicas in assignment {
        out.entry(replicas[0]).or_default().0 += 1;
        for b in replicas {
            out.entry(*b).or_default().1 += 1;
        }
    }
    out
}

#[test]
fn leaders_and_replicas_spread_evenly() {
    let cases = [
        // (brokers, partitions, replication factor, leaders each, replicas each)
        (3, 6, 3, 2, 6),
        (3, 6, 1, 2, 2),
        (4, 8, 2, 2, 4),
        (5, 10, 3, 2, 6),
        (6, 12, 3, 2, 6),
    ];
    for (n, partitions, rf, leads, holds) in cases {
        for start in [0, 1, 7] {
            let got = place_replicas(&live(n), partitions, rf, start).unwrap();
            assert_eq!(got.len(), partitions as usize);
            for replicas in &got {
                let distinct: BTreeSet<_> = replicas.iter().collect();
                assert_eq!(distinct.len(), rf as usize, "{replicas:?}");
            }
            let load = load(&got);
            assert_eq!(load.len(), n as usize);
            for (broker, &(l, r)) in &load {
                assert_eq!(
                    (l, r),
                    (leads, holds),
                    "n={n} p={partitions} rf={rf} start={start} broker {broker}: {got:?}"
                );
            }
        }
    }
}

#[test]
fn start_rotates_the_first_leader_and_results_are_deterministic() {
    let a = place_replicas(&live(3), 3, 2, 0).unwrap();
    let b = place_replicas(&live(3), 3, 2, 1).unwrap();
    assert_eq!(a, place_replicas(&live(3), 3, 2, 0).unwrap());
    assert_eq!(a[0][0], BrokerId(1));
    assert_eq!(b[0][0], BrokerId(2));
}

#[test]
fn fenced_brokers_get_nothing() {
    let set = brokers(&[(1, None, false), (2, None, true), (3, None, false)]);
    let got = place_replicas(&set, 4, 2, 0).unwrap();
    assert!(got.iter().flatten().all(|&b| b != BrokerId(2)), "{got:?}");
}

#[test]
fn replicas_of_a_partition_span_racks() {
    let set = brokers(&[
        (1, Some("a"), false),
        (2, Some("a"), false),
        (3, Some("b"), false),
        (4, Some("b"), false),
        (5, Some("c"), false),
        (6, Some("c"), false),
    ]);
    let rack = |b: &BrokerId| set[b].rack.clone().unwrap();
    for start in 0..6 {
        let got = place_replicas(&set, 12, 3, start).unwrap();
        for replicas in &got {
            let racks: BTreeSet<String> = replicas.iter().map(rack).collect();
            assert_eq!(racks.len(), 3, "start {start}: {replicas:?}");
        }
        for &(leads, holds) in load(&got).values() {
            assert_eq!((leads, holds), (2, 6), "start {start}: {got:?}");
        }
    }
    // RF 2 over 3 racks: still two racks per partition.
    for replicas in place_replicas(&set, 6, 2, 0).unwrap() {
        assert_ne!(rack(&replicas[0]), rack(&replicas[1]));
    }
}

#[test]
fn a_broker_without_rack_turns_rack_awareness_off() {
    let set = brokers(&[
        (1, Some("a"), false),
        (2, None, false),
        (3, Some("a"), false),
    ]);
    let got = place_replicas(&set, 3, 3, 0).unwrap();
    assert_eq!(got.len(), 3);
}

#[test]
fn placement_errors() {
    let set = brokers(&[(1, None, false), (2, None, false), (3, None, true)]);
    let cases: &[(u32, u32, Expect)] = &[
        // (partitions, replication factor, expected error)
        (0, 1, |e| {
            matches!(e, MetadataError::InvalidPartitions { .. })
        }),
        (1, 0, |e| {
            matches!(e, MetadataError::InvalidReplicationFactor { .. })
        }),
        (1, 3, |e| {
            matches!(e, MetadataError::InvalidReplicationFactor { reason }
            if reason.contains("replication factor 3") && reason.contains("2 unfenced"))
        }),
    ];
    for &(partitions, rf, want) in cases {
        let err = place_replicas(&set, partitions, rf, 0).unwrap_err();
        assert!(want(&err), "{partitions} {rf}: {err}");
    }
    assert!(place_replicas(&BTreeMap::new(), 1, 1, 0).is_err());
}
