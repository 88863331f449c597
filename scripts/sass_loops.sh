#!/bin/bash
# The tensor-core mat-vec's loops as SASS instruction counts, on a machine
# without a GPU (docs/PERFORMANCE.md quotes them): compiles
# cuda_runtime/matvec.cu for sm_90 to a cubin with the project's flags,
# dumps it with cuobjdump (from PyPI's nvidia-cuda-cuobjdump and
# nvidia-cuda-nvdisasm wheels, fetched once into .cache/sass-tools; the
# CUDA image here ships nvcc without them) and prints the loops of the
# kernels whose mangled names contain PATTERN (scripts/sass_loops.py).
#   bash scripts/sass_loops.sh [PATTERN]   (default: the 2-tile Q4_K kernel with a folded norm)
set -euo pipefail
cd "$(dirname "$0")/.."
PATTERN="${1:-TcQ4KELi2ELi4ELb1ELb0E}"
tools=.cache/sass-tools
if [ ! -x "$tools/nvidia/cu13/bin/cuobjdump" ]; then
  mkdir -p "$tools/wheels"
  python3 -m pip download --quiet --no-deps -d "$tools/wheels" nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm
  for w in "$tools"/wheels/*.whl; do python3 -m zipfile -e "$w" "$tools"; done
  chmod +x "$tools"/nvidia/cu13/bin/*
fi
export PATH="$PWD/$tools/nvidia/cu13/bin:$PATH"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "compiling cuda_runtime/matvec.cu (sm_90)..." >&2
nvcc -DFMT_SHARED -I. -isystem=/usr/include/eigen3 -O2 -DNDEBUG --fmad=false -std=c++17 -x cu -arch=sm_90 \
  -cubin cuda_runtime/matvec.cu -o "$out/matvec.cubin" -Xptxas -v 2> "$out/ptxas.log"
cuobjdump -sass "$out/matvec.cubin" > "$out/matvec.sass"
python3 scripts/sass_loops.py "$out/matvec.sass" "$PATTERN"
