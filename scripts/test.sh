#!/usr/bin/env bash
# Runs every test in the workspace: unit, property, crash-recovery, replication,
# end-to-end on real processes, and the README quickstart (which runs
# scripts/cluster.sh and so the release binary). This is the README's test
# command and the one .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
# Built first, so the quickstart test does not compile while other tests run.
cargo build --release --locked -q -p raftline
exec cargo test --workspace --locked "$@"
