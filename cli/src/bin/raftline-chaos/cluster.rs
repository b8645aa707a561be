//! Three real `raftline serve` processes, each in its place on the [`Net`],
//! and the faults done to them.

use crate::net::{Mode, Net};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Client port of node N (base + N).
const CLIENT_BASE: u16 = 52_050;
/// Peer port of node N (base + N).
const PEER_BASE: u16 = 52_150;

/// The running cluster.
pub struct Cluster {
    /// Where the nodes live.
    pub net: Net,
    bin: PathBuf,
    dir: PathBuf,
    nodes: usize,
    children: Vec<Option<Child>>,
    paused: Vec<bool>,
}

impl Cluster {
    /// Writes the nodes' configs under `dir` (emptied first) and starts them.
    pub fn start(net: Net, bin: PathBuf, dir: PathBuf, nodes: usize) -> Result<Cluster> {
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("emptying {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut cluster = Cluster {
            net,
            bin,
            dir,
            nodes,
            children: (0..nodes).map(|_| None).collect(),
            paused: vec![false; nodes],
        };
        for n in 1..=nodes {
            std::fs::write(cluster.config_path(n), cluster.config(n))
                .context("writing a node config")?;
            cluster.spawn(n)?;
        }
        Ok(cluster)
    }

    /// How many nodes.
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    fn client_addr(&self, n: usize) -> String {
        format!("{}:{}", self.net.host(n), CLIENT_BASE + n as u16)
    }

    fn peer_addr(&self, n: usize) -> String {
        format!("{}:{}", self.net.host(n), PEER_BASE + n as u16)
    }

    /// Every node's client address, comma-separated.
    pub fn servers(&self) -> String {
        (1..=self.nodes)
            .map(|n| self.client_addr(n))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn config_path(&self, n: usize) -> PathBuf {
        self.dir.join(format!("node{n}.toml"))
    }

    /// As `scripts/cluster.sh` has it: heartbeat 100 ms, session 1 s.
    fn config(&self, n: usize) -> String {
        let controllers: String = (1..=self.nodes)
            .map(|c| format!("{c} = \"{}\"\n", self.peer_addr(c)))
            .collect();
        format!(
            "node_id = {n}\ndata_dir = \"{dir}/node{n}\"\nclient_addr = \"{client}\"\npeer_addr = \"{peer}\"\nbroker_heartbeat_ms = 100\nbroker_session_timeout_ms = 1000\n\n[controllers]\n{controllers}",
            dir = self.dir.display(),
            client = self.client_addr(n),
            peer = self.peer_addr(n),
        )
    }

    /// Starts node `n` (again), appending to its log.
    pub fn spawn(&mut self, n: usize) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("node{n}.log")))
            .context("opening a node log")?;
        let mut argv = self.net.exec_prefix(n);
        argv.push(self.bin.display().to_string());
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .args(["serve", "--config"])
            .arg(self.config_path(n))
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(log.try_clone().context("a node log")?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting node {n} with {}", self.bin.display()))?;
        self.children[n - 1] = Some(child);
        self.paused[n - 1] = false;
        Ok(())
    }

    /// Whether node `n`'s process runs (it may be paused).
    pub fn running(&self, n: usize) -> bool {
        self.children[n - 1].is_some()
    }

    /// SIGKILL node `n`.
    pub fn kill(&mut self, n: usize) -> Result<()> {
        if let Some(mut child) = self.children[n - 1].take() {
            child.kill().context("SIGKILL")?;
            child.wait().context("reaping a killed node")?;
        }
        self.paused[n - 1] = false;
        Ok(())
    }

    fn signal(&mut self, n: usize, signal: &str) -> Result<()> {
        let Some(child) = &self.children[n - 1] else {
            return Ok(());
        };
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("kill -{signal} node {n} failed");
        }
        Ok(())
    }

    /// SIGSTOP node `n`.
    pub fn pause(&mut self, n: usize) -> Result<()> {
        self.signal(n, "STOP")?;
        self.paused[n - 1] = true;
        Ok(())
    }

    /// SIGCONT node `n`.
    pub fn resume(&mut self, n: usize) -> Result<()> {
        self.signal(n, "CONT")?;
        self.paused[n - 1] = false;
        Ok(())
    }

    /// Cuts node `n` off: its link down, or (on loopback) a SIGSTOP.
    pub fn cut(&mut self, n: usize) -> Result<()> {
        match self.net.mode {
            Mode::Namespaces => self.net.cut(n),
            Mode::Loopback => self.pause(n),
        }
    }

    /// Undoes [`Cluster::cut`].
    pub fn reconnect(&mut self, n: usize) -> Result<()> {
        match self.net.mode {
            Mode::Namespaces => self.net.heal(n),
            Mode::Loopback => self.resume(n),
        }
    }

    /// Everything back to normal: links up, no netem, no pauses, every node
    /// running.
    pub fn heal_all(&mut self) -> Result<()> {
        for n in 1..=self.nodes {
            if self.net.mode == Mode::Namespaces {
                self.net.heal(n)?;
                self.net.restore(n)?;
            }
            if self.paused[n - 1] {
                self.resume(n)?;
            }
            if !self.running(n) {
                self.spawn(n)?;
            }
        }
        Ok(())
    }

    /// Runs the `raftline` command against the cluster.
    pub fn cli(&self, args: &[&str]) -> Result<Output> {
        Command::new(&self.bin)
            .args(args)
            .args(["--bootstrap-server", &self.servers()])
            .output()
            .context("running raftline")
    }

    /// Waits until every broker is live (unfenced) and a controller leads.
    pub fn wait_live(&self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let out = self.cli(&["cluster", "describe", "--output", "json"])?;
            if out.status.success() {
                if let Ok(view) = serde_json::from_slice::<serde_json::Value>(&out.stdout) {
                    let live = view["brokers"]
                        .as_array()
                        .map_or(0, |b| b.iter().filter(|b| b["fenced"] == false).count());
                    if live >= self.nodes && !view["controller_leader"].is_null() {
                        return Ok(());
                    }
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "the cluster did not come up within {within:?}; see the node logs in {}",
                    self.dir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The node leading `topic`'s partition `p`, as the cluster describes it.
    pub fn leader_of(&self, topic: &str, p: usize) -> Option<usize> {
        let out = self
            .cli(&["topic", "describe", topic, "--output", "json"])
            .ok()?;
        let view: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let leader = view[0]["partitions"][p]["leader"].as_u64()?;
        usize::try_from(leader).ok()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in 1..=self.nodes {
            if self.paused[n - 1] {
                let _ = self.resume(n);
            }
            let _ = self.kill(n);
        }
    }
}
