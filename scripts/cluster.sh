#!/usr/bin/env bash
# A local three-node Raftline cluster on this machine.
#
#   scripts/cluster.sh up         build (release) if needed, start nodes 1-3, wait until healthy
#   scripts/cluster.sh status     controllers and brokers
#   scripts/cluster.sh down       stop every node (controlled shutdown); data stays
#   scripts/cluster.sh clean      stop and delete all data
#   scripts/cluster.sh kill N     SIGKILL node N (a crash)
#   scripts/cluster.sh pause N    SIGSTOP node N (a hung process)
#   scripts/cluster.sh resume N   SIGCONT node N
#   scripts/cluster.sh restart N  start node N again (after kill or down), wait until it is back
#   scripts/cluster.sh logs N     follow node N's log
#
# Node N: client port (Admin and Broker gRPC) 127.0.0.1:5005N, peer port (Raft,
# controller services, replication) 127.0.0.1:5015N, Kafka protocol
# 127.0.0.1:909(1+N) (9092, 9093, 9094: point any Kafka client's
# bootstrap.servers there); config, data, logs and pids under .cluster/ in the
# repository (git-ignored).
#
# Brokers heartbeat every 100 ms and are fenced after 1 s of silence, so a
# killed node's partitions fail over within about a second.
#
# For tests: RAFTLINE_CLUSTER_DIR (instead of .cluster), RAFTLINE_CLUSTER_CLIENT_BASE,
# RAFTLINE_CLUSTER_PEER_BASE and RAFTLINE_CLUSTER_KAFKA_BASE (node N gets base + N;
# defaults 50050, 50150, 9091).
set -euo pipefail
cd "$(dirname "$0")/.."
root="${RAFTLINE_CLUSTER_DIR:-$PWD/.cluster}"
bin="$PWD/target/release/raftline"
client_base="${RAFTLINE_CLUSTER_CLIENT_BASE:-50050}"
peer_base="${RAFTLINE_CLUSTER_PEER_BASE:-50150}"
kafka_base="${RAFTLINE_CLUSTER_KAFKA_BASE:-9091}"
servers="127.0.0.1:$((client_base + 1)),127.0.0.1:$((client_base + 2)),127.0.0.1:$((client_base + 3))"

config() {
  local n=$1
  cat <<TOML
node_id = $n
data_dir = "$root/data/node$n"
client_addr = "127.0.0.1:$((client_base + n))"
peer_addr = "127.0.0.1:$((peer_base + n))"
kafka_listener = "127.0.0.1:$((kafka_base + n))"
broker_heartbeat_ms = 100
broker_session_timeout_ms = 1000

[controllers]
1 = "127.0.0.1:$((peer_base + 1))"
2 = "127.0.0.1:$((peer_base + 2))"
3 = "127.0.0.1:$((peer_base + 3))"
TOML
}

pid_of() { cat "$root/node$1.pid" 2>/dev/null || true; }
running() { local pid; pid=$(pid_of "$1"); [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }

check_node() {
  case "${1:-}" in
    1 | 2 | 3) ;;
    *)
      echo "which node? give 1, 2 or 3 (e.g. scripts/cluster.sh kill 2)" >&2
      exit 2
      ;;
  esac
}

# cargo rebuilds only what changed; a built tree costs a second.
build() {
  [ -x "$bin" ] || echo "Building raftline (release); the first build takes a few minutes..."
  cargo build --release --locked -q -p raftline
}

start() {
  local n=$1
  if running "$n"; then
    echo "node $n already running (pid $(pid_of "$n"))"
    return 0
  fi
  mkdir -p "$root"
  config "$n" > "$root/node$n.toml"
  nohup "$bin" serve --config "$root/node$n.toml" >> "$root/node$n.log" 2>&1 &
  echo $! > "$root/node$n.pid"
  echo "started node $n (pid $!), log: $root/node$n.log"
}

# Healthy: a controller leads and `want` brokers are registered and unfenced.
wait_healthy() {
  local want=$1 json
  for _ in $(seq 1 300); do
    if json=$("$bin" cluster describe --bootstrap-server "$servers" --output json 2>/dev/null) &&
      [ "$(printf '%s' "$json" | grep -c '"fenced": false')" -ge "$want" ] &&
      ! printf '%s' "$json" | grep -q '"controller_leader": null'; then
      return 0
    fi
    sleep 0.2
  done
  return 1
}

up() {
  build
  for n in 1 2 3; do start "$n"; done
  if ! wait_healthy 3; then
    echo "the cluster did not become healthy within 60 s; see $root/node*.log" >&2
    exit 1
  fi
  "$bin" cluster describe --bootstrap-server "$servers"
  cat <<NEXT

Raftline is up. Client endpoints: $servers
Kafka clients: bootstrap.servers=127.0.0.1:$((kafka_base + 1)),127.0.0.1:$((kafka_base + 2)),127.0.0.1:$((kafka_base + 3))
Try (see README.md):
  export PATH="$PWD/target/release:\$PATH"
  raftline topic create orders --partitions 3 --replication-factor 3
  seq 1 1000 | raftline produce orders
  raftline consume orders --from-beginning --max-messages 1000
Stop it with: scripts/cluster.sh down
NEXT
}

stop_pids() {
  local signal=$1
  shift
  local pids=()
  for n in "$@"; do
    if running "$n"; then
      kill "-$signal" "$(pid_of "$n")"
      pids+=("$(pid_of "$n")")
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
}

down() {
  # A paused node cannot act on SIGTERM: wake it first.
  for n in 1 2 3; do running "$n" && kill -CONT "$(pid_of "$n")" 2>/dev/null || true; done
  stop_pids TERM 1 2 3
  rm -f "$root"/node*.pid
  echo "stopped (data kept in $root/data; 'scripts/cluster.sh clean' deletes it)"
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
    echo "deleted $root"
    ;;
  kill)
    check_node "${2:-}"
    if ! running "$2"; then
      echo "node $2 is not running"
      exit 0
    fi
    kill -KILL "$(pid_of "$2")"
    start_ms=$(date +%s%3N)
    echo "killed node $2 (SIGKILL); waiting for the cluster to fence its broker..."
    # Fenced: the controller has moved its leaderships and shrunk its ISRs.
    for _ in $(seq 1 300); do
      if json=$("$bin" cluster describe --bootstrap-server "$servers" --output json 2>/dev/null) &&
        printf '%s' "$json" | tr -d ' \n' | grep -q "\"fenced\":true,\"id\":$2,"; then
        echo "node $2 is down: its broker was fenced after $(($(date +%s%3N) - start_ms)) ms and its partitions moved to in-sync replicas"
        exit 0
      fi
      sleep 0.1
    done
    echo "node $2 was killed but the cluster did not fence it within 30 s; see $root/node*.log" >&2
    exit 1
    ;;
  pause)
    check_node "${2:-}"
    running "$2" && kill -STOP "$(pid_of "$2")" && echo "paused node $2 (SIGSTOP)"
    ;;
  resume)
    check_node "${2:-}"
    running "$2" && kill -CONT "$(pid_of "$2")" && echo "resumed node $2 (SIGCONT)"
    ;;
  restart)
    check_node "${2:-}"
    if running "$2"; then
      kill -CONT "$(pid_of "$2")" 2>/dev/null || true
      stop_pids TERM "$2"
    fi
    build
    start "$2"
    live=0
    for n in 1 2 3; do running "$n" && live=$((live + 1)); done
    if ! wait_healthy "$live"; then
      echo "node $2 did not rejoin within 60 s; see $root/node$2.log" >&2
      exit 1
    fi
    echo "node $2 is back"
    ;;
  logs)
    check_node "${2:-}"
    exec tail -n 100 -f "$root/node$2.log"
    ;;
  *)
    echo "usage: scripts/cluster.sh up|status|down|clean|kill N|pause N|resume N|restart N|logs N" >&2
    exit 2
    ;;
esac
