#include "inspect/arch_summary.h"

#include <algorithm>
#include <array>

namespace ggufscope::inspect {
namespace {

using gguf::GgufFile;
using gguf::ValueType;

// Reads `{arch}.name`; a per-layer array yields its maximum and a note.
std::optional<uint64_t> ArchUint(const GgufFile& f, const std::string& arch, const char* name,
                                 std::string* note = nullptr) {
  const gguf::KeyValue* kv = f.FindKey(arch + "." + name);
  if (kv == nullptr) return std::nullopt;
  if (kv->value.type == ValueType::kArray && kv->value.array_size() > 0) {
    uint64_t lo = UINT64_MAX, hi = 0;
    for (size_t i = 0; i < kv->value.array_size(); ++i) {
      const std::optional<uint64_t> v = kv->value.ArrayItem(i).AsUint();
      if (!v) return std::nullopt;
      lo = std::min(lo, *v);
      hi = std::max(hi, *v);
    }
    if (note != nullptr && lo != hi) *note = "per layer " + std::to_string(lo) + ".." + std::to_string(hi);
    return hi;
  }
  return kv->value.AsUint();
}

}  // namespace

ArchSummary SummarizeArch(const GgufFile& f) {
  ArchSummary s;
  s.arch = f.GetString("general.architecture").value_or("");
  const std::string& a = s.arch;
  if (!a.empty()) {
    s.n_layers = ArchUint(f, a, "block_count");
    s.n_embd = ArchUint(f, a, "embedding_length");
    s.n_ff = ArchUint(f, a, "feed_forward_length");
    s.n_head = ArchUint(f, a, "attention.head_count", &s.n_head_note);
    s.n_head_kv = ArchUint(f, a, "attention.head_count_kv", &s.n_head_note);
    if (!s.n_head_kv) s.n_head_kv = s.n_head;
    s.head_dim = ArchUint(f, a, "attention.key_length");
    if (!s.head_dim && s.n_embd && s.n_head && *s.n_head > 0) s.head_dim = *s.n_embd / *s.n_head;
    s.context_length = ArchUint(f, a, "context_length");
    s.rope_dims = ArchUint(f, a, "rope.dimension_count");
    s.sliding_window = ArchUint(f, a, "attention.sliding_window");
    s.rope_base = f.GetDouble(a + ".rope.freq_base");
    s.rms_eps = f.GetDouble(a + ".attention.layer_norm_rms_epsilon");
    if (!s.rms_eps) s.rms_eps = f.GetDouble(a + ".attention.layer_norm_epsilon");
    s.rope = RopeKindForArch(a);
  }
  s.tokenizer_model = f.GetString("tokenizer.ggml.model").value_or("");
  s.tokenizer_pre = f.GetString("tokenizer.ggml.pre").value_or("");
  if (const gguf::KeyValue* tokens = f.FindKey("tokenizer.ggml.tokens");
      tokens != nullptr && tokens->value.type == ValueType::kArray) {
    s.vocab_size = tokens->value.array_size();
    s.vocab_source = "tokenizer.ggml.tokens";
  } else if (!a.empty() && (s.vocab_size = ArchUint(f, a, "vocab_size"))) {
    s.vocab_source = a + ".vocab_size";
  } else if (const gguf::TensorInfo* emb = f.FindTensor("token_embd.weight");
             emb != nullptr && emb->n_dims >= 2) {
    s.vocab_size = static_cast<uint64_t>(emb->ne[1]);
    s.vocab_source = "token_embd.weight rows";
  }
  s.has_output = f.FindTensor("output.weight") != nullptr;
  s.tied_output = !s.has_output && f.FindTensor("token_embd.weight") != nullptr;
  return s;
}

}  // namespace ggufscope::inspect
