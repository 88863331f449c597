#include "gguf/hf_names.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "gguf/dequant.h"

namespace ggufscope::gguf {
namespace {

using T = HfTransform;

// Shared by the four families.
std::vector<HfTensorName> Core(T q, T k, T norm) {
  return {
      {"model.embed_tokens.weight", "token_embd.weight", T::kNone},
      {"model.norm.weight", "output_norm.weight", norm},
      {"lm_head.weight", "output.weight", T::kNone},
      {"model.layers.{L}.input_layernorm.weight", "blk.{L}.attn_norm.weight", norm},
      {"model.layers.{L}.self_attn.q_proj.weight", "blk.{L}.attn_q.weight", q},
      {"model.layers.{L}.self_attn.k_proj.weight", "blk.{L}.attn_k.weight", k},
      {"model.layers.{L}.self_attn.v_proj.weight", "blk.{L}.attn_v.weight", T::kNone},
      {"model.layers.{L}.self_attn.o_proj.weight", "blk.{L}.attn_output.weight", T::kNone},
      {"model.layers.{L}.mlp.gate_proj.weight", "blk.{L}.ffn_gate.weight", T::kNone},
      {"model.layers.{L}.mlp.up_proj.weight", "blk.{L}.ffn_up.weight", T::kNone},
      {"model.layers.{L}.mlp.down_proj.weight", "blk.{L}.ffn_down.weight", T::kNone},
  };
}

HfArch Make(std::string_view hf_class, std::string_view model_type, std::string_view gguf_arch,
            std::vector<HfTensorName> tensors) {
  HfArch a;
  a.hf_class = hf_class;
  a.model_type = model_type;
  a.gguf_arch = gguf_arch;
  a.tensors = std::move(tensors);
  return a;
}

std::vector<HfArch> BuildTable() {
  std::vector<HfArch> table;

  HfArch llama = Make("LlamaForCausalLM", "llama", "llama", Core(T::kPermuteQ, T::kPermuteK, T::kNone));
  llama.tensors.push_back({"model.layers.{L}.post_attention_layernorm.weight", "blk.{L}.ffn_norm.weight", T::kNone});
  llama.act_key = "hidden_act";
  llama.act = "silu";
  llama.write_vocab_size = true;
  table.push_back(llama);

  HfArch qwen2 = Make("Qwen2ForCausalLM", "qwen2", "qwen2", Core(T::kNone, T::kNone, T::kNone));
  qwen2.tensors.push_back({"model.layers.{L}.post_attention_layernorm.weight", "blk.{L}.ffn_norm.weight", T::kNone});
  qwen2.tensors.push_back({"model.layers.{L}.self_attn.q_proj.bias", "blk.{L}.attn_q.bias", T::kNone});
  qwen2.tensors.push_back({"model.layers.{L}.self_attn.k_proj.bias", "blk.{L}.attn_k.bias", T::kNone});
  qwen2.tensors.push_back({"model.layers.{L}.self_attn.v_proj.bias", "blk.{L}.attn_v.bias", T::kNone});
  qwen2.act_key = "hidden_act";
  qwen2.act = "silu";
  qwen2.default_context = 32768;
  table.push_back(qwen2);

  HfArch qwen3 = Make("Qwen3ForCausalLM", "qwen3", "qwen3", Core(T::kNone, T::kNone, T::kNone));
  qwen3.tensors.push_back({"model.layers.{L}.post_attention_layernorm.weight", "blk.{L}.ffn_norm.weight", T::kNone});
  qwen3.tensors.push_back({"model.layers.{L}.self_attn.q_norm.weight", "blk.{L}.attn_q_norm.weight", T::kNone});
  qwen3.tensors.push_back({"model.layers.{L}.self_attn.k_norm.weight", "blk.{L}.attn_k_norm.weight", T::kNone});
  qwen3.act_key = "hidden_act";
  qwen3.act = "silu";
  qwen3.default_context = 32768;
  qwen3.default_head_dim = 128;
  table.push_back(qwen3);

  HfArch gemma3 = Make("Gemma3ForCausalLM", "gemma3_text", "gemma3", Core(T::kNone, T::kNone, T::kAddOne));
  gemma3.tensors.push_back({"model.layers.{L}.self_attn.q_norm.weight", "blk.{L}.attn_q_norm.weight", T::kAddOne});
  gemma3.tensors.push_back({"model.layers.{L}.self_attn.k_norm.weight", "blk.{L}.attn_k_norm.weight", T::kAddOne});
  gemma3.tensors.push_back(
      {"model.layers.{L}.post_attention_layernorm.weight", "blk.{L}.post_attention_norm.weight", T::kAddOne});
  gemma3.tensors.push_back({"model.layers.{L}.pre_feedforward_layernorm.weight", "blk.{L}.ffn_norm.weight", T::kAddOne});
  gemma3.tensors.push_back(
      {"model.layers.{L}.post_feedforward_layernorm.weight", "blk.{L}.post_ffw_norm.weight", T::kAddOne});
  gemma3.act_key = "hidden_activation";
  gemma3.act = "gelu_pytorch_tanh";
  gemma3.gemma3_attention = true;
  gemma3.default_rope_theta = 1000000.0;
  gemma3.default_context = 131072;
  gemma3.default_head_dim = 256;
  gemma3.default_n_head_kv = 4;
  gemma3.default_tie = true;
  table.push_back(gemma3);

  for (HfArch& a : table) a.ignored.push_back("model.layers.{L}.self_attn.rotary_emb.inv_freq");
  return table;
}

const std::vector<HfArch>& Table() {
  static const std::vector<HfArch> kTable = BuildTable();
  return kTable;
}

// Matches `name` against a pattern with at most one "{L}" (a decimal layer
// index without leading zeros); the layer, or -1 for no {L}, or nullopt.
std::optional<int> Match(std::string_view pattern, std::string_view name) {
  const size_t at = pattern.find("{L}");
  if (at == std::string_view::npos) return pattern == name ? std::optional<int>(-1) : std::nullopt;
  const std::string_view pre = pattern.substr(0, at), post = pattern.substr(at + 3);
  if (name.size() <= pre.size() + post.size() || !name.starts_with(pre) || !name.ends_with(post)) return std::nullopt;
  const std::string_view digits = name.substr(pre.size(), name.size() - pre.size() - post.size());
  if (digits.size() > 6 || (digits.size() > 1 && digits[0] == '0')) return std::nullopt;
  int layer = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    layer = layer * 10 + (c - '0');
  }
  return layer;
}

std::string Fill(std::string_view pattern, int layer) {
  std::string s(pattern);
  const size_t at = s.find("{L}");
  if (at != std::string::npos) s.replace(at, 3, std::to_string(layer));
  return s;
}

// Row r of the GGUF tensor holds HF row Source(r) (one head of hd rows).
int64_t PermutedSource(int64_t r, int64_t hd) {
  const int64_t h = r / hd, j = r % hd, i = j / 2, s = j % 2;
  return h * hd + s * (hd / 2) + i;
}

Status Permute(std::span<float> v, int64_t rows, int64_t cols, int n_groups, bool undo) {
  if (n_groups <= 0 || rows % (2 * static_cast<int64_t>(n_groups)) != 0 || cols <= 0 ||
      static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols) != v.size()) {
    return Error{ErrorCode::kInvalidArgument, "rope permutation", Error::kNoOffset,
                 fmt::format("rows a multiple of 2 x {} heads, rows x cols = {}", n_groups, v.size()),
                 fmt::format("{} x {}", rows, cols)};
  }
  const int64_t hd = rows / n_groups;
  const std::vector<float> src(v.begin(), v.end());
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t from = undo ? r : PermutedSource(r, hd), to = undo ? PermutedSource(r, hd) : r;
    std::memcpy(&v[static_cast<size_t>(to * cols)], &src[static_cast<size_t>(from * cols)],
                static_cast<size_t>(cols) * sizeof(float));
  }
  return {};
}

}  // namespace

std::string_view HfTransformName(HfTransform t) {
  switch (t) {
    case T::kNone: return "none";
    case T::kPermuteQ: return "rope permutation (n_head)";
    case T::kPermuteK: return "rope permutation (n_head_kv)";
    case T::kAddOne: return "+1";
  }
  return "?";
}

std::span<const HfArch> HfArchs() { return Table(); }

const HfArch* FindHfArch(std::string_view hf_class, std::string_view model_type) {
  for (const HfArch& a : Table()) {
    if (!hf_class.empty() && a.hf_class == hf_class) return &a;
  }
  for (const HfArch& a : Table()) {
    if (!model_type.empty() && a.model_type == model_type) return &a;
  }
  return nullptr;
}

HfNameMatch MapHfName(const HfArch& arch, std::string_view hf_name) {
  for (const HfTensorName& t : arch.tensors) {
    if (const std::optional<int> l = Match(t.hf, hf_name)) {
      return {HfNameKind::kMapped, Fill(t.gguf, *l), t.transform, *l};
    }
  }
  for (std::string_view p : arch.ignored) {
    if (const std::optional<int> l = Match(p, hf_name)) return {HfNameKind::kIgnored, "", T::kNone, *l};
  }
  return {};
}

HfNameMatch MapGgufName(const HfArch& arch, std::string_view gguf_name) {
  for (const HfTensorName& t : arch.tensors) {
    if (const std::optional<int> l = Match(t.gguf, gguf_name)) {
      return {HfNameKind::kMapped, Fill(t.hf, *l), t.transform, *l};
    }
  }
  return {};
}

Status ApplyHfTransform(HfTransform t, std::span<float> values, int64_t rows, int64_t cols, int n_head,
                        int n_head_kv, bool source_f16) {
  switch (t) {
    case T::kNone: return {};
    case T::kPermuteQ: return Permute(values, rows, cols, n_head, false);
    case T::kPermuteK: return Permute(values, rows, cols, n_head_kv, false);
    case T::kAddOne:
      for (float& v : values) {
        v += 1.0f;
        if (source_f16) v = HalfToFloat(FloatToHalf(v));
      }
      return {};
  }
  return {};
}

Status UndoHfTransform(HfTransform t, std::span<float> values, int64_t rows, int64_t cols, int n_head,
                       int n_head_kv) {
  switch (t) {
    case T::kNone: return {};
    case T::kPermuteQ: return Permute(values, rows, cols, n_head, true);
    case T::kPermuteK: return Permute(values, rows, cols, n_head_kv, true);
    case T::kAddOne:
      for (float& v : values) v -= 1.0f;
      return {};
  }
  return {};
}

uint16_t FloatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const uint32_t a = x & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00 | ((a >> 13) & 0x3ff));  // NaN stays NaN
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00);  // 65520 and up round to inf
  if (a < 0x38800000u) {
    // Below 2^-14: a subnormal half, in units of 2^-24 (the scaling is exact;
    // nearbyint rounds half to even in the default rounding mode).
    return static_cast<uint16_t>(sign | static_cast<uint16_t>(std::nearbyint(std::fabs(f) * 0x1p24f)));
  }
  uint32_t h = ((((a >> 23) - 127 + 15) << 10) | ((a & 0x7fffff) >> 13));
  const uint32_t rest = a & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h;  // a carry into the exponent is right
  return static_cast<uint16_t>(sign | h);
}

}  // namespace ggufscope::gguf
