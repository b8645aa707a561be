#!/usr/bin/env bash
# A local three-node Raftline cluster on this machine.
#
#   scripts/cluster.sh up      build (release) and start nodes 1-3, wait until ready
#   scripts/cluster.sh status  show controllers and brokers
#   scripts/cluster.sh down    stop the nodes (controlled shutdown); data stays
#   scripts/cluster.sh clean   stop the nodes and delete their data
#
# Node N: client (Admin gRPC) 127.0.0.1:919N, peer (Raft, controller services)
# 127.0.0.1:929N, data and logs under .raftline/ in the repository.
# (9092-9094 stay free for the Kafka protocol listener to come.)
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD/.raftline"
bin="$PWD/target/release/raftline"
servers="127.0.0.1:9191,127.0.0.1:9192,127.0.0.1:9193"

config() {
  local n=$1
  cat <<TOML
node_id = $n
data_dir = "$root/data/node$n"
client_addr = "127.0.0.1:919$n"
peer_addr = "127.0.0.1:929$n"

[controllers]
1 = "127.0.0.1:9291"
2 = "127.0.0.1:9292"
3 = "127.0.0.1:9293"
TOML
}

running() { [ -f "$root/node$1.pid" ] && kill -0 "$(cat "$root/node$1.pid")" 2>/dev/null; }

up() {
  echo "Building raftline (release)..."
  cargo build --release --locked -p raftline
  mkdir -p "$root"
  for n in 1 2 3; do
    if running "$n"; then
      echo "node $n already running (pid $(cat "$root/node$n.pid"))"
      continue
    fi
    config "$n" > "$root/node$n.toml"
    nohup "$bin" serve --config "$root/node$n.toml" > "$root/node$n.log" 2>&1 &
    echo $! > "$root/node$n.pid"
    echo "started node $n (pid $!), log: .raftline/node$n.log"
  done
  # Ready when a controller leads and all three brokers are registered and live.
  for _ in $(seq 1 150); do
    if json=$("$bin" cluster describe --bootstrap-server "$servers" --output json 2>/dev/null) &&
      [ "$(printf '%s' "$json" | grep -c '"fenced": false')" -ge 3 ] &&
      ! printf '%s' "$json" | grep -q '"controller_leader": null'; then
      "$bin" cluster describe --bootstrap-server "$servers"
      cat <<NEXT

Raftline is up. Try:
  $bin topic create orders --partitions 3 --replication-factor 3
  $bin topic describe orders
  $bin topic list --output json
Stop it with: scripts/cluster.sh down
NEXT
      return 0
    fi
    sleep 0.2
  done
  echo "the cluster did not become ready within 30 s; see .raftline/node*.log" >&2
  exit 1
}

down() {
  local pids=()
  for n in 1 2 3; do
    if running "$n"; then
      kill -TERM "$(cat "$root/node$n.pid")"
      pids+=("$(cat "$root/node$n.pid")")
    fi
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "pid $pid did not stop in 10 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  rm -f "$root"/node*.pid
  echo "stopped (data kept in .raftline/data; 'scripts/cluster.sh clean' deletes it)"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status)
    if [ -x "$bin" ]; then "$bin" cluster describe --bootstrap-server "$servers"; else echo "not built: run scripts/cluster.sh up"; fi
    ;;
  clean)
    down
    rm -rf "$root"
    echo "deleted .raftline"
    ;;
  *)
    echo "usage: scripts/cluster.sh up|status|down|clean" >&2
    exit 2
    ;;
esac
