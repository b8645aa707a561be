//! A scenario (cluster size, fault schedule, workload: all from one seed),
//! the driver that runs it step by step, and its outcome.

use crate::checker::{check, Report};
use crate::cluster::{Probes, SimCluster};
use crate::faults::{Episode, FaultKind, Schedule, FAULT_END_MS, FAULT_START_MS, HEAL_MS};
use crate::history::{History, Op};
use crate::invariants::Invariants;
use crate::workload::{self, Shared, TopicSpec, WorkloadSpec};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::time::Duration;

/// The topic that partition-targeted faults aim at.
const TARGET_TOPIC: &str = "t0";

/// What one run does.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Its name (a fault kind, or a named regression case).
    pub name: String,
    /// The seed: turmoil's, Raft's, the clients' and the schedule's.
    pub seed: u64,
    /// Nodes (each both controller and broker).
    pub nodes: usize,
    /// The faults.
    pub schedule: Schedule,
    /// The clients.
    pub workload: WorkloadSpec,
}

fn workload_for(seed: u64, nodes: usize, rng: &mut StdRng) -> WorkloadSpec {
    let topic = |name: &str, partitions, replication_factor| TopicSpec {
        name: name.to_string(),
        partitions,
        replication_factor,
    };
    WorkloadSpec {
        topics: vec![topic("t0", 3, 3), topic("t1", 2, nodes.min(5) as u32)],
        late_topic: topic("t2", 2, 3),
        admin_at_ms: rng.random_range(FAULT_START_MS..FAULT_END_MS),
        producers: 3,
        group_members: 0,
        seed,
    }
}

impl Scenario {
    /// Everything from `seed`: 3 or 5 nodes, two to five faults, the first
    /// of kind `FaultKind::ALL[seed % 13]` (so any 13 consecutive seeds
    /// cover every kind), the others of any kind.
    pub fn from_seed(seed: u64) -> Scenario {
        let mut rng = StdRng::seed_from_u64(seed);
        let first = FaultKind::ALL[(seed % FaultKind::ALL.len() as u64) as usize];
        let rng = &mut rng;
        let nodes = if rng.random_bool(0.5) { 3 } else { 5 };
        let mut kinds = vec![first];
        kinds.extend(FaultKind::ALL);
        let schedule = Schedule::random(rng, &kinds);
        let workload = workload_for(seed, nodes, rng);
        Scenario {
            name: format!("{first:?}"),
            seed,
            nodes,
            schedule,
            workload,
        }
    }

    /// A fixed schedule on `nodes` nodes (a named regression case); the
    /// workload and every other choice still follow `seed`.
    pub fn named(name: &str, seed: u64, nodes: usize, episodes: Vec<Episode>) -> Scenario {
        let mut rng = StdRng::seed_from_u64(seed);
        let workload = workload_for(seed, nodes, &mut rng);
        Scenario {
            name: name.to_string(),
            seed,
            nodes,
            schedule: Schedule { episodes },
            workload,
        }
    }

    /// Adds the consumer group clients when `SIM_GROUPS` is set (the long
    /// mode's and one seed's switch; CI's seeds run without them).
    pub fn with_groups_from_env(mut self) -> Scenario {
        if std::env::var_os("SIM_GROUPS").is_some() {
            self.workload.group_members = 3;
        }
        self
    }

    /// The command that replays this run.
    pub fn replay_command(&self) -> String {
        format!(
            "{}SIM_SEED={} cargo test -p raftline-sim-tests --test sim seeds::one_seed -- --exact --nocapture",
            if self.workload.group_members > 0 { "SIM_GROUPS=1 " } else { "" },
            self.seed
        )
    }
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Every operation.
    pub history: History,
    /// The checker's findings on it.
    pub report: Report,
    /// Invariant breaches (per step, and the final audits).
    pub violations: Vec<String>,
    /// For each crashed partition leader: simulated ms from the crash to the
    /// first acknowledged write to that partition.
    pub failovers_ms: Vec<u64>,
    /// For each crashed partition leader: simulated ms from the crash to a
    /// new leader in a newer epoch (as the replicas see it).
    pub elections_ms: Vec<u64>,
    /// Connections the nodes opened to one another over the run.
    pub node_dials: u64,
}

impl Outcome {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.report.valid() && self.violations.is_empty()
    }

    /// The trace: the history and the findings, as text.
    pub fn trace(&self) -> String {
        format!(
            "{}{:?}\n{:?}\n",
            self.history.trace(),
            self.report,
            self.violations
        )
    }

    /// A summary for a failure message.
    pub fn summary(&self) -> String {
        format!(
            "sends ok {} info {} fail {}, records read {}; anomalies {:#?}; violations {:#?}",
            self.report.ok,
            self.report.info,
            self.report.fail,
            self.report.reads,
            self.report.anomalies,
            self.violations
        )
    }
}

/// How a fault was applied (its targets, fixed at its start).
#[derive(Clone, Debug)]
enum Applied {
    /// Links cut between these pairs of nodes.
    Cut(Vec<(usize, usize)>),
    /// Messages from `from` to the others dropped.
    OneWay(usize),
    /// Held links of a node.
    Paused(usize),
    Loss(f64),
    Delay(Duration),
    /// Nodes crashed (restarted at the end).
    Crashed(Vec<usize>),
    /// Nothing to do (no target found).
    Nothing,
}

struct Driver<'a> {
    cluster: SimCluster<'a>,
    probes: Probes,
    history: History,
    active: Vec<(Episode, Applied)>,
    /// Crashed partition leaders, to time the failovers.
    crashes: Vec<Crash>,
}

/// A partition whose leader crashed.
struct Crash {
    at_ms: u64,
    tp: (String, u32),
    epoch: u32,
    /// When a replica first led it in a newer epoch.
    elected_ms: Option<u64>,
}

impl Driver<'_> {
    fn now_ms(&self) -> u64 {
        self.cluster.sim.elapsed().as_millis() as u64
    }

    fn note(&self, what: String) {
        tracing::info!(target: "sim", "{what}");
        self.history
            .record_at(self.now_ms(), "driver", Op::Fault(what));
    }

    fn running(&mut self) -> Vec<usize> {
        (1..=self.cluster.size())
            .filter(|&i| self.cluster.is_running(i))
            .collect()
    }

    fn pick_node(&mut self, pick: u64) -> Option<usize> {
        let running = self.running();
        (!running.is_empty()).then(|| running[(pick % running.len() as u64) as usize])
    }

    fn target_partition(pick: u64) -> (String, u32) {
        (TARGET_TOPIC.to_string(), ((pick >> 8) % 3) as u32)
    }

    /// The running nodes hosting `tp` other than `leader`.
    fn followers(&self, tp: &(String, u32), leader: usize) -> Vec<usize> {
        self.probes
            .replicas_of(&tp.0, tp.1)
            .into_keys()
            .filter(|&i| i != leader)
            .collect()
    }

    /// The partitions `node` leads, with their epochs.
    fn led_by(&self, node: usize) -> Vec<((String, u32), u32)> {
        self.probes
            .running()
            .get(&node)
            .map(|probe| {
                probe
                    .replicas
                    .partitions()
                    .iter()
                    .filter(|p| p.progress().leader)
                    .map(|p| {
                        let tp = p.topic_partition();
                        (
                            (tp.topic.clone(), tp.partition),
                            p.progress().leader_epoch.0,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Notes when each crashed leader's partition has a new leader.
    fn watch_elections(&mut self) {
        let now = self.now_ms();
        let waiting = self.crashes.iter().any(|c| c.elected_ms.is_none());
        if !waiting {
            return;
        }
        for crash in self.crashes.iter_mut().filter(|c| c.elected_ms.is_none()) {
            let elected = self
                .probes
                .replicas_of(&crash.tp.0, crash.tp.1)
                .values()
                .any(|p| {
                    let progress = p.progress();
                    progress.leader && progress.leader_epoch.0 > crash.epoch
                });
            if elected {
                crash.elected_ms = Some(now - crash.at_ms);
            }
        }
    }

    fn crash(&mut self, nodes: Vec<usize>, torn: u64, leader_crash: bool) -> Applied {
        let now = self.now_ms();
        for &i in &nodes {
            if leader_crash {
                for (tp, epoch) in self.led_by(i) {
                    self.crashes.push(Crash {
                        at_ms: now,
                        tp,
                        epoch,
                        elected_ms: None,
                    });
                }
            }
            self.cluster.crash(i, torn ^ i as u64);
        }
        Applied::Crashed(nodes)
    }

    fn cut_all(&mut self, node: usize) -> Applied {
        Applied::Cut(
            (1..=self.cluster.size())
                .filter(|&j| j != node)
                .map(|j| (node, j))
                .collect(),
        )
    }

    fn apply(&mut self, e: &Episode) -> Applied {
        let n = self.cluster.size();
        let tp = Self::target_partition(e.pick);
        let leader = self.probes.partition_leader(&tp.0, tp.1);
        let applied = match e.kind {
            FaultKind::IsolatePartitionLeader => match leader {
                Some(l) => self.cut_all(l),
                None => Applied::Nothing,
            },
            FaultKind::IsolateFollowers => match leader {
                Some(l) => {
                    Applied::Cut(self.followers(&tp, l).into_iter().map(|f| (l, f)).collect())
                }
                None => Applied::Nothing,
            },
            FaultKind::IsolateRaftLeader => match self.probes.raft_leader() {
                Some(l) => self.cut_all(l),
                None => Applied::Nothing,
            },
            FaultKind::Split => {
                let mut nodes: Vec<usize> = (1..=n).collect();
                nodes.shuffle(&mut StdRng::seed_from_u64(e.pick));
                let minority: Vec<usize> = nodes[..n / 2].to_vec();
                let mut cuts = Vec::new();
                for &a in &minority {
                    for b in (1..=n).filter(|b| !minority.contains(b)) {
                        cuts.push((a, b));
                    }
                }
                Applied::Cut(cuts)
            }
            FaultKind::OneWay => Applied::OneWay(1 + (e.pick % n as u64) as usize),
            FaultKind::Loss => Applied::Loss(0.001 * (1 + e.pick % 8) as f64),
            FaultKind::Delay => Applied::Delay(Duration::from_millis(20 + e.pick % 300)),
            FaultKind::Pause => Applied::Paused(1 + (e.pick % n as u64) as usize),
            FaultKind::Crash => match self.pick_node(e.pick) {
                Some(i) => self.crash(vec![i], e.pick, false),
                None => Applied::Nothing,
            },
            FaultKind::CrashPartitionLeader => match leader {
                Some(l) => self.crash(vec![l], e.pick, true),
                None => Applied::Nothing,
            },
            FaultKind::CrashFollower => {
                let followers = leader.map(|l| self.followers(&tp, l)).unwrap_or_default();
                if followers.is_empty() {
                    Applied::Nothing
                } else {
                    let f = followers[(e.pick % followers.len() as u64) as usize];
                    self.crash(vec![f], e.pick, false)
                }
            }
            FaultKind::CrashAll => {
                let running = self.running();
                self.crash(running, e.pick, false)
            }
            FaultKind::Corrupt => match self.pick_node(e.pick) {
                Some(i) => {
                    let dirs: Vec<String> = self
                        .probes
                        .running()
                        .get(&i)
                        .map(|probe| {
                            probe
                                .replicas
                                .partitions()
                                .iter()
                                .map(|p| p.topic_partition().dir_name())
                                .collect()
                        })
                        .unwrap_or_default();
                    let flipped = self.cluster.corrupt(i, &dirs, e.pick);
                    self.note(format!("flipped a byte on n{i}: {flipped:?}"));
                    self.crash(vec![i], e.pick, false)
                }
                None => Applied::Nothing,
            },
        };
        self.note(format!(
            "start {:?} (t0/{} leader {leader:?}): {applied:?}",
            e.kind, tp.1
        ));
        self.enforce(&applied);
        applied
    }

    /// Puts a network fault in place (again, after a rebuild).
    fn enforce(&mut self, applied: &Applied) {
        match applied {
            Applied::Cut(pairs) => {
                for &(a, b) in pairs {
                    self.cluster.cut(a, b);
                }
            }
            Applied::OneWay(i) => self.cluster.one_way(*i),
            Applied::Paused(i) => self.cluster.hold(*i),
            Applied::Loss(rate) => self.cluster.set_loss(*rate),
            Applied::Delay(max) => self.cluster.set_max_latency(*max),
            Applied::Crashed(_) | Applied::Nothing => {}
        }
    }

    fn end(&mut self, index: usize) {
        let (episode, applied) = self.active.remove(index);
        self.note(format!("end {:?}: {applied:?}", episode.kind));
        if let Applied::Crashed(nodes) = &applied {
            let still_down: BTreeSet<usize> = self
                .active
                .iter()
                .flat_map(|(_, a)| match a {
                    Applied::Crashed(nodes) => nodes.clone(),
                    _ => Vec::new(),
                })
                .collect();
            for &i in nodes {
                if !still_down.contains(&i) && !self.cluster.is_running(i) {
                    self.cluster.restart(i);
                }
            }
        } else {
            // Rebuild the network from the faults still in effect.
            self.cluster.heal_all();
            let active: Vec<Applied> = self.active.iter().map(|(_, a)| a.clone()).collect();
            for a in &active {
                self.enforce(a);
            }
        }
    }

    fn heal(&mut self) {
        while !self.active.is_empty() {
            self.end(0);
        }
        self.cluster.heal_all();
        for i in 1..=self.cluster.size() {
            if !self.cluster.is_running(i) {
                self.cluster.restart(i);
            }
        }
        self.history.record_at(self.now_ms(), "driver", Op::Healed);
    }
}

/// Runs `scenario` to the end; `Err` if the simulation itself failed (a
/// host panicked or the time ran out).
pub fn run(scenario: &Scenario) -> Result<Outcome, String> {
    let mut cluster = SimCluster::new(scenario.nodes, scenario.seed);
    let servers = cluster.servers();
    let history = History::new();
    let shared = Shared::default();
    let probes = cluster.probes();
    let spec = scenario.workload.clone();
    cluster.client(
        "admin",
        workload::admin(spec.clone(), scenario.nodes, history.clone()),
    );
    for k in 1..=spec.producers {
        cluster.client(
            &format!("p{k}"),
            workload::producer(
                spec.clone(),
                k,
                servers.clone(),
                history.clone(),
                shared.clone(),
            ),
        );
    }
    for topic in &spec.topics {
        cluster.client(
            &format!("c-{}", topic.name),
            workload::consumer(
                topic.clone(),
                servers.clone(),
                history.clone(),
                shared.clone(),
            ),
        );
    }
    if spec.group_members > 0 {
        for k in 1..=spec.group_members {
            let crash_ms = 12_000 + 4_000 * k as u64;
            cluster.client(
                &format!("g{k}"),
                workload::group_member(k, crash_ms, servers.clone(), shared.clone()),
            );
        }
        cluster.client(
            "gw",
            workload::group_watcher(servers.clone(), shared.clone()),
        );
    }
    cluster.client(
        "final",
        workload::final_phase(
            spec.clone(),
            servers.clone(),
            history.clone(),
            shared.clone(),
            probes.clone(),
        ),
    );
    let mut driver = Driver {
        cluster,
        probes: probes.clone(),
        history: history.clone(),
        active: Vec::new(),
        crashes: Vec::new(),
    };
    let disks = driver.cluster.log_disks();
    let mut pending: Vec<Episode> = scenario.schedule.episodes.clone();
    pending.sort_by_key(|e| std::cmp::Reverse(e.start_ms));
    let mut invariants = Invariants::new();
    let mut healed = false;
    loop {
        let done = driver
            .cluster
            .sim
            .step()
            .map_err(|e| format!("the simulation failed: {e}"))?;
        let now = driver.now_ms();
        invariants.check(&probes, now);
        if now.is_multiple_of(1_000) || done {
            invariants.check_logs(&probes, &disks, now);
        }
        driver.watch_elections();
        if done {
            break;
        }
        if !healed {
            while let Some(k) = driver.active.iter().position(|(e, _)| e.end_ms() <= now) {
                driver.end(k);
            }
            while pending.last().is_some_and(|e| e.start_ms <= now) {
                if let Some(e) = pending.pop() {
                    let applied = driver.apply(&e);
                    driver.active.push((e, applied));
                }
            }
            if now >= HEAL_MS {
                driver.heal();
                healed = true;
            }
        }
    }
    let events = history.events();
    let report = check(&events);
    let mut violations = invariants.violations().to_vec();
    violations.extend(
        shared
            .violations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned(),
    );
    let mut failovers_ms = Vec::new();
    for crash in &driver.crashes {
        let (topic, partition) = &crash.tp;
        let first_ack = events.iter().find(|e| {
            e.at_ms > crash.at_ms
                && matches!(&e.op, Op::SendOk { topic: t, partition: p, .. } if t == topic && p == partition)
        });
        if let Some(e) = first_ack {
            failovers_ms.push(e.at_ms - crash.at_ms);
        }
    }
    let elections_ms = driver.crashes.iter().filter_map(|c| c.elected_ms).collect();
    Ok(Outcome {
        history,
        report,
        violations,
        failovers_ms,
        elections_ms,
        node_dials: probes.dials(),
    })
}
