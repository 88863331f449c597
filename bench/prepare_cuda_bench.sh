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
tar -C .cache/src/llama_cpp_python-0.3.36/vendor --exclude=llama.cpp/models --exclude=llama.cpp/docs \
  --exclude=llama.cpp/benches -cJf .device/llama/src.tar.xz llama.cpp
du -sh .device/*
