// `ggufscope perplexity`: llama-perplexity's measurement with the CPU reference.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "cli/compute_options.h"

namespace ggufscope::cli {

struct PerplexityCliOptions {
  std::string model;
  std::string text_file;
  int n_ctx = 512;
  int chunks = -1;
  std::string save_logits;
  std::string kl_base;
  bool json = false;
  ComputeOptions compute;
};

CLI::App* AddPerplexityCommand(CLI::App& app, PerplexityCliOptions* opt);
int RunPerplexity(const PerplexityCliOptions& opt);

}  // namespace ggufscope::cli
