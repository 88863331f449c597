// Where each quantized type keeps its block scales. Scales are the fields
// whose corruption changes a whole block (a flipped exponent bit in an f16
// `d` multiplies 32-256 weights by 2^k), so audit checks them for NaN/Inf
// and `corrupt` targets them. Layouts: docs/FORMAT-NOTES.md.
#pragma once

#include <array>
#include <cstdint>

#include "gguf/types.h"

namespace ggufscope::gguf {

enum class ScaleKind : uint8_t {
  kNone,  // no scale field (plain types) or scales not a plain field
  kF16,   // IEEE half
  kF32,   // IEEE single (Q8_K)
  kE8M0,  // one exponent byte (MXFP4)
  kUE4M3, // unsigned 8-bit float bytes (NVFP4)
};

struct BlockScales {
  ScaleKind kind = ScaleKind::kNone;
  uint8_t count = 0;                  // scale fields per block
  std::array<uint16_t, 4> offsets{};  // byte offset of each field within a block
};

// IQ1_M spreads its f16 scale over the top nibbles of four u16 fields; it is
// reported as kNone here and checked through its dequantized values.
constexpr BlockScales ScalesOf(GgmlType t) {
  using enum GgmlType;
  switch (t) {
    case kQ4_0: case kQ5_0: case kQ8_0: case kIQ4_NL: case kQ1_0: case kQ2_0:
    case kIQ2_XXS: case kIQ2_XS: case kIQ2_S: case kIQ3_XXS: case kIQ3_S: case kIQ1_S:
    case kIQ4_XS:
      return {ScaleKind::kF16, 1, {0}};
    case kQ4_1: case kQ5_1: case kQ8_1:
      return {ScaleKind::kF16, 2, {0, 2}};  // d, m (Q8_1: d, s)
    case kQ4_K: case kQ5_K:
      return {ScaleKind::kF16, 2, {0, 2}};  // d, dmin
    case kQ2_K:
      return {ScaleKind::kF16, 2, {80, 82}};  // d, dmin after scales[16] and qs[64]
    case kQ3_K:
      return {ScaleKind::kF16, 1, {108}};     // after hmask[32], qs[64], scales[12]
    case kQ6_K:
      return {ScaleKind::kF16, 1, {208}};     // after ql[128], qh[64], scales[16]
    case kTQ1_0:
      return {ScaleKind::kF16, 1, {52}};      // after qs[48], qh[4]
    case kTQ2_0:
      return {ScaleKind::kF16, 1, {64}};      // after qs[64]
    case kQ8_K:
      return {ScaleKind::kF32, 1, {0}};
    case kMXFP4:
      return {ScaleKind::kE8M0, 1, {0}};
    case kNVFP4:
      return {ScaleKind::kUE4M3, 4, {0, 1, 2, 3}};
    default:
      return {};
  }
}

}  // namespace ggufscope::gguf
