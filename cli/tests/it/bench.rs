//! `raftline bench` against three real processes: each workload reports what
//! it did, in JSON and as a table, and bad flags are refused.

use crate::procs::ProcCluster;
use tracing::info;

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"))
}

#[test]
fn bench_produces_consumes_and_measures_end_to_end_latency() {
    let mut cluster = ProcCluster::start(3);
    info!("produce: creates the topic, sends exactly --records");
    let produced = cluster.json(&[
        "bench",
        "produce",
        "--topic",
        "b",
        "--partitions",
        "3",
        "--replication-factor",
        "3",
        "--records",
        "3000",
        "--record-size",
        "100",
        "--batch-size",
        "100",
        "--producers",
        "2",
    ]);
    assert_eq!(produced["records"], 3000);
    assert_eq!(produced["bytes"], 300_000);
    assert!(f(&produced["records_per_sec"]) > 0.0);
    let lat = &produced["latency_ms"];
    assert!(f(&lat["p50"]) <= f(&lat["p99"]) && f(&lat["p99"]) <= f(&lat["max"]));
    assert!(f(&produced["longest_ack_gap_ms"]) <= f(&produced["seconds"]) * 1000.0);
    assert_eq!(
        cluster.partition("b", 0)["replicas"]
            .as_array()
            .map(Vec::len),
        Some(3),
        "created with --replication-factor"
    );

    info!("consume: reads them all back from the start");
    let consumed = cluster.json(&["bench", "consume", "--topic", "b", "--records", "3000"]);
    assert_eq!(consumed["records"], 3000);
    assert_eq!(consumed["bytes"], 300_000);

    info!("e2e: a fixed rate shared by three producers, every record's latency measured");
    let e2e = cluster.json(&[
        "bench",
        "e2e",
        "--topic",
        "b",
        "--producers",
        "3",
        "--rate",
        "500",
        "--duration-ms",
        "1000",
        "--record-size",
        "64",
        "--linger-ms",
        "5",
    ]);
    assert_eq!(e2e["records"], 500);
    assert_eq!(e2e["latency_ms"]["samples"], 500);
    assert!(f(&e2e["latency_ms"]["p50"]) > 0.0);
    // The producer's side: every record acknowledged, none before it was due.
    let acked = &e2e["produce_latency_ms"];
    assert_eq!(acked["samples"], 500);
    assert!(f(&acked["p50"]) > 0.0 && f(&acked["p50"]) <= f(&acked["max"]));

    info!("produce at a fixed rate: open loop, each record's latency from when it was due");
    let paced = cluster.json(&[
        "bench",
        "produce",
        "--topic",
        "b",
        "--producers",
        "2",
        "--rate",
        "400",
        "--records",
        "600",
        "--record-size",
        "64",
    ]);
    assert_eq!(paced["records"], 600);
    assert_eq!(paced["latency_ms"]["samples"], 600);
    // 600 records at 400/s are due over 1.5 s: two seconds of worst latencies.
    let worst = paced["worst_latency_ms_by_second"]
        .as_array()
        .map(|w| w.iter().map(f).collect::<Vec<_>>())
        .unwrap_or_default();
    assert_eq!(worst.len(), 2, "{worst:?}");
    assert!(worst
        .iter()
        .all(|&w| w > 0.0 && w <= f(&paced["latency_ms"]["max"])));
    assert!(
        f(&paced["seconds"]) >= 1.4,
        "paced, not as fast as it could"
    );

    info!("a table for people");
    let out = cluster.cli(&["bench", "produce", "--topic", "b", "--records", "300"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("RECORDS/S") && text.contains("P99.9-MS"),
        "{text}"
    );

    info!("bad flags are refused before any load");
    let out = cluster.cli(&["bench", "produce", "--topic", "b", "--batch-size", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--batch-size"));
    let out = cluster.cli(&["bench", "e2e", "--topic", "b", "--record-size", "4"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 8"));

    info!("batches of 40 KiB: followers get them from the leader's tail in their own buffers");
    let big = cluster.json(&[
        "bench",
        "produce",
        "--topic",
        "big",
        "--partitions",
        "1",
        "--replication-factor",
        "3",
        "--records",
        "600",
        "--record-size",
        "20000",
        "--batch-size",
        "2",
        "--producers",
        "3",
    ]);
    assert_eq!(big["records"], 600);
    let consumed = cluster.json(&["bench", "consume", "--topic", "big", "--records", "600"]);
    assert_eq!(consumed["bytes"], 12_000_000);
    let leader = cluster.partition("big", 0)["leader"].as_u64().unwrap();
    for i in 1..=3 {
        assert!(cluster.terminate(i).success());
    }
    // Every acknowledged batch is on the leader and on at least one more
    // member of the ISR (min.insync.replicas 2), byte for byte; a follower
    // behind holds a prefix of the leader's log.
    let segment = |i: u64| {
        let dir = cluster.dir.path().join(format!("node{i}/logs/big-0"));
        std::fs::read(dir.join("00000000000000000000.log")).unwrap()
    };
    let led = segment(leader);
    assert!(led.len() >= 12_000_000);
    let followers: Vec<Vec<u8>> = (1..=3).filter(|&i| i != leader).map(segment).collect();
    assert!(followers.iter().all(|f| led.starts_with(f)));
    assert!(followers.contains(&led), "no follower holds the whole log");
}

/// `raftline bench ARGS --output json` run without a cluster; its report.
fn baseline(args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(crate::procs::BIN)
        .arg("bench")
        .args(args)
        .args(["--output", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The loopback baseline needs no cluster and measures both throughput and
/// round trips.
#[test]
fn bench_loopback_measures_raw_tcp() {
    let report = baseline(&["loopback", "--record-size", "4096", "--duration-ms", "300"]);
    assert_eq!(report["workload"], "loopback");
    let records = report["records"].as_u64().unwrap();
    assert!(records > 0);
    assert_eq!(report["bytes"].as_u64(), Some(records * 4096));
    assert!(f(&report["mb_per_sec"]) > 0.0);
    assert!(report["latency_ms"]["samples"].as_u64().unwrap() > 0);
    let lat = &report["latency_ms"];
    assert!(f(&lat["p50"]) <= f(&lat["p99"]) && f(&lat["p99"]) <= f(&lat["max"]));
    let cpu = &report["cpu_seconds_per_gb"];
    assert!(f(&cpu["user"]) + f(&cpu["system"]) > 0.0, "{cpu}");
}

/// The disk baseline needs no cluster: exactly --records durable writes,
/// their latency, the CPU they cost, and no file left behind. A directory
/// it cannot write in is refused, naming the flag.
#[test]
fn bench_disk_measures_durable_writes_and_their_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().unwrap();
    let report = baseline(&[
        "disk",
        "--record-size",
        "8192",
        "--records",
        "40",
        "--dir",
        dir_arg,
    ]);
    assert_eq!(report["workload"], "disk");
    assert_eq!(report["records"].as_u64(), Some(40));
    assert_eq!(report["bytes"].as_u64(), Some(40 * 8192));
    assert!(f(&report["mb_per_sec"]) > 0.0);
    assert_eq!(report["latency_ms"]["samples"].as_u64(), Some(40));
    let lat = &report["latency_ms"];
    assert!(f(&lat["p50"]) <= f(&lat["p99"]) && f(&lat["p99"]) <= f(&lat["max"]));
    let cpu = &report["cpu_seconds_per_gb"];
    assert!(f(&cpu["user"]) >= 0.0 && f(&cpu["system"]) >= 0.0, "{cpu}");
    assert!(report.get("topic").is_none() && report.get("acks").is_none());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    let missing = dir.path().join("missing");
    let out = std::process::Command::new(crate::procs::BIN)
        .args(["bench", "disk", "--records", "1", "--dir"])
        .arg(&missing)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--dir") && stderr.contains("missing"),
        "{stderr}"
    );
}
