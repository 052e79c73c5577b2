#!/usr/bin/env bash
# Builds llama.cpp (the copy vendored by the llama-cpp-python 0.3.36 sdist) in a scratch
# directory outside the repo and writes the golden fixtures of the LocalInference tests
# into Tests/LocalInferenceTests/Fixtures/. Commit the fixtures, never llama.cpp.
#
#   Scripts/llama-reference.sh [MODEL.gguf]
#   Scripts/llama-reference.sh --build-only     # only build llama.cpp, print llama-bench's path
#
# MODEL defaults to the file Scripts/setup-local-model.sh installs. Scratch directory:
# $LLAMA_REFERENCE_DIR (default /tmp/switchyard-llama-reference); a second run reuses the
# build. Also used by the benchmark (llama-bench lands in $LLAMA_REFERENCE_DIR/bin).
# Takes about 3 minutes on 2 cores the first time.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION=0.3.36
SCRATCH="${LLAMA_REFERENCE_DIR:-/tmp/switchyard-llama-reference}"
BUILD_ONLY=0
if [ "${1:-}" = "--build-only" ]; then BUILD_ONLY=1; shift; fi
OUT="$REPO_ROOT/Tests/LocalInferenceTests/Fixtures"
log() { echo "llama-reference: $*" >&2; }

mkdir -p "$SCRATCH"
SRC="$SCRATCH/llama_cpp_python-$VERSION/vendor/llama.cpp"
if [ ! -f "$SRC/CMakeLists.txt" ]; then
    log "downloading the llama-cpp-python $VERSION sdist"
    python3 -m pip download --quiet --no-deps --no-binary llama-cpp-python "llama-cpp-python==$VERSION" -d "$SCRATCH"
    tar -xzf "$SCRATCH/llama_cpp_python-$VERSION.tar.gz" -C "$SCRATCH"
fi
command -v cmake >/dev/null 2>&1 && command -v ninja >/dev/null 2>&1 || python3 -m pip install --quiet cmake ninja

BUILD="$SRC/build"
if [ ! -x "$BUILD/bin/llama-bench" ] || [ ! -x "$BUILD/bin/llama-tokenize" ] || [ ! -x "$BUILD/bin/llama-completion" ] \
   || [ ! -x "$BUILD/bin/llama-batched-bench" ]; then
    log "building llama.cpp (llama-bench llama-batched-bench llama-completion llama-tokenize)"
    nice -n 10 cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DLLAMA_CURL=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TESTS=OFF >&2
    nice -n 10 cmake --build "$BUILD" -j "$(nproc)" --target llama-bench llama-batched-bench llama-completion llama-tokenize >&2
fi
mkdir -p "$SCRATCH/bin"
ln -sf "$BUILD/bin/llama-bench" "$BUILD/bin/llama-batched-bench" "$BUILD/bin/llama-tokenize" "$BUILD/bin/llama-completion" "$SCRATCH/bin/"
if [ "$BUILD_ONLY" = 1 ]; then
    echo "$SCRATCH/bin/llama-bench"
    exit 0
fi
MODEL="${1:-$("$REPO_ROOT/Scripts/setup-local-model.sh")}"

# llama.cpp's tools print text; token ids and logits come from a small libllama program.
log "building the golden helper"
g++ -O2 -std=c++17 "$REPO_ROOT/Scripts/llama-reference/golden.cpp" -I "$SRC/include" -I "$SRC/ggml/include" \
    -L "$BUILD/bin" -lllama -lggml -lggml-base -Wl,-rpath,"$BUILD/bin" -o "$SCRATCH/bin/golden"

mkdir -p "$OUT"
python3 "$REPO_ROOT/Scripts/llama-reference/make_golden.py" \
    "$SCRATCH/bin/llama-tokenize" "$SCRATCH/bin/golden" "$MODEL" "$OUT" "llama.cpp from llama-cpp-python $VERSION"
log "fixtures written to $OUT"
