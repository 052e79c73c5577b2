#!/usr/bin/env bash
# Checks that a live `yard serve` conforms to docs/openapi.yaml with Schemathesis:
# a bounded, reproducible number of generated requests per operation, and the run
# fails on any 5xx, any response whose body, status or content type the document does
# not describe.
#
#   Scripts/schemathesis.sh                # install (once), serve, test, stop
#   Scripts/schemathesis.sh --install-only # only make sure Schemathesis is installed
#
# The server runs on a free loopback port with a private PostgreSQL in a temporary
# --data-dir and scripted experts (no model, no network), with one tenant that has the
# example workflow `hello`. Tenant operations use the tenant's key and admin operations
# the admin key (Schemathesis matches each operation's security scheme). The server is
# stopped at the end whatever happens.
#
# Environment: YARD_BIN (the `yard` to run; default: built with `swift build`),
# SCHEMATHESIS_MAX_EXAMPLES (default 25), SCHEMATHESIS_SEED (default 20261101),
# SCHEMATHESIS_VENV (where Schemathesis is installed).
# Exit status: 0 conformant, 1 failures found, 2 the server could not be started,
# 3 Schemathesis could not be installed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

version=4.32.5
venv=${SCHEMATHESIS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/switchyard/schemathesis-$version}
max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-25}
seed=${SCHEMATHESIS_SEED:-20261101}

# A virtual environment of its own, so the pinned version and its pinned
# dependencies never meet the machine's other Python packages.
if [ ! -x "$venv/bin/st" ] || ! "$venv/bin/st" --version 2>/dev/null | grep -q "$version"; then
    echo "schemathesis: installing schemathesis==$version into $venv"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    # Debian's python3 needs python3-venv for `python3 -m venv`.
    if ! python3 -m venv "$venv" >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
        rm -rf "$venv"
        sudo_cmd=""
        [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
        { $sudo_cmd apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq python3-venv; } >&2 || true
    fi
    if ! { [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"; } || ! "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"; then
        echo "schemathesis: could not install schemathesis==$version with pip" >&2
        rm -rf "$venv"
        exit 3
    fi
fi
[ "${1:-}" = "--install-only" ] && { echo "schemathesis: $("$venv/bin/st" --version)"; exit 0; }

yard=${YARD_BIN:-}
if [ -z "$yard" ]; then
    swift build --product yard >&2
    yard="$(swift build --show-bin-path)/yard"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-schemathesis.XXXXXX")
# The embedded PostgreSQL runs as the `postgres` user when we are root: it must reach its folder.
chmod 755 "$work"
server_pid=""
stop() {
    local status=$?
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [ "$status" -ne 0 ] && [ -f "$work/server.log" ]; then
        echo "schemathesis: the server's log:" >&2
        tail -n 40 "$work/server.log" >&2
    fi
    rm -rf "$work"
    exit "$status"
}
trap stop EXIT
trap 'exit 130' INT TERM

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
admin_key="admin-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
url="http://127.0.0.1:$port"
cat > "$work/config.yaml" <<EOF
host: 127.0.0.1
port: $port
admin_key: $admin_key
experts:
  flash: { provider: scripted, script: $root/Workflows/demo-script.yaml }
  pro:   { provider: scripted, script: $root/Workflows/demo-script.yaml }
EOF

# DATABASE_URL would point the server at a shared database: this run uses its own.
# A secret key of its own, so that the secrets routes work as in production.
secret_key=$(python3 -c 'import base64, secrets; print(base64.b64encode(secrets.token_bytes(32)).decode())')
env -u DATABASE_URL LOG_LEVEL=warning SWITCHYARD_SECRET_KEY="$secret_key" "$yard" serve --config "$work/config.yaml" --data-dir "$work/data" > "$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 600); do
    curl -fs "$url/healthz" > /dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || { echo "schemathesis: yard serve exited" >&2; exit 2; }
    sleep 0.2
done
curl -fs "$url/healthz" > /dev/null || { echo "schemathesis: yard serve did not answer within 120 s" >&2; exit 2; }

tenant=$(curl -fsS -X POST "$url/v1/admin/tenants" -H "Authorization: Bearer $admin_key" \
    -H "Content-Type: application/json" -d '{"name": "schemathesis"}')
tenant_key=$(printf '%s' "$tenant" | python3 -c 'import json, sys; print(json.load(sys.stdin)["api_key"])')
curl -fsS -X POST "$url/v1/apply" -H "Authorization: Bearer $tenant_key" -H "Content-Type: application/yaml" \
    -H "X-Yard-File: hello.yaml" --data-binary @Workflows/hello.yaml > /dev/null

cat > "$work/schemathesis.toml" <<'EOF'
[auth.openapi.tenantKey]
bearer = "${SY_TENANT_KEY}"

[auth.openapi.adminKey]
bearer = "${SY_ADMIN_KEY}"
EOF

echo "schemathesis: $("$venv/bin/st" --version) against $url, $max_examples examples per operation, seed $seed"
set +e
SY_TENANT_KEY=$tenant_key SY_ADMIN_KEY=$admin_key "$venv/bin/st" --config-file "$work/schemathesis.toml" \
    run docs/openapi.yaml --url "$url" \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
    --phases examples,coverage,fuzzing \
    --max-examples "$max_examples" --seed "$seed" --generation-deterministic \
    --workers 1 --request-timeout 30 --no-color \
    --report junit --report-junit-path "$work/junit.xml" 2>&1 | tee "$work/st.log"
status=${PIPESTATUS[0]}
set -e
# Figures for the record: operations and test cases, from the JUnit report.
if [ -f "$work/junit.xml" ]; then
    python3 - "$work/junit.xml" <<'EOF'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
cases = root.iter("testcase")
names = [c.get("name") for c in cases]
print(f"schemathesis: {len(set(names))} operations tested")
EOF
fi
exit "$status"
