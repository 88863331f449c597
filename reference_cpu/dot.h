// Fused dequantize-and-dot kernels for decode: y[r] = dot(row r of W, x)
// read straight from the GGUF blocks, for the types that dominate real files
// (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, F32). Each block's values
// are the exact dequantized values; only the summation order differs from
// dequantizing first (f32 accumulation either way).
#pragma once

#include <cstddef>
#include <cstdint>

#include "gguf/types.h"

namespace ggufscope::reference {

// n_rows rows of `cols` elements (a whole number of blocks), row r at
// w + r * row_bytes; x has cols floats; y gets n_rows dots.
using RowDotFn = void (*)(const uint8_t* w, size_t row_bytes, int64_t n_rows, int64_t cols, const float* x,
                          float* y);

// The kernel for rows of `cols` elements of `type`, or nullptr (the caller
// dequantizes a tile and multiplies). AVX2+FMA kernels where the CPU has
// them (and allow_avx2: tests compare both), portable ones otherwise.
RowDotFn FusedRowDot(gguf::GgmlType type, int64_t cols, bool allow_avx2 = true);

}  // namespace ggufscope::reference
