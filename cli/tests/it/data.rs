//! Produce and consume through real processes, with brokers killed on the way.

use crate::procs::{wait_for, ProcCluster};
use std::collections::BTreeMap;
use std::time::Duration;
use tracing::info;

/// `topic create` through the CLI, which must succeed.
pub(crate) fn create(
    cluster: &ProcCluster,
    topic: &str,
    partitions: &str,
    rf: &str,
    extra: &[&str],
) {
    let mut args = vec![
        "topic",
        "create",
        topic,
        "--partitions",
        partitions,
        "--replication-factor",
        rf,
    ];
    args.extend_from_slice(extra);
    let out = cluster.cli(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every record `consume --from-beginning --output json` prints, as
/// (partition, offset, value).
fn consume_all(cluster: &ProcCluster, topic: &str, expect: usize) -> Vec<(u64, u64, String)> {
    let expect = expect.to_string();
    let out = cluster.cli(&[
        "consume",
        topic,
        "--from-beginning",
        "--max-messages",
        &expect,
        "--timeout-ms",
        "10000",
        "--output",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let r: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                r["partition"].as_u64().unwrap(),
                r["offset"].as_u64().unwrap(),
                r["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Wall-clock milliseconds: a record's create time. (A time in 1970 is
/// older than `retention.ms`, so a broker's retention would delete it.)
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn leader_of(cluster: &ProcCluster, topic: &str, p: usize) -> Option<usize> {
    cluster.partition(topic, p)["leader"]
        .as_u64()
        .map(|l| l as usize)
}

/// `records` (partition, offset, "v<i>") hold v0..v<n-1> once each, at
/// dense offsets, each partition's values in increasing order.
fn assert_exactly_once_in_order(records: &[(u64, u64, String)], n: usize) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, v) in records {
        *seen.entry(v.clone()).or_default() += 1;
    }
    let duplicated: Vec<_> = seen.iter().filter(|(_, &k)| k > 1).take(5).collect();
    assert!(duplicated.is_empty(), "duplicates: {duplicated:?}");
    assert_eq!(seen.len(), n, "every acknowledged record, exactly once");
    info!("in order within each partition: offsets dense, values increasing");
    let mut by_partition: BTreeMap<u64, Vec<(u64, u64)>> = BTreeMap::new();
    for (p, offset, v) in records {
        let i: u64 = v[1..].parse().unwrap();
        by_partition.entry(*p).or_default().push((*offset, i));
    }
    for (p, rows) in by_partition {
        for pair in rows.windows(2) {
            assert_eq!(pair[1].0, pair[0].0 + 1, "partition {p}: offsets dense");
            assert!(pair[1].1 > pair[0].1, "partition {p}: values in order");
        }
    }
}

#[test]
fn acknowledged_records_survive_killing_and_restarting_a_partition_leader() {
    const N: usize = 100_000;
    let mut cluster = ProcCluster::start(3);
    create(&cluster, "orders", "3", "3", &[]);
    let input: Vec<u8> = (0..N)
        .flat_map(|i| format!("v{i}\n").into_bytes())
        .collect();

    std::thread::scope(|s| {
        let servers = cluster.servers();
        let producer = s.spawn(move || {
            std::process::Command::new(crate::procs::BIN)
                .args(["produce", "orders", "--acks", "all", "--output", "json"])
                .args(["--bootstrap-server", &servers])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut child| {
                    use std::io::Write;
                    let mut stdin = child.stdin.take().unwrap();
                    stdin.write_all(&input)?;
                    drop(stdin);
                    child.wait_with_output()
                })
                .unwrap()
        });
        info!("once partition 0 has committed records, its leader is killed");
        wait_for("records on partition 0", Duration::from_secs(60), || {
            cluster.partition("orders", 0)["high_watermark"]
                .as_u64()
                .is_some_and(|hw| hw > 0)
        });
        let leader = leader_of(&cluster, "orders", 0).unwrap();
        cluster.kill(leader);
        wait_for(
            "a new leader of partition 0",
            Duration::from_secs(30),
            || leader_of(&cluster, "orders", 0).is_some_and(|l| l != leader),
        );
        info!("the old leader comes back and catches up");
        cluster.spawn(leader);
        let out = producer.join().unwrap();
        assert!(
            out.status.success(),
            "produce failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["records"], N);
    });
    cluster.wait_live(3);

    assert_exactly_once_in_order(&consume_all(&cluster, "orders", N), N);
    info!("the restarted broker is back in the ISR");
    wait_for("a full ISR", Duration::from_secs(30), || {
        cluster.partition("orders", 0)["isr"]
            .as_array()
            .is_some_and(|isr| isr.len() == 3)
    });
}

#[test]
fn acks_all_with_two_brokers_down_gets_not_enough_replicas_and_appends_nothing() {
    // Five nodes, so the controller quorum survives two losses and can shrink
    // the ISR to the leader alone.
    let mut cluster = ProcCluster::start(5);
    create(&cluster, "payments", "1", "3", &[]);
    let out = cluster.cli_with_input(&["produce", "payments"], Some(b"before\n".to_vec()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let partition = cluster.partition("payments", 0);
    let leader = partition["leader"].as_u64().unwrap() as usize;
    let followers: Vec<usize> = partition["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_u64().unwrap() as usize)
        .filter(|&r| r != leader)
        .collect();
    for &f in &followers {
        cluster.kill(f);
    }
    wait_for(
        "the ISR to shrink to the leader",
        Duration::from_secs(30),
        || {
            cluster.partition("payments", 0)["isr"]
                .as_array()
                .is_some_and(|isr| isr.len() == 1)
        },
    );

    let view = cluster.json(&["cluster", "describe"]);
    assert_eq!(
        view["under_replicated_partitions"],
        serde_json::json!(["payments-0"]),
        "{view}"
    );

    let refused = cluster.cli_with_input(
        &[
            "produce",
            "payments",
            "--acks",
            "all",
            "--delivery-timeout-ms",
            "1000",
        ],
        Some(b"refused\n".to_vec()),
    );
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("NOT_ENOUGH_REPLICAS"), "{stderr}");
    assert!(
        stderr.contains("payments-0"),
        "the error names the partition: {stderr}"
    );

    info!("the followers return: the log holds only what was acknowledged");
    for &f in &followers {
        cluster.spawn(f);
    }
    wait_for("a full ISR", Duration::from_secs(60), || {
        cluster.partition("payments", 0)["isr"]
            .as_array()
            .is_some_and(|isr| isr.len() == 3)
    });
    let records = consume_all(&cluster, "payments", 1);
    assert_eq!(records, vec![(0, 0, "before".to_string())]);
    assert_eq!(
        cluster.partition("payments", 0)["high_watermark"].as_u64(),
        Some(1),
        "nothing after the acknowledged record"
    );
}

#[test]
fn keys_pick_partitions_as_kafka_does_and_consume_prints_them() {
    let cluster = ProcCluster::start(1);
    create(&cluster, "users", "3", "1", &[]);
    let out = cluster.cli_with_input(
        &["produce", "users", "--key-separator", ":"],
        Some(b"21:first\na-little-bit-long-string:second\n21:third\n".to_vec()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cluster.cli(&[
        "consume",
        "users",
        "--from-beginning",
        "--max-messages",
        "3",
        "--timeout-ms",
        "10000",
        "--print-key",
        "--print-offset",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    // From Kafka's own murmur2 vectors: (murmur2("21") & 0x7fffffff) % 3 = 0
    // and the long key's is 2. A key keeps its partition and its order.
    assert_eq!((-973_932_308_i32 & 0x7fff_ffff) % 3, 0);
    assert_eq!((-985_981_536_i32 & 0x7fff_ffff) % 3, 2);
    assert!(text.contains("Partition:0\tOffset:0\t21\tfirst"), "{text}");
    assert!(text.contains("Partition:0\tOffset:1\t21\tthird"), "{text}");
    assert!(
        text.contains("Partition:2\tOffset:0\ta-little-bit-long-string\tsecond"),
        "{text}"
    );
    info!("bad input: an unknown topic and a partition that does not exist");
    let unknown = cluster.cli_with_input(&["produce", "nope"], Some(b"x\n".to_vec()));
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("UNKNOWN_TOPIC_OR_PARTITION") && stderr.contains("raftline topic create"),
        "{stderr}"
    );
    let bad = cluster.cli(&[
        "consume",
        "users",
        "--partition",
        "7",
        "--timeout-ms",
        "100",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no partition 7"));
}

/// The Broker API's answers to bad input and to the wrong broker, through
/// the Rust client: each a typed code naming the partition, nothing appended.
#[test]
fn bad_batches_and_wrong_brokers_get_typed_errors_and_change_nothing() {
    use raftline::client::{encode_batch, Acks, Client, ClientConfig, ProducerRecord};
    use raftline_proto::pb::{self, ErrorCode};
    let cluster = ProcCluster::start(3);
    create(
        &cluster,
        "small",
        "1",
        "3",
        &["--config", "max.message.bytes=2048"],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut config = ClientConfig::new(&cluster.servers());
        config.delivery_timeout = Duration::from_millis(500);
        let client = Client::connect(config).await.unwrap();
        client.partitions("small").await.unwrap();
        let record = |n: usize| ProducerRecord {
            key: None,
            value: Some(vec![b'x'; n].into()),
            timestamp: now_ms(),
        };
        let code = |r: Result<Option<u64>, raftline::client::ClientError>| r.unwrap_err().code();
        info!("a batch over max.message.bytes");
        let big = encode_batch(&[record(4096)], None).unwrap();
        assert_eq!(
            code(client.produce("small", 0, big, Acks::All).await),
            Some(ErrorCode::RecordTooLarge)
        );
        info!("a batch whose CRC does not match");
        let mut bad = encode_batch(&[record(10)], None).unwrap().to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert_eq!(
            code(client.produce("small", 0, bad.into(), Acks::All).await),
            Some(ErrorCode::CorruptRecord)
        );
        info!("an unknown partition");
        let ok = encode_batch(&[record(10)], None).unwrap();
        assert_eq!(
            code(client.produce("small", 9, ok.clone(), Acks::All).await),
            Some(ErrorCode::UnknownTopicOrPartition)
        );
        info!("nothing was appended");
        assert_eq!(client.list_offset("small", 0, -1).await.unwrap(), Some(0));
        info!("a fetch beyond the end");
        let fetched = client
            .fetch("small", 0, 99, Duration::from_millis(10), 1024)
            .await
            .unwrap();
        assert_eq!(
            fetched.error.map(|e| e.code),
            Some(ErrorCode::OffsetOutOfRange as i32)
        );

        info!("a produce sent to a follower names the leader and its address");
        let metadata = client.refresh_metadata().await.unwrap();
        let p = &metadata.topics["small"].partitions[0];
        let leader = p.leader.unwrap();
        let follower = p.replicas.iter().copied().find(|&r| r != leader).unwrap();
        let follower_addr = metadata.brokers[&follower].address.clone();
        let mut direct =
            pb::broker_client::BrokerClient::connect(format!("http://{follower_addr}"))
                .await
                .unwrap();
        let answer = direct
            .produce(pb::ProduceRequest {
                topic: "small".into(),
                partition: 0,
                acks: pb::Acks::All as i32,
                timeout_ms: 1000,
                records: ok,
            })
            .await
            .unwrap()
            .into_inner();
        let error = answer.error.unwrap();
        assert_eq!(error.code, ErrorCode::NotLeaderOrFollower as i32);
        assert_eq!(error.leader_hint, Some(u64::from(leader)));
        assert_eq!(
            error.leader_address.as_deref(),
            Some(metadata.brokers[&leader].address.as_str())
        );
        assert!(error.message.contains("small-0"), "{}", error.message);
        info!("an unknown acks value is refused as a whole");
        let status = direct
            .produce(pb::ProduceRequest {
                topic: "small".into(),
                partition: 0,
                acks: 7,
                timeout_ms: 1000,
                records: Default::default(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
    });
}

/// A batch of several HTTP/2 frames (the transport's frames are 1 MiB; the
/// server's stream window keeps its 1 MiB default) crosses every hop intact:
/// produced acks=all (so both followers fetched it, a replica fetch answer
/// of 6 MiB), then read back byte for byte, at the offset it was given.
#[test]
fn a_batch_of_several_megabytes_is_replicated_and_read_back_byte_for_byte() {
    use raftline::client::{encode_batch, Acks, Client, ClientConfig, ProducerRecord};
    let cluster = ProcCluster::start(3);
    create(
        &cluster,
        "big",
        "1",
        "3",
        &["--config", "max.message.bytes=7340032"],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = Client::connect(ClientConfig::new(&cluster.servers()))
            .await
            .unwrap();
        client.partitions("big").await.unwrap();
        // Values that differ from byte to byte, so a frame delivered twice,
        // dropped or out of order cannot pass as the original.
        let records: Vec<ProducerRecord> = (0..6u32)
            .map(|r| ProducerRecord {
                key: None,
                value: Some(
                    (0..(1u32 << 20))
                        .map(|i| (i.wrapping_mul(31).wrapping_add(r * 7) % 251) as u8)
                        .collect::<Vec<u8>>()
                        .into(),
                ),
                timestamp: now_ms(),
            })
            .collect();
        let batch = encode_batch(&records, None).unwrap();
        assert!(batch.len() > 6 << 20);
        for round in 0..2u64 {
            let offset = client
                .produce("big", 0, batch.clone(), Acks::All)
                .await
                .unwrap();
            assert_eq!(offset, Some(round * 6), "round {round}");
        }
        let mut read = Vec::new();
        let mut next = 0;
        while read.len() < 12 {
            let fetched = client
                .fetch("big", 0, next, Duration::from_millis(500), 16 << 20)
                .await
                .unwrap();
            assert!(fetched.error.is_none(), "{:?}", fetched.error);
            let got = raftline::client::decode_batches("big", 0, fetched.records, next).unwrap();
            assert!(!got.is_empty(), "no progress at offset {next}");
            next = got.last().unwrap().offset + 1;
            read.extend(got);
        }
        assert_eq!(read.len(), 12);
        for (i, record) in read.iter().enumerate() {
            assert_eq!(record.offset, i as u64);
            assert_eq!(record.value, records[i % 6].value, "record {i}");
        }
    });
}

/// Broker.ProduceStream: a producer's batches sent back to back on one
/// stream land in the order sent (consecutive idempotent sequences, none
/// refused as out of order), each answered with its correlation id; a bad
/// request in the middle gets its own typed answer and changes nothing else.
#[test]
fn a_produce_stream_appends_in_the_order_sent_and_answers_each_request() {
    use futures_util::StreamExt;
    use raftline::client::{encode_batch, Client, ClientConfig, ProducerRecord, ProducerStamp};
    use raftline_proto::pb::{self, ErrorCode};
    const BATCHES: u64 = 200;
    const PER_BATCH: u64 = 5;
    let cluster = ProcCluster::start(3);
    create(&cluster, "ordered", "1", "3", &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = Client::connect(ClientConfig::new(&cluster.servers()))
            .await
            .unwrap();
        client.partitions("ordered").await.unwrap();
        let (producer_id, producer_epoch) = client.init_producer_id().await.unwrap();
        let metadata = client.refresh_metadata().await.unwrap();
        let leader = metadata.leader_address("ordered", 0).unwrap();
        let mut broker = pb::broker_client::BrokerClient::connect(format!("http://{leader}"))
            .await
            .unwrap();
        let request = |records: bytes::Bytes, acks: i32, partition: u32| pb::ProduceRequest {
            topic: "ordered".into(),
            partition,
            acks,
            timeout_ms: 10_000,
            records,
        };
        let mut requests = Vec::new();
        for i in 0..BATCHES {
            let records: Vec<ProducerRecord> = (0..PER_BATCH)
                .map(|j| ProducerRecord {
                    key: None,
                    value: Some(format!("{i}-{j}").into()),
                    timestamp: now_ms(),
                })
                .collect();
            let stamp = ProducerStamp {
                producer_id,
                producer_epoch,
                base_sequence: (i * PER_BATCH) as i32,
            };
            let batch = encode_batch(&records, Some(stamp)).unwrap();
            requests.push(pb::ProduceStreamRequest {
                correlation_id: i,
                request: Some(request(batch, pb::Acks::All as i32, 0)),
            });
        }
        // Two bad requests in the middle, each with its own id.
        let plain = encode_batch(
            &[ProducerRecord {
                key: None,
                value: Some("x".into()),
                timestamp: now_ms(),
            }],
            None,
        )
        .unwrap();
        requests.insert(
            50,
            pb::ProduceStreamRequest {
                correlation_id: 1_000,
                request: Some(request(plain.clone(), 7, 0)),
            },
        );
        requests.insert(
            120,
            pb::ProduceStreamRequest {
                correlation_id: 1_001,
                request: Some(request(plain, pb::Acks::All as i32, 9)),
            },
        );
        let mut answers = broker
            .produce_stream(futures_util::stream::iter(requests))
            .await
            .unwrap()
            .into_inner();
        let mut offsets = BTreeMap::new();
        let mut errors = BTreeMap::new();
        while let Some(answer) = answers.next().await {
            let answer = answer.unwrap();
            let response = answer.response.unwrap();
            match response.error {
                Some(e) => {
                    errors.insert(answer.correlation_id, e.code);
                }
                None => {
                    offsets.insert(answer.correlation_id, response.base_offset);
                }
            }
            if offsets.len() + errors.len() == BATCHES as usize + 2 {
                break;
            }
        }
        let want: BTreeMap<u64, u64> = (0..BATCHES).map(|i| (i, i * PER_BATCH)).collect();
        assert_eq!(
            offsets, want,
            "every batch at the offset its place gives it"
        );
        assert_eq!(
            errors,
            BTreeMap::from([
                (1_000, ErrorCode::InvalidRequest as i32),
                (1_001, ErrorCode::UnknownTopicOrPartition as i32),
            ])
        );
        assert_eq!(
            client.list_offset("ordered", 0, -1).await.unwrap(),
            Some(BATCHES * PER_BATCH),
            "all acknowledged, nothing else appended"
        );
    });
}

/// A producer keeping up to 4 batches in flight per partition on the
/// leaders' produce streams (each call a full batch, so the window opens
/// whenever one waits), while partition 0's leader is killed: every record is
/// acknowledged, stored once, and in the order queued (the lane resends
/// from its first failed batch, in order, and a batch that had landed is
/// answered as a duplicate).
#[test]
fn batches_in_flight_on_produce_streams_survive_a_leader_kill_once_and_in_order() {
    use raftline::client::{Acks, Client, ClientConfig, Producer, ProducerRecord};
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    /// Records per call (and per batch).
    const PER_CALL: usize = 20;
    /// Calls outstanding at most: the load keeps this many queued.
    const OUTSTANDING: usize = 100;
    let mut cluster = ProcCluster::start(3);
    create(&cluster, "pipelined", "3", "3", &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let servers = cluster.servers();
    // The load runs until the test has seen a new leader of partition 0 and
    // says stop, so the kill always lands mid-run.
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let producing = rt.spawn(async move {
        let client = Client::connect(ClientConfig::new(&servers)).await.unwrap();
        let mut producer = Producer::new(client, "pipelined", Acks::All)
            .await
            .unwrap()
            .with_batch_records(PER_CALL)
            .with_max_in_flight(4);
        let mut pending = VecDeque::new();
        let (mut sent, mut acknowledged) = (0, 0);
        while !stopped.load(Ordering::SeqCst) {
            let records = (sent..sent + PER_CALL)
                .map(|i| ProducerRecord {
                    key: Some(format!("k{}", i % 97).into()),
                    value: Some(format!("v{i}").into()),
                    timestamp: now_ms(),
                })
                .collect();
            pending.push_back(producer.submit_all(records));
            sent += PER_CALL;
            if pending.len() >= OUTSTANDING {
                if let Some(oldest) = pending.pop_front() {
                    acknowledged += oldest.await.unwrap().iter().map(|s| s.count).sum::<usize>();
                }
            }
        }
        for p in pending {
            acknowledged += p.await.unwrap().iter().map(|s| s.count).sum::<usize>();
        }
        (sent, acknowledged)
    });
    wait_for("records on partition 0", Duration::from_secs(60), || {
        cluster.partition("pipelined", 0)["high_watermark"]
            .as_u64()
            .is_some_and(|hw| hw > 0)
    });
    let leader = leader_of(&cluster, "pipelined", 0).unwrap();
    info!("killing node {leader}, partition 0's leader, mid-run");
    cluster.kill(leader);
    wait_for(
        "a new leader of partition 0",
        Duration::from_secs(30),
        || leader_of(&cluster, "pipelined", 0).is_some_and(|l| l != leader),
    );
    assert!(!producing.is_finished(), "the load ended before the kill");
    stop.store(true, Ordering::SeqCst);
    let (sent, acknowledged) = rt.block_on(producing).unwrap();
    assert_eq!(acknowledged, sent);
    cluster.spawn(leader);
    cluster.wait_live(3);
    // Keys spread the values, so per partition they must still increase.
    assert_exactly_once_in_order(&consume_all(&cluster, "pipelined", sent), sent);
}
