//! Compacted topics on real processes: each key's latest value survives the
//! cleaner on every replica and a leader's death, and `__consumer_offsets`
//! is compacted with committed offsets intact.

use crate::data::create;
use crate::procs::{wait_for, ProcCluster};
use raftline::client::{
    encode_batch, Acks, Client, ClientConfig, Consumer, ProducerRecord, StartAt,
};
use raftline_broker::group::{partition_for, OFFSETS_TOPIC};
use raftline_broker::TopicPartition;
use raftline_proto::pb::reset_offsets_request::To;
use raftline_proto::pb::ErrorCode;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tracing::info;

const KEYS: u64 = 10;
const WRITES: u64 = 400;

/// Every record of partition 0 of `topic` from its start to its high
/// watermark, as (offset, key, value); the record just below the high
/// watermark is never compacted away, so the read knows where to stop.
async fn read_all(client: &Client, topic: &str) -> Vec<(u64, String, String)> {
    let hw = client.list_offset(topic, 0, -1).await.unwrap().unwrap();
    let mut consumer = Consumer::new(client.clone(), topic, Some(vec![0]), StartAt::Earliest)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out: Vec<(u64, String, String)> = Vec::new();
    while out.last().is_none_or(|r| r.0 + 1 < hw) {
        assert!(
            Instant::now() < deadline,
            "reading {topic} to {hw} timed out"
        );
        for r in consumer.poll(Duration::from_millis(500)).await.unwrap() {
            let text = |b: Option<bytes::Bytes>| {
                String::from_utf8_lossy(&b.unwrap_or_default()).into_owned()
            };
            out.push((r.offset, text(r.key), text(r.value)));
        }
    }
    out
}

fn latest(rows: &[(u64, String, String)]) -> BTreeMap<String, String> {
    rows.iter()
        .map(|(_, k, v)| (k.clone(), v.clone()))
        .collect()
}

fn record(key: Option<String>, value: String) -> ProducerRecord {
    ProducerRecord {
        key: key.map(Into::into),
        value: Some(value.into()),
        timestamp: 1,
    }
}

#[test]
fn a_compacted_topic_keeps_each_keys_latest_value_through_a_leader_death() {
    let mut cluster = ProcCluster::start(3);
    create(
        &cluster,
        "changelog",
        "1",
        "3",
        &[
            "--config",
            "cleanup.policy=compact",
            "--config",
            "segment.bytes=1024",
            "--config",
            "min.cleanable.dirty.ratio=0.1",
        ],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(async {
        let mut config = ClientConfig::new(&cluster.servers());
        config.delivery_timeout = Duration::from_secs(10);
        Client::connect(config).await.unwrap()
    });
    let model: BTreeMap<String, String> = rt.block_on(async {
        info!("a record without a key is refused, and nothing is appended");
        let keyless = encode_batch(&[record(None, "x".into())], None).unwrap();
        let err = client
            .produce("changelog", 0, keyless, Acks::All)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::InvalidRecord), "{err}");
        assert!(err.to_string().contains("without a key"), "{err}");
        assert_eq!(
            client.list_offset("changelog", 0, -1).await.unwrap(),
            Some(0)
        );

        for i in 0..WRITES {
            let batch = encode_batch(
                &[record(Some(format!("k{}", i % KEYS)), format!("v{i}"))],
                None,
            )
            .unwrap();
            let offset = client
                .produce("changelog", 0, batch, Acks::All)
                .await
                .unwrap();
            assert_eq!(offset, Some(i));
        }
        (0..WRITES)
            .map(|i| (format!("k{}", i % KEYS), format!("v{i}")))
            .collect()
    });

    info!("the leader's cleaner compacts the sealed segments");
    let check = |rows: &[(u64, String, String)]| {
        assert_eq!(latest(rows), model, "each key's latest value is there");
        for (offset, key, value) in rows {
            assert_eq!(
                (key.clone(), value.clone()),
                (format!("k{}", offset % KEYS), format!("v{offset}")),
                "a record keeps its offset"
            );
        }
        assert!(rows.windows(2).all(|w| w[0].0 < w[1].0));
    };
    let mut compacted = Vec::new();
    wait_for(
        "the cleaner to compact changelog",
        Duration::from_secs(30),
        || {
            compacted = rt.block_on(read_all(&client, "changelog"));
            check(&compacted);
            (compacted.len() as u64) < WRITES / 2
        },
    );
    info!(records = compacted.len(), "compacted");

    info!("a follower, compacting on its own, takes over with the same values");
    let leader = cluster.partition("changelog", 0)["leader"]
        .as_u64()
        .unwrap() as usize;
    cluster.kill(leader);
    wait_for("a new leader", Duration::from_secs(20), || {
        let now = cluster.partition("changelog", 0)["leader"].as_u64();
        now.is_some_and(|l| l as usize != leader)
    });
    let rows = rt.block_on(read_all(&client, "changelog"));
    check(&rows);
    cluster.spawn(leader);
}

#[test]
fn the_offsets_topic_is_compacted_and_commits_survive_the_coordinators_death() {
    let mut cluster = ProcCluster::start(3);
    create(&cluster, "orders", "1", "3", &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(async {
        let client = Client::connect(ClientConfig::new(&cluster.servers()))
            .await
            .unwrap();
        let batch = encode_batch(&[record(None, "x".into())], None).unwrap();
        for _ in 0..WRITES {
            client
                .produce("orders", 0, batch.clone(), Acks::All)
                .await
                .unwrap();
        }
        client
    });
    let group = "compacted-offsets";
    let tp = TopicPartition {
        topic: "orders".into(),
        partition: 0,
    };
    // The procs cluster has 4 offsets partitions of 1 KiB segments.
    let p = partition_for(group, 4);
    rt.block_on(async {
        info!("many commits of one partition (resets of an empty group)");
        for n in 1..=WRITES {
            client
                .reset_offsets(group, "orders", To::Offset(n), false)
                .await
                .unwrap();
        }
        assert_eq!(client.committed_offsets(group).await.unwrap()[&tp], WRITES);
        info!("clients cannot write the offsets topic");
        let any = encode_batch(&[record(Some("k".into()), "v".into())], None).unwrap();
        let err = client
            .produce(OFFSETS_TOPIC, p, any, Acks::All)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::InvalidTopicName), "{err}");
        assert!(err.to_string().contains("internal"), "{err}");
    });
    let count = |client: &Client| {
        rt.block_on(async {
            let hw = client
                .list_offset(OFFSETS_TOPIC, p, -1)
                .await
                .unwrap()
                .unwrap();
            let mut consumer = Consumer::new(
                client.clone(),
                OFFSETS_TOPIC,
                Some(vec![p]),
                StartAt::Earliest,
            )
            .await
            .unwrap();
            let mut seen = 0;
            let mut last = 0;
            let deadline = Instant::now() + Duration::from_secs(20);
            while last + 1 < hw {
                assert!(
                    Instant::now() < deadline,
                    "reading the offsets topic timed out"
                );
                for r in consumer.poll(Duration::from_millis(500)).await.unwrap() {
                    seen += 1;
                    last = r.offset;
                }
            }
            (seen, hw)
        })
    };
    wait_for(
        "the offsets topic to be compacted",
        Duration::from_secs(30),
        || {
            let (seen, hw) = count(&client);
            info!(seen, hw, "offsets topic records");
            assert!(hw >= WRITES);
            seen < WRITES / 2
        },
    );

    info!("the coordinator dies; the next one loads the compacted partition");
    let coordinator = cluster.partition(OFFSETS_TOPIC, p as usize)["leader"]
        .as_u64()
        .unwrap() as usize;
    cluster.kill(coordinator);
    wait_for(
        "a coordinator with the last commit",
        Duration::from_secs(20),
        || {
            // Until a new coordinator has loaded, the call fails and is asked again.
            rt.block_on(client.committed_offsets(group))
                .is_ok_and(|offsets| {
                    assert_eq!(offsets.get(&tp), Some(&WRITES), "the last commit survives");
                    true
                })
        },
    );
    cluster.spawn(coordinator);
}
