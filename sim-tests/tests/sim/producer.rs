//! The producer's partition lanes under a stalled leader: each partition's
//! batches go on their own, so a partition whose leader the producer cannot
//! reach holds up only its own records, and each partition's records land
//! in the order they were queued.

use bytes::Bytes;
use raftline::client::{Acks, Producer, ProducerRecord, Sent};
use raftline_sim_tests::cluster::{host, SimCluster, EPOCH_MS};
use raftline_sim_tests::history::now_ms;
use raftline_sim_tests::workload::{connect, create_topic, TopicSpec};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

const TOPIC: &str = "lanes";
const PARTITIONS: u32 = 3;
/// Records queued per partition while one leader is held.
const RECORDS: usize = 40;

/// What the driver and the producer host tell each other.
#[derive(Default)]
struct Plan {
    /// The producer is warmed up (every lane has sent once).
    ready: bool,
    /// Every partition not held got its acknowledgements while the held
    /// ones still waited (set by the producer): the driver may release.
    others_done: Option<bool>,
    /// Each partition's acknowledged runs after the release.
    sent: Vec<(u32, Vec<Sent>)>,
    /// The producer's failure, if any.
    error: Option<String>,
}

fn record(i: usize) -> ProducerRecord {
    ProducerRecord {
        key: None,
        value: Some(Bytes::from(format!("r{i}"))),
        timestamp: EPOCH_MS + now_ms() as i64,
    }
}

fn lock(plan: &Mutex<Plan>) -> std::sync::MutexGuard<'_, Plan> {
    plan.lock().unwrap_or_else(|p| p.into_inner())
}

async fn produce(
    servers: String,
    plan: Arc<Mutex<Plan>>,
    mut held: watch::Receiver<Option<Vec<u32>>>,
) -> Result<(), String> {
    let client = connect(&servers).await.map_err(|e| e.to_string())?;
    let spec = TopicSpec {
        name: TOPIC.into(),
        partitions: PARTITIONS,
        replication_factor: 3,
    };
    let created = create_topic(3, Instant::now() + Duration::from_secs(30), &spec).await;
    if created != "ok" {
        return Err(format!("create {TOPIC}: {created}"));
    }
    // Batches of 10 and up to 4 in flight per partition on the leaders'
    // produce streams: the window opens behind a full batch's worth.
    let mut producer = Producer::new(client, TOPIC, Acks::All)
        .await
        .map_err(|e| e.to_string())?
        .with_batch_records(10)
        .with_max_in_flight(4);
    // Offset 0 of every partition: lanes, producer ids and connections exist.
    for p in 0..PARTITIONS {
        producer
            .submit_to(p, vec![record(0)])
            .await
            .map_err(|e| format!("warm-up of partition {p}: {e}"))?;
    }
    lock(&plan).ready = true;
    let held = held
        .wait_for(Option::is_some)
        .await
        .map_err(|_| "the driver went away".to_string())?
        .clone()
        .unwrap_or_default();
    // Every partition gets RECORDS records, queued one call at a time, so
    // each lane has many queued sends behind its first batch.
    let (mut free, mut stalled) = (Vec::new(), Vec::new());
    for i in 1..=RECORDS {
        for p in 0..PARTITIONS {
            let w = tokio::spawn(producer.submit_to(p, vec![record(i)]));
            match held.contains(&p) {
                true => stalled.push((p, w)),
                false => free.push((p, w)),
            }
        }
    }
    let free_partitions: Vec<u32> = free.iter().map(|(p, _)| *p).collect();
    let free_answers = tokio::time::timeout(
        Duration::from_secs(5),
        futures_util::future::join_all(free.into_iter().map(|(_, w)| w)),
    )
    .await;
    let held_waiting = stalled.iter().all(|(_, w)| !w.is_finished());
    lock(&plan).others_done = Some(free_answers.is_ok() && held_waiting);
    let free_answers =
        free_answers.map_err(|_| "the free partitions did not answer".to_string())?;
    let mut sent: Vec<(u32, Vec<Sent>)> = (0..PARTITIONS).map(|p| (p, Vec::new())).collect();
    let mut record_runs = |p: u32, runs: Vec<Sent>| {
        if let Some((_, all)) = sent.iter_mut().find(|(q, _)| *q == p) {
            all.extend(runs);
        }
    };
    for (p, answer) in free_partitions.into_iter().zip(free_answers) {
        let runs = answer
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("partition {p}: {e}"))?;
        record_runs(p, runs);
    }
    for (p, w) in stalled {
        let runs = w
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("partition {p}: {e}"))?;
        record_runs(p, runs);
    }
    lock(&plan).sent = sent;
    Ok(())
}

#[test]
fn a_partition_whose_leader_is_out_of_reach_holds_up_only_its_own_records() {
    let mut cluster = SimCluster::new(3, 11);
    let plan = Arc::new(Mutex::new(Plan::default()));
    let (servers, p) = (cluster.servers(), plan.clone());
    // The partitions whose leader the driver holds off.
    let (hold_tx, hold_rx) = watch::channel(None);
    cluster.client("producer", async move {
        if let Err(e) = produce(servers, p.clone(), hold_rx).await {
            lock(&p).error = Some(e);
        }
        Ok(())
    });
    let step = |cluster: &mut SimCluster, what: &str, until: &dyn Fn(&Plan) -> bool| loop {
        let done = cluster.sim.step().expect("the simulation runs");
        let plan = lock(&plan);
        assert!(plan.error.is_none(), "{:?}", plan.error);
        if until(&plan) {
            return;
        }
        assert!(!done, "the producer ended before {what}");
    };
    step(&mut cluster, "it warmed up", &|p| p.ready);
    let leaders: Vec<Option<usize>> = (0..PARTITIONS)
        .map(|p| cluster.probes().partition_leader(TOPIC, p))
        .collect();
    let Some(stalled) = leaders[0] else {
        panic!("partition 0 has no leader: {leaders:?}")
    };
    let held: Vec<u32> = (0..PARTITIONS)
        .filter(|&p| leaders[p as usize] == Some(stalled))
        .collect();
    assert!(
        held.len() < PARTITIONS as usize,
        "every partition is led by node {stalled}; this seed cannot show lanes apart"
    );
    // Messages between the producer and that leader wait (a stalled path,
    // nothing lost) until released.
    cluster.sim.hold("producer", host(stalled));
    hold_tx.send_replace(Some(held.clone()));
    step(&mut cluster, "the free partitions were checked", &|p| {
        p.others_done.is_some()
    });
    assert_eq!(
        lock(&plan).others_done,
        Some(true),
        "partitions {held:?} (leader n{stalled} held) must wait and the others must not"
    );
    cluster.sim.release("producer", host(stalled));
    step(&mut cluster, "every record was acknowledged", &|p| {
        !p.sent.is_empty()
    });
    // Each partition: offsets 1..=RECORDS in the order its records were
    // queued (record i was queued i-th, after the warm-up at offset 0).
    for (p, runs) in &lock(&plan).sent {
        let offsets: Vec<u64> = runs
            .iter()
            .flat_map(|s| {
                let base = s.base_offset.expect("acks=all has offsets");
                (base..base + s.count as u64).map(move |o| (s.partition, o))
            })
            .map(|(partition, o)| {
                assert_eq!(partition, *p);
                o
            })
            .collect();
        let want: Vec<u64> = (1..=RECORDS as u64).collect();
        assert_eq!(offsets, want, "partition {p}'s records in queue order");
    }
}
