#!/bin/bash
# CUDA decode: ggufscope --backend cuda against llama.cpp's CUDA build (llama-bench), on the
# same files, on the same card, in one run (issue 5). Runs ON THE GPU MACHINE, from the
# repository root, with what bench/prepare_cuda_bench.sh put in .device/ carried along:
#   run: bash bench/bench_cuda.sh     carry: .device/llama .device/debs .device/shared
# It builds ggufscope and llama-bench (from llama-cpp-python 0.3.36's vendored llama.cpp,
# -DGGML_CUDA=ON, sm_90) side by side, measures the device-to-device copy bandwidth
# (bench/cuda_copy_bw.cu), writes random but valid qwen2 models in Qwen2.5-1.5B/7B shapes
# with ggufscope-synth, and prints decode tokens/s for both. Results: docs/PERFORMANCE.md.
# With TESTS=1 it also builds and runs cuda_ops_test and cuda_forward_test first (needs
# .device/shared/models/synth) and ggufscope-bench-matvec (every mat-vec kernel's GB/s).
cd "$(dirname "$0")/.." || exit 1
OUT="${OUT:-/tmp/bench_cuda_out}"; mkdir -p "$OUT"
S=$(date +%s); t() { echo "[t+$(( $(date +%s) - S ))s] $*"; }
# The variants are built and timed inside the TESTS=1 block (they reuse its build of the tests);
# without it they would be skipped silently after minutes of device time (session 23 lost a call so).
if [ -n "${SED_VARIANTS:-}" ] && [ "${TESTS:-0}" != 1 ]; then
  echo "bench_cuda.sh: SED_VARIANTS needs TESTS=1 (add FWD_FILTER=NONE to skip the forward tests)" >&2; exit 2
fi
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
# LLAMA=0: ours only (no llama.cpp build). PROFILE=1: per-kernel device time of decode steps
# (ncu, gpu__time_duration per launch, summed by kernel) on the first models written.
# SHARED=.device/min: the shared models' folder carried (default .device/shared; TESTS=1 needs the synth
# models, the timing only stories260K).
SHARED=${SHARED:-.device/shared}
# A llama-bench built beforehand (bench/prepare_cuda_bench.sh LLAMA_PREBUILD=1: same source and CUDA flags,
# static) is used when carried in .device/llama-bin/; else llama.cpp is built here, beside ours.
PREBUILT=0
if [ "${LLAMA:-1}" = 1 ] && [ -f .device/llama-bin/llama-bench.xz ]; then
  mkdir -p /tmp/llama/build/bin
  if xz -dc .device/llama-bin/llama-bench.xz > /tmp/llama/build/bin/llama-bench && chmod +x /tmp/llama/build/bin/llama-bench &&
     ldd /tmp/llama/build/bin/llama-bench > /tmp/llama/ldd.txt 2>&1; then
    missing=$(grep "not found" /tmp/llama/ldd.txt | grep -v libcuda.so)
    if [ -z "$missing" ]; then
      PREBUILT=1; echo "llama rc=0 (prebuilt, .device/llama-bin)" > /tmp/llama/done; echo > /tmp/llama/build.log
    else
      echo "prebuilt llama-bench lacks: $missing; building llama.cpp here instead"
    fi
  else
    echo "prebuilt llama-bench could not be unpacked or read ($(tail -1 /tmp/llama/ldd.txt 2>/dev/null)); building llama.cpp here instead"
  fi
  [ "$PREBUILT" = 1 ] || rm -f /tmp/llama/build/bin/llama-bench
fi
if [ "${LLAMA:-1}" = 1 ] && [ "$PREBUILT" = 0 ]; then
mkdir -p /tmp/llama && tar -xJf .device/llama/src.tar.xz -C /tmp/llama
( cmake -S /tmp/llama/llama.cpp -B /tmp/llama/build -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_COMMON=ON > /tmp/llama/cfg.log 2>&1 &&
  cmake --build /tmp/llama/build --target llama-bench -j${LLAMA_JOBS:-8} > /tmp/llama/build.log 2>&1; echo "llama rc=$?" > /tmp/llama/done ) &
fi
mkdir -p /tmp/deps && for f in .device/debs/*.deb; do dpkg -x "$f" /tmp/deps; done
export PKG_CONFIG_SYSROOT_DIR=/tmp/deps PKG_CONFIG_LIBDIR=/tmp/deps/usr/lib/x86_64-linux-gnu/pkgconfig
export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu:$LD_LIBRARY_PATH
# A warm machine keeps build-gpu from the previous call while the tree is copied in anew, and ninja rebuilds
# only what is newer than its object: a source put back to an older state (a patch the previous call applied
# on the device, absent now) would keep the patched object (session 22 timed a variant as main that way).
# Each build leaves its sources' checksums; a tracked file whose contents differ from them is touched.
# The tree's files, NUL-separated: tracked and untracked-but-not-ignored ones that exist. (The device's
# copy may carry a git index older than the tree: files added since are "others" there, files deleted
# since are still listed, so both lists and a check that each file is there.)
tree_files() {
  git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
    [ -f "$f" ] && printf '%s\0' "$f"
  done
}
tree_files | xargs -0 sha1sum > /tmp/sums.now 2> /dev/null
if [ -f build-gpu/.source-sums ]; then
  comm -13 <(sort build-gpu/.source-sums) <(sort /tmp/sums.now) | cut -c43- | while IFS= read -r f; do touch -- "$f"; done
elif [ -d build-gpu ]; then
  tree_files | xargs -0 touch  # a build from before the checksums: rebuild it all once
fi
cmake -S . -B build-gpu -G Ninja -DCMAKE_PREFIX_PATH=/tmp/deps/usr -DGGUFSCOPE_BENCH=ON -DGGUFSCOPE_TESTS=${TESTS:-0} -DGGUFSCOPE_WERROR=OFF \
  -DGGUFSCOPE_SHARED_DIR="$PWD/$SHARED" > /tmp/configure.log 2>&1 || { tail -30 /tmp/configure.log; exit 1; }
TARGETS="ggufscope ggufscope-synth ggufscope-bench-forward"; [ "${TESTS:-0}" = 1 ] && TARGETS="$TARGETS ggufscope-bench-matvec cuda_ops_test cuda_decode_ops_test cuda_forward_test"
[ -n "${STEP_BOUND:-}" ] && TARGETS="$TARGETS ggufscope-bench-step"
cmake --build build-gpu -j${JOBS:-8} --target $TARGETS > /tmp/build.log 2>&1 || { grep -E "error" /tmp/build.log | head -30; exit 1; }
cp /tmp/sums.now build-gpu/.source-sums
t "ggufscope built"
# TIMELINE=1: bench/variants/timeline.patch on a copy of the tree, built with -DGGUFSCOPE_TIMELINE (in the
# background, beside everything else); after our decode timings, three decode steps of each model matching
# TL_ONLY (a regex, default the 7B and 1.5B Q4_K_M files) recorded block by block and summarized
# (bench/timeline_summary.py: each kernel's share of the step, how many of its blocks were resident before
# its release). The records cost ~4% of the step; the summaries and the 7B CSV land in $OUT.
if [ "${TIMELINE:-0}" = 1 ]; then
  rm -rf /tmp/tl /tmp/tl-done && mkdir -p /tmp/tl && tree_files | xargs -0 cp --parents -t /tmp/tl
  ( git -C /tmp/tl apply "$PWD/bench/variants/timeline.patch" &&
    cmake -S /tmp/tl -B /tmp/tl/build -G Ninja -DCMAKE_PREFIX_PATH=/tmp/deps/usr -DGGUFSCOPE_TESTS=OFF -DGGUFSCOPE_BENCH=ON \
      -DGGUFSCOPE_WERROR=OFF -DCMAKE_CUDA_FLAGS=-DGGUFSCOPE_TIMELINE -DCMAKE_CXX_FLAGS=-DGGUFSCOPE_TIMELINE > /tmp/tl.log 2>&1 &&
    cmake --build /tmp/tl/build -j4 --target ggufscope-bench-forward >> /tmp/tl.log 2>&1; echo "timeline build rc=$?" > /tmp/tl-done ) &
fi
nvcc -O2 -o /tmp/bw bench/cuda_copy_bw.cu && /tmp/bw | tee "$OUT/bw.txt"
BW=$(grep -o "[0-9.]*$" "$OUT/bw.txt")
# STEP_BOUND='--depth 2;--warps 4 --depth 4': ggufscope-bench-step under each argument set (';' between them):
# a decode step's weight traffic with copies only, one dependent launch per op against two persistent forms
# (--mode launch|persist|warps|all, --no-wait, --empty; bench/step_bound.cu's header), each run against the copy
# bandwidth it measures itself.
if [ -n "${STEP_BOUND:-}" ]; then
  IFS=';' read -r -a sbs <<< "$STEP_BOUND"
  for sb in "${sbs[@]}"; do echo "--- ggufscope-bench-step $sb"; timeout 120 build-gpu/ggufscope-bench-step $sb; done | tee "$OUT/step_bound.txt"
  t "step bound done"
fi
if [ "${TESTS:-0}" = 1 ]; then
  timeout 120 build-gpu/tests/cuda_ops_test > "$OUT/cuda_ops_test.log" 2>&1; echo "cuda_ops_test rc=$?"
  grep -E "^\[  (PASSED|FAILED) |Failure|seed" "$OUT/cuda_ops_test.log" | head -20
  timeout 60 build-gpu/tests/cuda_decode_ops_test > "$OUT/cuda_decode_ops_test.log" 2>&1; echo "cuda_decode_ops_test rc=$?"
  grep -E "^\[  (PASSED|FAILED) |Failure|seed" "$OUT/cuda_decode_ops_test.log" | head -20
  timeout ${FWD_TIMEOUT:-200} build-gpu/tests/cuda_forward_test --gtest_filter="${FWD_FILTER:-*}" > "$OUT/cuda_forward_test.log" 2>&1; echo "cuda_forward_test rc=$?"
  grep -E "^\[  (PASSED|FAILED) |^\[  SKIPPED|Failure" "$OUT/cuda_forward_test.log" | head -20
  t "tests done"
  # MATVEC=0: skip the kernel benches below (every mat-vec kernel's GB/s, Q8_0/Q4_K through both paths).
  [ "${MATVEC:-1}" = 1 ] && timeout 90 build-gpu/ggufscope-bench-matvec --copy-gbps "$BW" | tee "$OUT/matvec.txt"
  # Q8_0 and Q4_K through each of their kernels on every shape (kAuto picks by shape: KeepTensorCore).
  [ "${MATVEC:-1}" = 1 ] && for path in tc direct; do
    echo "--- Q8_0 and Q4_K, --path $path"
    for ty in Q8_0 Q4_K; do
      timeout 60 build-gpu/ggufscope-bench-matvec --copy-gbps "$BW" --type $ty --path $path
    done
  done | tee "$OUT/matvec_tc_simt.txt"
  # MATVEC_AB="GGUFSCOPE_MATVEC_TC_TILES=2 GGUFSCOPE_MATVEC_TC_WARPS=4,GGUFSCOPE_MATVEC_TC_TILES=1": the
  # tensor-core kernels again under each setting (a comma joins variables within one setting). MATVEC_AB_TYPES: which types (default Q8_0 Q4_K); MATVEC_AB_ARGS: more arguments (e.g. '--op glu-norm').
  for ab in ${MATVEC_AB:-}; do
    for ty in ${MATVEC_AB_TYPES:-Q8_0 Q4_K}; do
      echo "--- $ty --path tc ${MATVEC_AB_ARGS:-} [$ab]"; env ${ab//,/ } timeout 60 build-gpu/ggufscope-bench-matvec --copy-gbps "$BW" --type $ty --path tc ${MATVEC_AB_ARGS:-}
    done
  done | tee "$OUT/matvec_ab.txt"
  # SED_VARIANTS='d3=s/kDepth = 2;/kDepth = 3;/;;q6=patch:.device/q6k.patch': for each name=spec (';;'
  # between them), a copy of the tree with the spec applied: a sed script on cuda_runtime/matvec.cu, or
  # patch:FILE (`git apply`, e.g. a branch's `git diff main..branch` carried in .device/). Their
  # ggufscope-bench-matvec (VARIANT_TESTS=1: and cuda_ops_test's MatVec* tests) built side by side and run
  # on the kernels of VARIANT_TYPES (default Q8_0 Q4_K) through --path VARIANT_PATH (default tc; auto, direct).
  # VARIANT_DECODE=1: each variant's decode is
  # timed too, next to ours, on every model written below.
  if [ -n "${SED_VARIANTS:-}" ]; then
    IFS=$'\n' read -r -d '' -a vs < <(printf '%s' "${SED_VARIANTS//;;/$'\n'}"; printf '\0')
    vt=ggufscope-bench-matvec; [ "${VARIANT_TESTS:-0}" = 1 ] && vt="$vt cuda_ops_test"
    [ "${VARIANT_DECODE:-0}" = 1 ] && vt="$vt ggufscope-bench-forward"
    # VARIANT_FORWARD=1 (with VARIANT_TESTS=1): the variant's cuda_forward_test too (every model of the shared
    # directory against the CPU reference; VARIANT_FWD_FILTER, default all), so a variant can be merged on its own run.
    [ "${VARIANT_TESTS:-0}" = 1 ] && [ "${VARIANT_FORWARD:-0}" = 1 ] && vt="$vt cuda_forward_test"
    for v in "${vs[@]}"; do
      d=/tmp/variant-${v%%=*}; spec=${v#*=}
      rm -rf $d && mkdir -p $d && tree_files | xargs -0 cp --parents -t $d
      if [ "${spec#patch:}" != "$spec" ]; then
        git -C $d apply "$PWD/${spec#patch:}" || echo "variant ${v%%=*}: patch does not apply"
      else
        sed -i "$spec" $d/cuda_runtime/matvec.cu
      fi
      echo "variant ${v%%=*}: $(diff -r -q --exclude=build . $d 2>/dev/null | grep -c differ) files changed"
      ( cmake -S $d -B $d/build -G Ninja -DCMAKE_PREFIX_PATH=/tmp/deps/usr -DGGUFSCOPE_BENCH=ON \
          -DGGUFSCOPE_TESTS=${VARIANT_TESTS:-0} -DGGUFSCOPE_WERROR=OFF -DGGUFSCOPE_SHARED_DIR="$PWD/$SHARED" > $d.log 2>&1 &&
        cmake --build $d/build -j$(( ${JOBS:-8} / 2 + 1 )) --target $vt >> $d.log 2>&1 ||
          { echo "variant $v: build failed"; grep -E "error" $d.log | head -5; } ) &
    done
    wait
    for v in "${vs[@]}"; do
      d=/tmp/variant-${v%%=*}
      if [ "${VARIANT_TESTS:-0}" = 1 ]; then
        # VARIANT_TEST_FILTER: the variant's op tests (default *MatVec*; a variant's new test may need adding).
        timeout 120 $d/build/tests/cuda_ops_test --gtest_filter="${VARIANT_TEST_FILTER:-*MatVec*}" > "$OUT/variant-${v%%=*}-ops.log" 2>&1
        echo "variant ${v%%=*} cuda_ops_test ${VARIANT_TEST_FILTER:-*MatVec*} rc=$? $(grep -E '^\[  (PASSED|FAILED) ' "$OUT/variant-${v%%=*}-ops.log" | tr '\n' ' ')"
        if [ "${VARIANT_FORWARD:-0}" = 1 ]; then
          timeout 300 $d/build/tests/cuda_forward_test --gtest_filter="${VARIANT_FWD_FILTER:-*}" > "$OUT/variant-${v%%=*}-forward.log" 2>&1
          echo "variant ${v%%=*} cuda_forward_test rc=$? $(grep -E '^\[  (PASSED|FAILED|SKIPPED) *\] [0-9]' "$OUT/variant-${v%%=*}-forward.log" | tr '\n' ' ')"
        fi
        # VARIANT_TEST_ENVS="A=1 B=2,C=3" (e.g. GGUFSCOPE_MATVEC_TC_TILES=1): those tests again under each setting.
        for te in ${VARIANT_TEST_ENVS:-}; do
          env ${te//,/ } timeout 120 $d/build/tests/cuda_ops_test --gtest_filter="${VARIANT_TEST_FILTER:-*MatVec*}" > "$OUT/variant-${v%%=*}-ops-env.log" 2>&1
          echo "variant ${v%%=*} cuda_ops_test MatVec* [$te] rc=$? $(grep -E '^\[  (PASSED|FAILED) ' "$OUT/variant-${v%%=*}-ops-env.log" | tr '\n' ' ')"
          grep -E "Failure|^\[  FAILED" "$OUT/variant-${v%%=*}-ops-env.log" | head -5
        done
      fi
      for ty in ${VARIANT_TYPES:-Q8_0 Q4_K}; do
        # VARIANT_MATVEC_ARGS (e.g. '--op glu-norm --shape 18944x3584': the 7B gate/up launch alone): more arguments.
        echo "--- $ty --path ${VARIANT_PATH:-tc} ${VARIANT_MATVEC_ARGS:-} [variant ${v%%=*}]"; timeout 60 $d/build/ggufscope-bench-matvec --copy-gbps "$BW" --type $ty --path ${VARIANT_PATH:-tc} ${VARIANT_MATVEC_ARGS:-}
      done
    done | tee "$OUT/matvec_variants.txt"
  fi
  # FWD_ENV="GGUFSCOPE_MATVEC_TC=0": cuda_forward_test again under that setting (FWD_FILTER2's tests).
  if [ -n "${FWD_ENV:-}" ]; then
    env ${FWD_ENV//,/ } timeout ${FWD_TIMEOUT:-200} build-gpu/tests/cuda_forward_test --gtest_filter="${FWD_FILTER2:-*}" > "$OUT/cuda_forward_test_env.log" 2>&1
    echo "cuda_forward_test [$FWD_ENV] rc=$?"; grep -E "^\[  (PASSED|FAILED) |^\[  SKIPPED|Failure" "$OUT/cuda_forward_test_env.log" | head -20
  fi
  # The loop variants behind the benchmarking switches (matvec.cu), for the record.
  if [ "${VARIANTS:-0}" = 1 ]; then
    GGUFSCOPE_MATVEC_COLS_PER_WARP=0 timeout 90 build-gpu/ggufscope-bench-matvec --copy-gbps "$BW" > "$OUT/matvec_no_col_bound.txt"
  fi
  # NCU_MATVEC="Q4_K:3584x18944 Q8_0:18944x3584": ncu's throughput, occupancy and stall sections for
  # one launch of each (after warm-up launches), into $OUT/ncu_matvec.txt; clocks left as they run
  # (--clock-control none: ncu would otherwise lock them to base, and the kernels are timed unlocked).
  for ts in ${NCU_MATVEC:-}; do
    echo "=== $ts" >> "$OUT/ncu_matvec.txt"
    timeout 120 ncu --clock-control none --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section WarpStateStats \
      --section LaunchStats --section SchedulerStats --section SourceCounters -k regex:MatVec -s 6 -c 1 \
      build-gpu/ggufscope-bench-matvec --type "${ts%%:*}" --shape "${ts##*:}" >> "$OUT/ncu_matvec.txt" 2>&1
    # The stall reasons as numbers (the sections print only their summary): warps stalled per issue, by reason.
    reasons="barrier branch_resolving dispatch_stall drain imc_miss lg_throttle long_scoreboard math_pipe_throttle membar
      mio_throttle misc no_instruction not_selected selected short_scoreboard sleeping tex_throttle wait"
    metrics=$(for r in $reasons; do printf 'smsp__average_warps_issue_stalled_%s_per_issue_active.ratio,' $r; done)
    timeout 120 ncu --clock-control none --metrics "${metrics%,}" -k regex:MatVec -s 6 -c 1 \
      build-gpu/ggufscope-bench-matvec --type "${ts%%:*}" --shape "${ts##*:}" 2>&1 | grep -E "stalled|==ERR|rror" >> "$OUT/ncu_matvec.txt"
  done
  # NCU_SOURCE="Q4_K:18944x3584": ncu's sampled stalls by SASS instruction for one launch of each
  # (the source page as CSV, $OUT/ncu_source_TYPE.csv): which instruction each stall reason waits at.
  # NCU_KERNEL (a regex, default MatVec): which launches count (MatVecTensorCore: not the x table's launch).
  for ts in ${NCU_SOURCE:-}; do
    timeout 120 ncu --clock-control none --section SourceCounters --section WarpStateStats -k regex:${NCU_KERNEL:-MatVec} -s 6 -c 1 \
      -f -o /tmp/ncu_src build-gpu/ggufscope-bench-matvec --type "${ts%%:*}" --shape "${ts##*:}" > /tmp/ncu_src.log 2>&1
    timeout 120 ncu --import /tmp/ncu_src.ncu-rep --page source --print-source sass --csv > "$OUT/ncu_source_${ts%%:*}.csv" 2>&1
    echo "ncu source $ts rc=$? $(wc -l < "$OUT/ncu_source_${ts%%:*}.csv") lines; $(grep -c ERR /tmp/ncu_src.log) errors"
    # Its instruction mix: the main loop body by opcode (bench/ncu_source_summary.py; --warps for per-warp counts).
    python3 bench/ncu_source_summary.py "$OUT/ncu_source_${ts%%:*}.csv" --top 10 | tee "$OUT/ncu_source_${ts%%:*}.txt"
  done
  t "matvec bench done"
  # SANITIZE=1: compute-sanitizer on the op tests, every (tool, test) pair at once (each is CPU-bound);
  # SAN_FILTER (a gtest filter, default all) picks the tests.
  if [ "${SANITIZE:-0}" = 1 ]; then
    for tool in ${SAN_TOOLS:-memcheck racecheck synccheck initcheck}; do
      for test in cuda_ops_test cuda_decode_ops_test; do
        # A binary with no test in the filter is left out (compute-sanitizer would report rc 255 for it).
        build-gpu/tests/$test --gtest_filter="${SAN_FILTER:-*}" --gtest_list_tests | grep -q '^  ' ||
          { echo "sanitizer $tool $test: no test matches SAN_FILTER, not run"; continue; }
        extra=; [ $tool = memcheck ] && extra="--leak-check full"
        # SAN_SPLIT=1: one compute-sanitizer process per test (they run at once, one core each), so a
        # slow tool such as initcheck covers the whole suite within one call.
        filters=("${SAN_FILTER:-*}")
        [ "${SAN_SPLIT:-0}" = 1 ] && readarray -t filters < <(build-gpu/tests/$test --gtest_filter="${SAN_FILTER:-*}" \
          --gtest_list_tests | awk '/^[^ ]/{suite=$1} /^  /{print suite $1}')
        for filter in "${filters[@]}"; do
          log="/tmp/san_${tool}_${test}_${filter//[^A-Za-z0-9]/_}.log"
          ( timeout ${SAN_TIMEOUT:-240} compute-sanitizer --tool $tool $extra build-gpu/tests/$test --gtest_filter="$filter" > "$log" 2>&1
            echo "sanitizer $tool $test $filter rc=$? $(grep -E '^\[  (PASSED|FAILED) |ERROR SUMMARY|RACECHECK SUMMARY|LEAK SUMMARY' "$log" | tr '\n' ' ')" ) &
        done
      done
    done > "$OUT/sanitizer.txt"
    wait; cat "$OUT/sanitizer.txt"
    t "sanitizer done"
  fi
fi
# MODELS=0: stop after the tests and the kernel benches (no model files, no decode timing).
[ "${MODELS:-1}" = 1 ] || exit 0
mkdir -p /tmp/m
# ONLY=q7-Q4_K_M: write (and time) only the models whose names match that regex.
W() { local name=$1; shift; [[ $name =~ ${ONLY:-.} ]] && build-gpu/ggufscope-synth -o /tmp/m/$name.gguf "$@"; }
W q15-Q4_K_M --arch qwen2 --hidden 1536 --layers 28 --ffn 8960 --heads 12 --kv-heads 2 --vocab 151936 --type Q4_K_M
W q15-Q8_0 --arch qwen2 --hidden 1536 --layers 28 --ffn 8960 --heads 12 --kv-heads 2 --vocab 151936 --type Q8_0
W q15-F16 --arch qwen2 --hidden 1536 --layers 28 --ffn 8960 --heads 12 --kv-heads 2 --vocab 151936 --type F16
W q7-Q4_K_M --arch qwen2 --hidden 3584 --layers 28 --ffn 18944 --heads 28 --kv-heads 4 --vocab 152064 --type Q4_K_M
W q7-Q8_0 --arch qwen2 --hidden 3584 --layers 28 --ffn 18944 --heads 28 --kv-heads 4 --vocab 152064 --type Q8_0
# Q7_F16=0: skip the 15 GB 7B F16 file (its write and both engines' runs take ~1 minute of the call).
[ "${Q7_F16:-1}" = 1 ] && W q7-F16 --arch qwen2 --hidden 3584 --layers 28 --ffn 18944 --heads 28 --kv-heads 4 --vocab 152064 --type F16
# Gemma 3 270M Q4_K_M's exact metadata and tensor table (`ggufscope info --json` of the real file, carried as
# .device/gemma-info.json) with random blocks: its decode cost, without carrying the 253 MB file.
[ -f .device/gemma-info.json ] && W gemma3-270m-like-Q4_K_M --like .device/gemma-info.json
ls -la /tmp/m; t "models written"
# Ours as llama-bench times llama.cpp (bench/forward_bench.cc): pp512 = one 512-token batch into an empty
# cache, tg128 = 128 tokens decoded one at a time (the replayed graph, greedy on the device) after an untimed
# first token; median of 3 repetitions after a warm-up round. One line of JSON per model.
# DMON=1 (the default): the card's clocks, power and temperature once a second while ours run ($OUT/dmon.txt);
# each line below ends with its run's wall-clock window (@HH:MM:SS-HH:MM:SS), and bench/dmon_summary.py then
# prints each run's power and SM clock, flagging capped ones (the H200 caps the 7B decodes at its 700 W: session 21).
rm -f /tmp/dmon.pid  # (a warm machine may keep one from an earlier call)
[ "${DMON:-1}" = 1 ] && { nvidia-smi dmon -s pc -o T > "$OUT/dmon.txt" 2>&1 & echo $! > /tmp/dmon.pid; }
for m in /tmp/m/*.gguf $([ -z "${ONLY:-}" ] && echo $SHARED/models/stories260K.gguf); do
  T0=$(date +%T); echo "ours $(basename $m) size $(stat -c %s $m) $(timeout 300 build-gpu/ggufscope-bench-forward $m --backend cuda -p 512 -n 128 -r 3 2>&1 | tail -1) @$T0-$(date +%T)"
  # PP_MATH="tf32 f16" (the default; "" for none): pp512 again with prefill's GEMMs in that precision
  # (SessionOptions::prefill_math, `run --prefill-math`); f32 above is the one the reference comparison uses.
  for pm in ${PP_MATH-tf32 f16}; do
    T0=$(date +%T); echo "ours[pp $pm] $(basename $m) $(timeout 300 build-gpu/ggufscope-bench-forward $m --backend cuda -p 512 -n 0 -r 3 --prefill-math $pm 2>&1 | tail -1 | grep -o '"pp_tok_s": [0-9.]*' | tr '\n' ' ') @$T0-$(date +%T)"
  done
  # AB_ENV="GGUFSCOPE_PDL=0 GGUFSCOPE_MATVEC_COLS_PER_WARP=0": decode again under each setting (PDL=0: every
  # kernel waits for the previous one to end; COLS_PER_WARP=0: no column bound on a mat-vec warp).
  for ab in ${AB_ENV:-}; do
    T0=$(date +%T); echo "ours[$ab] $(basename $m) $(env ${ab//,/ } timeout 300 build-gpu/ggufscope-bench-forward $m --backend cuda -p 0 -n 128 -r 3 2>&1 | tail -1 | grep -o '"tg[_a-z]*tok_s": [0-9.]*' | tr '\n' ' ') @$T0-$(date +%T)"
  done
  # SKIP_OPS="1 2 4 8 16 32 64": decode again without those launches (ggufscope-bench-forward --skip-ops:
  # the step's time without them, so what each adds with the overlap of its neighbours; tokens meaningless).
  for sk in ${SKIP_OPS:-}; do
    T0=$(date +%T); echo "ours[skip $sk] $(basename $m) $(timeout 300 build-gpu/ggufscope-bench-forward $m --backend cuda -p 0 -n 128 -r 3 --skip-ops $sk 2>&1 | tail -1 | grep -o '"tg[_a-z]*tok_s": [0-9.]*' | tr '\n' ' ') @$T0-$(date +%T)"
  done
  for vf in /tmp/variant-*/build/ggufscope-bench-forward; do
    [ -x "$vf" ] || continue
    vn=${vf#/tmp/variant-}; vn=${vn%%/*}
    T0=$(date +%T); echo "ours[variant $vn] $(basename $m) $(timeout 300 $vf $m --backend cuda -p 0 -n 128 -r 3 2>&1 | tail -1 | grep -o '"tg[_a-z]*tok_s": [0-9.]*' | tr '\n' ' ') @$T0-$(date +%T)"
    # VARIANT_ENVS (same form, e.g. GGUFSCOPE_MATVEC_TC_TILES=1): each variant's decode again under each setting.
    for ve in ${VARIANT_ENVS:-}; do
      T0=$(date +%T); echo "ours[variant $vn $ve] $(basename $m) $(env ${ve//,/ } timeout 300 $vf $m --backend cuda -p 0 -n 128 -r 3 2>&1 | tail -1 | grep -o '"tg[_a-z]*tok_s": [0-9.]*' | tr '\n' ' ') @$T0-$(date +%T)"
    done
  done
done | tee "$OUT/ours.txt"
if [ -f /tmp/dmon.pid ]; then
  kill "$(cat /tmp/dmon.pid)" 2>/dev/null; rm -f /tmp/dmon.pid
  python3 bench/dmon_summary.py "$OUT/ours.txt" "$OUT/dmon.txt" \
    --power-limit "$(nvidia-smi --query-gpu=power.limit --format=csv,noheader,nounits | head -1 | cut -d. -f1)"
fi
# The CLI's own figure for the same decode (`run -n 128`: its clock also holds the 8-token prompt, the graph's
# recording and the printing of each token), on one file.
IDS=$(seq -s, 100 107)
[ -f /tmp/m/q15-Q4_K_M.gguf ] && echo "run q15-Q4_K_M: $(build-gpu/ggufscope run /tmp/m/q15-Q4_K_M.gguf --tokens $IDS -n 128 --backend cuda 2>&1 >/dev/null | tail -1)"
t "ours done"
if [ "${TIMELINE:-0}" = 1 ]; then
  while [ ! -f /tmp/tl-done ] && [ $(( $(date +%s) - S )) -lt ${TL_WAIT:-500} ]; do sleep 3; done
  cat /tmp/tl-done 2>/dev/null || echo "timeline build not done in time"; grep -iE "error" /tmp/tl.log | head -5
  for m in /tmp/m/*.gguf; do
    n=$(basename $m .gguf); [[ $n =~ ${TL_ONLY:-q7-Q4_K_M|q15-Q4_K_M} ]] || continue
    [ -x /tmp/tl/build/ggufscope-bench-forward ] || break
    GGUFSCOPE_TIMELINE_OUT=/tmp/tl_$n.csv timeout 120 /tmp/tl/build/ggufscope-bench-forward $m --backend cuda -p 0 -n 16 -r 1 > /dev/null
    python3 bench/timeline_summary.py /tmp/tl_$n.csv --rows 12 > "$OUT/timeline_$n.txt" 2>&1; echo "=== timeline $n"; cat "$OUT/timeline_$n.txt"
  done
  [ -f /tmp/tl_q7-Q4_K_M.csv ] && cp /tmp/tl_q7-Q4_K_M.csv "$OUT/"
  t "timeline done"
fi
if [ "${PROFILE:-0}" = 1 ] && command -v ncu > /dev/null; then
  # A one-token prompt: its step is a decode step, then 3 more (graph replays). Sum per kernel / 4.
  for m in ${PROFILE_MODELS:-/tmp/m/q15-Q8_0.gguf /tmp/m/gemma3-270m-like-Q4_K_M.gguf}; do
    timeout 200 ncu --clock-control none --cache-control none --csv --metrics gpu__time_duration.sum \
      build-gpu/ggufscope run $m --tokens 100 -n 4 --backend cuda > /tmp/ncu.csv 2> /tmp/ncu.err
    python3 bench/ncu_summary.py /tmp/ncu.csv 4 "$(basename $m)" | tee -a "$OUT/profile.txt"
  done
  t "profile done"
fi
# The table of docs/PERFORMANCE.md from this run (bench/cuda_table.py: tokens/s, GB/s and share of the copy
# bandwidth, what 70% needs; with llama.cpp's numbers after its runs below).
[ "${LLAMA:-1}" = 1 ] || { python3 bench/cuda_table.py "$OUT" | tee "$OUT/table.md"; exit 0; }
while [ ! -f /tmp/llama/done ]; do sleep 5; if [ $(( $(date +%s) - S )) -gt ${LLAMA_WAIT:-520} ]; then echo "llama build not done in time"; tail -3 /tmp/llama/build.log; exit 0; fi; done
cat /tmp/llama/done; tail -2 /tmp/llama/build.log
t "llama built"
for m in /tmp/m/*.gguf; do
  timeout 90 /tmp/llama/build/bin/llama-bench -m $m -p 512 -n 128 -ngl 99 -r 2 -o json > /tmp/lb.json 2>/dev/null
  python3 -c "import json; j=json.load(open('/tmp/lb.json')); print('llama $(basename $m) pp512, tg128', [round(r['avg_ts'],1) for r in j])" || echo "llama $(basename $m) failed"
done | tee "$OUT/llama.txt"
python3 bench/cuda_table.py "$OUT" | tee "$OUT/table.md"
t done
