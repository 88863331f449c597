// The architecture summary `info` prints: the hyper-parameters a user checks
// first, read from the `{arch}.*` metadata keys with the fallbacks llama.cpp
// uses (head dim = n_embd / n_head unless key_length is given; vocab from the
// tokenizer or token_embd; tied output when output.weight is absent).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "gguf/arch.h"
#include "gguf/file.h"

namespace ggufscope::inspect {

using gguf::RopeKind;
using gguf::RopeKindForArch;
using gguf::RopeKindName;

struct ArchSummary {
  std::string arch;  // general.architecture, empty if absent
  std::optional<uint64_t> n_layers, n_embd, n_ff, n_head, n_head_kv, head_dim, context_length,
      rope_dims, vocab_size, sliding_window;
  std::string n_head_note;  // set when head counts are per-layer arrays
  std::optional<double> rope_base, rms_eps;
  RopeKind rope = RopeKind::kUnknown;
  std::string vocab_source;     // "tokenizer.ggml.tokens", "vocab_size key", "token_embd rows"
  std::string tokenizer_model;  // tokenizer.ggml.model
  std::string tokenizer_pre;    // tokenizer.ggml.pre
  bool tied_output = false;     // true when output.weight is absent and token_embd is reused
  bool has_output = false;
};

ArchSummary SummarizeArch(const gguf::GgufFile& file);



}  // namespace ggufscope::inspect
