//! The workload: client processes (turmoil client hosts) that use the real
//! `raftline::client` over the simulated network and record every
//! operation in the [`History`].
//!
//! - `admin` creates the topics, then, during the faults, creates another
//!   topic and adds a partition to one.
//! - `p1`..`pN`: idempotent acks=all producers sending unique values to
//!   random topics until the heal time; now and then one too large for its
//!   topic (a definite failure: it must never be read).
//! - `c-<topic>`: one consumer per initial topic, a fixed assignment of all
//!   its partitions, reading from offset 0 and recording every fetch with
//!   its high watermark.
//! - `final`: after the heal, writes to every partition (liveness), reads
//!   every partition whole, checks that the in-sync replicas hold the same
//!   log below the high watermark and that every node converges on the
//!   same metadata.

use crate::cluster::{host, Probes, CLIENT_PORT, EPOCH_MS};
use crate::faults::HEAL_MS;
use crate::history::{now_ms, History, Op};
use crate::net::SimConnector;
use bytes::Bytes;
use prost::Message as _;
use raftline::client::{
    decode_batches, encode_batch, Acks, Client, ClientConfig, ClientError, GroupConfig,
    GroupConsumer, Producer, ProducerRecord, ProducerStamp, TopicPartition,
};
use raftline_proto::pb;
use raftline_proto::pb::admin_client::AdminClient;
use raftline_proto::transport::Connector;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How long after the heal every partition must take a write again.
pub const LIVENESS_BOUND: Duration = Duration::from_secs(30);
/// The topic a too-large value goes to, and its limit.
const SMALL_TOPIC: &str = "t1";
const SMALL_TOPIC_MAX_BYTES: usize = 4096;

/// A topic the workload uses.
#[derive(Clone, Debug)]
pub struct TopicSpec {
    /// Its name.
    pub name: String,
    /// Partitions at creation.
    pub partitions: u32,
    /// Replication factor.
    pub replication_factor: u32,
}

/// What the workload does.
#[derive(Clone, Debug)]
pub struct WorkloadSpec {
    /// Topics created before the faults (t0 and t1).
    pub topics: Vec<TopicSpec>,
    /// Created during the faults, at `admin_at_ms`.
    pub late_topic: TopicSpec,
    /// When the admin changes happen (simulated ms).
    pub admin_at_ms: u64,
    /// How many producers.
    pub producers: usize,
    /// Members of consumer group `gc` on t0 (0: no group clients).
    pub group_members: usize,
    /// The seed for the clients' own choices.
    pub seed: u64,
}

/// Shared between the clients and the driver.
#[derive(Clone, Default)]
pub struct Shared {
    /// Set by `final` when it is done: consumers stop.
    pub done: Arc<AtomicBool>,
    /// Violations found by `final`'s audits.
    pub violations: Arc<Mutex<Vec<String>>>,
    /// Producers still running (a send in flight at the heal may still be
    /// acknowledged after it): the final reads wait for them.
    pub producers_running: Arc<std::sync::atomic::AtomicUsize>,
    /// The highest offset of each partition whose commit group `gc`'s
    /// coordinator acknowledged.
    pub acked_commits: Arc<Mutex<BTreeMap<TopicPartition, u64>>>,
}

impl Shared {
    fn violation(&self, v: String) {
        tracing::error!("{v}");
        self.violations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(v);
    }
}

fn config(servers: &str) -> ClientConfig {
    let mut config = ClientConfig::new(servers);
    config.connector = Some(Arc::new(SimConnector::default()));
    config.request_timeout = Duration::from_secs(2);
    config.connect_timeout = Duration::from_secs(1);
    config.delivery_timeout = Duration::from_secs(10);
    config
}

/// `attempt` until it succeeds or `deadline` has passed (then its last
/// error), `every` apart in simulated time.
async fn retry<T, E, Fut>(
    deadline: Instant,
    every: Duration,
    mut attempt: impl FnMut() -> Fut,
) -> Result<T, E>
where
    Fut: std::future::Future<Output = Result<T, E>>,
{
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

/// Between a client's failed call and the next.
const RETRY: Duration = Duration::from_millis(100);

/// A client of the simulated cluster (retried while it starts).
pub async fn connect(servers: &str) -> Result<Client, ClientError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    retry(deadline, Duration::from_millis(200), || {
        Client::connect(config(servers))
    })
    .await
}

/// The value's identity (a too-large value carries padding after `#`).
pub fn identity(value: &[u8]) -> String {
    let s = String::from_utf8_lossy(value);
    s.split('#').next().unwrap_or_default().to_string()
}

/// One admin call to any node, retried on transient failures until
/// `deadline`; the result as text ("ok" or the error's message).
async fn admin_call<F, Fut>(nodes: usize, deadline: Instant, mut call: F) -> String
where
    F: FnMut(AdminClient<tonic::transport::Channel>) -> Fut,
    Fut: std::future::Future<Output = Result<(), tonic::Status>>,
{
    let mut k = 0;
    loop {
        k += 1;
        let addr = format!("{}:{CLIENT_PORT}", host(1 + k % nodes));
        let result = match SimConnector::default().channel(&addr) {
            Ok(channel) => {
                let admin = AdminClient::new(channel);
                tokio::time::timeout(Duration::from_secs(3), call(admin))
                    .await
                    .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded("no answer")))
            }
            Err(e) => Err(tonic::Status::unavailable(e.to_string())),
        };
        match result {
            Ok(()) => return "ok".into(),
            Err(s) => {
                // The typed code: a topic that exists, or a partition count
                // already reached, is an answer; anything else (no quorum,
                // not enough live brokers yet) is worth another try.
                let code = pb::Error::decode(s.details())
                    .ok()
                    .and_then(|e| pb::ErrorCode::try_from(e.code).ok());
                let settled = matches!(
                    code,
                    Some(pb::ErrorCode::TopicAlreadyExists | pb::ErrorCode::InvalidPartitions)
                );
                if settled || Instant::now() >= deadline {
                    return format!("{code:?}: {}", s.message());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Creates `spec` through any node: "ok", or why not.
pub async fn create_topic(nodes: usize, deadline: Instant, spec: &TopicSpec) -> String {
    let mut configs = BTreeMap::new();
    if spec.name == SMALL_TOPIC {
        configs.insert(
            "max.message.bytes".to_string(),
            SMALL_TOPIC_MAX_BYTES.to_string(),
        );
    }
    create_topic_with(nodes, deadline, spec, &configs).await
}

/// Creates `spec` with topic `configs` through any node: "ok", or why not.
pub async fn create_topic_with(
    nodes: usize,
    deadline: Instant,
    spec: &TopicSpec,
    configs: &BTreeMap<String, String>,
) -> String {
    admin_call(nodes, deadline, |mut admin| {
        let request = pb::CreateTopicRequest {
            name: spec.name.clone(),
            partitions: spec.partitions,
            replication_factor: spec.replication_factor,
            configs: configs.clone(),
        };
        async move { admin.create_topic(request).await.map(|_| ()) }
    })
    .await
}

/// Deletes topic `name` through any node: "ok", or why not.
pub async fn delete_topic(nodes: usize, deadline: Instant, name: &str) -> String {
    admin_call(nodes, deadline, |mut admin| {
        let request = pb::DeleteTopicRequest {
            name: name.to_string(),
        };
        async move { admin.delete_topic(request).await.map(|_| ()) }
    })
    .await
}

/// `admin`: the topics first, then the changes during the faults.
pub async fn admin(spec: WorkloadSpec, nodes: usize, history: History) -> turmoil::Result {
    for topic in &spec.topics {
        let deadline = Instant::now() + Duration::from_secs(60);
        let result = create_topic(nodes, deadline, topic).await;
        history.record(
            "admin",
            Op::Admin {
                what: format!("create {}", topic.name),
                result: result.clone(),
            },
        );
        if result != "ok" {
            return Err(format!("creating {}: {result}", topic.name).into());
        }
    }
    tokio::time::sleep(Duration::from_millis(
        spec.admin_at_ms.saturating_sub(now_ms()),
    ))
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let result = create_topic(nodes, deadline, &spec.late_topic).await;
    history.record(
        "admin",
        Op::Admin {
            what: format!("create {}", spec.late_topic.name),
            result,
        },
    );
    let grown = spec.topics[0].clone();
    let result = admin_call(nodes, deadline, |mut admin| {
        let request = pb::CreatePartitionsRequest {
            topic: grown.name.clone(),
            total_count: grown.partitions + 1,
        };
        async move { admin.create_partitions(request).await.map(|_| ()) }
    })
    .await;
    history.record(
        "admin",
        Op::Admin {
            what: format!("partitions {} -> {}", grown.name, grown.partitions + 1),
            result,
        },
    );
    Ok(())
}

/// Producer `index`: unique values to random topics until the heal.
pub async fn producer(
    spec: WorkloadSpec,
    index: usize,
    servers: String,
    history: History,
    shared: Shared,
) -> turmoil::Result {
    shared.producers_running.fetch_add(1, Ordering::SeqCst);
    let result = produce_until_heal(spec, index, servers, history).await;
    shared.producers_running.fetch_sub(1, Ordering::SeqCst);
    result
}

async fn produce_until_heal(
    spec: WorkloadSpec,
    index: usize,
    servers: String,
    history: History,
) -> turmoil::Result {
    let name = format!("p{index}");
    let mut rng = StdRng::seed_from_u64(spec.seed ^ (index as u64).wrapping_mul(0x9e37_79b9));
    let client = connect(&servers).await?;
    let topics: Vec<String> = spec
        .topics
        .iter()
        .chain(std::iter::once(&spec.late_topic))
        .map(|t| t.name.clone())
        .collect();
    let mut producers: BTreeMap<String, (Producer, u32)> = BTreeMap::new();
    let mut n = 0u64;
    while now_ms() < HEAL_MS {
        tokio::time::sleep(Duration::from_millis(rng.random_range(5..40))).await;
        let topic = topics[rng.random_range(0..topics.len())].clone();
        if !producers.contains_key(&topic) {
            match Producer::new(client.clone(), &topic, Acks::All).await {
                Ok(p) => {
                    producers.insert(topic.clone(), (p, 0));
                }
                // Not created yet, or unreachable metadata: another time.
                Err(_) => continue,
            }
        }
        let Some((producer, sent)) = producers.get_mut(&topic) else {
            continue;
        };
        n += 1;
        let id = format!("{name}-{n}");
        let mut value = id.clone();
        if topic == SMALL_TOPIC && rng.random_ratio(1, 50) {
            value.push_str(&"#".repeat(SMALL_TOPIC_MAX_BYTES * 2));
        }
        history.record(
            &name,
            Op::SendInvoke {
                topic: topic.clone(),
                value: id.clone(),
            },
        );
        let record = ProducerRecord {
            key: Some(Bytes::from(id.clone())),
            value: Some(Bytes::from(value)),
            timestamp: EPOCH_MS + now_ms() as i64,
        };
        let op = match producer.send(vec![record]).await {
            Ok(sent) => match sent.first().and_then(|s| s.base_offset.map(|o| (s, o))) {
                Some((s, offset)) => Op::SendOk {
                    topic: topic.clone(),
                    partition: s.partition,
                    offset,
                    value: id,
                },
                None => Op::SendInfo {
                    topic: topic.clone(),
                    value: id,
                    error: "no offset in the acknowledgement".into(),
                },
            },
            Err(e) => {
                let definite = matches!(e.code(), Some(pb::ErrorCode::RecordTooLarge));
                if definite {
                    Op::SendFail {
                        topic: topic.clone(),
                        value: id,
                        error: e.to_string(),
                    }
                } else {
                    Op::SendInfo {
                        topic: topic.clone(),
                        value: id,
                        error: e.to_string(),
                    }
                }
            }
        };
        let failed = !matches!(op, Op::SendOk { .. });
        history.record(&name, op);
        *sent += 1;
        // After a failure, and now and then (to see added partitions),
        // start over with a fresh producer.
        if failed || *sent >= 100 {
            producers.remove(&topic);
        }
    }
    Ok(())
}

/// The consumer of `topic`: every partition it had at creation, from 0.
pub async fn consumer(
    topic: TopicSpec,
    servers: String,
    history: History,
    shared: Shared,
) -> turmoil::Result {
    let client = connect(&servers).await?;
    let name = format!("c-{}", topic.name);
    let loops = (0..topic.partitions).map(|p| {
        let (client, history, shared, topic, name) = (
            client.clone(),
            history.clone(),
            shared.clone(),
            topic.name.clone(),
            name.clone(),
        );
        async move {
            let mut offset = 0u64;
            while !shared.done.load(Ordering::Relaxed) {
                let fetched = client
                    .fetch(&topic, p, offset, Duration::from_millis(500), 1 << 20)
                    .await;
                let Ok(result) = fetched else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                if result.error.is_some() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                let records = match decode_batches(&topic, p, result.records, offset) {
                    Ok(r) => r,
                    Err(e) => {
                        shared.violation(format!("{name}: {topic}/{p} from {offset}: {e}"));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let records: Vec<(u64, String)> = records
                    .iter()
                    .map(|r| (r.offset, identity(r.value.as_deref().unwrap_or_default())))
                    .collect();
                history.record(
                    &name,
                    Op::Poll {
                        topic: topic.clone(),
                        partition: p,
                        from: offset,
                        records: records.clone(),
                        high_watermark: result.high_watermark,
                    },
                );
                if let Some((last, _)) = records.last() {
                    offset = last + 1;
                }
            }
        }
    });
    futures_util::future::join_all(loops).await;
    Ok(())
}

/// The consumer group the group clients join.
pub const GROUP: &str = "gc";

/// Group member `g{k}`: reads t0 as a member of [`GROUP`], committing after
/// every poll and recording each acknowledged commit. It crashes once (its
/// consumer dropped without leaving, at `crash_ms`) and comes back a second
/// later as a new member.
pub async fn group_member(
    k: usize,
    crash_ms: u64,
    servers: String,
    shared: Shared,
) -> turmoil::Result {
    let client = retry(Instant::now() + Duration::from_secs(60), RETRY, || {
        connect(&servers)
    })
    .await?;
    let mut incarnation = 0;
    'member: while !shared.done.load(Ordering::Relaxed) {
        let mut config = GroupConfig::new(GROUP, &["t0"]);
        config.member_id = Some(format!("g{k}-{incarnation}"));
        config.auto_commit = None;
        let mut consumer = match GroupConsumer::join(client.clone(), config).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(member = k, error = %e, "join failed; again");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        while !shared.done.load(Ordering::Relaxed) {
            if incarnation == 0 && now_ms() >= crash_ms {
                // A crash: no commit, no goodbye.
                drop(consumer);
                tokio::time::sleep(Duration::from_secs(1)).await;
                incarnation += 1;
                continue 'member;
            }
            match consumer.poll(Duration::from_millis(200)).await {
                Ok(records) if records.is_empty() => {}
                Ok(_) => {
                    if consumer.commit().await.is_ok() {
                        let mut acked = shared
                            .acked_commits
                            .lock()
                            .unwrap_or_else(|p| p.into_inner());
                        for (tp, &offset) in consumer.committed() {
                            let max = acked.entry(tp.clone()).or_default();
                            *max = (*max).max(offset);
                        }
                    }
                }
                Err(e) if e.retriable() => tokio::time::sleep(RETRY).await,
                Err(e) => {
                    tracing::info!(member = k, error = %e, "the member failed; rejoining");
                    incarnation += 1;
                    continue 'member;
                }
            }
        }
    }
    Ok(())
}

/// Watches [`GROUP`]'s committed offsets: they never go back; once the
/// clients are done, none is below a commit the coordinator acknowledged.
pub async fn group_watcher(servers: String, shared: Shared) -> turmoil::Result {
    let client = retry(Instant::now() + Duration::from_secs(60), RETRY, || {
        connect(&servers)
    })
    .await?;
    let mut seen: BTreeMap<TopicPartition, u64> = BTreeMap::new();
    let mut check = |now: BTreeMap<TopicPartition, u64>, shared: &Shared| {
        for (tp, &offset) in &now {
            let before = seen.entry(tp.clone()).or_default();
            if offset < *before {
                shared.violation(format!(
                    "group {GROUP}: committed offset of {}/{} went back from {before} to {offset}",
                    tp.topic, tp.partition
                ));
            }
            *before = (*before).max(offset);
        }
        now
    };
    while !shared.done.load(Ordering::Relaxed) {
        if let Ok(now) = client.committed_offsets(GROUP).await {
            check(now, &shared);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let last = retry(Instant::now() + LIVENESS_BOUND, RETRY, || {
        client.committed_offsets(GROUP)
    })
    .await;
    match last {
        Ok(now) => {
            let now = check(now, &shared);
            let acked = shared
                .acked_commits
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if acked.is_empty() {
                shared.violation(format!("group {GROUP}: no commit was ever acknowledged"));
            }
            for (tp, offset) in acked {
                let stored = now.get(&tp).copied().unwrap_or(0);
                if stored < offset {
                    shared.violation(format!("group {GROUP}: lost commit: {}/{} acknowledged at {offset}, stored {stored}", tp.topic, tp.partition));
                }
            }
        }
        Err(e) => shared.violation(format!(
            "group {GROUP}: committed offsets unreadable after the heal: {e}"
        )),
    }
    Ok(())
}

/// After the heal: liveness, the final reads and the replica audits.
pub async fn final_phase(
    spec: WorkloadSpec,
    servers: String,
    history: History,
    shared: Shared,
    probes: Probes,
) -> turmoil::Result {
    tokio::time::sleep(Duration::from_millis(HEAL_MS.saturating_sub(now_ms()))).await;
    let result = final_checks(&spec, &servers, &history, &shared, &probes).await;
    shared.done.store(true, Ordering::Relaxed);
    result
}

async fn final_checks(
    spec: &WorkloadSpec,
    servers: &str,
    history: &History,
    shared: &Shared,
    probes: &Probes,
) -> turmoil::Result {
    let live_by = Instant::now() + LIVENESS_BOUND;
    let client = connect(servers).await?;
    let (producer_id, producer_epoch) =
        match retry(live_by, RETRY, || client.init_producer_id()).await {
            Ok(id) => id,
            Err(e) => {
                shared.violation(format!(
                    "no producer id {LIVENESS_BOUND:?} after the heal: {e}"
                ));
                return Ok(());
            }
        };
    // Every partition of every topic there is (none of a topic never created).
    let mut tps = Vec::new();
    for topic in spec.topics.iter().chain(std::iter::once(&spec.late_topic)) {
        let partitions = retry(live_by, RETRY, || async {
            match client.partitions(&topic.name).await {
                Ok(p) => Ok(p.len() as u32),
                Err(ClientError::Server {
                    code: pb::ErrorCode::UnknownTopicOrPartition,
                    ..
                }) => Ok(0),
                Err(e) => Err(e),
            }
        })
        .await
        .unwrap_or(0);
        tps.extend((0..partitions).map(|p| (topic.name.clone(), p)));
    }
    // Liveness: one write to each, within the bound.
    for (topic, p) in &tps {
        let value = format!("live-{topic}-{p}");
        let record = ProducerRecord {
            key: Some(Bytes::from(value.clone())),
            value: Some(Bytes::from(value.clone())),
            timestamp: EPOCH_MS + now_ms() as i64,
        };
        let stamp = ProducerStamp {
            producer_id,
            producer_epoch,
            base_sequence: 0,
        };
        let batch = encode_batch(&[record], Some(stamp))?;
        history.record(
            "final",
            Op::SendInvoke {
                topic: topic.clone(),
                value: value.clone(),
            },
        );
        let outcome = retry(live_by, RETRY, || {
            client.produce(topic, *p, batch.clone(), Acks::All)
        })
        .await;
        match outcome
            .map_err(|e| e.to_string())
            .and_then(|o| o.ok_or("no offset".to_string()))
        {
            Ok(offset) => {
                history.record(
                    "final",
                    Op::SendOk {
                        topic: topic.clone(),
                        partition: *p,
                        offset,
                        value,
                    },
                );
                history.record(
                    "final",
                    Op::Live {
                        topic: topic.clone(),
                        partition: *p,
                    },
                );
            }
            Err(error) => {
                history.record(
                    "final",
                    Op::SendInfo {
                        topic: topic.clone(),
                        value,
                        error: error.clone(),
                    },
                );
                shared.violation(format!(
                    "liveness: {topic}/{p} took no write within {LIVENESS_BOUND:?} of the heal: {error}; metadata: {}",
                    describe_metadata(probes, topic, *p)
                ));
            }
        }
    }
    // The final reads come after every producer's last send has an answer:
    // one acknowledged after a read would look lost to the checker.
    let settled_by = Instant::now() + Duration::from_secs(30);
    while shared.producers_running.load(Ordering::SeqCst) > 0 && Instant::now() < settled_by {
        tokio::time::sleep(RETRY).await;
    }
    // The final reads: each partition whole.
    for (topic, p) in &tps {
        match read_all(&client, topic, *p).await {
            Ok(records) => history.record(
                "final",
                Op::FinalRead {
                    topic: topic.clone(),
                    partition: *p,
                    records,
                },
            ),
            Err(e) => shared.violation(format!("final read of {topic}/{p}: {e}")),
        }
    }
    audit_replicas(&tps, probes, shared).await;
    audit_metadata(probes, shared).await;
    Ok(())
}

/// Every record of `topic`/`p` from its start to its high watermark.
async fn read_all(client: &Client, topic: &str, p: u32) -> Result<Vec<(u64, String)>, ClientError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    let mut offset = retry(deadline, RETRY, || client.list_offset(topic, p, -2))
        .await?
        .unwrap_or(0);
    loop {
        let result = retry(deadline, RETRY, || {
            client.fetch(topic, p, offset, Duration::from_millis(0), 1 << 20)
        })
        .await?;
        let hw = result.high_watermark;
        let records = decode_batches(topic, p, result.records, offset)?;
        for r in &records {
            out.push((r.offset, identity(r.value.as_deref().unwrap_or_default())));
        }
        if let Some(r) = records.last() {
            offset = r.offset + 1;
        }
        if offset >= hw {
            return Ok(out);
        }
        if records.is_empty() && Instant::now() >= deadline {
            return Err(ClientError::Transport(format!(
                "stuck at {offset} below the high watermark {hw}"
            )));
        }
    }
}

/// Invariant 4: every in-sync replica holds the same bytes below the high
/// watermark (once the followers have caught up after the heal).
async fn audit_replicas(tps: &[(String, u32)], probes: &Probes, shared: &Shared) {
    for (topic, p) in tps {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let replicas: Vec<(usize, _)> = probes.replicas_of(topic, *p).into_iter().collect();
            let leader = replicas.iter().find(|(_, x)| x.progress().leader);
            let Some((_, leader)) = leader else {
                if Instant::now() >= deadline {
                    shared.violation(format!("audit: {topic}/{p} has no leader"));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let hw = leader.progress().high_watermark;
            let caught_up = replicas
                .iter()
                .all(|(_, x)| x.progress().high_watermark == hw);
            if !caught_up {
                if Instant::now() >= deadline {
                    let seen: Vec<_> = replicas
                        .iter()
                        .map(|(i, x)| {
                            let p = x.progress();
                            format!(
                                "n{i}: hw {} end {} epoch {}{}",
                                p.high_watermark.0,
                                p.log_end.0,
                                p.leader_epoch.0,
                                if p.leader { " leader" } else { "" }
                            )
                        })
                        .collect();
                    shared.violation(format!(
                        "audit: {topic}/{p} replicas never agreed on the high watermark {}: {seen:?}",
                        hw.0
                    ));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let mut logs: Vec<(usize, Result<Vec<u8>, String>)> = Vec::new();
            for (i, x) in &replicas {
                logs.push((*i, read_log(x, hw).await));
            }
            let reference = &logs[0];
            for (i, log) in &logs[1..] {
                if *log != reference.1 {
                    let describe = |l: &Result<Vec<u8>, String>| match l {
                        Ok(b) => format!("{} bytes", b.len()),
                        Err(e) => e.clone(),
                    };
                    shared.violation(format!(
                        "audit: {topic}/{p} below the high watermark {}: node {} has {}, node {i} has {}",
                        hw.0,
                        reference.0,
                        describe(&reference.1),
                        describe(log)
                    ));
                }
            }
            break;
        }
    }
}

/// The log's bytes from its start up to `hw`.
async fn read_log(
    partition: &raftline_broker::replica::Partition,
    hw: raftline_broker::position::Offset,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut from = partition.progress().log_start;
    while from < hw {
        let read = partition
            .log()
            .read(from, 1 << 20, hw)
            .await
            .map_err(|e| e.to_string())?;
        if read.records.is_empty() || read.next_offset <= from {
            return Err(format!("read stopped at {} below {}", from.0, hw.0));
        }
        out.extend_from_slice(&read.records);
        from = read.next_offset;
    }
    Ok(out)
}

/// Invariant 7: every running node converges on one metadata version.
async fn audit_metadata(probes: &Probes, shared: &Shared) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let versions: BTreeMap<usize, u64> = probes
            .running()
            .into_iter()
            .map(|(i, probe)| (i, probe.replicas.link().metadata.version()))
            .collect();
        let mut distinct: Vec<u64> = versions.values().copied().collect();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() <= 1 {
            return;
        }
        if Instant::now() >= deadline {
            shared.violation(format!("metadata versions never converged: {versions:?}"));
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How every running node's metadata sees `topic`/`p` (for failure messages).
fn describe_metadata(probes: &Probes, topic: &str, p: u32) -> String {
    probes
        .running()
        .into_iter()
        .map(|(i, probe)| {
            let link = probe.replicas.link();
            let info = link
                .metadata
                .topic(topic)
                .and_then(|t| t.partitions.get(&p).cloned());
            let local = probes
                .replicas_of(topic, p)
                .get(&i)
                .map(|x| x.progress());
            let fenced: Vec<u32> = link
                .metadata
                .brokers()
                .values()
                .filter(|b| b.fenced)
                .map(|b| b.id.0)
                .collect();
            format!(
                "n{i} (metadata version {}, raft leader {:?}, fenced brokers {fenced:?}, link fenced {}): {info:?}, replica {local:?}",
                link.metadata.version(),
                probe.controller.leader(),
                link.fenced
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}
