#!/usr/bin/env bash
# Runs every test in the workspace: unit, property, crash-recovery, replication,
# end-to-end on real processes, the README quickstart (which runs
# scripts/cluster.sh and so the release binary), then unmodified Kafka clients
# against a three-node cluster (scripts/kafka-compat.sh: installs kcat and the
# Python clients if missing), then a short chaos round against a real
# three-node cluster (scripts/chaos.sh, fixed seed). This is
# the README's test command and the one .ci/run calls. Arguments go to
# `cargo test` (and skip the Kafka clients and the chaos round).
set -euo pipefail
cd "$(dirname "$0")/.."
# Built first, so the quickstart test does not compile while other tests run.
cargo build --release --locked -q -p raftline
echo "== cargo test (test.sh at ${SECONDS} s)"
cargo test --workspace --locked "$@"
if [ $# -eq 0 ]; then
  echo "== scripts/kafka-compat.sh (test.sh at ${SECONDS} s)"
  scripts/kafka-compat.sh
  echo "== scripts/chaos.sh --duration 20 --seed 7 (test.sh at ${SECONDS} s)"
  scripts/chaos.sh --duration 20 --seed 7
fi
