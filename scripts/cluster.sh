#!/usr/bin/env bash
# Starts a local three-node Raftline cluster: scripts/cluster.sh up|down|status
#
# Not built yet: `raftline serve` arrives with the controller quorum and the
# replicated brokers (issues 3 and 4). The command and its place in the README
# are fixed now so the quickstart never changes.
set -euo pipefail

usage() {
  echo "usage: scripts/cluster.sh up|down|status" >&2
  exit 2
}

case "${1:-}" in
  up | down | status)
    echo "scripts/cluster.sh $1: the three-node cluster is not built yet." >&2
    echo "It arrives with 'raftline serve' (the Raft metadata quorum and replicated brokers)." >&2
    echo "Until then, 'scripts/test.sh' runs everything that is built, and" >&2
    echo "'cargo run -p raftline -- dump-log DIR' inspects a partition directory." >&2
    exit 1
    ;;
  *) usage ;;
esac
