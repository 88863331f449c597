#!/usr/bin/env bash
# The main job on the default model (stories260K, a real trained llama):
# set up, build, then show what ggufscope sees in the file, audit it, prove
# that every tensor dequantizes bit-identically to gguf-py and llama.cpp, and
# let the CPU reference write a story; then doctor: is it the file or the kernel?
#   scripts/demo.sh [MODEL.gguf]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
MODEL="${1:-$ROOT/../shared/models/stories260K.gguf}"
EXTRA=()
# With the default model, also check a real quantized model (Gemma 3 270M Q4_K_M).
[[ $# -eq 0 ]] && EXTRA=("$ROOT/.cache/models/gemma-3-270m-q4_k_m.gguf")
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
step ggufscope info "$MODEL" --no-tensors
./build/ggufscope info "$MODEL" --no-tensors
step ggufscope audit "$MODEL"
./build/ggufscope audit "$MODEL" || true
step check_dequant.py "$MODEL" "${EXTRA[@]}"
.venv/bin/python scripts/check_dequant.py --ggufscope ./build/ggufscope "$MODEL" "${EXTRA[@]}"
step ggufscope run "$MODEL" -p "Once upon a time" -n 64
./build/ggufscope run "$MODEL" -p "Once upon a time" -n 64 || true
# The question ggufscope answers: is it the file or the kernel? Here the
# "engine under test" is the reference with the seed case's bug injected
# (Qwen2's q/k/v biases dropped) on a Qwen2-shaped model (docs/FILE-OR-KERNEL.md).
QWEN="$ROOT/../shared/models/synth/synth-qwen2-Q8_0.gguf"
if [[ $# -eq 0 && -f "$QWEN" ]]; then
  step ggufscope doctor "$MODEL"
  ./build/ggufscope doctor "$MODEL" || true
  step ggufscope doctor synth-qwen2-Q8_0.gguf --inject qkv-bias-dropped
  ./build/ggufscope doctor "$QWEN" --inject qkv-bias-dropped || true
fi
