//! Three real `raftline serve` processes and the CLI against them, as a user
//! would run them: the cluster comes up, topics are created and described,
//! bad input gets a typed error, and SIGTERM stops every node cleanly.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_raftline");

/// Children killed if the test fails midway.
struct Nodes(Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn cli(args: &[&str], servers: &str) -> Output {
    Command::new(BIN)
        .args(args)
        .args(["--bootstrap-server", servers])
        .output()
        .unwrap()
}

fn write_configs(dir: &Path, client: &[u16], peer: &[u16]) {
    let controllers: String = (0..3)
        .map(|i| format!("{} = \"127.0.0.1:{}\"\n", i + 1, peer[i]))
        .collect();
    for i in 0..3 {
        let config = format!(
            "node_id = {id}\ndata_dir = \"{dir}/node{id}\"\nclient_addr = \"127.0.0.1:{c}\"\npeer_addr = \"127.0.0.1:{p}\"\nbroker_heartbeat_ms = 200\nbroker_session_timeout_ms = 2000\n\n[controllers]\n{controllers}",
            id = i + 1,
            dir = dir.display(),
            c = client[i],
            p = peer[i],
        );
        std::fs::write(dir.join(format!("node{}.toml", i + 1)), config).unwrap();
    }
}

#[test]
fn three_served_nodes_answer_the_cli_and_stop_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let client: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let peer: Vec<u16> = (0..3).map(|_| free_port()).collect();
    write_configs(dir.path(), &client, &peer);
    let servers = client
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut nodes = Nodes(Vec::new());
    for i in 1..=3 {
        let log = std::fs::File::create(dir.path().join(format!("node{i}.log"))).unwrap();
        let child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(dir.path().join(format!("node{i}.toml")))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        nodes.0.push(child);
    }

    // Ready: a controller leads and three brokers are live. Poll with a deadline.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = cli(&["cluster", "describe", "--output", "json"], &servers);
        if out.status.success() {
            let view: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let live = view["brokers"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|b| b["fenced"] == false)
                .count();
            if live == 3 && !view["controller_leader"].is_null() {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "cluster not ready; logs in {}",
            dir.path().display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

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
    for child in &nodes.0 {
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for child in &mut nodes.0 {
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "a node exited with {status}");
                break;
            }
            assert!(Instant::now() < deadline, "a node did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
