//! `raftline bench produce|consume|e2e`: load against a running cluster,
//! printed as records/s, MB/s and latency percentiles (a table, or one JSON
//! document with `--output json`).
//!
//! - `produce`: `--producers` closed loops, each an idempotent producer
//!   sending `--batch-size` records of `--record-size` bytes to every
//!   partition per send, one send in flight; latency is per send, and the
//!   longest gap between two acknowledgements is the unavailability a
//!   failover during the run caused. With `--rate`, open loops instead
//!   (Kafka's `producer-perf-test --throughput`): records are queued when
//!   due, whatever is still in flight, and each record's latency runs from
//!   its due time to its acknowledgement, so a stalled producer counts
//!   against the system, not for it; JSON adds the worst latency of each
//!   second (`worst_latency_ms_by_second`), to place a stall.
//! - `consume`: reads the topic from the beginning (every partition) until
//!   `--records` have come or `--duration-ms` has passed (throughput only:
//!   no latency figures).
//! - `e2e`: the open loops of `produce --rate` (1,000 records/s unless
//!   given) while a consumer reads from the end; latency is from a record's
//!   due time (written in its value) to its arrival at the consumer. A
//!   second row (`produce_latency_ms` in JSON) gives the producer's side.
//!
//! In the open loops each partition's lane (see [`Producer`]) sends what
//! queued while its previous batch was in flight, up to `--batch-size`
//! records, after waiting `--linger-ms` for a batch to fill (Kafka's
//! `linger.ms`, 0 by default).
//! - `loopback`: no cluster; the raw baseline the others read against, on
//!   the same machine in the same run: one TCP connection over 127.0.0.1
//!   streaming `--record-size`-byte writes to a reader for `--duration-ms`
//!   (MB/s), then a 1-byte ping-pong (round-trip latency percentiles).
//! - `disk`: no cluster; the storage baseline: `--record-size`-byte writes
//!   to a new file in `--dir`, each followed by an fdatasync, for
//!   `--duration-ms`, through the log's own file code for a segment being
//!   written (around the page cache where the file system allows).
//!   Prints MB/s, the write+fsync latency, and this process's CPU-seconds
//!   per GB written (user and system): what one copy of the data costs a
//!   broker's CPU at that write size, before any network or protocol work.

use crate::data::{now_ms, AcksArg};
use crate::Output;
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use raftline::client::{Acks, Client, Consumer, Producer, ProducerRecord, StartAt};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Which load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// Closed-loop producers.
    Produce,
    /// A consumer reading from the beginning.
    Consume,
    /// A fixed-rate producer and a consumer: end-to-end latency.
    E2e,
    /// Raw TCP over loopback, no cluster: the network baseline.
    Loopback,
    /// Write + fdatasync to a file, no cluster: the storage baseline.
    Disk,
}

/// `raftline bench`'s flags.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// produce (closed-loop producers), consume (read from the start),
    /// e2e (a fixed-rate producer and a consumer: end-to-end latency), or
    /// the baselines without a cluster: loopback (TCP) and disk (write +
    /// fdatasync, with the CPU it costs).
    #[arg(value_enum)]
    pub workload: Workload,
    /// The topic; created with --partitions and --replication-factor if
    /// it does not exist.
    #[arg(long, default_value = "raftline-bench")]
    pub topic: String,
    /// Partitions of a topic the bench creates.
    #[arg(long, default_value_t = 1)]
    pub partitions: u32,
    /// Replication factor of a topic the bench creates.
    #[arg(long, default_value_t = 1)]
    pub replication_factor: u32,
    /// Bytes per record.
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    /// Records per partition per send (closed loops), or most records in one
    /// partition's batch (open loops, --rate).
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Open loops (--rate): how long a partition's batch waits to fill.
    #[arg(long, default_value_t = 0)]
    pub linger_ms: u64,
    /// Acknowledgement: all, 1 or 0.
    #[arg(long, value_enum, default_value_t = AcksArg::All)]
    pub acks: AcksArg,
    /// Open loops (--rate): most batches in flight per partition (1-5;
    /// above 1 on the leader's ordered produce stream).
    #[arg(long, default_value_t = 5)]
    pub max_in_flight: usize,
    /// Concurrent producers (closed loops, or open loops sharing --rate).
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// How long the load runs.
    #[arg(long, default_value_t = 10_000)]
    pub duration_ms: u64,
    /// Stop after this many records, if sooner.
    #[arg(long)]
    pub records: Option<u64>,
    /// Records per second, all producers together: open loop (each record
    /// queued when due, latency from then to its acknowledgement, as Kafka's
    /// `producer-perf-test --throughput`). e2e: 1,000 unless given;
    /// produce: closed loops unless given.
    #[arg(long)]
    pub rate: Option<u64>,
    /// disk: the directory the file is written in (removed afterwards).
    #[arg(long, default_value = ".")]
    pub dir: std::path::PathBuf,
}

impl BenchArgs {
    /// The run these flags ask for.
    pub fn config(&self) -> BenchConfig {
        BenchConfig {
            workload: self.workload,
            topic: self.topic.clone(),
            partitions: self.partitions,
            replication_factor: self.replication_factor,
            record_size: self.record_size,
            batch_size: self.batch_size,
            linger: Duration::from_millis(self.linger_ms),
            acks: self.acks,
            max_in_flight: self.max_in_flight,
            producers: self.producers,
            duration: Duration::from_millis(self.duration_ms),
            records: self.records,
            rate: self.rate,
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// The workload.
    pub workload: Workload,
    /// The topic (created with `partitions` and `replication_factor` if it
    /// does not exist).
    pub topic: String,
    /// Partitions of a topic the bench creates.
    pub partitions: u32,
    /// Its replication factor.
    pub replication_factor: u32,
    /// Bytes per record value.
    pub record_size: usize,
    /// Records per partition per send.
    pub batch_size: usize,
    /// e2e: how long records may wait to fill a batch.
    pub linger: Duration,
    /// Acknowledgement.
    pub acks: AcksArg,
    /// Open loops: most batches in flight per partition.
    pub max_in_flight: usize,
    /// Concurrent producers (produce).
    pub producers: usize,
    /// How long the load runs.
    pub duration: Duration,
    /// Stop after this many records, if sooner.
    pub records: Option<u64>,
    /// Records per second (open loop); e2e defaults to 1,000, produce runs
    /// closed loops without it.
    pub rate: Option<u64>,
}

/// What a run measured.
#[derive(Debug, Default)]
struct Measured {
    records: u64,
    bytes: u64,
    elapsed: Duration,
    /// Latencies in microseconds.
    latencies: Vec<u64>,
    /// produce: when each send was acknowledged, microseconds from the start.
    acked_at: Vec<u64>,
    /// e2e: each record's intended send time to its acknowledgement, in
    /// microseconds (Kafka's producer latency: batching time included).
    ack_latencies: Vec<u64>,
    /// Open loops: the worst acknowledgement latency (ms) among the records
    /// due in each second of the run, to show when a stall happened.
    worst_by_second: Vec<f64>,
}

impl Measured {
    fn percentile(sorted: &[u64], p: f64) -> Option<f64> {
        let last = sorted.len().checked_sub(1)?;
        let i = ((last as f64) * p).round() as usize;
        sorted.get(i).map(|&us| us as f64 / 1000.0)
    }

    /// The longest time between two acknowledgements (all producers
    /// together), the unavailability a failover caused if one happened, and
    /// when it began: (gap, start), in milliseconds from the run's start.
    fn longest_ack_gap_ms(&mut self) -> Option<(f64, f64)> {
        self.acked_at.sort_unstable();
        self.acked_at
            .windows(2)
            .max_by_key(|w| w[1] - w[0])
            .map(|w| ((w[1] - w[0]) as f64 / 1000.0, w[0] as f64 / 1000.0))
    }

    fn summary(sorted: &[u64]) -> serde_json::Value {
        json!({
            "samples": sorted.len(),
            "p50": Self::percentile(sorted, 0.5),
            "p99": Self::percentile(sorted, 0.99),
            "p999": Self::percentile(sorted, 0.999),
            "max": sorted.last().map(|&us| us as f64 / 1000.0),
        })
    }

    fn report(mut self, config: &BenchConfig) -> serde_json::Value {
        self.latencies.sort_unstable();
        self.ack_latencies.sort_unstable();
        let longest_ack_gap_ms = self.longest_ack_gap_ms();
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let mut report = json!({
            "workload": format!("{:?}", config.workload).to_lowercase(),
            "topic": config.topic,
            "acks": match config.acks { AcksArg::All => "all", AcksArg::One => "1", AcksArg::Zero => "0" },
            "record_size": config.record_size,
            "batch_size": config.batch_size,
            "producers": config.producers,
            "records": self.records,
            "bytes": self.bytes,
            "seconds": secs,
            "records_per_sec": self.records as f64 / secs,
            "mb_per_sec": self.bytes as f64 / secs / 1e6,
            "latency_ms": Self::summary(&self.latencies),
            "longest_ack_gap_ms": longest_ack_gap_ms.map(|(gap, _)| gap),
            "longest_ack_gap_began_at_ms": longest_ack_gap_ms.map(|(_, at)| at),
        });
        if !self.ack_latencies.is_empty() {
            report["produce_latency_ms"] = Self::summary(&self.ack_latencies);
        }
        if !self.worst_by_second.is_empty() {
            report["worst_latency_ms_by_second"] = json!(self.worst_by_second);
        }
        report
    }
}

fn acks(arg: AcksArg) -> Acks {
    match arg {
        AcksArg::All => Acks::All,
        AcksArg::One => Acks::Leader,
        AcksArg::Zero => Acks::None,
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Runs the workload and prints its report.
pub async fn run(
    client: Client,
    bootstrap: &str,
    config: BenchConfig,
    output: Output,
) -> Result<()> {
    if config.record_size < 8 && config.workload == Workload::E2e {
        bail!("--record-size must be at least 8 for e2e (the send time is written in each value)");
    }
    if !(1..=5).contains(&config.max_in_flight) {
        bail!("--max-in-flight must be 1 to 5 (the broker remembers a producer's last 5 batches)");
    }
    if config.batch_size == 0 || config.producers == 0 || config.rate == Some(0) {
        bail!("--batch-size, --producers and --rate must be at least 1");
    }
    ensure_topic(&client, bootstrap, &config).await?;
    let measured = match config.workload {
        Workload::Produce => produce(&client, &config).await?,
        Workload::Consume => consume(&client, &config).await?,
        Workload::E2e => e2e(&client, &config).await?,
        Workload::Loopback | Workload::Disk => {
            bail!("the {:?} workload needs no cluster", config.workload)
        }
    };
    print_report(&measured.report(&config), output)
}

/// The loopback baseline: a stream of `record_size`-byte writes to a reader
/// over one 127.0.0.1 connection for the duration (throughput), then 1-byte
/// round trips for a tenth of it (latency). Nagle off, as on the nodes.
pub async fn loopback(config: BenchConfig, output: Output) -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        // First connection: read to the end. Second: echo every byte.
        let (mut stream, _) = listener.accept().await?;
        let mut buf = vec![0u8; 1 << 20];
        while stream.read(&mut buf).await? > 0 {}
        let (mut pings, _) = listener.accept().await?;
        pings.set_nodelay(true)?;
        let mut ping = [0u8; 1];
        while pings.read_exact(&mut ping).await.is_ok() {
            pings.write_all(&ping).await?;
        }
        Ok::<(), std::io::Error>(())
    });
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let chunk = vec![0u8; config.record_size.max(1)];
    let cpu_before = process_cpu_seconds();
    let started = Instant::now();
    let (mut bytes, mut records) = (0u64, 0u64);
    while started.elapsed() < config.duration {
        stream.write_all(&chunk).await?;
        bytes += chunk.len() as u64;
        records += 1;
    }
    stream.shutdown().await?;
    let elapsed = started.elapsed();
    drop(stream);
    // Both ends are this process: the CPU is the sender's and the reader's.
    let cpu = cpu_since(cpu_before);
    let mut pings = tokio::net::TcpStream::connect(addr).await?;
    pings.set_nodelay(true)?;
    let mut latencies = Vec::new();
    let ping_started = Instant::now();
    let mut pong = [0u8; 1];
    while ping_started.elapsed() < config.duration / 10 {
        let sent = Instant::now();
        pings.write_all(&[1]).await?;
        pings.read_exact(&mut pong).await?;
        latencies.push(micros(sent.elapsed()));
    }
    drop(pings);
    server.await.context("the loopback reader")??;
    let measured = Measured {
        records,
        bytes,
        elapsed,
        latencies,
        ..Measured::default()
    };
    let mut report = measured.report(&config);
    add_cpu_per_gb(&mut report, cpu);
    print_report(&report, output)
}

/// The disk baseline (see the module docs): `record_size`-byte writes to a
/// new file in `dir`, each made durable before the next, for the duration
/// (or `records` writes); the file is removed afterwards.
pub async fn disk(config: BenchConfig, dir: std::path::PathBuf, output: Output) -> Result<()> {
    let chunk = config.record_size.max(1);
    let run = config.clone();
    let (measured, cpu) = tokio::task::spawn_blocking(move || disk_writes(&run, &dir, chunk))
        .await
        .context("the disk writer")??;
    let mut report = measured.report(&config);
    if let Some(fields) = report.as_object_mut() {
        // What a cluster run reports and a file write has no part in.
        for key in [
            "topic",
            "acks",
            "batch_size",
            "producers",
            "longest_ack_gap_ms",
            "longest_ack_gap_began_at_ms",
        ] {
            fields.remove(key);
        }
    }
    add_cpu_per_gb(&mut report, cpu);
    print_report(&report, output)
}

/// Adds `cpu_seconds_per_gb` (user, system) for the report's bytes.
fn add_cpu_per_gb(report: &mut serde_json::Value, cpu: Option<(f64, f64)>) {
    let gb = report["bytes"]
        .as_f64()
        .map(|b| b / 1e9)
        .filter(|gb| *gb > 0.0);
    if let (Some((user, system)), Some(gb)) = (cpu, gb) {
        report["cpu_seconds_per_gb"] = json!({ "user": user / gb, "system": system / gb });
    }
}

type DiskRun = (Measured, Option<(f64, f64)>);

fn disk_writes(config: &BenchConfig, dir: &std::path::Path, chunk: usize) -> Result<DiskRun> {
    use raftline_broker::log::{cold_range, DEFAULT_CACHED_TAIL};
    use raftline_broker::storage::{FsStorage, OpenMode, Storage};
    let path = dir.join(format!("raftline-bench-disk-{}.tmp", std::process::id()));
    let file = FsStorage
        .open_log(&path, OpenMode::Truncate)
        .with_context(|| format!("cannot write in {} (--dir)", dir.display()))?;
    let data = vec![0xA5u8; chunk];
    let limit = config.records.unwrap_or(u64::MAX);
    let cpu_before = process_cpu_seconds();
    let started = Instant::now();
    let mut m = Measured::default();
    let mut released = 0u64;
    let written = (|| {
        while started.elapsed() < config.duration && m.records < limit {
            let t = Instant::now();
            file.write_all_at(&data, m.bytes)?;
            file.sync_data()?;
            m.latencies.push(micros(t.elapsed()));
            m.bytes += chunk as u64;
            m.records += 1;
            // As a log segment does after each sync (nothing, for a file
            // written around the page cache): all but the tail back.
            if let Some((from, len)) = cold_range(released, m.bytes, DEFAULT_CACHED_TAIL) {
                file.release_cache(from, len)?;
                released = from + len;
            }
        }
        std::io::Result::Ok(())
    })();
    m.elapsed = started.elapsed();
    let cpu = cpu_since(cpu_before);
    drop(file);
    let removed = std::fs::remove_file(&path);
    written.with_context(|| format!("writing {}", path.display()))?;
    removed.with_context(|| format!("removing {}", path.display()))?;
    Ok((m, cpu))
}

/// The (user, system) CPU seconds this process spent since `before`.
fn cpu_since(before: Option<(f64, f64)>) -> Option<(f64, f64)> {
    before
        .zip(process_cpu_seconds())
        .map(|(a, b)| (b.0 - a.0, b.1 - a.1))
}

/// This process's (user, system) CPU seconds so far, from /proc/self/stat;
/// `None` where that is not readable.
fn process_cpu_seconds() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses and may
    // hold spaces: utime and stime are the 14th and 15th of the line.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some((user / ticks, system / ticks))
}

fn print_report(report: &serde_json::Value, output: Output) -> Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(report)?),
        Output::Table => print_table(report),
    }
    Ok(())
}

fn print_table(report: &serde_json::Value) {
    let f = |v: &serde_json::Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.2}"));
    let row = |workload: String, lat: &serde_json::Value| {
        [
            workload,
            report["records"].to_string(),
            format!("{:.0}", report["records_per_sec"].as_f64().unwrap_or(0.0)),
            f(&report["mb_per_sec"]),
            f(&lat["p50"]),
            f(&lat["p99"]),
            f(&lat["p999"]),
            f(&lat["max"]),
        ]
    };
    let workload = report["workload"].as_str().unwrap_or("").to_string();
    let mut rows = vec![row(workload.clone(), &report["latency_ms"])];
    // e2e: the producer's side too (intended send to acknowledgement).
    if !report["produce_latency_ms"].is_null() {
        rows.push(row(
            format!("{workload} (acked)"),
            &report["produce_latency_ms"],
        ));
    }
    crate::table::print_rows(
        [
            "WORKLOAD",
            "RECORDS",
            "RECORDS/S",
            "MB/S",
            "P50-MS",
            "P99-MS",
            "P99.9-MS",
            "MAX-MS",
        ],
        &rows,
    );
    if let Some(cpu) = report.get("cpu_seconds_per_gb") {
        let f = |k: &str| cpu[k].as_f64().unwrap_or(0.0);
        println!(
            "CPU per GB (this process): user {:.2} s, system {:.2} s",
            f("user"),
            f("system")
        );
    }
}

/// Creates the topic unless it exists.
async fn ensure_topic(client: &Client, bootstrap: &str, config: &BenchConfig) -> Result<()> {
    if client.partitions(&config.topic).await.is_ok() {
        return Ok(());
    }
    let mut admin = crate::admin::connect(bootstrap).await?;
    let request = raftline_proto::pb::CreateTopicRequest {
        name: config.topic.clone(),
        partitions: config.partitions,
        replication_factor: config.replication_factor,
        configs: Default::default(),
    };
    if let Err(status) = admin.create_topic(request).await {
        if !status.message().contains("already exists") {
            bail!(
                "cannot create bench topic {:?}: {}",
                config.topic,
                status.message()
            );
        }
    }
    // The new topic's leaders are elected by the time metadata lists them.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match client.refresh_metadata().await {
            Ok(m)
                if m.topics.get(&config.topic).is_some_and(|t| {
                    !t.partitions.is_empty() && t.partitions.iter().all(|p| p.leader.is_some())
                }) =>
            {
                return Ok(())
            }
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            _ => bail!("bench topic {:?} has no leaders after 10 s", config.topic),
        }
    }
}

fn stop(config: &BenchConfig, started: Instant, records: u64) -> bool {
    started.elapsed() >= config.duration || config.records.is_some_and(|n| records >= n)
}

async fn produce(client: &Client, config: &BenchConfig) -> Result<Measured> {
    if let Some(rate) = config.rate {
        let value = Bytes::from(vec![b'x'; config.record_size]);
        let started = Instant::now();
        let total = config
            .records
            .unwrap_or((rate as f64 * config.duration.as_secs_f64()) as u64);
        let producing =
            open_loop(client, config, rate, started, total, move |_| value.clone()).await?;
        let mut m = Measured::default();
        let samples = gather(producing).await?;
        m.worst_by_second = worst_by_second(&samples);
        m.latencies = samples.into_iter().map(|(_, latency)| latency).collect();
        m.elapsed = started.elapsed();
        m.records = m.latencies.len() as u64;
        m.bytes = m.records * config.record_size as u64;
        return Ok(m);
    }
    let partitions = client.partitions(&config.topic).await?.len().max(1);
    let value = Bytes::from(vec![b'x'; config.record_size]);
    let per_send = config.batch_size * partitions;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..config.producers as u64 {
        let (client, config, value) = (client.clone(), config.clone(), value.clone());
        // --records shared out, the remainder to the first producers.
        let limit = config.records.map(|n| {
            let p = config.producers as u64;
            n / p + u64::from(i < n % p)
        });
        tasks.push(tokio::spawn(async move {
            let mut producer = Producer::new(client, &config.topic, acks(config.acks)).await?;
            let mut m = Measured::default();
            while !(started.elapsed() >= config.duration || limit.is_some_and(|n| m.records >= n)) {
                let n = limit.map_or(per_send as u64, |l| (l - m.records).min(per_send as u64));
                let records = (0..n)
                    .map(|_| ProducerRecord {
                        key: None,
                        value: Some(value.clone()),
                        timestamp: now_ms(),
                    })
                    .collect();
                let t = Instant::now();
                producer.send(records).await?;
                m.latencies.push(micros(t.elapsed()));
                m.acked_at.push(micros(started.elapsed()));
                m.records += n;
                m.bytes += n * config.record_size as u64;
            }
            anyhow::Ok(m)
        }));
    }
    let mut total = Measured::default();
    for task in tasks {
        let m = task.await.context("a producer task failed")??;
        total.records += m.records;
        total.bytes += m.bytes;
        total.latencies.extend(m.latencies);
        total.acked_at.extend(m.acked_at);
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

async fn consume(client: &Client, config: &BenchConfig) -> Result<Measured> {
    let mut consumer =
        Consumer::new(client.clone(), &config.topic, None, StartAt::Earliest).await?;
    let started = Instant::now();
    let mut m = Measured::default();
    let mut last = Instant::now();
    while !stop(config, started, m.records) {
        let records = consumer.poll(Duration::from_millis(200)).await?;
        if records.is_empty() {
            // Everything there was has been read.
            if config.records.is_none() && last.elapsed() >= Duration::from_secs(1) && m.records > 0
            {
                break;
            }
            continue;
        }
        last = Instant::now();
        m.records += records.len() as u64;
        m.bytes += records
            .iter()
            .map(|r| r.value.as_ref().map_or(0, |v| v.len() as u64))
            .sum::<u64>();
        m.elapsed = started.elapsed();
    }
    if m.elapsed.is_zero() {
        m.elapsed = started.elapsed();
    }
    Ok(m)
}

/// An open-loop producer's task: (intended send time, latency) per record,
/// in microseconds.
type Paced = tokio::task::JoinHandle<Result<Vec<(u64, u64)>>>;

/// Open-loop producers: producer k of n takes records k, k + n, k + 2n, ...
/// of one schedule at `rate` and queues each when it is due, with the value
/// `value(intended send time in microseconds from the start)`; its partition
/// lanes batch what queued while the previous batch was in flight, or for
/// the linger (Kafka's producer). Each task returns its records' intended
/// send times (from the start) and latencies, intended send time to
/// acknowledgement (so a stalled producer counts against the system), in
/// microseconds.
async fn open_loop(
    client: &Client,
    config: &BenchConfig,
    rate: u64,
    started: Instant,
    total: u64,
    value: impl Fn(u64) -> Bytes + Clone + Send + 'static,
) -> Result<Vec<Paced>> {
    let per_record = Duration::from_secs_f64(1.0 / rate as f64);
    let n = config.producers.max(1) as u64;
    let mut producing = Vec::new();
    for k in 0..n {
        let mut producer = Producer::new(client.clone(), &config.topic, acks(config.acks))
            .await?
            .with_linger(config.linger)
            .with_batch_records(config.batch_size)
            .with_max_in_flight(config.max_in_flight);
        let value = value.clone();
        producing.push(tokio::spawn(async move {
            let due = |j: u64| started + per_record.mul_f64((j * n + k) as f64);
            let mine = total / n + u64::from(k < total % n);
            let mut next = 0u64;
            let mut pending = FuturesUnordered::new();
            let mut latencies = Vec::with_capacity(usize::try_from(mine).unwrap_or(0));
            loop {
                // Everything due by now goes in one call (the timer wakes
                // about once a millisecond); each record's latency still
                // counts from its own due time.
                let now = Instant::now();
                let first = next;
                while next < mine && due(next) <= now {
                    next += 1;
                }
                // Round-robin over the partitions, one call per partition.
                let mut by_partition: BTreeMap<u32, (Vec<u64>, Vec<ProducerRecord>)> =
                    BTreeMap::new();
                for j in first..next {
                    let (due_at, records) = by_partition
                        .entry(producer.partition_for(None))
                        .or_default();
                    due_at.push(j);
                    records.push(ProducerRecord {
                        key: None,
                        value: Some(value(micros(due(j) - started))),
                        timestamp: now_ms(),
                    });
                }
                for (p, (due_at, records)) in by_partition {
                    let delivery = producer.submit_to(p, records);
                    pending.push(async move { (due_at, delivery.await) });
                }
                if next >= mine && pending.is_empty() {
                    break;
                }
                tokio::select! {
                    Some((due_at, delivered)) = pending.next(), if !pending.is_empty() => {
                        delivered?;
                        let acked = Instant::now();
                        latencies.extend(due_at.into_iter().map(|j| {
                            (micros(due(j) - started), micros(acked.saturating_duration_since(due(j))))
                        }));
                    }
                    () = tokio::time::sleep_until(due(next).into()), if next < mine => {}
                }
            }
            anyhow::Ok(latencies)
        }));
    }
    Ok(producing)
}

/// Every open-loop producer's samples: (intended send time, latency).
async fn gather(producing: Vec<Paced>) -> Result<Vec<(u64, u64)>> {
    let mut samples = Vec::new();
    for task in producing {
        samples.extend(task.await.context("a producer task failed")??);
    }
    Ok(samples)
}

/// The worst latency (ms) among the samples due in each second.
fn worst_by_second(samples: &[(u64, u64)]) -> Vec<f64> {
    let mut worst: Vec<u64> = Vec::new();
    for &(at, latency) in samples {
        let second = usize::try_from(at / 1_000_000).unwrap_or(usize::MAX);
        if second >= worst.len() {
            worst.resize(second.saturating_add(1).min(1 << 20), 0);
        }
        if let Some(w) = worst.get_mut(second) {
            *w = (*w).max(latency);
        }
    }
    worst.into_iter().map(|us| us as f64 / 1000.0).collect()
}

async fn e2e(client: &Client, config: &BenchConfig) -> Result<Measured> {
    let mut consumer = Consumer::new(client.clone(), &config.topic, None, StartAt::Latest).await?;
    let rate = config.rate.unwrap_or(1_000);
    let started = Instant::now();
    let total = config
        .records
        .unwrap_or((rate as f64 * config.duration.as_secs_f64()) as u64);
    // Each value starts with its intended send time, for the consumer.
    let size = config.record_size;
    let producing = open_loop(client, config, rate, started, total, move |at| {
        let mut value = vec![b'x'; size];
        value[..8].copy_from_slice(&at.to_be_bytes());
        value.into()
    })
    .await?;
    let mut m = Measured::default();
    let deadline = started + config.duration + Duration::from_secs(10);
    while m.records < total && Instant::now() < deadline {
        for r in consumer.poll(Duration::from_millis(200)).await? {
            let Some(value) = r.value.filter(|v| v.len() >= 8) else {
                continue;
            };
            let mut at = [0u8; 8];
            at.copy_from_slice(&value[..8]);
            let sent = started + Duration::from_micros(u64::from_be_bytes(at));
            m.latencies
                .push(micros(Instant::now().saturating_duration_since(sent)));
            m.records += 1;
            m.bytes += value.len() as u64;
        }
    }
    m.elapsed = started.elapsed();
    let samples = gather(producing).await?;
    m.worst_by_second = worst_by_second(&samples);
    m.ack_latencies = samples.into_iter().map(|(_, latency)| latency).collect();
    if m.records < total {
        bail!(
            "the consumer saw {} of {total} records within 10 s after the run",
            m.records
        );
    }
    Ok(m)
}
