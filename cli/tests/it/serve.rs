//! Three real `raftline serve` processes and the CLI against them, as a user
//! would run them: the cluster comes up, topics are created and described,
//! bad input gets a typed error, and SIGTERM stops every node cleanly.

use crate::procs::{wait_for, ProcCluster};
use std::time::Duration;

#[test]
fn three_served_nodes_answer_the_cli_and_stop_on_sigterm() {
    let mut cluster = ProcCluster::start(3);
    let cli = |args: &[&str], _: &str| cluster.cli(args);
    let servers = cluster.servers();

    let created = cli(
        &[
            "topic",
            "create",
            "orders",
            "--partitions",
            "3",
            "--replication-factor",
            "3",
            "--output",
            "json",
        ],
        &servers,
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let topic: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    assert_eq!(topic["partitions"].as_array().unwrap().len(), 3);

    let bad = cli(&["topic", "create", "bad name"], &servers);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("INVALID_TOPIC_NAME"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    let described = cli(&["topic", "describe", "orders"], &servers);
    let table = String::from_utf8_lossy(&described.stdout);
    assert!(
        table.contains("PARTITION") && table.contains("Topic: orders"),
        "{table}"
    );

    // Configs change in place; a bad change is refused whole, typed, and
    // changes nothing.
    let set = serde_json::json!({"retention.ms": "3600000", "segment.bytes": "1048576"});
    let altered = cluster.json(&[
        "topic",
        "alter",
        "orders",
        "--config",
        "retention.ms=3600000",
        "--config",
        "segment.bytes=1048576",
    ]);
    assert_eq!(altered["configs"], set);
    let refused = cli(
        &[
            "topic",
            "alter",
            "orders",
            "--config",
            "retention.ms=1",
            "--config",
            "retention.mss=1",
        ],
        &servers,
    );
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success()
            && why.contains("INVALID_CONFIG")
            && why.contains("retention.mss"),
        "{why}"
    );
    let after = cluster.json(&["topic", "describe", "orders"]);
    assert_eq!(
        after[0]["configs"], set,
        "the refused change changed nothing"
    );
    let nothing = cli(&["topic", "alter", "orders"], &servers);
    let why = String::from_utf8_lossy(&nothing.stderr);
    assert!(
        !nothing.status.success() && why.contains("--delete-config"),
        "{why}"
    );
    let reset = cluster.json(&[
        "topic",
        "alter",
        "orders",
        "--delete-config",
        "retention.ms",
    ]);
    assert_eq!(
        reset["configs"],
        serde_json::json!({"segment.bytes": "1048576"}),
        "retention.ms back to its default"
    );

    // Partitions are added, never removed.
    let grown = cluster.json(&["topic", "add-partitions", "orders", "--total", "5"]);
    assert_eq!(grown["partitions"].as_array().unwrap().len(), 5);
    let shrink = cli(
        &["topic", "add-partitions", "orders", "--total", "2"],
        &servers,
    );
    let why = String::from_utf8_lossy(&shrink.stderr);
    assert!(
        !shrink.status.success() && why.contains("INVALID_PARTITIONS"),
        "{why}"
    );

    let listed = cli(&["topic", "list", "--output", "json"], &servers);
    let topics: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(topics[0]["name"], "orders");
    assert!(
        listed.stderr.is_empty(),
        "a current listing carries no warning: {}",
        String::from_utf8_lossy(&listed.stderr)
    );

    // gRPC reflection: a generic client discovers the services.
    let services = reflected_services(servers.split(',').next().unwrap());
    for expected in ["raftline.v1.Admin", "raftline.v1.Broker"] {
        assert!(services.iter().any(|s| s == expected), "{services:?}");
    }
    let status = cli(&["cluster", "describe", "--output", "json"], &servers);
    let view: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(view["raft_term"].as_u64().unwrap() >= 1, "{view}");
    assert!(view["raft_applied_index"].as_u64().unwrap() >= 1, "{view}");
    assert_eq!(view["offline_partitions"], serde_json::json!([]));
    assert_eq!(view["stale"], serde_json::Value::Null, "{view}");

    // SIGTERM: each node stops by itself, cleanly. With two gone, the last
    // has no quorum to catch up with: it still describes the cluster, and
    // says its view may be stale.
    for i in [3, 2] {
        let status = cluster.terminate(i);
        assert!(status.success(), "node {i} exited with {status}");
    }
    let first = servers.split(',').next().unwrap();
    let on_first = |args: &[&str]| {
        std::process::Command::new(crate::procs::BIN)
            .args(args)
            .args(["--bootstrap-server", first])
            .output()
            .unwrap()
    };
    let alone = on_first(&["cluster", "describe", "--output", "json"]);
    let view: serde_json::Value = serde_json::from_slice(&alone.stdout).unwrap();
    assert!(
        view["stale"]
            .as_str()
            .is_some_and(|s| s.contains("may be stale")),
        "{view}"
    );
    // A topic listing too: still answered (stdout stays one JSON document),
    // with the warning on stderr.
    let listed = on_first(&["topic", "list", "--output", "json"]);
    let topics: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(topics[0]["name"], "orders");
    let warning = String::from_utf8_lossy(&listed.stderr);
    assert!(warning.contains("may be stale"), "{warning}");
    let status = cluster.terminate(1);
    assert!(status.success(), "node 1 exited with {status}");
}

/// The services a node lists through gRPC server reflection.
fn reflected_services(addr: &str) -> Vec<String> {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = ServerReflectionClient::new(channel);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut replies = client
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        let reply = replies.message().await.unwrap().unwrap();
        match reply.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                list.service.into_iter().map(|s| s.name).collect()
            }
            other => panic!("unexpected reflection answer {other:?}"),
        }
    })
}

/// Creates `orders` (3 partitions, RF 3), kills the preferred replica of
/// partition 0, waits for the failover, restarts it and waits until it is
/// back in the partition's ISR; that broker.
fn restart_the_preferred_leader_of_partition_0(cluster: &mut ProcCluster) -> u64 {
    cluster.ok(&[
        "topic",
        "create",
        "orders",
        "--partitions",
        "3",
        "--replication-factor",
        "3",
    ]);
    let preferred = cluster.partition("orders", 0)["replicas"][0]
        .as_u64()
        .unwrap();
    cluster.kill(preferred as usize);
    wait_for("partition 0 to fail over", Duration::from_secs(30), || {
        let p = cluster.partition("orders", 0);
        !p["leader"].is_null() && p["leader"] != preferred
    });
    cluster.spawn(preferred as usize);
    wait_for(
        "the returning broker back in partition 0's ISR",
        Duration::from_secs(60),
        || {
            cluster.partition("orders", 0)["isr"]
                .as_array()
                .map_or(0, Vec::len)
                == 3
        },
    );
    preferred
}

/// A broker that comes back leads nothing until a preferred election gives
/// it its partitions back (Kafka's kafka-leader-election). The automatic
/// rebalance is on, but its 5 minutes do not pass during the test.
#[test]
fn a_returning_broker_gets_its_leadership_back_by_a_preferred_election() {
    let mut cluster = ProcCluster::start(3);
    let preferred = restart_the_preferred_leader_of_partition_0(&mut cluster);
    assert_ne!(cluster.partition("orders", 0)["leader"], preferred);

    let elected = cluster.json(&["topic", "elect-leaders", "orders", "--partition", "0"]);
    assert_eq!(elected["results"][0]["leader"], preferred, "{elected}");
    assert!(elected["results"][0]["error"].is_null(), "{elected}");
    assert_eq!(cluster.partition("orders", 0)["leader"], preferred);

    let balanced = cluster.ok(&["topic", "elect-leaders", "orders"]);
    assert!(
        balanced.contains("0 elected, 3 not needed, 0 failed."),
        "{balanced}"
    );
    let everything = cluster.ok(&["topic", "elect-leaders", "--all-topics"]);
    assert!(everything.contains("0 failed."), "{everything}");

    let unknown = cluster.cli(&["topic", "elect-leaders", "orders", "--partition", "9"]);
    let out = String::from_utf8_lossy(&unknown.stdout);
    assert_eq!(unknown.status.code(), Some(1), "{out}");
    assert!(out.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{out}");
    let neither = cluster.cli(&["topic", "elect-leaders"]);
    assert!(!neither.status.success());
    assert!(
        String::from_utf8_lossy(&neither.stderr).contains("--all-topics"),
        "{}",
        String::from_utf8_lossy(&neither.stderr)
    );
}

/// With the automatic rebalance checking every 500 ms, the returning broker
/// gets partition 0 back by itself once it is in sync.
#[test]
fn a_returning_broker_gets_its_leadership_back_by_itself() {
    let mut cluster = ProcCluster::start_with(3, "leader_imbalance_check_interval_ms = 500");
    let preferred = restart_the_preferred_leader_of_partition_0(&mut cluster);
    wait_for(
        "the controller to give partition 0 back",
        Duration::from_secs(30),
        || cluster.partition("orders", 0)["leader"] == preferred,
    );
    let balanced = cluster.ok(&["topic", "elect-leaders", "orders"]);
    assert!(
        balanced.contains("0 elected, 3 not needed, 0 failed."),
        "{balanced}"
    );
}
