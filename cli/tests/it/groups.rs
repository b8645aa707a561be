//! Consumer groups over gRPC against three real nodes: coordinator discovery
//! (creating `__consumer_offsets`), members sharing a topic, a member's
//! death, stale commits, and the coordinator's broker killed.

use crate::procs::{wait_for, ProcCluster};
use raftline_proto::pb::{self, groups_client::GroupsClient, ErrorCode};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::runtime::Runtime;

const WITHIN: Duration = Duration::from_secs(30);

/// A well-behaved member: it releases at once what it is no longer given.
struct Member {
    id: String,
    epoch: i32,
    owned: BTreeSet<(String, u32)>,
}

impl Member {
    fn new(id: &str) -> Member {
        Member {
            id: id.into(),
            epoch: 0,
            owned: BTreeSet::new(),
        }
    }

    fn partitions(&self) -> BTreeSet<u32> {
        self.owned.iter().map(|(_, p)| *p).collect()
    }
}

struct Groups {
    rt: Runtime,
    /// Node `i`'s client address at `i - 1`.
    addrs: Vec<String>,
    /// The node believed to coordinate "billing".
    coordinator: String,
}

fn code(error: &Option<pb::Error>) -> Option<ErrorCode> {
    error
        .as_ref()
        .map(|e| ErrorCode::try_from(e.code).unwrap_or(ErrorCode::Unspecified))
}

impl Groups {
    fn client(&self, addr: &str) -> Option<GroupsClient<tonic::transport::Channel>> {
        self.rt
            .block_on(GroupsClient::connect(format!("http://{addr}")))
            .ok()
    }

    /// Asks every live node in turn until one names the coordinator.
    fn find(&mut self, group: &str, live: &[usize]) -> (u32, String) {
        let mut found = None;
        wait_for(&format!("a coordinator for {group}"), WITHIN, || {
            for &i in live {
                let Some(mut c) = self.client(&self.addrs[i - 1]) else {
                    continue;
                };
                let request = pb::FindCoordinatorRequest {
                    group: group.into(),
                };
                match self.rt.block_on(c.find_coordinator(request)) {
                    Ok(r) => {
                        let r = r.into_inner();
                        if r.error.is_none() {
                            found = Some((r.broker_id, r.address));
                            return true;
                        }
                        eprintln!("find {group} at node {i}: {:?}", r.error);
                    }
                    Err(status) => eprintln!("find {group} at node {i}: {status}"),
                }
            }
            false
        });
        let (broker, address) = found.unwrap();
        self.coordinator = address.clone();
        (broker, address)
    }

    fn call<T>(
        &self,
        f: impl AsyncFnOnce(
            GroupsClient<tonic::transport::Channel>,
        ) -> Result<tonic::Response<T>, tonic::Status>,
    ) -> Option<T> {
        let client = self.client(&self.coordinator)?;
        self.rt
            .block_on(f(client))
            .ok()
            .map(tonic::Response::into_inner)
    }

    /// One heartbeat of `m` in group `group`; a member told it is unknown or
    /// fenced rejoins next time.
    fn beat(&self, group: &str, m: &mut Member) -> Option<ErrorCode> {
        let owned: BTreeMap<String, Vec<u32>> =
            m.owned.iter().fold(BTreeMap::new(), |mut acc, (t, p)| {
                acc.entry(t.clone()).or_default().push(*p);
                acc
            });
        let request = pb::GroupHeartbeatRequest {
            group: group.into(),
            member_id: m.id.clone(),
            instance_id: None,
            member_epoch: m.epoch,
            topics: (m.epoch == 0).then(|| pb::TopicList {
                names: vec!["orders".into()],
            }),
            owned: Some(pb::PartitionList {
                topics: owned
                    .into_iter()
                    .map(|(topic, partitions)| pb::TopicPartitions { topic, partitions })
                    .collect(),
            }),
            assignor: String::new(),
        };
        let Some(reply) = self.call(async |mut c| c.heartbeat(request).await) else {
            return Some(ErrorCode::CoordinatorNotAvailable);
        };
        match code(&reply.error) {
            None => {
                m.epoch = reply.member_epoch;
                m.owned = reply
                    .assignment
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|&p| (t.topic.clone(), p)))
                    .collect();
                None
            }
            Some(c @ (ErrorCode::UnknownMemberId | ErrorCode::FencedMemberEpoch)) => {
                m.epoch = 0;
                m.owned.clear();
                Some(c)
            }
            other => other,
        }
    }

    /// Heartbeats `members` until `done` holds.
    fn beat_until(
        &self,
        group: &str,
        members: &mut [&mut Member],
        what: &str,
        done: impl Fn(&[&mut Member]) -> bool,
    ) {
        wait_for(what, WITHIN, || {
            for m in members.iter_mut() {
                self.beat(group, m);
            }
            done(members)
        });
    }

    fn commit(&self, group: &str, m: &Member, epoch: i32, offset: u64) -> Option<ErrorCode> {
        let request = pb::CommitOffsetsRequest {
            group: group.into(),
            member_id: m.id.clone(),
            member_epoch: epoch,
            offsets: m
                .owned
                .iter()
                .map(|(topic, partition)| pb::OffsetEntry {
                    topic: topic.clone(),
                    partition: *partition,
                    offset,
                    metadata: String::new(),
                })
                .collect(),
        };
        let reply = self.call(async |mut c| c.commit_offsets(request).await)?;
        code(&reply.error)
    }

    fn offsets(&self, group: &str) -> Option<BTreeMap<u32, u64>> {
        let request = pb::FetchOffsetsRequest {
            group: group.into(),
            partitions: Vec::new(),
        };
        let reply = self.call(async |mut c| c.fetch_offsets(request).await)?;
        reply.error.is_none().then(|| {
            reply
                .offsets
                .iter()
                .map(|o| (o.partition, o.offset))
                .collect()
        })
    }
}

/// Topic "orders": 6 partitions on all three nodes.
fn create_orders(cluster: &ProcCluster) {
    let args = [
        "topic",
        "create",
        "orders",
        "--partitions",
        "6",
        "--replication-factor",
        "3",
    ];
    cluster.ok(&args);
}

fn shares(members: &[&mut Member], each: usize) -> bool {
    let all: BTreeSet<u32> = members.iter().flat_map(|m| m.partitions()).collect();
    all.len() == 6 && members.iter().all(|m| m.partitions().len() == each)
}

#[test]
fn members_share_partitions_survive_deaths_and_the_coordinator_moves() {
    let mut cluster = ProcCluster::start(3);
    create_orders(&cluster);
    let mut g = Groups {
        rt: Runtime::new().unwrap(),
        addrs: (1..=3).map(|i| cluster.client_addr(i)).collect(),
        coordinator: String::new(),
    };
    let (coordinator, _) = g.find("billing", &[1, 2, 3]);

    // Three members of one group: two partitions each, no partition twice.
    let (mut a, mut b, mut c) = (Member::new("a"), Member::new("b"), Member::new("c"));
    g.beat_until(
        "billing",
        &mut [&mut a, &mut b, &mut c],
        "two partitions each",
        |m| shares(m, 2),
    );

    // Commits: at the member's epoch; an older epoch is refused.
    assert_eq!(g.commit("billing", &a, a.epoch, 5), None);
    assert_eq!(
        g.commit("billing", &a, a.epoch - 1, 9),
        Some(ErrorCode::StaleMemberEpoch)
    );
    assert_eq!(
        g.commit("billing", &Member::new("zombie"), 1, 9),
        Some(ErrorCode::UnknownMemberId)
    );
    let committed = g.offsets("billing").unwrap();
    assert_eq!(
        committed.keys().copied().collect::<BTreeSet<_>>(),
        a.partitions()
    );
    assert!(committed.values().all(|&o| o == 5), "{committed:?}");

    // Another group on the same topic gets every partition for itself.
    let mut x = Member::new("x");
    g.find("audit", &[1, 2, 3]);
    g.beat_until("audit", &mut [&mut x], "audit owns all six", |m| {
        m[0].partitions().len() == 6
    });
    g.find("billing", &[1, 2, 3]);

    // c dies (stops heartbeating): after its session, a and b share all six.
    g.beat_until(
        "billing",
        &mut [&mut a, &mut b],
        "c's partitions move to a and b",
        |m| shares(m, 3),
    );

    // The coordinator's broker is killed: another takes over with the
    // committed offsets, and the members rejoin it.
    let epoch_before = a.epoch;
    cluster.kill(coordinator as usize);
    let live: Vec<usize> = (1..=3).filter(|&i| i != coordinator as usize).collect();
    let mut next = coordinator;
    wait_for("a new coordinator", WITHIN, || {
        next = g.find("billing", &live).0;
        next != coordinator
    });
    let mut kept = None;
    wait_for(
        "the committed offsets on the new coordinator",
        WITHIN,
        || {
            kept = g.offsets("billing");
            kept.is_some()
        },
    );
    assert_eq!(kept.unwrap(), committed);
    g.beat_until(
        "billing",
        &mut [&mut a, &mut b],
        "a and b rejoin the new coordinator",
        |m| shares(m, 3),
    );
    assert!(
        a.epoch > epoch_before,
        "a new generation: {} after {epoch_before}",
        a.epoch
    );
}

mod with_the_client {
    use super::*;
    use bytes::Bytes;
    use raftline::client::{
        Acks, Client, ClientConfig, GroupConfig, GroupConsumer, Producer, ProducerRecord,
    };
    use std::sync::{Arc, Mutex};

    /// Every value each consumer saw, and the commits it made.
    type Seen = Arc<Mutex<BTreeMap<String, Vec<String>>>>;

    async fn produce(client: &Client, from: usize, to: usize) {
        let mut producer = Producer::new(client.clone(), "orders", Acks::All)
            .await
            .unwrap();
        let records = (from..to)
            .map(|i| ProducerRecord {
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(format!("v{i}"))),
                timestamp: crate::data::now_ms(),
            })
            .collect();
        producer.send(records).await.unwrap();
    }

    /// A member consuming until `stop`, noting every value under `name`.
    fn member(
        client: &Client,
        group: &str,
        name: &str,
        seen: &Seen,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<GroupConsumer> {
        let (client, seen, name) = (client.clone(), seen.clone(), name.to_string());
        let mut config = GroupConfig::new(group, &["orders"]);
        config.auto_commit = Some(Duration::from_millis(200));
        tokio::spawn(async move {
            let mut consumer = GroupConsumer::join(client, config).await.unwrap();
            while !stop.is_cancelled() {
                let records = consumer.poll(Duration::from_millis(100)).await.unwrap();
                let mut seen = seen.lock().unwrap();
                let mine = seen.entry(name.clone()).or_default();
                mine.extend(
                    records
                        .iter()
                        .filter_map(|r| r.value.as_ref())
                        .map(|v| String::from_utf8_lossy(v).into_owned()),
                );
            }
            consumer
        })
    }

    fn all_seen(seen: &Seen, names: &[&str]) -> BTreeSet<String> {
        let seen = seen.lock().unwrap();
        names
            .iter()
            .flat_map(|n| seen.get(*n).cloned().unwrap_or_default())
            .collect()
    }

    async fn wait_until(what: &str, check: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + WITHIN;
        while !check() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How many partitions each member of `group` owns, sorted.
    async fn shares(client: &Client, group: &str) -> Vec<usize> {
        let reply = match client.describe_group(group).await {
            Ok(reply) => reply,
            // Not joined by anyone yet.
            Err(e) if e.code() == Some(ErrorCode::GroupIdNotFound) => return Vec::new(),
            Err(e) => panic!("describe {group}: {e}"),
        };
        let mut shares: Vec<usize> = reply
            .members
            .iter()
            .map(|m| m.assignment.iter().map(|t| t.partitions.len()).sum())
            .collect();
        shares.sort();
        shares
    }

    /// Polls `shares` until it is `want`.
    async fn wait_shares(client: &Client, group: &str, want: &[usize]) {
        let deadline = tokio::time::Instant::now() + WITHIN;
        loop {
            let now = shares(client, group).await;
            if now == want {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{group}: shares {now:?}, want {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The group's committed offsets, by partition.
    async fn committed(client: &Client, group: &str) -> BTreeMap<u32, u64> {
        let offsets = client.committed_offsets(group).await.unwrap();
        offsets
            .into_iter()
            .map(|(tp, o)| (tp.partition, o))
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn members_consume_everything_at_least_once_and_a_dead_ones_partitions_move() {
        let cluster = ProcCluster::start(3);
        create_orders(&cluster);
        let client = Client::connect(ClientConfig::new(&cluster.servers()))
            .await
            .unwrap();

        let seen: Seen = Arc::default();
        let audit: Seen = Arc::default();
        let stop = tokio_util::sync::CancellationToken::new();
        let dies = tokio_util::sync::CancellationToken::new();
        let a = member(&client, "billing", "a", &seen, stop.clone());
        let b = member(&client, "billing", "b", &seen, stop.clone());
        let c = member(&client, "billing", "c", &seen, dies.clone());
        let x = member(&client, "audit", "x", &audit, stop.clone());
        wait_shares(&client, "billing", &[2, 2, 2]).await;
        produce(&client, 0, 300).await;
        let want: BTreeSet<String> = (0..300).map(|i| format!("v{i}")).collect();
        wait_until("billing's members read the first 300", || {
            all_seen(&seen, &["a", "b", "c"]).is_superset(&want)
        })
        .await;
        // Each member had its share: nobody read everything alone.
        for name in ["a", "b", "c"] {
            let n = seen.lock().unwrap().get(name).map_or(0, Vec::len);
            assert!(n > 0 && n < 300, "{name} read {n}");
        }

        // c dies without leaving (its consumer is dropped): its partitions
        // move to a and b after the session timeout, and what is produced
        // next is read all the same.
        dies.cancel();
        drop(c.await.unwrap());
        wait_shares(&client, "billing", &[3, 3]).await;
        let mut offsets_before = committed(&client, "billing").await;
        produce(&client, 300, 600).await;
        let want: BTreeSet<String> = (0..600).map(|i| format!("v{i}")).collect();
        wait_until("a and b read all 600", || {
            all_seen(&seen, &["a", "b", "c"]).is_superset(&want)
        })
        .await;
        // Another group read everything, independently.
        wait_until("audit read all 600", || {
            all_seen(&audit, &["x"]).is_superset(&want)
        })
        .await;

        // Committed offsets never went backwards, and reach the end.
        let deadline = tokio::time::Instant::now() + WITHIN;
        loop {
            let now = committed(&client, "billing").await;
            for (p, before) in &offsets_before {
                assert!(
                    now.get(p).is_some_and(|o| o >= before),
                    "partition {p}: {before} -> {:?}",
                    now.get(p)
                );
            }
            offsets_before = now.clone();
            if now.len() == 6 && now.values().sum::<u64>() == 600 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "commits stuck at {now:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        stop.cancel();
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        assert_eq!(
            a.assignment().len() + b.assignment().len(),
            6,
            "a and b own everything"
        );
        a.close().await.unwrap();
        b.close().await.unwrap();
        x.await.unwrap().close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_static_member_restarting_within_its_session_keeps_its_partitions_without_a_rebalance(
    ) {
        let cluster = ProcCluster::start(3);
        create_orders(&cluster);
        let client = Client::connect(ClientConfig::new(&cluster.servers()))
            .await
            .unwrap();
        let config = |member: &str, instance: &str| {
            let mut c = GroupConfig::new("pods", &["orders"]);
            c.member_id = Some(member.into());
            c.instance_id = Some(instance.into());
            c
        };
        let mut a = GroupConsumer::join(client.clone(), config("a1", "pod-a"))
            .await
            .unwrap();
        let mut b = GroupConsumer::join(client.clone(), config("b1", "pod-b"))
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + WITHIN;
        while shares(&client, "pods").await != [3, 3] {
            assert!(tokio::time::Instant::now() < deadline, "no even split");
            a.poll(Duration::from_millis(50)).await.unwrap();
            b.poll(Duration::from_millis(50)).await.unwrap();
        }
        let before = client.describe_group("pods").await.unwrap();
        let owned = a.assignment().clone();
        // a's process dies and a new one (a new member id, the same
        // group.instance.id) starts well within the 2 s session.
        drop(a);
        let a2 = GroupConsumer::join(client.clone(), config("a2", "pod-a"))
            .await
            .unwrap();
        assert_eq!(a2.assignment(), &owned, "the same partitions at once");
        b.poll(Duration::from_millis(50)).await.unwrap();
        let after = client.describe_group("pods").await.unwrap();
        assert_eq!(after.group_epoch, before.group_epoch, "no new generation");
        let ids: BTreeSet<&str> = after.members.iter().map(|m| m.member_id.as_str()).collect();
        assert_eq!(ids, BTreeSet::from(["a2", "b1"]));
        assert_eq!(after.state, "Stable");
    }
}

/// The CLI's group commands, as kafka-consumer-groups.sh is used.
#[test]
fn the_cli_consumes_as_a_group_describes_resets_and_deletes_it() {
    let cluster = ProcCluster::start(3);
    create_orders(&cluster);
    let lines: String = (0..12).map(|i| format!("k{i}:v{i}\n")).collect();
    let out = cluster.cli_with_input(
        &["produce", "orders", "--key-separator", ":"],
        Some(lines.into_bytes()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let consume = |max: &str| {
        cluster
            .ok(&[
                "consume",
                "orders",
                "--group",
                "billing",
                "--from-beginning",
                "--max-messages",
                max,
                "--timeout-ms",
                "10000",
            ])
            .lines()
            .map(String::from)
            .collect::<BTreeSet<_>>()
    };
    // Two runs of the same group read each record once between them: the
    // first commits what it printed, the second goes on from there.
    let first = consume("5");
    let second = consume("7");
    assert_eq!(first.len() + second.len(), 12);
    let all: BTreeSet<String> = first.union(&second).cloned().collect();
    assert_eq!(all, (0..12).map(|i| format!("v{i}")).collect());

    let listed = cluster.json(&["group", "list"]);
    assert_eq!(listed[0]["group"], "billing");
    assert_eq!(listed[0]["state"], "Empty", "both runs left: {listed}");
    let view = cluster.json(&["group", "describe", "billing"]);
    let lag: u64 = view["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["lag"].as_u64().unwrap())
        .sum();
    assert_eq!(lag, 0, "{view}");
    let table = cluster.cli(&["group", "describe", "billing"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("LOG-END-OFFSET"));

    // reset-offsets is a dry run until --execute.
    let plan = cluster.json(&[
        "group",
        "reset-offsets",
        "billing",
        "--topic",
        "orders",
        "--to-earliest",
    ]);
    assert_eq!(plan["executed"], false);
    assert!(plan["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["new_offset"] == 0));
    let view = cluster.json(&["group", "describe", "billing"]);
    assert!(
        view["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["lag"] == 0),
        "unchanged"
    );
    cluster.json(&[
        "group",
        "reset-offsets",
        "billing",
        "--topic",
        "orders",
        "--to-earliest",
        "--execute",
    ]);
    let shifted = cluster.json(&[
        "group",
        "reset-offsets",
        "billing",
        "--topic",
        "orders",
        "--shift-by",
        "-1",
    ]);
    assert!(
        shifted["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["new_offset"] == 0),
        "kept within the log"
    );
    assert_eq!(consume("12").len(), 12, "read again from the start");

    // Delete; then the group is unknown.
    let out = cluster.cli(&["group", "delete", "billing"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cluster.cli(&["group", "describe", "billing"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("GROUP_ID_NOT_FOUND"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Bad input: an unknown topic; a reset needs exactly one target.
    let out = cluster.cli(&[
        "group",
        "reset-offsets",
        "billing",
        "--topic",
        "nope",
        "--to-earliest",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("UNKNOWN_TOPIC_OR_PARTITION"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cluster.cli(&["group", "reset-offsets", "billing", "--topic", "orders"]);
    assert!(!out.status.success());
}
