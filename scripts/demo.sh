#!/usr/bin/env bash
# The main job on the default model (stories260K, a real trained llama):
# set up, build, then show what ggufscope sees in the file, audit it, prove
# that every tensor dequantizes bit-identically to gguf-py and llama.cpp, and
# let the CPU reference write a story.
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
