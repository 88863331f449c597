// The reference forward pass: batched prefill and decode over a KV cache,
// f32 everywhere (RMSNorm sums in double, as ggml does) or, with
// Precision::kF64, every activation, accumulation and the KV cache in double
// (the weights are the file's values either way), with optional capture of
// every intermediate under llama.cpp's graph names.
#pragma once

#include <functional>
#include <span>
#include <string_view>

#include "reference_cpu/faults.h"
#include "reference_cpu/model.h"

namespace ggufscope::reference {

// Receives intermediates: `name` is llama.cpp's graph tensor name without the
// layer suffix ("attn_norm", "Qcur", ...), `layer` -1 for whole-model points.
// x is (n_tokens, width) for the tokens of this call.
class TraceSink {
 public:
  virtual ~TraceSink() = default;
  virtual void Capture(std::string_view name, int layer, const RowMatrix& x) = 0;
};

// kF32: what llama.cpp computes, to within summation order. kF64: the same
// operations in double, for the pickiest comparisons (how much of a
// difference is f32 rounding?); about 2-4x slower.
enum class Precision { kF32, kF64 };

class Session {
 public:
  // n_ctx: the most positions this session will hold (KV cache size).
  Session(const Model& model, int n_ctx, Precision precision = Precision::kF32);

  // Runs `tokens` at positions n_past()..; returns logits (n_tokens, n_vocab)
  // when all_logits, else (1, n_vocab) for the last token (rounded to f32
  // under kF64, as are captured intermediates). Errors (never crashes) on
  // token ids out of range or a full context.
  gguf::Result<RowMatrix> Eval(std::span<const int32_t> tokens, bool all_logits, TraceSink* trace = nullptr);

  int n_past() const { return n_past_; }
  int n_ctx() const { return n_ctx_; }
  void Reset() { n_past_ = 0; }
  Precision precision() const { return precision_; }

  // Makes this session an "engine under test" with a known bug (faults.h),
  // from the next Eval on; kNone restores the reference.
  void InjectFault(Fault f) { fault_ = f; }
  Fault fault() const { return fault_; }

 private:
  template <typename T>
  gguf::Result<RowMatrix> EvalT(std::span<const int32_t> tokens, bool all_logits, TraceSink* trace);
  template <typename T>
  std::vector<Mat<T>>& Cache(bool v);

  const Model& m_;
  int n_ctx_;
  Precision precision_;
  Fault fault_ = Fault::kNone;
  int n_past_ = 0;
  // Per layer: (n_ctx, n_head_kv * head_dim), in the session's precision.
  std::vector<Mat<float>> k_cache_, v_cache_;
  std::vector<Mat<double>> k_cache64_, v_cache64_;
};

// Greedy decoding: appends up to n tokens after `prompt`, stopping after `eos`
// (when >= 0). Returns the generated ids.
gguf::Result<std::vector<int32_t>> GenerateGreedy(const Model& model, std::span<const int32_t> prompt, int n,
                                                  int32_t eos, Precision precision = Precision::kF32);

struct SamplerOptions {
  float temp = 0.0f;  // <= 0: greedy
  int top_k = 40;     // <= 0: all
  float top_p = 0.95f;
  uint64_t seed = 0;
  Precision precision = Precision::kF32;  // of the forward pass
};

// Sampling as llama.cpp's default chain: top-k, top-p, temperature, then a
// draw; greedy when temp <= 0. Stops after any of `stop`. on_token (may be
// empty) sees each id as it is produced, for streaming.
gguf::Result<std::vector<int32_t>> Generate(const Model& model, std::span<const int32_t> prompt, int n,
                                            const SamplerOptions& sampler, std::span<const int32_t> stop,
                                            const std::function<void(int32_t)>& on_token);

// One step of any backend's forward pass, as Session::Eval(tokens, false):
// the logits (1, n_vocab) of the last of `tokens`, appended to what the
// session has seen (the CUDA session's, say).
using StepFn = std::function<gguf::Result<RowMatrix>(std::span<const int32_t> tokens)>;

// Generate over `step` (sampler.precision is then the step's business).
// Greedy (temp <= 0) takes the first maximum of each step's logits.
gguf::Result<std::vector<int32_t>> GenerateWith(const StepFn& step, std::span<const int32_t> prompt, int n,
                                                const SamplerOptions& sampler, std::span<const int32_t> stop,
                                                const std::function<void(int32_t)>& on_token);

// One step of a backend that picks the next token itself (the CUDA
// session's EvalArgmax): the id chosen after the last of `tokens`.
using TokenStepFn = std::function<gguf::Result<int32_t>(std::span<const int32_t> tokens)>;

// The generation loop under GenerateWith: `step` on the prompt, then on
// each token it returned, until n tokens or a stop token (no step is run
// after the last token).
gguf::Result<std::vector<int32_t>> GenerateTokensWith(const TokenStepFn& step, std::span<const int32_t> prompt, int n,
                                                      std::span<const int32_t> stop,
                                                      const std::function<void(int32_t)>& on_token);

}  // namespace ggufscope::reference
