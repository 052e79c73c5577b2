#!/usr/bin/env bash
# The whole test suite (the README's test command; CI runs it too), in phases, because
# this project's tests share a small machine badly when all run at once: the local
# model's tests keep every core busy for minutes, and the fault suite restarts and
# stalls PostgreSQL on purpose, with time bounds that assume the machine is not
# starved. Each phase is `swift test` on the same build; all phases run, and the
# script fails if any did.
#
#   1. everything else, in parallel (Swift Testing's default);
#   2. the local model's tests (GGUF engine against llama.cpp's output, the local expert);
#   3. the fault suite (restarts, stalls, kills, hang-ups), alone;
#   4. schemathesis against docs/openapi.yaml, alone.
#
# Extra arguments go to every phase (for example --verbose).
set -uo pipefail
cd "$(dirname "$0")/.."

model='GoldenModelTests|LocalExpertTests\.'
alone='FaultTests|SchemathesisTests'

swift build --build-tests || exit 1
failed=()
run_phase() {
    local name=$1
    shift
    echo "== test phase: $name"
    local started=$SECONDS
    if swift test --skip-build "$@"; then
        echo "== test phase $name passed in $((SECONDS - started)) s"
    else
        echo "== test phase $name FAILED after $((SECONDS - started)) s"
        failed+=("$name")
    fi
}
run_phase "main" --skip "$model|$alone" "${@}"
run_phase "local model" --filter "$model" "${@}"
run_phase "faults" --filter 'FaultTests' "${@}"
run_phase "schemathesis" --filter 'SchemathesisTests' "${@}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "test phases failed: ${failed[*]}"
    exit 1
fi
echo "all test phases passed"
