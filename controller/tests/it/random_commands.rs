//! Random command sequences: after every command the invariants hold, the
//! version rises by one exactly when the command is accepted, and no partition's
//! epochs ever go down.

use proptest::prelude::*;
use raftline_controller::*;
use std::collections::BTreeMap;

/// A step, with numbers the driver resolves against the current state (so
/// most steps are plausible, and some are stale or wrong on purpose).
#[derive(Clone, Debug)]
enum Step {
    Register {
        broker: u32,
        incarnation: u64,
        /// `(topic, partition)` numbers the broker reports damaged.
        damaged: Vec<(u8, u32)>,
    },
    Unfence {
        broker: u32,
        stale: bool,
    },
    Fence {
        broker: u32,
        with_epoch: bool,
    },
    CreateTopic {
        name: u8,
        partitions: u32,
        rf: u32,
        unclean: bool,
    },
    DeleteTopic {
        name: u8,
    },
    /// min.insync.replicas set to `min` (0: back to the default).
    AlterMinIsr {
        name: u8,
        min: u8,
    },
    CreatePartitions {
        name: u8,
        count: u32,
    },
    Alter {
        pick: usize,
        members: Vec<u32>,
        stale: u8,
    },
    Elect {
        pick: usize,
        unclean: bool,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => (1..=5u32, 0..3u64, proptest::collection::vec((0..4u8, 0..4u32), 0..3))
            .prop_map(|(broker, incarnation, damaged)| Step::Register { broker, incarnation, damaged }),
        3 => (1..=5u32, proptest::bool::weighted(0.1)).prop_map(|(broker, stale)| Step::Unfence { broker, stale }),
        3 => (1..=5u32, any::<bool>()).prop_map(|(broker, with_epoch)| Step::Fence { broker, with_epoch }),
        4 => (0..4u8, 0..5u32, 0..4u32, proptest::bool::weighted(0.3))
            .prop_map(|(name, partitions, rf, unclean)| Step::CreateTopic { name, partitions, rf, unclean }),
        1 => (0..4u8).prop_map(|name| Step::DeleteTopic { name }),
        1 => (0..4u8, 0..4u8).prop_map(|(name, min)| Step::AlterMinIsr { name, min }),
        2 => (0..4u8, 0..3u32).prop_map(|(name, count)| Step::CreatePartitions { name, count }),
        6 => (any::<usize>(), proptest::collection::vec(1..=5u32, 0..4), 0..8u8)
            .prop_map(|(pick, members, stale)| Step::Alter { pick, members, stale }),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(pick, unclean)| Step::Elect { pick, unclean }),
    ]
}

/// Brokers 1 to 4 registered and unfenced, so random steps start from a
/// working cluster (broker 5 joins only if a step registers it).
fn preamble() -> Vec<Step> {
    (1..=4)
        .flat_map(|broker| {
            [
                Step::Register {
                    broker,
                    incarnation: 0,
                    damaged: vec![],
                },
                Step::Unfence {
                    broker,
                    stale: false,
                },
            ]
        })
        .collect()
}

fn name(n: u8) -> TopicName {
    TopicName::new(format!("topic-{n}")).unwrap()
}

/// Every partition, in order, as (topic, index, record).
fn partitions(state: &MetadataState) -> Vec<(TopicName, TopicId, PartitionIndex, Partition)> {
    state
        .topics()
        .values()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|(i, p)| (t.name.clone(), t.id, *i, p.clone()))
        })
        .collect()
}

/// Turns a step into a command against the current state.
fn command(state: &MetadataState, step: &Step) -> Command {
    let epoch_of = |id: u32| {
        state
            .broker(BrokerId(id))
            .map_or(BrokerEpoch(0), |b| b.epoch)
    };
    match step {
        Step::Register {
            broker,
            incarnation,
            damaged,
        } => Command::RegisterBroker {
            id: BrokerId(*broker),
            incarnation: *incarnation,
            endpoints: BTreeMap::from([("peer".into(), format!("n{broker}:1"))]),
            rack: Some(format!("r{}", broker % 3)),
            damaged: damaged
                .iter()
                .map(|&(n, i)| (name(n), PartitionIndex(i)))
                .collect(),
        },
        Step::Unfence { broker, stale } => Command::UnfenceBroker {
            id: BrokerId(*broker),
            epoch: BrokerEpoch(epoch_of(*broker).0.saturating_sub(u64::from(*stale))),
        },
        Step::Fence { broker, with_epoch } => Command::FenceBroker {
            id: BrokerId(*broker),
            epoch: with_epoch.then(|| epoch_of(*broker)),
        },
        Step::CreateTopic {
            name: n,
            partitions,
            rf,
            unclean,
        } => {
            let assignments = place_replicas(state.brokers(), *partitions, *rf, *partitions)
                .unwrap_or_else(|_| vec![vec![BrokerId(1); *rf as usize]; *partitions as usize]);
            let mut configs = BTreeMap::new();
            if *unclean {
                configs.insert(UNCLEAN_LEADER_ELECTION.to_string(), "true".to_string());
            }
            Command::CreateTopic {
                name: name(*n),
                configs,
                assignments,
            }
        }
        Step::DeleteTopic { name: n } => Command::DeleteTopic { name: name(*n) },
        Step::AlterMinIsr { name: n, min } => Command::AlterTopicConfigs {
            topic: name(*n),
            set: (*min > 0)
                .then(|| ("min.insync.replicas".to_string(), min.to_string()))
                .into_iter()
                .collect(),
            delete: (*min == 0)
                .then(|| "min.insync.replicas".to_string())
                .into_iter()
                .collect(),
        },
        Step::CreatePartitions { name: n, count } => {
            let rf = state.topic(&name(*n)).map_or(1, |t| t.replication_factor()) as u32;
            let assignments =
                place_replicas(state.brokers(), *count, rf, *count).unwrap_or_default();
            Command::CreatePartitions {
                topic: name(*n),
                assignments,
            }
        }
        Step::Alter {
            pick,
            members,
            stale,
        } => {
            let all = partitions(state);
            if all.is_empty() {
                return Command::DeleteTopic { name: name(0) };
            }
            let (topic, _, index, p) = &all[pick % all.len()];
            let leader = p.leader.unwrap_or(p.replicas[0]);
            // Propose the leader plus some replicas (members index into them).
            let mut new_isr = vec![leader];
            for m in members {
                let r = p.replicas[*m as usize % p.replicas.len()];
                if !new_isr.contains(&r) {
                    new_isr.push(r);
                }
            }
            let broker_epochs = new_isr.iter().map(|&b| (b, epoch_of(b.0))).collect();
            let mut request = AlterPartitionRequest {
                topic: topic.clone(),
                partition: *index,
                leader,
                leader_epoch: p.leader_epoch,
                partition_epoch: p.partition_epoch,
                new_isr,
                broker_epochs,
            };
            match stale {
                0 => request.leader_epoch = LeaderEpoch(request.leader_epoch.0.saturating_sub(1)),
                1 => {
                    request.partition_epoch =
                        PartitionEpoch(request.partition_epoch.0.saturating_sub(1))
                }
                2 => {
                    for e in request.broker_epochs.values_mut() {
                        e.0 = e.0.saturating_sub(1);
                    }
                }
                _ => {}
            }
            Command::AlterPartition(request)
        }
        Step::Elect { pick, unclean } => {
            let all = partitions(state);
            if all.is_empty() {
                return Command::DeleteTopic { name: name(0) };
            }
            let (topic, _, index, _) = &all[pick % all.len()];
            let election = if *unclean {
                ElectionType::Unclean
            } else {
                ElectionType::Preferred
            };
            Command::ElectLeader {
                topic: topic.clone(),
                partition: *index,
                election,
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn invariants_hold_over_random_commands(steps in proptest::collection::vec(step(), 1..80)) {
        let mut state = MetadataState::new();
        let mut accepted = 0;
        for (i, step) in preamble().iter().chain(&steps).enumerate() {
            let index = i as u64 + 1;
            let command = command(&state, step);
            let before = state.clone();
            let result = state.apply(index, &command);
            match &result {
                Ok(applied) => {
                    accepted += 1;
                    prop_assert_eq!(applied.version.0, before.version().0 + 1);
                    prop_assert_eq!(state.version(), applied.version);
                    prop_assert!(!applied.deltas.is_empty());
                }
                Err(_) => prop_assert_eq!(&state, &before, "rejected {:?} changed the state", command),
            }
            if let Err(broken) = state.check_invariants() {
                return Err(TestCaseError::fail(format!("after {command:?} -> {result:?}: {broken}")));
            }
            // Epochs never go down for a partition that survives (same topic id).
            for (topic, id, index, p) in partitions(&before) {
                if let Some(now) = state.topic(&topic).filter(|t| t.id == id).and_then(|t| t.partitions.get(&index)) {
                    prop_assert!(now.leader_epoch >= p.leader_epoch, "{} {}", topic, index);
                    prop_assert!(now.partition_epoch >= p.partition_epoch, "{} {}", topic, index);
                    if now != &p {
                        prop_assert!(now.partition_epoch > p.partition_epoch, "changed without a new epoch: {} {}", topic, index);
                    }
                }
            }
        }
        prop_assert_eq!(state.version().0, accepted);
    }
}
