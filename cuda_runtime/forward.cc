// The CUDA forward pass (forward.h): the reference's Session::EvalT, op for
// op, on the device. Plain C++ over the host-facing op API (ops.h), so it
// builds unchanged without CUDA, where every op reports "built without CUDA".
#include "cuda_runtime/forward.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include "cuda_runtime/decode_ops.h"
#include "cuda_runtime/env_switch.h"
#include "cuda_runtime/fault_ops.h"
#include "cuda_runtime/ops.h"

namespace ggufscope::cuda {
namespace {

using reference::RowMatrix;

constexpr size_t kArenaAlign = 256;  // each tensor's start: enough for every op's alignment

#define GGUFSCOPE_TRY(expr)                         \
  do {                                              \
    ::ggufscope::cuda::Status ggufscope_s_ = (expr); \
    if (!ggufscope_s_.ok()) return ggufscope_s_;     \
  } while (0)

// Every tensor of the model, laid out in one device allocation.
class ArenaLayout {
 public:
  void Add(const void* host, size_t bytes, std::function<void(const uint8_t*)> place) {
    if (bytes == 0) return;
    total_ = (total_ + kArenaAlign - 1) / kArenaAlign * kArenaAlign;
    items_.push_back({host, bytes, total_, std::move(place)});
    total_ += bytes;
  }
  void AddWeight(const reference::Weight& w, DeviceWeight& d) {
    if (w.empty()) return;
    d.type = w.type();
    d.rows = w.rows();
    d.cols = w.cols();
    Add(w.RowData(0), static_cast<size_t>(w.rows()) * w.row_bytes(), [&d](const uint8_t* p) { d.data = p; });
  }
  void AddVector(const reference::Vector& v, const float*& d) {
    Add(v.data(), static_cast<size_t>(v.size()) * sizeof(float),
        [&d](const uint8_t* p) { d = reinterpret_cast<const float*>(p); });
  }
  Status Upload(Context& ctx, DeviceBuffer& arena) {
    GGUFSCOPE_TRY(arena.Allocate(ctx, total_));
    auto* base = arena.as<uint8_t>();
    for (const Item& it : items_) {
      GGUFSCOPE_TRY(CopyToDevice(ctx, base + it.offset, it.host, it.bytes));
      it.place(base + it.offset);
    }
    return {};
  }

 private:
  struct Item {
    const void* host;
    size_t bytes, offset;
    std::function<void(const uint8_t*)> place;
  };
  std::vector<Item> items_;
  size_t total_ = 0;
};

}  // namespace

gguf::Error DeviceError(const Status& status) {
  return gguf::Error{gguf::ErrorCode::kUnsupported, "CUDA", gguf::Error::kNoOffset, "a working CUDA device", status.message()};
}

bool IsDeviceError(const gguf::Error& error) {
  return error.code == gguf::ErrorCode::kUnsupported && error.field == "CUDA";
}

gguf::Result<std::unique_ptr<Model>> Model::Upload(Context& ctx, const reference::Model& m) {
  std::unique_ptr<Model> out(new Model());
  out->ctx_ = &ctx;
  out->family_ = m.family;
  out->hp_ = m.hp;
  if (m.hp.head_dim > 512) {
    return gguf::Error{gguf::ErrorCode::kUnsupported, m.arch + ".attention.key_length", gguf::Error::kNoOffset,
                       "a head dimension up to 512 (the CUDA attention kernel's limit)",
                       std::to_string(m.hp.head_dim)};
  }
  ArenaLayout layout;
  layout.AddWeight(m.tok_embd, out->tok_embd_);
  layout.AddVector(m.output_norm, out->output_norm_);
  layout.AddWeight(m.output, out->output_);
  out->layers_.resize(m.layers.size());
  for (size_t l = 0; l < m.layers.size(); ++l) {
    const reference::Layer& L = m.layers[l];
    DeviceLayer& D = out->layers_[l];
    layout.AddVector(L.attn_norm, D.attn_norm);
    layout.AddWeight(L.wq, D.wq);
    layout.AddWeight(L.wk, D.wk);
    layout.AddWeight(L.wv, D.wv);
    layout.AddWeight(L.wo, D.wo);
    layout.AddVector(L.bq, D.bq);
    layout.AddVector(L.bk, D.bk);
    layout.AddVector(L.bv, D.bv);
    layout.AddVector(L.q_norm, D.q_norm);
    layout.AddVector(L.k_norm, D.k_norm);
    layout.AddVector(L.post_attn_norm, D.post_attn_norm);
    layout.AddVector(L.post_ffn_norm, D.post_ffn_norm);
    layout.AddVector(L.ffn_norm, D.ffn_norm);
    layout.AddWeight(L.w_gate, D.w_gate);
    layout.AddWeight(L.w_up, D.w_up);
    layout.AddWeight(L.w_down, D.w_down);
  }
  if (const Status s = layout.Upload(ctx, out->arena_); !s.ok()) return DeviceError(s);
  if (m.output.empty()) out->output_ = out->tok_embd_;  // tied
  bool capturable = MatVecHasDirect(out->output_.type);
  for (const DeviceLayer& D : out->layers_) {
    for (const DeviceWeight* w : {&D.wq, &D.wk, &D.wv, &D.wo, &D.w_gate, &D.w_up, &D.w_down}) {
      capturable = capturable && MatVecHasDirect(w->type);
    }
  }
  out->decode_capturable_ = capturable;
  return out;
}

bool CanInject(reference::Fault f) {
  // Every case listed: a bug added to faults.h warns here (-Wswitch) until
  // the CUDA pass learns it.
  switch (f) {
    case reference::Fault::kNone:
    case reference::Fault::kDropQkvBias:
    case reference::Fault::kNormRopeForNeox:
    case reference::Fault::kWrongRmsEps:
    case reference::Fault::kTransposedGemm:
    case reference::Fault::kF16Softmax:
    case reference::Fault::kKvOffByOne:
    case reference::Fault::kWrongGqaMap:
      return true;
  }
  return false;
}

gguf::Result<std::unique_ptr<Session>> Session::Create(const Model& model, int n_ctx, SessionOptions options) {
  if (n_ctx <= 0) return gguf::Error{gguf::ErrorCode::kInvalidArgument, "n_ctx", gguf::Error::kNoOffset, "> 0", std::to_string(n_ctx)};
  if (!CanInject(options.inject)) {
    return gguf::Error{gguf::ErrorCode::kUnsupported, "inject", gguf::Error::kNoOffset, "a bug of reference_cpu/faults.h the CUDA pass knows",
                       fmt::format("fault #{}", static_cast<int>(options.inject))};
  }
  std::unique_ptr<Session> s(new Session(model));
  s->n_ctx_ = n_ctx;
  s->options_ = options;
  const reference::HParams& hp = model.hp();
  // n_layers <= 4096, kv_dim <= 2^20 (the loader's bounds), n_ctx < 2^31:
  // the product fits 64 bits; cudaMalloc refuses what the device lacks.
  const uint64_t kv_bytes = static_cast<uint64_t>(hp.n_layers) * static_cast<uint64_t>(n_ctx) *
                            static_cast<uint64_t>(hp.n_head_kv) * static_cast<uint64_t>(hp.head_dim) * sizeof(float);
  Status st = s->k_cache_.Allocate(model.context(), kv_bytes);
  if (st.ok()) st = s->v_cache_.Allocate(model.context(), kv_bytes);
  if (st.ok()) st = s->argmax_.Allocate(model.context(), 8 + ArgMaxScratchBytes());  // the id, then ArgMax's scratch
  if (st.ok()) st = s->PrepareFault();
  if (!st.ok()) return DeviceError(st);
  return s;
}

// What an injected fault needs before the first Eval. kKvOffByOne reads
// cache rows no token was written to (row 0 first): the reference's cache
// starts at zero, cudaMalloc's holds anything. kTransposedGemm multiplies by
// wo itself; dequantizing it to f32 once (bit-identical to the reference's
// DequantizeRows) lets a plain kernel read W[c][r] where the clean pass
// reads W[r][c], for prefill and decode alike, graph capture included.
Status Session::PrepareFault() {
  const reference::HParams& hp = m_.hp();
  if (options_.inject == reference::Fault::kKvOffByOne) {
    const int64_t n = static_cast<int64_t>(k_cache_.size() / sizeof(float));
    GGUFSCOPE_TRY(ZeroFill(ctx_, k_cache_.as<float>(), n));
    GGUFSCOPE_TRY(ZeroFill(ctx_, v_cache_.as<float>(), n));
  }
  if (options_.inject == reference::Fault::kTransposedGemm) {
    const auto square = [](const DeviceWeight& w) { return w.data != nullptr && w.rows == w.cols; };
    uint64_t n_square = 0;
    for (const DeviceLayer& L : m_.layers()) n_square += square(L.wo) ? 1 : 0;
    // n_embd <= 2^20 and n_layers <= 4096 (the loader's bounds): no overflow.
    const uint64_t per_layer = static_cast<uint64_t>(hp.n_embd) * static_cast<uint64_t>(hp.n_embd);
    GGUFSCOPE_TRY(wo_f32_.Allocate(ctx_, n_square * per_layer * sizeof(float)));
    wo_f32_of_layer_.assign(m_.layers().size(), nullptr);
    float* next = wo_f32_.as<float>();
    for (size_t l = 0; l < m_.layers().size(); ++l) {
      const DeviceWeight& wo = m_.layers()[l].wo;
      if (!square(wo)) continue;
      GGUFSCOPE_TRY(Dequantize(ctx_, wo.type, wo.data, wo.rows * wo.cols, next));
      wo_f32_of_layer_[l] = next;
      next += wo.rows * wo.cols;
    }
  }
  return {};
}

Status Session::Reserve(int64_t n) {
  if (n <= capacity_) return {};
  graph_.Reset();  // the captured step reads the buffers about to move
  const reference::HParams& hp = m_.hp();
  const auto f32 = [n](int64_t width) { return static_cast<size_t>(n * width) * sizeof(float); };
  const int64_t q_dim = int64_t{hp.n_head} * hp.head_dim, kv_dim = int64_t{hp.n_head_kv} * hp.head_dim;
  GGUFSCOPE_TRY(ids_.Allocate(ctx_, static_cast<size_t>(n) * sizeof(int32_t)));
  GGUFSCOPE_TRY(pos_.Allocate(ctx_, static_cast<size_t>(n) * sizeof(int32_t)));
  GGUFSCOPE_TRY(x_.Allocate(ctx_, f32(hp.n_embd)));
  GGUFSCOPE_TRY(cur_.Allocate(ctx_, f32(hp.n_embd)));
  GGUFSCOPE_TRY(tmp_.Allocate(ctx_, f32(hp.n_embd)));
  GGUFSCOPE_TRY(q_.Allocate(ctx_, f32(q_dim)));
  GGUFSCOPE_TRY(attn_.Allocate(ctx_, f32(q_dim)));
  GGUFSCOPE_TRY(k_.Allocate(ctx_, f32(kv_dim)));
  GGUFSCOPE_TRY(v_.Allocate(ctx_, f32(kv_dim)));
  GGUFSCOPE_TRY(gate_.Allocate(ctx_, f32(hp.n_ff)));
  GGUFSCOPE_TRY(up_.Allocate(ctx_, f32(hp.n_ff)));
  GGUFSCOPE_TRY(act_.Allocate(ctx_, f32(hp.n_ff)));
  GGUFSCOPE_TRY(logits_.Allocate(ctx_, f32(hp.n_vocab)));
  if (options_.inject == reference::Fault::kKvOffByOne) {
    GGUFSCOPE_TRY(store_pos_.Allocate(ctx_, static_cast<size_t>(n) * sizeof(int32_t)));
  }
  if (rope_cs_.data() == nullptr && hp.n_rot > 0) {
    GGUFSCOPE_TRY(rope_cs_.Allocate(ctx_, static_cast<size_t>(2 * hp.n_rot) * sizeof(float)));
  }
  capacity_ = n;
  return {};
}

// The reference's input errors (token ids, a full context), found before
// anything runs.
std::optional<gguf::Error> Session::CheckInput(std::span<const int32_t> tokens) const {
  const int n = static_cast<int>(tokens.size());
  if (n == 0 || n_past_ + n > n_ctx_) {
    return gguf::Error{gguf::ErrorCode::kInvalidArgument, "tokens", gguf::Error::kNoOffset, fmt::format("1..{} tokens", n_ctx_ - n_past_),
                       std::to_string(n)};
  }
  for (int i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= m_.hp().n_vocab) {
      return gguf::Error{gguf::ErrorCode::kInvalidArgument, fmt::format("token[{}]", i), gguf::Error::kNoOffset,
                         fmt::format("an id below {}", m_.hp().n_vocab), std::to_string(tokens[i])};
    }
  }
  return std::nullopt;
}

// What Eval and EvalArgmax share after the checks: positions, then the
// forward pass (a replayed graph for an untraced one-token step, which
// always ends with the argmax; otherwise the argmax only if asked for).
// The logits stay on the device.
Status Session::Run(std::span<const int32_t> tokens, bool all_logits, reference::TraceSink* trace, bool argmax) {
  const int n = static_cast<int>(tokens.size());
  GGUFSCOPE_TRY(Reserve(n));
  host_pos_.resize(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) host_pos_[static_cast<size_t>(i)] = n_past_ + i;
  GGUFSCOPE_TRY(CopyToDevice(ctx_, ids_.data(), tokens.data(), tokens.size_bytes()));
  GGUFSCOPE_TRY(CopyToDevice(ctx_, pos_.data(), host_pos_.data(), host_pos_.size() * sizeof(int32_t)));
  if (options_.inject == reference::Fault::kKvOffByOne) {
    // The copy above has finished (blocking): host_pos_ can become the rows
    // the keys and values are stored at, one past their positions.
    for (int32_t& p : host_pos_) ++p;
    GGUFSCOPE_TRY(CopyToDevice(ctx_, store_pos_.data(), host_pos_.data(), host_pos_.size() * sizeof(int32_t)));
  }
  const bool graph = options_.cuda_graph && n == 1 && trace == nullptr && m_.decode_capturable() && !graph_failed_;
  if (graph) return DecodeGraphStep();
  GGUFSCOPE_TRY(Forward(n, all_logits, trace));
  return argmax ? LastArgMax(all_logits ? n - 1 : 0) : Status{};
}

gguf::Result<RowMatrix> Session::Eval(std::span<const int32_t> tokens, bool all_logits,
                                      reference::TraceSink* trace) {
  if (std::optional<gguf::Error> bad = CheckInput(tokens)) return *bad;
  Status st = Run(tokens, all_logits, trace, /*argmax=*/false);
  const int rows = all_logits ? static_cast<int>(tokens.size()) : 1;
  RowMatrix logits(rows, m_.hp().n_vocab);
  if (st.ok()) st = CopyToHost(ctx_, logits.data(), logits_.data(), static_cast<size_t>(logits.size()) * sizeof(float));
  if (!st.ok()) return DeviceError(st);
  n_past_ += static_cast<int>(tokens.size());
  return logits;
}

gguf::Result<int32_t> Session::EvalArgmax(std::span<const int32_t> tokens) {
  if (std::optional<gguf::Error> bad = CheckInput(tokens)) return *bad;
  Status st = Run(tokens, false, nullptr, /*argmax=*/true);
  int32_t id = 0;
  if (st.ok()) st = CopyToHost(ctx_, &id, argmax_.data(), sizeof(int32_t));
  if (!st.ok()) return DeviceError(st);
  n_past_ += static_cast<int>(tokens.size());
  return id;
}

// ArgMax of logits row `row` into argmax_ (its first 8 bytes; the op's
// scratch follows); with `feed`, also the next step's token and position
// into ids_[0] and pos_[0] (DecodeGraphStep).
Status Session::LastArgMax(int64_t row, bool feed) {
  const int64_t V = m_.hp().n_vocab;
  return ArgMax(ctx_, logits_.as<float>() + row * V, V, argmax_.as<uint8_t>() + 8, argmax_.as<int32_t>(),
                feed ? ids_.as<int32_t>() : nullptr, feed ? pos_.as<int32_t>() : nullptr);
}

// The first one-token step is recorded, then every step replays it: the
// ids and positions it reads were copied to the same device buffers, and
// the attention kernel reads its key count from the positions. If recording
// fails (some op that cannot be captured), the session decodes op by op.
// The recorded step ends with the argmax, which also writes the next step's
// input: its id into ids_[0] and the position + 1 into pos_[0], so that
// DecodeGreedy can replay the graph again without copying anything in. (A
// step through Run copies both from the host first, blocking, so nothing
// it launches overlaps those writes.)
Status Session::DecodeGraphStep() {
  const auto step = [this]() -> Status {
    GGUFSCOPE_TRY(Forward(1, false, nullptr));
    return LastArgMax(0, /*feed=*/true);
  };
  if (!graph_.ready()) {
    if (!graph_.BeginCapture(ctx_).ok()) {
      graph_failed_ = true;
      return step();
    }
    const Status recorded = step();
    const Status ended = graph_.EndCapture(ctx_, recorded.ok());
    if (!recorded.ok() || !ended.ok()) {
      graph_failed_ = true;
      graph_.Reset();
      return step();
    }
  }
  return LaunchGraph();
}

Status Session::LaunchGraph() {
  GGUFSCOPE_TRY(graph_.Launch(ctx_));
  ++graph_replays_;
  return {};
}

gguf::Result<std::vector<int32_t>> Session::DecodeGreedy(int32_t token, int n, std::span<const int32_t> stop,
                                                         const std::function<void(int32_t)>& on_token) {
  std::vector<int32_t> out;
  if (n <= 0) return out;
  const int32_t first[1] = {token};
  if (std::optional<gguf::Error> bad = CheckInput(first)) return *bad;
  if (n > n_ctx_ - n_past_) {
    return gguf::Error{gguf::ErrorCode::kInvalidArgument, "n", gguf::Error::kNoOffset, fmt::format("at most {} steps", n_ctx_ - n_past_),
                       std::to_string(n)};
  }
  const auto emit = [&](int32_t id) {  // true: stop here
    out.push_back(id);
    if (on_token) on_token(id);
    return std::find(stop.begin(), stop.end(), id) != stop.end() || static_cast<int>(out.size()) == n;
  };
  // The EvalArgmax loop: without the graph, or where a fault is injected.
  const auto host_loop = [&](int32_t in) -> gguf::Result<std::vector<int32_t>> {
    while (static_cast<int>(out.size()) < n) {
      gguf::Result<int32_t> id = EvalArgmax(std::span<const int32_t>(&in, 1));
      if (!id.ok()) return id.error();
      if (emit(*id)) break;
      in = *id;
    }
    return std::move(out);
  };
  if (!options_.cuda_graph || !m_.decode_capturable() || graph_failed_ ||
      options_.inject != reference::Fault::kNone) {
    return host_loop(token);
  }
  if (readback_.slots() == 0) {
    if (Status st = readback_.Create(ctx_, 2); !st.ok()) return DeviceError(st);
  }
  // Step 0 through Run: the token and position copied in, the graph
  // recorded if it is not yet.
  if (Status st = Run(first, false, nullptr, /*argmax=*/true); !st.ok()) return DeviceError(st);
  if (!graph_.ready()) {  // recording failed: that step ran op by op
    int32_t id = 0;
    if (Status st = CopyToHost(ctx_, &id, argmax_.data(), sizeof(int32_t)); !st.ok()) return DeviceError(st);
    ++n_past_;
    if (emit(id)) return out;
    return host_loop(id);
  }
  // Step i's id goes to slot i % 2; step i + 1 is launched before step i's
  // id is waited for, so the device never waits for the host.
  const int start = n_past_;
  int launched = 1;
  Status st = readback_.Queue(ctx_, 0, argmax_.as<int32_t>());
  for (int i = 0; st.ok(); ++i) {
    if (launched < n) {
      st = LaunchGraph();
      if (st.ok()) st = readback_.Queue(ctx_, launched % 2, argmax_.as<int32_t>());
      if (!st.ok()) break;
      ++launched;
    }
    int32_t id = 0;
    st = readback_.Wait(i % 2, &id);
    if (!st.ok()) break;
    n_past_ = start + i + 1;  // a step past the last id read leaves its cache row beyond n_past_
    if (emit(id)) return out;
  }
  return DeviceError(st);
}

// The q, k and v projections of one token, their biases added: matrices of
// one type share a launch (MatVecParts), so a layer takes one to three.
// With `norm`, of RmsNorm(x): folded into every launch when all of them
// fold it (NormFold), else RmsNorm once into norm->normed, which they read.
// With `rope` (roles ignored), QkvPost's rotation and cache stores too when
// every launch can fold them (RopeFold: the q and k parts on the tensor
// cores); *rope_folded says whether they did, else QkvPost must follow.
Status Session::DecodeProjections(const DeviceLayer& L, const float* x, bool biases, float* q, float* k, float* v,
                                  const NormFold* norm, const RopeFold* rope, bool* rope_folded) {
  const DeviceWeight* w[3] = {&L.wq, &L.wk, &L.wv};
  const float* b[3] = {L.bq, L.bk, L.bv};
  float* y[3] = {q, k, v};
  constexpr PartRole kRoles[3] = {PartRole::kRotate, PartRole::kRotateStore, PartRole::kStore};
  // Launch groups: [start[g], start[g + 1]) share a type.
  int start[4] = {0}, n_groups = 0;
  for (int i = 1; i <= 3; ++i) {
    if (i == 3 || w[i]->type != w[i - 1]->type) start[++n_groups] = i;
  }
  // Whether `folds(first weight, matrices, count, rows, first index)` holds
  // for every launch group.
  const auto every_group = [&](auto&& folds) {
    for (int g = 0; g < n_groups; ++g) {
      const void* wg[3] = {};
      int64_t rows = 0;
      for (int i = start[g]; i < start[g + 1]; ++i) {
        wg[i - start[g]] = w[i]->data;
        rows += w[i]->rows;
      }
      if (!folds(*w[start[g]], wg, start[g + 1] - start[g], rows, start[g])) return false;
    }
    return true;
  };
  // Groups holding q or k rotate; a group of v alone only stores.
  *rope_folded = rope != nullptr && every_group([&](const DeviceWeight& w0, const void* const* wg, int n,
                                                    int64_t rows, int first) {
    return MatVecFoldsRope(ctx_, w0.type, w0.cols, wg, n, rows, /*rotates=*/first < 2);
  });
  if (norm != nullptr && !every_group([&](const DeviceWeight& w0, const void* const* wg, int n, int64_t rows, int) {
        return MatVecFoldsNorm(ctx_, w0.type, w0.cols, wg, n, rows);
      })) {
    GGUFSCOPE_TRY(RmsNorm(ctx_, x, norm->w, 1, L.wq.cols, norm->eps, norm->normed));
    x = norm->normed;
    norm = nullptr;
  }
  for (int g = 0; g < n_groups; ++g) {
    MatVecPart parts[3];
    RopeFold group_rope = *rope_folded ? *rope : RopeFold{};
    for (int i = start[g]; i < start[g + 1]; ++i) {
      parts[i - start[g]] = MatVecPart{w[i]->data, w[i]->rows, y[i], biases ? b[i] : nullptr};
      group_rope.role[i - start[g]] = kRoles[i];
    }
    GGUFSCOPE_TRY(MatVecParts(ctx_, w[start[g]]->type, w[start[g]]->cols, x, parts, start[g + 1] - start[g], norm,
                              *rope_folded ? &group_rope : nullptr));
  }
  return {};
}

Status Session::Linear(const DeviceWeight& w, const float* x, int64_t n, float* y) {
  if (n == 1) return MatVec(ctx_, w.type, w.data, w.rows, w.cols, x, y);
  return Gemm(ctx_, w.type, w.data, w.rows, w.cols, x, n, y, options_.prefill_math);
}

Status Session::Capture(reference::TraceSink* trace, const char* name, int layer, const float* x, int64_t rows,
                        int64_t cols) {
  if (trace == nullptr) return {};
  RowMatrix host(rows, cols);
  GGUFSCOPE_TRY(CopyToHost(ctx_, host.data(), x, static_cast<size_t>(host.size()) * sizeof(float)));
  trace->Capture(name, layer, host);
  return {};
}

// Session::EvalT of reference_cpu/forward.cc, op for op (same order, same
// trace points); only the summation order inside each op differs.
Status Session::Forward(int n, bool all_logits, reference::TraceSink* trace) {
  const reference::HParams& hp = m_.hp();
  const reference::Family& fam = m_.family();
  const int64_t E = hp.n_embd, F = hp.n_ff, V = hp.n_vocab, hd = hp.head_dim;
  const int64_t q_dim = hp.n_head * hd, kv_dim = hp.n_head_kv * hd;
  const int32_t* ids = ids_.as<int32_t>();
  const int32_t* pos = pos_.as<int32_t>();
  float *x = x_.as<float>(), *cur = cur_.as<float>(), *tmp = tmp_.as<float>();
  float *q = q_.as<float>(), *k = k_.as<float>(), *v = v_.as<float>(), *attn = attn_.as<float>();
  float *gate = gate_.as<float>(), *up = up_.as<float>(), *logits = logits_.as<float>();
  const reference::Fault fault = options_.inject;
  const float eps = fault == reference::Fault::kWrongRmsEps ? 1e-2f : hp.rms_eps;
  const int32_t* store_pos = fault == reference::Fault::kKvOffByOne ? store_pos_.as<int32_t>() : pos;
  const AttentionFaults attn_faults{.f16_exp = fault == reference::Fault::kF16Softmax,
                                    .kv_head_modulo = fault == reference::Fault::kWrongGqaMap};

  const DeviceWeight& emb = m_.tok_embd();
  GGUFSCOPE_TRY(GetRows(ctx_, emb.type, emb.data, emb.rows, emb.cols, ids, n, x));
  if (fam.embed_scale) GGUFSCOPE_TRY(Scale(ctx_, x, n * E, std::sqrt(static_cast<float>(hp.n_embd)), x));
  GGUFSCOPE_TRY(Capture(trace, "inp_embd", -1, x, n, E));
  const float kq_scale = hp.attn_scale > 0 ? hp.attn_scale : 1.0f / std::sqrt(static_cast<float>(hd));
  const bool swap_rope = fault == reference::Fault::kNormRopeForNeox;
  const RopeMode rope = (fam.rope == reference::RopeType::kNorm) != swap_rope ? RopeMode::kNorm : RopeMode::kNeox;
  const GluKind glu = fam.act == reference::Activation::kSilu ? GluKind::kSwiglu : GluKind::kGegluTanh;
  // A one-token step takes the fused products (ops.h): the unfused ops'
  // arithmetic up to f32 summation order, in fewer launches.
  const bool decode = n == 1;
  // Post-norm families end each block with RmsNormResidual; the next
  // block's pre-norm joins it in one launch (RmsNormResidualNorm), the same
  // values: `normed` says cur already holds this layer's attn_norm output.
  // The output norm joins the last one when it reads every row.
  const int rows = all_logits ? n : 1;
  // A one-token step without a trace folds each pre-norm of a pre-norm
  // family into the one launch that reads it (NormFold: on the tensor cores
  // no normed copy is written; elsewhere RmsNorm runs into cur first). Its
  // values are RmsNorm's then the product's, up to f32 rounding order.
  // GGUFSCOPE_FOLD_NORM: which pre-norms fold (benchmarking switch; bits 1
  // attn_norm, 2 ffn_norm, 4 output_norm; unset: all).
  static const int fold_mask = static_cast<int>(EnvSwitchInt("GGUFSCOPE_FOLD_NORM", 7, 0, 7));
  const bool fold_norms = decode && trace == nullptr && !fam.post_norms;
  // SessionOptions::skip_ops (benchmarking only): launches left out.
  const unsigned skip = decode && trace == nullptr ? options_.skip_ops : 0u;
  const auto keep = [skip](unsigned op) { return (skip & op) == 0; };
  // A one-token step without a trace folds QkvPost into the q/k/v products
  // where it has no q/k norms and the products can take it (RopeFold:
  // bit-identical to QkvPost; the 7B shapes' q/k on the tensor cores).
  // GGUFSCOPE_FOLD_ROPE=0 keeps QkvPost's own launch (benchmarking switch).
  static const bool fold_rope_on = EnvSwitchOn("GGUFSCOPE_FOLD_ROPE");
  // (RopeFold pairs a head's rows two by two, so it needs an even head_dim;
  // QkvPost takes an odd one, which the loader allows beside an even
  // rope dimension.)
  const bool fold_rope =
      fold_rope_on && decode && trace == nullptr && !fam.qk_norm && hd % 2 == 0 && keep(kSkipQkvPost);
  // The folds' angles, once a step for each base the layers use (RopeTable:
  // the values each fold would compute). GGUFSCOPE_ROPE_TABLE=0: each fold
  // computes its own (benchmarking switch).
  static const bool rope_table_on = EnvSwitchOn("GGUFSCOPE_ROPE_TABLE");
  const float* rope_cs[2] = {nullptr, nullptr};  // [swa]
  if (fold_rope && rope_table_on && hp.n_rot > 0 && hp.n_rot % 2 == 0 && hp.n_rot <= hd) {
    bool any_swa = false;
    for (int l = 0; l < hp.n_layers; ++l) any_swa = any_swa || reference::IsSlidingWindowLayer(fam, hp, l);
    float* cs = rope_cs_.as<float>();
    GGUFSCOPE_TRY(RopeTable(ctx_, pos, hp.n_rot, hp.rope_base, cs));
    rope_cs[0] = cs;
    if (any_swa) {
      GGUFSCOPE_TRY(RopeTable(ctx_, pos, hp.n_rot, fam.rope_base_swa, cs + hp.n_rot));
      rope_cs[1] = cs + hp.n_rot;
    }
  }
  bool normed = false;
  for (int l = 0; l < hp.n_layers; ++l) {
    const DeviceLayer& L = m_.layers()[static_cast<size_t>(l)];
    const bool fold_attn_norm = fold_norms && (fold_mask & 1) && !normed;
    if (!normed && !fold_attn_norm && keep(kSkipQkv)) GGUFSCOPE_TRY(RmsNorm(ctx_, x, L.attn_norm, n, E, eps, cur));
    normed = false;
    GGUFSCOPE_TRY(Capture(trace, "attn_norm", l, cur, n, E));
    const bool biases = fault != reference::Fault::kDropQkvBias;
    // The reference's rule: sliding-window layers see the last n_swa
    // positions and rotate with their own base.
    const bool swa = reference::IsSlidingWindowLayer(fam, hp, l);
    const float base = swa ? fam.rope_base_swa : hp.rope_base;
    const size_t layer_off = static_cast<size_t>(l) * static_cast<size_t>(n_ctx_) * static_cast<size_t>(kv_dim);
    float* kc = k_cache_.as<float>() + layer_off;
    float* vc = v_cache_.as<float>() + layer_off;
    const RopeFold rope_fold{.role = {},
                             .positions = pos,
                             .store_rows = store_pos,
                             .k_cache = kc,
                             .v_cache = vc,
                             .n_cache_rows = n_ctx_,
                             .head_dim = static_cast<int>(hd),
                             .n_rot = hp.n_rot,
                             .base = base,
                             .mode = rope,
                             .cos_sin = rope_cs[swa ? 1 : 0]};
    bool rope_folded = false;
    if (!keep(kSkipQkv)) {  // left out (benchmarking)
    } else if (fold_attn_norm) {
      const NormFold fold{L.attn_norm, eps, cur};
      GGUFSCOPE_TRY(DecodeProjections(L, x, biases, q, k, v, &fold, fold_rope ? &rope_fold : nullptr, &rope_folded));
    } else if (decode) {  // the projections (and biases) in as few launches as their types allow
      GGUFSCOPE_TRY(
          DecodeProjections(L, cur, biases, q, k, v, nullptr, fold_rope ? &rope_fold : nullptr, &rope_folded));
    } else {
      GGUFSCOPE_TRY(Linear(L.wq, cur, n, q));
      GGUFSCOPE_TRY(Linear(L.wk, cur, n, k));
      GGUFSCOPE_TRY(Linear(L.wv, cur, n, v));
      if (biases) {
        if (L.bq != nullptr) GGUFSCOPE_TRY(Add(ctx_, q, L.bq, n, q_dim, 1, q));
        if (L.bk != nullptr) GGUFSCOPE_TRY(Add(ctx_, k, L.bk, n, kv_dim, 1, k));
        if (L.bv != nullptr) GGUFSCOPE_TRY(Add(ctx_, v, L.bv, n, kv_dim, 1, v));
      }
    }
    // Per-head q/k norms (qk_norm families), RoPE, and the new keys and
    // values into the cache, in one launch (decode_ops.h: bit-identical to
    // RmsNorm, Rope and StoreRows in sequence), unless the products folded
    // it. kKvOffByOne stores each row one past its position; a row that
    // falls past the cache is skipped, as the reference drops it.
    if (!rope_folded && keep(kSkipQkvPost)) {
      GGUFSCOPE_TRY(QkvPost(ctx_, q, k, v, pos, store_pos, n, hp.n_head, hp.n_head_kv, hp.head_dim, hp.n_rot, base,
                            rope, fam.qk_norm ? L.q_norm : nullptr, fam.qk_norm ? L.k_norm : nullptr, eps, kc, vc,
                            n_ctx_));
    }
    GGUFSCOPE_TRY(Capture(trace, "Qcur", l, q, n, q_dim));
    GGUFSCOPE_TRY(Capture(trace, "Kcur", l, k, n, kv_dim));
    GGUFSCOPE_TRY(Capture(trace, "Vcur", l, v, n, kv_dim));
    if (attn_faults.f16_exp || attn_faults.kv_head_modulo) {
      GGUFSCOPE_TRY(FaultyAttention(ctx_, q, kc, vc, n_ctx_, pos, n, hp.n_head, hp.n_head_kv, hp.head_dim, kq_scale,
                                    swa ? hp.n_swa : 0, attn_faults, attn));
    } else if (keep(kSkipAttention)) {
      GGUFSCOPE_TRY(Attention(ctx_, q, kc, vc, n_ctx_, pos, n, hp.n_head, hp.n_head_kv, hp.head_dim, kq_scale,
                              swa ? hp.n_swa : 0, attn));
    }
    GGUFSCOPE_TRY(Capture(trace, "kqv_out", l, attn, n, q_dim));
    const float* wo_f32 = wo_f32_of_layer_.empty() ? nullptr : wo_f32_of_layer_[static_cast<size_t>(l)];
    // A one-token step adds the residual in the product's epilogue (x +=
    // W a, with W a kept in tmp for the trace) unless a norm comes between.
    const bool fold_residual = decode && !fam.post_norms;
    if (wo_f32 != nullptr) {
      GGUFSCOPE_TRY(MatMulUntransposed(ctx_, wo_f32, E, attn, n, tmp));  // kTransposedGemm: attn * W
    } else if (fold_residual) {
      if (keep(kSkipAttnOut)) {
        GGUFSCOPE_TRY(MatVecResidual(ctx_, L.wo.type, L.wo.data, L.wo.rows, L.wo.cols, attn, x, tmp, x));
      }
    } else {
      GGUFSCOPE_TRY(Linear(L.wo, attn, n, tmp));
    }
    const bool glu_fused =
        decode && L.w_gate.type == L.w_up.type && L.w_gate.rows == L.w_up.rows && L.w_gate.cols == L.w_up.cols;
    const bool fold_ffn_norm = fold_norms && (fold_mask & 2) && glu_fused;
    if (fam.post_norms) {  // the post-norm, the residual add with it, the ffn pre-norm
      GGUFSCOPE_TRY(RmsNormResidualNorm(ctx_, tmp, L.post_attn_norm, n, E, eps, tmp, x, L.ffn_norm, cur));
    } else {
      if (!fold_residual || wo_f32 != nullptr) GGUFSCOPE_TRY(Add(ctx_, x, tmp, n, E, n, x));
      if (!fold_ffn_norm && keep(kSkipGateUp)) GGUFSCOPE_TRY(RmsNorm(ctx_, x, L.ffn_norm, n, E, eps, cur));
    }
    GGUFSCOPE_TRY(Capture(trace, "attn_out", l, tmp, n, E));
    GGUFSCOPE_TRY(Capture(trace, "ffn_inp", l, x, n, E));
    GGUFSCOPE_TRY(Capture(trace, "ffn_norm", l, cur, n, E));
    // act: the gated activation, into its own buffer on a one-token step
    // (gate and up stay for the trace), in place over gate otherwise.
    float* act = gate;
    if (glu_fused) {
      act = act_.as<float>();
      const NormFold fold{L.ffn_norm, eps, cur};
      if (keep(kSkipGateUp)) {
        GGUFSCOPE_TRY(MatVecGlu(ctx_, L.w_gate.type, L.w_gate.data, L.w_up.data, F, E, fold_ffn_norm ? x : cur, glu,
                                gate, up, act, fold_ffn_norm ? &fold : nullptr));
      }
      GGUFSCOPE_TRY(Capture(trace, "ffn_gate", l, gate, n, F));
      GGUFSCOPE_TRY(Capture(trace, "ffn_up", l, up, n, F));
    } else {
      GGUFSCOPE_TRY(Linear(L.w_gate, cur, n, gate));
      GGUFSCOPE_TRY(Linear(L.w_up, cur, n, up));
      GGUFSCOPE_TRY(Capture(trace, "ffn_gate", l, gate, n, F));
      GGUFSCOPE_TRY(Capture(trace, "ffn_up", l, up, n, F));
      GGUFSCOPE_TRY(Glu(ctx_, glu, gate, up, n * F, gate));
    }
    if (fold_residual) {
      if (keep(kSkipDown)) {
        GGUFSCOPE_TRY(
            MatVecResidual(ctx_, L.w_down.type, L.w_down.data, L.w_down.rows, L.w_down.cols, act, x, tmp, x));
      }
    } else {
      GGUFSCOPE_TRY(Linear(L.w_down, act, n, tmp));
    }
    if (fam.post_norms) {
      const bool last = l + 1 == hp.n_layers;
      const float* next_norm = last ? m_.output_norm() : m_.layers()[static_cast<size_t>(l) + 1].attn_norm;
      if (!last || rows == n) {
        GGUFSCOPE_TRY(RmsNormResidualNorm(ctx_, tmp, L.post_ffn_norm, n, E, eps, tmp, x, next_norm, cur));
        normed = true;
      } else {
        GGUFSCOPE_TRY(RmsNormResidual(ctx_, tmp, L.post_ffn_norm, n, E, eps, tmp, x));
      }
    } else if (!fold_residual) {
      GGUFSCOPE_TRY(Add(ctx_, x, tmp, n, E, n, x));
    }
    GGUFSCOPE_TRY(Capture(trace, "ffn_out", l, tmp, n, E));
    GGUFSCOPE_TRY(Capture(trace, "l_out", l, x, n, E));
  }
  // The output head on every row (all_logits) or the last; its input is
  // normed into `cur` (whose start is 16-byte aligned as MatVec needs), or
  // on a folding step the norm joins the head's launch.
  const DeviceWeight& out = m_.output();
  if (!keep(kSkipOutput)) {  // left out (benchmarking)
  } else if (fold_norms && (fold_mask & 4) && !normed && rows == 1) {
    const NormFold fold{m_.output_norm(), eps, cur};
    const MatVecPart part{out.data, out.rows, logits, nullptr};
    GGUFSCOPE_TRY(MatVecParts(ctx_, out.type, out.cols, x + (n - rows) * E, &part, 1, &fold));
  } else {
    if (!normed) GGUFSCOPE_TRY(RmsNorm(ctx_, x + (n - rows) * E, m_.output_norm(), rows, E, eps, cur));
    GGUFSCOPE_TRY(Capture(trace, "result_norm", -1, cur, rows, E));
    GGUFSCOPE_TRY(Linear(out, cur, rows, logits));
  }
  if (hp.final_softcap > 0) GGUFSCOPE_TRY(Softcap(ctx_, logits, rows * V, hp.final_softcap, logits));
  GGUFSCOPE_TRY(Capture(trace, "result_output", -1, logits, rows, V));
  return {};
}

#undef GGUFSCOPE_TRY

}  // namespace ggufscope::cuda
