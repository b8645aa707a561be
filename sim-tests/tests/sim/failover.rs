//! A partition leader fails in the middle of an idempotent acks=all
//! workload, and comes back: it crashes (losing what it had not synced), or
//! it is cut off from every other host by a network partition (the 2013
//! Jepsen case: an isolated leader must not acknowledge anything alone).
//! Either way every acknowledged record is readable exactly once, at the
//! offset it was acknowledged with, and the leadership moved.

use raftline::client::{Acks, Client, ClientConfig, Consumer, Producer, ProducerRecord, StartAt};
use raftline_proto::pb;
use raftline_proto::pb::admin_client::AdminClient;
use raftline_proto::transport::Connector;
use raftline_sim_tests::{SimCluster, SimConnector};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What happens to partition 0's leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// SIGKILL-like: tasks gone, unsynced log data lost; later restarted.
    Crash,
    /// Cut off from every other host; later healed.
    Isolate,
}

#[derive(Clone, Copy, Debug)]
enum Action {
    Fail(Fault, usize),
    Recover(Fault, usize),
}

fn client_config(servers: &str) -> ClientConfig {
    let mut config = ClientConfig::new(servers);
    config.connector = Some(Arc::new(SimConnector::default()));
    config.request_timeout = Duration::from_secs(5);
    config.delivery_timeout = Duration::from_secs(60);
    config
}

/// Creates the topic once the cluster can place it.
async fn create_topic(name: &str) {
    let channel = SimConnector::default().channel("n1:9001").unwrap();
    let mut admin = AdminClient::new(channel);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the topic was never created"
        );
        let request = pb::CreateTopicRequest {
            name: name.to_string(),
            partitions: 2,
            replication_factor: 3,
            configs: Default::default(),
        };
        match admin.create_topic(request).await {
            Ok(_) => return,
            Err(status) if status.message().contains("already exists") => return,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[test]
fn acknowledged_records_survive_a_partition_leader_crash() -> turmoil::Result {
    run(Fault::Crash, 7)
}

#[test]
fn acknowledged_records_survive_an_isolated_partition_leader() -> turmoil::Result {
    run(Fault::Isolate, 11)
}

fn run(fault: Fault, seed: u64) -> turmoil::Result {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut cluster = SimCluster::new(3, seed);
    let servers = cluster.servers();
    let actions: Arc<Mutex<Vec<Action>>> = Arc::default();
    let acked: Arc<Mutex<BTreeMap<String, (u32, u64)>>> = Arc::default();
    let read: Arc<Mutex<Vec<(u32, u64, String)>>> = Arc::default();
    let leaders: Arc<Mutex<Vec<Option<u32>>>> = Arc::default();
    {
        let (actions, acked, read) = (actions.clone(), acked.clone(), read.clone());
        let leaders = leaders.clone();
        cluster.client("workload", async move {
            create_topic("events").await;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            let client = loop {
                assert!(tokio::time::Instant::now() < deadline, "no broker answered");
                match Client::connect(client_config(&servers)).await {
                    Ok(c) => break c,
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            };
            let mut producer = Producer::new(client.clone(), "events", Acks::All).await?;
            let mut victim = None;
            for i in 0..120u32 {
                if i == 40 {
                    let metadata = client.refresh_metadata().await?;
                    let leader = metadata.topics["events"].partitions[0].leader;
                    victim = leader.map(|l| l as usize);
                    leaders.lock().unwrap().push(leader);
                    if let Some(v) = victim {
                        actions.lock().unwrap().push(Action::Fail(fault, v));
                    }
                }
                if i == 41 {
                    // Partition 0 gets a new leader (polled, in simulated time).
                    for _ in 0..100 {
                        let metadata = client.refresh_metadata().await?;
                        let leader = metadata.topics["events"].partitions[0].leader;
                        if leader.is_some() && leader.map(|l| l as usize) != victim {
                            leaders.lock().unwrap().push(leader);
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                if i == 80 {
                    if let Some(v) = victim {
                        actions.lock().unwrap().push(Action::Recover(fault, v));
                    }
                }
                let value = format!("v{i}");
                let record = ProducerRecord {
                    key: Some(value.clone().into()),
                    value: Some(value.clone().into()),
                    timestamp: 0,
                };
                let sent = producer.send(vec![record]).await?;
                let s = sent[0];
                acked
                    .lock()
                    .unwrap()
                    .insert(value, (s.partition, s.base_offset.unwrap()));
            }
            let want = acked.lock().unwrap().len();
            let mut consumer = Consumer::new(client, "events", None, StartAt::Earliest).await?;
            let mut got = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while got.len() < want {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "read {} of {want} records",
                    got.len()
                );
                for r in consumer.poll(Duration::from_secs(1)).await? {
                    let value =
                        String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).to_string();
                    got.push((r.partition, r.offset, value));
                }
            }
            *read.lock().unwrap() = got;
            Ok(())
        });
    }
    while !cluster.sim.step()? {
        let pending: Vec<Action> = actions.lock().unwrap().drain(..).collect();
        for action in pending {
            match action {
                Action::Fail(Fault::Crash, i) => cluster.crash(i),
                Action::Recover(Fault::Crash, i) => cluster.restart(i),
                Action::Fail(Fault::Isolate, i) => cluster.isolate(i),
                Action::Recover(Fault::Isolate, i) => cluster.heal(i),
            }
        }
    }
    let leaders = leaders.lock().unwrap();
    assert_eq!(leaders.len(), 2, "{leaders:?}");
    assert!(leaders[0].is_some() && leaders[1].is_some(), "{leaders:?}");
    assert_ne!(
        leaders[0], leaders[1],
        "partition 0's leader moved after the crash"
    );
    let acked = acked.lock().unwrap();
    let read = read.lock().unwrap();
    assert_eq!(acked.len(), 120);
    let mut seen: BTreeMap<&str, (u32, u64)> = BTreeMap::new();
    for (p, offset, value) in read.iter() {
        assert!(
            seen.insert(value.as_str(), (*p, *offset)).is_none(),
            "{value} read twice"
        );
    }
    for (value, at) in acked.iter() {
        assert_eq!(
            seen.get(value.as_str()),
            Some(at),
            "{value} acknowledged at {at:?}"
        );
    }
    Ok(())
}
