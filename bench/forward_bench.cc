// ggufscope-bench-forward: prompt processing and generation speed of the CPU
// reference or the CUDA engine, measured as llama-bench measures llama.cpp
// (pp: one batch of P tokens into an empty cache; tg: N tokens decoded one
// at a time after a one-token start), repeated, median reported. JSON on
// stdout for bench/bench_cpu.py (CPU) and bench/bench_cuda.sh (CUDA), which
// run llama.cpp beside it.
//
//   ggufscope-bench-forward MODEL [-p 64] [-n 32] [-r 3] [-t THREADS] [--precision f32|f64]
//                                [--backend cpu|cuda] [--skip-ops MASK] [--prefill-math f32|tf32|f16]
//
// CUDA: pp is Session::EvalArgmax of the P-token batch (the id copied back,
// so the clock stops when the device is done); tg decodes greedily with
// Session::DecodeGreedy (the replayed graph, each step's id fed to the next
// on the device, as `ggufscope run --backend cuda` at temperature 0), after
// one untimed token that records the graph, as llama-bench's warm-up run
// lets llama.cpp record its graphs; tg_host_loop is the same decode with
// EvalArgmax per step (a round trip through the host each token, as
// llama-bench's per-token synchronization). No prompt, printing or model
// upload inside any clock.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <vector>

#include "cuda_runtime/device.h"
#include "cuda_runtime/forward.h"
#include "gguf/file.h"
#include "reference_cpu/forward.h"
#include "reference_cpu/model.h"

namespace {

using Clock = std::chrono::steady_clock;
using namespace ggufscope;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// pp and tg tokens/s of the CUDA engine (see the top of the file); false
// with a message on stderr if the device or a step fails.
bool TimeCuda(const reference::Model& model, const std::vector<int32_t>& prompt, int n_gen, int reps,
              unsigned skip_ops, cuda::GemmMath prefill_math, std::vector<double>* pp, std::vector<double>* tg,
              std::vector<double>* tg_host) {
  std::string why;
  std::unique_ptr<cuda::Context> ctx = cuda::Context::Create(0, &why);
  if (ctx == nullptr) {
    fmt::print(stderr, "no CUDA device: {}\n", why);
    return false;
  }
  auto gm = cuda::Model::Upload(*ctx, model);
  if (!gm.ok()) {
    fmt::print(stderr, "upload: {}\n", gm.error().Message());
    return false;
  }
  const auto fail = [](const gguf::Error& e) {
    fmt::print(stderr, "cuda step: {}\n", e.Message());
    return false;
  };
  for (int r = 0; r < reps + 1; ++r) {  // the first round warms up, not counted
    if (!prompt.empty()) {
      cuda::SessionOptions options;
      options.prefill_math = prefill_math;
      auto s = cuda::Session::Create(**gm, static_cast<int>(prompt.size()) + 1, options);
      if (!s.ok()) return fail(s.error());
      const auto t0 = Clock::now();
      auto id = (*s)->EvalArgmax(prompt);
      if (!id.ok()) return fail(id.error());
      if (r > 0) pp->push_back(prompt.size() / std::chrono::duration<double>(Clock::now() - t0).count());
    }
    for (const bool host_loop : {false, true}) {
      if (n_gen <= 0) break;
      cuda::SessionOptions options;
      options.skip_ops = skip_ops;
      auto g = cuda::Session::Create(**gm, n_gen + 2, options);
      if (!g.ok()) return fail(g.error());
      const int32_t start = prompt.empty() ? 1 : prompt[0];
      auto tok = (*g)->EvalArgmax(std::span<const int32_t>(&start, 1));
      if (!tok.ok()) return fail(tok.error());
      const auto t0 = Clock::now();
      if (host_loop) {
        for (int i = 0; i < n_gen; ++i) {
          const int32_t in = *tok;
          tok = (*g)->EvalArgmax(std::span<const int32_t>(&in, 1));
          if (!tok.ok()) return fail(tok.error());
        }
      } else {
        auto ids = (*g)->DecodeGreedy(*tok, n_gen);
        if (!ids.ok()) return fail(ids.error());
      }
      if (r > 0) (host_loop ? tg_host : tg)->push_back(n_gen / std::chrono::duration<double>(Clock::now() - t0).count());
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Times the CPU reference's prompt processing and generation"};
  std::string path, precision = "f32", backend = "cpu", prefill_math = "f32";
  int n_prompt = 64, n_gen = 32, reps = 3, threads = 0;
  unsigned skip_ops = 0;
  app.add_option("model", path, "GGUF file")->required();
  app.add_option("-p", n_prompt, "Prompt tokens (one batch)");
  app.add_option("-n", n_gen, "Generated tokens (one at a time)");
  app.add_option("-r", reps, "Repetitions (median reported)")->check(CLI::Range(1, 100));
  app.add_option("-t", threads, "Threads (0: OpenMP's default)");
  app.add_option("--precision", precision)->check(CLI::IsMember({"f32", "f64"}));
  app.add_option("--backend", backend, "cpu (the reference) or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--skip-ops", skip_ops,
                 "CUDA decode only: leave out these launches (cuda::SkipOp bits: 1 q/k/v, 2 QkvPost, 4 attention, "
                 "8 attn_output, 16 gate/up, 32 down, 64 output head) to see what each adds to the step; the "
                 "tokens are then meaningless");
  app.add_option("--prefill-math", prefill_math, "CUDA prefill's GEMMs: f32 (default), tf32 or f16 (SessionOptions)")
      ->check(CLI::IsMember({"f32", "tf32", "f16"}));
  CLI11_PARSE(app, argc, argv);
  if (threads > 0) omp_set_num_threads(threads);

  auto f = gguf::GgufFile::Open(path);
  if (!f.ok()) {
    fmt::print(stderr, "{}: {}\n", path, f.error().Message());
    return 3;
  }
  const auto t_load = Clock::now();
  auto m = reference::LoadModel(*f);
  if (!m.ok()) {
    fmt::print(stderr, "{}: {}\n", path, m.error().Message());
    return 3;
  }
  const double load_s = std::chrono::duration<double>(Clock::now() - t_load).count();
  const reference::Model& model = **m;
  const reference::Precision prec = precision == "f64" ? reference::Precision::kF64 : reference::Precision::kF32;
  std::mt19937 rng(1);
  std::vector<int32_t> prompt(static_cast<size_t>(n_prompt));
  for (int32_t& t : prompt) t = static_cast<int32_t>(rng() % static_cast<uint32_t>(model.hp.n_vocab));

  std::vector<double> pp, tg, tg_host;
  if (backend == "cuda") {
    if (!TimeCuda(model, prompt, n_gen, reps, skip_ops, cuda::GemmMathFromName(prefill_math), &pp, &tg, &tg_host)) {
      return 1;
    }
    fmt::print("{{\"model\": \"{}\", \"backend\": \"cuda\", \"n_prompt\": {}, \"n_gen\": {}, \"reps\": {}, "
               "\"prefill_math\": \"{}\", \"pp_tok_s\": {:.2f}, \"tg_tok_s\": {:.2f}, \"tg_host_loop_tok_s\": {:.2f}}}\n",
               path, n_prompt, n_gen, reps, prefill_math, pp.empty() ? 0.0 : Median(pp), tg.empty() ? 0.0 : Median(tg),
               tg_host.empty() ? 0.0 : Median(tg_host));
    return 0;
  }
  for (int r = 0; r < reps + 1; ++r) {  // the first round warms caches and pages, not counted
    reference::Session s(model, n_prompt + n_gen + 1, prec);
    auto t0 = Clock::now();
    if (n_prompt > 0 && !s.Eval(prompt, false).ok()) return 1;
    const double t_pp = std::chrono::duration<double>(Clock::now() - t0).count();
    reference::Session g(model, n_gen + 1, prec);
    int32_t tok = prompt.empty() ? 1 : prompt[0];
    t0 = Clock::now();
    for (int i = 0; i < n_gen; ++i) {
      auto logits = g.Eval(std::span<const int32_t>(&tok, 1), false);
      if (!logits.ok()) return 1;
      Eigen::Index best = 0;
      logits->row(0).maxCoeff(&best);
      tok = static_cast<int32_t>(best);
    }
    const double t_tg = std::chrono::duration<double>(Clock::now() - t0).count();
    if (r == 0) continue;
    if (n_prompt > 0) pp.push_back(n_prompt / t_pp);
    if (n_gen > 0) tg.push_back(n_gen / t_tg);
  }
  fmt::print("{{\"model\": \"{}\", \"threads\": {}, \"precision\": \"{}\", \"n_prompt\": {}, \"n_gen\": {}, "
             "\"reps\": {}, \"load_s\": {:.4f}, \"pp_tok_s\": {:.2f}, \"tg_tok_s\": {:.2f}}}\n",
             path, omp_get_max_threads(), precision, n_prompt, n_gen, reps, load_s, pp.empty() ? 0.0 : Median(pp),
             tg.empty() ? 0.0 : Median(tg));
  return 0;
}
