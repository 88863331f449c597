#!/usr/bin/env bash
# Issue 7 end to end, on the GPU machine (CPU work only; torch + transformers,
# no network). Run from the repository root with .device/llama/src.tar.xz (a
# trimmed llama.cpp tree: convert_hf_to_gguf.py, conversion/, gguf-py/,
# tools/quantize) and .device/debs carried:
#   scripts/provenance_e2e.sh
# Builds ggufscope (without CUDA: not needed here) and llama-quantize, then
# scripts/provenance_e2e.py makes random Qwen2 / Llama / Gemma3 checkpoints
# with transformers, converts them with convert_hf_to_gguf.py (F16), quantizes
# them (Q8_0, Q4_K_M), and checks `ggufscope diff` against each checkpoint:
# consistent when clean, the right tensor named for each planted fault.
# Logs go to $OUT (or /tmp/provenance-e2e); exit 1 on any unexpected result.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
OUT="${OUT:-/tmp/provenance-e2e}"; mkdir -p "$OUT"
WORK="${WORK:-/tmp/provenance-work}"; rm -rf "$WORK"; mkdir -p "$WORK"
S=$(date +%s); t() { echo "[t+$(( $(date +%s) - S ))s] $*"; }
fail() { echo "provenance e2e: SETUP FAILED: $*"; exit 1; }

[ -f .device/llama/src.tar.xz ] || fail ".device/llama/src.tar.xz not carried"
python3 -c "import torch, transformers, numpy; print('python', __import__('sys').version.split()[0], 'torch', torch.__version__, 'transformers', transformers.__version__, 'numpy', numpy.__version__)" \
  || fail "python3 lacks torch, transformers or numpy"

# Dependencies of ggufscope, as the other device runs unpack them.
if ls .device/debs/*.deb >/dev/null 2>&1; then
  mkdir -p /tmp/deps && for f in .device/debs/*.deb; do dpkg -x "$f" /tmp/deps; done
  export PKG_CONFIG_SYSROOT_DIR=/tmp/deps PKG_CONFIG_LIBDIR=/tmp/deps/usr/lib/x86_64-linux-gnu/pkgconfig
  export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
fi
cmake -S . -B build-prov -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=/tmp/deps/usr -DGGUFSCOPE_CUDA=OFF \
  -DGGUFSCOPE_BENCH=OFF -DGGUFSCOPE_WERROR=OFF > "$OUT/configure.log" 2>&1 || { tail -30 "$OUT/configure.log"; fail "configure"; }
cmake --build build-prov -j16 --target ggufscope > "$OUT/build.log" 2>&1 || { grep -E "error" "$OUT/build.log" | head -30; fail "build ggufscope"; }
t "ggufscope built"

LL=/tmp/llama-src; rm -rf "$LL"; mkdir -p "$LL"
tar -xJf .device/llama/src.tar.xz -C "$LL" || fail "untar llama.cpp"
LLD="$LL/llama.cpp"; [ -f "$LLD/convert_hf_to_gguf.py" ] || LLD=$(dirname "$(find "$LL" -name convert_hf_to_gguf.py | head -1)")
[ -f "$LLD/convert_hf_to_gguf.py" ] || fail "no convert_hf_to_gguf.py in the tarball"
cmake -S "$LLD" -B /tmp/llama-build -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=ON \
  > "$OUT/llama-configure.log" 2>&1 || { tail -30 "$OUT/llama-configure.log"; fail "configure llama.cpp"; }
cmake --build /tmp/llama-build -j16 --target llama-quantize > "$OUT/llama-build.log" 2>&1 \
  || { grep -E "error" "$OUT/llama-build.log" | head -30; fail "build llama-quantize"; }
Q=$(find /tmp/llama-build -name llama-quantize -type f -perm -u+x | head -1)
[ -x "$Q" ] || fail "llama-quantize not found after the build"
t "llama-quantize built ($Q)"

PYTHONPATH="$LLD/gguf-py:${PYTHONPATH:-}" python3 scripts/provenance_e2e.py --ggufscope build-prov/ggufscope \
  --quantize "$Q" --llama "$LLD" --work "$WORK" 2>&1 | tee "$OUT/summary.txt"
rc=${PIPESTATUS[0]}
cp "$WORK/commands.log" "$OUT/" 2>/dev/null
# One real diff report per family for docs/PROVENANCE.md.
for a in qwen2 llama gemma3; do
  [ -f "$WORK/$a-Q4_K_M.gguf" ] && build-prov/ggufscope diff "$WORK/$a-Q4_K_M.gguf" "$WORK/$a-ckpt" --all > "$OUT/diff-$a-Q4_K_M.txt" 2>&1
done
t "done, exit $rc"
exit "$rc"
