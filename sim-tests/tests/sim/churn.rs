//! Topics created and deleted while another topic takes acks=all writes:
//! the brokers' fetchers take the changes without holding up the other
//! topic's acknowledgements. (A fetcher dropped its round for any change to
//! the partitions it follows, also while it was applying a fetch's records;
//! the append went on in the log's writer, the next fetch from the old
//! position failed on it, and the fetcher backed off for 100 ms with every
//! partition it fetched from that leader.)

use bytes::Bytes;
use raftline::client::{Acks, Producer, ProducerRecord};
use raftline_sim_tests::cluster::{SimCluster, EPOCH_MS};
use raftline_sim_tests::history::now_ms;
use raftline_sim_tests::workload::{connect, create_topic, delete_topic, TopicSpec};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

const STEADY: &str = "steady";
/// Topics created and deleted while `steady` is written.
const CYCLES: usize = 12;
/// Records acknowledged before the churn starts.
const WARM_UP: u64 = 20;
/// Records `steady` has acknowledged while each topic lives, and after each
/// is deleted, before the churn goes on.
const LIFE: u64 = 10;
/// The fetcher's backoff after a round that did nothing: no acknowledgement
/// during the churn may take this long (a round trip here is a few ms).
const BACKOFF: Duration = Duration::from_millis(100);

#[derive(Default)]
struct Shared {
    acked: u64,
    /// The longest acknowledgement while topics came and went.
    worst: Duration,
    churning: bool,
    churned: bool,
    error: Option<String>,
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// One record at a time to `steady`, each after the previous one's
/// acknowledgement, until the churn is over.
async fn produce(
    servers: String,
    shared: Arc<Mutex<Shared>>,
    acked: watch::Sender<u64>,
) -> Result<(), String> {
    let client = connect(&servers).await.map_err(|e| e.to_string())?;
    let spec = TopicSpec {
        name: STEADY.into(),
        partitions: 1,
        replication_factor: 3,
    };
    let created = create_topic(3, Instant::now() + Duration::from_secs(30), &spec).await;
    if created != "ok" {
        return Err(format!("create {STEADY}: {created}"));
    }
    let mut producer = Producer::new(client, STEADY, Acks::All)
        .await
        .map_err(|e| e.to_string())?;
    for i in 0u64.. {
        let record = ProducerRecord {
            key: None,
            value: Some(Bytes::from(format!("r{i}"))),
            timestamp: EPOCH_MS + now_ms() as i64,
        };
        let started = Instant::now();
        producer
            .submit_to(0, vec![record])
            .await
            .map_err(|e| format!("record {i}: {e}"))?;
        let took = started.elapsed();
        let mut s = lock(&shared);
        s.acked += 1;
        acked.send_replace(s.acked);
        if s.churning {
            s.worst = s.worst.max(took);
        }
        if s.churned {
            return Ok(());
        }
    }
    Ok(())
}

/// Waits until `steady` has acknowledged `more` records beyond what it had.
async fn acknowledged(acked: &mut watch::Receiver<u64>, more: u64) -> Result<(), String> {
    let from = *acked.borrow();
    let wait = acked.wait_for(|&n| n >= from + more);
    match tokio::time::timeout(Duration::from_secs(20), wait).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err("the producer went away".to_string()),
        Err(_) => Err(format!("{more} records not acknowledged within 20 s")),
    }
}

/// Once `steady` is warm, creates and deletes topics of 3 partitions.
async fn churn(shared: Arc<Mutex<Shared>>, mut acked: watch::Receiver<u64>) -> Result<(), String> {
    acknowledged(&mut acked, WARM_UP).await?;
    lock(&shared).churning = true;
    for i in 0..CYCLES {
        let spec = TopicSpec {
            name: format!("churn-{i}"),
            partitions: 3,
            replication_factor: 3,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let created = create_topic(3, deadline, &spec).await;
        if created != "ok" {
            return Err(format!("create {}: {created}", spec.name));
        }
        // The topic lives while `steady` takes more writes, its replicas
        // fetching beside `steady`'s, before it goes.
        acknowledged(&mut acked, LIFE).await?;
        let deleted = delete_topic(3, deadline, &spec.name).await;
        if deleted != "ok" {
            return Err(format!("delete {}: {deleted}", spec.name));
        }
        acknowledged(&mut acked, LIFE).await?;
    }
    lock(&shared).churned = true;
    Ok(())
}

#[test]
fn topics_coming_and_going_never_stall_another_topics_acknowledgements() {
    let mut cluster = SimCluster::new(3, 31);
    let shared = Arc::new(Mutex::new(Shared::default()));
    let (acked_tx, acked_rx) = watch::channel(0);
    let (servers, s) = (cluster.servers(), shared.clone());
    cluster.client("producer", async move {
        if let Err(e) = produce(servers, s.clone(), acked_tx).await {
            lock(&s).error = Some(e);
        }
        Ok(())
    });
    let s = shared.clone();
    cluster.client("churn", async move {
        if let Err(e) = churn(s.clone(), acked_rx).await {
            lock(&s).error = Some(e);
        }
        Ok(())
    });
    loop {
        let done = cluster.sim.step().expect("the simulation runs");
        let s = lock(&shared);
        assert!(s.error.is_none(), "{:?}", s.error);
        if s.churned || done {
            break;
        }
    }
    let s = lock(&shared);
    assert!(s.churned, "the churn did not finish");
    assert!(
        s.acked > WARM_UP + 100,
        "only {} records acknowledged",
        s.acked
    );
    assert!(
        s.worst < BACKOFF,
        "an acknowledgement took {:?} while topics came and went ({} acknowledged)",
        s.worst,
        s.acked
    );
}
