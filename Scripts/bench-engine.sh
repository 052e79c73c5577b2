#!/usr/bin/env bash
# Switchyard's engine next to two PostgreSQL-backed peers, on one private PostgreSQL:
# `yard bench engine` (N runs of 3 no-op transform steps), pgqueuer (N chains of 3 no-op jobs,
# each job's handler enqueueing the next) and DBOS Transact (N workflows of 3 no-op steps),
# run alternately for some rounds (the order rotates each round). Prints, per round and as
# medians: runs per second, and per run what PostgreSQL spent (commits, write transactions,
# WAL bytes, server CPU, statements executed and planned); then the ratios Switchyard/pgqueuer
# and Switchyard/DBOS.
#
#   Scripts/bench-engine.sh [--rounds 4] [--runs 2000] [--yard PATH] [--samples 200] [--out DIR]
#
#   --yard PATH    the release binary (default .build-release/release/yard, else .build/release/yard;
#                  build it with `swift build -c release --product yard`)
#   --samples N    after the rounds, one more `yard bench engine` for its trigger-to-first-step
#                  latency (N idle samples; 0 skips it). The measured rounds use --samples 0 so
#                  that their database figures are the throughput runs' alone.
#   --out DIR      keep each measurement's figures there (SYSTEM-ROUND.json, with the 15 statements
#                  PostgreSQL spent longest on) and each command's output; else they go to a temporary folder
#
# How: one cluster (initdb in /tmp, a free port, fsync on, pg_stat_statements with planning
# tracked, checkpoints only when asked) with a database per system. Each system's schema is
# installed before the rounds (yard migrate, pgqueuer install, DBOS launch), so no round
# measures migrations. Each measured command runs under Scripts/bench/pgstats.py, which takes a
# CHECKPOINT and resets pg_stat_statements before it and reads the counters after it.
# The peers come from PyPI into .bench/venv (created on first use).
#
# Figures, not a test: on a loaded machine they move; compare ratios within one run.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS=4
RUNS=2000
SAMPLES=200
YARD_PATH=""
KEEP=""
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --runs) RUNS="$2"; shift 2 ;;
        --yard) YARD_PATH="$2"; shift 2 ;;
        --samples) SAMPLES="$2"; shift 2 ;;
        --out) KEEP="$2"; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done
if [ -z "$YARD_PATH" ]; then
    YARD_PATH="$REPO_ROOT/.build-release/release/yard"
    [ -x "$YARD_PATH" ] || [ ! -x "$REPO_ROOT/.build/release/yard" ] || YARD_PATH="$REPO_ROOT/.build/release/yard"
fi

source "$REPO_ROOT/Scripts/lib/pg.sh"
bench_yard "$YARD_PATH"
bench_venv "$REPO_ROOT" pgqueuer==1.6.0 dbos==3.4.0 asyncpg psycopg[binary]
BENCH="$REPO_ROOT/Scripts/bench"
if [ -n "$KEEP" ]; then
    mkdir -p "$KEEP"
    OUT="$(cd "$KEEP" && pwd)"
else
    OUT="$(mktemp -d /tmp/switchyard-bench-engine.XXXXXX)"
    bench_on_exit "rm -rf '$OUT'"
fi

pg_start
for db in yard pgqueuer dbos; do pg_create_db "$db"; done
bench_log "installing each system's schema (not measured)"
DATABASE_URL="$(pg_url yard)" "$YARD" migrate >/dev/null 2>"$OUT/migrate.log" || { cat "$OUT/migrate.log" >&2; exit 1; }
"$BENCH_PY" "$BENCH/pgqueuer_chain.py" --dsn "$(pg_url pgqueuer)" --prepare
"$BENCH_PY" "$BENCH/dbos_chain.py" --dsn "$(pg_url dbos)" --prepare

run_system() {
    local system="$1" round="$2"
    local command
    case "$system" in
        yard) command=(env DATABASE_URL="$(pg_url yard)" "$YARD" bench engine --runs "$RUNS" --steps 3 --samples 0 --concurrency 64) ;;
        pgqueuer) command=("$BENCH_PY" "$BENCH/pgqueuer_chain.py" --dsn "$(pg_url pgqueuer)" --runs "$RUNS") ;;
        dbos) command=("$BENCH_PY" "$BENCH/dbos_chain.py" --dsn "$(pg_url dbos)" --runs "$RUNS") ;;
    esac
    bench_log "round $round/$ROUNDS: $system ($RUNS runs)"
    "$BENCH_PY" "$BENCH/pgstats.py" --dsn "$(pg_url postgres)" --db "$system" --pgdata "$PG_DIR/data" --runs "$RUNS" \
        --out "$OUT/$system-$round.json" -- "${command[@]}" | tee "$OUT/$system-$round.txt" | sed 's/^/    /' >&2
}

systems=(yard pgqueuer dbos)
for ((round = 1; round <= ROUNDS; round++)); do
    for ((i = 0; i < 3; i++)); do
        run_system "${systems[$(((round - 1 + i) % 3))]}" "$round"
    done
done

echo "engine benchmark: $ROUNDS round(s) of $RUNS runs of 3 no-op steps per system, one PostgreSQL ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
echo "  yard: $YARD, concurrency 64, 8 creators; pgqueuer $("$BENCH_PY" -c 'import importlib.metadata as m; print(m.version("pgqueuer"))'): one QueueManager, batch 10, 8 creators;"
echo "  DBOS $("$BENCH_PY" -c 'import importlib.metadata as m; print(m.version("dbos"))'): a queue, worker concurrency 64, polled every 50 ms, 8 enqueuers"
"$BENCH_PY" "$BENCH/summary.py" "$OUT" "$ROUNDS"

if [ "$SAMPLES" -gt 0 ]; then
    echo
    echo "yard trigger-to-first-step latency ($SAMPLES idle samples, not in the figures above):"
    DATABASE_URL="$(pg_url yard)" "$YARD" bench engine --runs 1 --steps 3 --samples "$SAMPLES" | grep "trigger to first step" || true
fi
