// `ggufscope run`: generating from a model with the CPU reference or the
// CUDA forward pass.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "cli/compute_options.h"

namespace ggufscope::cli {

struct RunCliOptions {
  std::string model;
  std::string prompt;      // text prompt (tokenized with the model's own tokenizer)
  std::string tokens;      // or comma-separated prompt token ids
  int n_predict = 32;
  float temp = 0.0f;
  int top_k = 40;
  float top_p = 0.95f;
  uint64_t seed = 0;
  bool chat = false;
  std::string logits_out;  // .npy of the prompt's logits (all positions)
  bool json = false;
  std::string backend = "cpu";  // cpu | cuda
  int device = 0;               // CUDA device index (--backend cuda)
  std::string prefill_math = "f32";  // f32 | tf32 | f16 (--backend cuda: prefill's GEMMs)
  ComputeOptions compute;
};

CLI::App* AddRunCommand(CLI::App& app, RunCliOptions* opt);
int RunRun(const RunCliOptions& opt);

}  // namespace ggufscope::cli
