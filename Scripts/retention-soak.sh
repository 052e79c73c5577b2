#!/usr/bin/env bash
# The retention soak: pushes runs through the real engine in rounds, and after each
# round prunes every finished run, vacuums the tables as autovacuum would, and prints
# the sizes of runs, steps, run_events, signals and model_calls (pg_total_relation_size,
# pg_indexes_size) with their live and dead rows (pg_stat_user_tables) after the push,
# after the prune and after the vacuum. Flat sizes from round to round mean pruning
# keeps the tables bounded: freed space is reused by the next runs.
#
#   Scripts/retention-soak.sh [RUNS] [ROUNDS] [-- more `yard bench prune` options]
#                                              (defaults: 100000 runs in 4 rounds)
#
# It runs on a private PostgreSQL cluster under /tmp (removed afterwards) unless
# DATABASE_URL is set. The suite runs a bounded version (RetentionSoakTests: 2 rounds
# of 1,000 runs).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-100000}
rounds=${2:-4}
shift $(( $# > 2 ? 2 : $# ))
[ "${1:-}" = "--" ] && shift
swift build --product yard
data=$(mktemp -d /tmp/switchyard-retention-soak-XXXXXX)
chmod 755 "$data"   # the embedded cluster runs as the postgres user when this is root
trap 'rm -rf "$data"' EXIT
.build/debug/yard bench prune --runs "$runs" --rounds "$rounds" --data-dir "$data" "$@" 2>&1 | tee /tmp/switchyard-retention-soak.log
