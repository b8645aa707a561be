//! The meta-test: one seed run twice gives the same history, event for
//! event and millisecond for millisecond, so any failure replays from its
//! seed.

use raftline_sim_tests::scenario::{run, Scenario};

#[test]
fn one_seed_twice_gives_the_same_history() {
    let scenario = Scenario::from_seed(3);
    let first = run(&scenario).expect("first run");
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
