//! Where the nodes live and how the network between them breaks.
//!
//! With network namespaces (root, iproute2): node N runs in namespace
//! `rlchaos-nN` with address 10.77.0.N on a veth pair whose other end,
//! `rlchaos-hN`, hangs on the bridge `rlchaos-br` (10.77.0.254) in the
//! runner's namespace. Cutting a node off sets its bridge-side link down (no
//! FIN, no RST: packets vanish); delay and loss are netem (or, where the
//! kernel lacks it, a tbf rate limit) on both ends of its pair. Without namespaces every node listens on loopback and a cut is
//! a SIGSTOP of the process: the run says so.

use anyhow::{bail, Context, Result};
use std::process::Command;

const PREFIX: &str = "rlchaos";
const BRIDGE: &str = "rlchaos-br";

/// How nodes are separated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Each node in its own network namespace.
    Namespaces,
    /// All on loopback; partitions are SIGSTOPs.
    Loopback,
}

/// The nodes' network.
pub struct Net {
    /// How nodes are separated.
    pub mode: Mode,
    nodes: usize,
}

fn run(args: &[&str]) -> Result<()> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("running {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn ns(n: usize) -> String {
    format!("{PREFIX}-n{n}")
}

fn host_link(n: usize) -> String {
    format!("{PREFIX}-h{n}")
}

impl Net {
    /// Namespaces if this process may make them, else loopback; `nodes`
    /// nodes. Leftovers of an earlier run are removed first.
    pub fn set_up(nodes: usize, want_namespaces: bool) -> Net {
        let mut net = Net {
            mode: Mode::Loopback,
            nodes,
        };
        if !want_namespaces {
            return net;
        }
        net.mode = Mode::Namespaces;
        net.tear_down();
        match net.make() {
            Ok(()) => net,
            Err(e) => {
                eprintln!("network namespaces unavailable ({e:#}): nodes share loopback and partitions are simulated by SIGSTOP");
                net.tear_down();
                net.mode = Mode::Loopback;
                net
            }
        }
    }

    fn make(&self) -> Result<()> {
        run(&["ip", "link", "add", BRIDGE, "type", "bridge"])?;
        run(&["ip", "addr", "add", "10.77.0.254/24", "dev", BRIDGE])?;
        run(&["ip", "link", "set", BRIDGE, "up"])?;
        for n in 1..=self.nodes {
            let (ns, host) = (ns(n), host_link(n));
            run(&["ip", "netns", "add", &ns])?;
            run(&[
                "ip", "link", "add", &host, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            run(&["ip", "link", "set", &host, "master", BRIDGE])?;
            run(&["ip", "link", "set", &host, "up"])?;
            let addr = format!("10.77.0.{n}/24");
            run(&[
                "ip", "netns", "exec", &ns, "ip", "addr", "add", &addr, "dev", "eth0",
            ])?;
            run(&[
                "ip", "netns", "exec", &ns, "ip", "link", "set", "eth0", "up",
            ])?;
            run(&["ip", "netns", "exec", &ns, "ip", "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// Removes the namespaces and the bridge (their links go with them).
    pub fn tear_down(&self) {
        if self.mode != Mode::Namespaces {
            return;
        }
        for n in 1..=self.nodes {
            let _ = run(&["ip", "netns", "del", &ns(n)]);
            let _ = run(&["ip", "link", "del", &host_link(n)]);
        }
        let _ = run(&["ip", "link", "del", BRIDGE]);
    }

    /// Node `n`'s host: its namespace address, or loopback.
    pub fn host(&self, n: usize) -> String {
        match self.mode {
            Mode::Namespaces => format!("10.77.0.{n}"),
            Mode::Loopback => "127.0.0.1".into(),
        }
    }

    /// The command prefix that runs a program as node `n` (in its namespace).
    pub fn exec_prefix(&self, n: usize) -> Vec<String> {
        match self.mode {
            Mode::Namespaces => vec!["ip".into(), "netns".into(), "exec".into(), ns(n)],
            Mode::Loopback => Vec::new(),
        }
    }

    /// Cuts node `n` off from everyone (namespaces only).
    pub fn cut(&self, n: usize) -> Result<()> {
        run(&["ip", "link", "set", &host_link(n), "down"])
    }

    /// Reconnects node `n`.
    pub fn heal(&self, n: usize) -> Result<()> {
        run(&["ip", "link", "set", &host_link(n), "up"])
    }

    /// Delay and loss on node `n`'s link, both directions: netem's delay
    /// (with jitter) and random loss where the kernel has netem; otherwise a
    /// token bucket (tbf) throttling the link to `rate_kbit`, whose queue adds
    /// up to `delay_ms` and drops what overflows it. Says which it used.
    pub fn degrade(
        &self,
        n: usize,
        delay_ms: u32,
        loss_pct: u32,
        rate_kbit: u32,
    ) -> Result<String> {
        let (delay, jitter, loss) = (
            format!("{delay_ms}ms"),
            format!("{}ms", delay_ms / 2),
            format!("{loss_pct}%"),
        );
        let netem = ["netem", "delay", &delay, &jitter, "loss", &loss];
        if self.qdisc(n, &netem).is_ok() {
            return Ok(format!("netem delay {delay} +- {jitter}, loss {loss}"));
        }
        let rate = format!("{rate_kbit}kbit");
        let tbf = ["tbf", "rate", &rate, "burst", "16kb", "latency", &delay];
        self.qdisc(n, &tbf)?;
        Ok(format!(
            "tbf {rate}, queue up to {delay} then drops (no netem in this kernel)"
        ))
    }

    /// `qdisc` at the root of both ends of node `n`'s link.
    fn qdisc(&self, n: usize, qdisc: &[&str]) -> Result<()> {
        let host = host_link(n);
        let mut outside = vec!["tc", "qdisc", "replace", "dev", &host, "root"];
        outside.extend(qdisc);
        run(&outside)?;
        let ns = ns(n);
        let mut inside = vec![
            "ip", "netns", "exec", &ns, "tc", "qdisc", "replace", "dev", "eth0", "root",
        ];
        inside.extend(qdisc);
        run(&inside)
    }

    /// Takes delay and loss off node `n`'s link.
    pub fn restore(&self, n: usize) -> Result<()> {
        let host = host_link(n);
        let ns = ns(n);
        let _ = run(&["tc", "qdisc", "del", "dev", &host, "root"]);
        let _ = run(&[
            "ip", "netns", "exec", &ns, "tc", "qdisc", "del", "dev", "eth0", "root",
        ]);
        Ok(())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.tear_down();
    }
}
