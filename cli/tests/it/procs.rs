//! A cluster of real `raftline serve` processes on free local ports, with the
//! CLI run against it, for end-to-end tests. Every wait polls with a deadline.

use std::io::Write;
use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_raftline");

/// `n` nodes (both roles); node `i` is 1-based.
pub struct ProcCluster {
    pub dir: TempDir,
    client: Vec<u16>,
    kafka: Vec<u16>,
    children: Vec<Option<Child>>,
}

impl Drop for ProcCluster {
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os("RAFTLINE_KEEP_TEST_DIRS").is_some() {
            let _ = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap()).keep();
        }
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A free port for a test node.
pub fn free_port() -> u16 {
    free_ports(1)
}

/// The first of `n` consecutive free ports, each handed out once per test
/// process, from below the kernel's ephemeral range: a port found free there
/// stays free until a node binds it, since no outgoing connection is ever
/// given one. (A port from binding port 0 could be taken by any outgoing
/// connection before its node bound it, and was: the node exited and its
/// cluster never came up.)
pub fn free_ports(n: u16) -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const LOWEST: u16 = 20_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let ceiling = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    assert!(
        ceiling > LOWEST + 2_000,
        "the ephemeral port range starts at {ceiling}: too low for the test ports"
    );
    // Two test processes at once (a local run beside CI) start apart.
    let start = LOWEST + (std::process::id() % u32::from(ceiling - LOWEST - 1_000)) as u16;
    let _ = NEXT.compare_exchange(0, start, Ordering::SeqCst, Ordering::SeqCst);
    loop {
        let first = NEXT.fetch_add(n, Ordering::SeqCst);
        if first.checked_add(n).is_none_or(|end| end >= ceiling) {
            NEXT.store(LOWEST, Ordering::SeqCst);
            continue;
        }
        if (first..first + n).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return first;
        }
    }
}

/// Polls `check` every 100 ms until it holds; panics with `what` after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl ProcCluster {
    /// Starts `n` nodes and waits until a controller leads and all brokers
    /// are live.
    pub fn start(n: usize) -> ProcCluster {
        Self::start_with(n, "")
    }

    /// [`start`](Self::start) with `extra` settings (TOML lines) in every
    /// node's config.
    pub fn start_with(n: usize, extra: &str) -> ProcCluster {
        let dir = tempfile::tempdir().unwrap();
        let client: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let peer: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let kafka: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let controllers: String = (0..n)
            .map(|i| format!("{} = \"127.0.0.1:{}\"\n", i + 1, peer[i]))
            .collect();
        for i in 0..n {
            let config = format!(
                "node_id = {id}\ndata_dir = \"{dir}/node{id}\"\nclient_addr = \"127.0.0.1:{c}\"\npeer_addr = \"127.0.0.1:{p}\"\nbroker_heartbeat_ms = 200\nbroker_session_timeout_ms = 2000\nreplica_lag_time_max_ms = 3000\ngroup_session_timeout_ms = 2000\ngroup_heartbeat_interval_ms = 200\noffsets_topic_num_partitions = 4\noffsets_topic_segment_bytes = 1024\nlog_cleaner_backoff_ms = 200\ngroup_initial_rebalance_delay_ms = 300\nkafka_listener = \"127.0.0.1:{k}\"\n{extra}\n\n[controllers]\n{controllers}",
                id = i + 1,
                dir = dir.path().display(),
                c = client[i],
                p = peer[i],
                k = kafka[i],
            );
            std::fs::write(dir.path().join(format!("node{}.toml", i + 1)), config).unwrap();
        }
        let mut cluster = ProcCluster {
            dir,
            client,
            kafka,
            children: (0..n).map(|_| None).collect(),
        };
        for i in 1..=n {
            cluster.spawn(i);
        }
        cluster.wait_live(n);
        cluster
    }

    /// Node `i`'s client address.
    pub fn client_addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.client[i - 1])
    }

    /// Node `i`'s Kafka listener.
    pub fn kafka_addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.kafka[i - 1])
    }

    /// Every client address, comma-separated.
    pub fn servers(&self) -> String {
        self.client
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts node `i` (again), appending to its log.
    pub fn spawn(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("node{i}.log")))
            .unwrap();
        let child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(self.dir.path().join(format!("node{i}.toml")))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.children[i - 1] = Some(child);
    }

    /// SIGKILL node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i - 1].take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM node `i` and wait for it to exit.
    pub fn terminate(&mut self, i: usize) -> ExitStatus {
        let mut child = self.children[i - 1].take().unwrap();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let bytes =
                    std::fs::read(self.dir.path().join(format!("node{i}.log"))).unwrap_or_default();
                for line in String::from_utf8_lossy(&bytes)
                    .lines()
                    .filter(|l| l.contains("did not"))
                {
                    eprintln!("node {i}: {line}");
                }
                return status;
            }
            if Instant::now() >= deadline {
                let bytes =
                    std::fs::read(self.dir.path().join(format!("node{i}.log"))).unwrap_or_default();
                let log = String::from_utf8_lossy(&bytes);
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                panic!(
                    "node {i} (pid {}) did not stop on SIGTERM; logs in {}; its log ends:\n{}",
                    child.id(),
                    self.dir.path().display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The CLI against this cluster.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_with_input(args, None)
    }

    /// The CLI with `input` on stdin.
    pub fn cli_with_input(&self, args: &[&str], input: Option<Vec<u8>>) -> Output {
        let mut child = Command::new(BIN)
            .args(args)
            .args(["--bootstrap-server", &self.servers()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            if let Some(input) = input {
                let _ = stdin.write_all(&input);
            }
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        out
    }

    /// The stdout of a CLI command that must succeed (panics with its stderr).
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The CLI's JSON answer; panics (with its stderr) if it failed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let out = self.cli(&all);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Waits until a controller leads and `n` brokers are live.
    pub fn wait_live(&self, n: usize) {
        wait_for(
            &format!("{n} live brokers"),
            Duration::from_secs(60),
            || {
                let out = self.cli(&["cluster", "describe", "--output", "json"]);
                if !out.status.success() {
                    return false;
                }
                let Ok(view) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
                    return false;
                };
                let live = view["brokers"]
                    .as_array()
                    .map_or(0, |b| b.iter().filter(|b| b["fenced"] == false).count());
                live >= n && !view["controller_leader"].is_null()
            },
        );
    }

    /// Partition `p` of `topic` as `topic describe --output json` shows it.
    pub fn partition(&self, topic: &str, p: usize) -> serde_json::Value {
        let view = self.json(&["topic", "describe", topic]);
        view[0]["partitions"][p].clone()
    }
}
