//! CreateTopic, DeleteTopic and CreatePartitions.

use crate::support::*;
use raftline_controller::*;
use std::collections::BTreeMap;
use tracing::info;

#[test]
fn create_topic_leads_with_the_first_unfenced_replica() {
    let mut c = Cluster::with_live(&[1, 2, 3]);
    c.register(4, 4); // registered, still fenced
    let configs = BTreeMap::from([
        ("cleanup.policy".to_string(), "compact,delete".to_string()),
        ("delete.retention.ms".to_string(), "0".to_string()),
        ("min.cleanable.dirty.ratio".to_string(), "0.25".to_string()),
        ("min.compaction.lag.ms".to_string(), "60000".to_string()),
        ("retention.ms".to_string(), "1000".to_string()),
    ]);
    let applied = c.create_with("orders", configs.clone(), &[&[1, 2, 3], &[4, 2, 3]]);
    let topic = c.state.topic(&t("orders")).unwrap().clone();
    assert_eq!(topic.id, TopicId(1));
    assert_eq!(topic.configs, configs);
    assert_eq!(
        summary(&c.partition("orders", 0)),
        (Some(1), vec![1, 2, 3], 0, 0)
    );
    info!("a fenced replica is assigned but neither leads nor joins the ISR");
    assert_eq!(
        summary(&c.partition("orders", 1)),
        (Some(2), vec![2, 3], 0, 0)
    );
    assert_eq!(c.partition("orders", 1).replicas, ids(&[4, 2, 3]));
    info!("deltas: the topic first, then each partition whole");
    assert_eq!(applied.deltas.len(), 3);
    assert_eq!(
        applied.deltas[0],
        MetadataDelta::TopicChanged {
            name: t("orders"),
            id: TopicId(1),
            configs,
            partition_count: 2
        }
    );
    assert_eq!(
        applied.deltas[2],
        MetadataDelta::PartitionChanged {
            topic: t("orders"),
            topic_id: TopicId(1),
            index: p(1),
            partition: c.partition("orders", 1),
        }
    );
    assert_eq!(c.state.next_topic_id(), TopicId(2));
}

#[test]
fn create_topic_rejections() {
    let mut c = Cluster::with_live(&[1, 2, 3]);
    c.register(4, 4); // fenced
    c.create("exists", &[&[1]]);
    let bad_config = BTreeMap::from([(UNCLEAN_LEADER_ELECTION.to_string(), "yes".to_string())]);
    type Case = (
        &'static str,
        &'static str,
        BTreeMap<String, String>,
        Vec<Vec<u32>>,
        Expect,
    );
    let cases: Vec<Case> = vec![
        // (why, name, configs, assignments, expected error)
        (
            "name taken",
            "exists",
            BTreeMap::new(),
            vec![vec![1]],
            |e| matches!(e, MetadataError::TopicAlreadyExists { .. }),
        ),
        ("no partitions", "t", BTreeMap::new(), vec![], |e| {
            matches!(e, MetadataError::InvalidPartitions { .. })
        }),
        (
            "replication factor 0",
            "t",
            BTreeMap::new(),
            vec![vec![]],
            |e| matches!(e, MetadataError::InvalidReplicationFactor { .. }),
        ),
        (
            "lists of unequal length",
            "t",
            BTreeMap::new(),
            vec![vec![1, 2], vec![3]],
            |e| matches!(e, MetadataError::InvalidReplicaAssignment { reason } if reason.contains("partition 1")),
        ),
        (
            "a later list empty",
            "t",
            BTreeMap::new(),
            vec![vec![1], vec![]],
            |e| matches!(e, MetadataError::InvalidReplicaAssignment { .. }),
        ),
        (
            "broker twice",
            "t",
            BTreeMap::new(),
            vec![vec![1, 2], vec![3, 3]],
            |e| matches!(e, MetadataError::InvalidReplicaAssignment { reason } if reason.contains("twice")),
        ),
        (
            "unknown broker",
            "t",
            BTreeMap::new(),
            vec![vec![1, 9]],
            |e| {
                *e == MetadataError::UnknownBroker {
                    broker: BrokerId(9),
                }
            },
        ),
        (
            "every replica fenced",
            "t",
            BTreeMap::new(),
            vec![vec![1], vec![4]],
            |e| matches!(e, MetadataError::InvalidReplicaAssignment { reason } if reason.contains("fenced")),
        ),
        ("bad unclean config", "t", bad_config, vec![vec![1]], |e| {
            matches!(e, MetadataError::InvalidConfig { .. })
        }),
        (
            "a typo in a config name",
            "t",
            config("retention.mss", "1"),
            vec![vec![1]],
            |e| matches!(e, MetadataError::InvalidConfig { key, reason } if key == "retention.mss" && reason.contains("known ones")),
        ),
        (
            "min.insync.replicas above the replication factor",
            "t",
            config("min.insync.replicas", "3"),
            vec![vec![1, 2]],
            |e| matches!(e, MetadataError::InvalidConfig { reason, .. } if reason.contains("replication factor 2")),
        ),
        (
            "min.insync.replicas 0",
            "t",
            config("min.insync.replicas", "0"),
            vec![vec![1]],
            |e| matches!(e, MetadataError::InvalidConfig { .. }),
        ),
        (
            "retention.ms not a number",
            "t",
            config("retention.ms", "1h"),
            vec![vec![1]],
            |e| matches!(e, MetadataError::InvalidConfig { .. }),
        ),
        (
            "an unknown cleanup policy",
            "t",
            config("cleanup.policy", "compacted"),
            vec![vec![1]],
            |e| matches!(e, MetadataError::InvalidConfig { reason, .. } if reason.contains("compact,delete")),
        ),
        (
            "a dirty ratio above 1",
            "t",
            config("min.cleanable.dirty.ratio", "1.5"),
            vec![vec![1]],
            |e| matches!(e, MetadataError::InvalidConfig { .. }),
        ),
        (
            "a negative tombstone retention",
            "t",
            config("delete.retention.ms", "-1"),
            vec![vec![1]],
            |e| matches!(e, MetadataError::InvalidConfig { .. }),
        ),
    ];
    for (why, name, configs, assignments, want) in cases {
        let err = c.reject(Command::CreateTopic {
            name: t(name),
            configs,
            assignments: assignments.iter().map(|a| ids(a)).collect(),
        });
        assert!(want(&err), "{why}: {err:?}");
    }
}

fn config(key: &str, value: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(key.to_string(), value.to_string())])
}

#[test]
fn delete_topic_and_create_it_again_under_a_new_id() {
    let mut c = Cluster::with_live(&[1]);
    c.create("t", &[&[1]]);
    let applied = c.apply(Command::DeleteTopic { name: t("t") }).unwrap();
    assert_eq!(
        applied.deltas,
        vec![MetadataDelta::TopicDeleted {
            name: t("t"),
            id: TopicId(1)
        }]
    );
    assert!(c.state.topic(&t("t")).is_none());
    assert_eq!(
        c.reject(Command::DeleteTopic { name: t("t") }),
        MetadataError::UnknownTopic { name: t("t") }
    );
    c.create("t", &[&[1]]);
    assert_eq!(c.state.topic(&t("t")).unwrap().id, TopicId(2));
}

#[test]
fn create_partitions_appends_with_the_topics_replication_factor() {
    let mut c = Cluster::with_live(&[1, 2, 3]);
    c.create("t", &[&[1, 2]]);
    let applied = c
        .apply(Command::CreatePartitions {
            topic: t("t"),
            assignments: vec![ids(&[2, 3]), ids(&[3, 1])],
        })
        .unwrap();
    assert_eq!(c.state.topic(&t("t")).unwrap().partitions.len(), 3);
    assert_eq!(summary(&c.partition("t", 2)), (Some(3), vec![1, 3], 0, 0));
    assert!(matches!(
        applied.deltas[0],
        MetadataDelta::TopicChanged {
            partition_count: 3,
            ..
        }
    ));
    let indexes: Vec<u32> = applied
        .deltas
        .iter()
        .filter_map(|d| match d {
            MetadataDelta::PartitionChanged { index, .. } => Some(index.0),
            _ => None,
        })
        .collect();
    assert_eq!(indexes, vec![1, 2]);

    let cases: Vec<(&str, &str, Vec<Vec<u32>>, Expect)> = vec![
        // (why, topic, assignments, expected error)
        ("unknown topic", "nope", vec![vec![1, 2]], |e| {
            matches!(e, MetadataError::UnknownTopic { .. })
        }),
        ("nothing to add", "t", vec![], |e| {
            matches!(e, MetadataError::InvalidPartitions { .. })
        }),
        (
            "other replication factor",
            "t",
            vec![vec![1, 2, 3]],
            |e| matches!(e, MetadataError::InvalidReplicaAssignment { reason } if reason.contains("replication factor is 2")),
        ),
        ("unknown broker", "t", vec![vec![1, 7]], |e| {
            matches!(e, MetadataError::UnknownBroker { .. })
        }),
    ];
    for (why, topic, assignments, want) in cases {
        let err = c.reject(Command::CreatePartitions {
            topic: t(topic),
            assignments: assignments.iter().map(|a| ids(a)).collect(),
        });
        assert!(want(&err), "{why}: {err:?}");
    }
}

#[test]
fn placed_commands_place_replicas_from_the_committed_brokers() {
    let mut c = Cluster::with_live(&[1, 2, 3]);
    c.register(4, 4); // registered but fenced: never placed
    let expected =
        place_replicas(c.state.brokers(), 3, 2, c.state.next_topic_id().0 as u32).unwrap();
    c.apply(Command::CreateTopicPlaced {
        name: t("auto"),
        configs: BTreeMap::new(),
        partitions: 3,
        replication_factor: 2,
    })
    .unwrap();
    let topic = c.state.topic(&t("auto")).unwrap().clone();
    let placed: Vec<Vec<BrokerId>> = topic
        .partitions
        .values()
        .map(|p| p.replicas.clone())
        .collect();
    assert_eq!(
        placed, expected,
        "the same placement the pure function gives"
    );
    assert!(placed.iter().flatten().all(|&broker| broker != b(4)));

    info!("growing places the new partitions with the topic's replication factor");
    c.apply(Command::CreatePartitionsPlaced {
        topic: t("auto"),
        total: 5,
    })
    .unwrap();
    let topic = c.state.topic(&t("auto")).unwrap();
    assert_eq!(topic.partitions.len(), 5);
    assert!(topic.partitions.values().all(|p| p.replicas.len() == 2));

    info!("refusals leave the state unchanged");
    let cases = [
        Command::CreateTopicPlaced {
            name: t("wide"),
            configs: BTreeMap::new(),
            partitions: 1,
            replication_factor: 4,
        },
        Command::CreateTopicPlaced {
            name: t("none"),
            configs: BTreeMap::new(),
            partitions: 0,
            replication_factor: 1,
        },
        Command::CreateTopicPlaced {
            name: t("auto"),
            configs: BTreeMap::new(),
            partitions: 1,
            replication_factor: 1,
        },
        Command::CreatePartitionsPlaced {
            topic: t("auto"),
            total: 5,
        },
        Command::CreatePartitionsPlaced {
            topic: t("missing"),
            total: 2,
        },
    ];
    for command in cases {
        let error = c.reject(command.clone());
        assert!(
            matches!(
                error,
                MetadataError::InvalidReplicationFactor { .. }
                    | MetadataError::InvalidPartitions { .. }
                    | MetadataError::TopicAlreadyExists { .. }
                    | MetadataError::UnknownTopic { .. }
            ),
            "{command:?}: {error:?}"
        );
    }
}
