//! Retention on a restarted broker: each replica gets a retention pass as
//! soon as it knows its high watermark again, not one interval after the
//! start. (A pass as the broker started found no replica that knew one and
//! deleted nothing, so a broker restarted more often than the interval never
//! deleted: a kill loop filled a disk so.)

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

const TOPIC: &str = "retained";
const DIR: &str = "retained-0";
const SEGMENT_BYTES: u64 = 1024;
const RETENTION_BYTES: u64 = 4 * SEGMENT_BYTES;
/// Records acknowledged before the crash: ~25 segments of 1 KiB.
const BEFORE_CRASH: u64 = 200;
/// The most segments a replica may keep once retention ran: the retained
/// bytes, the active segment, and slack for segments rolled since the pass.
const KEPT: usize = (RETENTION_BYTES / SEGMENT_BYTES) as usize + 4;

/// Produces batches of 5 records of 100 bytes to partition 0, one after
/// another's answer, counting those acknowledged, until the simulation ends.
async fn produce(servers: String, acked: Arc<AtomicU64>) -> Result<(), String> {
    let client = connect(&servers).await.map_err(|e| e.to_string())?;
    let spec = TopicSpec {
        name: TOPIC.into(),
        partitions: 1,
        replication_factor: 3,
    };
    let configs = BTreeMap::from([
        ("segment.bytes".to_string(), SEGMENT_BYTES.to_string()),
        ("retention.bytes".to_string(), RETENTION_BYTES.to_string()),
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let created = create_topic_with(3, deadline, &spec, &configs).await;
    if created != "ok" {
        return Err(format!("create {TOPIC}: {created}"));
    }
    let mut producer = Producer::new(client, TOPIC, Acks::All)
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let records: Vec<ProducerRecord> = (0..5)
            .map(|_| ProducerRecord {
                key: None,
                value: Some(Bytes::from(vec![b'r'; 100])),
                // Now on the nodes' clocks: retention.ms (7 days) keeps
                // them, so only retention.bytes deletes.
                timestamp: EPOCH_MS + now_ms() as i64,
            })
            .collect();
        // A failed send (the crashed broker led, a leader change) is
        // counted out and the next one goes on.
        if producer.submit_to(0, records).await.is_ok() {
            acked.fetch_add(5, Ordering::SeqCst);
        }
    }
}

#[test]
fn a_restarted_broker_applies_retention_once_it_knows_the_high_watermark() {
    let mut cluster = SimCluster::new(3, 13);
    let acked = Arc::new(AtomicU64::new(0));
    let (servers, counter) = (cluster.servers(), acked.clone());
    cluster.client("producer", async move {
        produce(servers, counter).await.map_err(Into::into)
    });
    let limit = Duration::from_secs(120);
    while acked.load(Ordering::SeqCst) < BEFORE_CRASH {
        cluster.sim.step().expect("the simulation runs");
        assert!(cluster.sim.elapsed() < limit, "the producer got no acks");
    }
    let leader = cluster.probes().partition_leader(TOPIC, 0);
    let Some(follower) = (1..=3).find(|&i| Some(i) != leader) else {
        panic!("no follower of {DIR}")
    };
    // The interval's pass is still to come: the follower kept everything.
    let crashed_at = cluster.sim.elapsed();
    assert!(crashed_at < RETENTION_CHECK, "crash at {crashed_at:?}");
    let before = cluster.segment_files(follower, DIR);
    assert!(
        before > KEPT,
        "node {follower} holds {before} segments before the crash"
    );
    cluster.crash(follower, 0);
    cluster.restart(follower);
    // Within half the interval (the old code's next pass came one whole
    // interval after the start), the follower's retention ran.
    let by = cluster.sim.elapsed() + RETENTION_CHECK / 2;
    while cluster.segment_files(follower, DIR) > KEPT {
        assert!(
            cluster.sim.elapsed() < by,
            "node {follower} still holds {} segments (of {before}) {:?} after its restart",
            cluster.segment_files(follower, DIR),
            RETENTION_CHECK / 2
        );
        cluster.sim.step().expect("the simulation runs");
    }
}
