//! Faults at random from a seed, one at a time, each healed before the next.

use crate::cluster::Cluster;
use crate::locked;
use crate::net::Mode;
use anyhow::Result;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One fault as injected.
#[derive(Clone, Debug)]
pub struct Injected {
    /// When it began, since the load started.
    pub at: Duration,
    /// How long it held.
    pub held: Duration,
    /// What it was.
    pub what: String,
}

/// The kinds, drawn uniformly.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Kill,
    Pause,
    IsolateLeader,
    Isolate,
    Degrade,
    KillUnderLoad,
}

const KINDS: [Kind; 6] = [
    Kind::Kill,
    Kind::Pause,
    Kind::IsolateLeader,
    Kind::Isolate,
    Kind::Degrade,
    Kind::KillUnderLoad,
];

/// Injects faults from `seed` until `until`; `burst` asks the load for heavy
/// writes (the fsync-heavy kill). Returns what it did.
pub fn run(
    cluster: Arc<Mutex<Cluster>>,
    seed: u64,
    topic: &str,
    started: Instant,
    until: Instant,
    burst: Arc<AtomicBool>,
) -> Result<Vec<Injected>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut done = Vec::new();
    let nodes = locked(&cluster).nodes();
    loop {
        std::thread::sleep(Duration::from_millis(rng.random_range(1_000..3_000)));
        if Instant::now() >= until {
            return Ok(done);
        }
        let kind = KINDS[rng.random_range(0..KINDS.len())];
        let node = rng.random_range(1..=nodes);
        let hold = Duration::from_millis(rng.random_range(1_000..4_000));
        let at = started.elapsed();
        let what = match kind {
            Kind::Kill => {
                locked(&cluster).kill(node)?;
                std::thread::sleep(hold);
                locked(&cluster).spawn(node)?;
                format!("SIGKILL node {node}, restarted")
            }
            Kind::Pause => {
                locked(&cluster).pause(node)?;
                std::thread::sleep(hold);
                locked(&cluster).resume(node)?;
                format!("SIGSTOP node {node}, SIGCONT")
            }
            Kind::IsolateLeader | Kind::Isolate => {
                let (node, whose) = match kind {
                    Kind::IsolateLeader => {
                        let p = rng.random_range(0..3);
                        let leader = locked(&cluster).leader_of(topic, p);
                        (leader.unwrap_or(node), format!("leader of {topic}-{p}, "))
                    }
                    _ => (node, String::new()),
                };
                locked(&cluster).cut(node)?;
                std::thread::sleep(hold);
                locked(&cluster).reconnect(node)?;
                let how = match locked(&cluster).net.mode {
                    Mode::Namespaces => "link down",
                    Mode::Loopback => "SIGSTOP in place of a partition",
                };
                format!("cut off {whose}node {node} ({how}), 2/1 split")
            }
            Kind::Degrade => {
                let delay = rng.random_range(5..80);
                let loss = rng.random_range(0..15);
                let rate = rng.random_range(500..8_000);
                let mode = locked(&cluster).net.mode;
                if mode == Mode::Namespaces {
                    let how = locked(&cluster).net.degrade(node, delay, loss, rate)?;
                    std::thread::sleep(hold);
                    locked(&cluster).net.restore(node)?;
                    format!("degraded node {node}'s link: {how}")
                } else {
                    std::thread::sleep(hold);
                    "nothing (delay and loss need namespaces)".to_string()
                }
            }
            Kind::KillUnderLoad => {
                burst.store(true, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(rng.random_range(300..1_000)));
                locked(&cluster).kill(node)?;
                burst.store(false, Ordering::SeqCst);
                std::thread::sleep(hold);
                locked(&cluster).spawn(node)?;
                format!("SIGKILL node {node} under a write burst (fsync load), restarted")
            }
        };
        let held = started.elapsed().saturating_sub(at);
        println!(
            "  +{:>6.1} s  {what} (held {:.1} s)",
            at.as_secs_f64(),
            held.as_secs_f64()
        );
        done.push(Injected { at, held, what });
    }
}
