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
logs="$ROOT/build/test-logs"; mkdir -p "$logs"
phase() {
  local name="$1"; shift
  local log="$logs/$((passed + failed + 1)).log"
  printf '\n\033[1m=== %s ===\033[0m\n' "$name"
  # The phase's output goes to the terminal and to a log, so that the names of
  # whatever failed can be printed again at the very end (CI shows the tail).
  if "$@" 2>&1 | tee "$log"; then passed=$((passed + 1)); else
    failed=$((failed + 1))
    failures+=("$name")
    failed_lines+=("--- $name:")
    mapfile -t -O "${#failed_lines[@]}" failed_lines < <(grep -E \
      '^(FAILED|ERROR) |^\s+[0-9]+ - .*\(Failed|Timeout|Subprocess|SEGFAULT|Exception\)|^ERROR: |^==[0-9]+==ERROR|runtime error:' "$log" | head -40)
  fi
}
failed_lines=()

phase "unit tests" ctest --test-dir build --output-on-failure -j"$(nproc)"
phase "oracle tests (gguf-py, llama.cpp)" .venv/bin/python -m pytest tests/oracle -q -p no:cacheprovider -rfE
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
((failed)) && printf 'failed: %s\n' "${failures[@]}" && printf '  %s\n' "${failed_lines[@]}"
echo "test phases: $passed passed, $failed failed"
((failed == 0))
