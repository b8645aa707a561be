//! The README's quickstart, run verbatim: the block between its
//! `quickstart:begin` and `quickstart:end` markers goes to bash as written,
//! against a cluster that `scripts/cluster.sh` starts (with its release
//! build) in a temporary directory on free ports, so a cluster the developer
//! has running is left alone.

use crate::procs::free_ports;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The commands of the README's quickstart block.
fn quickstart_block() -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let begin = readme
        .find("<!-- quickstart:begin")
        .expect("quickstart:begin marker");
    let end = readme
        .find("<!-- quickstart:end")
        .expect("quickstart:end marker");
    let block = &readme[begin..end];
    let open = block.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let close = block.rfind("```").unwrap();
    block[open..close].to_string()
}

/// Three consecutive free ports' base: base + 1..=3 are all free.
fn free_base() -> u16 {
    free_ports(3) - 1
}

/// Stops whatever the script started, even if the test fails midway.
struct Cleanup(Vec<(String, String)>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo_root().join("scripts/cluster.sh"))
            .arg("clean")
            .envs(self.0.iter().cloned())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn the_readme_quickstart_runs_verbatim() {
    let block = quickstart_block();
    assert!(block.contains("scripts/cluster.sh up"), "{block}");
    let dir = tempfile::tempdir().unwrap();
    let client = free_base();
    let peer = loop {
        let p = free_base();
        if p.abs_diff(client) > 3 {
            break p;
        }
    };
    let kafka = loop {
        let k = free_base();
        if k.abs_diff(client) > 3 && k.abs_diff(peer) > 3 {
            break k;
        }
    };
    let servers = (1..=3)
        .map(|n| format!("127.0.0.1:{}", client + n))
        .collect::<Vec<_>>()
        .join(",");
    let env = vec![
        (
            "RAFTLINE_CLUSTER_DIR".to_string(),
            dir.path().join("cluster").display().to_string(),
        ),
        ("RAFTLINE_CLUSTER_CLIENT_BASE".into(), client.to_string()),
        ("RAFTLINE_CLUSTER_PEER_BASE".into(), peer.to_string()),
        ("RAFTLINE_CLUSTER_KAFKA_BASE".into(), kafka.to_string()),
        ("RAFTLINE_BOOTSTRAP".into(), servers),
    ];
    let _cleanup = Cleanup(env.clone());
    let log = dir.path().join("quickstart.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut child = Command::new("bash")
        .args(["-c", &format!("set -euo pipefail\n{block}")])
        .current_dir(repo_root())
        .envs(env)
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap();
    // The first run includes a release build.
    let deadline = Instant::now() + Duration::from_secs(900);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the quickstart did not finish in 15 minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "the quickstart failed:\n{text}");
    for expected in [
        "Produced 1000 records to orders",
        "Processed a total of 1000 messages",
        "node 1 is down: its broker was fenced",
        "node 1 is back",
        "Processed a total of 2000 messages",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // After the kill, no ISR names broker 1: the describe that follows it.
    let after_kill = &text[text.find("node 1 is down").unwrap()..];
    let table: Vec<&str> = after_kill
        .lines()
        .skip_while(|l| !l.starts_with("PARTITION"))
        .skip(1)
        .take(3)
        .collect();
    assert_eq!(table.len(), 3, "{after_kill}");
    for row in table {
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_ne!(cols[1], "1", "node 1 still leads: {row}");
        assert!(
            !cols[4].split(',').any(|b| b == "1"),
            "node 1 still in the ISR: {row}"
        );
    }
}
