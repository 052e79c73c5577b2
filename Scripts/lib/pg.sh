# Shared shell functions for the benchmark scripts: one private PostgreSQL cluster in a
# temporary folder (initdb, a free port on 127.0.0.1, trust authentication, pg_stat_statements),
# a Python virtual environment for the helpers, and clean-up on exit.
#
# Source it, then:   pg_start; pg_psql postgres -c 'SELECT 1'; ...   (pg_stop runs from the EXIT trap)
# PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user (as
# EmbeddedPostgres.swift does).

PG_BIN=""
PG_DIR=""
PG_PORT=""
PG_HOST=127.0.0.1
PG_USER=postgres
_BENCH_CLEANUPS=()

bench_log() { echo "$(basename "$0" .sh): $*" >&2; }

# Runs every registered clean-up command, last registered first. Installed as the EXIT trap.
bench_cleanup() {
    local i
    for ((i = ${#_BENCH_CLEANUPS[@]} - 1; i >= 0; i--)); do
        eval "${_BENCH_CLEANUPS[$i]}" || true
    done
    _BENCH_CLEANUPS=()
}
bench_on_exit() { _BENCH_CLEANUPS+=("$1"); }
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# The folder holding initdb, pg_ctl and postgres: PATH first, then the newest /usr/lib/postgresql/N/bin.
pg_find_bin() {
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        PG_BIN="$(dirname "$(command -v initdb)")"
        return
    fi
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n -r); do
        if [ -x "$dir/initdb" ]; then PG_BIN="$dir"; return; fi
    done
    echo "PostgreSQL server programs (initdb, pg_ctl) not found: run Scripts/setup.sh" >&2
    exit 1
}

# Runs a server program as the postgres user when this shell is root.
pg_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Starts the private cluster. Settings: fsync and synchronous_commit on (as in production),
# checkpoints only when asked (so each measured window starts right after one),
# pg_stat_statements with planning tracked.
pg_start() {
    pg_find_bin
    PG_DIR="$(mktemp -d /tmp/switchyard-bench-pg.XXXXXX)"
    chmod 755 "$PG_DIR"
    mkdir -p "$PG_DIR/data"
    if [ "$(id -u)" -eq 0 ]; then chown -R postgres:postgres "$PG_DIR"; fi
    PG_PORT="$(free_port)"
    pg_as_owner "$PG_BIN/initdb" -D "$PG_DIR/data" -U "$PG_USER" --auth=trust --no-sync -E UTF8 --locale=C >"$PG_DIR/initdb.log" 2>&1 \
        || { cat "$PG_DIR/initdb.log" >&2; exit 1; }
    cat >>"$PG_DIR/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_DIR'
max_connections = 300
shared_buffers = 256MB
work_mem = 8MB
max_wal_size = 8GB
min_wal_size = 1GB
checkpoint_timeout = 1h
wal_level = replica
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = top
pg_stat_statements.track_planning = on
pg_stat_statements.max = 10000
log_min_messages = warning
EOF
    bench_on_exit pg_stop
    pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 start >/dev/null \
        || { cat "$PG_DIR/server.log" >&2; exit 1; }
    pg_psql postgres -qc "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
    bench_log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on $PG_HOST:$PG_PORT (data in $PG_DIR/data, pg_stat_statements on)"
}

pg_stop() {
    [ -n "$PG_DIR" ] && [ -d "$PG_DIR/data" ] || return 0
    pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
    PG_DIR=""
}

# The postmaster's process id (the first line of postmaster.pid).
pg_postmaster_pid() { head -1 "$PG_DIR/data/postmaster.pid"; }

pg_psql() {
    local db="$1"
    shift
    psql -X -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$db" -v ON_ERROR_STOP=1 "$@"
}

pg_create_db() { pg_psql postgres -qc "CREATE DATABASE \"$1\"" >/dev/null; }

pg_url() { echo "postgres://$PG_USER@$PG_HOST:$PG_PORT/$1"; }

# A virtual environment under .bench/venv (kept between runs) with the given PyPI packages.
bench_venv() {
    local root="$1"
    shift
    local venv="$root/.bench/venv"
    if [ ! -x "$venv/bin/python" ]; then
        bench_log "creating $venv"
        python3 -m venv "$venv"
    fi
    # Installed already (at the pinned version where one is given)? Then no pip call at all.
    if ! "$venv/bin/python" - "$@" 2>/dev/null <<'PY'; then
import importlib.metadata as m, re, sys
for spec in sys.argv[1:]:
    name, _, pin = spec.partition("==")
    version = m.version(re.sub(r"\[.*\]", "", name))
    assert not pin or version == pin, spec
PY
        bench_log "pip install $*"
        "$venv/bin/pip" install -q --disable-pip-version-check "$@" >&2
    fi
    BENCH_PY="$venv/bin/python"
}

# The yard binary: the given path, checked, made absolute.
bench_yard() {
    local path="$1"
    if [ ! -x "$path" ]; then
        echo "yard binary not found at $path: build it with 'swift build -c release --product yard' or pass --yard PATH" >&2
        exit 1
    fi
    YARD="$(cd "$(dirname "$path")" && pwd)/$(basename "$path")"
}
