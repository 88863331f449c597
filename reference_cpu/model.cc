#include "reference_cpu/model.h"

#include <fmt/format.h>

#include "gguf/arch.h"
#include "gguf/dequant.h"
#include "gguf/mapping.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <tuple>

namespace ggufscope::reference {
namespace {

using gguf::Error;
using gguf::ErrorCode;
using gguf::GgufFile;

// The tensor `name` if it holds exactly rows x cols elements with rows of
// `cols`; checked before anything is allocated, so hostile hyper-parameters
// cannot ask for memory the file does not back.
gguf::Result<const gguf::TensorInfo*> Expect(const GgufFile& f, const std::string& name, int64_t rows, int64_t cols) {
  const gguf::TensorInfo* t = f.FindTensor(name);
  if (t == nullptr) return Error{ErrorCode::kUnsupported, "tensor '" + name + "'", Error::kNoOffset, "present", "absent"};
  const uint64_t n = static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols);
  if (t->ne[0] != cols || t->n_elements != n) {
    return Error{ErrorCode::kBadDims, "tensor '" + name + "'", t->info_offset, fmt::format("{} x {}", cols, rows),
                 fmt::format("{} elements, ne0 {}", t->n_elements, t->ne[0])};
  }
  return t;
}

gguf::Status Fill(const GgufFile& f, const gguf::TensorInfo& t, float* out) {
  return gguf::Dequantize(t.type, f.TensorData(t), t.n_elements, std::span<float>(out, t.n_elements));
}

// Matrices stay in the file: a view of their bytes, kept alive by `owner`.
gguf::Status LoadMatrix(const GgufFile& f, const std::string& name, int64_t rows, int64_t cols, Weight& m,
                        const std::shared_ptr<const gguf::Mapping>& owner) {
  gguf::Result<const gguf::TensorInfo*> t = Expect(f, name, rows, cols);
  if (!t.ok()) return t.error();
  const gguf::TensorInfo& ti = **t;
  if (!gguf::CanDequantize(ti.type) || cols % gguf::Traits(ti.type).block_size != 0) {
    return Error{ErrorCode::kBadDims, "tensor '" + name + "'", ti.info_offset,
                 "rows that are whole blocks of a known type", fmt::format("{} columns", cols)};
  }
  m = Weight(ti.type, rows, cols, f.TensorData(ti), owner);
  return {};
}

gguf::Status LoadVector(const GgufFile& f, const std::string& name, int64_t n, Vector& v) {
  gguf::Result<const gguf::TensorInfo*> t = Expect(f, name, 1, n);
  if (!t.ok()) return t.error();
  v.resize(n);
  return Fill(f, **t, v.data());
}

}  // namespace

gguf::Result<std::unique_ptr<Model>> LoadModel(const GgufFile& f) {
  if (f.mapping() == nullptr) {
    // The weights will be views into the file's bytes; bytes the caller owns
    // are copied once so the model can outlive them.
    gguf::Result<GgufFile> copy = GgufFile::Parse(gguf::OwnBytes(std::vector<uint8_t>(f.bytes().begin(), f.bytes().end())));
    if (!copy.ok()) return copy.error();
    return LoadModel(*copy);
  }
  auto m = std::make_unique<Model>();
  const gguf::HParams g = gguf::ReadHParams(f);
  m->arch = g.arch;
  Family& fam = m->family;
  fam.rope = gguf::RopeKindForArch(m->arch) == gguf::RopeKind::kNorm ? RopeType::kNorm : RopeType::kNeox;
  if (m->arch == "llama") {
    // the defaults: SwiGLU, no biases, no extra norms
  } else if (m->arch == "qwen2") {
    fam.qkv_bias = true;
  } else if (m->arch == "qwen3") {
    fam.qk_norm = true;
  } else if (m->arch == "gemma3") {
    fam.act = Activation::kGeluTanh;
    fam.qk_norm = fam.post_norms = fam.embed_scale = true;
    fam.swa_pattern = 6;
  } else {
    return Error{ErrorCode::kUnsupported, "general.architecture", Error::kNoOffset, "llama, qwen2, qwen3 or gemma3", m->arch};
  }
  if (!g.n_layers || !g.n_embd || !g.n_ff || !g.n_head || !g.n_head_kv || !g.head_dim_k || !g.n_vocab ||
      g.n_ff_per_layer || g.n_head_per_layer) {
    return Error{ErrorCode::kUnsupported, m->arch + ".*", Error::kNoOffset, "every hyper-parameter, uniform over layers",
                 "missing or per-layer values"};
  }
  // Bounds that every real model sits far inside; beyond them the int
  // arithmetic of the forward pass could overflow.
  constexpr uint64_t kMaxDim = uint64_t{1} << 20, kMaxLayers = 4096, kMaxVocab = uint64_t{1} << 24;
  for (const auto& [v, limit, key] :
       {std::tuple{*g.n_layers, kMaxLayers, "block_count"}, std::tuple{*g.n_embd, kMaxDim, "embedding_length"},
        std::tuple{*g.n_ff, kMaxDim, "feed_forward_length"}, std::tuple{*g.n_head, kMaxDim, "attention.head_count"},
        std::tuple{*g.n_head_kv, kMaxDim, "attention.head_count_kv"},
        std::tuple{*g.head_dim_k, kMaxDim, "attention.key_length"}, std::tuple{*g.n_vocab, kMaxVocab, "vocab"}}) {
    if (v == 0 || v > limit) {
      return Error{ErrorCode::kUnsupported, m->arch + "." + key, Error::kNoOffset, fmt::format("1..{}", limit), std::to_string(v)};
    }
  }
  if (*g.n_head % *g.n_head_kv != 0 || *g.n_head * *g.head_dim_k > kMaxDim ||
      (g.rope_dims && (*g.rope_dims > *g.head_dim_k || *g.rope_dims % 2 != 0))) {
    return Error{ErrorCode::kUnsupported, m->arch + ".attention", Error::kNoOffset,
                 "head_count a multiple of head_count_kv, n_head*head_dim <= 2^20, an even rope dimension <= head_dim",
                 fmt::format("{} heads, {} KV heads, head_dim {}, rope dims {}", *g.n_head, *g.n_head_kv,
                             *g.head_dim_k, g.rope_dims.value_or(0))};
  }
  HParams& hp = m->hp;
  hp.n_layers = static_cast<int>(*g.n_layers);
  hp.n_embd = static_cast<int>(*g.n_embd);
  hp.n_ff = static_cast<int>(*g.n_ff);
  hp.n_head = static_cast<int>(*g.n_head);
  hp.n_head_kv = static_cast<int>(*g.n_head_kv);
  hp.head_dim = static_cast<int>(*g.head_dim_k);
  hp.n_vocab = static_cast<int>(*g.n_vocab);
  hp.n_rot = g.rope_dims ? static_cast<int>(*g.rope_dims) : hp.head_dim;
  hp.n_ctx_train = g.context_length ? static_cast<int>(*g.context_length) : 4096;
  hp.rms_eps = static_cast<float>(f.GetDouble(m->arch + ".attention.layer_norm_rms_epsilon").value_or(1e-5));
  hp.rope_base = static_cast<float>(f.GetDouble(m->arch + ".rope.freq_base").value_or(10000.0));
  hp.n_swa = static_cast<int>(std::min<uint64_t>(f.GetUint(m->arch + ".attention.sliding_window").value_or(0), INT32_MAX));
  if (m->arch == "gemma3") {
    // As llama.cpp: scores scaled by 1/sqrt(head_dim), except the 27B model
    // (62 layers), whose query_pre_attn_scalar is n_embd / n_head.
    hp.attn_scale = 1.0f / std::sqrt(static_cast<float>(hp.n_layers == 62 ? hp.n_embd / hp.n_head : hp.head_dim));
    fam.rope_base_swa = static_cast<float>(f.GetDouble("gemma3.rope.freq_base_swa").value_or(10000.0));
    hp.final_softcap = static_cast<float>(f.GetDouble("gemma3.final_logit_softcapping").value_or(0.0));
    if (f.FindKey("gemma3.attention.sliding_window_pattern") != nullptr) {
      const std::optional<uint64_t> pattern = f.GetUint("gemma3.attention.sliding_window_pattern");
      if (!pattern || *pattern == 0 || *pattern > 4096) {
        return Error{ErrorCode::kUnsupported, "gemma3.attention.sliding_window_pattern", Error::kNoOffset,
                     "an integer period 1..4096 (per-layer arrays are not supported yet)", "another value"};
      }
      fam.swa_pattern = static_cast<int>(*pattern);
    }
  }
  const int q_dim = hp.n_head * hp.head_dim, kv_dim = hp.n_head_kv * hp.head_dim;
  const std::shared_ptr<const gguf::Mapping>& owner = f.mapping();

  gguf::Status s = LoadMatrix(f, "token_embd.weight", hp.n_vocab, hp.n_embd, m->tok_embd, owner);
  if (s.ok()) s = LoadVector(f, "output_norm.weight", hp.n_embd, m->output_norm);
  if (s.ok() && f.FindTensor("output.weight") != nullptr) {
    s = LoadMatrix(f, "output.weight", hp.n_vocab, hp.n_embd, m->output, owner);
  }
  if (!s.ok()) return s.error();
  m->layers.resize(static_cast<size_t>(hp.n_layers));
  for (int l = 0; l < hp.n_layers && s.ok(); ++l) {
    Layer& L = m->layers[static_cast<size_t>(l)];
    auto n = [l](const char* what) { return fmt::format("blk.{}.{}", l, what); };
    s = LoadVector(f, n("attn_norm.weight"), hp.n_embd, L.attn_norm);
    if (s.ok()) s = LoadMatrix(f, n("attn_q.weight"), q_dim, hp.n_embd, L.wq, owner);
    if (s.ok()) s = LoadMatrix(f, n("attn_k.weight"), kv_dim, hp.n_embd, L.wk, owner);
    if (s.ok()) s = LoadMatrix(f, n("attn_v.weight"), kv_dim, hp.n_embd, L.wv, owner);
    if (s.ok()) s = LoadMatrix(f, n("attn_output.weight"), hp.n_embd, q_dim, L.wo, owner);
    if (s.ok() && m->family.qkv_bias) {
      s = LoadVector(f, n("attn_q.bias"), q_dim, L.bq);
      if (s.ok()) s = LoadVector(f, n("attn_k.bias"), kv_dim, L.bk);
      if (s.ok()) s = LoadVector(f, n("attn_v.bias"), kv_dim, L.bv);
    }
    if (s.ok() && m->family.qk_norm) {
      s = LoadVector(f, n("attn_q_norm.weight"), hp.head_dim, L.q_norm);
      if (s.ok()) s = LoadVector(f, n("attn_k_norm.weight"), hp.head_dim, L.k_norm);
    }
    if (s.ok() && m->family.post_norms) {
      s = LoadVector(f, n("post_attention_norm.weight"), hp.n_embd, L.post_attn_norm);
      if (s.ok()) s = LoadVector(f, n("post_ffw_norm.weight"), hp.n_embd, L.post_ffn_norm);
    }
    if (s.ok()) s = LoadVector(f, n("ffn_norm.weight"), hp.n_embd, L.ffn_norm);
    if (s.ok()) s = LoadMatrix(f, n("ffn_gate.weight"), hp.n_ff, hp.n_embd, L.w_gate, owner);
    if (s.ok()) s = LoadMatrix(f, n("ffn_up.weight"), hp.n_ff, hp.n_embd, L.w_up, owner);
    if (s.ok()) s = LoadMatrix(f, n("ffn_down.weight"), hp.n_embd, hp.n_ff, L.w_down, owner);
  }
  if (!s.ok()) return s.error();
  return m;
}

}  // namespace ggufscope::reference
