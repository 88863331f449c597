// Per-tensor value statistics, computed by streaming dequantized rows
// through fixed-size buffers (memory independent of the model's size) on a
// pool of threads. The numbers `audit` shows and judges.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gguf/file.h"

namespace ggufscope::inspect {

// |w| at or beyond this is a value no training produces (weights live within
// a few units; f16 tops out at 65504 and trained bf16 weights stay far below).
inline constexpr double kImpossibleMagnitude = 1e6;
// Statistics are kept per piece of up to this many elements within a row; a
// piece whose max |w| is far above the tensor's typical piece is an outlier.
inline constexpr uint32_t kPiece = 256;

struct TensorStats {
  std::string name;
  gguf::GgmlType type = gguf::GgmlType::kF32;
  uint64_t n = 0;         // elements
  uint64_t finite = 0;    // elements that are neither NaN nor Inf
  double min = 0, max = 0, mean = 0, std = 0, rms = 0, abs_mean = 0;
  double max_abs = 0;
  uint64_t argmax_abs = 0;  // element index of max |w|
  uint64_t zeros = 0;       // exact zeros
  uint64_t nan = 0, inf = 0;
  uint64_t first_nonfinite = UINT64_MAX;  // element index
  uint64_t scale_nan = 0, scale_inf = 0;  // quant-block scale fields (d, dmin, ...)
  uint64_t first_bad_scale_block = UINT64_MAX;
  uint64_t zero_rows = 0, first_zero_row = UINT64_MAX, rows = 0;
  uint64_t impossible = 0, first_impossible = UINT64_MAX;  // |w| >= kImpossibleMagnitude
  // Robust scale: the median over pieces of each piece's max |w|, and the
  // worst piece relative to it.
  double piece_max_median = 0;
  double worst_piece_ratio = 0;
  uint64_t worst_piece = 0;      // piece index (kPiece-sized, row-major)
  uint64_t worst_piece_element = 0;
  bool values_checked = false;   // false for integer tensors
  std::string error;             // dequantization refused (should not happen on parsed files)
};

struct StatsOptions {
  int threads = 0;  // 0: hardware concurrency
  // Called from worker threads with bytes done / total (for progress).
  std::function<void(uint64_t, uint64_t)> progress;
};

// Statistics of every tensor, in table order.
std::vector<TensorStats> ComputeStats(const gguf::GgufFile& f, const StatsOptions& opt);

}  // namespace ggufscope::inspect
