// Dequantization of every active ggml type to f32.
//
// Each type has one function over whole blocks, dispatched once per call by a
// switch in Dequantize (no per-element indirection). Blocks are read through
// byte offsets and memcpy loads rather than packed structs, so any alignment
// and any content is safe; the layout of each block is spelled out above its
// function.
//
// Exactness: every float expression below is written in the order gguf-py's
// numpy code evaluates it (e.g. Q4_1 is (d * q) + m, Q2_K is (d * sc) * q -
// (dmin * m)), and this file is built with -ffp-contract=off so the compiler
// cannot fuse a multiply and an add into one differently rounded FMA.
// Integer-to-float conversions of the small quant codes are exact.
//
// Speed: the loops have fixed trip counts and __restrict pointers (a float
// store could otherwise alias the uint8_t source), so the compiler can
// vectorize them at -O2; nothing allocates or calls through pointers.
#include "gguf/dequant.h"

#include "gguf/block_utils.h"

#include <array>
#include <bit>
#include <cstring>
#include <string>

// Kernels are compiled twice on x86-64: for the baseline (SSE2) and for
// x86-64-v3 (AVX2), picked once at load time. The wider vectors matter
// because numpy's own loops use them; the results are the same bits either
// way (no FMA contraction, the same IEEE operations in the same order).

namespace ggufscope::gguf {
namespace {

#include "gguf/iq_tables.inc"

constexpr size_t kQkK = 256;  // elements of a K / IQ / TQ super-block

// IQ4_NL and IQ4_XS codebook: a non-uniform 4-bit grid (ggml's kvalues_iq4nl).
constexpr float kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                    1,    13,   25,  38,  53,  69,  89,  113};

// MXFP4 and NVFP4 codebook: the E2M1 values doubled (ggml's kvalues_mxfp4);
// the block scales carry the compensating factor 1/2.
constexpr float kE2m1Values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// IQ2_XXS / IQ2_XS / IQ3_XXS store 7 sign bits per 8 values; the 8th sign is
// implied by even parity, so ksigns[i] = i with bit 7 set to parity(i).
constexpr auto kSigns = [] {
  std::array<uint8_t, 128> t{};
  for (unsigned i = 0; i < 128; ++i)
    t[i] = static_cast<uint8_t>(i | ((std::popcount(i) & 1u) << 7));
  return t;
}();


// The IQ2/IQ3 signs flip the sign bit of scale * grid. numpy multiplies by
// -1.0f, which leaves a NaN's sign alone (compilers would fold that multiply
// into a negation, so it is done on the bits). The products are NaN exactly
// when the block scale is, so the mask is chosen once per scale.
inline uint32_t SignFlipMask(float scale) { return scale == scale ? 0x80000000u : 0u; }
inline float FlipSign(float v, unsigned bit, uint32_t flip_mask) {
  return std::bit_cast<float>(std::bit_cast<uint32_t>(v) ^ ((bit << 31) & flip_mask));
}

// (d * q) + m. When both terms are NaN, IEEE leaves open whose payload the
// sum carries and the compiler may swap the operands of the add; numpy
// returns the first operand's, so a NaN product is passed through as is.
inline float MulAdd(float d, float q, float m) {
  const float p = d * q;
  const float sum = p + m;
  // Selected on the bits, so the compiler keeps it branch-free and vectorized.
  const uint32_t nan_mask = 0u - static_cast<uint32_t>(p != p);
  return std::bit_cast<float>((std::bit_cast<uint32_t>(p) & nan_mask) |
                              (std::bit_cast<uint32_t>(sum) & ~nan_mask));
}

// Byte i of kHighBitBytes[v] is 0x10 if bit i of v is set: spreads 8 packed
// bits (Q5_0/Q5_1 fifth bits, Q1_0 signs) over 8 bytes, so the main loops
// have no per-lane variable shifts.
constexpr auto kHighBitBytes = [] {
  std::array<uint64_t, 256> t{};
  for (unsigned i = 0; i < 256; ++i) {
    for (unsigned j = 0; j < 8; ++j) t[i] |= static_cast<uint64_t>(((i >> j) & 1u) << 4) << (8 * j);
  }
  return t;
}();

// The 8 * n_bytes bits at `bits` (bit j of the little-endian bit string at
// byte j / 8), one per byte as 0x10 or 0.
template <int kBytes>
inline void ExpandBits(const uint8_t* __restrict bits, uint8_t* __restrict out) {
  for (int i = 0; i < kBytes; ++i) std::memcpy(out + 8 * i, &kHighBitBytes[bits[i]], 8);
}

// ---------------------------------------------------------------- scalars

// Applies `convert` (stored element bytes -> float) to n elements of T. The
// body runs in fixed chunks of 16 so the compiler vectorizes it even at -O2,
// where it only vectorizes loops whose trip count it knows. Always inlined,
// so it is compiled for each kernel clone's target.
template <typename T, typename Convert>
[[gnu::always_inline]] inline void ConvertElements(const uint8_t* __restrict src, size_t n,
                                                   float* __restrict dst, Convert convert) {
  constexpr size_t kChunk = 16;
  const auto one = [&](size_t i) {
    T v;
    std::memcpy(&v, src + i * sizeof(T), sizeof(T));
    dst[i] = convert(v);
  };
  size_t i = 0;
  for (; i + kChunk <= n; i += kChunk) {
    for (size_t j = 0; j < kChunk; ++j) one(i + j);
  }
  for (; i < n; ++i) one(i);
}

// Plain numbers: round to nearest, like numpy's astype(float32).
template <typename T>
void ConvertScalars(const uint8_t* __restrict src, size_t n, float* __restrict dst) {
  ConvertElements<T>(src, n, dst, [](T v) { return static_cast<float>(v); });
}

void ConvertF16Soft(const uint8_t* __restrict src, size_t n, float* __restrict dst) {
  ConvertElements<uint16_t>(src, n, dst, [](uint16_t h) { return HalfToFloatInline(h); });
}
}  // namespace
}  // namespace ggufscope::gguf
#include <immintrin.h>
namespace ggufscope::gguf {
namespace {
// F16C: vcvtph2ps is exact for every half except signaling NaNs, which it
// quiets; numpy keeps them, so chunks holding any NaN take the software path.
__attribute__((target("avx2,f16c"))) void ConvertF16Hw(const uint8_t* __restrict src, size_t n,
                                                        float* __restrict dst) {
  size_t i = 0;
  const __m256i exp_mask = _mm256_set1_epi16(0x7C00);
  for (; i + 16 <= n; i += 16) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 2 * i));
    const __m256i special = _mm256_cmpeq_epi16(_mm256_and_si256(h, exp_mask), exp_mask);
    if (__builtin_expect(!_mm256_testz_si256(special, special), 0)) {
      ConvertF16Soft(src + 2 * i, 16, dst + i);
      continue;
    }
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm256_castsi256_si128(h)));
    _mm256_storeu_ps(dst + i + 8, _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1)));
  }
  ConvertF16Soft(src + 2 * i, n - i, dst + i);
}
void ConvertF16(const uint8_t* __restrict src, size_t n, float* __restrict dst) {
#if defined(__clang__)
  // clang 14 knows no "f16c" feature string; every AVX2 processor has F16C
  // (both are part of x86-64-v3).
  static const bool hw = __builtin_cpu_supports("avx2");
#else
  static const bool hw = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
#endif
  if (hw) ConvertF16Hw(src, n, dst); else ConvertF16Soft(src, n, dst);
}

GGUFSCOPE_KERNEL void ConvertBf16(const uint8_t* __restrict src, size_t n, float* __restrict dst) {
  ConvertElements<uint16_t>(
      src, n, dst, [](uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); });
}

// ---------------------------------------------------------------- 32-element blocks

// Q4_0, 18 B: f16 d | u8 qs[16]. Element j < 16 is the low nibble of qs[j],
// element j + 16 the high nibble. value = d * (q - 8).
GGUFSCOPE_KERNEL void DequantizeQ4_0(const uint8_t* __restrict src, size_t n_blocks,
                                     float* __restrict y) {
  for (size_t b = 0; b < n_blocks; ++b, src += 18, y += 32) {
    const float d = LoadF16(src);
    const uint8_t* qs = src + 2;
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>((qs[j] & 0xF) - 8);
      y[j + 16] = d * static_cast<float>((qs[j] >> 4) - 8);
    }
  }
}

// Q4_1, 20 B: f16 d | f16 m | u8 qs[16] (nibbles as Q4_0). value = (d * q) + m.
GGUFSCOPE_KERNEL void DequantizeQ4_1(const uint8_t* __restrict src, size_t n_blocks,
                                     float* __restrict y) {
  for (size_t b = 0; b < n_blocks; ++b, src += 20, y += 32) {
    const float d = LoadF16(src);
    const float m = LoadF16(src + 2);
    const uint8_t* qs = src + 4;
    for (int j = 0; j < 16; ++j) {
      y[j] = MulAdd(d, static_cast<float>(qs[j] & 0xF), m);
      y[j + 16] = MulAdd(d, static_cast<float>(qs[j] >> 4), m);
    }
  }
}

// Q5_0, 22 B: f16 d | u32 qh (bit j = 5th bit of element j) | u8 qs[16]
// (nibbles as Q4_0). value = d * (q - 16).
GGUFSCOPE_KERNEL void DequantizeQ5_0(const uint8_t* __restrict src, size_t n_blocks,
                                     float* __restrict y) {
  for (size_t b = 0; b < n_blocks; ++b, src += 22, y += 32) {
    const float d = LoadF16(src);
    uint8_t hb[32];
    ExpandBits<4>(src + 2, hb);
    const uint8_t* qs = src + 6;
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>(((qs[j] & 0xF) | hb[j]) - 16);
      y[j + 16] = d * static_cast<float>(((qs[j] >> 4) | hb[j + 16]) - 16);
    }
  }
}

// Q5_1, 24 B: f16 d | f16 m | u32 qh | u8 qs[16]. value = (d * q) + m.
GGUFSCOPE_KERNEL void DequantizeQ5_1(const uint8_t* __restrict src, size_t n_blocks,
                                     float* __restrict y) {
  for (size_t b = 0; b < n_blocks; ++b, src += 24, y += 32) {
    const float d = LoadF16(src);
    const float m = LoadF16(src + 2);
    uint8_t hb[32];
    ExpandBits<4>(src + 4, hb);
    const uint8_t* qs = src + 8;
    for (int j = 0; j < 16; ++j) {
      y[j] = MulAdd(d, static_cast<float>((qs[j] & 0xF) | hb[j]), m);
      y[j + 16] = MulAdd(d, static_cast<float>((qs[j] >> 4) | hb[j + 16]), m);
    }
  }
}

// Q8_0, 34 B: f16 d | i8 qs[32]. Q8_1, 36 B: f16 d | f16 s (= d * sum q, not
// needed here) | i8 qs[32]. value = d * q for both.
template <size_t kBlockBytes, size_t kQsOffset>
void DequantizeQ8(const uint8_t* __restrict src, size_t n_blocks, float* __restrict y) {
  for (size_t b = 0; b < n_blocks; ++b, src += kBlockBytes, y += 32) {
    const float d = LoadF16(src);
    const uint8_t* qs = src + kQsOffset;
    for (int j = 0; j < 32; ++j) y[j] = d * static_cast<float>(static_cast<int8_t>(qs[j]));
  }
}

// IQ4_NL, 18 B: f16 d | u8 qs[16] (nibbles as Q4_0, indexing kIq4nlValues).
GGUFSCOPE_KERNEL void DequantizeIq4Nl(const uint8_t* __restrict src, size_t n_blocks,
                                      float* __restrict y) {
  for (size_t b = 0; b < n_blocks; ++b, src += 18, y += 32) {
    const float d = LoadF16(src);
    const uint8_t* qs = src + 2;
    for (int j = 0; j < 16; ++j) {
      y[j] = d * kIq4nlValues[qs[j] & 0xF];
      y[j + 16] = d * kIq4nlValues[qs[j] >> 4];
    }
  }
}

// E8M0 exponent e to 2^(e-127) / 2 as float bits (ggml_e8m0_to_fp32_half);
// e < 2 lands in the subnormal range.
inline float E8m0Half(uint8_t e) {
  const uint32_t bits = e < 2 ? (0x00200000u << e) : (static_cast<uint32_t>(e - 1) << 23);
  return std::bit_cast<float>(bits);
}

// MXFP4, 17 B: u8 e (E8M0 scale) | u8 qs[16] (nibbles as Q4_0, indexing kE2m1Values).
GGUFSCOPE_KERNEL void DequantizeMxfp4(const uint8_t* __restrict src, size_t n_blocks,
                                      float* __restrict y) {
  for (size_t b = 0; b < n_blocks; ++b, src += 17, y += 32) {
    const float d = E8m0Half(src[0]);
    const uint8_t* qs = src + 1;
    for (int j = 0; j < 16; ++j) {
      y[j] = d * kE2m1Values[qs[j] & 0xF];
      y[j + 16] = d * kE2m1Values[qs[j] >> 4];
    }
  }
}

// Unsigned E4M3 (bias 7, bit 7 ignored) times 1/2; 0x00 and 0x7F decode as 0.
// Every step is exact in f32, so this equals gguf-py's ue4m3_to_fp32.
inline float Ue4m3Half(uint8_t x) {
  if (x == 0 || x == 0x7F) return 0.0f;
  const int exp = (x >> 3) & 0xF;
  const float man = static_cast<float>(x & 7);
  const float raw = exp == 0 ? man * 0x1p-9f
                             : (1.0f + man / 8.0f) *
                                   std::bit_cast<float>(static_cast<uint32_t>(exp - 7 + 127) << 23);
  return raw * 0.5f;
}

// NVFP4, 36 B (64 elements): u8 d[4] (UE4M3, one per 16 elements) | u8 qs[32].
// Sub-block s uses qs[8s .. 8s+7]: low nibbles give its elements 0..7, high
// nibbles 8..15, indexing kE2m1Values.
GGUFSCOPE_KERNEL void DequantizeNvfp4(const uint8_t* __restrict src, size_t n_blocks,
                                      float* __restrict y) {
  for (size_t b = 0; b < n_blocks; ++b, src += 36) {
    for (int s = 0; s < 4; ++s, y += 16) {
      const float d = Ue4m3Half(src[s]);
      const uint8_t* qs = src + 4 + 8 * s;
      for (int j = 0; j < 8; ++j) {
        y[j] = d * kE2m1Values[qs[j] & 0xF];
        y[j + 8] = d * kE2m1Values[qs[j] >> 4];
      }
    }
  }
}

// ---------------------------------------------------------------- Q1_0 and Q2_0

// Q1_0, 18 B: f16 d | u8 qs[16]; bit j%8 of qs[j/8] set gives +d, clear -d.
GGUFSCOPE_KERNEL void DequantizeQ1_0(const uint8_t* __restrict src, size_t n_blocks,
                                     float* __restrict y) {
  for (size_t b = 0; b < n_blocks; ++b, src += 18, y += 128) {
    // -d is d with the sign bit flipped (NaNs included, as in ggml and numpy).
    const uint32_t d_bits = std::bit_cast<uint32_t>(LoadF16(src));
    uint8_t bits[128];
    ExpandBits<16>(src + 2, bits);
    for (int j = 0; j < 128; ++j) {
      y[j] = std::bit_cast<float>(d_bits ^ (static_cast<uint32_t>(~bits[j] & 0x10u) << 27));
    }
  }
}

// kQ2Codes[v][k] = ((v >> 2k) & 3) - 1: the four Q2_0 values of a byte (a
// table, because per-lane variable shifts do not vectorize).
constexpr auto kQ2Codes = [] {
  std::array<std::array<float, 4>, 256> t{};
  for (int v = 0; v < 256; ++v) {
    for (int k = 0; k < 4; ++k) t[v][k] = static_cast<float>(((v >> (2 * k)) & 3) - 1);
  }
  return t;
}();

// Q2_0, 18 B (64 elements; ggml's QK2_0 is 64): f16 d | u8 qs[16]; code
// q = bits 2(j%4)..2(j%4)+1 of qs[j/4]; value = (q - 1) * d, i.e. -d, 0, +d, +2d.
GGUFSCOPE_KERNEL void DequantizeQ2_0(const uint8_t* __restrict src, size_t n_blocks,
                                     float* __restrict y) {
  for (size_t b = 0; b < n_blocks; ++b, src += 18, y += 64) {
    const float d = LoadF16(src);
    const uint8_t* qs = src + 2;
    for (int i = 0; i < 16; ++i) {
      for (int k = 0; k < 4; ++k) y[4 * i + k] = kQ2Codes[qs[i]][k] * d;
    }
  }
}

// ---------------------------------------------------------------- K quants (256 elements)

// Q2_K, 84 B: u8 scales[16] (low nibble scale, high nibble min, one per 16
// elements) | u8 qs[64] | f16 d | f16 dmin. Element h*128 + s*32 + l is bits
// 2s..2s+1 of qs[h*32 + l]. value = (d * sc) * q - (dmin * m).
GGUFSCOPE_KERNEL void DequantizeQ2_K(const uint8_t* __restrict src, size_t n_blocks,
                                     float* __restrict y) {
  for (size_t b = 0; b < n_blocks; ++b, src += 84) {
    const uint8_t* scales = src;
    const uint8_t* qs = src + 16;
    const float d = LoadF16(src + 80);
    const float dmin = LoadF16(src + 82);
    // 16 groups of 16 elements, in element order: half h, shift s, 16-run r.
    for (int g = 0; g < 16; ++g, y += 16) {
      const int h = g / 8, s = (g / 2) % 4, r = g % 2;
      const float dl = d * static_cast<float>(scales[g] & 0xF);
      const float ml = dmin * static_cast<float>(scales[g] >> 4);
      const uint8_t* q = qs + 32 * h + 16 * r;
      for (int l = 0; l < 16; ++l) y[l] = dl * static_cast<float>((q[l] >> (2 * s)) & 3) - ml;
    }
  }
}

// Q3_K, 110 B: u8 hmask[32] | u8 qs[64] | u8 scales[12] | f16 d.
// Low 2 bits of element h*128 + s*32 + l: bits 2s.. of qs[h*32 + l]; its high
// bit is bit (element / 32) of hmask[l], and a clear bit subtracts 4.
// 6-bit scale i (one per 16 elements, stored minus 32): low 4 bits from
// scales[i % 8] (nibble i / 8), high 2 bits from scales[8 + i % 4] (bits 2(i/4)..).
// value = (d * (sc - 32)) * q.
GGUFSCOPE_KERNEL void DequantizeQ3_K(const uint8_t* __restrict src, size_t n_blocks,
                                     float* __restrict y) {
  for (size_t b = 0; b < n_blocks; ++b, src += 110) {
    const uint8_t* hmask = src;
    const uint8_t* qs = src + 32;
    const uint8_t* sc = src + 96;
    const float d = LoadF16(src + 108);
    // 16 groups of 16 elements, in element order: half h, shift s, 16-run r.
    for (int g = 0; g < 16; ++g, y += 16) {
      const int h = g / 8, s = (g / 2) % 4, r = g % 2;
      const int lo = (sc[g % 8] >> (4 * (g / 8))) & 0xF;
      const int hi = (sc[8 + g % 4] >> (2 * (g / 4))) & 3;
      const float dl = d * static_cast<float>((lo | (hi << 4)) - 32);
      const uint8_t* q = qs + 32 * h + 16 * r;
      const uint8_t* m = hmask + 16 * r;
      const int hbit = 4 * h + s;  // element / 32
      for (int l = 0; l < 16; ++l) {
        const int low = (q[l] >> (2 * s)) & 3;
        const int sub = ((m[l] >> hbit) & 1) ? 0 : 4;
        y[l] = dl * static_cast<float>(low - sub);
      }
    }
  }
}

// Q4_K, 144 B: f16 d | f16 dmin | u8 scales[12] | u8 qs[128]. Sub-block j
// (32 elements) is nibble j % 2 of qs[32*(j/2) .. +31].
// value = (d * sc) * q - (dmin * m).
// Q5_K, 176 B: f16 d | f16 dmin | u8 scales[12] | u8 qh[32] | u8 qs[128];
// the 5th bit of element l of sub-block j is bit j of qh[l].
template <bool kHasHighBit>
[[gnu::always_inline]] inline void DequantizeQ45_KBody(const uint8_t* __restrict src, size_t n_blocks,
                                                       float* __restrict y) {
  constexpr size_t kBlockBytes = kHasHighBit ? 176 : 144;
  for (size_t b = 0; b < n_blocks; ++b, src += kBlockBytes, y += kQkK) {
    const float d = LoadF16(src);
    const float dmin = LoadF16(src + 2);
    const uint8_t* scales = src + 4;
    const uint8_t* qh = src + 16;
    const uint8_t* qs = src + (kHasHighBit ? 48 : 16);
    float dl[8], ml[8];
    for (int j = 0; j < 8; ++j) {
      int sc, m;
      UnpackScaleMinK4(scales, j, &sc, &m);
      dl[j] = d * static_cast<float>(sc);
      ml[j] = dmin * static_cast<float>(m);
    }
    for (int j = 0; j < 8; ++j) {
      const uint8_t* q = qs + 32 * (j / 2);
      const int shift = 4 * (j % 2);
      for (int l = 0; l < 32; ++l) {
        int v = (q[l] >> shift) & 0xF;
        if constexpr (kHasHighBit) v |= ((qh[l] >> j) & 1) << 4;
        y[32 * j + l] = dl[j] * static_cast<float>(v) - ml[j];
      }
    }
  }
}
GGUFSCOPE_KERNEL void DequantizeQ4_K(const uint8_t* __restrict src, size_t n, float* __restrict y) {
  DequantizeQ45_KBody<false>(src, n, y);
}
GGUFSCOPE_KERNEL void DequantizeQ5_K(const uint8_t* __restrict src, size_t n, float* __restrict y) {
  DequantizeQ45_KBody<true>(src, n, y);
}

// Q6_K, 210 B: u8 ql[128] | u8 qh[64] | i8 scales[16] | f16 d. In half h,
// element e = s*64 + m has low nibble s of ql[h*64 + m]; element e = k*32 + l
// has high 2 bits at bits 2k.. of qh[h*32 + l]. value = (d * sc) * (q - 32).
GGUFSCOPE_KERNEL void DequantizeQ6_K(const uint8_t* __restrict src, size_t n_blocks,
                                     float* __restrict y) {
  for (size_t b = 0; b < n_blocks; ++b, src += 210) {
    const float d = LoadF16(src + 208);
    // Half h: 128 elements from ql[64h..], qh[32h..], scales[8h..]. Element
    // 32k + l (k = 0..3) takes nibble k/2 of ql[l + 32(k%2)] and bits 2k.. of qh[l].
    for (int h = 0; h < 2; ++h, y += 128) {
      const uint8_t* ql = src + 64 * h;
      const uint8_t* qh = src + 128 + 32 * h;
      const uint8_t* sc = src + 192 + 8 * h;
      for (int r = 0; r < 2; ++r) {
        float dl[4];
        for (int k = 0; k < 4; ++k) dl[k] = d * static_cast<float>(static_cast<int8_t>(sc[2 * k + r]));
        for (int l = 16 * r; l < 16 * r + 16; ++l) {
          const int q1 = (ql[l] & 0xF) | ((qh[l] & 3) << 4);
          const int q2 = (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4);
          const int q3 = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
          const int q4 = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
          y[l] = dl[0] * static_cast<float>(q1 - 32);
          y[l + 32] = dl[1] * static_cast<float>(q2 - 32);
          y[l + 64] = dl[2] * static_cast<float>(q3 - 32);
          y[l + 96] = dl[3] * static_cast<float>(q4 - 32);
        }
      }
    }
  }
}

// Q8_K, 292 B: f32 d | i8 qs[256] | i16 bsums[16] (not needed). value = d * q.
GGUFSCOPE_KERNEL void DequantizeQ8_K(const uint8_t* __restrict src, size_t n_blocks,
                                     float* __restrict y) {
  for (size_t b = 0; b < n_blocks; ++b, src += 292, y += kQkK) {
    float d;
    std::memcpy(&d, src, sizeof d);
    for (size_t j = 0; j < kQkK; ++j)
      y[j] = d * static_cast<float>(static_cast<int8_t>(src[4 + j]));
  }
}

// ---------------------------------------------------------------- ternary

// Base-3 digit k of a TQ1_0 byte v (a fixed-point fraction of 243), minus 1:
// v * 3^k wraps mod 256, and the top of that fraction times 3 is the digit.
inline float Tq1Digit(uint8_t v, unsigned pow3) {
  const unsigned shifted = (v * pow3) & 0xFFu;
  return static_cast<float>(static_cast<int>((shifted * 3u) >> 8) - 1);
}

// TQ1_0, 54 B: u8 qs[48] | u8 qh[4] | f16 d; 5 digits per qs byte, 4 per qh
// byte. Elements: k*32 + l from qs[l] (l < 32), then 160 + k*16 + l from
// qs[32 + l], then 240 + k*4 + l from qh[l]. value = d * (digit - 1).
GGUFSCOPE_KERNEL void DequantizeTq1_0(const uint8_t* __restrict src, size_t n_blocks,
                                      float* __restrict y) {
  constexpr unsigned kPow3[5] = {1, 3, 9, 27, 81};
  for (size_t b = 0; b < n_blocks; ++b, src += 54, y += kQkK) {
    const float d = LoadF16(src + 52);
    for (int k = 0; k < 5; ++k) {
      for (int l = 0; l < 32; ++l) y[k * 32 + l] = d * Tq1Digit(src[l], kPow3[k]);
      for (int l = 0; l < 16; ++l) y[160 + k * 16 + l] = d * Tq1Digit(src[32 + l], kPow3[k]);
    }
    for (int k = 0; k < 4; ++k) {
      for (int l = 0; l < 4; ++l) y[240 + k * 4 + l] = d * Tq1Digit(src[48 + l], kPow3[k]);
    }
  }
}

// TQ2_0, 66 B: u8 qs[64] | f16 d. Element h*128 + s*32 + l is bits 2s.. of
// qs[h*32 + l]. value = d * (q - 1).
GGUFSCOPE_KERNEL void DequantizeTq2_0(const uint8_t* __restrict src, size_t n_blocks,
                                      float* __restrict y) {
  for (size_t b = 0; b < n_blocks; ++b, src += 66, y += kQkK) {
    const float d = LoadF16(src + 64);
    for (int h = 0; h < 2; ++h) {
      for (int s = 0; s < 4; ++s) {
        for (int l = 0; l < 32; ++l) {
          const int q = (src[h * 32 + l] >> (2 * s)) & 3;
          y[h * 128 + s * 32 + l] = d * static_cast<float>(q - 1);
        }
      }
    }
  }
}

// ---------------------------------------------------------------- IQ quants (256 elements)

// Writes 8 values db * grid[j] * sign_j (sign bit j of `signs`; see FlipSign).
inline void EmitSigned8(float db, uint32_t flip_mask, const uint8_t* __restrict grid,
                        unsigned signs, float* __restrict y) {
  for (unsigned j = 0; j < 8; ++j) {
    y[j] = FlipSign(db * static_cast<float>(grid[j]), (signs >> j) & 1u, flip_mask);
  }
}

// IQ2_XXS, 66 B: f16 d | 8 x (u32 aux0, u32 aux1), one pair per 32 elements.
// aux0's 4 bytes index kIq2xxsGrid (8 values each); aux1 holds four 7-bit
// sign indices into kSigns (bits 7l..) and a 4-bit scale in bits 28..31.
// value = (d * (0.5 + scale)) * 0.25 * grid * sign.
GGUFSCOPE_KERNEL void DequantizeIq2Xxs(const uint8_t* __restrict src, size_t n_blocks,
                                       float* __restrict y) {
  for (size_t b = 0; b < n_blocks; ++b, src += 66) {
    const float d = LoadF16(src);
    for (int ib = 0; ib < 8; ++ib) {
      const uint32_t aux0 = LoadU32(src + 2 + 8 * ib);
      const uint32_t aux1 = LoadU32(src + 6 + 8 * ib);
      const float db = d * (0.5f + static_cast<float>(aux1 >> 28)) * 0.25f;
      const uint32_t flip = SignFlipMask(db);
      for (int l = 0; l < 4; ++l, y += 8) {
        EmitSigned8(db, flip, kIq2xxsGrid[(aux0 >> (8 * l)) & 0xFF],
                    kSigns[(aux1 >> (7 * l)) & 0x7F], y);
      }
    }
  }
}

// IQ2_XS, 74 B: f16 d | u16 qs[32] | u8 scales[8]. Each qs entry covers 8
// elements: bits 0..8 index kIq2xsGrid, bits 9..15 index kSigns. 4-bit scale
// g/2 (nibble (g/2) % 2 of scales[g/4]) covers entries g. value as IQ2_XXS.
GGUFSCOPE_KERNEL void DequantizeIq2Xs(const uint8_t* __restrict src, size_t n_blocks,
                                      float* __restrict y) {
  for (size_t b = 0; b < n_blocks; ++b, src += 74) {
    const float d = LoadF16(src);
    const uint8_t* scales = src + 66;
    for (int g = 0; g < 32; g += 2) {
      const int ls = (scales[g / 4] >> (4 * ((g / 2) % 2))) & 0xF;
      const float db = d * (0.5f + static_cast<float>(ls)) * 0.25f;
      const uint32_t flip = SignFlipMask(db);
      for (int k = g; k < g + 2; ++k, y += 8) {
        const uint16_t q = LoadU16(src + 2 + 2 * k);
        EmitSigned8(db, flip, kIq2xsGrid[q & 511], kSigns[q >> 9], y);
      }
    }
  }
}

// IQ2_S, 82 B: f16 d | u8 qs[32] | u8 signs[32] | u8 qh[8] | u8 scales[8].
// Entry g (8 elements) indexes kIq2sGrid with qs[g] | (2 bits 2(g%4).. of
// qh[g/4]) << 8; element e's sign is bit e%8 of signs[e/8]; scales as IQ2_XS.
GGUFSCOPE_KERNEL void DequantizeIq2S(const uint8_t* __restrict src, size_t n_blocks,
                                     float* __restrict y) {
  for (size_t b = 0; b < n_blocks; ++b, src += 82) {
    const float d = LoadF16(src);
    const uint8_t* qs = src + 2;
    const uint8_t* signs = src + 34;
    const uint8_t* qh = src + 66;
    const uint8_t* scales = src + 74;
    for (int g = 0; g < 32; g += 2) {
      const int ls = (scales[g / 4] >> (4 * ((g / 2) % 2))) & 0xF;
      const float db = d * (0.5f + static_cast<float>(ls)) * 0.25f;
      const uint32_t flip = SignFlipMask(db);
      for (int k = g; k < g + 2; ++k, y += 8) {
        const int idx = qs[k] | (((qh[k / 4] >> (2 * (k % 4))) & 3) << 8);
        EmitSigned8(db, flip, kIq2sGrid[idx], signs[k], y);
      }
    }
  }
}

// IQ3_XXS, 98 B: f16 d | u8 qs[64] | u32 aux[8]. Each qs byte indexes
// kIq3xxsGrid (4 values); aux[ib] (32 elements) holds four 7-bit sign indices
// (bits 7l.., 8 elements each) and a 4-bit scale in bits 28..31.
// value = (d * (0.5 + scale)) * 0.5 * grid * sign.
GGUFSCOPE_KERNEL void DequantizeIq3Xxs(const uint8_t* __restrict src, size_t n_blocks,
                                       float* __restrict y) {
  for (size_t b = 0; b < n_blocks; ++b, src += 98) {
    const float d = LoadF16(src);
    const uint8_t* qs = src + 2;
    for (int ib = 0; ib < 8; ++ib) {
      const uint32_t aux = LoadU32(src + 66 + 4 * ib);
      const float db = d * (0.5f + static_cast<float>(aux >> 28)) * 0.5f;
      const uint32_t flip = SignFlipMask(db);
      for (int l = 0; l < 4; ++l, y += 8) {
        uint8_t row[8];
        std::memcpy(row, kIq3xxsGrid[qs[8 * ib + 2 * l]], 4);
        std::memcpy(row + 4, kIq3xxsGrid[qs[8 * ib + 2 * l + 1]], 4);
        EmitSigned8(db, flip, row, kSigns[(aux >> (7 * l)) & 0x7F], y);
      }
    }
  }
}

// IQ3_S, 110 B: f16 d | u8 qs[64] | u8 qh[8] | u8 signs[32] | u8 scales[4].
// Entry g (4 elements) indexes kIq3sGrid with qs[g] | (bit g%8 of qh[g/8]) << 8;
// sign bits as IQ2_S; scale ib (32 elements) is nibble ib%2 of scales[ib/2].
// value = (d * (1 + 2 * scale)) * grid * sign.
GGUFSCOPE_KERNEL void DequantizeIq3S(const uint8_t* __restrict src, size_t n_blocks,
                                     float* __restrict y) {
  for (size_t b = 0; b < n_blocks; ++b, src += 110) {
    const float d = LoadF16(src);
    const uint8_t* qs = src + 2;
    const uint8_t* qh = src + 66;
    const uint8_t* signs = src + 74;
    const uint8_t* scales = src + 106;
    for (int ib = 0; ib < 8; ++ib) {
      const int ls = (scales[ib / 2] >> (4 * (ib % 2))) & 0xF;
      const float db = d * static_cast<float>(1 + 2 * ls);
      const uint32_t flip = SignFlipMask(db);
      for (int l = 0; l < 4; ++l, y += 8) {
        const int g = 8 * ib + 2 * l;
        uint8_t row[8];
        std::memcpy(row, kIq3sGrid[qs[g] | (((qh[ib] >> (2 * l)) & 1) << 8)], 4);
        std::memcpy(row + 4, kIq3sGrid[qs[g + 1] | (((qh[ib] >> (2 * l + 1)) & 1) << 8)], 4);
        EmitSigned8(db, flip, row, signs[4 * ib + l], y);
      }
    }
  }
}

// IQ1's grid offset: +0.125 or, with the sign bit set, -0.125 (chosen on the
// bits to stay branch-free: the sign bits are effectively random).
inline float Iq1Delta(unsigned negative) {
  return std::bit_cast<float>(0x3E000000u | (static_cast<uint32_t>(negative != 0) << 31));
}

// Writes 8 values dl * (grid[j] + delta).
inline void EmitIq1(float dl, float delta, const int8_t* grid, float* y) {
  for (int j = 0; j < 8; ++j) y[j] = dl * (static_cast<float>(grid[j]) + delta);
}

// IQ1_S, 50 B: f16 d | u8 qs[32] | u16 qh[8]. qh[ib] (32 elements): bits
// 3l..3l+2 extend qs[4ib + l] to an 11-bit kIq1sGrid index, bits 12..14 the
// scale, bit 15 the sign of delta. value = (d * (2 * scale + 1)) * (grid + delta).
GGUFSCOPE_KERNEL void DequantizeIq1S(const uint8_t* __restrict src, size_t n_blocks,
                                     float* __restrict y) {
  for (size_t b = 0; b < n_blocks; ++b, src += 50) {
    const float d = LoadF16(src);
    const uint8_t* qs = src + 2;
    for (int ib = 0; ib < 8; ++ib) {
      const unsigned qh = LoadU16(src + 34 + 2 * ib);
      const float dl = d * static_cast<float>(2 * ((qh >> 12) & 7) + 1);
      const float delta = Iq1Delta(qh & 0x8000);
      for (int l = 0; l < 4; ++l, y += 8) {
        EmitIq1(dl, delta, kIq1sGrid[qs[4 * ib + l] | (((qh >> (3 * l)) & 7) << 8)], y);
      }
    }
  }
}

// IQ1_M, 56 B: u8 qs[32] | u8 qh[16] | u16 sc[4]. The f16 d is the top
// nibbles of sc[0..3] (sc[0] lowest). Entry g (8 elements): nibble g%2 of
// qh[g/2] gives 3 index bits above qs[g] and (bit 3) the sign of delta. Each
// 16 elements have a 3-bit scale: half h of ib is bits 6(ib%2)+3h.. of sc[ib/2].
GGUFSCOPE_KERNEL void DequantizeIq1M(const uint8_t* __restrict src, size_t n_blocks,
                                     float* __restrict y) {
  for (size_t b = 0; b < n_blocks; ++b, src += 56) {
    const uint8_t* qs = src;
    const uint8_t* qh = src + 32;
    unsigned sc[4];
    for (int i = 0; i < 4; ++i) sc[i] = LoadU16(src + 48 + 2 * i);
    const auto d_bits = static_cast<uint16_t>((sc[0] >> 12) | ((sc[1] >> 8) & 0xF0) |
                                              ((sc[2] >> 4) & 0xF00) | (sc[3] & 0xF000));
    const float d = HalfToFloatInline(d_bits);
    // 16 runs of 16 elements (two grid entries each), one scale per run.
    for (int r = 0; r < 16; ++r) {
      const unsigned s = (sc[r / 4] >> (3 * (r % 4))) & 7;
      const float dl = d * static_cast<float>(2 * s + 1);
      const unsigned lo = qh[r] & 0xF, hi = qh[r] >> 4;
      EmitIq1(dl, Iq1Delta(lo & 8), kIq1sGrid[qs[2 * r] | ((lo & 7) << 8)], y);
      EmitIq1(dl, Iq1Delta(hi & 8), kIq1sGrid[qs[2 * r + 1] | ((hi & 7) << 8)], y + 8);
      y += 16;
    }
  }
}

// IQ4_XS, 136 B: f16 d | u16 scales_h | u8 scales_l[4] | u8 qs[128]. 6-bit
// scale ib (32 elements, stored plus 32): nibble ib%2 of scales_l[ib/2], high
// bits 2ib.. of scales_h. Sub-block ib is qs[16ib .. +15], nibbles as Q4_0,
// indexing kIq4nlValues. value = (d * (scale - 32)) * kv.
GGUFSCOPE_KERNEL void DequantizeIq4Xs(const uint8_t* __restrict src, size_t n_blocks,
                                      float* __restrict y) {
  for (size_t b = 0; b < n_blocks; ++b, src += 136) {
    const float d = LoadF16(src);
    const unsigned scales_h = LoadU16(src + 2);
    const uint8_t* scales_l = src + 4;
    for (int ib = 0; ib < 8; ++ib, y += 32) {
      const int ls = static_cast<int>(((scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF) |
                                      (((scales_h >> (2 * ib)) & 3) << 4));
      const float dl = d * static_cast<float>(ls - 32);
      const uint8_t* qs = src + 8 + 16 * ib;
      for (int j = 0; j < 16; ++j) {
        y[j] = dl * kIq4nlValues[qs[j] & 0xF];
        y[j + 16] = dl * kIq4nlValues[qs[j] >> 4];
      }
    }
  }
}

Error SizeError(std::string field, std::string expected, std::string actual) {
  return Error{ErrorCode::kInvalidArgument, std::move(field), Error::kNoOffset, std::move(expected),
               std::move(actual)};
}

}  // namespace

float HalfToFloat(uint16_t h) { return HalfToFloatInline(h); }

float Bf16ToFloat(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

bool CanDequantize(GgmlType type) {
  const auto traits = LookupType(static_cast<uint32_t>(type));
  return traits.has_value() && traits->status == TypeStatus::kActive;
}

Status Dequantize(GgmlType type, std::span<const uint8_t> src, uint64_t n_elements,
                  std::span<float> dst) {
  const auto traits = LookupType(static_cast<uint32_t>(type));
  if (!traits || traits->status != TypeStatus::kActive) {
    return SizeError("type", "an active ggml type", std::to_string(static_cast<uint32_t>(type)));
  }
  if (n_elements % traits->block_size != 0) {
    return SizeError("n_elements",
                     "a multiple of " + std::to_string(traits->block_size) + " (" +
                         std::string(traits->name) + " block size)",
                     std::to_string(n_elements));
  }
  const uint64_t n_blocks = n_elements / traits->block_size;
  uint64_t need = 0;
  if (__builtin_mul_overflow(n_blocks, uint64_t{traits->type_size}, &need) || src.size() < need) {
    return SizeError("src", "at least " + std::to_string(need) + " bytes",
                     std::to_string(src.size()) + " bytes");
  }
  if (dst.size() < n_elements) {
    return SizeError("dst", "room for " + std::to_string(n_elements) + " floats",
                     std::to_string(dst.size()));
  }
  const uint8_t* s = src.data();
  float* y = dst.data();
  const size_t n = static_cast<size_t>(n_blocks);
  // Each case names the block geometry its kernel reads; checking it against
  // the type table keeps a changed table from turning into an out-of-bounds read.
  const auto run = [&](uint32_t block_size, uint32_t type_size, auto kernel) -> Status {
    if (block_size != traits->block_size || type_size != traits->type_size) {
      return Error{ErrorCode::kUnsupported, "type " + std::string(traits->name), Error::kNoOffset,
                   "block of " + std::to_string(block_size) + " elements in " +
                       std::to_string(type_size) + " bytes (as the dequantizer reads it)",
                   std::to_string(traits->block_size) + " elements in " +
                       std::to_string(traits->type_size) + " bytes"};
    }
    kernel(s, n, y);
    return {};
  };
  // clang-format off
  switch (type) {
    case GgmlType::kF32: return run(1, 4, [](const uint8_t* x, size_t k, float* out) {
      if (k != 0) std::memcpy(out, x, k * sizeof(float));
    });
    case GgmlType::kF16: return run(1, 2, ConvertF16);
    case GgmlType::kBF16: return run(1, 2, ConvertBf16);
    case GgmlType::kF64: return run(1, 8, ConvertScalars<double>);
    case GgmlType::kI8: return run(1, 1, ConvertScalars<int8_t>);
    case GgmlType::kI16: return run(1, 2, ConvertScalars<int16_t>);
    case GgmlType::kI32: return run(1, 4, ConvertScalars<int32_t>);
    case GgmlType::kI64: return run(1, 8, ConvertScalars<int64_t>);
    case GgmlType::kQ4_0: return run(32, 18, DequantizeQ4_0);
    case GgmlType::kQ4_1: return run(32, 20, DequantizeQ4_1);
    case GgmlType::kQ5_0: return run(32, 22, DequantizeQ5_0);
    case GgmlType::kQ5_1: return run(32, 24, DequantizeQ5_1);
    case GgmlType::kQ8_0: return run(32, 34, DequantizeQ8<34, 2>);
    case GgmlType::kQ8_1: return run(32, 36, DequantizeQ8<36, 4>);
    case GgmlType::kQ2_K: return run(256, 84, DequantizeQ2_K);
    case GgmlType::kQ3_K: return run(256, 110, DequantizeQ3_K);
    case GgmlType::kQ4_K: return run(256, 144, DequantizeQ4_K);
    case GgmlType::kQ5_K: return run(256, 176, DequantizeQ5_K);
    case GgmlType::kQ6_K: return run(256, 210, DequantizeQ6_K);
    case GgmlType::kQ8_K: return run(256, 292, DequantizeQ8_K);
    case GgmlType::kIQ2_XXS: return run(256, 66, DequantizeIq2Xxs);
    case GgmlType::kIQ2_XS: return run(256, 74, DequantizeIq2Xs);
    case GgmlType::kIQ2_S: return run(256, 82, DequantizeIq2S);
    case GgmlType::kIQ3_XXS: return run(256, 98, DequantizeIq3Xxs);
    case GgmlType::kIQ3_S: return run(256, 110, DequantizeIq3S);
    case GgmlType::kIQ1_S: return run(256, 50, DequantizeIq1S);
    case GgmlType::kIQ1_M: return run(256, 56, DequantizeIq1M);
    case GgmlType::kIQ4_NL: return run(32, 18, DequantizeIq4Nl);
    case GgmlType::kIQ4_XS: return run(256, 136, DequantizeIq4Xs);
    case GgmlType::kTQ1_0: return run(256, 54, DequantizeTq1_0);
    case GgmlType::kTQ2_0: return run(256, 66, DequantizeTq2_0);
    case GgmlType::kMXFP4: return run(32, 17, DequantizeMxfp4);
    case GgmlType::kNVFP4: return run(64, 36, DequantizeNvfp4);
    case GgmlType::kQ1_0: return run(128, 18, DequantizeQ1_0);
    case GgmlType::kQ2_0: return run(64, 18, DequantizeQ2_0);
  }
  // clang-format on
  return SizeError("type", "an active ggml type", std::to_string(static_cast<uint32_t>(type)));
}

}  // namespace ggufscope::gguf
