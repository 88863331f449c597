// Fused decode kernels for the IQ grid types: IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS,
// IQ2_S, IQ3_XXS, IQ3_S (the 4-bit codebook IQ types are in dot_lowbit.cc).
//
// A block decodes to integer codes (grid row entries with their signs) and
// one f32 scale per group, dl * q being exactly gguf/dequant.cc's value
// (layouts are spelled out there):
// - IQ2/IQ3: value = db * grid * sign, and db * (-g) = -(db * g) in IEEE
//   arithmetic, so the code is the signed grid entry and the scale db.
// - IQ1: value = dl * (grid + delta) with delta = +-1/8; grid + delta =
//   (8 * grid +- 1) / 8 exactly, and scaling by 1/8 commutes with rounding
//   (no overflow or f32 subnormal is reachable from an f16 d), so the code
//   is 8 * grid +- 1 and the scale dl / 8.
#include <array>
#include <bit>
#include <cstring>

#include "gguf/block_utils.h"
#include "reference_cpu/dot_simd.h"

namespace ggufscope::reference::dot_detail {
namespace {

// The grids, from the one generated table (also compiled into gguf/dequant.cc).
#include "gguf/iq_tables.inc"

using gguf::LoadF16;
using gguf::LoadU16;
using gguf::LoadU32;

// IQ2_XXS / IQ2_XS / IQ3_XXS store 7 sign bits per 8 values; the 8th makes
// the parity even: kSigns[i] = i | parity(i) << 7.
constexpr auto kSigns = [] {
  std::array<uint8_t, 128> t{};
  for (unsigned i = 0; i < 128; ++i) t[i] = static_cast<uint8_t>(i | ((std::popcount(i) & 1u) << 7));
  return t;
}();

// q[j] = grid[j], negated where bit j of `signs` is set (j < 8).
[[gnu::always_inline]] inline void Signed8(const uint8_t* __restrict grid, unsigned signs, int8_t* __restrict q) {
  for (int j = 0; j < 8; ++j) {
    const int m = -static_cast<int>((signs >> j) & 1u);
    q[j] = static_cast<int8_t>((grid[j] ^ m) - m);
  }
}

// IQ1: q[j] = 8 * grid[j] + (negative ? -1 : 1).
[[gnu::always_inline]] inline void Iq1Codes(const int8_t* __restrict grid, unsigned negative, int8_t* __restrict q) {
  const int delta = negative ? -1 : 1;
  for (int j = 0; j < 8; ++j) q[j] = static_cast<int8_t>(8 * grid[j] + delta);
}

#if GGUFSCOPE_HAVE_AVX2_KERNELS
inline uint64_t Row8(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// kSigns[i] spread over 8 bytes as vpsignb multipliers: byte j is -1 where
// bit j is set, else +1 (one load per 8 values instead of bit shuffling).
constexpr auto kSignBytes = [] {
  std::array<uint64_t, 128> t{};
  for (unsigned i = 0; i < 128; ++i) {
    for (unsigned j = 0; j < 8; ++j) t[i] |= uint64_t{((kSigns[i] >> j) & 1u) ? 0xFFu : 0x01u} << (8 * j);
  }
  return t;
}();

// The 7-bit sign indices at bits 0, 7, 14, 21 of `aux`, for four rows.
GGUFSCOPE_AVX2 inline __m256i SignBytes4(uint32_t aux) {
  return _mm256_set_epi64x(static_cast<int64_t>(kSignBytes[(aux >> 21) & 0x7F]),
                           static_cast<int64_t>(kSignBytes[(aux >> 14) & 0x7F]),
                           static_cast<int64_t>(kSignBytes[(aux >> 7) & 0x7F]),
                           static_cast<int64_t>(kSignBytes[aux & 0x7F]));
}
#endif

#if GGUFSCOPE_HAVE_AVX2_KERNELS
// IQ1: 8 * grid + delta for four grid rows of 8 (delta: one +-1 per row).
GGUFSCOPE_AVX2 inline void StoreIq1Codes(const int8_t* r0, const int8_t* r1, const int8_t* r2, const int8_t* r3,
                                         __m256i delta, int8_t* q) {
  __m256i g = _mm256_set_epi64x(static_cast<int64_t>(Row8(reinterpret_cast<const uint8_t*>(r3))),
                                static_cast<int64_t>(Row8(reinterpret_cast<const uint8_t*>(r2))),
                                static_cast<int64_t>(Row8(reinterpret_cast<const uint8_t*>(r1))),
                                static_cast<int64_t>(Row8(reinterpret_cast<const uint8_t*>(r0))));
  g = _mm256_add_epi8(g, g);
  g = _mm256_add_epi8(g, g);
  g = _mm256_add_epi8(g, g);
  _mm256_store_si256(reinterpret_cast<__m256i*>(q), _mm256_add_epi8(g, delta));
}
// +1 or -1 in each byte of a row of 8.
inline int64_t Delta8(unsigned negative) { return negative ? -1 : 0x0101010101010101; }
#endif

// IQ2_XXS, 66 B: f16 d | 8 x (u32 aux0, u32 aux1). Group ib of 32: aux0's
// bytes index kIq2xxsGrid, aux1 has four 7-bit sign indices and the scale
// in bits 28..31; db = d * (0.5 + scale) * 0.25.
struct Iq2Xxs {
  static constexpr int kBlock = 256, kBytes = 66, kGroup = 32;
  static constexpr bool kMin = false;
  [[gnu::always_inline]] static void Decode(const uint8_t* __restrict b, int8_t* __restrict q,
                                            float* __restrict dl, float*) {
    const float d = LoadF16(b);
    for (int ib = 0; ib < 8; ++ib) {
      const uint32_t aux0 = LoadU32(b + 2 + 8 * ib), aux1 = LoadU32(b + 6 + 8 * ib);
      dl[ib] = d * (0.5f + static_cast<float>(aux1 >> 28)) * 0.25f;
      for (int l = 0; l < 4; ++l) {
        Signed8(kIq2xxsGrid[(aux0 >> (8 * l)) & 0xFF], kSigns[(aux1 >> (7 * l)) & 0x7F], q + 32 * ib + 8 * l);
      }
    }
  }
#if GGUFSCOPE_HAVE_AVX2_KERNELS
  GGUFSCOPE_AVX2 static void DecodeAvx2(const uint8_t* b, int8_t* q, float* dl, float*) {
    const float d = LoadF16Avx2(b);
    for (int ib = 0; ib < 8; ++ib) {
      const uint32_t aux0 = LoadU32(b + 2 + 8 * ib), aux1 = LoadU32(b + 6 + 8 * ib);
      dl[ib] = d * (0.5f + static_cast<float>(aux1 >> 28)) * 0.25f;
      const __m256i g = _mm256_set_epi64x(
          static_cast<int64_t>(Row8(kIq2xxsGrid[aux0 >> 24])), static_cast<int64_t>(Row8(kIq2xxsGrid[(aux0 >> 16) & 0xFF])),
          static_cast<int64_t>(Row8(kIq2xxsGrid[(aux0 >> 8) & 0xFF])), static_cast<int64_t>(Row8(kIq2xxsGrid[aux0 & 0xFF])));
      _mm256_store_si256(reinterpret_cast<__m256i*>(q + 32 * ib), _mm256_sign_epi8(g, SignBytes4(aux1)));
    }
  }
#endif
};

// IQ2_XS, 74 B: f16 d | u16 qs[32] | scales[8] @66. Entry k (8 elements):
// bits 0..8 index kIq2xsGrid, bits 9..15 kSigns. Group of 16 g (entries 2g,
// 2g+1): scale nibble g%2 of scales[g/2]; db as IQ2_XXS.
struct Iq2Xs {
  static constexpr int kBlock = 256, kBytes = 74, kGroup = 16;
  static constexpr bool kMin = false;
  [[gnu::always_inline]] static void Scales(const uint8_t* b, float d, float* dl) {
    for (int g = 0; g < 16; ++g) {
      const int ls = (b[66 + g / 2] >> (4 * (g % 2))) & 0xF;
      dl[g] = d * (0.5f + static_cast<float>(ls)) * 0.25f;
    }
  }
  [[gnu::always_inline]] static void Decode(const uint8_t* __restrict b, int8_t* __restrict q,
                                            float* __restrict dl, float*) {
    Scales(b, LoadF16(b), dl);
    for (int k = 0; k < 32; ++k) {
      const unsigned v = LoadU16(b + 2 + 2 * k);
      Signed8(kIq2xsGrid[v & 511], kSigns[v >> 9], q + 8 * k);
    }
  }
#if GGUFSCOPE_HAVE_AVX2_KERNELS
  GGUFSCOPE_AVX2 static void DecodeAvx2(const uint8_t* b, int8_t* q, float* dl, float*) {
    Scales(b, LoadF16Avx2(b), dl);
    for (int k = 0; k < 32; k += 4) {
      unsigned v[4];
      for (int i = 0; i < 4; ++i) v[i] = LoadU16(b + 2 + 2 * (k + i));
      const __m256i g = _mm256_set_epi64x(
          static_cast<int64_t>(Row8(kIq2xsGrid[v[3] & 511])), static_cast<int64_t>(Row8(kIq2xsGrid[v[2] & 511])),
          static_cast<int64_t>(Row8(kIq2xsGrid[v[1] & 511])), static_cast<int64_t>(Row8(kIq2xsGrid[v[0] & 511])));
      const __m256i sg = _mm256_set_epi64x(
          static_cast<int64_t>(kSignBytes[v[3] >> 9]), static_cast<int64_t>(kSignBytes[v[2] >> 9]),
          static_cast<int64_t>(kSignBytes[v[1] >> 9]), static_cast<int64_t>(kSignBytes[v[0] >> 9]));
      _mm256_store_si256(reinterpret_cast<__m256i*>(q + 8 * k), _mm256_sign_epi8(g, sg));
    }
  }
#endif
};

// IQ2_S, 82 B: f16 d | qs[32] @2 | signs[32] @34 | qh[8] @66 | scales[8] @74.
// Entry k: kIq2sGrid[qs[k] | (bits 2(k%4).. of qh[k/4]) << 8], element signs
// bits of signs[k]; scales as IQ2_XS.
struct Iq2S {
  static constexpr int kBlock = 256, kBytes = 82, kGroup = 16;
  static constexpr bool kMin = false;
  [[gnu::always_inline]] static void Scales(const uint8_t* b, float d, float* dl) {
    for (int g = 0; g < 16; ++g) {
      const int ls = (b[74 + g / 2] >> (4 * (g % 2))) & 0xF;
      dl[g] = d * (0.5f + static_cast<float>(ls)) * 0.25f;
    }
  }
  static int Index(const uint8_t* b, int k) { return b[2 + k] | (((b[66 + k / 4] >> (2 * (k % 4))) & 3) << 8); }
  [[gnu::always_inline]] static void Decode(const uint8_t* __restrict b, int8_t* __restrict q,
                                            float* __restrict dl, float*) {
    Scales(b, LoadF16(b), dl);
    for (int k = 0; k < 32; ++k) Signed8(kIq2sGrid[Index(b, k)], b[34 + k], q + 8 * k);
  }
#if GGUFSCOPE_HAVE_AVX2_KERNELS
  GGUFSCOPE_AVX2 static void DecodeAvx2(const uint8_t* b, int8_t* q, float* dl, float*) {
    Scales(b, LoadF16Avx2(b), dl);
    // entries k..k+3: index qs[k + i] | (bits 2i.. of qh[k / 4]) << 8, rows by gather
    const __m128i shifts = _mm_setr_epi32(0, 2, 4, 6), m3 = _mm_set1_epi32(3);
    for (int k = 0; k < 32; k += 4) {
      const __m128i lo = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(static_cast<int>(LoadU32(b + 2 + k))));
      const __m128i hi = _mm_and_si128(_mm_srlv_epi32(_mm_set1_epi32(b[66 + k / 4]), shifts), m3);
      const __m128i idx = _mm_or_si128(lo, _mm_slli_epi32(hi, 8));
      const __m256i g = _mm256_i32gather_epi64(reinterpret_cast<const long long*>(kIq2sGrid), idx, 8);
      const __m256i m = BitsToMask(LoadU32(b + 34 + k));
      _mm256_store_si256(reinterpret_cast<__m256i*>(q + 8 * k), _mm256_sub_epi8(_mm256_xor_si256(g, m), m));
    }
  }
#endif
};

// IQ3_XXS, 98 B: f16 d | qs[64] @2 | u32 aux[8] @66. Each qs byte indexes
// kIq3xxsGrid (4 values); aux[ib] has four 7-bit sign indices and the scale
// in bits 28..31; db = d * (0.5 + scale) * 0.5.
struct Iq3Xxs {
  static constexpr int kBlock = 256, kBytes = 98, kGroup = 32;
  static constexpr bool kMin = false;
  [[gnu::always_inline]] static void Decode(const uint8_t* __restrict b, int8_t* __restrict q,
                                            float* __restrict dl, float*) {
    const float d = LoadF16(b);
    const uint8_t* qs = b + 2;
    for (int ib = 0; ib < 8; ++ib) {
      const uint32_t aux = LoadU32(b + 66 + 4 * ib);
      dl[ib] = d * (0.5f + static_cast<float>(aux >> 28)) * 0.5f;
      for (int l = 0; l < 4; ++l) {
        uint8_t row[8];
        std::memcpy(row, kIq3xxsGrid[qs[8 * ib + 2 * l]], 4);
        std::memcpy(row + 4, kIq3xxsGrid[qs[8 * ib + 2 * l + 1]], 4);
        Signed8(row, kSigns[(aux >> (7 * l)) & 0x7F], q + 32 * ib + 8 * l);
      }
    }
  }
#if GGUFSCOPE_HAVE_AVX2_KERNELS
  GGUFSCOPE_AVX2 static void DecodeAvx2(const uint8_t* b, int8_t* q, float* dl, float*) {
    const float d = LoadF16Avx2(b);
    const uint8_t* qs = b + 2;
    for (int ib = 0; ib < 8; ++ib) {
      const uint32_t aux = LoadU32(b + 66 + 4 * ib);
      dl[ib] = d * (0.5f + static_cast<float>(aux >> 28)) * 0.5f;
      const uint8_t* s = qs + 8 * ib;
      const auto row = [](uint8_t i) { return static_cast<int>(gguf::LoadU32(kIq3xxsGrid[i])); };
      const __m256i g = _mm256_set_epi32(row(s[7]), row(s[6]), row(s[5]), row(s[4]), row(s[3]), row(s[2]),
                                         row(s[1]), row(s[0]));
      _mm256_store_si256(reinterpret_cast<__m256i*>(q + 32 * ib), _mm256_sign_epi8(g, SignBytes4(aux)));
    }
  }
#endif
};

// IQ3_S, 110 B: f16 d | qs[64] @2 | qh[8] @66 | signs[32] @74 | scales[4]
// @106. Entry g (4 values): kIq3sGrid[qs[g] | (bit g%8 of qh[g/8]) << 8];
// element signs as IQ2_S; group ib of 32: db = d * (1 + 2 * nibble ib%2 of
// scales[ib/2]).
struct Iq3S {
  static constexpr int kBlock = 256, kBytes = 110, kGroup = 32;
  static constexpr bool kMin = false;
  static const uint8_t* Row(const uint8_t* b, int g) {
    return kIq3sGrid[b[2 + g] | (((b[66 + g / 8] >> (g % 8)) & 1) << 8)];
  }
  [[gnu::always_inline]] static void Scales(const uint8_t* b, float d, float* dl) {
    for (int ib = 0; ib < 8; ++ib) {
      const int ls = (b[106 + ib / 2] >> (4 * (ib % 2))) & 0xF;
      dl[ib] = d * static_cast<float>(1 + 2 * ls);
    }
  }
  [[gnu::always_inline]] static void Decode(const uint8_t* __restrict b, int8_t* __restrict q,
                                            float* __restrict dl, float*) {
    Scales(b, LoadF16(b), dl);
    for (int k = 0; k < 32; ++k) {
      uint8_t row[8];
      std::memcpy(row, Row(b, 2 * k), 4);
      std::memcpy(row + 4, Row(b, 2 * k + 1), 4);
      Signed8(row, b[74 + k], q + 8 * k);
    }
  }
#if GGUFSCOPE_HAVE_AVX2_KERNELS
  GGUFSCOPE_AVX2 static void DecodeAvx2(const uint8_t* b, int8_t* q, float* dl, float*) {
    Scales(b, LoadF16Avx2(b), dl);
    const __m256i shifts = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), one = _mm256_set1_epi32(1);
    for (int ib = 0; ib < 8; ++ib) {
      // index j: qs[8ib + j] | (bit j of qh[ib]) << 8
      const __m256i lo = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b + 2 + 8 * ib)));
      const __m256i bits = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(b[66 + ib]), shifts), one);
      const __m256i idx = _mm256_or_si256(lo, _mm256_slli_epi32(bits, 8));
      const __m256i v = _mm256_i32gather_epi32(reinterpret_cast<const int*>(kIq3sGrid), idx, 4);
      const __m256i m = BitsToMask(LoadU32(b + 74 + 4 * ib));
      _mm256_store_si256(reinterpret_cast<__m256i*>(q + 32 * ib), _mm256_sub_epi8(_mm256_xor_si256(v, m), m));
    }
  }
#endif
};

// IQ1_S, 50 B: f16 d | qs[32] @2 | u16 qh[8] @34. Group ib of 32: qh[ib]
// bits 3l.. extend qs[4ib + l] to an 11-bit kIq1sGrid index, bits 12..14 the
// scale, bit 15 the sign of delta; dl = d * (2 * scale + 1).
struct Iq1S {
  static constexpr int kBlock = 256, kBytes = 50, kGroup = 32;
  static constexpr bool kMin = false;
  [[gnu::always_inline]] static void Decode(const uint8_t* __restrict b, int8_t* __restrict q,
                                            float* __restrict dl, float*) {
    const float d = LoadF16(b);
    for (int ib = 0; ib < 8; ++ib) {
      const unsigned qh = LoadU16(b + 34 + 2 * ib);
      dl[ib] = d * static_cast<float>(2 * ((qh >> 12) & 7) + 1) * 0.125f;
      for (int l = 0; l < 4; ++l) {
        Iq1Codes(kIq1sGrid[b[2 + 4 * ib + l] | (((qh >> (3 * l)) & 7) << 8)], qh & 0x8000, q + 32 * ib + 8 * l);
      }
    }
  }
#if GGUFSCOPE_HAVE_AVX2_KERNELS
  GGUFSCOPE_AVX2 static void DecodeAvx2(const uint8_t* b, int8_t* q, float* dl, float*) {
    const float d = LoadF16Avx2(b);
    for (int ib = 0; ib < 8; ++ib) {
      const unsigned qh = LoadU16(b + 34 + 2 * ib);
      dl[ib] = d * static_cast<float>(2 * ((qh >> 12) & 7) + 1) * 0.125f;
      const uint8_t* s = b + 2 + 4 * ib;
      StoreIq1Codes(kIq1sGrid[s[0] | ((qh & 7) << 8)], kIq1sGrid[s[1] | (((qh >> 3) & 7) << 8)],
                    kIq1sGrid[s[2] | (((qh >> 6) & 7) << 8)], kIq1sGrid[s[3] | (((qh >> 9) & 7) << 8)],
                    _mm256_set1_epi64x(Delta8(qh & 0x8000)), q + 32 * ib);
    }
  }
#endif
};

// IQ1_M, 56 B: qs[32] | qh[16] @32 | u16 sc[4] @48; d is the top nibbles of
// sc[0..3]. Entry g (8 values): nibble g%2 of qh[g/2] gives 3 index bits
// above qs[g] and (bit 3) the sign of delta. Group r of 16: 3-bit scale
// bits 3(r%4).. of sc[r/4]; dl = d * (2 * scale + 1).
struct Iq1M {
  static constexpr int kBlock = 256, kBytes = 56, kGroup = 16;
  static constexpr bool kMin = false;
  [[gnu::always_inline]] static void Decode(const uint8_t* __restrict b, int8_t* __restrict q,
                                            float* __restrict dl, float*) {
    unsigned sc[4];
    for (int i = 0; i < 4; ++i) sc[i] = LoadU16(b + 48 + 2 * i);
    const auto d_bits = static_cast<uint16_t>((sc[0] >> 12) | ((sc[1] >> 8) & 0xF0) | ((sc[2] >> 4) & 0xF00) |
                                              (sc[3] & 0xF000));
    const float d = gguf::HalfToFloatInline(d_bits);
    for (int r = 0; r < 16; ++r) {
      const unsigned s = (sc[r / 4] >> (3 * (r % 4))) & 7;
      dl[r] = d * static_cast<float>(2 * s + 1) * 0.125f;
      const unsigned lo = b[32 + r] & 0xF, hi = b[32 + r] >> 4;
      Iq1Codes(kIq1sGrid[b[2 * r] | ((lo & 7) << 8)], lo & 8, q + 16 * r);
      Iq1Codes(kIq1sGrid[b[2 * r + 1] | ((hi & 7) << 8)], hi & 8, q + 16 * r + 8);
    }
  }
#if GGUFSCOPE_HAVE_AVX2_KERNELS
  GGUFSCOPE_AVX2 static void DecodeAvx2(const uint8_t* b, int8_t* q, float* dl, float*) {
    unsigned sc[4];
    for (int i = 0; i < 4; ++i) sc[i] = LoadU16(b + 48 + 2 * i);
    const auto d_bits = static_cast<uint16_t>((sc[0] >> 12) | ((sc[1] >> 8) & 0xF0) | ((sc[2] >> 4) & 0xF00) |
                                              (sc[3] & 0xF000));
    const float d = gguf::HalfToFloatInline(d_bits);
    for (int r = 0; r < 16; ++r) {
      const unsigned s = (sc[r / 4] >> (3 * (r % 4))) & 7;
      dl[r] = d * static_cast<float>(2 * s + 1) * 0.125f;
    }
    for (int r = 0; r < 16; r += 2) {  // entries 2r .. 2r+3
      const unsigned h0 = b[32 + r], h1 = b[33 + r];
      StoreIq1Codes(kIq1sGrid[b[2 * r] | ((h0 & 7) << 8)], kIq1sGrid[b[2 * r + 1] | ((h0 & 0x70) << 4)],
                    kIq1sGrid[b[2 * r + 2] | ((h1 & 7) << 8)], kIq1sGrid[b[2 * r + 3] | ((h1 & 0x70) << 4)],
                    _mm256_set_epi64x(Delta8(h1 & 0x80), Delta8(h1 & 8), Delta8(h0 & 0x80), Delta8(h0 & 8)),
                    q + 16 * r);
    }
  }
#endif
};

#define GGUFSCOPE_DECODED_KERNELS(T)                                                                 \
  GGUFSCOPE_KERNEL void Rows##T(const uint8_t* w, size_t rb, int64_t n, int64_t cols, const float* x, \
                                float* y) {                                                          \
    RowsDecoded<T>(w, rb, n, cols, x, y);                                                            \
  }

GGUFSCOPE_DECODED_KERNELS(Iq2Xxs)
GGUFSCOPE_DECODED_KERNELS(Iq2Xs)
GGUFSCOPE_DECODED_KERNELS(Iq2S)
GGUFSCOPE_DECODED_KERNELS(Iq3Xxs)
GGUFSCOPE_DECODED_KERNELS(Iq3S)
GGUFSCOPE_DECODED_KERNELS(Iq1S)
GGUFSCOPE_DECODED_KERNELS(Iq1M)
#undef GGUFSCOPE_DECODED_KERNELS

}  // namespace

RowDotFn IqRowDot(gguf::GgmlType type, bool avx2) {
  using enum gguf::GgmlType;
#if GGUFSCOPE_HAVE_AVX2_KERNELS
  if (avx2) {
    switch (type) {
      case kIQ2_XXS: return RowsDecodedAvx2<Iq2Xxs>;
      case kIQ2_XS: return RowsDecodedAvx2<Iq2Xs>;
      case kIQ2_S: return RowsDecodedAvx2<Iq2S>;
      case kIQ3_XXS: return RowsDecodedAvx2<Iq3Xxs>;
      case kIQ3_S: return RowsDecodedAvx2<Iq3S>;
      case kIQ1_S: return RowsDecodedAvx2<Iq1S>;
      case kIQ1_M: return RowsDecodedAvx2<Iq1M>;
      default: return nullptr;
    }
  }
#else
  (void)avx2;
#endif
  switch (type) {
    case kIQ2_XXS: return RowsIq2Xxs;
    case kIQ2_XS: return RowsIq2Xs;
    case kIQ2_S: return RowsIq2S;
    case kIQ3_XXS: return RowsIq3Xxs;
    case kIQ3_S: return RowsIq3S;
    case kIQ1_S: return RowsIq1S;
    case kIQ1_M: return RowsIq1M;
    default: return nullptr;
  }
}

}  // namespace ggufscope::reference::dot_detail
