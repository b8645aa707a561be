//! Log maintenance on a restarted broker: each replica gets a retention
//! pass and a cleaner pass as soon as it knows its high watermark again, not
//! one interval after the start. (A pass as the broker started found no
//! replica that knew one and did nothing, so a broker restarted more often
//! than the interval never deleted, a kill loop filled a disk so, nor
//! compacted.)

use bytes::Bytes;
use raftline::client::{Acks, Producer, ProducerRecord};
use raftline_sim_tests::cluster::{SimCluster, EPOCH_MS, RETENTION_CHECK};
use raftline_sim_tests::history::now_ms;
use raftline_sim_tests::workload::{connect, create_topic_with, TopicSpec};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const SEGMENT_BYTES: u64 = 1024;
const RETENTION_BYTES: u64 = 4 * SEGMENT_BYTES;
/// Records acknowledged before the crash: ~25 segments of 1 KiB.
const BEFORE_CRASH: u64 = 200;
/// The most segments a replica may keep once retention ran: the retained
/// bytes, the active segment, and slack for segments rolled since the pass.
const KEPT: usize = (RETENTION_BYTES / SEGMENT_BYTES) as usize + 4;
/// Between cleaner passes in the compaction test: as long as retention's, so
/// the pass that follows a restart can only be the first-pass one.
const CLEANER_CHECK: Duration = RETENTION_CHECK;
/// Keys of the compacted topic's records: a cleaned log holds little more
/// than one record per key.
const KEYS: u64 = 4;

/// Creates `topic` (1 partition, RF 3, 1 KiB segments, `configs`) and
/// produces batches of 5 records of 100 bytes to it, keyed by `key` of the
/// record's number if given, one batch after another's answer, counting those
/// acknowledged, until `until` are (then idles until the simulation ends).
async fn produce(
    servers: String,
    topic: &'static str,
    configs: &[(&str, String)],
    key: Option<fn(u64) -> Bytes>,
    acked: Arc<AtomicU64>,
    until: u64,
) -> Result<(), String> {
    let client = connect(&servers).await.map_err(|e| e.to_string())?;
    let spec = TopicSpec {
        name: topic.into(),
        partitions: 1,
        replication_factor: 3,
    };
    let mut all = BTreeMap::from([("segment.bytes".to_string(), SEGMENT_BYTES.to_string())]);
    all.extend(configs.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let deadline = Instant::now() + Duration::from_secs(30);
    let created = create_topic_with(3, deadline, &spec, &all).await;
    if created != "ok" {
        return Err(format!("create {topic}: {created}"));
    }
    let mut producer = Producer::new(client, topic, Acks::All)
        .await
        .map_err(|e| e.to_string())?;
    let mut n = 0u64;
    while acked.load(Ordering::SeqCst) < until {
        let records: Vec<ProducerRecord> = (n..n + 5)
            .map(|i| ProducerRecord {
                key: key.map(|k| k(i)),
                value: Some(Bytes::from(vec![b'r'; 100])),
                // Now on the nodes' clocks: retention.ms (7 days) keeps
                // them, so only retention.bytes deletes.
                timestamp: EPOCH_MS + now_ms() as i64,
            })
            .collect();
        n += 5;
        // A failed send (the crashed broker led, a leader change) is
        // counted out and the next one goes on.
        if producer.submit_to(0, records).await.is_ok() {
            acked.fetch_add(5, Ordering::SeqCst);
        }
    }
    std::future::pending().await
}

/// Runs `cluster` until `acked` reaches [`BEFORE_CRASH`], then crashes and
/// restarts a follower of partition `dir` (the interval's pass still to
/// come); that follower.
fn restart_a_follower(cluster: &mut SimCluster, acked: &AtomicU64, topic: &str) -> usize {
    let limit = Duration::from_secs(120);
    while acked.load(Ordering::SeqCst) < BEFORE_CRASH {
        cluster.sim.step().expect("the simulation runs");
        assert!(cluster.sim.elapsed() < limit, "the producer got no acks");
    }
    let leader = cluster.probes().partition_leader(topic, 0);
    let Some(follower) = (1..=3).find(|&i| Some(i) != leader) else {
        panic!("no follower of {topic}")
    };
    let crashed_at = cluster.sim.elapsed();
    assert!(crashed_at < RETENTION_CHECK, "crash at {crashed_at:?}");
    cluster.crash(follower, 0);
    cluster.restart(follower);
    follower
}

/// Steps `cluster` until `done`, failing if that takes half the interval
/// (the old code's next pass came one whole interval after the start).
fn within_half_the_interval(
    cluster: &mut SimCluster,
    what: &str,
    mut done: impl FnMut(&SimCluster) -> Option<String>,
) {
    let by = cluster.sim.elapsed() + RETENTION_CHECK / 2;
    loop {
        match done(cluster) {
            None => return,
            Some(state) => assert!(
                cluster.sim.elapsed() < by,
                "{what}: {state} {:?} after the restart",
                RETENTION_CHECK / 2
            ),
        }
        cluster.sim.step().expect("the simulation runs");
    }
}

#[test]
fn a_restarted_broker_applies_retention_once_it_knows_the_high_watermark() {
    const DIR: &str = "retained-0";
    let mut cluster = SimCluster::new(3, 13);
    let acked = Arc::new(AtomicU64::new(0));
    let (servers, counter) = (cluster.servers(), acked.clone());
    cluster.client("producer", async move {
        let configs = [("retention.bytes", RETENTION_BYTES.to_string())];
        produce(servers, "retained", &configs, None, counter, u64::MAX)
            .await
            .map_err(Into::into)
    });
    let follower = restart_a_follower(&mut cluster, &acked, "retained");
    let before = cluster.segment_files(follower, DIR);
    assert!(
        before > KEPT,
        "node {follower} holds {before} segments at its restart"
    );
    within_half_the_interval(&mut cluster, "retention", |c| {
        let now = c.segment_files(follower, DIR);
        (now > KEPT).then(|| format!("node {follower} still holds {now} segments (of {before})"))
    });
}

#[test]
fn a_restarted_broker_compacts_once_it_knows_the_high_watermark() {
    const DIR: &str = "compacted-0";
    let mut cluster = SimCluster::with_cleaner_backoff(3, 17, CLEANER_CHECK);
    let acked = Arc::new(AtomicU64::new(0));
    let (servers, counter) = (cluster.servers(), acked.clone());
    cluster.client("producer", async move {
        let configs = [("cleanup.policy", "compact".to_string())];
        let key: fn(u64) -> Bytes = |i| Bytes::from(format!("key-{}", i % KEYS));
        produce(
            servers,
            "compacted",
            &configs,
            Some(key),
            counter,
            BEFORE_CRASH,
        )
        .await
        .map_err(Into::into)
    });
    let follower = restart_a_follower(&mut cluster, &acked, "compacted");
    let before = cluster.segment_bytes(follower, DIR);
    assert!(
        before > 16 * SEGMENT_BYTES as usize,
        "node {follower} holds {before} bytes at its restart"
    );
    within_half_the_interval(&mut cluster, "compaction", |c| {
        let now = c.segment_bytes(follower, DIR);
        (now > before / 2).then(|| format!("node {follower} still holds {now} bytes (of {before})"))
    });
}
