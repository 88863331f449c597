#include "gguf/arch.h"

#include <algorithm>
#include <array>

namespace ggufscope::gguf {
namespace {

using D = Dim;

// Shared by the llama family: Llama 2/3, Mistral, TinyLlama, SmolLM, Qwen2/3, Gemma 3.
std::vector<TensorSpec> LlamaCore() {
  return {
      {"token_embd.weight", false, true, {D::kEmbd, D::kVocab}},
      {"output_norm.weight", false, true, {D::kEmbd, D::kOne}},
      {"output.weight", false, false, {D::kEmbd, D::kVocab}},  // absent when tied
      {"blk.%d.attn_norm.weight", true, true, {D::kEmbd, D::kOne}},
      {"blk.%d.attn_q.weight", true, true, {D::kEmbd, D::kQ}},
      {"blk.%d.attn_k.weight", true, true, {D::kEmbd, D::kKv}},
      {"blk.%d.attn_v.weight", true, true, {D::kEmbd, D::kV}},
      {"blk.%d.attn_output.weight", true, true, {D::kOut, D::kEmbd}},
      {"blk.%d.ffn_norm.weight", true, true, {D::kEmbd, D::kOne}},
      {"blk.%d.ffn_gate.weight", true, true, {D::kEmbd, D::kFf}},
      {"blk.%d.ffn_up.weight", true, true, {D::kEmbd, D::kFf}},
      {"blk.%d.ffn_down.weight", true, true, {D::kFf, D::kEmbd}},
  };
}

std::vector<ArchDesc> BuildTable() {
  std::vector<ArchDesc> table;
  table.push_back({"llama", LlamaCore()});
  ArchDesc qwen2{"qwen2", LlamaCore()};
  qwen2.tensors.push_back({"blk.%d.attn_q.bias", true, true, {D::kQ, D::kOne}});
  qwen2.tensors.push_back({"blk.%d.attn_k.bias", true, true, {D::kKv, D::kOne}});
  qwen2.tensors.push_back({"blk.%d.attn_v.bias", true, true, {D::kV, D::kOne}});
  table.push_back(qwen2);
  ArchDesc qwen3{"qwen3", LlamaCore()};
  qwen3.tensors.push_back({"blk.%d.attn_q_norm.weight", true, true, {D::kHeadDim, D::kOne}});
  qwen3.tensors.push_back({"blk.%d.attn_k_norm.weight", true, true, {D::kHeadDim, D::kOne}});
  table.push_back(qwen3);
  ArchDesc gemma3{"gemma3", LlamaCore()};
  gemma3.tensors.push_back({"blk.%d.attn_q_norm.weight", true, true, {D::kHeadDim, D::kOne}});
  gemma3.tensors.push_back({"blk.%d.attn_k_norm.weight", true, true, {D::kHeadDim, D::kOne}});
  gemma3.tensors.push_back({"blk.%d.post_attention_norm.weight", true, true, {D::kEmbd, D::kOne}});
  gemma3.tensors.push_back({"blk.%d.post_ffw_norm.weight", true, true, {D::kEmbd, D::kOne}});
  table.push_back(gemma3);
  return table;
}

std::optional<uint64_t> ArchUint(const GgufFile& f, const std::string& key, bool* per_layer) {
  const KeyValue* kv = f.FindKey(key);
  if (kv == nullptr) return std::nullopt;
  if (kv->value.type == ValueType::kArray) {
    uint64_t hi = 0;
    for (size_t i = 0; i < kv->value.array_size(); ++i) {
      const std::optional<uint64_t> v = kv->value.ArrayItem(i).AsUint();
      if (!v) return std::nullopt;
      hi = std::max(hi, *v);
    }
    if (per_layer != nullptr) *per_layer = true;
    return kv->value.array_size() > 0 ? std::optional<uint64_t>(hi) : std::nullopt;
  }
  return kv->value.AsUint();
}

}  // namespace

std::string_view RopeKindName(RopeKind kind) {
  switch (kind) {
    case RopeKind::kNorm: return "NORM";
    case RopeKind::kNeox: return "NEOX";
    case RopeKind::kNone: return "none";
    case RopeKind::kUnknown: return "unknown";
  }
  return "unknown";
}

RopeKind RopeKindForArch(std::string_view arch) {
  // NORM rotates adjacent pairs (x[2i], x[2i+1]); NEOX rotates (x[i], x[i+d/2]).
  static constexpr std::array<std::string_view, 16> kNorm = {
      "llama", "llama4", "deci", "baichuan", "starcoder", "internlm2", "minicpm", "xverse",
      "command-r", "cohere2", "olmo", "olmo2", "arctic", "deepseek", "granite", "mistral3"};
  static constexpr std::array<std::string_view, 22> kNeox = {
      "falcon", "grok", "dbrx", "bert", "nomic-bert", "stablelm", "gptneox", "qwen", "qwen2",
      "qwen2moe", "qwen3", "qwen3moe", "phi2", "phi3", "gemma", "gemma2", "gemma3", "starcoder2",
      "openelm", "nemotron", "exaone", "olmoe"};
  static constexpr std::array<std::string_view, 4> kNone = {"gpt2", "bloom", "mpt", "jais"};
  if (std::find(kNorm.begin(), kNorm.end(), arch) != kNorm.end()) return RopeKind::kNorm;
  if (std::find(kNeox.begin(), kNeox.end(), arch) != kNeox.end()) return RopeKind::kNeox;
  if (std::find(kNone.begin(), kNone.end(), arch) != kNone.end()) return RopeKind::kNone;
  return RopeKind::kUnknown;
}

const ArchDesc* FindArch(std::string_view arch) {
  static const std::vector<ArchDesc> kTable = BuildTable();
  for (const ArchDesc& d : kTable) {
    if (d.name == arch) return &d;
  }
  return nullptr;
}

HParams ReadHParams(const GgufFile& f) {
  HParams hp;
  hp.arch = f.GetString("general.architecture").value_or("");
  const std::string a = hp.arch + ".";
  hp.n_layers = ArchUint(f, a + "block_count", nullptr);
  hp.n_embd = ArchUint(f, a + "embedding_length", nullptr);
  hp.n_ff = ArchUint(f, a + "feed_forward_length", &hp.n_ff_per_layer);
  hp.n_head = ArchUint(f, a + "attention.head_count", &hp.n_head_per_layer);
  hp.n_head_kv = ArchUint(f, a + "attention.head_count_kv", &hp.n_head_per_layer);
  if (!hp.n_head_kv) hp.n_head_kv = hp.n_head;
  hp.head_dim_k = ArchUint(f, a + "attention.key_length", nullptr);
  if (!hp.head_dim_k && hp.n_embd && hp.n_head && *hp.n_head > 0 && *hp.n_embd % *hp.n_head == 0) {
    hp.head_dim_k = *hp.n_embd / *hp.n_head;
  }
  hp.head_dim_v = ArchUint(f, a + "attention.value_length", nullptr);
  if (!hp.head_dim_v) hp.head_dim_v = hp.head_dim_k;
  hp.rope_dims = ArchUint(f, a + "rope.dimension_count", nullptr);
  hp.context_length = ArchUint(f, a + "context_length", nullptr);
  if (const KeyValue* tokens = f.FindKey("tokenizer.ggml.tokens");
      tokens != nullptr && tokens->value.type == ValueType::kArray) {
    hp.n_vocab = tokens->value.array_size();
  } else {
    hp.n_vocab = ArchUint(f, a + "vocab_size", nullptr);
  }
  return hp;
}

std::optional<uint64_t> Resolve(Dim d, const HParams& hp) {
  auto mul = [](const std::optional<uint64_t>& x, const std::optional<uint64_t>& y) -> std::optional<uint64_t> {
    uint64_t r;
    if (!x || !y || __builtin_mul_overflow(*x, *y, &r)) return std::nullopt;
    return r;
  };
  switch (d) {
    case Dim::kOne: return 1;
    case Dim::kEmbd: return hp.n_embd;
    case Dim::kVocab: return hp.n_vocab;
    case Dim::kFf: return hp.n_ff_per_layer ? std::nullopt : hp.n_ff;
    case Dim::kQ: return hp.n_head_per_layer ? std::nullopt : mul(hp.n_head, hp.head_dim_k);
    case Dim::kKv: return hp.n_head_per_layer ? std::nullopt : mul(hp.n_head_kv, hp.head_dim_k);
    case Dim::kV: return hp.n_head_per_layer ? std::nullopt : mul(hp.n_head_kv, hp.head_dim_v);
    case Dim::kOut: return hp.n_head_per_layer ? std::nullopt : mul(hp.n_head, hp.head_dim_v);
    case Dim::kHeadDim: return hp.head_dim_k;
  }
  return std::nullopt;
}

std::string DimName(Dim d) {
  switch (d) {
    case Dim::kOne: return "1";
    case Dim::kEmbd: return "n_embd";
    case Dim::kVocab: return "n_vocab";
    case Dim::kFf: return "n_ff";
    case Dim::kQ: return "n_head*head_dim";
    case Dim::kKv: return "n_head_kv*head_dim";
    case Dim::kV: return "n_head_kv*head_dim_v";
    case Dim::kOut: return "n_head*head_dim_v";
    case Dim::kHeadDim: return "head_dim";
  }
  return "?";
}

}  // namespace ggufscope::gguf
