// Fused decode kernels for the 1-3 bit K and ternary types (Q2_K, Q3_K,
// TQ1_0, TQ2_0, Q1_0, Q2_0), the 4-bit codebook types (IQ4_NL, IQ4_XS,
// MXFP4, NVFP4) and the 16-bit floats (F16, BF16).
//
// Each block type is a struct that decodes one block into integer codes and
// f32 group scales with dl * q - ml exactly gguf/dequant.cc's value (the
// layouts are spelled out there; the comments here say only which bytes give
// what). dot_simd.h's RowsDecoded / RowsDecodedAvx2 do the rest. The codes
// are small integers, so products with the scales are the dequantized values
// bit for bit: d * (q - 1) is computed as d * q' with q' = q - 1, and a sign
// is part of the code (d * -g = -(d * g) in IEEE arithmetic).
#include <array>
#include <cstring>

#include "gguf/block_utils.h"
#include "reference_cpu/dot_simd.h"

namespace ggufscope::reference::dot_detail {
namespace {

using gguf::LoadF16;
using gguf::LoadU16;

// IQ4_NL / IQ4_XS codebook (gguf/dequant.cc's kIq4nlValues) and the doubled
// E2M1 values of MXFP4 (its kE2m1Values), as int8 for byte shuffles.
// dot_test decodes every code of both through gguf::Dequantize.
alignas(16) constexpr int8_t kIq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                           1,    13,   25,  38,  53,  69,  89,  113};
alignas(16) constexpr int8_t kE2m1[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// E8M0 exponent e to 2^(e-127) / 2 (ggml_e8m0_to_fp32_half), as f32 bits;
// e < 2 gives a subnormal.
inline float E8m0Half(uint8_t e) {
  const uint32_t bits = e < 2 ? (0x00200000u << e) : (static_cast<uint32_t>(e - 1) << 23);
  return std::bit_cast<float>(bits);
}

// ---------------------------------------------------------------- K quants

#if GGUFSCOPE_HAVE_AVX2_KERNELS
// The 2-bit fields of 64 bytes in the K/TQ2 order (element 128h + 32s + l is
// bits 2s.. of qs[32h + l]) minus `offset`, stored at q[0..255].
GGUFSCOPE_AVX2 inline void StoreCrumbs(const uint8_t* qs, __m256i offset, int8_t* q) {
  const __m256i m3 = _mm256_set1_epi8(3);
  for (int h = 0; h < 2; ++h) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * h));
    for (int s = 0; s < 4; ++s) {
      const __m256i c = _mm256_and_si256(_mm256_srli_epi16(v, 2 * s), m3);
      _mm256_store_si256(reinterpret_cast<__m256i*>(q + 128 * h + 32 * s), _mm256_sub_epi8(c, offset));
    }
  }
}
#endif

// Q2_K, 84 B: scales[16] | qs[64] | f16 d @80 | f16 dmin @82. Group g of 16
// (element 128h + 32s + 16r + l, g = 8h + 2s + r): scale/min nibbles of
// scales[g]; code bits 2s.. of qs[32h + 16r + l]. value = (d*sc)*q - dmin*m.
struct Q2K {
  static constexpr int kBlock = 256, kBytes = 84, kGroup = 16;
  static constexpr bool kMin = true;
  static constexpr int kLutLo = 0;  // codes 0..7
  [[gnu::always_inline]] static void Decode(const uint8_t* __restrict b, int8_t* __restrict q,
                                            float* __restrict dl, float* __restrict ml) {
    const float d = LoadF16(b + 80), dmin = LoadF16(b + 82);
    for (int g = 0; g < 16; ++g) {
      dl[g] = d * static_cast<float>(b[g] & 0xF);
      ml[g] = dmin * static_cast<float>(b[g] >> 4);
    }
    const uint8_t* qs = b + 16;
    for (int h = 0; h < 2; ++h) {
      for (int s = 0; s < 4; ++s) {
        for (int l = 0; l < 32; ++l) q[128 * h + 32 * s + l] = static_cast<int8_t>((qs[32 * h + l] >> (2 * s)) & 3);
      }
    }
  }
#if GGUFSCOPE_HAVE_AVX2_KERNELS
  GGUFSCOPE_AVX2 static void DecodeAvx2(const uint8_t* b, int8_t* q, float* dl, float* ml) {
    const float d = LoadF16Avx2(b + 80), dmin = LoadF16Avx2(b + 82);
    for (int g = 0; g < 16; ++g) {
      dl[g] = d * static_cast<float>(b[g] & 0xF);
      ml[g] = dmin * static_cast<float>(b[g] >> 4);
    }
    StoreCrumbs(b + 16, _mm256_setzero_si256(), q);
  }
#endif
};

// Q3_K, 110 B: hmask[32] | qs[64] @32 | scales[12] @96 | f16 d @108. Element
// e = 128h + 32s + l: low bits 2s.. of qs[32h + l], minus 4 unless bit e/32
// of hmask[l] is set. 6-bit scale of group g (minus 32): nibble g/8 of
// scales[g%8], bits 2(g/4).. of scales[8 + g%4]. value = (d * sc) * q.
struct Q3K {
  static constexpr int kBlock = 256, kBytes = 110, kGroup = 16;
  static constexpr bool kMin = false;
  static constexpr int kLutLo = -4;  // codes -4..3
  [[gnu::always_inline]] static void Decode(const uint8_t* __restrict b, int8_t* __restrict q,
                                            float* __restrict dl, float*) {
    const uint8_t* hmask = b;
    const uint8_t* qs = b + 32;
    const uint8_t* sc = b + 96;
    const float d = LoadF16(b + 108);
    for (int g = 0; g < 16; ++g) {
      const int lo = (sc[g % 8] >> (4 * (g / 8))) & 0xF;
      const int hi = (sc[8 + g % 4] >> (2 * (g / 4))) & 3;
      dl[g] = d * static_cast<float>((lo | (hi << 4)) - 32);
    }
    for (int h = 0; h < 2; ++h) {
      for (int s = 0; s < 4; ++s) {
        const int hbit = 4 * h + s;
        for (int l = 0; l < 32; ++l) {
          const int low = (qs[32 * h + l] >> (2 * s)) & 3;
          const int sub = (((hmask[l] >> hbit) & 1) ^ 1) << 2;
          q[128 * h + 32 * s + l] = static_cast<int8_t>(low - sub);
        }
      }
    }
  }
#if GGUFSCOPE_HAVE_AVX2_KERNELS
  GGUFSCOPE_AVX2 static void DecodeAvx2(const uint8_t* b, int8_t* q, float* dl, float*) {
    const uint8_t* sc = b + 96;
    const float d = LoadF16Avx2(b + 108);
    for (int g = 0; g < 16; ++g) {
      const int lo = (sc[g % 8] >> (4 * (g / 8))) & 0xF;
      const int hi = (sc[8 + g % 4] >> (2 * (g / 4))) & 3;
      dl[g] = d * static_cast<float>((lo | (hi << 4)) - 32);
    }
    // code = low + 4 * bit - 4
    const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1), four = _mm256_set1_epi8(4);
    const __m256i hmask = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
    for (int h = 0; h < 2; ++h) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 32 + 32 * h));
      for (int s = 0; s < 4; ++s) {
        const __m256i low = _mm256_and_si256(_mm256_srli_epi16(v, 2 * s), m3);
        const __m256i bit = _mm256_and_si256(_mm256_srli_epi16(hmask, 4 * h + s), one);
        const __m256i c = _mm256_sub_epi8(_mm256_add_epi8(low, _mm256_slli_epi16(bit, 2)), four);
        _mm256_store_si256(reinterpret_cast<__m256i*>(q + 128 * h + 32 * s), c);
      }
    }
  }
#endif
};

// ---------------------------------------------------------------- ternary, Q1_0, Q2_0

// TQ2_0, 66 B: qs[64] | f16 d @64. Element 128h + 32s + l: bits 2s.. of
// qs[32h + l], value = d * (q - 1).
struct Tq2 {
  static constexpr int kBlock = 256, kBytes = 66, kGroup = 32;
  static constexpr bool kMin = false;
  static constexpr int kLutLo = -1;  // codes -1..6
  [[gnu::always_inline]] static void Decode(const uint8_t* __restrict b, int8_t* __restrict q,
                                            float* __restrict dl, float*) {
    const float d = LoadF16(b + 64);
    for (int g = 0; g < 8; ++g) dl[g] = d;
    for (int h = 0; h < 2; ++h) {
      for (int s = 0; s < 4; ++s) {
        for (int l = 0; l < 32; ++l) {
          q[128 * h + 32 * s + l] = static_cast<int8_t>(((b[32 * h + l] >> (2 * s)) & 3) - 1);
        }
      }
    }
  }
#if GGUFSCOPE_HAVE_AVX2_KERNELS
  GGUFSCOPE_AVX2 static void DecodeAvx2(const uint8_t* b, int8_t* q, float* dl, float*) {
    const float d = LoadF16Avx2(b + 64);
    for (int g = 0; g < 8; ++g) dl[g] = d;
    StoreCrumbs(b, _mm256_set1_epi8(1), q);
  }
#endif
};

// Base-3 digit k of a TQ1_0 byte v minus 1 (v is a fixed-point fraction of
// 243: v * 3^k wraps mod 256, and the top of that times 3 is the digit).
inline int8_t Tq1Code(uint8_t v, unsigned pow3) {
  const unsigned shifted = (v * pow3) & 0xFFu;
  return static_cast<int8_t>(static_cast<int>((shifted * 3u) >> 8) - 1);
}

// TQ1_0, 54 B: qs[48] | qh[4] @48 | f16 d @52. Elements 32k + l from qs[l],
// 160 + 16k + l from qs[32 + l], 240 + 4k + l from qh[l]; value = d * digit.
struct Tq1 {
  static constexpr int kBlock = 256, kBytes = 54, kGroup = 32;
  static constexpr bool kMin = false;
  static constexpr int kLutLo = -1;  // codes -1..6
  [[gnu::always_inline]] static void Decode(const uint8_t* __restrict b, int8_t* __restrict q,
                                            float* __restrict dl, float*) {
    constexpr unsigned kPow3[5] = {1, 3, 9, 27, 81};
    const float d = LoadF16(b + 52);
    for (int g = 0; g < 8; ++g) dl[g] = d;
    for (int k = 0; k < 5; ++k) {
      for (int l = 0; l < 32; ++l) q[32 * k + l] = Tq1Code(b[l], kPow3[k]);
      for (int l = 0; l < 16; ++l) q[160 + 16 * k + l] = Tq1Code(b[32 + l], kPow3[k]);
    }
    for (int k = 0; k < 4; ++k) {
      for (int l = 0; l < 4; ++l) q[240 + 4 * k + l] = Tq1Code(b[48 + l], kPow3[k]);
    }
  }
#if GGUFSCOPE_HAVE_AVX2_KERNELS
  // Tq1Code on 32 bytes at once (the power of 3 per 16-bit lane): the byte
  // products mod 256 come from 16-bit multiplies of the even and odd bytes,
  // the digit is the high byte of 3x.
  GGUFSCOPE_AVX2 static __m256i Codes32(__m256i v, __m256i p) {
    const __m256i lo8 = _mm256_set1_epi16(0x00FF), three = _mm256_set1_epi16(3);
    const __m256i even = _mm256_and_si256(_mm256_mullo_epi16(v, p), lo8);
    const __m256i odd = _mm256_and_si256(_mm256_mullo_epi16(_mm256_srli_epi16(v, 8), p), lo8);
    const __m256i de = _mm256_srli_epi16(_mm256_mullo_epi16(even, three), 8);
    const __m256i dodd = _mm256_andnot_si256(lo8, _mm256_mullo_epi16(odd, three));
    return _mm256_sub_epi8(_mm256_or_si256(de, dodd), _mm256_set1_epi8(1));
  }
  GGUFSCOPE_AVX2 static void DecodeAvx2(const uint8_t* b, int8_t* q, float* dl, float*) {
    constexpr int16_t kPow3[5] = {1, 3, 9, 27, 81};
    const float d = LoadF16Avx2(b + 52);
    for (int g = 0; g < 8; ++g) dl[g] = d;
    auto* out = reinterpret_cast<__m256i*>(q);
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
    for (int k = 0; k < 5; ++k) _mm256_store_si256(out + k, Codes32(v, _mm256_set1_epi16(kPow3[k])));
    // qs[32..47] in both halves: elements 160 + 16k + l, digits k and k + 1
    // per store; the last store pairs digit 4 with qh's 16 elements 240 +
    // 4k + l (qh[l] repeated in dword k, power 3^k).
    const __m128i w = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 32));
    const __m256i ww = _mm256_broadcastsi128_si256(w);
    for (int k = 0; k < 4; k += 2) {
      const __m256i p = _mm256_set_m128i(_mm_set1_epi16(kPow3[k + 1]), _mm_set1_epi16(kPow3[k]));
      _mm256_store_si256(out + 5 + k / 2, Codes32(ww, p));
    }
    const __m256i last = _mm256_set_m128i(_mm_set1_epi32(static_cast<int>(gguf::LoadU32(b + 48))), w);
    const __m256i p = _mm256_set_epi16(27, 27, 9, 9, 3, 3, 1, 1, 81, 81, 81, 81, 81, 81, 81, 81);
    _mm256_store_si256(out + 7, Codes32(last, p));
  }
#endif
};

// Q1_0, 18 B (128 elements): f16 d | qs[16]; bit j%8 of qs[j/8] set: +d,
// clear: -d (= d * -1).
struct Q1 {
  static constexpr int kBlock = 128, kBytes = 18, kGroup = 32;
  static constexpr bool kMin = false;
  static constexpr int kLutLo = -1;  // codes -1..6
  [[gnu::always_inline]] static void Decode(const uint8_t* __restrict b, int8_t* __restrict q,
                                            float* __restrict dl, float*) {
    const float d = LoadF16(b);
    for (int g = 0; g < 4; ++g) dl[g] = d;
    for (int i = 0; i < 16; ++i) {
      for (int j = 0; j < 8; ++j) q[8 * i + j] = static_cast<int8_t>((((b[2 + i] >> j) & 1) << 1) - 1);
    }
  }
#if GGUFSCOPE_HAVE_AVX2_KERNELS
  GGUFSCOPE_AVX2 static void DecodeAvx2(const uint8_t* b, int8_t* q, float* dl, float*) {
    const float d = LoadF16Avx2(b);
    const __m256i two = _mm256_set1_epi8(2), one = _mm256_set1_epi8(1);
    for (int g = 0; g < 4; ++g) {
      dl[g] = d;
      const __m256i m = BitsToMask(gguf::LoadU32(b + 2 + 4 * g));
      _mm256_store_si256(reinterpret_cast<__m256i*>(q + 32 * g),
                         _mm256_sub_epi8(_mm256_and_si256(m, two), one));
    }
  }
#endif
};

// Q2_0, 18 B (64 elements): f16 d | qs[16]; element 4i + k is bits 2k.. of
// qs[i], value = (q - 1) * d.
struct Q2 {
  static constexpr int kBlock = 64, kBytes = 18, kGroup = 32;
  static constexpr bool kMin = false;
  static constexpr int kLutLo = -1;  // codes -1..6
  [[gnu::always_inline]] static void Decode(const uint8_t* __restrict b, int8_t* __restrict q,
                                            float* __restrict dl, float*) {
    const float d = LoadF16(b);
    dl[0] = dl[1] = d;
    for (int i = 0; i < 16; ++i) {
      for (int k = 0; k < 4; ++k) q[4 * i + k] = static_cast<int8_t>(((b[2 + i] >> (2 * k)) & 3) - 1);
    }
  }
#if GGUFSCOPE_HAVE_AVX2_KERNELS
  // The four 2-bit fields of each byte, interleaved back into element order.
  GGUFSCOPE_AVX2 static void DecodeAvx2(const uint8_t* b, int8_t* q, float* dl, float*) {
    const float d = LoadF16Avx2(b);
    dl[0] = dl[1] = d;
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2));
    const __m128i m3 = _mm_set1_epi8(3), one = _mm_set1_epi8(1);
    __m128i f[4];
    for (int k = 0; k < 4; ++k) f[k] = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(v, 2 * k), m3), one);
    const __m128i a_lo = _mm_unpacklo_epi8(f[0], f[1]), a_hi = _mm_unpackhi_epi8(f[0], f[1]);
    const __m128i c_lo = _mm_unpacklo_epi8(f[2], f[3]), c_hi = _mm_unpackhi_epi8(f[2], f[3]);
    // 32-byte stores: the kernel reloads 32 at a time (a load spanning two
    // smaller stores cannot be forwarded from them and stalls)
    auto* out = reinterpret_cast<__m256i*>(q);
    _mm256_store_si256(out, _mm256_set_m128i(_mm_unpackhi_epi16(a_lo, c_lo), _mm_unpacklo_epi16(a_lo, c_lo)));
    _mm256_store_si256(out + 1, _mm256_set_m128i(_mm_unpackhi_epi16(a_hi, c_hi), _mm_unpacklo_epi16(a_hi, c_hi)));
  }
#endif
};

// ---------------------------------------------------------------- 4-bit codebooks

// 16 bytes of nibbles (low nibbles are elements 0..15, high 16..31) looked
// up in a 16-entry codebook.
[[gnu::always_inline]] inline void Lookup32(const int8_t* __restrict book, const uint8_t* __restrict qs,
                                            int8_t* __restrict q) {
  for (int j = 0; j < 16; ++j) {
    q[j] = book[qs[j] & 0xF];
    q[j + 16] = book[qs[j] >> 4];
  }
}

#if GGUFSCOPE_HAVE_AVX2_KERNELS
GGUFSCOPE_AVX2 inline __m256i Lookup32Avx2(__m256i book, const uint8_t* qs) {
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i m4 = _mm_set1_epi8(0x0F);
  const __m256i idx = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(bytes, 4), m4), _mm_and_si128(bytes, m4));
  return _mm256_shuffle_epi8(book, idx);
}
GGUFSCOPE_AVX2 inline __m256i Book(const int8_t* book) {
  return _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(book)));
}
#endif

// IQ4_NL, 18 B: f16 d | qs[16]; value = d * kIq4nl[nibble].
struct Iq4Nl {
  static constexpr int kBlock = 32, kBytes = 18, kGroup = 32;
  static constexpr bool kMin = false;
  [[gnu::always_inline]] static void Decode(const uint8_t* __restrict b, int8_t* __restrict q,
                                            float* __restrict dl, float*) {
    dl[0] = LoadF16(b);
    Lookup32(kIq4nl, b + 2, q);
  }
#if GGUFSCOPE_HAVE_AVX2_KERNELS
  GGUFSCOPE_AVX2 static void DecodeAvx2(const uint8_t* b, int8_t* q, float* dl, float*) {
    dl[0] = LoadF16Avx2(b);
    _mm256_store_si256(reinterpret_cast<__m256i*>(q), Lookup32Avx2(Book(kIq4nl), b + 2));
  }
#endif
};

// IQ4_XS, 136 B: f16 d | u16 scales_h @2 | scales_l[4] @4 | qs[128] @8.
// Group ib of 32: qs[16ib..], scale (nibble ib%2 of scales_l[ib/2]) | (bits
// 2ib.. of scales_h) << 4, minus 32. value = (d * scale) * kIq4nl[nibble].
struct Iq4Xs {
  static constexpr int kBlock = 256, kBytes = 136, kGroup = 32;
  static constexpr bool kMin = false;
  [[gnu::always_inline]] static void Scales(const uint8_t* b, float d, float* dl) {
    const unsigned scales_h = LoadU16(b + 2);
    for (int ib = 0; ib < 8; ++ib) {
      const int ls = static_cast<int>(((b[4 + ib / 2] >> (4 * (ib % 2))) & 0xF) | (((scales_h >> (2 * ib)) & 3) << 4));
      dl[ib] = d * static_cast<float>(ls - 32);
    }
  }
  [[gnu::always_inline]] static void Decode(const uint8_t* __restrict b, int8_t* __restrict q,
                                            float* __restrict dl, float*) {
    Scales(b, LoadF16(b), dl);
    for (int ib = 0; ib < 8; ++ib) Lookup32(kIq4nl, b + 8 + 16 * ib, q + 32 * ib);
  }
#if GGUFSCOPE_HAVE_AVX2_KERNELS
  GGUFSCOPE_AVX2 static void DecodeAvx2(const uint8_t* b, int8_t* q, float* dl, float*) {
    Scales(b, LoadF16Avx2(b), dl);
    const __m256i book = Book(kIq4nl);
    for (int ib = 0; ib < 8; ++ib) {
      _mm256_store_si256(reinterpret_cast<__m256i*>(q + 32 * ib), Lookup32Avx2(book, b + 8 + 16 * ib));
    }
  }
#endif
};

// MXFP4, 17 B: u8 e (E8M0) | qs[16]; value = E8m0Half(e) * kE2m1[nibble].
struct Mxfp4 {
  static constexpr int kBlock = 32, kBytes = 17, kGroup = 32;
  static constexpr bool kMin = false;
  [[gnu::always_inline]] static void Decode(const uint8_t* __restrict b, int8_t* __restrict q,
                                            float* __restrict dl, float*) {
    dl[0] = E8m0Half(b[0]);
    Lookup32(kE2m1, b + 1, q);
  }
#if GGUFSCOPE_HAVE_AVX2_KERNELS
  GGUFSCOPE_AVX2 static void DecodeAvx2(const uint8_t* b, int8_t* q, float* dl, float*) {
    dl[0] = E8m0Half(b[0]);
    _mm256_store_si256(reinterpret_cast<__m256i*>(q), Lookup32Avx2(Book(kE2m1), b + 1));
  }
#endif
};

// Unsigned E4M3 (bias 7, bit 7 ignored) times 1/2, 0x00 and 0x7F as 0: every
// step exact in f32 (gguf/dequant.cc's Ue4m3Half).
inline float Ue4m3Half(uint8_t x) {
  if (x == 0 || x == 0x7F) return 0.0f;
  const int exp = (x >> 3) & 0xF;
  const float man = static_cast<float>(x & 7);
  const float raw = exp == 0 ? man * 0x1p-9f
                             : (1.0f + man / 8.0f) * std::bit_cast<float>(static_cast<uint32_t>(exp - 7 + 127) << 23);
  return raw * 0.5f;
}

// NVFP4, 36 B (64 elements): d[4] (UE4M3, one per 16) | qs[32] @4. Group s
// of 16: low nibbles of qs[8s..8s+7] are its elements 0..7, high nibbles
// 8..15; value = Ue4m3Half(d[s]) * kE2m1[nibble].
struct Nvfp4 {
  static constexpr int kBlock = 64, kBytes = 36, kGroup = 16;
  static constexpr bool kMin = false;
  [[gnu::always_inline]] static void Decode(const uint8_t* __restrict b, int8_t* __restrict q,
                                            float* __restrict dl, float*) {
    for (int s = 0; s < 4; ++s) {
      dl[s] = Ue4m3Half(b[s]);
      for (int j = 0; j < 8; ++j) {
        q[16 * s + j] = kE2m1[b[4 + 8 * s + j] & 0xF];
        q[16 * s + 8 + j] = kE2m1[b[4 + 8 * s + j] >> 4];
      }
    }
  }
#if GGUFSCOPE_HAVE_AVX2_KERNELS
  GGUFSCOPE_AVX2 static void DecodeAvx2(const uint8_t* b, int8_t* q, float* dl, float*) {
    for (int s = 0; s < 4; ++s) dl[s] = Ue4m3Half(b[s]);
    const __m256i book = Book(kE2m1);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    for (int k = 0; k < 2; ++k) {  // groups 2k, 2k+1: qs[16k..16k+15]
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 4 + 16 * k));
      const __m128i lo = _mm_and_si128(v, m4), hi = _mm_and_si128(_mm_srli_epi16(v, 4), m4);
      const __m256i idx = _mm256_set_m128i(_mm_unpackhi_epi64(lo, hi), _mm_unpacklo_epi64(lo, hi));
      _mm256_store_si256(reinterpret_cast<__m256i*>(q + 32 * k), _mm256_shuffle_epi8(book, idx));
    }
  }
#endif
};

// ---------------------------------------------------------------- 16-bit floats

// F16 and BF16 rows: a plain dot product of the converted values (both
// conversions are exact; cols need not be a multiple of 32).
template <bool kBf16>
[[gnu::always_inline]] inline void Rows16(const uint8_t* __restrict w, size_t rb, int64_t n, int64_t cols,
                                          const float* __restrict x, float* __restrict y) {
  const auto convert = [](uint16_t h) {
    return kBf16 ? std::bit_cast<float>(static_cast<uint32_t>(h) << 16) : gguf::HalfToFloatInline(h);
  };
  for (int64_t r = 0; r < n; ++r) {
    const uint8_t* a = w + static_cast<size_t>(r) * rb;
    float acc[32] = {};
    int64_t c = 0;
    for (; c + 32 <= cols; c += 32) {
      for (int i = 0; i < 32; ++i) acc[i] += convert(LoadU16(a + 2 * (c + i))) * x[c + i];
    }
    for (; c < cols; ++c) acc[0] += convert(LoadU16(a + 2 * c)) * x[c];
    y[r] = HSum(acc);
  }
}

#if GGUFSCOPE_HAVE_AVX2_KERNELS
// F16C's vcvtph2ps is exact (it only quiets signaling NaNs, and a NaN weight
// makes the dot NaN either way); BF16 is the top half of an f32.
template <bool kBf16>
GGUFSCOPE_AVX2 inline __m256 Load8(const uint8_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if constexpr (kBf16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  return _mm256_cvtph_ps(h);
}
template <bool kBf16>
GGUFSCOPE_AVX2 void Rows16Avx2(const uint8_t* w, size_t rb, int64_t n, int64_t cols, const float* x, float* y) {
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t r = 0; r < n; ++r) {
    const uint8_t* a = w + static_cast<size_t>(r) * rb;
    __m256 acc[4] = {zero, zero, zero, zero};
    int64_t c = 0;
    for (; c + 32 <= cols; c += 32) {
      for (int k = 0; k < 4; ++k) {
        acc[k] = _mm256_fmadd_ps(Load8<kBf16>(a + 2 * (c + 8 * k)), _mm256_loadu_ps(x + c + 8 * k), acc[k]);
      }
    }
    float s = Finish(acc);
    for (; c < cols; ++c) {
      const uint16_t h = LoadU16(a + 2 * c);
      s += (kBf16 ? std::bit_cast<float>(static_cast<uint32_t>(h) << 16) : gguf::HalfToFloatInline(h)) * x[c];
    }
    y[r] = s;
  }
}
#endif

// ---------------------------------------------------------------- instances

#define GGUFSCOPE_DECODED_KERNELS(T)                                                                 \
  GGUFSCOPE_KERNEL void Rows##T(const uint8_t* w, size_t rb, int64_t n, int64_t cols, const float* x, \
                                float* y) {                                                          \
    RowsDecoded<T>(w, rb, n, cols, x, y);                                                            \
  }

GGUFSCOPE_DECODED_KERNELS(Q2K)
GGUFSCOPE_DECODED_KERNELS(Q3K)
GGUFSCOPE_DECODED_KERNELS(Tq1)
GGUFSCOPE_DECODED_KERNELS(Tq2)
GGUFSCOPE_DECODED_KERNELS(Q1)
GGUFSCOPE_DECODED_KERNELS(Q2)
GGUFSCOPE_DECODED_KERNELS(Iq4Nl)
GGUFSCOPE_DECODED_KERNELS(Iq4Xs)
GGUFSCOPE_DECODED_KERNELS(Mxfp4)
GGUFSCOPE_DECODED_KERNELS(Nvfp4)
#undef GGUFSCOPE_DECODED_KERNELS

GGUFSCOPE_KERNEL void RowsF16(const uint8_t* w, size_t rb, int64_t n, int64_t cols, const float* x, float* y) {
  Rows16<false>(w, rb, n, cols, x, y);
}
GGUFSCOPE_KERNEL void RowsBf16(const uint8_t* w, size_t rb, int64_t n, int64_t cols, const float* x, float* y) {
  Rows16<true>(w, rb, n, cols, x, y);
}

}  // namespace

RowDotFn LowBitRowDot(gguf::GgmlType type, bool avx2) {
  using enum gguf::GgmlType;
#if GGUFSCOPE_HAVE_AVX2_KERNELS
  if (avx2) {
    switch (type) {
      case kQ2_K: return RowsDecodedAvx2<Q2K>;
      case kQ3_K: return RowsDecodedAvx2<Q3K>;
      case kTQ1_0: return RowsDecodedAvx2<Tq1>;
      case kTQ2_0: return RowsDecodedAvx2<Tq2>;
      case kQ1_0: return RowsDecodedAvx2<Q1>;
      case kQ2_0: return RowsDecodedAvx2<Q2>;
      case kIQ4_NL: return RowsDecodedAvx2<Iq4Nl>;
      case kIQ4_XS: return RowsDecodedAvx2<Iq4Xs>;
      case kMXFP4: return RowsDecodedAvx2<Mxfp4>;
      case kNVFP4: return RowsDecodedAvx2<Nvfp4>;
      case kF16: return Rows16Avx2<false>;
      case kBF16: return Rows16Avx2<true>;
      default: return nullptr;
    }
  }
#else
  (void)avx2;
#endif
  switch (type) {
    case kQ2_K: return RowsQ2K;
    case kQ3_K: return RowsQ3K;
    case kTQ1_0: return RowsTq1;
    case kTQ2_0: return RowsTq2;
    case kQ1_0: return RowsQ1;
    case kQ2_0: return RowsQ2;
    case kIQ4_NL: return RowsIq4Nl;
    case kIQ4_XS: return RowsIq4Xs;
    case kMXFP4: return RowsMxfp4;
    case kNVFP4: return RowsNvfp4;
    case kF16: return RowsF16;
    case kBF16: return RowsBf16;
    default: return nullptr;
  }
}

}  // namespace ggufscope::reference::dot_detail
