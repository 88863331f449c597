// Inline pieces shared by the block decoders (gguf/dequant.cc) and the
// reference's fused dot products (reference_cpu/dot.cc): unaligned loads,
// the exact half-to-float conversion and the K-quant 6-bit scale unpacking.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

// Kernels are compiled for the baseline and for x86-64-v3/v4 (AVX2/AVX-512),
// picked once at load time.
#if defined(__x86_64__) && defined(__ELF__) && (defined(__GNUC__) || defined(__clang__))
#define GGUFSCOPE_KERNEL __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define GGUFSCOPE_KERNEL
#endif

namespace ggufscope::gguf {

inline uint16_t LoadU16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline uint32_t LoadU32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Branch-free IEEE half to float, exact for every input (the selects are on
// integer bits, so the compiler can vectorize it): exponent and mantissa move
// into place and are rebiased; infinities and NaNs get exponent 255 with the
// payload kept; a subnormal m * 2^-24 is formed as (2^-14 + m * 2^-24) - 2^-14,
// which is exact.
inline float HalfToFloatInline(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t em = static_cast<uint32_t>(h & 0x7FFFu) << 13;
  const uint32_t exp = em & 0x0F800000u;
  const uint32_t special_mask = 0u - static_cast<uint32_t>(exp == 0x0F800000u);
  const uint32_t subnormal_mask = 0u - static_cast<uint32_t>(exp == 0);
  // Rebias by 127 - 15, or by 255 - 31 for infinities and NaNs.
  const uint32_t normal = em + ((127u - 15u) << 23) + (((255u - 31u - 112u) << 23) & special_mask);
  const uint32_t subnormal =
      std::bit_cast<uint32_t>(std::bit_cast<float>(em + (113u << 23)) - 0x1p-14f);
  const uint32_t bits = (normal & ~subnormal_mask) | (subnormal & subnormal_mask);
  return std::bit_cast<float>(bits | sign);
}

inline float LoadF16(const uint8_t* p) { return HalfToFloatInline(LoadU16(p)); }

// The 8 6-bit scales and mins packed in Q4_K/Q5_K's 12 bytes: for j < 4 the
// low 6 bits of bytes j (scale) and j + 4 (min); for j >= 4 a nibble of byte
// j + 4 plus the top 2 bits of bytes j - 4 (scale) and j (min).
inline void UnpackScaleMinK4(const uint8_t* s, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = s[j] & 0x3F;
    *m = s[j + 4] & 0x3F;
  } else {
    *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 2) & 0x30);
    *m = (s[j + 4] >> 4) | ((s[j] >> 2) & 0x30);
  }
}

}  // namespace ggufscope::gguf
