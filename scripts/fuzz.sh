#!/usr/bin/env bash
# Builds the GGUF parser fuzzer with clang (libFuzzer + ASan + UBSan) in
# build-fuzz/, seeds build-fuzz/corpus from ../shared/models and fuzzes for
# SECONDS (default 60). Exits non-zero on any crash, sanitizer report, leak,
# timeout or out-of-memory; the input that caused it is saved in
# build-fuzz/artifacts/ and can be replayed with
#   build-fuzz/tests/fuzz/fuzz_parser build-fuzz/artifacts/<file>
# (build-fuzz/fuzz_parser while the top level does not add tests/fuzz itself).
#
# Usage: scripts/fuzz.sh [SECONDS]
# Env:   GGUFSCOPE_SHARED_DIR (default ../shared beside the checkout),
#        FUZZ_EXTRA_ARGS (more libFuzzer flags, e.g. "-jobs=4 -workers=4").
set -euo pipefail

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [[ "$seconds" -eq 0 ]]; then
  echo "usage: $0 [SECONDS]  (a positive whole number, default 60)" >&2
  exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build-fuzz"
shared="${GGUFSCOPE_SHARED_DIR:-$root/../shared}"
models="$shared/models"
corpus="$build/corpus"
artifacts="$build/artifacts"

for tool in clang clang++ cmake; do
  command -v "$tool" >/dev/null || { echo "fuzz.sh: $tool not found" >&2; exit 2; }
done

# --- Build -------------------------------------------------------------------
# fuzzer-no-link in the global sanitizer list instruments ggufscope_gguf for
# coverage; tests/fuzz adds -fsanitize=fuzzer (libFuzzer's main) to the fuzzer
# executable only.
# shellcheck disable=SC2054  # the commas are in a -fsanitize list, not between elements
cmake_args=(
  -S "$root" -B "$build"
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++
  -DCMAKE_BUILD_TYPE=RelWithDebInfo
  -DGGUFSCOPE_FUZZ=ON
  -DGGUFSCOPE_SANITIZE=fuzzer-no-link,address,undefined
  -DGGUFSCOPE_CUDA=OFF -DGGUFSCOPE_BENCH=OFF -DGGUFSCOPE_TESTS=OFF
)
# Until the top-level CMakeLists.txt adds tests/fuzz under GGUFSCOPE_FUZZ
# itself, read tests/fuzz/CMakeLists.txt at the end of the top-level directory
# (a deferred call may not add a subdirectory, but may include a file). Set or
# cleared on every run, because CMake caches it.
mkdir -p "$build"
if grep -q 'tests/fuzz' "$root/CMakeLists.txt"; then
  cmake_args+=(-UCMAKE_PROJECT_INCLUDE)
else
  cat >"$build/add_fuzz_dir.cmake" <<'CMAKE'
cmake_language(DEFER CALL include "${CMAKE_SOURCE_DIR}/tests/fuzz/CMakeLists.txt")
CMAKE
  cmake_args+=("-DCMAKE_PROJECT_INCLUDE=$build/add_fuzz_dir.cmake")
fi
cmake "${cmake_args[@]}" >"$build/configure.log" 2>&1 || {
  cat "$build/configure.log" >&2
  exit 1
}
cmake --build "$build" --target fuzz_parser -j "$(nproc)"
fuzzer="$(find "$build" -name fuzz_parser -type f -perm -u+x | head -n 1)"

# --- Seed corpus -------------------------------------------------------------
# Small models whole; the first 64 KiB of bigger ones (their headers, cut
# short); and, where python3 is present, small *valid* files cut out of each
# model (all its metadata plus the tensors that fit, repacked) so that the
# fuzzer starts from inputs that parse, with every quant type in the set.
mkdir -p "$corpus" "$artifacts"
max_len=131072
if [[ -d "$models" ]]; then
  while IFS= read -r -d '' f; do
    name="$(basename "$f")"
    if [[ "$(stat -c %s "$f")" -le "$max_len" ]]; then
      cp -f "$f" "$corpus/seed-$name"
    else
      head -c 65536 "$f" >"$corpus/seed-64k-$name"
    fi
  done < <(find "$models" -name '*.gguf' -type f -print0)
  if command -v python3 >/dev/null; then
    python3 - "$models" "$corpus" "$max_len" <<'PY'
import os, struct, sys

models, corpus, max_len = sys.argv[1], sys.argv[2], int(sys.argv[3])
SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def skip_value(b, pos, t):
    if t == 8:
        (n,) = struct.unpack_from("<Q", b, pos)
        return pos + 8 + n
    if t == 9:
        et, n = struct.unpack_from("<IQ", b, pos)
        pos += 12
        if et in SCALAR:
            return pos + n * SCALAR[et]
        for _ in range(n):
            pos = skip_value(b, pos, et)
        return pos
    return pos + SCALAR[t]


def shrink(path):
    """All metadata plus the tensors that fit max_len, repacked: a valid file."""
    with open(path, "rb") as fh:
        b = fh.read(16 << 20)  # whole headers: the largest (a 151k-token vocabulary) is 6 MiB
    if b[:4] != b"GGUF":
        return None
    version, n_tensors, n_kv = struct.unpack_from("<IQQ", b, 4)
    pos, align = 24, 32
    for _ in range(n_kv):
        (klen,) = struct.unpack_from("<Q", b, pos)
        key = b[pos + 8:pos + 8 + klen]
        pos += 8 + klen
        (t,) = struct.unpack_from("<I", b, pos)
        pos += 4
        if key == b"general.alignment":
            (align,) = struct.unpack_from("<I", b, pos)
        pos = skip_value(b, pos, t)
    kv_end = pos
    infos = []
    for _ in range(n_tensors):
        (nlen,) = struct.unpack_from("<Q", b, pos)
        name = b[pos + 8:pos + 8 + nlen]
        pos += 8 + nlen
        (nd,) = struct.unpack_from("<I", b, pos)
        ne = struct.unpack_from("<%dq" % nd, b, pos + 4)
        pos += 4 + 8 * nd
        t, off = struct.unpack_from("<IQ", b, pos)
        pos += 12
        infos.append([name, ne, t, off, 0])
    data_offset = (pos + align - 1) // align * align
    # Each tensor's padded size is the gap to the next one (the models are
    # packed, as llama.cpp requires), so no ggml type table is needed here.
    ends = sorted(i[3] for i in infos) + [os.path.getsize(path) - data_offset]
    for i in infos:
        i[4] = min(e for e in ends if e > i[3]) - i[3] if any(e > i[3] for e in ends) else 0
    pad = lambda x: (x + align - 1) // align * align
    budget = max_len - kv_end - 1024
    keep, used = [], 0
    for name, ne, t, off, size in sorted(infos, key=lambda i: i[4]):
        cost = 8 + len(name) + 4 + 8 * len(ne) + 12 + size
        if used + cost > budget:
            break
        keep.append((name, ne, t, off, size))
        used += cost
    out = bytearray(b[:4]) + struct.pack("<IQQ", version, len(keep), n_kv) + b[24:kv_end]
    new_off = 0
    for name, ne, t, _, size in keep:
        out += struct.pack("<Q", len(name)) + name + struct.pack("<I", len(ne))
        out += struct.pack("<%dq" % len(ne), *ne) + struct.pack("<IQ", t, new_off)
        new_off += size
    out += bytes(pad(len(out)) - len(out))
    with open(path, "rb") as fh:
        for _, _, _, off, size in keep:
            fh.seek(data_offset + off)
            out += fh.read(size)
    return bytes(out) if len(out) <= max_len else None


for dirpath, _, files in os.walk(models):
    for f in sorted(files):
        if not f.endswith(".gguf"):
            continue
        try:
            small = shrink(os.path.join(dirpath, f))
        except Exception as e:  # a seed is a nicety, never a reason to stop
            print(f"fuzz.sh: no valid seed from {f}: {e}", file=sys.stderr)
            continue
        if small:
            with open(os.path.join(corpus, "seed-valid-" + f), "wb") as out:
                out.write(small)
PY
  fi
else
  echo "fuzz.sh: $models not found; fuzzing from an empty corpus" >&2
fi
echo "fuzz.sh: $(find "$corpus" -type f | wc -l) inputs in $corpus"

# --- Run ---------------------------------------------------------------------
# libFuzzer exits non-zero on a crash or sanitizer report (including leaks, as
# LeakSanitizer runs at each input's end with ASan on Linux), a timeout
# (-timeout, per input) and running out of memory (-rss_limit_mb, which also
# caps single allocations); set -e passes that exit status on.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
# shellcheck disable=SC2086  # FUZZ_EXTRA_ARGS is a list of flags
"$fuzzer" "$corpus" \
  -max_total_time="$seconds" \
  -max_len="$max_len" \
  -timeout=10 \
  -rss_limit_mb=2048 \
  -artifact_prefix="$artifacts/" \
  -print_final_stats=1 \
  ${FUZZ_EXTRA_ARGS:-}
echo "fuzz.sh: no crash, leak or timeout in ${seconds}s"
