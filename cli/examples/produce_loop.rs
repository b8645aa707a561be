//! A simple produce loop for throughput figures (the full bench tool comes
//! with issue 7): `producers` idempotent producers, each sending batches of
//! `batch` records of `size` bytes to every partition of `topic` in turn,
//! one batch in flight per partition per producer.
//!
//! ```sh
//! cargo run --release -p raftline --example produce_loop -- \
//!     --bootstrap-server 127.0.0.1:50051 --topic bench --records 300000 --size 1024
//! ```

use anyhow::Result;
use bytes::Bytes;
use clap::Parser;
use raftline::client::{Acks, Client, ClientConfig, Producer, ProducerRecord};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    #[arg(
        long,
        default_value = "127.0.0.1:50051,127.0.0.1:50052,127.0.0.1:50053"
    )]
    bootstrap_server: String,
    #[arg(long)]
    topic: String,
    /// Records in all.
    #[arg(long, default_value_t = 300_000)]
    records: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Records per batch.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Concurrent producers.
    #[arg(long, default_value_t = 4)]
    producers: usize,
    /// all, 1 or 0.
    #[arg(long, default_value = "all")]
    acks: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let acks = match args.acks.as_str() {
        "all" | "-1" => Acks::All,
        "1" => Acks::Leader,
        "0" => Acks::None,
        other => anyhow::bail!("--acks {other}: use all, 1 or 0"),
    };
    let client = Client::connect(ClientConfig::new(&args.bootstrap_server)).await?;
    let partitions = client.partitions(&args.topic).await?.len().max(1);
    let value = Bytes::from(vec![b'x'; args.size]);
    let per_producer = args.records / args.producers.max(1);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.producers.max(1) {
        let client = client.clone();
        let (topic, value) = (args.topic.clone(), value.clone());
        let (batch, send) = (args.batch, args.batch * partitions);
        tasks.push(tokio::spawn(async move {
            let mut producer = Producer::new(client, &topic, acks).await?;
            let mut latencies = Vec::new();
            let mut sent = 0;
            while sent < per_producer {
                let n = send.min(per_producer - sent);
                let records = (0..n)
                    .map(|_| ProducerRecord {
                        key: None,
                        value: Some(value.clone()),
                        timestamp: 0,
                    })
                    .collect();
                let t = Instant::now();
                producer.send(records).await?;
                latencies.push(t.elapsed());
                sent += n;
            }
            let _ = batch;
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies: Vec<Duration> = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let total = per_producer * args.producers.max(1);
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p) as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{} records of {} B in {:.2} s: {:.0} records/s, {:.1} MB/s (acks={}, {} partitions, {} producers, batch {}); send latency p50 {:.1} ms, p99 {:.1} ms",
        total,
        args.size,
        elapsed,
        total as f64 / elapsed,
        (total * args.size) as f64 / elapsed / 1e6,
        args.acks,
        partitions,
        args.producers,
        args.batch,
        pct(0.5),
        pct(0.99),
    );
    Ok(())
}
