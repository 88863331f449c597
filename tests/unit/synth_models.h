// Tiny random-weight GGUF models of the families the shared models lack
// (gemma3: GeGLU, q/k norms, post norms, embedding scale, sliding-window
// layers with their own rope base, logit soft-capping; qwen3: q/k norms,
// NEOX rope), written in memory with gguf::Writer, for tests that run a
// forward pass. The weights mean nothing; the shapes and switches are real.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gguf/error.h"
#include "gguf/file.h"
#include "gguf/writer.h"

namespace ggufscope::testing {

struct SynthSpec {
  std::string arch;  // "gemma3" or "qwen3" (or "llama", "qwen2")
  int n_layers = 2, n_embd = 64, n_ff = 128, n_head = 4, n_head_kv = 2, head_dim = 16, n_vocab = 96;
  float rope_base = 10000.0f;
  int sliding_window = 0;      // gemma3: attention.sliding_window
  float rope_base_swa = 0;     // gemma3: rope.freq_base_swa (0: not written)
  float final_softcap = 0;     // gemma3: final_logit_softcapping (0: not written)
  bool tied = false;           // no output.weight
  float embd_sigma = 1.0f;     // of token_embd (the output matrix too, when tied)
  gguf::GgmlType matrix_type = gguf::GgmlType::kF32;  // F32, F16 or Q8_0 (token_embd and 2-D weights)
  uint32_t seed = 1;
};

namespace synth_internal {

// Half bits of f, truncated (the model's values are whatever the bytes say;
// only the encoding must be valid). Normal range only: |f| in [2^-14, 65504].
inline uint16_t HalfBits(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const auto sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const int e = static_cast<int>((x >> 23) & 0xFF) - 127 + 15;
  if (e <= 0) return sign;
  if (e >= 31) return static_cast<uint16_t>(sign | 0x7BFFu);
  return static_cast<uint16_t>(sign | (e << 10) | ((x >> 13) & 0x3FFu));
}

// Rows of `cols` values encoded as `type`.
inline std::vector<uint8_t> Encode(const std::vector<float>& v, gguf::GgmlType type) {
  std::vector<uint8_t> out;
  if (type == gguf::GgmlType::kF32) {
    out.resize(v.size() * 4);
    std::memcpy(out.data(), v.data(), out.size());
  } else if (type == gguf::GgmlType::kF16) {
    out.resize(v.size() * 2);
    for (size_t i = 0; i < v.size(); ++i) {
      const uint16_t h = HalfBits(v[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  } else {  // Q8_0: f16 d, 32 x int8; d = max|x| / 127
    for (size_t b = 0; b < v.size(); b += 32) {
      float amax = 0;
      for (size_t i = 0; i < 32; ++i) amax = std::max(amax, std::abs(v[b + i]));
      const uint16_t d = HalfBits(amax / 127.0f);
      const float dv = std::ldexp(1.0f + static_cast<float>(d & 0x3FF) / 1024.0f, ((d >> 10) & 0x1F) - 15);
      uint8_t block[34];
      std::memcpy(block, &d, 2);
      for (size_t i = 0; i < 32; ++i) {
        const float q = dv > 0 ? std::round(v[b + i] / dv) : 0.0f;
        block[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(std::clamp(q, -127.0f, 127.0f)));
      }
      out.insert(out.end(), block, block + 34);
    }
  }
  return out;
}

}  // namespace synth_internal

// The GGUF bytes of a random model of `spec`'s shape.
inline gguf::Result<std::vector<uint8_t>> BuildSynthModel(const SynthSpec& spec) {
  using gguf::GgmlType;
  using gguf::Value;
  using gguf::ValueType;
  std::mt19937 rng(spec.seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  // Keeps every tensor's bytes alive until Serialize.
  std::vector<std::vector<uint8_t>> store;
  store.reserve(32 + 16 * static_cast<size_t>(spec.n_layers));
  gguf::Writer w;
  const std::string a = spec.arch + ".";
  gguf::Status st = w.AddKv("general.architecture", Value::Str(spec.arch));
  const auto u32 = [&](const std::string& key, int v) {
    if (st.ok()) st = w.AddKv(a + key, Value::U(ValueType::kUint32, static_cast<uint64_t>(v)));
  };
  const auto f32 = [&](const std::string& key, float v) {
    if (st.ok()) st = w.AddKv(a + key, Value::F32(v));
  };
  u32("block_count", spec.n_layers);
  u32("context_length", 4096);
  u32("embedding_length", spec.n_embd);
  u32("feed_forward_length", spec.n_ff);
  u32("attention.head_count", spec.n_head);
  u32("attention.head_count_kv", spec.n_head_kv);
  u32("attention.key_length", spec.head_dim);
  u32("attention.value_length", spec.head_dim);
  u32("vocab_size", spec.n_vocab);
  f32("attention.layer_norm_rms_epsilon", 1e-6f);
  f32("rope.freq_base", spec.rope_base);
  if (spec.sliding_window > 0) u32("attention.sliding_window", spec.sliding_window);
  if (spec.rope_base_swa > 0) f32("rope.freq_base_swa", spec.rope_base_swa);
  if (spec.final_softcap > 0) f32("final_logit_softcapping", spec.final_softcap);
  const auto tensor = [&](const std::string& name, int64_t rows, int64_t cols, float sigma, float mean,
                          GgmlType type) {
    std::vector<float> v(static_cast<size_t>(rows * cols));
    for (float& x : v) x = mean + sigma * normal(rng);
    store.push_back(synth_internal::Encode(v, type));
    std::vector<int64_t> ne = rows == 1 ? std::vector<int64_t>{cols} : std::vector<int64_t>{cols, rows};
    if (st.ok()) st = w.AddTensor(name, type, std::move(ne), store.back());
  };
  const int E = spec.n_embd, q_dim = spec.n_head * spec.head_dim, kv_dim = spec.n_head_kv * spec.head_dim;
  const GgmlType mt = spec.matrix_type;
  const auto matrix = [&](const std::string& name, int64_t rows, int64_t cols) {
    tensor(name, rows, cols, 1.0f / std::sqrt(static_cast<float>(cols)), 0.0f, mt);
  };
  const auto norm = [&](const std::string& name, int64_t n) { tensor(name, 1, n, 0.1f, 1.0f, GgmlType::kF32); };
  tensor("token_embd.weight", spec.n_vocab, E, spec.embd_sigma, 0.0f, mt);
  norm("output_norm.weight", E);
  if (!spec.tied) tensor("output.weight", spec.n_vocab, E, 1.0f / std::sqrt(static_cast<float>(E)), 0.0f, mt);
  for (int l = 0; l < spec.n_layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    norm(b + "attn_norm.weight", E);
    matrix(b + "attn_q.weight", q_dim, E);
    matrix(b + "attn_k.weight", kv_dim, E);
    matrix(b + "attn_v.weight", kv_dim, E);
    matrix(b + "attn_output.weight", E, q_dim);
    if (spec.arch == "qwen2") {
      tensor(b + "attn_q.bias", 1, q_dim, 0.1f, 0.0f, GgmlType::kF32);
      tensor(b + "attn_k.bias", 1, kv_dim, 0.1f, 0.0f, GgmlType::kF32);
      tensor(b + "attn_v.bias", 1, kv_dim, 0.1f, 0.0f, GgmlType::kF32);
    }
    if (spec.arch == "qwen3" || spec.arch == "gemma3") {
      norm(b + "attn_q_norm.weight", spec.head_dim);
      norm(b + "attn_k_norm.weight", spec.head_dim);
    }
    if (spec.arch == "gemma3") {
      norm(b + "post_attention_norm.weight", E);
      norm(b + "post_ffw_norm.weight", E);
    }
    norm(b + "ffn_norm.weight", E);
    matrix(b + "ffn_gate.weight", spec.n_ff, E);
    matrix(b + "ffn_up.weight", spec.n_ff, E);
    matrix(b + "ffn_down.weight", E, spec.n_ff);
  }
  if (!st.ok()) return st.error();
  return w.Serialize();
}

// The families the shared models lack, as the CUDA forward test runs them.
inline std::vector<std::pair<std::string, SynthSpec>> SynthFamilySpecs() {
  SynthSpec gemma;
  gemma.arch = "gemma3";
  gemma.n_layers = 7;  // pattern 6: layers 0-4 and 6 slide, layer 5 is global
  gemma.n_embd = 64;
  gemma.n_ff = 128;
  gemma.n_head = 4;
  gemma.n_head_kv = 2;
  gemma.head_dim = 32;  // n_head * head_dim != n_embd, as in real Gemma 3
  gemma.n_vocab = 96;
  gemma.rope_base = 1e6f;
  gemma.rope_base_swa = 1e4f;
  gemma.sliding_window = 8;  // far shorter than the test's sequences
  gemma.embd_sigma = 0.125f;    // times sqrt(n_embd): the residual starts at rms 1, as the blocks add
  gemma.final_softcap = 5.0f;   // logits reach about 4: tanh bends them
  gemma.tied = true;
  gemma.matrix_type = gguf::GgmlType::kF16;
  gemma.seed = 6;  // random gemma3s tend to repeat one token; this one generates 7 distinct ones in 64
  const SynthSpec qwen3{.arch = "qwen3", .n_layers = 3, .n_embd = 64, .n_ff = 160, .n_head = 8, .n_head_kv = 2,
                        .head_dim = 16, .n_vocab = 80, .rope_base = 1e6f, .matrix_type = gguf::GgmlType::kQ8_0,
                        .seed = 1};  // 32 distinct tokens in 64
  // Wide enough for the integer tensor-core mat-vecs on a 132-multiprocessor
  // device (KeepTensorCore: q+k+v 2560 rows, gate+up 4096, output 2304), so
  // decode runs their folded RMSNorms (NormFold) as a real model would.
  const SynthSpec wide{.arch = "qwen2", .n_layers = 2, .n_embd = 2048, .n_ff = 2048, .n_head = 16, .n_head_kv = 2,
                       .head_dim = 128, .n_vocab = 2304, .rope_base = 1e6f, .matrix_type = gguf::GgmlType::kQ8_0,
                       .seed = 3};
  return {{"synth-gemma3-F16", gemma}, {"synth-qwen3-Q8_0", qwen3}, {"synth-qwen2-Q8_0-wide", wide}};
}

}  // namespace ggufscope::testing
