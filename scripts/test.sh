#!/usr/bin/env bash
# Runs every test in the workspace: unit, property, crash-recovery, integration
# and (as they land) simulation tests. This is the README's test command and the
# one .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test --workspace --locked "$@"
