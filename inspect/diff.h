// `ggufscope diff A B` and `audit --against`: two files of the same model,
// tensor by tensor, judged against the noise their quant types explain.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compare/tensor_diff.h"
#include "gguf/file.h"

namespace ggufscope::inspect {

enum class DiffStatus { kIdentical, kWithinNoise, kFlagged, kOnlyInA, kOnlyInB, kShapeMismatch, kError };

std::string_view DiffStatusName(DiffStatus s);

struct TensorDiffEntry {
  std::string name;
  gguf::GgmlType type_a = gguf::GgmlType::kF32, type_b = gguf::GgmlType::kF32;
  uint64_t offset_a = 0;  // file offset of the tensor's data in A
  DiffStatus status = DiffStatus::kIdentical;
  compare::TensorDiff d;
  compare::Judgement j;
  std::string swapped_with;  // the tensor of B whose values A's holds, when that explains it
  std::string error;
  // Against a checkpoint (inspect/checkpoint_diff.h): the checkpoint's name
  // for the tensor and the convention applied to its values; empty otherwise.
  std::string ref_name;
  std::string transform;
};

struct MetaDiffEntry {
  std::string key;
  std::string a, b;  // printable values; empty when absent
};

struct DiffReport {
  std::vector<TensorDiffEntry> tensors;
  std::vector<MetaDiffEntry> metadata;
  size_t flagged = 0;  // tensors flagged, missing or mismatched
};

DiffReport DiffFiles(const gguf::GgufFile& a, const gguf::GgufFile& b, int threads);

nlohmann::json DiffJson(const DiffReport& r, const std::string& path_a, const std::string& path_b);
// The per-tensor table of DiffText (quiet rows hidden past 40 unless `all`);
// also the checkpoint diff's.
std::string DiffTable(const std::vector<TensorDiffEntry>& tensors, bool all, std::string_view col_a,
                      std::string_view col_b);
std::string DiffText(const DiffReport& r, const std::string& path_a, const std::string& path_b, bool all);

}  // namespace ggufscope::inspect
