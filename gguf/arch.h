// Architecture descriptions: what a GGUF file of a given `general.architecture`
// must contain. One table per family (hyper-parameter keys and the tensor
// table with symbolic shapes); audit checks files against it, and the forward
// passes (issues 4 and 5) will read the same descriptions.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/file.h"

namespace ggufscope::gguf {

// How an architecture pairs the dimensions RoPE rotates: NORM rotates
// adjacent pairs (x[2i], x[2i+1]), NEOX the halves (x[i], x[i+d/2]).
enum class RopeKind { kUnknown, kNone, kNorm, kNeox };

std::string_view RopeKindName(RopeKind kind);  // "NORM", "NEOX", "none", "unknown"

// The pairing llama.cpp uses for an architecture name (its
// llama_model_rope_type table, for the families we know). The one place this
// is decided: `info` shows it and the reference forward pass uses it.
RopeKind RopeKindForArch(std::string_view arch);

// Symbolic dimension of a tensor, resolved from the hyper-parameters.
enum class Dim : uint8_t {
  kOne,      // 1 (unused trailing dims)
  kEmbd,     // n_embd
  kVocab,    // n_vocab
  kFf,       // n_ff
  kQ,        // n_head * head_dim_k
  kKv,       // n_head_kv * head_dim_k
  kV,        // n_head_kv * head_dim_v
  kOut,      // n_head * head_dim_v (attention output input width)
  kHeadDim,  // head_dim_k
};

struct TensorSpec {
  std::string_view name;  // "blk.%d.attn_q.weight" for per-layer tensors
  bool per_layer;
  bool required;  // false: optional (output.weight when tied, rope_freqs)
  std::array<Dim, 2> shape;  // ne0, ne1 (kOne for vectors)
};

struct ArchDesc {
  std::string_view name;  // general.architecture
  std::vector<TensorSpec> tensors;
};

// nullptr if the architecture has no description here.
const ArchDesc* FindArch(std::string_view arch);

// Hyper-parameters read from `{arch}.*` keys with llama.cpp's fallbacks.
struct HParams {
  std::string arch;
  std::optional<uint64_t> n_layers, n_embd, n_ff, n_head, n_head_kv, head_dim_k, head_dim_v,
      n_vocab, rope_dims, context_length;
  bool n_ff_per_layer = false;    // feed_forward_length is an array
  bool n_head_per_layer = false;  // head counts are arrays
};

HParams ReadHParams(const GgufFile& f);

// The expected size of `d`, or nullopt when a hyper-parameter it needs is missing.
std::optional<uint64_t> Resolve(Dim d, const HParams& hp);

std::string DimName(Dim d);

}  // namespace ggufscope::gguf
