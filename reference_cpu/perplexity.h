// Perplexity with llama.cpp's method (llama-perplexity): the text's tokens
// are cut into chunks of n_ctx, the first token of each chunk replaced by BOS
// when the model adds one, and only the second half of each chunk is scored
// (token j+1 from the logits at j, j = n_ctx/2 .. n_ctx-2), so every scored
// token sees at least n_ctx/2 tokens of context. Plus the KL-divergence
// comparison against a base model's saved log-probabilities.
#pragma once

#include <functional>
#include <span>
#include <string>
#include <vector>

#include "gguf/error.h"
#include "reference_cpu/forward.h"
#include "reference_cpu/model.h"

namespace ggufscope::reference {

struct PerplexityOptions {
  int n_ctx = 512;
  int32_t bos = -1;      // replaces each chunk's first token when >= 0
  int max_chunks = -1;   // -1: as many as the text holds
  Precision precision = Precision::kF32;
  // After each chunk: (chunks done, chunks in all, perplexity so far).
  std::function<void(int, int, double)> progress;
};

struct PerplexityResult {
  int n_chunks = 0;
  int n_scored = 0;                // tokens scored
  double ppl = 0;                  // exp(mean negative log-likelihood)
  double ppl_err = 0;              // its standard error (delta method), as llama.cpp prints
  std::vector<double> running;     // perplexity after each chunk ("[1]x,[2]y,...")
  int64_t first_nonfinite = -1;    // token index of the first NaN/Inf logit row, -1 if none
};

// `logprobs`, when given, receives the log-softmax of every scored position:
// n_scored rows of n_vocab floats, in order (for --save-logits).
gguf::Result<PerplexityResult> Perplexity(const Model& model, std::span<const int32_t> tokens,
                                          const PerplexityOptions& opt, std::vector<float>* logprobs);

// Base log-probabilities as --save-logits writes them.
struct SavedLogprobs {
  int n_ctx = 0, n_vocab = 0, n_scored = 0;
  std::vector<int32_t> tokens;  // the text's tokens (must match for a comparison)
  std::vector<float> logprobs;  // n_scored x n_vocab
};

gguf::Status SaveLogprobs(const std::string& path, const SavedLogprobs& s);
gguf::Result<SavedLogprobs> LoadLogprobs(const std::string& path);

struct KlResult {
  int n = 0;
  double mean_kl = 0, mean_kl_err = 0;
  double kl_max = 0, kl_p999 = 0, kl_p99 = 0, kl_median = 0, kl_p10 = 0, kl_p1 = 0, kl_min = 0;
  double same_top = 0;      // fraction of positions with the same most likely token
  double mean_dp = 0;       // mean of p(target) - p_base(target)
  double dp_max = 0, dp_p99 = 0, dp_median = 0, dp_p1 = 0, dp_min = 0;
  double rms_dp = 0;
};

// KL(base || current) per position, from two sets of log-probabilities over
// the same tokens; targets are the scored tokens (as in Perplexity).
gguf::Result<KlResult> KlDivergence(const SavedLogprobs& base, const SavedLogprobs& current);

}  // namespace ggufscope::reference
