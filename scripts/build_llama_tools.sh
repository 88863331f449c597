#!/usr/bin/env bash
# Builds llama.cpp's `llama-gguf-hash` (the reference that `ggufscope hash`
# must match line for line) from llama-cpp-python 0.3.36's source
# distribution, into .cache/llama-tools/bin. Test time only: ggufscope never
# runs it.
#
# Idempotent and cached: when the binary exists and was built from the same
# pinned source, a second run only checks a stamp file and exits.
#
#   scripts/build_llama_tools.sh
#   LLAMA_TOOLS_JOBS=8 scripts/build_llama_tools.sh   # build parallelism
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { printf '\033[1m[llama-tools]\033[0m %s\n' "$*" >&2; }

VERSION=0.3.36
PKG="llama_cpp_python-$VERSION"
SRC_DIR="$ROOT/.cache/src"
TOOLS="$ROOT/.cache/llama-tools"
BIN="$TOOLS/bin/llama-gguf-hash"
STAMP="$TOOLS/.stamp"
WANT="llama-cpp-python==$VERSION llama-gguf-hash llama-perplexity"
PIP="$ROOT/.venv/bin/pip"

if [[ -x "$BIN" && -x "$TOOLS/bin/llama-perplexity" && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
  exit 0  # already built from this source
fi

# --- the source distribution (pip caches the download) ------------------------
mkdir -p "$SRC_DIR"
SDIST="$SRC_DIR/$PKG.tar.gz"
if [[ ! -f "$SDIST" ]]; then
  [[ -x "$PIP" ]] || { log "no $PIP: run scripts/setup.sh first"; exit 1; }
  log "downloading the llama-cpp-python==$VERSION source distribution"
  "$PIP" download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$SRC_DIR"
fi
UNPACKED="$SRC_DIR/$PKG"
LLAMA="$UNPACKED/vendor/llama.cpp"
if [[ ! -f "$LLAMA/examples/gguf-hash/gguf-hash.cpp" ]]; then
  log "unpacking $SDIST"
  rm -rf "$UNPACKED"
  tar -xzf "$SDIST" -C "$SRC_DIR"
fi

# --- configure and build only the one target ------------------------------------
# Examples need the common library configured (not built); everything else
# (tests, tools, server, HTTPS) is switched off so configure needs no extra
# packages. Only llama-gguf-hash and its dependencies (ggml, vendor hash) build.
BUILD="$TOOLS/build"
log "building llama-gguf-hash and llama-perplexity in ${BUILD#$ROOT/} (several minutes the first time)"
cmake -S "$LLAMA" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DLLAMA_CURL=OFF -DGGML_NATIVE=OFF -DLLAMA_BUILD_EXAMPLES=ON \
  -DLLAMA_BUILD_COMMON=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=ON \
  -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF \
  -DBUILD_SHARED_LIBS=OFF -DGGML_OPENMP=OFF >/dev/null
cmake --build "$BUILD" --target llama-gguf-hash llama-perplexity -j"${LLAMA_TOOLS_JOBS:-$(nproc)}" >/dev/null

mkdir -p "$TOOLS/bin"
cp "$BUILD/bin/llama-gguf-hash" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
cp "$BUILD/bin/llama-perplexity" "$TOOLS/bin/llama-perplexity.tmp"
mv "$TOOLS/bin/llama-perplexity.tmp" "$TOOLS/bin/llama-perplexity"
echo "$WANT" > "$STAMP"
log "built $BIN"
