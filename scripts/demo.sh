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
echo
./build/ggufscope info "$MODEL" --no-tensors
echo
.venv/bin/python scripts/check_dequant.py --ggufscope ./build/ggufscope "$MODEL"
