use super::*;
use crate::position::LeaderEpoch;

const ME: BrokerId = BrokerId(1);

fn part(replicas: &[u32], leader: Option<u32>, epoch: u32) -> PartitionInfo {
    PartitionInfo {
        replicas: replicas.iter().map(|&b| BrokerId(b)).collect(),
        isr: replicas.iter().map(|&b| BrokerId(b)).collect(),
        leader: leader.map(BrokerId),
        leader_epoch: LeaderEpoch(epoch),
        partition_epoch: epoch,
    }
}

fn topic(name: &str, id: u64, count: u32) -> MetadataRecord {
    MetadataRecord::Topic {
        name: name.into(),
        id,
        configs: BTreeMap::new(),
        partition_count: count,
    }
}

fn partition(name: &str, id: u64, index: u32, info: PartitionInfo) -> MetadataRecord {
    MetadataRecord::Partition {
        topic: name.into(),
        topic_id: id,
        index,
        info,
    }
}

fn update(
    offset: u64,
    version: u64,
    full_image: bool,
    records: Vec<MetadataRecord>,
) -> MetadataUpdate {
    MetadataUpdate {
        offset,
        version,
        full_image,
        records,
    }
}

fn tp(name: &str, index: u32) -> TopicPartition {
    TopicPartition {
        topic: name.into(),
        partition: index,
    }
}

fn changed_partitions(changes: &[PartitionChange]) -> Vec<(String, bool)> {
    changes
        .iter()
        .map(|c| match c {
            PartitionChange::Changed { partition, .. } => (partition.to_string(), true),
            PartitionChange::Removed { partition, .. } => (partition.to_string(), false),
        })
        .collect()
}

/// A cache holding topic `orders` (id 7): partition 0 on brokers 1,2 led by 1,
/// partition 1 on brokers 2,3 (not hosted here).
fn cache() -> MetadataCache {
    let mut cache = MetadataCache::new(ME);
    let image = update(
        10,
        5,
        true,
        vec![
            topic("orders", 7, 2),
            partition("orders", 7, 0, part(&[1, 2], Some(1), 0)),
            partition("orders", 7, 1, part(&[2, 3], Some(2), 0)),
        ],
    );
    let changes = cache.apply(image).unwrap();
    assert_eq!(
        changed_partitions(&changes),
        vec![("orders-0".to_string(), true)],
        "only hosted partitions"
    );
    cache
}

#[test]
fn deltas_report_changes_to_hosted_partitions_only() {
    let mut c = cache();
    let cases: Vec<(MetadataUpdate, Vec<(&str, bool)>)> = vec![
        // A new leader epoch for the hosted partition.
        (
            update(
                11,
                6,
                false,
                vec![partition("orders", 7, 0, part(&[1, 2], Some(2), 1))],
            ),
            vec![("orders-0", true)],
        ),
        // A change to a partition hosted elsewhere.
        (
            update(
                12,
                7,
                false,
                vec![partition("orders", 7, 1, part(&[2, 3], Some(3), 1))],
            ),
            vec![],
        ),
        // The same record again (e.g. a command that changed something else).
        (
            update(
                13,
                8,
                false,
                vec![partition("orders", 7, 0, part(&[1, 2], Some(2), 1))],
            ),
            vec![],
        ),
        // The topic is deleted: the hosted partition goes.
        (
            update(
                14,
                9,
                false,
                vec![MetadataRecord::TopicDeleted {
                    name: "orders".into(),
                    id: 7,
                }],
            ),
            vec![("orders-0", false)],
        ),
    ];
    for (u, want) in cases {
        let version = u.version;
        let got = c.apply(u).unwrap();
        let want: Vec<(String, bool)> = want.into_iter().map(|(p, b)| (p.to_string(), b)).collect();
        assert_eq!(changed_partitions(&got), want, "version {version}");
        assert_eq!(c.version(), version);
    }
    assert!(c.topic("orders").is_none());
    assert_eq!(c.offset(), 14);
}

#[test]
fn duplicates_are_ignored_and_gaps_refused_without_change() {
    let mut c = cache();
    let stale = update(
        10,
        5,
        false,
        vec![partition("orders", 7, 0, part(&[1, 2], None, 9))],
    );
    assert_eq!(c.apply(stale).unwrap(), vec![]);
    assert_eq!(
        c.topic("orders").unwrap().partitions[&0].leader,
        Some(BrokerId(1)),
        "a stale update changed the cache"
    );
    let gap = update(20, 9, false, vec![]);
    assert_eq!(
        c.apply(gap),
        Err(MetadataError::VersionGap { have: 5, got: 9 })
    );
    let orphan = update(
        11,
        6,
        false,
        vec![partition("payments", 8, 0, part(&[1], Some(1), 0))],
    );
    assert!(matches!(
        c.apply(orphan),
        Err(MetadataError::OrphanPartition { .. })
    ));
    assert_eq!(
        (c.offset(), c.version()),
        (10, 5),
        "a refused update changed the cache"
    );
}

#[test]
fn an_image_replaces_everything_and_reports_the_difference() {
    let mut c = cache();
    // Unchanged image: nothing to do.
    let same = update(
        15,
        6,
        true,
        vec![
            topic("orders", 7, 2),
            partition("orders", 7, 0, part(&[1, 2], Some(1), 0)),
            partition("orders", 7, 1, part(&[2, 3], Some(2), 0)),
        ],
    );
    assert_eq!(c.apply(same).unwrap(), vec![]);
    // `orders` was deleted and created again while we were away; `payments` is new.
    let image = update(
        30,
        12,
        true,
        vec![
            MetadataRecord::Broker(BrokerInfo {
                id: ME,
                epoch: 4,
                endpoints: BTreeMap::new(),
                rack: None,
                fenced: false,
            }),
            topic("orders", 9, 1),
            partition("orders", 9, 0, part(&[2, 1], Some(2), 0)),
            topic("payments", 10, 1),
            partition("payments", 10, 0, part(&[1], Some(1), 0)),
        ],
    );
    let changes = c.apply(image).unwrap();
    assert_eq!(
        changes,
        vec![
            PartitionChange::Removed {
                partition: tp("orders", 0),
                topic_id: 7
            },
            PartitionChange::Changed {
                partition: tp("orders", 0),
                topic_id: 9,
                info: part(&[2, 1], Some(2), 0)
            },
            PartitionChange::Changed {
                partition: tp("payments", 0),
                topic_id: 10,
                info: part(&[1], Some(1), 0)
            },
        ]
    );
    assert_eq!(c.broker(ME).map(|b| b.epoch), Some(4));
    assert_eq!((c.offset(), c.version()), (30, 12));
}

#[test]
fn an_image_older_than_the_cache_changes_nothing() {
    let mut cache = cache();
    // A lagging controller's image: partition 0 as it was long ago.
    let stale = update(
        4,
        2,
        true,
        vec![
            topic("orders", 7, 1),
            partition("orders", 7, 0, part(&[1, 2], Some(2), 0)),
        ],
    );
    assert_eq!(cache.apply(stale).unwrap(), Vec::new());
    assert_eq!((cache.offset(), cache.version()), (10, 5));
    // Its next updates, once past the cache, apply as usual.
    let next = update(
        11,
        6,
        false,
        vec![partition("orders", 7, 0, part(&[1, 2], Some(2), 1))],
    );
    let changes = cache.apply(next).unwrap();
    assert_eq!(
        changed_partitions(&changes),
        vec![("orders-0".to_string(), true)]
    );
}
