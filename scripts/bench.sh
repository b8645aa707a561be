#!/usr/bin/env bash
# Benchmarks with their raw baselines measured in the same run.
#
#   scripts/bench.sh log      the log engine (criterion) + disk baselines (dd)
#   scripts/bench.sh produce  the standard suite (`raftline bench`): 1 node RF 1,
#                             then 3 nodes RF 3 with acks=all and acks=1, 1 KiB and
#                             100 B records; consumer throughput; produce and
#                             end-to-end latency at half the 3-node acks=all
#                             peak (open loop, one producer); failover (the
#                             longest gap between acknowledgements when a
#                             partition leader is SIGKILLed) + disk and loopback
#                             TCP baselines; each result also as a fraction of its
#                             baseline, and each produce run with what the disk
#                             under the data wrote meanwhile (MB/s, % busy)
#   scripts/bench.sh --kafka  the same produce and consume through a Kafka client
#                             (kcat): 1M x 100 B and 500k x 1 KiB records, acks=all,
#                             1 partition, on 1 node RF 1 and 3 nodes RF 3, with
#                             `raftline bench` (gRPC) on the same shapes beside it;
#                             records/s, MB/s and the brokers' CPU-seconds per GB
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
  disk_cpu_baseline
}

# What one durable copy costs the CPU, same run: the log's own write + fdatasync
# + page-cache release, at 200 KiB (a replica's write at half the 3-node peak)
# and 1 MiB per fsync.
disk_cpu_baseline() {
  local size
  cargo build --release --locked -q -p raftline --bin raftline
  for size in 204800 1048576; do
    target/release/raftline bench disk --record-size "$size" --duration-ms 3000 --dir "$dir" --output json > "$dir/disk.json"
    echo "write + fdatasync of $((size / 1024)) KiB each (bench disk): $(round "$(field "$dir/disk.json" mb_per_sec)") MB/s, p50 $(field "$dir/disk.json" p50) ms; CPU per GB: user $(round2 "$(field "$dir/disk.json" user)") s, system $(round2 "$(field "$dir/disk.json" system)") s"
  done
}

# Loopback TCP, same run: 64 KiB writes over one connection (MB/s) and a
# 1-byte ping-pong (round trip).
loopback_mbps=0
loopback_baseline() {
  target/release/raftline bench loopback --record-size 65536 --duration-ms 3000 --output json > "$dir/loopback.json"
  loopback_mbps=$(field "$dir/loopback.json" mb_per_sec)
  echo "loopback TCP, 64 KiB writes, one connection: $(round "$loopback_mbps") MB/s; 1-byte round trip p50 $(field "$dir/loopback.json" p50) ms, p99 $(field "$dir/loopback.json" p99) ms; CPU per GB (sender and reader): user $(round2 "$(field "$dir/loopback.json" user)") s, system $(round2 "$(field "$dir/loopback.json" system)") s"
}

# A number from a `raftline bench --output json` report: field FILE KEY.
field() { grep -o "\"$2\": *[0-9.e+-]*" "$1" | head -n 1 | sed -E 's/.*: *//'; }
round() { awk -v a="$1" 'BEGIN { printf "%.0f", a }'; }
round2() { awk -v a="$1" 'BEGIN { printf "%.2f", a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

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

# Waits until replication has caught up with what was produced: the topic's
# high watermarks unchanged over three polls 200 ms apart (followers fetch again
# at once while they are behind). A run that starts while the followers still
# copy the previous run's backlog (acks=1 lets the leader run ahead) would
# measure that backlog.
settle() {
  local servers=$1 topic=$2 last="" same=0 now
  for _ in $(seq 1 300); do
    now=$(target/release/raftline topic describe "$topic" --bootstrap-server "$servers" --output json \
      | grep -o '"high_watermark": *[0-9]*' | tr -d ' \n')
    if [ "$now" = "$last" ]; then
      same=$((same + 1))
      [ "$same" -ge 3 ] && return 0
    else
      same=0
      last=$now
    fi
    sleep 0.2
  done
  echo "(replication of $topic still moving after 60 s; measuring anyway)"
}

# The disk under $dir, as /proc/diskstats names it (empty if not listed:
# then no disk figures are printed).
disk_dev=$(basename "$(df --output=source "$dir" 2>/dev/null | tail -n 1)")
grep -q " $disk_dev " /proc/diskstats 2>/dev/null || disk_dev=""
# "sectors-written ms-busy" of that disk so far.
disk_counters() { awk -v d="$disk_dev" '$3 == d { print $10, $13 }' /proc/diskstats; }
# What the disk did between two disk_counters readings over SECONDS.
disk_line() {
  awk -v a="$1" -v b="$2" -v secs="$3" 'BEGIN { split(a, x, " "); split(b, y, " ");
    printf "disk: %.0f MB/s written, busy %.0f%% of the time", (y[1] - x[1]) * 512 / 1e6 / secs, (y[2] - x[2]) / 10 / secs }'
}

# One bench produce run, printed with its fractions: run NAME ARGS...; the
# report stays in $dir/NAME.json.
declare -A one_node
produce_run() {
  local name=$1 servers=$2 topic=$3
  shift 3
  settle "$servers" "$topic"
  echo "-- bench produce $*"
  local disk_before started
  disk_before=$(disk_counters)
  started=$(now)
  target/release/raftline bench produce --bootstrap-server "$servers" --topic "$topic" --output json "$@" > "$dir/$name.json"
  local mbps
  mbps=$(field "$dir/$name.json" mb_per_sec)
  local line
  line="$(round "$(field "$dir/$name.json" records_per_sec)") records/s, $(round "$mbps") MB/s, send p50 $(field "$dir/$name.json" p50) ms, p99 $(field "$dir/$name.json" p99) ms; $(ratio "$mbps" "$loopback_mbps") of loopback TCP"
  case "$name" in
    one-*) one_node[${name#one-}]=$mbps ;;
    *) line="$line, $(ratio "$mbps" "${one_node[${name#*-}]:-0}") of 1 node RF 1" ;;
  esac
  if [ -n "$disk_dev" ]; then
    line="$line; $(disk_line "$disk_before" "$(disk_counters)" "$(awk -v a="$started" -v b="$(now)" 'BEGIN { print b - a }')")"
  fi
  echo "$line"
}

# $1: label (one, acks1, acksall), $2 servers, $3 topic, $4 acks.
produce_runs() {
  local label=$1 servers=$2 topic=$3 acks=$4
  # Warm-up, not reported: connections, the client's metadata and the first
  # segment files, so each measured run starts from the same state.
  target/release/raftline bench produce --bootstrap-server "$servers" --topic "$topic" --acks "$acks" \
    --records 60000 --record-size 1024 --batch-size 500 --producers 4 > /dev/null
  # Timed runs: a fixed record count (300,000) took 0.25 s on one node once
  # the transport carried 1.3 GB/s, too short to be more than noise.
  produce_run "$label-1k" "$servers" "$topic" --acks "$acks" --duration-ms 3000 --record-size 1024 --batch-size 500 --producers 4
  produce_run "$label-100" "$servers" "$topic" --acks "$acks" --duration-ms 3000 --record-size 100 --batch-size 2000 --producers 4
}

# Latency at half the 3-node acks=all 1 KiB peak, open loop: one producer
# queues each record when it is due (Kafka's producer-perf-test
# --throughput), each partition's lane sends what queued while its previous
# batch was in flight (linger 0, up to 500 records). First the produce
# latency alone (intended send to acknowledgement), then end to end with a
# consumer reading along.
e2e_run() {
  local servers=$1 topic=$2
  # The acks=1 runs before leave the followers copying their backlog: the
  # open loop starts once replication has caught up, as each produce run does.
  settle "$servers" "$topic"
  local rate
  rate=$(awk -v r="$(field "$dir/acksall-1k.json" records_per_sec)" 'BEGIN { printf "%d", r / 2 }')
  echo "-- bench produce --rate $rate (half the acks=all 1 KiB peak) --producers 1 --record-size 1024 --batch-size 500 --linger-ms 0 --duration-ms 10000"
  target/release/raftline bench produce --bootstrap-server "$servers" --topic "$topic" --rate "$rate" \
    --producers 1 --record-size 1024 --batch-size 500 --linger-ms 0 --duration-ms 10000 --output json > "$dir/paced.json"
  echo "$(round "$(field "$dir/paced.json" records_per_sec)") records/s; produce latency (intended send to acknowledgement) p50 $(field "$dir/paced.json" p50) ms, p99 $(field "$dir/paced.json" p99) ms, p99.9 $(field "$dir/paced.json" p999) ms, max $(field "$dir/paced.json" max) ms"
  echo "-- bench e2e --rate $rate --producers 1 --record-size 1024 --batch-size 500 --linger-ms 0 --duration-ms 10000"
  target/release/raftline bench e2e --bootstrap-server "$servers" --topic "$topic" --rate "$rate" \
    --producers 1 --record-size 1024 --batch-size 500 --linger-ms 0 --duration-ms 10000 --output json > "$dir/e2e.json"
  echo "$(round "$(field "$dir/e2e.json" records_per_sec)") records/s delivered; produce-to-consume latency p50 $(field "$dir/e2e.json" p50) ms, p99 $(field "$dir/e2e.json" p99) ms, p99.9 $(field "$dir/e2e.json" p999) ms, max $(field "$dir/e2e.json" max) ms (loopback round trip p99 $(field "$dir/loopback.json" p99) ms)"
  sed -n '/"produce_latency_ms"/,/}/p' "$dir/e2e.json" > "$dir/e2e-acked.json"
  echo "its producer's latency p50 $(field "$dir/e2e-acked.json" p50) ms, p99 $(field "$dir/e2e-acked.json" p99) ms, max $(field "$dir/e2e-acked.json" max) ms"
}

# Nothing may listen on the suite's ports already: a cluster left running
# there would answer in place of the one the suite starts. The ports (19xxx)
# lie below Linux's ephemeral range (32768-60999), which outgoing connections
# draw from, and below the tests' ports (20000 up): a node of the suite once
# could not bind a port of 51xxx an outgoing connection held.
ports_free() {
  local p
  for p in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "port $p on 127.0.0.1 is in use; the suite needs it. Stop what listens there (a cluster left running: scripts/cluster.sh clean, with its RAFTLINE_CLUSTER_DIR) and run again." >&2
      exit 1
    fi
  done
}

produce_bench() {
  cargo build --release --locked -q -p raftline --bin raftline
  local rl=target/release/raftline
  echo "== 1 node, RF 1 (acks=all is the leader alone)"
  rm -rf "$dir/one"
  $rl serve --node-id 1 --data-dir "$dir/one" --client-addr 127.0.0.1:19051 \
    --peer-addr 127.0.0.1:19151 --controllers 1=127.0.0.1:19151 > "$dir/one.log" 2>&1 &
  local pid=$!
  trap 'kill $pid 2>/dev/null || true' EXIT
  wait_live 127.0.0.1:19051 1
  $rl topic create bench --partitions 3 --replication-factor 1 --bootstrap-server 127.0.0.1:19051 > /dev/null
  produce_runs one 127.0.0.1:19051 bench all
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  trap - EXIT
  rm -rf "$dir/one"
  echo "== 3 nodes, RF 3"
  export RAFTLINE_CLUSTER_DIR="$dir/cluster" RAFTLINE_CLUSTER_CLIENT_BASE=19250 RAFTLINE_CLUSTER_PEER_BASE=19350 RAFTLINE_CLUSTER_KAFKA_BASE=19450
  scripts/cluster.sh clean > /dev/null 2>&1 || true
  scripts/cluster.sh up > /dev/null
  trap 'scripts/cluster.sh clean > /dev/null 2>&1 || true' EXIT
  local three=127.0.0.1:19251,127.0.0.1:19252,127.0.0.1:19253
  $rl topic create bench --partitions 3 --replication-factor 3 --bootstrap-server "$three" > /dev/null
  # acks=all first: it is compared with one node, measured on a fresh
  # process, and a broker's CPU per byte rises by about a quarter over the
  # first few GB it writes (docs/BENCHMARKS.md, "HTTP/2 frames of 1 MiB").
  echo "-- acks=all"
  produce_runs acksall "$three" bench all
  echo "-- acks=1"
  produce_runs acks1 "$three" bench 1
  e2e_run "$three" bench
  echo "-- bench consume (every record of the topic, from the start)"
  $rl bench consume --bootstrap-server "$three" --topic bench --output json > "$dir/consume.json"
  local mbps
  mbps=$(field "$dir/consume.json" mb_per_sec)
  echo "$(round "$(field "$dir/consume.json" records_per_sec)") records/s, $(round "$mbps") MB/s; $(ratio "$mbps" "$loopback_mbps") of loopback TCP"
  failover_run "$three" bench
  failover_run "$three" bench
  failover_run "$three" bench
}

# Failover unavailability: a 10 s produce run (acks=all, 1 KiB) with the leader
# of partition 0 SIGKILLed 4 s in; the longest gap between acknowledgements.
failover_run() {
  local servers=$1 topic=$2 rl=target/release/raftline
  # Every replica back in its ISR first (a node restarted by the previous run
  # catches up after it is unfenced): a kill must cost one failover, not wait
  # for a replica to catch up.
  for _ in $(seq 1 300); do
    if $rl cluster describe --bootstrap-server "$servers" --output json | tr -d ' \n' \
      | grep -q '"under_replicated_partitions":\[\]'; then
      break
    fi
    sleep 0.2
  done
  echo "-- failover: bench produce for 10 s, the leader of $topic-0 SIGKILLed at 4 s"
  $rl bench produce --bootstrap-server "$servers" --topic "$topic" --duration-ms 10000 \
    --record-size 1024 --batch-size 100 --producers 4 --output json > "$dir/failover.json" &
  local run=$!
  sleep 4
  local leader
  leader=$($rl topic describe "$topic" --bootstrap-server "$servers" --output json \
    | grep -o '"leader": *[0-9]*' | head -n 1 | grep -o '[0-9]*$')
  local controller
  controller=$($rl cluster describe --bootstrap-server "$servers" --output json \
    | grep -o '"controller_leader": *[0-9]*' | grep -o '[0-9]*$')
  echo "killing node $leader (the controller leader is node $controller)"
  scripts/cluster.sh kill "$leader" | tail -n 1
  wait "$run"
  echo "longest gap between acknowledgements: $(field "$dir/failover.json" longest_ack_gap_ms) ms" \
    "($(round "$(field "$dir/failover.json" records_per_sec)") records/s over the run)"
  scripts/cluster.sh restart "$leader" > /dev/null
}

# The brokers' CPU time so far (user + system), seconds.
cpu_seconds() {
  local ticks=0 pid
  for pid in "$@"; do
    ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}

# One line of results: label, records, bytes, seconds, CPU seconds.
kafka_line() {
  awk -v l="$1" -v n="$2" -v b="$3" -v s="$4" -v c="$5" 'BEGIN {
    printf "%-34s %10.0f records/s %8.1f MB/s %7.1f broker CPU-s/GB\n", l, n / s, b / s / 1e6, c / (b / 1e9) }'
}

now() { date +%s.%N; }

# $1 label, $2 Kafka servers, $3 gRPC servers, $4 replication factor, $5 records,
# $6 record size, then the brokers' pids.
kafka_workload() {
  local label=$1 kafka=$2 grpc=$3 rf=$4 n=$5 size=$6
  shift 6
  local bytes=$((n * size)) topic="k-$label-$size" file="$dir/payload-$n-$size"
  [ -f "$file" ] || awk -v n="$n" -v s="$((size - 1))" \
    'BEGIN { x = sprintf("%*s", s, ""); gsub(/ /, "x", x); for (i = 0; i < n; i++) print x }' > "$file"
  target/release/raftline topic create "$topic" --partitions 1 --replication-factor "$rf" \
    --bootstrap-server "$grpc" > /dev/null
  local t0 c0 t1 c1
  t0=$(now) c0=$(cpu_seconds "$@")
  kcat -P -b "$kafka" -t "$topic" -p 0 -X acks=all -X enable.idempotence=true -X linger.ms=5 \
    -X queue.buffering.max.messages=2000000 -l "$file"
  t1=$(now) c1=$(cpu_seconds "$@")
  kafka_line "kcat produce $label $size B" "$n" "$bytes" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" \
    "$(awk -v a="$c0" -v b="$c1" 'BEGIN{print b-a}')"
  t0=$(now) c0=$(cpu_seconds "$@")
  local got
  got=$(kcat -C -b "$kafka" -t "$topic" -p 0 -o beginning -c "$n" -q | wc -l)
  t1=$(now) c1=$(cpu_seconds "$@")
  [ "$got" -eq "$n" ] || { echo "kcat consumed $got of $n records" >&2; exit 1; }
  kafka_line "kcat consume $label $size B" "$n" "$bytes" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" \
    "$(awk -v a="$c0" -v b="$c1" 'BEGIN{print b-a}')"
  # The same shape through gRPC (`raftline bench`: 4 producers, batches of
  # 2000 x 100 B or 500 x 1 KiB).
  local batch=500
  [ "$size" -gt 512 ] || batch=2000
  c0=$(cpu_seconds "$@")
  target/release/raftline bench produce --bootstrap-server "$grpc" --topic "g-$topic" \
    --partitions 1 --replication-factor "$rf" --acks all --records "$n" --record-size "$size" \
    --batch-size "$batch" --producers 4 --duration-ms 300000 --output json > "$dir/kafka-grpc.json"
  c1=$(cpu_seconds "$@")
  kafka_line "grpc produce $label $size B" "$(field "$dir/kafka-grpc.json" records)" \
    "$(field "$dir/kafka-grpc.json" bytes)" "$(field "$dir/kafka-grpc.json" seconds)" \
    "$(awk -v a="$c0" -v b="$c1" 'BEGIN{print b-a}')"
  c0=$(cpu_seconds "$@")
  target/release/raftline bench consume --bootstrap-server "$grpc" --topic "g-$topic" \
    --records "$n" --duration-ms 300000 --output json > "$dir/kafka-grpc-consume.json"
  c1=$(cpu_seconds "$@")
  kafka_line "grpc consume $label $size B" "$(field "$dir/kafka-grpc-consume.json" records)" \
    "$(field "$dir/kafka-grpc-consume.json" bytes)" "$(field "$dir/kafka-grpc-consume.json" seconds)" \
    "$(awk -v a="$c0" -v b="$c1" 'BEGIN{print b-a}')"
}

kafka_bench() {
  # shellcheck source=scripts/kafka-clients.sh
  . scripts/kafka-clients.sh
  ensure_kcat
  cargo build --release --locked -q -p raftline --bin raftline
  echo "kcat $(kcat -V 2>&1 | grep -o 'Version [^ ]*' | head -n 1), producing with acks=all, idempotence, linger.ms=5"
  local rl=target/release/raftline
  echo "== 1 node, RF 1"
  rm -rf "$dir/kone"
  $rl serve --node-id 1 --data-dir "$dir/kone" --client-addr 127.0.0.1:19061 \
    --peer-addr 127.0.0.1:19161 --controllers 1=127.0.0.1:19161 \
    --kafka-listener 127.0.0.1:19261 > "$dir/kone.log" 2>&1 &
  local pid=$!
  trap 'kill $pid 2>/dev/null || true' EXIT
  wait_live 127.0.0.1:19061 1
  kafka_workload one 127.0.0.1:19261 127.0.0.1:19061 1 1000000 100 "$pid"
  kafka_workload one 127.0.0.1:19261 127.0.0.1:19061 1 500000 1024 "$pid"
  kill "$pid"
  wait "$pid" 2> /dev/null || true
  trap - EXIT
  echo "== 3 nodes, RF 3"
  export RAFTLINE_CLUSTER_DIR="$dir/kcluster" RAFTLINE_CLUSTER_CLIENT_BASE=19270 \
    RAFTLINE_CLUSTER_PEER_BASE=19370 RAFTLINE_CLUSTER_KAFKA_BASE=19470
  scripts/cluster.sh clean > /dev/null 2>&1 || true
  scripts/cluster.sh up > /dev/null
  trap 'scripts/cluster.sh clean > /dev/null 2>&1 || true' EXIT
  local pids
  pids=$(cat "$dir"/kcluster/node*.pid | tr '\n' ' ')
  # shellcheck disable=SC2086
  kafka_workload three 127.0.0.1:19471,127.0.0.1:19472,127.0.0.1:19473 \
    127.0.0.1:19271,127.0.0.1:19272,127.0.0.1:19273 3 1000000 100 $pids
  # shellcheck disable=SC2086
  kafka_workload three 127.0.0.1:19471,127.0.0.1:19472,127.0.0.1:19473 \
    127.0.0.1:19271,127.0.0.1:19272,127.0.0.1:19273 3 500000 1024 $pids
}

case "${1:-}" in
  --kafka | kafka)
    baselines
    kafka_bench
    baselines
    ;;
  produce)
    ports_free 19051 19151 19251 19252 19253 19351 19352 19353 19451 19452 19453
    baselines
    cargo build --release --locked -q -p raftline --bin raftline
    loopback_baseline
    produce_bench
    baselines
    loopback_baseline
    ;;
  log)
    baselines
    echo "== cargo bench -p raftline-broker --bench log"
    cargo bench -p raftline-broker --bench log -- "${@:2}"
    baselines
    ;;
  *)
    echo "usage: scripts/bench.sh log [criterion filter] | produce | --kafka" >&2
    exit 2
    ;;
esac
