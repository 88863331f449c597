#!/bin/bash
# Prepares what bench/bench_cuda.sh needs on the GPU machine (which reaches no
# registry) under .device/ (git-ignored; carry it): Debian's .debs of the build
# dependencies the device lacks, the shared models, and llama.cpp's source
# (from the llama-cpp-python sdist that scripts/setup.sh downloaded), trimmed
# to fit one transfer.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .device/debs .device/llama .device/shared/models/synth
(cd .device/debs && apt-get download libfmt-dev libfmt9 libcli11-dev nlohmann-json3-dev libgtest-dev googletest \
  libxxhash-dev libxxhash0 libeigen3-dev)
cp ../shared/models/stories260K.gguf .device/shared/models/
cp ../shared/models/synth/*.gguf .device/shared/models/synth/
# llama.cpp's source: the sdist that scripts/setup.sh downloads, fetched here if it has not run.
SRC=.cache/src/llama_cpp_python-0.3.36
if [ ! -d "$SRC/vendor/llama.cpp" ]; then
  mkdir -p .cache/src
  [ -f .cache/src/llama_cpp_python-0.3.36.tar.gz ] ||
    python3 -m pip download -q --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d .cache/src
  tar -xzf .cache/src/llama_cpp_python-0.3.36.tar.gz -C .cache/src
fi
tar -C "$SRC/vendor" --exclude=llama.cpp/models --exclude=llama.cpp/docs \
  --exclude=llama.cpp/benches -cJf .device/llama/src.tar.xz llama.cpp
# Gemma 3 270M's metadata and tensor table (bench_cuda.sh writes a model of that layout with random
# blocks): from the real file that scripts/setup.sh assembles, with a built ggufscope.
GEMMA=.cache/models/gemma-3-270m-q4_k_m.gguf
for bin in build/ggufscope build-*/ggufscope; do
  if [ -f "$GEMMA" ] && [ -x "$bin" ]; then "$bin" info --json "$GEMMA" > .device/gemma-info.json && break; fi
done
[ -f .device/gemma-info.json ] || echo "no .device/gemma-info.json: run scripts/setup.sh (the Gemma file and a build) first" >&2
# LLAMA_PREBUILD=1: llama-bench built here from the same source (-DGGML_CUDA=ON, sm_90, static, NCCL and
# -march=native off, so it runs on the device's CPU and needs only the CUDA runtime, cuBLAS and libgomp there),
# stripped and xz-compressed into .device/llama-bin/ (~41 MB): bench_cuda.sh then runs it instead of spending
# ~9 minutes of the device's 16 cores building llama.cpp. ~40 minutes on 2 cores. Carry it with .device/min
# (stories260K alone; the synth models are only for TESTS=1) to stay within one transfer:
#   carry: .device/debs .device/min .device/gemma-info.json .device/llama-bin   (SHARED=.device/min)
if [ "${LLAMA_PREBUILD:-0}" = 1 ]; then
  B=.cache/llama-cuda-build
  [ -d .cache/llama-cuda-src/llama.cpp ] ||
    { mkdir -p .cache/llama-cuda-src && tar -xJf .device/llama/src.tar.xz -C .cache/llama-cuda-src; }
  cmake -S .cache/llama-cuda-src/llama.cpp -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON \
    -DGGML_CUDA_NCCL=OFF -DCMAKE_CUDA_ARCHITECTURES=90 -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_COMMON=ON > "$B.cfg.log"
  cmake --build "$B" --target llama-bench -j"$(nproc)"
  mkdir -p .device/llama-bin && strip -o .device/llama-bin/llama-bench "$B/bin/llama-bench"
  xz -9 -T0 -f .device/llama-bin/llama-bench
  mkdir -p .device/min/models && cp ../shared/models/stories260K.gguf .device/min/models/
fi
du -sh .device/*
