// `ggufscope diff MODEL.gguf CHECKPOINT`: a GGUF file against the Hugging
// Face checkpoint it claims to come from (a folder of safetensors shards with
// config.json, or one .safetensors file), and `fingerprint CHECKPOINT`.
//
// Every GGUF tensor is matched to its checkpoint tensor through the one name
// table (gguf/hf_names.h). The conventions are applied to the checkpoint
// side, in the direction the converter applied them (Q/K rope permutation,
// Gemma norm + 1 rounded as llama.cpp rounds it), never undone on the GGUF
// side: an untouched tensor then reproduces the converter's values exactly
// (F32/F16 files compare bit for bit; undoing + 1 would lose the low bits),
// and the quantization noise is measured on the values the GGUF stores
// (Gemma's norms are ~0 in the checkpoint, ~1 in the file: a relative error
// of stored values is what the type's band describes).
//
// The element-wise metrics are compare::DiffAccumulator's and the verdict is
// compare::Judge's with the checkpoint's dtype as the reference type, the
// same band logic as GGUF-vs-GGUF `diff`. Memory: one chunk of rows (about
// 2^20 elements, whole heads for the permuted tensors) per worker thread;
// the checkpoint stays memory-mapped.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gguf/error.h"
#include "gguf/file.h"
#include "gguf/hf_import.h"
#include "inspect/diff.h"
#include "inspect/fingerprint.h"

namespace ggufscope::inspect {

struct CheckpointDiffOptions {
  int threads = 0;        // 0: all cores
  bool progress = false;  // "[diff] i/n tensors" on stderr
};

// A hyper-parameter of the GGUF file that config.json contradicts.
struct ConfigContradiction {
  std::string key;         // GGUF key ("qwen2.attention.head_count") or what was counted ("token_embd.weight rows")
  std::string config_key;  // config.json key ("num_attention_heads")
  std::string gguf, config;  // printable values; gguf "(absent)" when the file lacks a key it must have
};

struct CheckpointDiffReport {
  std::string checkpoint;  // the path given
  std::string hf_class, gguf_arch;
  // In the GGUF's tensor order, then checkpoint tensors the file lacks. type_b
  // is the checkpoint dtype (F32, F16, BF16); kOnlyInA: in the GGUF only,
  // kOnlyInB: in the checkpoint only.
  std::vector<TensorDiffEntry> tensors;
  std::vector<ConfigContradiction> config;
  std::vector<std::string> notes;  // tied output, dropped buffers
  size_t flagged = 0;              // tensors flagged, missing, extra, reshaped or unreadable, + contradictions
};

// A folder or a *.safetensors file: what `diff` and `fingerprint` read as a checkpoint.
bool IsCheckpointPath(const std::string& path);

// Errors (the checkpoint or its config.json cannot be read, an architecture
// the table does not know) name the file and the field.
gguf::Result<CheckpointDiffReport> DiffCheckpoint(const gguf::GgufFile& f, const std::string& checkpoint,
                                                  const CheckpointDiffOptions& opt);

nlohmann::json CheckpointDiffJson(const CheckpointDiffReport& r, const std::string& gguf_path);
std::string CheckpointDiffText(const CheckpointDiffReport& r, const std::string& gguf_path, bool all);

// The fingerprint of a checkpoint, keyed by GGUF names, of the values the
// GGUF would store (conventions applied; "conventions": "gguf" in the JSON),
// so that it equals the fingerprint of an F32 conversion. A tied lm_head and
// ignored buffers are left out, as the converter leaves them out.
gguf::Result<Fingerprint> CheckpointFingerprint(const std::string& checkpoint, bool round, int threads);

// Checkpoint tensor `t` as the values the GGUF stores for it (transform
// applied), for rows [row0, row0 + n_rows) of its (rows, cols) view; cols is
// 1 for vectors. For a permuted tensor row0 and n_rows must be multiples of
// the head size (rows / n_groups). Exposed for tests.
gguf::Status CheckpointRows(const gguf::StTensor& t, gguf::HfTransform transform, const gguf::HfConfig& cfg,
                            uint64_t row0, uint64_t n_rows, std::span<float> out);

}  // namespace ggufscope::inspect
