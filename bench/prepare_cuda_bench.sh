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
du -sh .device/*
