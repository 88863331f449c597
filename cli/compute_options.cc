#include "cli/compute_options.h"

#include <omp.h>

namespace ggufscope::cli {

void AddComputeOptions(CLI::App* cmd, ComputeOptions* opt) {
  cmd->add_option("--precision", opt->precision,
                  "Arithmetic of the reference: f32 (as llama.cpp, default) or f64 (every activation, "
                  "accumulation and the KV cache in double; the weights are the file's values either way)")
      ->check(CLI::IsMember({"f32", "f64"}));
  cmd->add_option("-t,--threads", opt->threads, "CPU threads (default: all cores, or OMP_NUM_THREADS)")
      ->check(CLI::Range(0, 1024));
}

void ApplyComputeOptions(const ComputeOptions& opt) {
  if (opt.threads > 0) omp_set_num_threads(opt.threads);
}

}  // namespace ggufscope::cli
