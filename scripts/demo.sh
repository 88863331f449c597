#!/usr/bin/env bash
# The main job on the default model (stories260K, a real trained llama):
# set up, build, show what ggufscope sees in the file, and prove that every
# tensor dequantizes bit-identically to llama.cpp's own gguf-py.
#   scripts/demo.sh [MODEL.gguf]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
MODEL="${1:-$ROOT/../shared/models/stories260K.gguf}"
EXTRA=()
# With the default model, also check a real quantized model (Gemma 3 270M Q4_K_M).
[[ $# -eq 0 ]] && EXTRA=("$ROOT/.cache/models/gemma-3-270m-q4_k_m.gguf")
echo
./build/ggufscope info "$MODEL" --no-tensors
echo
.venv/bin/python scripts/check_dequant.py --ggufscope ./build/ggufscope "$MODEL" "${EXTRA[@]}"
