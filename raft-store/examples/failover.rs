//! Failover time of the Raft metadata quorum: three nodes on loopback with the
//! default timeouts (heartbeat 100 ms, election 300-600 ms); the leader is
//! stopped and the time until the next write commits through a survivor is
//! measured, `ROUNDS` times.
//!
//! `cargo run --release -p raftline-raft-store --example failover`

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/it/kv.rs"]
mod kv;

use raftline_raft_store::local_cluster::LocalCluster;
use std::time::{Duration, Instant};

const ROUNDS: usize = 10;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // RUST_LOG=openraft=info shows elections as they happen.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let mut gaps = Vec::new();
    let mut rtts = Vec::new();
    for round in 0..ROUNDS {
        let mut cluster = LocalCluster::start(3, kv::Kv::default, |_| {})
            .await
            .unwrap();
        // Warm up, and measure a plain committed write as the baseline.
        for i in 0..20 {
            let start = Instant::now();
            cluster
                .write(kv::set(&format!("w{i}"), "x"), Duration::from_secs(10))
                .await
                .unwrap();
            rtts.push(start.elapsed());
        }
        let leader = cluster.leader().await.unwrap();
        let start = Instant::now();
        cluster.kill(leader).await.unwrap();
        let stop = start.elapsed();
        cluster
            .write(kv::set("after", "y"), Duration::from_secs(10))
            .await
            .unwrap();
        let gap = start.elapsed();
        println!("round {round}: leader {leader} stopped (stop took {stop:?}), next write committed after {gap:?}");
        gaps.push(gap);
        cluster.stop_all().await.unwrap();
    }
    gaps.sort();
    rtts.sort();
    let pct = |v: &[Duration], p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    println!(
        "failover (leader stopped -> next committed write), {ROUNDS} rounds: min {:?}, median {:?}, max {:?}",
        gaps[0],
        pct(&gaps, 0.5),
        gaps[gaps.len() - 1]
    );
    println!(
        "baseline committed write (3 nodes, healthy): median {:?}, p99 {:?}",
        pct(&rtts, 0.5),
        pct(&rtts, 0.99)
    );
}
