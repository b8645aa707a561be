//! The meta-test: one seed run twice gives the same history, event for
//! event and millisecond for millisecond, so any failure replays from its
//! seed, also after other work in the same process.

use raftline_sim_tests::cluster::alone_in_process;
use raftline_sim_tests::scenario::{run, Scenario};

#[test]
fn one_seed_twice_gives_the_same_history() {
    // A seed with crashes: a crashed host's tasks are dropped in an order
    // that follows tokio's process-wide task numbers.
    let scenario = Scenario::from_seed(1364);
    let _alone = alone_in_process();
    let before_first = next_task_id();
    let first = run(&scenario).expect("first run");
    // Other work: the second run would start one task number further on,
    // modulo the four lists a runtime keeps its tasks in, than the first.
    while next_task_id() % 4 != (before_first + 1) % 4 {}
    let second = run(&scenario).expect("second run");
    let (a, b) = (first.trace(), second.trace());
    assert!(
        first.report.ok > 100,
        "the workload ran: {}",
        first.summary()
    );
    if a != b {
        // Both traces go to files for a diff.
        let dir = std::env::temp_dir();
        let (pa, pb) = (
            dir.join("raftline-sim-trace-1.txt"),
            dir.join("raftline-sim-trace-2.txt"),
        );
        let _ = std::fs::write(&pa, &a);
        let _ = std::fs::write(&pb, &b);
        let at = a
            .lines()
            .zip(b.lines())
            .position(|(x, y)| x != y)
            .unwrap_or(a.lines().count().min(b.lines().count()));
        let line = |t: &str| t.lines().nth(at).unwrap_or("(end)").to_string();
        panic!(
            "the traces differ at line {at}:\n  {}\n  {}\ndiff {} {}",
            line(&a),
            line(&b),
            pa.display(),
            pb.display()
        );
    }
}

/// The number tokio gives the next task spawned in this process (it spends
/// one on a task of its own).
fn next_task_id() -> u64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let task = runtime.spawn(async {});
    let id: u64 = task.id().to_string().parse().expect("a task number");
    runtime.block_on(task).expect("a task");
    id + 1
}
