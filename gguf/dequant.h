// Dequantization of every ggml tensor type to f32.
//
// Exactness contract: for each type the arithmetic is done in f32, in the
// same order as ggml's reference dequantize_row_* and gguf-py's numpy code
// (which agree), with no fused multiply-add contraction (this library is
// built with -ffp-contract=off). The result is bit-identical to gguf-py and
// llama.cpp; tests/oracle proves it on every shared model.
#pragma once

#include <cstdint>
#include <span>

#include "gguf/error.h"
#include "gguf/types.h"

namespace ggufscope::gguf {

// True if `type` has a dequantizer here (every active type does).
bool CanDequantize(GgmlType type);

// Converts `n_elements` elements stored as `type` in `src` to f32 in `dst`.
// Returns an error (never crashes) when n_elements is not a whole number of
// blocks or `src`/`dst` are too small.
Status Dequantize(GgmlType type, std::span<const uint8_t> src, uint64_t n_elements,
                  std::span<float> dst);

// Exact IEEE half and bfloat16 to float conversions (NaN payloads kept).
float HalfToFloat(uint16_t h);
float Bf16ToFloat(uint16_t h);

}  // namespace ggufscope::gguf
