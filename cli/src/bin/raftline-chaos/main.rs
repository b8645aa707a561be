//! `raftline-chaos`: attacks a real three-node cluster and checks what its
//! clients saw. `scripts/chaos.sh` builds and runs it.
//!
//! ```text
//! namespaces + bridge (or loopback) ─> 3 × `raftline serve` ─> topic chaos (3 partitions, RF 3)
//! load:   idempotent acks=all producers, unique values ─> acknowledged (partition, offset)
//!         a consumer group of two, committing after each poll ─> records read
//!         a sampler of the group's committed offsets
//! faults: from the seed, one at a time: SIGKILL + restart, SIGSTOP/SIGCONT,
//!         leader or any node cut off (2/1 split), netem delay + loss,
//!         SIGKILL under a write burst
//! end:    heal everything ─> time until a write is acknowledged again
//!         ─> read every partition from the start ─> verify ─> table, exit code
//! ```
//!
//! Violations (exit status 1): an acknowledged record lost or at another
//! offset, a record stored twice or never sent, a hole in the offsets, a
//! record read that the log later holds differently (read above the high
//! watermark), a committed offset going backwards or past the log's end, or
//! no write acknowledged within `--heal-within` after the faults stop.

mod cluster;
mod faults;
mod net;
mod verify;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Parser;
use cluster::Cluster;
use raftline::client::{
    partition_for_key, Acks, Client, ClientConfig, Consumer, GroupConfig, GroupConsumer, Producer,
    ProducerRecord, StartAt,
};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use verify::{Acked, CommitSample, FinalLog, History, Seen};

const TOPIC: &str = "chaos";
const GROUP: &str = "chaos-group";
const PARTITIONS: u32 = 3;

/// The flags.
#[derive(Parser, Debug)]
#[command(about = "Faults against a real three-node Raftline cluster, with a verifier")]
struct Args {
    /// Seconds of faults under load.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// The seed of the fault schedule (random if not given; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// The raftline binary to run.
    #[arg(long, default_value = "target/release/raftline")]
    bin: PathBuf,
    /// Where the nodes keep configs, data and logs (emptied first).
    #[arg(long, default_value = "target/chaos")]
    dir: PathBuf,
    /// Run every node on loopback (partitions become SIGSTOPs) even where
    /// network namespaces are available.
    #[arg(long)]
    loopback: bool,
    /// After the faults stop, a write must be acknowledged within this many
    /// seconds.
    #[arg(long, default_value_t = 30)]
    heal_within: u64,
    /// Report stretches without any acknowledgement longer than this (ms).
    #[arg(long, default_value_t = 1_000)]
    window_ms: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RAFTLINE_CHAOS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let seed = args.seed.unwrap_or_else(rand::random);
    let bin = std::fs::canonicalize(&args.bin).with_context(|| {
        format!(
            "no raftline binary at {}: build it with `cargo build --release -p raftline`",
            args.bin.display()
        )
    })?;
    std::fs::create_dir_all(&args.dir)?;
    let dir = std::fs::canonicalize(&args.dir)?.join(format!("seed-{seed}"));
    let net = net::Net::set_up(3, !args.loopback);
    let separation = match net.mode {
        net::Mode::Namespaces => "network namespaces on a bridge (10.77.0.0/24)",
        net::Mode::Loopback => "loopback (partitions simulated by SIGSTOP)",
    };
    println!(
        "raftline-chaos: seed {seed}, {} s of faults, 3 nodes on {separation}, data in {}",
        args.duration,
        dir.display()
    );
    let cluster = Cluster::start(net, bin, dir, 3)?;
    cluster.wait_live(Duration::from_secs(60))?;
    let created = cluster.cli(&[
        "topic",
        "create",
        TOPIC,
        "--partitions",
        &PARTITIONS.to_string(),
        "--replication-factor",
        "3",
    ])?;
    if !created.status.success() {
        bail!(
            "creating the topic failed: {}",
            String::from_utf8_lossy(&created.stderr)
        );
    }
    let servers = cluster.servers();
    let cluster = Arc::new(Mutex::new(cluster));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = runtime.block_on(run(&args, seed, &servers, cluster.clone()))?;
    let passed = report.passed();
    print_report(&args, seed, &report);
    drop(runtime);
    drop(cluster);
    if !passed {
        std::process::exit(1);
    }
    Ok(())
}

/// What the run produced.
struct Report {
    faults: Vec<faults::Injected>,
    verdict: verify::Verdict,
    /// From the heal to the first acknowledged write, if one came in time.
    heal: Option<Duration>,
    /// Sends that failed after their retries (their records may or may not
    /// be stored; either is correct).
    failed_sends: usize,
}

impl Report {
    /// Every property held and the cluster healed in time.
    fn passed(&self) -> bool {
        self.verdict.passed() && self.heal.is_some()
    }
}

/// What the load tasks share.
#[derive(Default)]
struct Shared {
    history: Mutex<History>,
    failed_sends: AtomicUsize,
}

impl Shared {
    fn history(&self) -> MutexGuard<'_, History> {
        locked(&self.history)
    }
}

/// `mutex` locked; a panicked holder's data is still what the run saw.
pub(crate) fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The unique id at the front of a record value (`id|padding`).
fn id_of(value: &[u8]) -> String {
    let id = value.split(|&b| b == b'|').next().unwrap_or_default();
    String::from_utf8_lossy(id).into_owned()
}

fn client_config(servers: &str) -> ClientConfig {
    let mut config = ClientConfig::new(servers);
    config.request_timeout = Duration::from_secs(5);
    config.delivery_timeout = Duration::from_secs(20);
    config
}

async fn run(
    args: &Args,
    seed: u64,
    servers: &str,
    cluster: Arc<Mutex<Cluster>>,
) -> Result<Report> {
    let client = Client::connect(client_config(servers))
        .await
        .context("connecting to the cluster")?;
    let shared = Arc::new(Shared::default());
    let stop = Arc::new(AtomicBool::new(false));
    let burst = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut load = Vec::new();
    for id in 0..2 {
        load.push(tokio::spawn(produce(
            client.clone(),
            id,
            shared.clone(),
            stop.clone(),
            burst.clone(),
            started,
        )));
    }
    let consumers_stop = Arc::new(AtomicBool::new(false));
    let mut consumers = Vec::new();
    for _ in 0..2 {
        consumers.push(tokio::spawn(consume(
            client.clone(),
            shared.clone(),
            consumers_stop.clone(),
        )));
    }
    consumers.push(tokio::spawn(sample_commits(
        client.clone(),
        shared.clone(),
        consumers_stop.clone(),
        started,
    )));

    println!("faults:");
    let until = Instant::now() + Duration::from_secs(args.duration);
    let injector = {
        let (cluster, burst) = (cluster.clone(), burst.clone());
        tokio::task::spawn_blocking(move || {
            faults::run(cluster, seed, TOPIC, started, until, burst)
        })
    };
    let faults = injector.await.context("the fault injector")??;

    // Heal, then time the first acknowledged write.
    let healed_at = Instant::now();
    locked(&cluster).heal_all()?;
    let heal = first_ack(
        &client,
        &shared,
        started,
        Duration::from_secs(args.heal_within),
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    for task in load {
        task.await.context("a producer task")?;
    }
    // Let the group read up to the end, then stop it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    consumers_stop.store(true, Ordering::SeqCst);
    for task in consumers {
        task.await.context("a consumer task")?;
    }
    let log = read_all(&client).await?;
    let history = std::mem::take(&mut *shared.history());
    let verdict = verify::verify(&history, &log, Duration::from_millis(args.window_ms));
    let failed_sends = shared.failed_sends.load(Ordering::SeqCst);
    Ok(Report {
        faults,
        verdict,
        heal: heal.map(|at| at.saturating_sub(healed_at.duration_since(started))),
        failed_sends,
    })
}

/// A value unique in the run: which producer, which record.
fn value_of(producer: usize, seq: u64) -> String {
    format!("p{producer}-{seq:09}")
}

/// Sends `records` (keyed by their values) and records the outcome; the
/// acknowledgements' times since `started`.
async fn send_recorded(
    producer: &mut Producer,
    values: Vec<String>,
    pad: usize,
    shared: &Shared,
    started: Instant,
) -> bool {
    let mut queues: BTreeMap<u32, VecDeque<String>> = BTreeMap::new();
    // Real create times: time-based retention judges segments by them.
    let now_ms = {
        use raftline_broker::clock::Clock;
        raftline_broker::clock::SystemClock.now_ms()
    };
    let records: Vec<ProducerRecord> = values
        .iter()
        .map(|v| {
            queues
                .entry(partition_for_key(v.as_bytes(), PARTITIONS))
                .or_default()
                .push_back(v.clone());
            ProducerRecord {
                key: Some(Bytes::from(v.clone())),
                value: Some(Bytes::from(format!("{v}|{}", "x".repeat(pad)))),
                timestamp: now_ms,
            }
        })
        .collect();
    shared.history().sent.extend(values);
    match producer.send(records).await {
        Ok(sent) => {
            let at = started.elapsed();
            let mut history = shared.history();
            for batch in sent {
                let (Some(base), Some(queue)) =
                    (batch.base_offset, queues.get_mut(&batch.partition))
                else {
                    continue;
                };
                for i in 0..batch.count as u64 {
                    if let Some(value) = queue.pop_front() {
                        history.acked.push(Acked {
                            value,
                            partition: batch.partition,
                            offset: base + i,
                            at,
                        });
                    }
                }
            }
            true
        }
        Err(e) => {
            tracing::info!(error = %e, "a send failed after its retries; its records are indeterminate");
            shared.failed_sends.fetch_add(1, Ordering::SeqCst);
            false
        }
    }
}

/// An idempotent acks=all producer: a batch of unique values every 20 ms,
/// bigger batches of bigger records during a burst.
async fn produce(
    client: Client,
    id: usize,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    burst: Arc<AtomicBool>,
    started: Instant,
) {
    let mut producer = loop {
        match Producer::new(client.clone(), TOPIC, Acks::All).await {
            Ok(p) => break p,
            Err(e) => {
                tracing::info!(error = %e, "no producer yet");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let mut seq = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let (count, pad) = if burst.load(Ordering::SeqCst) {
            (300, 1_000)
        } else {
            (12, 100)
        };
        let values = (0..count)
            .map(|_| {
                seq += 1;
                value_of(id, seq)
            })
            .collect();
        send_recorded(&mut producer, values, pad, &shared, started).await;
        if !burst.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// After the heal: sends one record at a time until one is acknowledged;
/// when that was (since `started`), if within `bound`.
async fn first_ack(
    client: &Client,
    shared: &Shared,
    started: Instant,
    bound: Duration,
) -> Option<Duration> {
    let deadline = Instant::now() + bound;
    let mut seq = 0;
    while Instant::now() < deadline {
        if let Ok(mut producer) = Producer::new(client.clone(), TOPIC, Acks::All).await {
            seq += 1;
            let value = value_of(99, seq);
            if send_recorded(&mut producer, vec![value], 0, shared, started).await {
                return Some(started.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// A group member: polls, records what it read, commits after each poll;
/// joins again after repeated errors.
async fn consume(client: Client, shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        let mut config = GroupConfig::new(GROUP, &[TOPIC]);
        config.auto_commit = None;
        let mut member = match GroupConsumer::join(client.clone(), config).await {
            Ok(m) => m,
            Err(e) => {
                tracing::info!(error = %e, "joining the group failed; again shortly");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut errors = 0;
        while !stop.load(Ordering::SeqCst) && errors < 20 {
            match member.poll(Duration::from_millis(300)).await {
                Ok(records) => {
                    errors = 0;
                    let seen = records.into_iter().filter_map(|r| {
                        Some(Seen {
                            partition: r.partition,
                            offset: r.offset,
                            value: id_of(r.value.as_ref()?),
                        })
                    });
                    shared.history().seen.extend(seen);
                    if let Err(e) = member.commit().await {
                        tracing::info!(error = %e, "commit failed");
                    }
                }
                Err(e) => {
                    errors += 1;
                    tracing::info!(error = %e, "poll failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        let _ = member.close().await;
    }
}

/// Reads the group's committed offsets every 250 ms.
async fn sample_commits(
    client: Client,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    started: Instant,
) {
    while !stop.load(Ordering::SeqCst) {
        if let Ok(offsets) = client.committed_offsets(GROUP).await {
            let at = started.elapsed();
            let mut history = shared.history();
            for (tp, offset) in offsets {
                history.commits.push(CommitSample {
                    at,
                    partition: tp.partition,
                    offset,
                });
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every partition from its start to its high watermark.
async fn read_all(client: &Client) -> Result<FinalLog> {
    let mut log = FinalLog::default();
    for p in 0..PARTITIONS {
        let start = client.list_offset(TOPIC, p, -2).await?.unwrap_or(0);
        let end = client.list_offset(TOPIC, p, -1).await?.unwrap_or(0);
        let mut records = Vec::new();
        if end > start {
            let mut consumer =
                Consumer::new(client.clone(), TOPIC, Some(vec![p]), StartAt::Offset(start)).await?;
            let deadline = Instant::now() + Duration::from_secs(60);
            while records.last().map_or(start, |(o, _)| o + 1) < end {
                if Instant::now() >= deadline {
                    bail!("reading {TOPIC}-{p} up to {end} took over 60 s");
                }
                for r in consumer.poll(Duration::from_millis(500)).await? {
                    records.push((r.offset, id_of(&r.value.unwrap_or_default())));
                }
            }
            records.retain(|(o, _)| *o < end);
        }
        println!(
            "read {TOPIC}-{p}: offsets {start}..{end}, {} records",
            records.len()
        );
        log.partitions.insert(p, (start, records));
    }
    Ok(log)
}

fn print_report(args: &Args, seed: u64, report: &Report) {
    let v = &report.verdict;
    println!();
    println!(
        "| seed | faults | acknowledged | stored | read by the group | commit samples | failed sends | lost | moved | duplicated | never sent | offset gaps | dirty reads | commits backwards | commits past end | heal -> first ack |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {seed} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        report.faults.len(),
        v.acknowledged,
        v.stored,
        v.read,
        v.commit_samples,
        report.failed_sends,
        v.lost.len(),
        v.moved.len(),
        v.duplicated.len(),
        v.unknown.len(),
        v.gaps.len(),
        v.dirty_reads.len(),
        v.backwards_commits.len(),
        v.commits_past_end.len(),
        report.heal.map_or("none in time".to_string(), |h| format!(
            "{} ms",
            h.as_millis()
        )),
    );
    println!();
    if v.windows.is_empty() {
        println!(
            "no stretch without acknowledgements over {} ms",
            args.window_ms
        );
    } else {
        println!(
            "stretches without any acknowledgement over {} ms:",
            args.window_ms
        );
        for w in &v.windows {
            let cause = report
                .faults
                .iter()
                .rev()
                .find(|f| f.at <= w.to)
                .map_or(String::new(), |f| {
                    format!("{}, held {:.1} s", f.what, f.held.as_secs_f64())
                });
            println!(
                "  +{:.1} s .. +{:.1} s: {} ms (last fault begun: {cause})",
                w.from.as_secs_f64(),
                w.to.as_secs_f64(),
                w.length().as_millis()
            );
        }
    }
    let show = |name: &str, items: Vec<String>| {
        if !items.is_empty() {
            println!(
                "VIOLATION {name} ({}): {}",
                items.len(),
                items
                    .iter()
                    .take(10)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
    };
    show(
        "acknowledged and lost",
        v.lost
            .iter()
            .map(|a| format!("{} at {TOPIC}-{}@{}", a.value, a.partition, a.offset))
            .collect(),
    );
    show(
        "acknowledged at another offset",
        v.moved
            .iter()
            .map(|(a, o)| {
                format!(
                    "{} acked at {}@{}, stored at {o}",
                    a.value, a.partition, a.offset
                )
            })
            .collect(),
    );
    show(
        "stored twice",
        v.duplicated
            .iter()
            .map(|(value, n)| format!("{value} x{n}"))
            .collect(),
    );
    show(
        "stored but never sent",
        v.unknown
            .iter()
            .map(|(p, o, value)| format!("{value} at {p}@{o}"))
            .collect(),
    );
    show(
        "holes in offsets",
        v.gaps
            .iter()
            .map(|(p, want, got)| format!("{TOPIC}-{p}: {got} after {want}"))
            .collect(),
    );
    show(
        "read, then not in the log",
        v.dirty_reads
            .iter()
            .map(|(s, now)| {
                format!(
                    "{} read at {}@{}, now {now:?}",
                    s.value, s.partition, s.offset
                )
            })
            .collect(),
    );
    show(
        "committed offset went backwards",
        v.backwards_commits
            .iter()
            .map(|(p, a, b)| format!("{TOPIC}-{p}: {a} then {b}"))
            .collect(),
    );
    show(
        "committed past the log end",
        v.commits_past_end
            .iter()
            .map(|(p, c, end)| format!("{TOPIC}-{p}: {c} > {end}"))
            .collect(),
    );
    if report.heal.is_none() {
        println!(
            "VIOLATION no write acknowledged within {} s of the heal",
            args.heal_within
        );
    }
    println!("{}", if report.passed() { "PASS" } else { "FAIL" });
}
