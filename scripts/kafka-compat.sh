#!/usr/bin/env bash
# Unmodified Kafka clients against a three-node Raftline cluster: kcat
# (Debian), confluent-kafka (librdkafka inside the wheel) and kafka-python
# (PyPI). Installs what is missing (kcat with apt-get; the Python clients,
# pinned, into a virtualenv under target/), starts its own cluster with
# scripts/cluster.sh on ports of its own, runs the checks, and stops and
# removes everything it started, also on failure or Ctrl-C.
#
#   scripts/kafka-compat.sh           every check
#
# Called by scripts/test.sh (so CI); docs/COMPATIBILITY.md says what is checked.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=scripts/kafka-clients.sh
. scripts/kafka-clients.sh
ensure_kcat
ensure_python_clients

cargo build --release --locked -q -p raftline
export RAFTLINE_CLUSTER_DIR="$root/target/kafka-compat-cluster"
export RAFTLINE_CLUSTER_CLIENT_BASE=30050 RAFTLINE_CLUSTER_PEER_BASE=30150 RAFTLINE_CLUSTER_KAFKA_BASE=30250
grpc=127.0.0.1:30051,127.0.0.1:30052,127.0.0.1:30053
kafka=127.0.0.1:30251,127.0.0.1:30252,127.0.0.1:30253
cleanup() { scripts/cluster.sh clean > /dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup
scripts/cluster.sh up > /dev/null
rl() { target/release/raftline "$@" --bootstrap-server "$grpc"; }

echo "kcat $(kcat -V 2>&1 | grep -o 'Version [^ ]* .*librdkafka [^ ]*' | sed -E 's/Version ([^ ]*) .*(librdkafka [^ ]*)/\1 (\2)/')"
rl topic create kcat --partitions 3 --replication-factor 3 > /dev/null
meta=$(kcat -b "$kafka" -L -t kcat)
for n in 1 2 3; do
  grep -q "broker $n at 127.0.0.1:3025$n" <<< "$meta" || { echo "kcat -L: broker $n missing: $meta" >&2; exit 1; }
done
[ "$(grep -c 'partition [0-9], leader' <<< "$meta")" -eq 3 ] || { echo "kcat -L: $meta" >&2; exit 1; }
echo "PASS kcat -L: three brokers on their Kafka ports, three partitions with leaders"
seq 1 3000 | sed 's/^/kcat-/' | kcat -b "$kafka" -P -t kcat -X acks=all
got=$(kcat -b "$kafka" -C -t kcat -o beginning -e -q | sort -u | wc -l)
[ "$got" -eq 3000 ] || { echo "kcat consumed $got distinct records of 3000" >&2; exit 1; }
echo "PASS kcat: 3000 records produced (acks=all) and consumed from the beginning"
got=$(kcat -b "$kafka" -G kcat-group -o beginning -c 3000 -q -X session.timeout.ms=6000 kcat | sort -u | wc -l)
[ "$got" -eq 3000 ] || { echo "kcat -G consumed $got distinct records of 3000" >&2; exit 1; }
echo "PASS kcat -G: a consumer group read all 3000 records"

"$kafka_venv/bin/python" scripts/kafka_compat.py "$kafka" "$root" "$grpc"
