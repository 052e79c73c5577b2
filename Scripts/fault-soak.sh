#!/usr/bin/env bash
# The fault suite's loops, longer: PostgreSQL restarts (fast and immediate) and stalls
# under load, servers killed mid-step, hung-up streams, silent upstreams, engines
# cancelled mid-flight; prints the figures each loop reports (runs, how long they took
# to end after the last fault, ledger rows, steps run again).
#
#   Scripts/fault-soak.sh [ROUNDS] [SEED]     (defaults: 20 rounds, seed 10)
#
# The suite itself runs 4 rounds with seed 10 (Scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-20}
seed=${2:-10}
swift build --build-tests
SWITCHYARD_FAULT_ROUNDS=$rounds SWITCHYARD_FAULT_SEED=$seed swift test --skip-build --filter FaultTests 2>&1 \
    | tee /tmp/switchyard-fault-soak.log | grep -E "fault suite:|✘|Test run"
