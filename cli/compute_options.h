// Options every command that runs the CPU reference shares: arithmetic
// precision and thread count.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "reference_cpu/forward.h"

namespace ggufscope::cli {

struct ComputeOptions {
  std::string precision = "f32";  // f32 | f64
  int threads = 0;                // 0: OpenMP's default (all cores, or OMP_NUM_THREADS)

  reference::Precision Precision() const {
    return precision == "f64" ? reference::Precision::kF64 : reference::Precision::kF32;
  }
};

// Adds --precision and -t/--threads to `cmd`.
void AddComputeOptions(CLI::App* cmd, ComputeOptions* opt);

// Applies the thread count (call before running the model).
void ApplyComputeOptions(const ComputeOptions& opt);

}  // namespace ggufscope::cli
