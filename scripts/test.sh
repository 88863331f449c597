#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine (it sets itself up):
#   1. unit tests (ctest)                    C++ against properties and shared models
#   2. oracle tests (pytest)                 against gguf-py and llama.cpp, every shared model + Gemma 3
#   3. unit tests under ASan + UBSan
#   4. the parser fuzzer for FUZZ_SECONDS (default 60)
# QUICK=1 runs 1 and 2 only.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh || { echo "setup failed"; exit 1; }

passed=0; failed=0; failures=()
phase() {
  local name="$1"; shift
  printf '\n\033[1m=== %s ===\033[0m\n' "$name"
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$name"); fi
}

phase "unit tests" ctest --test-dir build --output-on-failure -j"$(nproc)"
phase "oracle tests (gguf-py, llama.cpp)" .venv/bin/python -m pytest tests/oracle -q -p no:cacheprovider
if [[ "${QUICK:-0}" != 1 ]]; then
  sanitized() {
    cmake -S "$ROOT" -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DGGUFSCOPE_CUDA=OFF \
      -DGGUFSCOPE_BENCH=OFF -DGGUFSCOPE_WERROR=ON -DGGUFSCOPE_SANITIZE=address,undefined >/dev/null &&
    cmake --build build-asan -j"$(nproc)" &&
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
      ctest --test-dir build-asan --output-on-failure -j"$(nproc)"
  }
  phase "unit tests under ASan+UBSan" sanitized
  phase "parser fuzzer (${FUZZ_SECONDS:-60} s)" scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
fi

echo
((failed)) && printf 'failed: %s\n' "${failures[@]}"
echo "test phases: $passed passed, $failed failed"
((failed == 0))
