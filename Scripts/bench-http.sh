#!/usr/bin/env bash
# Runs created over the HTTP API under load: starts a private PostgreSQL and `yard serve`
# (release binary) against it, creates a tenant, applies a workflow of three no-op transform
# steps, then C concurrent clients (Python asyncio + aiohttp, keep-alive) create N runs.
# Prints the trigger call's latency p50/p90/p99, runs created per second, end-to-end runs per
# second (until every run is final), the server's resident memory idle and after the load,
# and what PostgreSQL spent per run (as Scripts/bench-engine.sh measures it).
#
#   Scripts/bench-http.sh [--clients 32] [--runs 5000] [--waiting 10000] [--yard PATH]
#
#   --waiting N    afterwards, park N runs at a `wait_for` step and read the server's memory
#                  again (0 to skip): a waiting run should cost the server no memory
#   --yard PATH    the release binary (default .build-release/release/yard, else .build/release/yard)
#
# The server: scripted experts (no model is called: the steps are transforms), the admin key
# generated here, fair-use limits raised out of the way (runs_per_second 1e9, run_burst 1e9,
# max_running_steps 100000; the token bucket is still consulted per run), everything else at
# its defaults (engine concurrency 64, 24 database connections). Its log goes to a temporary
# file, shown if it fails. The target in issue 12: >= 1,000 runs/s with trigger p50 <= 10 ms.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLIENTS=32
RUNS=5000
WAITING=10000
YARD_PATH=""
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --clients) CLIENTS="$2"; shift 2 ;;
        --runs) RUNS="$2"; shift 2 ;;
        --waiting) WAITING="$2"; shift 2 ;;
        --yard) YARD_PATH="$2"; shift 2 ;;
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
bench_venv "$REPO_ROOT" aiohttp asyncpg
BENCH="$REPO_ROOT/Scripts/bench"
OUT="$(mktemp -d /tmp/switchyard-bench-http.XXXXXX)"
bench_on_exit "rm -rf '$OUT'"

pg_start
pg_create_db yard
PORT="$(free_port)"
ADMIN_KEY="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
cat >"$OUT/config.yaml" <<YAML
host: 127.0.0.1
port: $PORT
database_url: $(pg_url yard)
admin_key: $ADMIN_KEY
limits:
  runs_per_second: 1000000000
  run_burst: 1000000000
  max_running_steps: 100000
experts:
  flash: { provider: scripted, script: $REPO_ROOT/Workflows/demo-script.yaml }
  pro:   { provider: scripted, script: $REPO_ROOT/Workflows/demo-script.yaml }
YAML

bench_log "starting yard serve on 127.0.0.1:$PORT"
(cd "$OUT" && exec env -u DEEPSEEK_API_KEY -u DATABASE_URL -u YARD_ADMIN_KEY "$YARD" serve --config "$OUT/config.yaml" >"$OUT/serve.log" 2>&1) &
SERVER_PID=$!
bench_on_exit "kill -TERM $SERVER_PID 2>/dev/null; wait $SERVER_PID 2>/dev/null"
for _ in $(seq 1 300); do
    if curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then cat "$OUT/serve.log" >&2; echo "yard serve exited" >&2; exit 1; fi
    sleep 0.2
done
curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null || { cat "$OUT/serve.log" >&2; echo "yard serve did not become ready" >&2; exit 1; }

bench_log "$RUNS runs from $CLIENTS clients (the database figures wait 11 s after the load so idle connections report)"
"$BENCH_PY" "$BENCH/pgstats.py" --dsn "$(pg_url postgres)" --db yard --pgdata "$PG_DIR/data" --runs "$RUNS" --settle 11 \
    --out "$OUT/http.json" -- "$BENCH_PY" "$BENCH/http_load.py" --url "http://127.0.0.1:$PORT" --admin-key "$ADMIN_KEY" \
    --runs "$RUNS" --clients "$CLIENTS" --pid "$SERVER_PID" --waiting 0
echo "  ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); yard: $YARD)"
"$BENCH_PY" - "$OUT/http.json" <<'PY'
import json, sys
f = json.load(open(sys.argv[1]))
p = f["per_run"]
print(f"  PostgreSQL per run: {p['commits']:.1f} commits, {p['write_tx']:.1f} write tx, {p['wal_bytes']:.0f} WAL bytes, "
      f"{p['cpu_ms']:.2f} ms CPU, {p['calls']:.1f} statements ({p['plans']:.1f} planned)")
runs = f["runs"]
print("  statements PostgreSQL spent longest on (calls per run, ms per run):")
for statement in f.get("top_statements", [])[:6]:
    print(f"    {statement['calls'] / runs:5.2f}  {statement['total_ms'] / runs:6.3f}  {statement['query'][:100]}")
PY
if [ "$WAITING" -gt 0 ]; then
    bench_log "parking $WAITING runs at a wait_for step"
    "$BENCH_PY" "$BENCH/http_load.py" --url "http://127.0.0.1:$PORT" --admin-key "$ADMIN_KEY" \
        --runs 0 --waiting "$WAITING" --clients "$CLIENTS" --pid "$SERVER_PID"
fi
if grep -qiE "error|critical" "$OUT/serve.log"; then
    echo "  server log lines with errors:"
    grep -iE "error|critical" "$OUT/serve.log" | sort | uniq -c | sort -rn | head -5 | sed 's/^/    /'
fi
