// Fused dequantize-and-dot kernels for decode: y[r] = dot(row r of W, x)
// read straight from the GGUF blocks, for every weight type a model file
// holds: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, the IQ
// types (IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ4_NL,
// IQ4_XS), TQ1_0, TQ2_0, Q1_0, Q2_0, MXFP4 and NVFP4 (dot.cc, dot_lowbit.cc,
// dot_iq.cc). Each block decodes to exactly gguf::Dequantize's values;
// block scales may be factored out of the products (scale * (q * x)) and
// the summation order differs from dequantizing first (f32 accumulation
// either way).
#pragma once

#include <cstddef>
#include <cstdint>

#include "gguf/types.h"

namespace ggufscope::reference {

// n_rows rows of `cols` elements (a whole number of blocks), row r at
// w + r * row_bytes; x has cols floats; y gets n_rows dots.
using RowDotFn = void (*)(const uint8_t* w, size_t row_bytes, int64_t n_rows, int64_t cols, const float* x,
                          float* y);

// The kernel for rows of `cols` elements of `type`, or nullptr for the types
// no weight uses (Q8_1, Q8_K, integers, F64: the caller dequantizes a
// tile and multiplies). AVX2+FMA(+F16C) kernels where the CPU has them, rows
// are at most 2^16 elements and allow_avx2 (tests compare both); portable
// ones otherwise.
RowDotFn FusedRowDot(gguf::GgmlType type, int64_t cols, bool allow_avx2 = true);

}  // namespace ggufscope::reference
