// Hugging Face checkpoint (safetensors + config.json) -> GGUF, with the
// names and conventions of gguf/hf_names.h, hyper-parameters under the keys
// llama.cpp's converter writes, and a vocabulary from gguf/hf_tokenizer.h.
//
// Everything is checked before the file is written: the architecture and
// its config (a setting the GGUF cannot express, such as rope scaling or an
// unexpected activation, is refused rather than dropped), every checkpoint
// tensor is known to the name table or deliberately ignored, every mapped
// tensor has the shape the architecture description (gguf/arch.h) gives for
// these hyper-parameters, and every required tensor is present.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/error.h"
#include "gguf/hf_names.h"
#include "gguf/safetensors.h"
#include "gguf/types.h"
#include "gguf/writer.h"

namespace ggufscope::gguf {

// The hyper-parameters of config.json, defaults applied, validated.
struct HfConfig {
  const HfArch* arch = nullptr;
  uint64_t n_layers = 0, n_embd = 0, n_ff = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_vocab = 0;
  uint64_t n_ctx = 0;
  bool head_dim_written = false;  // key/value_length go in the file (config has head_dim, or the class defaults one)
  double rope_theta = 10000.0, rms_eps = 1e-6;
  // gemma3
  std::optional<double> rope_theta_swa;
  std::optional<uint64_t> sliding_window;
  std::optional<double> final_logit_softcap;
  bool tie_word_embeddings = false;
  std::optional<uint64_t> bos_id, eos_id, pad_id;
  std::vector<std::string> notes;  // settings carried over that deserve a word
};

Result<HfConfig> ParseHfConfig(std::string_view config_json);

struct HfImportOptions {
  GgmlType matrix_type = GgmlType::kF32;  // kF32 or kF16 for 2-D weights; vectors and norms are always F32
  std::string name;                        // general.name; "" for the checkpoint folder's name
};

struct HfImportReport {
  std::string hf_class, gguf_arch;
  size_t n_tensors = 0;     // written
  size_t n_ignored = 0;     // checkpoint tensors dropped (rotary inv_freq, a tied lm_head)
  bool tied_output = false;
  std::string vocab;        // where the vocabulary came from
  std::vector<std::string> notes;
};

// A converted checkpoint ready to write: `writer` references the mapped
// checkpoint and the converted buffers held here (move-only: a move leaves
// both where they are).
struct HfImport {
  Checkpoint checkpoint;
  std::vector<std::unique_ptr<std::vector<uint8_t>>> converted;
  Writer writer;
  HfImportReport report;
};

// Reads and converts the checkpoint (a .safetensors file with config.json
// beside it, or a folder); nothing is written.
Result<HfImport> ImportHf(const std::string& checkpoint, const HfImportOptions& opt);

}  // namespace ggufscope::gguf
