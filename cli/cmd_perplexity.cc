#include "cli/cmd_perplexity.h"

#include <fmt/format.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "cli/exit_codes.h"
#include "gguf/file.h"
#include "inspect/info.h"
#include "reference_cpu/perplexity.h"
#include "reference_cpu/tokenizer.h"

namespace ggufscope::cli {

CLI::App* AddPerplexityCommand(CLI::App& app, PerplexityCliOptions* opt) {
  CLI::App* p = app.add_subcommand("perplexity",
                                   "Perplexity of a text with the CPU reference, by llama-perplexity's method "
                                   "(chunks of CTX tokens, second half of each scored)");
  p->add_option("model", opt->model, "GGUF file")->required();
  p->add_option("-f,--file", opt->text_file, "Text file")->required();
  p->add_option("-c,--ctx", opt->n_ctx, "Tokens per chunk (default 512)");
  p->add_option("--chunks", opt->chunks, "At most this many chunks");
  p->add_option("--save-logits", opt->save_logits, "Save the scored positions' log-probabilities (a KL base)");
  p->add_option("--kl-base", opt->kl_base, "Compare with log-probabilities saved from a base model: KL divergence");
  p->add_flag("--json", opt->json, "Machine-readable result");
  AddComputeOptions(p, &opt->compute);
  return p;
}

int RunPerplexity(const PerplexityCliOptions& opt) {
  gguf::Result<gguf::GgufFile> f = gguf::GgufFile::Open(opt.model);
  if (!f.ok()) {
    fmt::print(stderr, "ggufscope: {}: {}\n", opt.model, f.error().Message());
    return kExitUnreadable;
  }
  std::ifstream in(opt.text_file, std::ios::binary);
  if (!in) {
    fmt::print(stderr, "ggufscope: cannot read {}\n", opt.text_file);
    return kExitUsage;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  gguf::Result<std::unique_ptr<reference::Tokenizer>> tok = reference::Tokenizer::FromGguf(*f);
  if (!tok.ok()) {
    fmt::print(stderr, "ggufscope: {}: {}\n", opt.model, tok.error().Message());
    return kExitUnreadable;
  }
  gguf::Result<std::unique_ptr<reference::Model>> model = reference::LoadModel(*f);
  if (!model.ok()) {
    fmt::print(stderr, "ggufscope: {}: {}\n", opt.model, model.error().Message());
    return kExitUnreadable;
  }
  const std::vector<int32_t> tokens = (*tok)->Encode(ss.str(), (*tok)->add_bos(), false);
  reference::PerplexityOptions po;
  po.precision = opt.compute.Precision();
  ApplyComputeOptions(opt.compute);
  po.n_ctx = opt.n_ctx;
  po.max_chunks = opt.chunks;
  po.bos = (*tok)->add_bos() ? (*tok)->bos_id() : -1;
  const bool tty = isatty(STDERR_FILENO) != 0;
  po.progress = [&](int done, int total, double ppl) {
    if (tty) fmt::print(stderr, "\rperplexity: chunk {}/{}, ppl so far {:.4f}", done, total, ppl);
  };
  const bool want_logprobs = !opt.save_logits.empty() || !opt.kl_base.empty();
  reference::SavedLogprobs saved;
  gguf::Result<reference::PerplexityResult> r =
      reference::Perplexity(**model, tokens, po, want_logprobs ? &saved.logprobs : nullptr);
  if (tty) fmt::print(stderr, "\r{:<70}\r", "");
  if (!r.ok()) {
    fmt::print(stderr, "ggufscope: {}\n", r.error().Message());
    return kExitUsage;
  }
  saved.n_ctx = opt.n_ctx;
  saved.n_vocab = (*model)->hp.n_vocab;
  saved.n_scored = r->n_scored;
  saved.tokens = tokens;
  if (!opt.save_logits.empty()) {
    const gguf::Status s = reference::SaveLogprobs(opt.save_logits, saved);
    if (!s.ok()) {
      fmt::print(stderr, "ggufscope: {}\n", s.error().Message());
      return kExitIo;
    }
  }
  nlohmann::json j = {{"file", opt.model}, {"n_ctx", opt.n_ctx}, {"tokens", tokens.size()}, {"chunks", r->n_chunks},
                      {"scored", r->n_scored}, {"ppl", r->ppl}, {"ppl_err", r->ppl_err}, {"running", r->running}};
  std::string text;
  for (size_t i = 0; i < r->running.size(); ++i) text += fmt::format("[{}]{:.4f},", i + 1, r->running[i]);
  if (!text.empty()) text.pop_back();
  text += fmt::format("\nFinal estimate: PPL = {:.4f} +/- {:.5f} ({} chunks of {} tokens, {} tokens scored)\n", r->ppl,
                      r->ppl_err, r->n_chunks, opt.n_ctx, r->n_scored);
  if (!opt.kl_base.empty()) {
    gguf::Result<reference::SavedLogprobs> base = reference::LoadLogprobs(opt.kl_base);
    if (!base.ok()) {
      fmt::print(stderr, "ggufscope: {}\n", base.error().Message());
      return kExitUsage;
    }
    gguf::Result<reference::KlResult> kl = reference::KlDivergence(*base, saved);
    if (!kl.ok()) {
      fmt::print(stderr, "ggufscope: {}\n", kl.error().Message());
      return kExitUsage;
    }
    const reference::KlResult& k = *kl;
    j["kl"] = {{"mean", k.mean_kl}, {"mean_err", k.mean_kl_err}, {"max", k.kl_max}, {"p99.9", k.kl_p999},
               {"p99", k.kl_p99}, {"median", k.kl_median}, {"p10", k.kl_p10}, {"p1", k.kl_p1}, {"min", k.kl_min},
               {"same_top", k.same_top}, {"mean_dp", k.mean_dp}, {"rms_dp", k.rms_dp}, {"dp_max", k.dp_max},
               {"dp_p99", k.dp_p99}, {"dp_median", k.dp_median}, {"dp_p1", k.dp_p1}, {"dp_min", k.dp_min}};
    text += fmt::format(
        "\nKL divergence against {} ({} positions)\n"
        "Mean    KLD: {:10.6f} +/- {:.6f}\nMaximum KLD: {:10.6f}\n99.9%   KLD: {:10.6f}\n99.0%   KLD: {:10.6f}\n"
        "Median  KLD: {:10.6f}\n10.0%   KLD: {:10.6f}\n 1.0%   KLD: {:10.6f}\nMinimum KLD: {:10.6f}\n"
        "Same top p: {:6.3f} %\nMean    Δp: {:7.3f} %\nRMS     Δp: {:7.3f} %\nMaximum Δp: {:7.3f} %\n"
        "99.0%   Δp: {:7.3f} %\nMedian  Δp: {:7.3f} %\n 1.0%   Δp: {:7.3f} %\nMinimum Δp: {:7.3f} %\n",
        opt.kl_base, k.n, k.mean_kl, k.mean_kl_err, k.kl_max, k.kl_p999, k.kl_p99, k.kl_median, k.kl_p10, k.kl_p1,
        k.kl_min, 100 * k.same_top, 100 * k.mean_dp, 100 * k.rms_dp, 100 * k.dp_max, 100 * k.dp_p99,
        100 * k.dp_median, 100 * k.dp_p1, 100 * k.dp_min);
  }
  fmt::print("{}", opt.json ? inspect::DumpJson(j) + "\n" : text);
  return kExitOk;
}

}  // namespace ggufscope::cli
