#!/usr/bin/env bash
# Benchmarks with their raw baselines measured in the same run.
#
#   scripts/bench.sh log      the log engine (criterion) + disk baselines (dd)
#   scripts/bench.sh produce  produce throughput and end-to-end latency: 1 node
#                             RF 1, then 3 nodes RF 3 acks=all (`raftline bench`)
#                             + disk baselines
#
# Files go under $RAFTLINE_BENCH_DIR (default: target/bench-tmp, on the same disk
# as the build). Release mode always.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${RAFTLINE_BENCH_DIR:-$PWD/target/bench-tmp}"
mkdir -p "$dir"
export RAFTLINE_BENCH_DIR="$dir"

# MB/s from dd's summary line ("... copied, 1.23 s, 456 MB/s").
dd_rate() { LC_ALL=C dd "$@" 2>&1 | tail -n 1 | sed -E 's/.*, ([0-9.]+ [kMG]?B\/s)$/\1/'; }

baselines() {
  local f="$dir/dd.bin"
  echo "== raw disk baselines in $dir ($(nproc) cores)"
  echo "sequential write 1 MiB blocks, 2 GiB, one fdatasync at end: $(dd_rate if=/dev/zero of="$f" bs=1M count=2048 conv=fdatasync)"
  echo "sequential write 16 KiB blocks, 1 GiB, one fdatasync at end: $(dd_rate if=/dev/zero of="$f" bs=16k count=65536 conv=fdatasync)"
  echo "sequential write 16 KiB blocks, fdatasync each (O_DSYNC), 160 MiB: $(dd_rate if=/dev/zero of="$f" bs=16k count=10240 oflag=dsync)"
  echo "sequential read 1 MiB blocks, 1 GiB, page cache: $(dd_rate if="$f" of=/dev/null bs=1M count=1024 2>/dev/null || true)"
  rm -f "$f"
}

# Waits until `cluster describe` at $1 shows $2 live brokers.
wait_live() {
  for _ in $(seq 1 300); do
    if [ "$(target/release/raftline cluster describe --bootstrap-server "$1" --output json 2>/dev/null | grep -c '"fenced": false')" -ge "$2" ]; then
      return 0
    fi
    sleep 0.2
  done
  echo "cluster at $1 did not come up" >&2
  exit 1
}

produce_runs() {
  local servers=$1 topic=$2
  for args in "--record-size 1024 --batch-size 500 --producers 4" "--record-size 100 --batch-size 2000 --producers 4"; do
    echo "-- bench produce --records 300000 $args"
    # shellcheck disable=SC2086
    target/release/raftline bench produce --bootstrap-server "$servers" --topic "$topic" --records 300000 $args
  done
  echo "-- bench e2e --rate 5000 --record-size 1024 --linger-ms 5 --duration-ms 10000"
  target/release/raftline bench e2e --bootstrap-server "$servers" --topic "$topic" --rate 5000 \
    --record-size 1024 --linger-ms 5 --duration-ms 10000
}

produce_bench() {
  cargo build --release --locked -q -p raftline --bin raftline
  local rl=target/release/raftline
  echo "== 1 node, RF 1 (acks=all is the leader alone)"
  rm -rf "$dir/one"
  $rl serve --node-id 1 --data-dir "$dir/one" --client-addr 127.0.0.1:51051 \
    --peer-addr 127.0.0.1:51151 --controllers 1=127.0.0.1:51151 > "$dir/one.log" 2>&1 &
  local pid=$!
  trap 'kill $pid 2>/dev/null || true' EXIT
  wait_live 127.0.0.1:51051 1
  $rl topic create bench --partitions 3 --replication-factor 1 --bootstrap-server 127.0.0.1:51051 > /dev/null
  produce_runs 127.0.0.1:51051 bench
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  trap - EXIT
  echo "== 3 nodes, RF 3, acks=all"
  export RAFTLINE_CLUSTER_DIR="$dir/cluster" RAFTLINE_CLUSTER_CLIENT_BASE=51250 RAFTLINE_CLUSTER_PEER_BASE=51350
  scripts/cluster.sh clean > /dev/null 2>&1 || true
  scripts/cluster.sh up > /dev/null
  trap 'scripts/cluster.sh clean > /dev/null 2>&1 || true' EXIT
  local three=127.0.0.1:51251,127.0.0.1:51252,127.0.0.1:51253
  $rl topic create bench --partitions 3 --replication-factor 3 --bootstrap-server "$three" > /dev/null
  produce_runs "$three" bench
  echo "-- bench consume (every record of the topic, from the start)"
  $rl bench consume --bootstrap-server "$three" --topic bench
  failover_run "$three" bench
}

# Failover unavailability: a 15 s produce run (acks=all, 1 KiB) with the leader
# of partition 0 SIGKILLed 5 s in; the longest gap between acknowledgements.
failover_run() {
  local servers=$1 topic=$2 rl=target/release/raftline
  echo "-- failover: bench produce for 15 s, the leader of $topic-0 SIGKILLed at 5 s"
  $rl bench produce --bootstrap-server "$servers" --topic "$topic" --duration-ms 15000 \
    --record-size 1024 --batch-size 100 --producers 4 --output json > "$dir/failover.json" &
  local run=$!
  sleep 5
  local leader
  leader=$($rl topic describe "$topic" --bootstrap-server "$servers" --output json \
    | grep -o '"leader": *[0-9]*' | head -n 1 | grep -o '[0-9]*$')
  echo "killing node $leader"
  scripts/cluster.sh kill "$leader" > /dev/null
  wait "$run"
  echo "longest gap between acknowledgements: $(grep -o '"longest_ack_gap_ms": *[0-9.]*' "$dir/failover.json" | grep -o '[0-9.]*$') ms" \
    "($(grep -o '"records_per_sec": *[0-9.]*' "$dir/failover.json" | grep -o '[0-9]*' | head -n 1) records/s over the run)"
  scripts/cluster.sh restart "$leader" > /dev/null
}

case "${1:-}" in
  produce)
    baselines
    produce_bench
    baselines
    ;;
  log)
    baselines
    echo "== cargo bench -p raftline-broker --bench log"
    cargo bench -p raftline-broker --bench log -- "${@:2}"
    baselines
    ;;
  *)
    echo "usage: scripts/bench.sh log [criterion filter] | produce" >&2
    exit 2
    ;;
esac
