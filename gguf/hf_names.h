// Hugging Face (transformers) checkpoints <-> GGUF, for the families the
// reference runs: tensor names, and the value conventions llama.cpp's
// convert_hf_to_gguf.py applies on the way (facts from its LlamaModel,
// Qwen2Model, Qwen3Model and Gemma3Model classes):
//
//  - Layout: an HF weight of shape (out, in), row-major, is the GGUF tensor
//    with ne = {in, out}: the same bytes, no transposition.
//  - llama: q_proj and k_proj rows (weights and biases) are permuted per head
//    so that GGUF's NORM rope (adjacent pairs) computes what HF's rotate_half
//    (halves) computes: GGUF row h*hd + 2i + s is HF row h*hd + s*hd/2 + i
//    (s in {0, 1}, i < hd/2), over n_head heads for Q and n_head_kv for K.
//    qwen2, qwen3 and gemma3 use NEOX rope and keep HF's row order.
//  - gemma3: every RMSNorm weight (name ending "norm.weight": input, post-
//    attention, pre/post feed-forward, q_norm, k_norm and the final norm) is
//    stored as w + 1, since Gemma3RMSNorm computes x * (1 + w). llama.cpp adds
//    in the checkpoint's dtype when it is F16 (torch arithmetic), in F32 else.
//  - Tied embeddings: no output.weight when the checkpoint has no lm_head or
//    its config says tie_word_embeddings; the forward pass then uses
//    token_embd.weight. (llama.cpp's converter would write an lm_head that is
//    present even when tied; in HF it is ignored then, so we drop it.)
//  - *.rotary_emb.inv_freq buffers are dropped.
// The table below is the single place these names live; the importer and a
// GGUF-vs-checkpoint comparison both read it.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/error.h"

namespace ggufscope::gguf {

// What happens to a tensor's values between the checkpoint and the GGUF file.
enum class HfTransform : uint8_t {
  kNone,
  kPermuteQ,  // llama: rope row permutation over n_head heads
  kPermuteK,  // llama: the same over n_head_kv heads
  kAddOne,    // gemma3: RMSNorm weight stored as w + 1
};

std::string_view HfTransformName(HfTransform t);

struct HfTensorName {
  std::string_view hf;    // "model.layers.{L}.self_attn.q_proj.weight" ({L}: the layer)
  std::string_view gguf;  // "blk.{L}.attn_q.weight"
  HfTransform transform;
};

// One Hugging Face model class and what converting it means.
struct HfArch {
  std::string_view hf_class;    // config.json "architectures"[0]
  std::string_view model_type;  // config.json "model_type"
  std::string_view gguf_arch;   // general.architecture
  std::vector<HfTensorName> tensors;
  std::vector<std::string_view> ignored;  // checkpoint tensors the conversion drops ({L} allowed)

  // config.json conventions.
  std::string_view act_key;       // the config key naming the MLP activation
  std::string_view act;           // the activation the GGUF architecture implies
  bool write_vocab_size = false;  // {arch}.vocab_size and {arch}.rope.dimension_count (llama)
  bool gemma3_attention = false;  // sliding window every layer but each 6th, local rope base, no softcap
  // Defaults of the transformers config class, for keys a config.json omits.
  double default_rope_theta = 10000.0;
  double default_rms_eps = 1e-6;
  uint64_t default_context = 2048;
  std::optional<uint64_t> default_head_dim;   // else hidden_size / num_attention_heads
  std::optional<uint64_t> default_n_head_kv;  // else num_attention_heads
  bool default_tie = false;                   // tie_word_embeddings
};

// llama, qwen2, qwen3, gemma3 (text).
std::span<const HfArch> HfArchs();
// By config.json "architectures"[0], else by "model_type"; nullptr if neither is known.
const HfArch* FindHfArch(std::string_view hf_class, std::string_view model_type);

enum class HfNameKind { kMapped, kIgnored, kUnknown };

struct HfNameMatch {
  HfNameKind kind = HfNameKind::kUnknown;
  std::string name;  // the other side's name (kMapped)
  HfTransform transform = HfTransform::kNone;
  int layer = -1;    // the {L} matched, -1 for global tensors
};

// "model.layers.3.mlp.up_proj.weight" -> "blk.3.ffn_up.weight".
HfNameMatch MapHfName(const HfArch& arch, std::string_view hf_name);
// The reverse: "blk.3.ffn_up.weight" -> "model.layers.3.mlp.up_proj.weight";
// output.weight maps to lm_head.weight (compare it with embed_tokens when tied).
HfNameMatch MapGgufName(const HfArch& arch, std::string_view gguf_name);

// Applies (checkpoint -> GGUF) or undoes (GGUF -> checkpoint) a transform on
// a row-major (rows, cols) tensor; cols is 1 for vectors. The permutations
// need rows to be a multiple of 2 * n_head (Q) or 2 * n_head_kv (K).
// `source_f16`: the checkpoint stored this tensor as F16, so kAddOne rounds
// the sum to F16 as llama.cpp's torch arithmetic does.
Status ApplyHfTransform(HfTransform t, std::span<float> values, int64_t rows, int64_t cols, int n_head,
                        int n_head_kv, bool source_f16 = false);
Status UndoHfTransform(HfTransform t, std::span<float> values, int64_t rows, int64_t cols, int n_head,
                       int n_head_kv);

// IEEE half from float, rounding to nearest even (numpy's astype(float16)).
uint16_t FloatToHalf(float f);

}  // namespace ggufscope::gguf
