//! The admin commands: topics and the cluster view, over the Admin gRPC API of
//! any node (writes are forwarded to the controller leader by the server).

use crate::table::print_rows;
use crate::Output;
use anyhow::{anyhow, bail, Result};
use prost::Message;
use raftline_proto::pb;
use raftline_proto::pb::admin_client::AdminClient;
use serde_json::json;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// Connects to the first of `servers` (comma-separated `host:port`) that answers.
pub async fn connect(servers: &str) -> Result<AdminClient<Channel>> {
    Ok(AdminClient::new(connect_channel(servers).await?))
}

/// A channel to the first of `servers` that answers.
pub async fn connect_channel(servers: &str) -> Result<Channel> {
    let mut last = None;
    for server in servers.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let endpoint = Endpoint::from_shared(format!("http://{server}"))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(15));
        match endpoint.connect().await {
            Ok(channel) => return Ok(channel),
            Err(e) => last = Some(format!("{server}: {e}")),
        }
    }
    bail!(
        "cannot reach any node at {servers} ({}). Is the cluster up? Start it with `scripts/cluster.sh up`, or pass --bootstrap-server host:port",
        last.unwrap_or_else(|| "no address given".into())
    )
}

/// How long an admin call rides out a controller election or a busy quorum.
const ADMIN_RETRY_FOR: Duration = Duration::from_secs(15);

/// Whether `status` says "try again shortly": no controller leads right now,
/// the quorum did not answer in time, or the node was unreachable.
fn transient(status: &tonic::Status) -> bool {
    match pb::Error::decode(status.details()) {
        Ok(e) if e.code != 0 => matches!(
            pb::ErrorCode::try_from(e.code),
            Ok(pb::ErrorCode::NotController | pb::ErrorCode::RequestTimedOut)
        ),
        _ => status.code() == tonic::Code::Unavailable,
    }
}

/// Runs an admin call, retrying transient failures for [`ADMIN_RETRY_FOR`].
async fn retrying<T, F, Fut>(mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let give_up = tokio::time::Instant::now() + ADMIN_RETRY_FOR;
    loop {
        match call().await {
            Ok(reply) => return Ok(reply.into_inner()),
            Err(status) if transient(&status) && tokio::time::Instant::now() < give_up => {
                tracing::debug!(%status, "admin call failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(status) => return Err(explain(status)),
        }
    }
}

/// A status as a readable error: the typed code first when the server sent one.
pub fn explain(status: tonic::Status) -> anyhow::Error {
    match pb::Error::decode(status.details()) {
        Ok(e) => {
            let code = pb::ErrorCode::try_from(e.code)
                .map(|c| c.as_str_name())
                .unwrap_or("UNKNOWN_ERROR");
            anyhow!("{code}: {}", e.message)
        }
        Err(_) => anyhow!("{}: {}", status.code(), status.message()),
    }
}

/// Each partition's log start and high watermark, from its leader; `None`
/// where the leader did not answer (offline, or failing over).
pub type Offsets = BTreeMap<(String, u32), (Option<u64>, Option<u64>)>;

/// Every partition's log start and high watermark, as its leader reports
/// them through any broker's DescribeTopics.
pub async fn partition_offsets(servers: &str, names: Vec<String>) -> Offsets {
    let Ok(channel) = connect_channel(servers).await else {
        return Offsets::new();
    };
    let mut broker = pb::broker_client::BrokerClient::new(channel);
    let Ok(reply) = broker
        .describe_topics(pb::DescribeTopicsRequest { topics: names })
        .await
    else {
        return Offsets::new();
    };
    reply
        .into_inner()
        .topics
        .into_iter()
        .flat_map(|t| {
            let name = t.name;
            t.partitions
                .into_iter()
                .map(move |p| ((name.clone(), p.index), (p.log_start, p.high_watermark)))
        })
        .collect()
}

fn topic_json(t: &pb::TopicDescription, offsets: &Offsets) -> serde_json::Value {
    json!({
        "name": t.name,
        "id": t.id,
        "configs": t.configs,
        "partitions": t.partitions.iter().map(|p| {
            let (start, hw) = offsets.get(&(t.name.clone(), p.index)).copied().unwrap_or((None, None));
            json!({
                "partition": p.index,
                "leader": p.leader,
                "leader_epoch": p.leader_epoch,
                "replicas": p.replicas,
                "isr": p.isr,
                "elr": p.elr,
                "log_start": start,
                "high_watermark": hw,
            })
        }).collect::<Vec<_>>(),
    })
}

fn offset_cell(o: Option<u64>) -> String {
    o.map_or("-".into(), |o| o.to_string())
}

fn ids(v: &[u32]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

fn print_topic(t: &pb::TopicDescription, offsets: &Offsets) {
    let configs: Vec<String> = t.configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!(
        "Topic: {}  TopicId: {}  Partitions: {}  ReplicationFactor: {}  Configs: {}",
        t.name,
        t.id,
        t.partitions.len(),
        t.partitions.first().map_or(0, |p| p.replicas.len()),
        if configs.is_empty() {
            "-".to_string()
        } else {
            configs.join(",")
        }
    );
    let rows: Vec<[String; 8]> = t
        .partitions
        .iter()
        .map(|p| {
            let (start, hw) = offsets
                .get(&(t.name.clone(), p.index))
                .copied()
                .unwrap_or((None, None));
            [
                p.index.to_string(),
                p.leader.map_or("none (offline)".into(), |l| l.to_string()),
                p.leader_epoch.to_string(),
                ids(&p.replicas),
                ids(&p.isr),
                ids(&p.elr),
                offset_cell(start),
                offset_cell(hw),
            ]
        })
        .collect();
    print_rows(
        [
            "PARTITION",
            "LEADER",
            "EPOCH",
            "REPLICAS",
            "ISR",
            "ELR",
            "LOG_START",
            "HIGH_WATERMARK",
        ],
        &rows,
    );
}

/// `topic create`.
pub async fn create_topic(
    admin: &mut AdminClient<Channel>,
    name: String,
    partitions: u32,
    replication_factor: u32,
    configs: BTreeMap<String, String>,
    output: Output,
) -> Result<()> {
    let request = pb::CreateTopicRequest {
        name,
        partitions,
        replication_factor,
        configs,
    };
    change_topic(
        admin,
        request,
        |mut admin, r| async move { admin.create_topic(r).await },
        "Created",
        output,
    )
    .await
}

/// `topic alter`: sets `set` and returns `delete` to their defaults, in
/// one change.
pub async fn alter_topic_configs(
    admin: &mut AdminClient<Channel>,
    topic: String,
    set: BTreeMap<String, String>,
    delete: Vec<String>,
    output: Output,
) -> Result<()> {
    if set.is_empty() && delete.is_empty() {
        bail!(
            "nothing to change for topic {topic}: give --config KEY=VALUE to set a config or --delete-config KEY to return one to its default"
        );
    }
    let request = pb::AlterTopicConfigsRequest { topic, set, delete };
    change_topic(
        admin,
        request,
        |mut admin, r| async move { admin.alter_topic_configs(r).await },
        "Altered",
        output,
    )
    .await
}

/// `topic add-partitions`: grows `topic` to `total` partitions.
pub async fn add_partitions(
    admin: &mut AdminClient<Channel>,
    topic: String,
    total: u32,
    output: Output,
) -> Result<()> {
    let request = pb::CreatePartitionsRequest {
        topic,
        total_count: total,
    };
    change_topic(
        admin,
        request,
        |mut admin, r| async move { admin.create_partitions(r).await },
        "Grew",
        output,
    )
    .await
}

/// A topic change: `call` with `request` (retried while the failure is
/// transient), then "`done` topic NAME." and the topic's table, or its JSON.
async fn change_topic<R, F, Fut>(
    admin: &AdminClient<Channel>,
    request: R,
    call: F,
    done: &str,
    output: Output,
) -> Result<()>
where
    R: Clone,
    F: Fn(AdminClient<Channel>, R) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<pb::TopicDescription>, tonic::Status>>,
{
    let topic = retrying(|| call(admin.clone(), request.clone())).await?;
    let offsets = Offsets::new();
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&topic_json(&topic, &offsets))?
        ),
        Output::Table => {
            println!("{done} topic {}.", topic.name);
            print_topic(&topic, &offsets);
        }
    }
    Ok(())
}

/// `topic list` and `topic describe` (which also asks each partition's
/// leader for its log start and high watermark).
pub async fn list_topics(
    admin: &mut AdminClient<Channel>,
    servers: &str,
    names: Vec<String>,
    describe: bool,
    output: Output,
) -> Result<()> {
    let listed = retrying(|| {
        let mut admin = admin.clone();
        let names = names.clone();
        async move { admin.list_topics(pb::ListTopicsRequest { names }).await }
    })
    .await?;
    // On stderr, so `--output json` stays one document on stdout.
    if !listed.stale.is_empty() {
        eprintln!("Warning: {}", listed.stale);
    }
    let offsets = if describe {
        let names = listed.topics.iter().map(|t| t.name.clone()).collect();
        partition_offsets(servers, names).await
    } else {
        Offsets::new()
    };
    match output {
        Output::Json => {
            let topics: Vec<_> = listed
                .topics
                .iter()
                .map(|t| topic_json(t, &offsets))
                .collect();
            println!("{}", serde_json::to_string_pretty(&topics)?);
        }
        Output::Table if describe => {
            for (i, topic) in listed.topics.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                print_topic(topic, &offsets);
            }
        }
        Output::Table => {
            let rows: Vec<[String; 3]> = listed
                .topics
                .iter()
                .map(|t| {
                    [
                        t.name.clone(),
                        t.partitions.len().to_string(),
                        t.partitions
                            .first()
                            .map_or(0, |p| p.replicas.len())
                            .to_string(),
                    ]
                })
                .collect();
            print_rows(["TOPIC", "PARTITIONS", "REPLICATION_FACTOR"], &rows);
        }
    }
    Ok(())
}

/// `topic delete`.
pub async fn delete_topic(
    admin: &mut AdminClient<Channel>,
    name: String,
    output: Output,
) -> Result<()> {
    retrying(|| {
        let mut admin = admin.clone();
        let name = name.clone();
        async move { admin.delete_topic(pb::DeleteTopicRequest { name }).await }
    })
    .await?;
    match output {
        Output::Json => println!("{}", json!({ "deleted": name })),
        Output::Table => println!("Deleted topic {name}."),
    }
    Ok(())
}

/// `topic elect-leaders`: a preferred (or unclean) election of each
/// partition of `topic` (those in `partitions`, or all; every topic's if
/// `topic` is `None`). Exit status 1 if any partition's election failed
/// (one not needed is no failure).
pub async fn elect_leaders(
    admin: &mut AdminClient<Channel>,
    topic: Option<String>,
    partitions: Vec<u32>,
    unclean: bool,
    output: Output,
) -> Result<ExitCode> {
    let election = if unclean {
        pb::ElectionType::Unclean
    } else {
        pb::ElectionType::Preferred
    };
    let request = pb::ElectLeadersRequest {
        topic: topic.unwrap_or_default(),
        partitions,
        election: election as i32,
    };
    let answer = retrying(|| {
        let mut admin = admin.clone();
        let request = request.clone();
        async move { admin.elect_leaders(request).await }
    })
    .await?;
    let code_of = |e: &pb::Error| {
        pb::ErrorCode::try_from(e.code).map_or("UNKNOWN_ERROR", |c| c.as_str_name())
    };
    let not_needed = pb::ErrorCode::ElectionNotNeeded as i32;
    let failed = answer
        .results
        .iter()
        .filter(|r| r.error.as_ref().is_some_and(|e| e.code != not_needed))
        .count();
    let elected = answer.results.iter().filter(|r| r.error.is_none()).count();
    match output {
        Output::Json => {
            let results: Vec<_> = answer
                .results
                .iter()
                .map(|r| {
                    json!({
                        "topic": r.topic,
                        "partition": r.partition,
                        "leader": r.leader,
                        "error": r.error.as_ref().map(|e| json!({"code": code_of(e), "message": e.message})),
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({ "results": results }))?
            );
        }
        Output::Table => {
            let rows: Vec<[String; 4]> = answer
                .results
                .iter()
                .map(|r| {
                    let result = match &r.error {
                        None => "elected".to_string(),
                        Some(e) => format!("{}: {}", code_of(e), e.message),
                    };
                    [
                        r.topic.clone(),
                        r.partition.to_string(),
                        r.leader.map_or("-".into(), |l| l.to_string()),
                        result,
                    ]
                })
                .collect();
            print_rows(["TOPIC", "PARTITION", "LEADER", "RESULT"], &rows);
            println!(
                "{elected} elected, {} not needed, {failed} failed.",
                answer.results.len() - elected - failed
            );
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `cluster describe`.
pub async fn describe_cluster(admin: &mut AdminClient<Channel>, output: Output) -> Result<()> {
    let view = retrying(|| {
        let mut admin = admin.clone();
        async move { admin.describe_cluster(pb::DescribeClusterRequest {}).await }
    })
    .await?;
    match output {
        Output::Json => {
            let value = json!({
                "metadata_version": view.metadata_version,
                "controller_leader": view.controller_leader,
                "raft_term": view.raft_term,
                "raft_applied_index": view.raft_applied_index,
                "offline_partitions": view.offline_partitions.iter().map(|p| format!("{}-{}", p.topic, p.partition)).collect::<Vec<_>>(),
                "under_replicated_partitions": view.under_replicated_partitions.iter().map(|p| format!("{}-{}", p.topic, p.partition)).collect::<Vec<_>>(),
                "stale": (!view.stale.is_empty()).then_some(&view.stale),
                "controllers": view.controllers.iter().map(|c| json!({"id": c.id, "peer_address": c.peer_address, "voter": c.voter})).collect::<Vec<_>>(),
                "brokers": view.brokers.iter().map(|b| json!({"id": b.id, "epoch": b.epoch, "fenced": b.fenced, "endpoints": b.endpoints, "rack": b.rack})).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        Output::Table => {
            let controllers: Vec<[String; 4]> = view
                .controllers
                .iter()
                .map(|c| {
                    let leader = if view.controller_leader == Some(c.id) {
                        "yes"
                    } else {
                        ""
                    };
                    [
                        c.id.to_string(),
                        c.peer_address.clone(),
                        if c.voter { "voter" } else { "learner" }.into(),
                        leader.into(),
                    ]
                })
                .collect();
            print_rows(
                ["CONTROLLER", "PEER_ADDRESS", "ROLE", "LEADER"],
                &controllers,
            );
            println!();
            let brokers: Vec<[String; 5]> = view
                .brokers
                .iter()
                .map(|b| {
                    let endpoints: Vec<String> = b
                        .endpoints
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    [
                        b.id.to_string(),
                        b.epoch.to_string(),
                        if b.fenced { "fenced" } else { "live" }.into(),
                        endpoints.join(","),
                        b.rack.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            print_rows(["BROKER", "EPOCH", "STATE", "ENDPOINTS", "RACK"], &brokers);
            let names = |v: &[pb::PartitionRef]| {
                if v.is_empty() {
                    "none".to_string()
                } else {
                    v.iter()
                        .map(|p| format!("{}-{}", p.topic, p.partition))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            };
            println!();
            println!(
                "Raft term {}, metadata applied to index {} (version {})",
                view.raft_term, view.raft_applied_index, view.metadata_version
            );
            println!("Offline partitions: {}", names(&view.offline_partitions));
            println!(
                "Under-replicated partitions: {}",
                names(&view.under_replicated_partitions)
            );
            if !view.stale.is_empty() {
                println!();
                println!("Warning: {}", view.stale);
            }
        }
    }
    Ok(())
}
