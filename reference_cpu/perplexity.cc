#include "reference_cpu/perplexity.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "reference_cpu/forward.h"

namespace ggufscope::reference {
namespace {

using gguf::Error;
using gguf::ErrorCode;

constexpr char kMagic[8] = {'G', 'S', 'L', 'O', 'G', 'P', '0', '1'};

// Scored target j of a chunk layout: token (chunk * n_ctx + first + 1 + i).
std::vector<int32_t> Targets(const SavedLogprobs& s) {
  std::vector<int32_t> t;
  const int first = s.n_ctx / 2;
  const int per_chunk = s.n_ctx - 1 - first;
  for (int k = 0; k < s.n_scored; ++k) {
    const size_t idx = static_cast<size_t>(k / per_chunk) * static_cast<size_t>(s.n_ctx) + static_cast<size_t>(first + 1 + k % per_chunk);
    t.push_back(idx < s.tokens.size() ? s.tokens[idx] : 0);
  }
  return t;
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(pos);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

}  // namespace

gguf::Result<PerplexityResult> Perplexity(const Model& model, std::span<const int32_t> tokens,
                                          const PerplexityOptions& opt, std::vector<float>* logprobs) {
  const int n_ctx = opt.n_ctx;
  if (n_ctx < 4) return Error{ErrorCode::kInvalidArgument, "n_ctx", Error::kNoOffset, "at least 4", std::to_string(n_ctx)};
  int n_chunks = static_cast<int>(tokens.size() / static_cast<size_t>(n_ctx));
  if (opt.max_chunks >= 0) n_chunks = std::min(n_chunks, opt.max_chunks);
  if (n_chunks == 0) {
    return Error{ErrorCode::kInvalidArgument, "text", Error::kNoOffset, fmt::format("at least {} tokens (one chunk)", n_ctx),
                 fmt::format("{} tokens", tokens.size())};
  }
  const int first = n_ctx / 2;
  const int n_vocab = model.hp.n_vocab;
  PerplexityResult r;
  double nll = 0, nll2 = 0;
  for (int c = 0; c < n_chunks; ++c) {
    std::vector<int32_t> chunk(tokens.begin() + static_cast<ptrdiff_t>(c) * n_ctx,
                               tokens.begin() + static_cast<ptrdiff_t>(c + 1) * n_ctx);
    if (opt.bos >= 0) chunk[0] = opt.bos;
    Session s(model, n_ctx, opt.precision);
    gguf::Result<RowMatrix> logits = s.Eval(chunk, true);
    if (!logits.ok()) return logits.error();
    if (r.first_nonfinite < 0 && !logits->allFinite()) {
      Eigen::Index row = 0;
      while (row < logits->rows() && logits->row(row).allFinite()) ++row;
      r.first_nonfinite = static_cast<int64_t>(c) * n_ctx + row;
    }
    for (int j = first; j < n_ctx - 1; ++j) {
      // log-softmax in double: log p = x - max - log(sum exp(x - max))
      const float* row = logits->row(j).data();
      const float mx = *std::max_element(row, row + n_vocab);
      double sum = 0;
      for (int v = 0; v < n_vocab; ++v) sum += std::exp(static_cast<double>(row[v]) - mx);
      const double log_z = mx + std::log(sum);
      const int32_t target = tokens[static_cast<size_t>(c) * n_ctx + static_cast<size_t>(j) + 1];
      const double lp = row[target] - log_z;
      nll -= lp;
      nll2 += lp * lp;
      ++r.n_scored;
      if (logprobs != nullptr) {
        for (int v = 0; v < n_vocab; ++v) logprobs->push_back(static_cast<float>(row[v] - log_z));
      }
    }
    ++r.n_chunks;
    r.running.push_back(std::exp(nll / r.n_scored));
    if (opt.progress) opt.progress(c + 1, n_chunks, r.running.back());
  }
  const double mean = nll / r.n_scored;
  r.ppl = std::exp(mean);
  if (r.n_scored > 1) {
    const double var = (nll2 / r.n_scored - mean * mean) / (r.n_scored - 1);
    r.ppl_err = r.ppl * std::sqrt(std::max(0.0, var));
  }
  return r;
}

gguf::Status SaveLogprobs(const std::string& path, const SavedLogprobs& s) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return Error{ErrorCode::kIo, path, Error::kNoOffset, "a writable file", std::strerror(errno)};
  const int32_t head[4] = {s.n_ctx, s.n_vocab, s.n_scored, static_cast<int32_t>(s.tokens.size())};
  bool ok = std::fwrite(kMagic, 1, 8, f) == 8 && std::fwrite(head, 4, 4, f) == 4 &&
            std::fwrite(s.tokens.data(), 4, s.tokens.size(), f) == s.tokens.size() &&
            std::fwrite(s.logprobs.data(), 4, s.logprobs.size(), f) == s.logprobs.size();
  ok = std::fclose(f) == 0 && ok;
  if (!ok) return Error{ErrorCode::kIo, path, Error::kNoOffset, "a complete write", std::strerror(errno)};
  return {};
}

gguf::Result<SavedLogprobs> LoadLogprobs(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return Error{ErrorCode::kIo, path, Error::kNoOffset, "a readable file", std::strerror(errno)};
  SavedLogprobs s;
  char magic[8];
  int32_t head[4];
  const bool head_ok = std::fread(magic, 1, 8, f) == 8 && std::memcmp(magic, kMagic, 8) == 0 && std::fread(head, 4, 4, f) == 4;
  std::fseek(f, 0, SEEK_END);
  const long size = std::ftell(f);
  if (!head_ok || head[0] < 4 || head[1] < 1 || head[2] < 0 || head[3] < 0 ||
      size != static_cast<long>(24 + 4 * (static_cast<int64_t>(head[3]) + static_cast<int64_t>(head[2]) * head[1]))) {
    std::fclose(f);
    return Error{ErrorCode::kBadMagic, path, Error::kNoOffset, "a --save-logits file of consistent size", "something else"};
  }
  s.n_ctx = head[0];
  s.n_vocab = head[1];
  s.n_scored = head[2];
  s.tokens.resize(static_cast<size_t>(head[3]));
  s.logprobs.resize(static_cast<size_t>(head[2]) * static_cast<size_t>(head[1]));
  std::fseek(f, 24, SEEK_SET);
  const bool ok = std::fread(s.tokens.data(), 4, s.tokens.size(), f) == s.tokens.size() &&
                  std::fread(s.logprobs.data(), 4, s.logprobs.size(), f) == s.logprobs.size();
  std::fclose(f);
  if (!ok) return Error{ErrorCode::kTruncated, path, 24, "the whole file", "a short read"};
  return s;
}

gguf::Result<KlResult> KlDivergence(const SavedLogprobs& base, const SavedLogprobs& cur) {
  if (base.n_vocab != cur.n_vocab || base.n_ctx != cur.n_ctx || base.n_scored != cur.n_scored ||
      base.tokens != cur.tokens) {
    return Error{ErrorCode::kInvalidArgument, "--kl-base", Error::kNoOffset, "the same text, context and vocabulary",
                 fmt::format("n_ctx {} vs {}, vocab {} vs {}, {} vs {} scored tokens", base.n_ctx, cur.n_ctx,
                             base.n_vocab, cur.n_vocab, base.n_scored, cur.n_scored)};
  }
  const std::vector<int32_t> targets = Targets(cur);
  KlResult r;
  r.n = cur.n_scored;
  std::vector<double> kls, dps;
  double sum_kl = 0, sum_kl2 = 0, same = 0, sum_dp = 0, sum_dp2 = 0;
  const size_t V = static_cast<size_t>(cur.n_vocab);
  for (int k = 0; k < r.n; ++k) {
    const float* lb = base.logprobs.data() + static_cast<size_t>(k) * V;
    const float* lc = cur.logprobs.data() + static_cast<size_t>(k) * V;
    double kl = 0;
    for (size_t v = 0; v < V; ++v) kl += std::exp(static_cast<double>(lb[v])) * (static_cast<double>(lb[v]) - lc[v]);
    kls.push_back(kl);
    sum_kl += kl;
    sum_kl2 += kl * kl;
    same += std::max_element(lb, lb + V) - lb == std::max_element(lc, lc + V) - lc;
    const int32_t t = targets[static_cast<size_t>(k)];
    const double dp = std::exp(static_cast<double>(lc[t])) - std::exp(static_cast<double>(lb[t]));
    dps.push_back(dp);
    sum_dp += dp;
    sum_dp2 += dp * dp;
  }
  r.mean_kl = sum_kl / r.n;
  r.mean_kl_err = r.n > 1 ? std::sqrt(std::max(0.0, (sum_kl2 / r.n - r.mean_kl * r.mean_kl) / (r.n - 1))) : 0;
  r.kl_max = Percentile(kls, 1.0);
  r.kl_p999 = Percentile(kls, 0.999);
  r.kl_p99 = Percentile(kls, 0.99);
  r.kl_median = Percentile(kls, 0.5);
  r.kl_p10 = Percentile(kls, 0.1);
  r.kl_p1 = Percentile(kls, 0.01);
  r.kl_min = Percentile(kls, 0.0);
  r.same_top = same / r.n;
  r.mean_dp = sum_dp / r.n;
  r.rms_dp = std::sqrt(sum_dp2 / r.n);
  r.dp_max = Percentile(dps, 1.0);
  r.dp_p99 = Percentile(dps, 0.99);
  r.dp_median = Percentile(dps, 0.5);
  r.dp_p1 = Percentile(dps, 0.01);
  r.dp_min = Percentile(dps, 0.0);
  return r;
}

}  // namespace ggufscope::reference
