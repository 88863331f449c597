#!/bin/bash
# The tensor-core mat-vec's loops as SASS instruction counts, on a machine
# without a GPU (docs/PERFORMANCE.md quotes them): compiles
# cuda_runtime/matvec.cu for sm_90 to a cubin with the project's flags,
# dumps it with cuobjdump (from PyPI's nvidia-cuda-cuobjdump and
# nvidia-cuda-nvdisasm wheels, fetched once into .cache/sass-tools; the
# CUDA image here ships nvcc without them) and prints the loops of the
# kernels whose mangled names contain PATTERN (scripts/sass_loops.py).
#   [BUILD=build-dir] bash scripts/sass_loops.sh [PATTERN]   (default: the 2-tile Q4_K kernel with a folded norm)
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
# The build's own nvcc command for matvec.cu (BUILD, default build/; CMake
# exports compile_commands.json), compiled to a cubin instead of an object,
# so the SASS is what the build makes; without a configured build, the
# flags cuda_runtime/CMakeLists.txt sets (sm_90, -O2, --fmad=false).
db="${BUILD:-build}/compile_commands.json"
cmd=()
if [ -f "$db" ]; then
  mapfile -t cmd < <(python3 - "$db" <<'PY'
import json, shlex, sys
for e in json.load(open(sys.argv[1])):
    if e["file"].endswith("cuda_runtime/matvec.cu"):
        args = e.get("arguments") or shlex.split(e["command"])
        keep, skip = [], False
        for a in args:
            if skip:
                skip = False
            elif a in ("-o", "-MF", "-MT"):
                skip = True
            elif a.startswith("--generate-code="):  # a cubin takes one real architecture
                keep.append("-arch=sm_" + a.split("sm_")[1].rstrip("]").split(",")[0])
            elif a not in ("-c", "-MD"):
                keep.append(a)
        print("\n".join(keep))
        break
PY
)
fi
if [ "${#cmd[@]}" -eq 0 ]; then
  cmd=(nvcc -DFMT_SHARED -I. -isystem=/usr/include/eigen3 -O2 -DNDEBUG --fmad=false -std=c++17 -x cu -arch=sm_90
       cuda_runtime/matvec.cu)
fi
echo "compiling cuda_runtime/matvec.cu: ${cmd[0]} ... (to a cubin)" >&2
"${cmd[@]}" -cubin -o "$out/matvec.cubin" -Xptxas -v 2> "$out/ptxas.log" || { tail -20 "$out/ptxas.log" >&2; exit 1; }
cuobjdump -sass "$out/matvec.cubin" > "$out/matvec.sass"
python3 scripts/sass_loops.py "$out/matvec.sass" "$PATTERN"
