// Element-wise comparison of two tensors of the same shape and any pair of
// types (Q4_K vs F16, Q8_0 vs F32, ...), streamed through fixed buffers, and
// the judgement of the error against the noise each quant type adds.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "gguf/error.h"
#include "gguf/file.h"

namespace ggufscope::compare {

struct TensorDiff {
  uint64_t n = 0;
  bool bytes_identical = false;  // same type and the same bytes
  uint64_t first_diff_byte = 0;  // same type: first differing byte within the tensor data
  double rel_l2 = 0;             // ||a - b|| / ||b||
  double snr_db = 0;             // 10 log10(||b||^2 / ||a - b||^2); +inf when equal
  double cosine = 1;
  double max_abs = 0;
  uint64_t argmax_abs = 0;       // element index
  double norm_ratio = 1;         // ||a|| / ||b||
  uint64_t nonfinite_a = 0, nonfinite_b = 0;
  uint64_t worst_row = 0;        // row with the largest relative error
  double worst_row_rel_l2 = 0;
};

// The metrics of TensorDiff over values streamed in order, chunk by chunk
// (whole rows or block-aligned pieces of one row): DiffTensors uses it for
// two GGUF tensors, the checkpoint diff (inspect/checkpoint_diff.h) for a
// GGUF tensor against its safetensors source, so both report alike.
class DiffAccumulator {
 public:
  explicit DiffAccumulator(uint64_t row_len) : row_len_(row_len > 0 ? row_len : 1) {}
  // a[i], b[i] are elements first + i of the two tensors; b is the reference.
  void Add(std::span<const float> a, std::span<const float> b, uint64_t first);
  // The totals; bytes_identical and first_diff_byte are the caller's.
  TensorDiff Finish() const;

 private:
  uint64_t row_len_;
  TensorDiff d_;
  double s_dd_ = 0, s_bb_ = 0, s_aa_ = 0, s_ab_ = 0, row_dd_ = 0, row_bb_ = 0;
};

// `b` is the reference. Shapes must match (an error otherwise).
gguf::Result<TensorDiff> DiffTensors(const gguf::GgufFile& fa, const gguf::TensorInfo& a,
                                     const gguf::GgufFile& fb, const gguf::TensorInfo& b);

// Relative L2 error a tensor of this type typically shows against its f32
// source, measured on the shared synth models (Gaussian weights; see
// docs/CHECKS.md). 0 for lossless types.
double TypicalRelL2(gguf::GgmlType t);

struct Judgement {
  bool within = true;      // consistent with the two types' quantization noise
  double expected = 0;     // the band: kBandFactor x the combined typical noise
  std::string reason;      // why not, in words ("sign flipped", "scaled x30.0", "error 0.41 vs 0.02")
};

// Errors up to this multiple of the typical noise are quantization, not damage.
inline constexpr double kBandFactor = 3.0;
// A tensor's norm may differ from its reference's by this plus 1.5 e^2 (e the
// combined typical error) before it counts as rescaled.
inline constexpr double kScaleSlack = 0.02;

Judgement Judge(const TensorDiff& d, gguf::GgmlType a, gguf::GgmlType b);

}  // namespace ggufscope::compare
