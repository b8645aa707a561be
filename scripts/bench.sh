#!/usr/bin/env bash
# Benchmarks with their raw baselines measured in the same run.
#
#   scripts/bench.sh log     the log engine (criterion) + disk baselines (dd)
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

case "${1:-}" in
  log)
    baselines
    echo "== cargo bench -p raftline-broker --bench log"
    cargo bench -p raftline-broker --bench log -- "${@:2}"
    baselines
    ;;
  *)
    echo "usage: scripts/bench.sh log [criterion filter]" >&2
    exit 2
    ;;
esac
