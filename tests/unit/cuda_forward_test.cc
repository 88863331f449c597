// The CUDA forward pass (cuda_runtime/forward.h) against the CPU reference
// on every model we have: stories260K (trained, llama), every shared synth
// model (llama in each quant type, qwen2 with biases and tied output) and
// two in-memory random models of the families the shared set lacks (gemma3:
// sliding windows, GeGLU, q/k and post norms, embedding scale, soft-capped
// logits; qwen3: q/k norms, Q8_0 weights). Checked: every trace point of a
// prefill and of decode steps, the logits, greedy generation of 64 tokens
// (through the captured decode graph), a prefill split in two, and that the
// graph replays exactly what the op-by-op step computes; and the pass with
// each injectable bug (reference_cpu/faults.h) against the reference with
// the same bug.
//
// Runs on the GPU machine; elsewhere (CI has no GPU) every test skips and
// says why.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "cuda_runtime/device.h"
#include "cuda_runtime/forward.h"
#include "gguf/file.h"
#include "gguf/mapping.h"
#include "reference_cpu/forward.h"
#include "reference_cpu/model.h"
#include "synth_models.h"
#include "test_models.h"

namespace ggufscope::cuda {
namespace {

using reference::RowMatrix;

// ---------------------------------------------------------------- tolerances

// Relative L2 difference ||cuda - cpu|| / ||cpu|| of each trace point. Both
// passes compute the same f32 operations on the same dequantized weights;
// only the order of the summations differs (cuBLAS and the mat-vec kernels
// against Eigen and the CPU's fused dots; f32 against double norm sums). The
// reference in f32 against itself in f64 differs by at most 1.2e-6 on every
// one of these models (worst: ffn_out of the last layer; measured with the
// reference alone), and two f32 passes differ by about as much. 1e-4 leaves
// two orders of margin, while a wrong head mapping, a missed bias, norm or
// scale, or one key too many in a sliding window moves a trace point by
// 1e-2 or more.
constexpr double kTraceRelL2 = 1e-4;

// max |cuda - cpu| over the logits, relative to max |cpu logit|: f32
// against f64 gives at most 1.5e-6 here (1.3e-5 absolute on stories260K,
// whose logits reach 19).
constexpr double kLogitsRel = 1e-4;

// The same measure for a prefill whose GEMMs run in tf32 or f16
// (SessionOptions::prefill_math): both keep 10 or 11 bits of each product's
// inputs, so each product is off by ~2^-11 of its scale, compounded over the
// layers. Measured on every model here (H100, 2026-11-27): 1.0e-4 to 1.04e-3
// for the prefill's logits (worst: qwen3 and gemma3 in f16), at most 3.8e-4
// for the decode step after it; f32 prefill 3e-7 to 1.3e-6. 1e-2 is ten
// times the worst; it is a check that the reduced-precision path computes
// the same model, not a bug detector (kTraceRelL2 and kLogitsRel, in f32,
// are what the comparisons use).
constexpr double kReducedPrefillLogitsRel = 1e-2;

constexpr int kGenerate = 64;

// ---------------------------------------------------------------- models

// Every model the tests run, by name: "stories260K", each synth/*.gguf by
// its stem, and the in-memory families of synth_models.h.
std::vector<std::string> ModelNames() {
  std::vector<std::string> out;
  const std::string models = testing::SharedDir() + "/models";
  if (std::filesystem::exists(models + "/stories260K.gguf")) out.push_back("stories260K");
  std::vector<std::string> synth;
  if (std::filesystem::exists(models + "/synth")) {
    for (const auto& e : std::filesystem::directory_iterator(models + "/synth")) {
      if (e.path().extension() == ".gguf") synth.push_back(e.path().stem().string());
    }
  }
  std::sort(synth.begin(), synth.end());
  out.insert(out.end(), synth.begin(), synth.end());
  for (const auto& [name, spec] : testing::SynthFamilySpecs()) out.push_back(name);
  return out;
}

gguf::Result<gguf::GgufFile> OpenModel(const std::string& name) {
  for (const auto& [synth_name, spec] : testing::SynthFamilySpecs()) {
    if (synth_name != name) continue;
    gguf::Result<std::vector<uint8_t>> bytes = testing::BuildSynthModel(spec);
    if (!bytes.ok()) return bytes.error();
    return gguf::GgufFile::Parse(gguf::OwnBytes(std::move(bytes).value()));
  }
  const std::string models = testing::SharedDir() + "/models/";
  return gguf::GgufFile::Open(name == "stories260K" ? models + "stories260K.gguf" : models + "synth/" + name + ".gguf");
}

// A prompt of 12 ids spread over the vocabulary (BOS-like 1 first).
std::vector<int32_t> Prompt(int n_vocab) {
  std::vector<int32_t> p;
  for (int i = 0; i < 12; ++i) p.push_back(1 + (i * 37 + 11) % (n_vocab - 1));
  return p;
}

// ---------------------------------------------------------------- comparison

class TraceStore : public reference::TraceSink {
 public:
  void Capture(std::string_view name, int layer, const RowMatrix& x) override {
    const std::pair<std::string, int> key{std::string(name), layer};
    if (points_.count(key) == 0) order_.push_back(key);
    points_[key] = x;
  }
  const std::vector<std::pair<std::string, int>>& order() const { return order_; }
  const RowMatrix* Find(const std::pair<std::string, int>& key) const {
    const auto it = points_.find(key);
    return it == points_.end() ? nullptr : &it->second;
  }

 private:
  std::vector<std::pair<std::string, int>> order_;
  std::map<std::pair<std::string, int>, RowMatrix> points_;
};

// ||got - want|| / ||want|| in double; +infinity on NaN or a shape mismatch.
double RelL2(const RowMatrix& got, const RowMatrix& want) {
  if (got.rows() != want.rows() || got.cols() != want.cols()) return std::numeric_limits<double>::infinity();
  double err = 0, norm = 0;
  for (Eigen::Index i = 0; i < got.size(); ++i) {
    const double g = got.data()[i], w = want.data()[i];
    if (std::isnan(g) || std::isnan(w)) return std::numeric_limits<double>::infinity();
    err += (g - w) * (g - w);
    norm += w * w;
  }
  return norm > 0 ? std::sqrt(err / norm) : std::sqrt(err);
}

// max |got - want| / max |want|; +infinity on NaN or a shape mismatch.
double LogitsRel(const RowMatrix& got, const RowMatrix& want, double* max_abs = nullptr) {
  if (got.rows() != want.rows() || got.cols() != want.cols()) return std::numeric_limits<double>::infinity();
  double diff = 0, scale = 0;
  for (Eigen::Index i = 0; i < got.size(); ++i) {
    const double g = got.data()[i], w = want.data()[i];
    if (std::isnan(g) || std::isnan(w)) return std::numeric_limits<double>::infinity();
    diff = std::max(diff, std::abs(g - w));
    scale = std::max(scale, std::abs(w));
  }
  if (max_abs != nullptr) *max_abs = diff;
  return scale > 0 ? diff / scale : diff;
}

// Every point the CPU captured, captured by CUDA with the same shape and
// within kTraceRelL2; returns the worst relative difference.
double ExpectTracesMatch(const TraceStore& cuda, const TraceStore& cpu) {
  EXPECT_EQ(cuda.order(), cpu.order()) << "trace points differ in name, layer or order";
  double worst = 0;
  for (const auto& key : cpu.order()) {
    const RowMatrix* got = cuda.Find(key);
    if (got == nullptr) {
      ADD_FAILURE() << "CUDA did not capture " << key.first << " layer " << key.second;
      continue;
    }
    const double d = RelL2(*got, *cpu.Find(key));
    worst = std::max(worst, d);
    EXPECT_LE(d, kTraceRelL2) << key.first << " layer " << key.second << " (" << got->rows() << " x "
                              << got->cols() << ")";
  }
  return worst;
}

int32_t Argmax(const RowMatrix& logits, Eigen::Index row = 0) {
  Eigen::Index best = 0;
  logits.row(row).maxCoeff(&best);
  return static_cast<int32_t>(best);
}

// ---------------------------------------------------------------- fixture

class CudaForward : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string why;
    if (ListDevices(&why).empty()) GTEST_SKIP() << "no GPU, CUDA forward tests skipped: " << why;
    ctx_ = Context::Create(0, &why);
    ASSERT_NE(ctx_, nullptr) << why;
    gguf::Result<gguf::GgufFile> f = OpenModel(GetParam());
    ASSERT_TRUE(f.ok()) << f.error().Message();
    file_ = std::make_unique<gguf::GgufFile>(std::move(f).value());
    gguf::Result<std::unique_ptr<reference::Model>> m = reference::LoadModel(*file_);
    ASSERT_TRUE(m.ok()) << m.error().Message();
    cpu_ = std::move(m).value();
    gguf::Result<std::unique_ptr<Model>> g = Model::Upload(*ctx_, *cpu_);
    ASSERT_TRUE(g.ok()) << g.error().Message();
    gpu_ = std::move(g).value();
  }

  std::unique_ptr<Session> NewSession(int n_ctx, SessionOptions opt = {}) {
    gguf::Result<std::unique_ptr<Session>> s = Session::Create(*gpu_, n_ctx, opt);
    EXPECT_TRUE(s.ok()) << s.error().Message();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  std::unique_ptr<Context> ctx_;
  std::unique_ptr<gguf::GgufFile> file_;
  std::unique_ptr<reference::Model> cpu_;
  std::unique_ptr<Model> gpu_;
};

// A prefill of 12 tokens (cuBLAS GEMMs, the attention kernel over a fresh
// cache, longer than gemma3's window) and two decode steps (mat-vecs, op by
// op since a trace is attached): every trace point and the logits.
TEST_P(CudaForward, TracesMatchReference) {
  const std::vector<int32_t> prompt = Prompt(cpu_->hp.n_vocab);
  reference::Session cpu(*cpu_, 32);
  std::unique_ptr<Session> gpu = NewSession(32);
  ASSERT_NE(gpu, nullptr);
  std::vector<int32_t> next(prompt.end() - 1, prompt.end());
  double worst_trace = 0, worst_logits = 0;
  for (int step = 0; step < 3; ++step) {
    SCOPED_TRACE(step == 0 ? "prefill" : "decode step " + std::to_string(step));
    const std::span<const int32_t> in = step == 0 ? std::span<const int32_t>(prompt) : std::span<const int32_t>(next);
    TraceStore cpu_trace, gpu_trace;
    gguf::Result<RowMatrix> want = cpu.Eval(in, step == 0, &cpu_trace);
    gguf::Result<RowMatrix> got = gpu->Eval(in, step == 0, &gpu_trace);
    ASSERT_TRUE(want.ok()) << want.error().Message();
    ASSERT_TRUE(got.ok()) << got.error().Message();
    worst_trace = std::max(worst_trace, ExpectTracesMatch(gpu_trace, cpu_trace));
    const double rel = LogitsRel(*got, *want);
    worst_logits = std::max(worst_logits, rel);
    EXPECT_LE(rel, kLogitsRel);
    next.assign(1, Argmax(*want, want->rows() - 1));
  }
  EXPECT_EQ(gpu->n_past(), cpu.n_past());
  std::cout << "[ margins  ] " << GetParam() << ": worst trace rel L2 " << worst_trace << " (limit " << kTraceRelL2
            << "), worst logits rel " << worst_logits << " (limit " << kLogitsRel << ")\n";
}

// 64 greedy tokens. Lockstep first: both sessions are fed the CPU's tokens
// and every step's logits are compared; the CUDA argmax must be the CPU's
// unless the CPU's top two are closer than the measured logits difference
// (a tie that f32 summation order decides). Then CUDA generates on its own
// (the decode steps replayed from the graph) and must produce the CPU
// reference's tokens, up to such a tie.
TEST_P(CudaForward, GreedyGenerationMatchesReference) {
  const std::vector<int32_t> prompt = Prompt(cpu_->hp.n_vocab);
  gguf::Result<std::vector<int32_t>> cpu_tokens = reference::GenerateGreedy(*cpu_, prompt, kGenerate, -1);
  ASSERT_TRUE(cpu_tokens.ok()) << cpu_tokens.error().Message();
  ASSERT_EQ(cpu_tokens->size(), static_cast<size_t>(kGenerate));

  const int n_ctx = static_cast<int>(prompt.size()) + kGenerate + 1;
  reference::Session cpu(*cpu_, n_ctx);
  std::unique_ptr<Session> gpu = NewSession(n_ctx);
  ASSERT_NE(gpu, nullptr);
  gguf::Result<RowMatrix> want = cpu.Eval(prompt, false);
  gguf::Result<RowMatrix> got = gpu->Eval(prompt, false);
  int tie_at = -1;
  double worst = 0;
  for (int i = 0; i < kGenerate; ++i) {
    ASSERT_TRUE(want.ok()) << want.error().Message();
    ASSERT_TRUE(got.ok()) << got.error().Message();
    double max_abs = 0;
    const double rel = LogitsRel(*got, *want, &max_abs);
    worst = std::max(worst, rel);
    ASSERT_LE(rel, kLogitsRel) << "step " << i;
    const int32_t a = Argmax(*want), b = Argmax(*got);
    ASSERT_EQ(a, (*cpu_tokens)[static_cast<size_t>(i)]) << "the reference is not deterministic at step " << i;
    if (a != b) {
      const double gap = static_cast<double>((*want)(0, a)) - (*want)(0, b);
      ASSERT_LE(gap, 2 * max_abs) << "step " << i << ": CUDA picks " << b << ", the reference " << a
                                  << ", whose logits differ by " << gap << " (CUDA's error: " << max_abs << ")";
      tie_at = i;
      std::cout << "[ tie      ] " << GetParam() << ": step " << i << " is a tie within f32 rounding (gap " << gap
                << ")\n";
      break;
    }
    if (i + 1 == kGenerate) break;
    const int32_t tok[1] = {a};
    want = cpu.Eval(tok, false);
    got = gpu->Eval(tok, false);
  }
  if (gpu_->decode_capturable()) {
    EXPECT_GT(gpu->graph_replays(), 0) << "decode steps did not run from the CUDA graph";
  }

  std::unique_ptr<Session> gen = NewSession(n_ctx);
  ASSERT_NE(gen, nullptr);
  reference::SamplerOptions greedy;
  greedy.temp = 0;
  gguf::Result<std::vector<int32_t>> gpu_tokens = reference::GenerateWith(
      [&gen](std::span<const int32_t> t) { return gen->Eval(t, false); }, prompt, kGenerate, greedy, {}, {});
  ASSERT_TRUE(gpu_tokens.ok()) << gpu_tokens.error().Message();
  const size_t compare = tie_at < 0 ? static_cast<size_t>(kGenerate) : static_cast<size_t>(tie_at);
  ASSERT_GE(gpu_tokens->size(), compare);
  EXPECT_EQ(std::vector<int32_t>(gpu_tokens->begin(), gpu_tokens->begin() + static_cast<ptrdiff_t>(compare)),
            std::vector<int32_t>(cpu_tokens->begin(), cpu_tokens->begin() + static_cast<ptrdiff_t>(compare)));
  std::cout << "[ greedy   ] " << GetParam() << ": " << compare << "/" << kGenerate
            << " tokens compared, equal; worst decode logits rel " << worst << ", graph replays "
            << gen->graph_replays() << "\n";
}

// A prefill with its GEMMs in tf32 or f16 (`run --prefill-math`): its logits
// stay within kReducedPrefillLogitsRel of the reference's, and the option
// takes effect (f16 rounds the activations, so some logit must change from
// the f32 prefill's). The decode step after it (f32 mat-vecs over the cache
// it filled) stays within the same bound.
TEST_P(CudaForward, ReducedPrecisionPrefillStaysNearReference) {
  const std::vector<int32_t> prompt = Prompt(cpu_->hp.n_vocab);
  const int n_ctx = static_cast<int>(prompt.size()) + 2;
  reference::Session cpu(*cpu_, n_ctx);
  gguf::Result<RowMatrix> want = cpu.Eval(prompt, true);
  ASSERT_TRUE(want.ok()) << want.error().Message();
  const int32_t next[1] = {Argmax(*want, want->rows() - 1)};
  gguf::Result<RowMatrix> want_next = cpu.Eval(next, false);
  ASSERT_TRUE(want_next.ok()) << want_next.error().Message();
  std::unique_ptr<Session> exact = NewSession(n_ctx);
  ASSERT_NE(exact, nullptr);
  gguf::Result<RowMatrix> f32 = exact->Eval(prompt, true);
  ASSERT_TRUE(f32.ok()) << f32.error().Message();
  for (const GemmMath math : {GemmMath::kTf32, GemmMath::kF16}) {
    const char* name = math == GemmMath::kTf32 ? "tf32" : "f16";
    SCOPED_TRACE(name);
    std::unique_ptr<Session> gpu = NewSession(n_ctx, SessionOptions{.prefill_math = math});
    ASSERT_NE(gpu, nullptr);
    gguf::Result<RowMatrix> got = gpu->Eval(prompt, true);
    ASSERT_TRUE(got.ok()) << got.error().Message();
    const double rel = LogitsRel(*got, *want);
    EXPECT_LE(rel, kReducedPrefillLogitsRel);
    if (math == GemmMath::kF16) {
      EXPECT_GT((*got - *f32).cwiseAbs().maxCoeff(), 0.0f) << "the f16 prefill gave the f32 prefill's logits";
    }
    gguf::Result<RowMatrix> got_next = gpu->Eval(next, false);
    ASSERT_TRUE(got_next.ok()) << got_next.error().Message();
    const double rel_next = LogitsRel(*got_next, *want_next);
    EXPECT_LE(rel_next, kReducedPrefillLogitsRel);
    std::cout << "[ margins  ] " << GetParam() << ": prefill " << name << " logits rel " << rel << ", next step "
              << rel_next << " (limit " << kReducedPrefillLogitsRel << "; f32 prefill "
              << LogitsRel(*f32, *want) << ")\n";
  }
}

// The prompt and 64 more tokens (past gemma3's window many times over) as
// one CPU prefill with all logits, against CUDA doing it in two calls: the
// second prefill attends over the cache the first one filled.
TEST_P(CudaForward, SplitPrefillMatchesReference) {
  std::vector<int32_t> seq = Prompt(cpu_->hp.n_vocab);
  for (int i = 0; i < kGenerate; ++i) seq.push_back(1 + (i * 53 + 7) % (cpu_->hp.n_vocab - 1));
  const int n = static_cast<int>(seq.size()), half = n / 2 + 3;
  reference::Session cpu(*cpu_, n);
  std::unique_ptr<Session> gpu = NewSession(n);
  ASSERT_NE(gpu, nullptr);
  gguf::Result<RowMatrix> want = cpu.Eval(seq, true);
  gguf::Result<RowMatrix> first = gpu->Eval(std::span<const int32_t>(seq).first(half), true);
  gguf::Result<RowMatrix> second = gpu->Eval(std::span<const int32_t>(seq).subspan(half), true);
  ASSERT_TRUE(want.ok()) << want.error().Message();
  ASSERT_TRUE(first.ok()) << first.error().Message();
  ASSERT_TRUE(second.ok()) << second.error().Message();
  RowMatrix got(n, cpu_->hp.n_vocab);
  got.topRows(half) = *first;
  got.bottomRows(n - half) = *second;
  EXPECT_LE(LogitsRel(got, *want), kLogitsRel);
  EXPECT_EQ(gpu->n_past(), n);
}

// The graph replays the recorded kernels on the same buffers: its logits are
// bit-identical to the op-by-op step's. A third session decodes with
// EvalArgmax (the device picks the token, also from the graph): its ids must
// be the first maxima of the op-by-op logits. The op-by-op session runs
// with dependent launch off (every kernel starts after the previous one
// ends), the graphs with it on where the device has it: a kernel reading
// its input before the previous kernel has written it would show here.
TEST_P(CudaForward, GraphReplayEqualsOpByOp) {
  if (!gpu_->decode_capturable()) {
    GTEST_SKIP() << GetParam() << " has a matrix type without a direct mat-vec kernel: it decodes op by op";
  }
  const std::vector<int32_t> prompt = Prompt(cpu_->hp.n_vocab);
  std::unique_ptr<Session> graph = NewSession(40), eager = NewSession(40, SessionOptions{.cuda_graph = false}),
                           picker = NewSession(40);
  ASSERT_NE(graph, nullptr);
  ASSERT_NE(eager, nullptr);
  ASSERT_NE(picker, nullptr);
  Context& ctx = gpu_->context();
  const bool pdl = ctx.dependent_launch();
  const auto serial = [&](std::span<const int32_t> ids) {
    ctx.set_dependent_launch(false);
    gguf::Result<RowMatrix> r = eager->Eval(ids, false);
    ctx.set_dependent_launch(pdl);
    return r;
  };
  gguf::Result<RowMatrix> a = graph->Eval(prompt, false), b = serial(prompt);
  gguf::Result<int32_t> c = picker->EvalArgmax(prompt);
  for (int i = 0; i < 16; ++i) {
    ASSERT_TRUE(a.ok()) << a.error().Message();
    ASSERT_TRUE(b.ok()) << b.error().Message();
    ASSERT_TRUE(c.ok()) << c.error().Message();
    ASSERT_EQ(a->rows(), b->rows());
    ASSERT_TRUE((a->array() == b->array()).all())
        << "step " << i << ": max |graph - op by op| " << (*a - *b).cwiseAbs().maxCoeff();
    const int32_t tok[1] = {Argmax(*b)};
    ASSERT_EQ(*c, tok[0]) << "step " << i << ": EvalArgmax against the first maximum of the logits";
    a = graph->Eval(tok, false);
    b = serial(tok);
    c = picker->EvalArgmax(tok);
  }
  EXPECT_EQ(graph->graph_replays(), 16);
  EXPECT_EQ(eager->graph_replays(), 0);
  EXPECT_EQ(picker->graph_replays(), 16);
  EXPECT_EQ(picker->n_past(), eager->n_past());
}

// DecodeGreedy (each step's id fed to the next on the device, read back one
// step behind) against a loop of EvalArgmax, the host feeding every token:
// the same ids, bit for bit, and the same state after it. A stop token ends
// it after that id; the step it has already launched past it is dropped,
// so the session goes on as the EvalArgmax loop does (its cache row beyond
// n_past is overwritten). The context may be exactly full at the end; one
// step more, or a bad token, is an error before anything runs.
TEST_P(CudaForward, DecodeGreedyEqualsEvalArgmaxLoop) {
  constexpr int kSteps = 12;
  const std::vector<int32_t> prompt = Prompt(cpu_->hp.n_vocab);
  const int n_ctx = static_cast<int>(prompt.size()) + kSteps;  // `host` takes one step more
  std::unique_ptr<Session> host = NewSession(n_ctx + 1), device = NewSession(n_ctx), stopped = NewSession(n_ctx);
  ASSERT_NE(host, nullptr);
  ASSERT_NE(device, nullptr);
  ASSERT_NE(stopped, nullptr);
  gguf::Result<int32_t> first = host->EvalArgmax(prompt);
  ASSERT_TRUE(first.ok()) << first.error().Message();
  std::vector<int32_t> want;  // kSteps + 1 ids after `first`, one to check the stopped session's next step
  for (int32_t in = *first; static_cast<int>(want.size()) < kSteps + 1; in = want.back()) {
    gguf::Result<int32_t> id = host->EvalArgmax(std::span<const int32_t>(&in, 1));
    ASSERT_TRUE(id.ok()) << id.error().Message();
    want.push_back(*id);
  }

  gguf::Result<int32_t> d_first = device->EvalArgmax(prompt);
  ASSERT_TRUE(d_first.ok()) << d_first.error().Message();
  ASSERT_EQ(*d_first, *first);
  const int replays = device->graph_replays();
  std::vector<int32_t> seen;
  gguf::Result<std::vector<int32_t>> got =
      device->DecodeGreedy(*first, kSteps, {}, [&seen](int32_t id) { seen.push_back(id); });
  ASSERT_TRUE(got.ok()) << got.error().Message();
  EXPECT_EQ(*got, std::vector<int32_t>(want.begin(), want.begin() + kSteps));
  EXPECT_EQ(seen, *got);
  EXPECT_EQ(device->n_past(), static_cast<int>(prompt.size()) + kSteps);
  if (gpu_->decode_capturable()) {
    EXPECT_EQ(device->graph_replays() - replays, kSteps) << "not the graph's loop";
  }
  // The context is full now: one more step is refused and changes nothing.
  const int32_t last = got->back();
  EXPECT_FALSE(device->DecodeGreedy(last, 1).ok());
  EXPECT_EQ(device->n_past(), static_cast<int>(prompt.size()) + kSteps);

  // Stop at the id of step 4 (or at its first occurrence before it).
  gguf::Result<int32_t> s_first = stopped->EvalArgmax(prompt);
  ASSERT_TRUE(s_first.ok()) << s_first.error().Message();
  const int32_t stop[1] = {want[4]};
  const size_t until = static_cast<size_t>(std::find(want.begin(), want.end(), want[4]) - want.begin()) + 1;
  gguf::Result<std::vector<int32_t>> part = stopped->DecodeGreedy(*first, kSteps, stop);
  ASSERT_TRUE(part.ok()) << part.error().Message();
  EXPECT_EQ(*part, std::vector<int32_t>(want.begin(), want.begin() + static_cast<ptrdiff_t>(until)));
  EXPECT_EQ(stopped->n_past(), static_cast<int>(prompt.size() + until));
  // Going on from there: the dropped step's cache row does not show.
  gguf::Result<std::vector<int32_t>> more = stopped->DecodeGreedy(part->back(), 3);
  ASSERT_TRUE(more.ok()) << more.error().Message();
  EXPECT_EQ(*more, std::vector<int32_t>(want.begin() + static_cast<ptrdiff_t>(until),
                                        want.begin() + static_cast<ptrdiff_t>(until) + 3));
  gguf::Result<int32_t> next = stopped->EvalArgmax(std::span<const int32_t>(&more->back(), 1));
  ASSERT_TRUE(next.ok()) << next.error().Message();
  EXPECT_EQ(*next, want[until + 3]);

  const int before = stopped->n_past();
  EXPECT_FALSE(stopped->DecodeGreedy(-1, 2).ok());
  EXPECT_FALSE(stopped->DecodeGreedy(cpu_->hp.n_vocab, 2).ok());
  EXPECT_EQ(stopped->n_past(), before);
  gguf::Result<std::vector<int32_t>> none = stopped->DecodeGreedy(last, 0);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

std::string ParamName(const ::testing::TestParamInfo<std::string>& info) {
  std::string s = info.param;
  for (char& c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return s;
}

INSTANTIATE_TEST_SUITE_P(Models, CudaForward, ::testing::ValuesIn(ModelNames()), ParamName);

// ---------------------------------------------------------------- injected faults

// The CUDA pass with a fault of reference_cpu/faults.h against the CPU
// reference with the same fault: the same arithmetic, so the same tolerance
// as the clean passes. An overflowing f16 softmax makes whole rows NaN (or
// zero): there both must be non-finite at the same elements, and the
// finite ones within the tolerance.
//
// f16-softmax rounds each exp(score) to f16 (11-bit mantissa): a 1-ulp f32
// difference in a score (the summation order of q.k) lands on the other
// side of an f16 rounding boundary now and then and moves that weight by
// 2^-11 = 4.9e-4 relative, so its points get a tolerance of 1e-3 (measured
// on the H100: up to 3e-4 on synth-gemma3 F16). A real engine bug (a wrong
// head, a missed bias) still moves points by 1e-2 or more.
constexpr double kF16SoftmaxRelL2 = 1e-3;

// RelL2 over the elements finite in both, +infinity if the shapes differ or
// an element is finite in one and not the other.
double RelL2SameNonFinite(const RowMatrix& got, const RowMatrix& want) {
  if (got.rows() != want.rows() || got.cols() != want.cols()) return std::numeric_limits<double>::infinity();
  double err = 0, norm = 0;
  for (Eigen::Index i = 0; i < got.size(); ++i) {
    const double g = got.data()[i], w = want.data()[i];
    if (std::isfinite(g) != std::isfinite(w)) return std::numeric_limits<double>::infinity();
    if (!std::isfinite(w)) continue;
    err += (g - w) * (g - w);
    norm += w * w;
  }
  return norm > 0 ? std::sqrt(err / norm) : std::sqrt(err);
}

// LogitsRel with the same rule for non-finite elements.
double LogitsRelSameNonFinite(const RowMatrix& got, const RowMatrix& want) {
  if (got.rows() != want.rows() || got.cols() != want.cols()) return std::numeric_limits<double>::infinity();
  double diff = 0, scale = 0;
  for (Eigen::Index i = 0; i < got.size(); ++i) {
    const double g = got.data()[i], w = want.data()[i];
    if (std::isfinite(g) != std::isfinite(w)) return std::numeric_limits<double>::infinity();
    if (!std::isfinite(w)) continue;
    diff = std::max(diff, std::abs(g - w));
    scale = std::max(scale, std::abs(w));
  }
  return scale > 0 ? diff / scale : diff;
}

std::string PointName(const std::pair<std::string, int>& key) {
  return key.second < 0 ? key.first : key.first + "-" + std::to_string(key.second);
}

struct FaultCase {
  std::string model;
  reference::Fault fault;
  // Where the fault first moves the CPU reference's prefill trace by more
  // than 1e-3 (faults_test's rule and docs/CHECKS.md's first op); "" where
  // it stays latent on this model (the comparison still exercises the
  // faulty kernel): proof that the case tests something.
  std::string shows_at;
};

// Models where each fault shows: gqa-map needs 1 < n_head_kv < n_head
// (stories260K and synth-qwen2 8/4, synth-qwen3 8/2, synth-gemma3 4/2);
// qkv-bias-dropped needs biases (qwen2); f16-softmax overflows on
// stories260K's trained scores and stays finite (latent) on the random
// models; transposed-gemm needs a square wo (synth-gemma3's is not: there
// both passes must leave the product alone). synth-llama-Q4_K_S has a
// quantized wo to dequantize; synth-gemma3 runs the faulty attention and
// the shifted cache through sliding windows.
std::vector<FaultCase> FaultCases() {
  using F = reference::Fault;
  const std::string qwen2 = "synth-qwen2-Q8_0", stories = "stories260K", gemma3 = "synth-gemma3-F16",
                    qwen3 = "synth-qwen3-Q8_0", llama_q4k = "synth-llama-Q4_K_S";
  return {
      {qwen2, F::kDropQkvBias, "Qcur-0"},          {qwen2, F::kNormRopeForNeox, "Qcur-0"},
      {stories, F::kNormRopeForNeox, "Qcur-0"},    {stories, F::kWrongRmsEps, "attn_norm-0"},
      {qwen2, F::kWrongRmsEps, "attn_norm-0"},     {stories, F::kTransposedGemm, "attn_out-0"},
      {qwen2, F::kTransposedGemm, "attn_out-0"},   {llama_q4k, F::kTransposedGemm, "attn_out-0"},
      {gemma3, F::kTransposedGemm, ""},            {stories, F::kF16Softmax, "kqv_out-0"},
      {qwen2, F::kF16Softmax, ""},                 {gemma3, F::kF16Softmax, ""},
      {stories, F::kKvOffByOne, "kqv_out-0"},      {qwen2, F::kKvOffByOne, "kqv_out-0"},
      {gemma3, F::kKvOffByOne, "kqv_out-0"},       {stories, F::kWrongGqaMap, "kqv_out-0"},
      {qwen2, F::kWrongGqaMap, "kqv_out-0"},       {qwen3, F::kWrongGqaMap, "kqv_out-0"},
      {gemma3, F::kWrongGqaMap, "kqv_out-0"},
  };
}

void PrintTo(const FaultCase& c, std::ostream* os) {
  *os << c.model << " --inject " << reference::Describe(c.fault).name;
}

class CudaFault : public ::testing::TestWithParam<FaultCase> {};

// A prefill of 12 tokens and two decode steps with every trace point
// compared, then 8 untraced decode steps (replayed from the CUDA graph where
// the model allows) with their logits compared; the last step fills the
// cache, so kv-off-by-one's row past the end is dropped on both sides.
TEST_P(CudaFault, MatchesReferenceWithTheSameFault) {
  const FaultCase& c = GetParam();
  std::string why;
  if (ListDevices(&why).empty()) GTEST_SKIP() << "no GPU, CUDA forward tests skipped: " << why;
  const std::vector<std::string> models = ModelNames();
  if (std::find(models.begin(), models.end(), c.model) == models.end()) {
    GTEST_SKIP() << "no " << c.model << " in " << testing::SharedDir() << "/models";
  }
  std::unique_ptr<Context> ctx = Context::Create(0, &why);
  ASSERT_NE(ctx, nullptr) << why;
  gguf::Result<gguf::GgufFile> f = OpenModel(c.model);
  ASSERT_TRUE(f.ok()) << f.error().Message();
  gguf::Result<std::unique_ptr<reference::Model>> m = reference::LoadModel(*f);
  ASSERT_TRUE(m.ok()) << m.error().Message();
  gguf::Result<std::unique_ptr<Model>> g = Model::Upload(*ctx, **m);
  ASSERT_TRUE(g.ok()) << g.error().Message();
  const std::vector<int32_t> prompt = Prompt((*m)->hp.n_vocab);
  constexpr int kTracedDecode = 2, kGraphDecode = 8;
  const int n_ctx = static_cast<int>(prompt.size()) + kTracedDecode + kGraphDecode;

  // The fault shows where it should on the CPU (else this case tests little).
  {
    reference::Session clean(**m, n_ctx), faulty(**m, n_ctx);
    faulty.InjectFault(c.fault);
    TraceStore clean_trace, faulty_trace;
    ASSERT_TRUE(clean.Eval(prompt, true, &clean_trace).ok());
    ASSERT_TRUE(faulty.Eval(prompt, true, &faulty_trace).ok());
    std::string first;
    for (const auto& key : clean_trace.order()) {
      const RowMatrix* bad = faulty_trace.Find(key);
      ASSERT_NE(bad, nullptr) << PointName(key);
      if (!(RelL2(*bad, *clean_trace.Find(key)) <= 1e-3)) {
        first = PointName(key);
        break;
      }
    }
    EXPECT_EQ(first, c.shows_at) << "where " << reference::Describe(c.fault).name << " first shows on " << c.model;
  }

  reference::Session cpu(**m, n_ctx);
  cpu.InjectFault(c.fault);
  gguf::Result<std::unique_ptr<Session>> s = Session::Create(**g, n_ctx, SessionOptions{.inject = c.fault});
  ASSERT_TRUE(s.ok()) << s.error().Message();
  Session& gpu = **s;
  std::vector<int32_t> next;
  double worst_trace = 0, worst_logits = 0;
  const double tol = c.fault == reference::Fault::kF16Softmax ? kF16SoftmaxRelL2 : kTraceRelL2;
  for (int step = 0; step < 1 + kTracedDecode + kGraphDecode; ++step) {
    SCOPED_TRACE(step == 0 ? "prefill" : "decode step " + std::to_string(step));
    const bool traced = step <= kTracedDecode;
    const std::span<const int32_t> in = step == 0 ? std::span<const int32_t>(prompt) : std::span<const int32_t>(next);
    TraceStore cpu_trace, gpu_trace;
    gguf::Result<RowMatrix> want = cpu.Eval(in, step == 0, traced ? &cpu_trace : nullptr);
    gguf::Result<RowMatrix> got = gpu.Eval(in, step == 0, traced ? &gpu_trace : nullptr);
    ASSERT_TRUE(want.ok()) << want.error().Message();
    ASSERT_TRUE(got.ok()) << got.error().Message();
    if (traced) {
      EXPECT_EQ(gpu_trace.order(), cpu_trace.order()) << "trace points differ in name, layer or order";
      for (const auto& key : cpu_trace.order()) {
        const RowMatrix* point = gpu_trace.Find(key);
        if (point == nullptr) {
          ADD_FAILURE() << "CUDA did not capture " << PointName(key);
          continue;
        }
        const double d = RelL2SameNonFinite(*point, *cpu_trace.Find(key));
        worst_trace = std::max(worst_trace, d);
        EXPECT_LE(d, tol) << PointName(key) << " (" << point->rows() << " x " << point->cols()
                          << "; infinite: finite in one pass only)";
      }
    }
    const double rel = LogitsRelSameNonFinite(*got, *want);
    worst_logits = std::max(worst_logits, rel);
    EXPECT_LE(rel, c.fault == reference::Fault::kF16Softmax ? kF16SoftmaxRelL2 : kLogitsRel);
    next.assign(1, Argmax(*want, want->rows() - 1));
  }
  EXPECT_EQ(gpu.n_past(), n_ctx);
  if ((*g)->decode_capturable()) {
    EXPECT_EQ(gpu.graph_replays(), kGraphDecode) << "the decode graph was not used";
  }
  std::cout << "[ margins  ] " << c.model << " --inject " << reference::Describe(c.fault).name
            << ": worst trace rel L2 " << worst_trace << ", worst logits rel " << worst_logits << "\n";
}

std::string FaultCaseName(const ::testing::TestParamInfo<FaultCase>& p) {
  std::string s = std::string(reference::Describe(p.param.fault).name) + "_" + p.param.model;
  for (char& ch : s) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return s;
}

INSTANTIATE_TEST_SUITE_P(Faults, CudaFault, ::testing::ValuesIn(FaultCases()), FaultCaseName);

// Every bug faults.h defines can be injected into the CUDA pass (no GPU
// needed to ask).
TEST(CudaInject, EveryFaultOfTheReference) {
  EXPECT_TRUE(CanInject(reference::Fault::kNone));
  for (const reference::FaultInfo& i : reference::AllFaults()) EXPECT_TRUE(CanInject(i.fault)) << i.name;
}

// ---------------------------------------------------------------- errors

// Bad input is the reference's error, found before anything runs: the
// session is unchanged and goes on working.
TEST(CudaForwardErrors, BadInputIsAnErrorAndChangesNothing) {
  std::string why;
  if (ListDevices(&why).empty()) GTEST_SKIP() << "no GPU, CUDA forward tests skipped: " << why;
  std::unique_ptr<Context> ctx = Context::Create(0, &why);
  ASSERT_NE(ctx, nullptr) << why;
  gguf::Result<gguf::GgufFile> f = OpenModel("synth-qwen3-Q8_0");
  ASSERT_TRUE(f.ok()) << f.error().Message();
  gguf::Result<std::unique_ptr<reference::Model>> m = reference::LoadModel(*f);
  ASSERT_TRUE(m.ok()) << m.error().Message();
  gguf::Result<std::unique_ptr<Model>> g = Model::Upload(*ctx, **m);
  ASSERT_TRUE(g.ok()) << g.error().Message();
  EXPECT_FALSE(Session::Create(**g, 0).ok());
  gguf::Result<std::unique_ptr<Session>> s = Session::Create(**g, 4);
  ASSERT_TRUE(s.ok()) << s.error().Message();
  Session& session = **s;
  const int n_vocab = (*m)->hp.n_vocab;
  for (const std::vector<int32_t>& bad :
       {std::vector<int32_t>{1, n_vocab}, std::vector<int32_t>{-1}, std::vector<int32_t>{1, 2, 3, 4, 5},
        std::vector<int32_t>{}}) {
    gguf::Result<RowMatrix> r = session.Eval(bad, false);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, gguf::ErrorCode::kInvalidArgument) << r.error().Message();
    EXPECT_FALSE(IsDeviceError(r.error()));
    EXPECT_EQ(session.n_past(), 0);
  }
  const std::vector<int32_t> ok = {1, 2, 3, 4};
  EXPECT_TRUE(session.Eval(ok, false).ok());
  EXPECT_EQ(session.n_past(), 4);
  const std::vector<int32_t> one = {1};
  EXPECT_FALSE(session.Eval(one, false).ok());  // the context is full
}

}  // namespace
}  // namespace ggufscope::cuda
