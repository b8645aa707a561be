//! Three real `raftline serve` processes and the CLI against them, as a user
//! would run them: the cluster comes up, topics are created and described,
//! bad input gets a typed error, and SIGTERM stops every node cleanly.

use crate::procs::ProcCluster;

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

    let listed = cli(&["topic", "list", "--output", "json"], &servers);
    let topics: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(topics[0]["name"], "orders");

    // SIGTERM: each node stops by itself, cleanly.
    for i in 1..=3 {
        let status = cluster.terminate(i);
        assert!(status.success(), "node {i} exited with {status}");
    }
}
