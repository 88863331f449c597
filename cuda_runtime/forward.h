// The CUDA forward pass: the reference model (reference_cpu/model.h) on one
// GPU, with the reference's semantics and Session::Eval contract, built from
// the ops of ops.h. Matrices go to the device as the file's GGUF blocks,
// unchanged; norms and biases as f32; the KV cache is f32. Prefill runs the
// matrix products through cuBLAS (f32 unless SessionOptions::prefill_math
// says otherwise), decode through the mat-vec kernels;
// a decode step without a trace is replayed as a CUDA graph. Intermediates
// are copied to the host only when a TraceSink is attached, under the
// reference's (llama.cpp's) names.
//
// Host-facing: no CUDA types. In a build without CUDA, Model::Upload fails
// with "built without CUDA" (the Context cannot be created in the first
// place).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "cuda_runtime/buffer.h"
#include "cuda_runtime/device.h"
#include "cuda_runtime/graph.h"
#include "cuda_runtime/ops.h"
#include "cuda_runtime/status.h"
#include "gguf/error.h"
#include "reference_cpu/faults.h"
#include "reference_cpu/forward.h"
#include "reference_cpu/model.h"

namespace ggufscope::cuda {

// A matrix on the device in its GGUF type: the file's bytes, rows of
// `cols` elements (whole blocks) one after another.
struct DeviceWeight {
  gguf::GgmlType type = gguf::GgmlType::kF32;
  int64_t rows = 0, cols = 0;
  const void* data = nullptr;  // rows * row_bytes bytes in the model's arena
};

// Pointers into the model's arena; null where the family has no such tensor.
struct DeviceLayer {
  const float* attn_norm = nullptr;                                 // (n_embd)
  DeviceWeight wq, wk, wv;                                          // (n_head*hd, n_embd), (n_kv*hd, n_embd) x2
  DeviceWeight wo;                                                  // (n_embd, n_head*hd)
  const float *bq = nullptr, *bk = nullptr, *bv = nullptr;          // (n_head*hd), (n_kv*hd) x2
  const float *q_norm = nullptr, *k_norm = nullptr;                 // (head_dim) each
  const float *post_attn_norm = nullptr, *post_ffn_norm = nullptr;  // (n_embd) each
  const float* ffn_norm = nullptr;                                  // (n_embd)
  DeviceWeight w_gate, w_up, w_down;                                // (n_ff, n_embd) x2, (n_embd, n_ff)
};

// Errors of the device (a failed CUDA call, memory, a build without CUDA)
// come back from Upload and Eval as this Error: code kUnsupported, field
// "CUDA", `actual` the device's message. Input errors (token ids, a full
// context) are the reference's errors.
gguf::Error DeviceError(const Status& status);
bool IsDeviceError(const gguf::Error& error);

class Model {
 public:
  // Copies every weight of `m` to ctx's device in one allocation. ctx must
  // outlive the model (and every session of it).
  static gguf::Result<std::unique_ptr<Model>> Upload(Context& ctx, const reference::Model& m);

  Context& context() const { return *ctx_; }
  const reference::Family& family() const { return family_; }
  const reference::HParams& hp() const { return hp_; }
  const DeviceWeight& tok_embd() const { return tok_embd_; }
  const DeviceWeight& output() const { return output_; }  // tok_embd's bytes when tied
  const float* output_norm() const { return output_norm_; }
  const std::vector<DeviceLayer>& layers() const { return layers_; }
  size_t device_bytes() const { return arena_.size(); }
  // True when every matrix a decode step multiplies has a direct mat-vec
  // kernel: the step then launches only this library's kernels (no cuBLAS,
  // no workspace) and can be captured as a graph.
  bool decode_capturable() const { return decode_capturable_; }

 private:
  Model() = default;
  Context* ctx_ = nullptr;
  reference::Family family_;
  reference::HParams hp_;
  DeviceBuffer arena_;
  DeviceWeight tok_embd_, output_;
  const float* output_norm_ = nullptr;
  std::vector<DeviceLayer> layers_;
  bool decode_capturable_ = false;
};

struct NormFold;  // ops.h
struct RopeFold;  // ops.h

struct SessionOptions {
  // Replay one-token steps without a trace as a CUDA graph (when the model
  // is decode_capturable). Off: every step is launched op by op.
  bool cuda_graph = true;
  // An engine under test with a known bug (reference_cpu/faults.h), for
  // doctor's and compare's self-tests on the GPU: every bug of faults.h,
  // with the CPU reference's semantics (fault_ops.h has the faulty kernels;
  // the clean pass never runs them).
  reference::Fault inject = reference::Fault::kNone;
  // Prefill's matrix products (cuBLAS GEMMs of every token at once): kF32,
  // the default, keeps the pass within the trace tolerance of the CPU
  // reference that the tests hold it to; kTf32 (tf32 tensor cores) and
  // kF16 (weights dequantized to f16, activations rounded to f16, f32
  // accumulation) trade digits for speed (`run --prefill-math`; the
  // agreement they keep is in docs/TESTING.md). Decode steps are f32
  // mat-vecs whatever this says.
  GemmMath prefill_math = GemmMath::kF32;
  // Benchmarking only (ggufscope-bench-forward --skip-ops; nothing else
  // sets it): a one-token step without a trace leaves out the launches of
  // these SkipOp bits, so that timing decode with and without them shows
  // what each adds to the step, overlap included. The results are then
  // meaningless.
  unsigned skip_ops = 0;
};

// SessionOptions::skip_ops bits.
enum SkipOp : unsigned {
  kSkipQkv = 1,        // the q/k/v products (and an RmsNorm run for them)
  kSkipQkvPost = 2,    // QkvPost
  kSkipAttention = 4,  // Attention
  kSkipAttnOut = 8,    // attn_output (with its residual add)
  kSkipGateUp = 16,    // gate/up and the activation (and an RmsNorm run for them)
  kSkipDown = 32,      // ffn_down (with its residual add)
  kSkipOutput = 64,    // the output head (and its norm)
};

// True if the CUDA pass can inject `f` (SessionOptions::inject).
bool CanInject(reference::Fault f);

class Session {
 public:
  // n_ctx: the most positions the session holds (KV cache rows).
  static gguf::Result<std::unique_ptr<Session>> Create(const Model& model, int n_ctx,
                                                       SessionOptions options = {});

  // As reference::Session::Eval: runs `tokens` at positions n_past()..;
  // returns logits (n_tokens, n_vocab) when all_logits, else (1, n_vocab)
  // for the last token. Token ids out of range or a full context are the
  // reference's errors, found before anything runs.
  gguf::Result<reference::RowMatrix> Eval(std::span<const int32_t> tokens, bool all_logits,
                                          reference::TraceSink* trace = nullptr);

  // As Eval(tokens, false), but returns only the id of the first maximum of
  // the last token's logits (computed on the device: no logits copied back).
  gguf::Result<int32_t> EvalArgmax(std::span<const int32_t> tokens);

  // Greedy decoding on the device: feeds `token` at n_past(), then each
  // step's argmax as the next step's input, until n ids came back or one of
  // `stop` did (it is returned too); on_token sees each id as it arrives.
  // Returns the ids; n_past() grows by their count, the state the same
  // loop of EvalArgmax leaves (the same ids, bit for bit). With the decode
  // graph, the argmax writes the next step's token and position on the
  // device and the host reads each id while the next step already runs
  // (one step ahead; a step past a stop token is computed and dropped, its
  // cache row beyond n_past()). Without the graph (or with an injected
  // fault) it is that EvalArgmax loop. The context must hold n more
  // positions; a bad token or too small a context is an error before
  // anything runs.
  gguf::Result<std::vector<int32_t>> DecodeGreedy(int32_t token, int n, std::span<const int32_t> stop = {},
                                                  const std::function<void(int32_t)>& on_token = nullptr);

  int n_past() const { return n_past_; }
  void Reset() { n_past_ = 0; }
  // Steps replayed from the captured graph so far (for tests and benchmarks).
  int graph_replays() const { return graph_replays_; }

 private:
  explicit Session(const Model& model) : m_(model), ctx_(model.context()) {}
  Status Reserve(int64_t n_tokens);  // activation buffers for n_tokens rows
  Status PrepareFault();            // what options_.inject needs before the first Eval
  std::optional<gguf::Error> CheckInput(std::span<const int32_t> tokens) const;
  Status Run(std::span<const int32_t> tokens, bool all_logits, reference::TraceSink* trace, bool argmax);
  Status LastArgMax(int64_t row, bool feed = false);  // ArgMax of logits row `row` into argmax_
  Status Forward(int n, bool all_logits, reference::TraceSink* trace);
  Status DecodeGraphStep();
  Status LaunchGraph();
  Status Linear(const DeviceWeight& w, const float* x, int64_t n, float* y);
  Status DecodeProjections(const DeviceLayer& L, const float* x, bool biases, float* q, float* k, float* v,
                           const NormFold* norm, const RopeFold* rope, bool* rope_folded);
  Status Capture(reference::TraceSink* trace, const char* name, int layer, const float* x, int64_t rows,
                 int64_t cols);

  const Model& m_;
  Context& ctx_;
  int n_ctx_ = 0;
  int n_past_ = 0;
  SessionOptions options_;
  // Per layer, one after another: (n_layers, n_ctx, n_head_kv * head_dim) f32.
  DeviceBuffer k_cache_, v_cache_;
  // Activations for up to capacity_ tokens (row-major, one row per token).
  int64_t capacity_ = 0;
  DeviceBuffer ids_, pos_;     // (capacity) int32: token ids, positions
  DeviceBuffer x_, cur_, tmp_;  // (capacity, n_embd): residual, normed input, block output
  DeviceBuffer q_, attn_;      // (capacity, n_head * hd)
  DeviceBuffer k_, v_;         // (capacity, n_head_kv * hd)
  DeviceBuffer gate_, up_;     // (capacity, n_ff)
  DeviceBuffer act_;           // (capacity, n_ff): a one-token step's gated activation
  DeviceBuffer logits_;        // (capacity, n_vocab)
  DeviceBuffer argmax_;        // the last ArgMax (int32, 8 bytes reserved), then its scratch
  // Only with inject = kKvOffByOne: the cache row of each token, its
  // position + 1 (capacity) int32.
  DeviceBuffer store_pos_;
  // A one-token step's RopeTable for the global base, then the sliding
  // window layers' (2 * n_rot f32): RopeFold::cos_sin.
  DeviceBuffer rope_cs_;
  // Only with inject = kTransposedGemm: every square wo dequantized once,
  // (n_square_layers, n_embd, n_embd) f32, and per layer its matrix here or
  // null (a non-square wo keeps the clean product, as the reference does).
  DeviceBuffer wo_f32_;
  std::vector<const float*> wo_f32_of_layer_;
  StreamGraph graph_;          // the decode step, valid while the buffers above stay put
  bool graph_failed_ = false;  // capture was tried and failed: decode op by op
  int graph_replays_ = 0;
  std::vector<int32_t> host_pos_;
  HostReadback readback_;  // DecodeGreedy's ids, two steps' worth
};

}  // namespace ggufscope::cuda
