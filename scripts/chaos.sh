#!/usr/bin/env bash
# Chaos against a real three-node cluster: faults from a seed under load, then
# a verifier over what the clients saw (cli/src/bin/raftline-chaos).
#
#   scripts/chaos.sh [--duration SECONDS] [--seed S] [--loopback] [--dir DIR]
#
# As root with iproute2, each node runs in its own network namespace on a
# bridge (10.77.0.0/24), so a partition is a link going down and netem adds
# delay and loss; elsewhere (or with --loopback) nodes share loopback and a
# partition becomes a SIGSTOP, and the run says so. Prints the seed, every
# fault, a summary table and any violation; exits 1 on a violation. Stops
# every process and removes every namespace it made, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p raftline --bin raftline --bin raftline-chaos
# The runner cleans up after itself; this covers it being interrupted.
cleanup() {
  pkill -KILL -f "raftline serve --config $PWD/target/chaos/" 2> /dev/null || true
  for n in 1 2 3; do ip netns del "rlchaos-n$n" 2> /dev/null || true; done
  ip link del rlchaos-br 2> /dev/null || true
}
trap cleanup EXIT
target/release/raftline-chaos --bin target/release/raftline "$@"
