// A weight matrix kept in its GGUF type and dequantized on the fly, a tile of
// rows at a time, into f32 — exactly the values gguf-py and llama.cpp
// dequantize — so the reference holds the file's bytes (mapped, not copied)
// instead of 4 bytes per weight, and a decode step reads as many bytes as
// llama.cpp's does.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <memory>
#include <span>

#include "gguf/file.h"
#include "gguf/types.h"

namespace ggufscope::reference {

template <typename T>
using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

class Weight {
 public:
  Weight() = default;
  // `data` holds rows x cols elements of `type`, rows of `cols` (a multiple
  // of the block size, checked by the loader); `owner` keeps it alive.
  Weight(gguf::GgmlType type, int64_t rows, int64_t cols, std::span<const uint8_t> data,
         std::shared_ptr<const gguf::Mapping> owner);

  bool empty() const { return rows_ == 0; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  gguf::GgmlType type() const { return type_; }
  size_t row_bytes() const { return row_bytes_; }
  const uint8_t* RowData(int64_t r) const { return data_.data() + static_cast<size_t>(r) * row_bytes_; }

  // Rows [r0, r0 + n) as f32 into out (n * cols floats).
  void DequantizeRows(int64_t r0, int64_t n, float* out) const;

 private:
  gguf::GgmlType type_ = gguf::GgmlType::kF32;
  int64_t rows_ = 0, cols_ = 0;
  size_t row_bytes_ = 0;
  std::span<const uint8_t> data_;
  std::shared_ptr<const gguf::Mapping> owner_;
};

// y = x * W^T: x (n, cols) -> y (n, rows), with f32 weights and T
// accumulation (float, or double for --precision f64). Threads over tiles of
// W's rows.
template <typename T>
void MatMul(const Mat<T>& x, const Weight& w, Mat<T>& y);

}  // namespace ggufscope::reference
