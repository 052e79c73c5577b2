#!/usr/bin/env bash
# The local engine's benchmark next to llama.cpp's on the same file and the same machine:
# runs `yard bench local` (release build) and `llama-bench` alternately, three rounds, and
# prints medians and the ratios the LocalInference issue sets targets for.
#
#   Scripts/bench-local.sh [MODEL.gguf]
#
# llama-bench and llama-batched-bench come from Scripts/llama-reference.sh --build-only
# (built once, ~3 minutes, in $LLAMA_REFERENCE_DIR or /tmp/switchyard-llama-reference).
# Figures, not a test: run it on a quiet machine.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODEL="${1:-$("$REPO_ROOT/Scripts/setup-local-model.sh")}"
LLAMA_BENCH="${LLAMA_BENCH:-$("$REPO_ROOT/Scripts/llama-reference.sh" --build-only)}"
LLAMA_BATCHED="$(dirname "$LLAMA_BENCH")/llama-batched-bench"
THREADS="$(nproc)"
log() { echo "bench-local: $*" >&2; }

(cd "$REPO_ROOT" && swift build -c release --product yard >&2)
YARD="$REPO_ROOT/.build/release/yard"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

for round in 1 2 3; do
    log "round $round: yard bench local"
    "$YARD" bench local --model "$MODEL" --prompt-tokens 64 --decode-tokens 64 --output json > "$OUT/yard-$round.json"
    log "round $round: llama-bench"
    "$LLAMA_BENCH" -m "$MODEL" -t "$THREADS" -p 64 -n 64 -r 3 -o json > "$OUT/llama-$round.json" 2>/dev/null
    "$LLAMA_BENCH" -m "$MODEL" -t 1 -p 0 -n 64 -r 3 -o json > "$OUT/llama1-$round.json" 2>/dev/null
    "$LLAMA_BATCHED" -m "$MODEL" -c 4096 -b 512 -ub 512 -npp 3 -ntg 64 -npl 1,4,8 -t "$THREADS" --output-format jsonl \
        2>/dev/null | grep '^{' > "$OUT/batched-$round.jsonl" || true
done

python3 - "$OUT" "$MODEL" "$THREADS" <<'PY'
import json, os, statistics, sys
out, model, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
med = statistics.median
ours = [json.load(open(f"{out}/yard-{r}.json")) for r in (1, 2, 3)]
def llama(prefix, key):
    values = []
    for r in (1, 2, 3):
        for row in json.load(open(f"{out}/{prefix}-{r}.json")):
            if (key == "pp" and row["n_prompt"] > 0) or (key == "tg" and row["n_gen"] > 0):
                values.append(row["avg_ts"])
    return med(values)
l_pp, l_tg, l_tg1 = llama("llama", "pp"), llama("llama", "tg"), llama("llama1", "tg")
o = lambda k: med(x[k] for x in ours)
agg = {n: med(x["aggregate_decode_tps"][n] for x in ours) for n in ("1", "4", "8")}
file_mib = os.path.getsize(model) / 2**20
rows = [
    ("prompt processing (64 tokens)", o("prefill_tps"), l_pp, "≥ 0.7"),
    (f"decode, {threads} threads", o("decode_tps"), l_tg, "≥ 1.0"),
    ("decode, 1 thread", o("decode_tps_1thread"), l_tg1, ""),
    ("aggregate decode, 1 sequence", agg["1"], l_tg, ""),
    ("aggregate decode, 4 sequences", agg["4"], l_tg, ""),
    ("aggregate decode, 8 sequences", agg["8"], l_tg, "≥ 4.0"),
]
print(f"{'tokens/s (median of 3 rounds)':34} {'yard':>8} {'llama.cpp':>10} {'ratio':>7}  target")
for name, mine, ref, target in rows:
    print(f"{name:34} {mine:8.1f} {ref:10.1f} {mine / ref:6.2f}×  {target}")
batched = {}
for r in (1, 2, 3):
    try:
        for line in open(f"{out}/batched-{r}.jsonl"):
            row = json.loads(line)
            batched.setdefault(str(row["pl"]), []).append(row["speed_tg"])
    except (OSError, ValueError, KeyError):
        pass
if batched:
    print()
    print("the same sequences decoded together by llama.cpp (llama-batched-bench, S_TG):")
    for n in ("1", "4", "8"):
        if n in batched:
            ref = med(batched[n])
            print(f"{'aggregate decode, ' + n + ' sequence' + ('s' if n != '1' else ''):34} {agg[n]:8.1f} {ref:10.1f} {agg[n] / ref:6.2f}×")
rss = med(x["rss_mb"] for x in ours)
print(f"{'peak resident memory (MiB)':34} {rss:8.0f} {file_mib:10.0f} {rss / file_mib:6.2f}×  ≤ 1.3 (llama.cpp column: the file)")
PY
