#include "reference_cpu/dot.h"

#include <cstddef>

#include "gguf/block_utils.h"
#include "reference_cpu/dot_simd.h"

// Kernels are compiled for the baseline and for x86-64-v3/v4 (AVX2/AVX-512),
// picked once at load time, as in gguf/dequant.cc. Each block's quants are
// unpacked to small integers and dequantized exactly as gguf/dequant.cc does
// (dl * q - ml), multiplied with x and accumulated in 32 lanes, summed once
// per row: summation order is the only difference from dequantizing first.

namespace ggufscope::reference {
namespace {

using dot_detail::Accum;
using dot_detail::HSum;

using gguf::LoadF16;
using gguf::LoadU32;

// Q4_0, 18 B: f16 d | u8 qs[16]; value = d * (nibble - 8), low nibbles first.
// Q4_1, 20 B: f16 d | f16 m | u8 qs[16]; value = d * nibble + m.
// Q5_0, 22 B: f16 d | u32 qh | u8 qs[16]; value = d * (nibble | bit << 4) - 16).
// Q5_1, 24 B: f16 d | f16 m | u32 qh | u8 qs[16]; value = d * (nibble | bit << 4) + m.
template <int kBytes, bool kMin, bool kHigh>
[[gnu::always_inline]] inline void RowsQ4Q5(const uint8_t* __restrict w, size_t row_bytes, int64_t n_rows,
                                            int64_t cols, const float* __restrict x, float* __restrict y) {
  constexpr int kQs = 2 + (kMin ? 2 : 0) + (kHigh ? 4 : 0);
  constexpr int kOffset = kMin ? 0 : (kHigh ? 16 : 8);
  for (int64_t r = 0; r < n_rows; ++r) {
    const uint8_t* b = w + static_cast<size_t>(r) * row_bytes;
    float acc[32] = {};
    for (int64_t c = 0; c < cols; c += 32, b += kBytes) {
      const uint8_t* qs = b + kQs;
      const uint32_t qh = kHigh ? LoadU32(b + (kMin ? 4 : 2)) : 0;
      int8_t q[32];
      for (int j = 0; j < 16; ++j) {
        int lo = qs[j] & 0xF, hi = qs[j] >> 4;
        if constexpr (kHigh) {
          lo |= static_cast<int>((qh >> j) << 4 & 0x10);
          hi |= static_cast<int>((qh >> (j + 12)) & 0x10);
        }
        q[j] = static_cast<int8_t>(lo - kOffset);
        q[j + 16] = static_cast<int8_t>(hi - kOffset);
      }
      Accum<32>(acc, LoadF16(b), kMin ? -LoadF16(b + 2) : 0.0f, q, x + c);
    }
    y[r] = HSum(acc);
  }
}

GGUFSCOPE_KERNEL void RowsQ4_0(const uint8_t* w, size_t rb, int64_t n, int64_t cols, const float* x, float* y) {
  RowsQ4Q5<18, false, false>(w, rb, n, cols, x, y);
}
GGUFSCOPE_KERNEL void RowsQ4_1(const uint8_t* w, size_t rb, int64_t n, int64_t cols, const float* x, float* y) {
  RowsQ4Q5<20, true, false>(w, rb, n, cols, x, y);
}
GGUFSCOPE_KERNEL void RowsQ5_0(const uint8_t* w, size_t rb, int64_t n, int64_t cols, const float* x, float* y) {
  RowsQ4Q5<22, false, true>(w, rb, n, cols, x, y);
}
GGUFSCOPE_KERNEL void RowsQ5_1(const uint8_t* w, size_t rb, int64_t n, int64_t cols, const float* x, float* y) {
  RowsQ4Q5<24, true, true>(w, rb, n, cols, x, y);
}

// Q8_0, 34 B: f16 d | i8 qs[32]; value = d * q.
GGUFSCOPE_KERNEL void RowsQ8_0(const uint8_t* w, size_t rb, int64_t n, int64_t cols, const float* x, float* y) {
  for (int64_t r = 0; r < n; ++r) {
    const uint8_t* b = w + static_cast<size_t>(r) * rb;
    float acc[32] = {};
    for (int64_t c = 0; c < cols; c += 32, b += 34) {
      Accum<32>(acc, LoadF16(b), 0.0f, reinterpret_cast<const int8_t*>(b + 2), x + c);
    }
    y[r] = HSum(acc);
  }
}

// Q4_K, 144 B / Q5_K, 176 B (layouts in gguf/dequant.cc): eight sub-blocks
// of 32, value = (d * sc) * q - (dmin * m).
template <bool kHigh>
[[gnu::always_inline]] inline void RowsQ45K(const uint8_t* __restrict w, size_t row_bytes, int64_t n_rows,
                                            int64_t cols, const float* __restrict x, float* __restrict y) {
  constexpr int kBytes = kHigh ? 176 : 144;
  for (int64_t r = 0; r < n_rows; ++r) {
    const uint8_t* b = w + static_cast<size_t>(r) * row_bytes;
    float acc[32] = {};
    for (int64_t c = 0; c < cols; c += 256, b += kBytes) {
      const float d = LoadF16(b), dmin = LoadF16(b + 2);
      const uint8_t* scales = b + 4;
      const uint8_t* qh = b + 16;
      const uint8_t* qs = b + (kHigh ? 48 : 16);
      for (int j = 0; j < 8; ++j) {
        int sc, m;
        gguf::UnpackScaleMinK4(scales, j, &sc, &m);
        const uint8_t* q = qs + 32 * (j / 2);
        const int shift = 4 * (j % 2);
        int8_t v[32];
        for (int l = 0; l < 32; ++l) {
          int e = (q[l] >> shift) & 0xF;
          if constexpr (kHigh) e |= ((qh[l] >> j) & 1) << 4;
          v[l] = static_cast<int8_t>(e);
        }
        const float* xs = x + c + 32 * j;
        Accum<32>(acc, d * static_cast<float>(sc), dmin * static_cast<float>(m), v, xs);
      }
    }
    y[r] = HSum(acc);
  }
}

GGUFSCOPE_KERNEL void RowsQ4_K(const uint8_t* w, size_t rb, int64_t n, int64_t cols, const float* x, float* y) {
  RowsQ45K<false>(w, rb, n, cols, x, y);
}
GGUFSCOPE_KERNEL void RowsQ5_K(const uint8_t* w, size_t rb, int64_t n, int64_t cols, const float* x, float* y) {
  RowsQ45K<true>(w, rb, n, cols, x, y);
}

// Q6_K, 210 B: u8 ql[128] | u8 qh[64] | i8 scales[16] | f16 d; sixteen
// sub-blocks of 16, value = (d * sc) * (q - 32).
GGUFSCOPE_KERNEL void RowsQ6_K(const uint8_t* w, size_t rb, int64_t n, int64_t cols, const float* x, float* y) {
  for (int64_t r = 0; r < n; ++r) {
    const uint8_t* b = w + static_cast<size_t>(r) * rb;
    float acc[32] = {};
    for (int64_t c = 0; c < cols; c += 256, b += 210) {
      const float d = LoadF16(b + 208);
      for (int h = 0; h < 2; ++h) {
        const uint8_t* ql = b + 64 * h;
        const uint8_t* qh = b + 128 + 32 * h;
        const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192 + 8 * h);
        int8_t v[128];  // element 32k + l of this half
        for (int l = 0; l < 32; ++l) {
          v[l] = static_cast<int8_t>(((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32);
          v[l + 32] = static_cast<int8_t>(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
          v[l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
          v[l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
        const float* xs = x + c + 128 * h;
        for (int s = 0; s < 8; ++s) {
          Accum<16>(acc + 16 * (s % 2), d * static_cast<float>(sc[s]), 0.0f, v + 16 * s, xs + 16 * s);
        }
      }
    }
    y[r] = HSum(acc);
  }
}

// F32 rows: a plain dot product.
GGUFSCOPE_KERNEL void RowsF32(const uint8_t* w, size_t rb, int64_t n, int64_t cols, const float* x, float* y) {
  for (int64_t r = 0; r < n; ++r) {
    const float* __restrict a = reinterpret_cast<const float*>(w + static_cast<size_t>(r) * rb);
    float acc[32] = {};
    int64_t c = 0;
    for (; c + 32 <= cols; c += 32) {
      for (int i = 0; i < 32; ++i) acc[i] += a[c + i] * x[c + i];
    }
    for (; c < cols; ++c) acc[0] += a[c] * x[c];
    y[r] = HSum(acc);
  }
}


#if GGUFSCOPE_HAVE_AVX2_KERNELS
using dot_detail::Finish;
using dot_detail::Fma32;
using dot_detail::LoadF16Avx2;
using dot_detail::kMaxBlockSums;
using dot_detail::Sum32;

// Hand-written AVX2 versions of the hot kernels (the auto-vectorized ones
// spill their accumulators): the same exact dequantized values (a multiply
// by the scale, then a subtraction of the min), FMA'd into four vectors of
// partial sums.

// 16 bytes of nibbles -> 32 bytes: low nibbles first, then high ones.
GGUFSCOPE_AVX2 inline __m256i Nibbles(const uint8_t* qs) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i m = _mm_set1_epi8(0x0F);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(b, 4), m), _mm_and_si128(b, m));
}

// Bit j of `bits` -> byte j as 0x10 or 0.
GGUFSCOPE_AVX2 inline __m256i BitsTo0x10(uint32_t bits) {
  const __m256i shuffle = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
  __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)), shuffle);
  const __m256i bit = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201));
  v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
  return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

template <int kBytes, bool kMin, bool kHigh>
GGUFSCOPE_AVX2 void RowsQ4Q5Avx2(const uint8_t* w, size_t rb, int64_t n, int64_t cols, const float* x, float* y) {
  constexpr int kQs = 2 + (kMin ? 2 : 0) + (kHigh ? 4 : 0);
  const __m256i offset = _mm256_set1_epi8(kMin ? 0 : (kHigh ? 16 : 8));
  float xsum[kMaxBlockSums];  // per block of 32, for the mins
  if constexpr (kMin) {
    for (int64_t c = 0; c < cols; c += 32) xsum[c / 32] = Sum32(x + c);
  }
  for (int64_t r = 0; r < n; ++r) {
    const uint8_t* b = w + static_cast<size_t>(r) * rb;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    float min_acc = 0;
    for (int64_t c = 0; c < cols; c += 32, b += kBytes) {
      __m256i q = Nibbles(b + kQs);
      if constexpr (kHigh) q = _mm256_or_si256(q, BitsTo0x10(LoadU32(b + (kMin ? 4 : 2))));
      q = _mm256_sub_epi8(q, offset);
      if constexpr (kMin) min_acc += LoadF16Avx2(b + 2) * xsum[c / 32];
      Fma32(acc, q, _mm256_set1_ps(LoadF16Avx2(b)), x + c);
    }
    y[r] = Finish(acc) + min_acc;
  }
}

GGUFSCOPE_AVX2 void RowsQ8_0Avx2(const uint8_t* w, size_t rb, int64_t n, int64_t cols, const float* x, float* y) {
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t r = 0; r < n; ++r) {
    const uint8_t* b = w + static_cast<size_t>(r) * rb;
    __m256 acc[4] = {zero, zero, zero, zero};
    for (int64_t c = 0; c < cols; c += 32, b += 34) {
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2));
      Fma32(acc, q, _mm256_set1_ps(LoadF16Avx2(b)), x + c);
    }
    y[r] = Finish(acc);
  }
}

template <bool kHigh>
GGUFSCOPE_AVX2 void RowsQ45KAvx2(const uint8_t* w, size_t rb, int64_t n, int64_t cols, const float* x, float* y) {
  constexpr int kBytes = kHigh ? 176 : 144;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  float xsum[kMaxBlockSums];  // per sub-block of 32, for the mins
  for (int64_t c = 0; c < cols; c += 32) xsum[c / 32] = Sum32(x + c);
  for (int64_t r = 0; r < n; ++r) {
    const uint8_t* b = w + static_cast<size_t>(r) * rb;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    float min_acc = 0;
    for (int64_t c = 0; c < cols; c += 256, b += kBytes) {
      const float d = LoadF16Avx2(b), dmin = LoadF16Avx2(b + 2);
      const uint8_t* qs = b + (kHigh ? 48 : 16);
      __m256i qh = kHigh ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16)) : _mm256_setzero_si256();
      for (int j = 0; j < 8; j += 2) {
        const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 16 * j));
        for (int h = 0; h < 2; ++h) {
          int sc, m;
          gguf::UnpackScaleMinK4(b + 4, j + h, &sc, &m);
          __m256i q = h == 0 ? _mm256_and_si256(bytes, m4) : _mm256_and_si256(_mm256_srli_epi16(bytes, 4), m4);
          if constexpr (kHigh) {
            // bit j+h of qh[l] is the 5th bit of element l
            const __m256i bit = _mm256_and_si256(qh, _mm256_set1_epi8(1));
            q = _mm256_or_si256(q, _mm256_slli_epi16(bit, 4));
            qh = _mm256_srli_epi16(qh, 1);
            qh = _mm256_and_si256(qh, _mm256_set1_epi8(0x7F));
          }
          min_acc += dmin * static_cast<float>(m) * xsum[(c + 32 * (j + h)) / 32];
          Fma32(acc, q, _mm256_set1_ps(d * static_cast<float>(sc)), x + c + 32 * (j + h));
        }
      }
    }
    y[r] = Finish(acc) - min_acc;
  }
}

GGUFSCOPE_AVX2 void RowsQ6_KAvx2(const uint8_t* w, size_t rb, int64_t n, int64_t cols, const float* x, float* y) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3), k32 = _mm256_set1_epi8(32);
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t r = 0; r < n; ++r) {
    const uint8_t* b = w + static_cast<size_t>(r) * rb;
    __m256 acc[4] = {zero, zero, zero, zero};
    for (int64_t c = 0; c < cols; c += 256, b += 210) {
      const float d = LoadF16Avx2(b + 208);
      for (int h = 0; h < 2; ++h) {
        const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 64 * h));
        const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 64 * h + 32));
        const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 128 + 32 * h));
        const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192 + 8 * h);
        const __m256i q[4] = {
            _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4)),
            _mm256_or_si256(_mm256_and_si256(l1, m4),
                            _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4)),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                            _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4)),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                            _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4))};
        for (int k = 0; k < 4; ++k) {
          // 32 elements 32k..32k+31 of this half: two sub-blocks of 16 with their own scales
          const __m256i v = _mm256_sub_epi8(q[k], k32);
          const __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
          const __m256i q32[4] = {_mm256_cvtepi8_epi32(lo), _mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)),
                                  _mm256_cvtepi8_epi32(hi), _mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))};
          const float* xs = x + c + 128 * h + 32 * k;
          for (int e = 0; e < 4; ++e) {
            const __m256 dl = _mm256_set1_ps(d * static_cast<float>(sc[2 * k + e / 2]));
            acc[e] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(q32[e]), _mm256_loadu_ps(xs + 8 * e)), dl, acc[e]);
          }
        }
      }
    }
    y[r] = Finish(acc);
  }
}

GGUFSCOPE_AVX2 void RowsQ4_0Avx2(const uint8_t* w, size_t rb, int64_t n, int64_t cols, const float* x, float* y) {
  RowsQ4Q5Avx2<18, false, false>(w, rb, n, cols, x, y);
}
GGUFSCOPE_AVX2 void RowsQ4_1Avx2(const uint8_t* w, size_t rb, int64_t n, int64_t cols, const float* x, float* y) {
  RowsQ4Q5Avx2<20, true, false>(w, rb, n, cols, x, y);
}
GGUFSCOPE_AVX2 void RowsQ5_0Avx2(const uint8_t* w, size_t rb, int64_t n, int64_t cols, const float* x, float* y) {
  RowsQ4Q5Avx2<22, false, true>(w, rb, n, cols, x, y);
}
GGUFSCOPE_AVX2 void RowsQ5_1Avx2(const uint8_t* w, size_t rb, int64_t n, int64_t cols, const float* x, float* y) {
  RowsQ4Q5Avx2<24, true, true>(w, rb, n, cols, x, y);
}
GGUFSCOPE_AVX2 void RowsQ4_KAvx2(const uint8_t* w, size_t rb, int64_t n, int64_t cols, const float* x, float* y) {
  RowsQ45KAvx2<false>(w, rb, n, cols, x, y);
}
GGUFSCOPE_AVX2 void RowsQ5_KAvx2(const uint8_t* w, size_t rb, int64_t n, int64_t cols, const float* x, float* y) {
  RowsQ45KAvx2<true>(w, rb, n, cols, x, y);
}
GGUFSCOPE_AVX2 void RowsF32Avx2(const uint8_t* w, size_t rb, int64_t n, int64_t cols, const float* x, float* y) {
  for (int64_t r = 0; r < n; ++r) {
    const float* a = reinterpret_cast<const float*>(w + static_cast<size_t>(r) * rb);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t c = 0;
    for (; c + 32 <= cols; c += 32) {
      for (int k = 0; k < 4; ++k) {
        acc[k] = _mm256_fmadd_ps(_mm256_loadu_ps(a + c + 8 * k), _mm256_loadu_ps(x + c + 8 * k), acc[k]);
      }
    }
    float s = Finish(acc);
    for (; c < cols; ++c) s += a[c] * x[c];
    y[r] = s;
  }
}

#endif
}  // namespace

RowDotFn FusedRowDot(gguf::GgmlType type, int64_t cols, bool allow_avx2) {
  static const bool avx2 = dot_detail::HasAvx2();
  const bool use_avx2 = avx2 && allow_avx2 && cols <= dot_detail::kMaxCols;
#if GGUFSCOPE_HAVE_AVX2_KERNELS
  if (use_avx2) {
    switch (type) {
      case gguf::GgmlType::kF32: return RowsF32Avx2;
      case gguf::GgmlType::kQ4_0: return RowsQ4_0Avx2;
      case gguf::GgmlType::kQ4_1: return RowsQ4_1Avx2;
      case gguf::GgmlType::kQ5_0: return RowsQ5_0Avx2;
      case gguf::GgmlType::kQ5_1: return RowsQ5_1Avx2;
      case gguf::GgmlType::kQ8_0: return RowsQ8_0Avx2;
      case gguf::GgmlType::kQ4_K: return RowsQ4_KAvx2;
      case gguf::GgmlType::kQ5_K: return RowsQ5_KAvx2;
      case gguf::GgmlType::kQ6_K: return RowsQ6_KAvx2;
      default: break;
    }
  }
#endif
  switch (type) {
    case gguf::GgmlType::kF32: return RowsF32;
    case gguf::GgmlType::kQ4_0: return RowsQ4_0;
    case gguf::GgmlType::kQ4_1: return RowsQ4_1;
    case gguf::GgmlType::kQ5_0: return RowsQ5_0;
    case gguf::GgmlType::kQ5_1: return RowsQ5_1;
    case gguf::GgmlType::kQ8_0: return RowsQ8_0;
    case gguf::GgmlType::kQ4_K: return RowsQ4_K;
    case gguf::GgmlType::kQ5_K: return RowsQ5_K;
    case gguf::GgmlType::kQ6_K: return RowsQ6_K;
    default: break;
  }
  if (const RowDotFn f = dot_detail::LowBitRowDot(type, use_avx2)) return f;
  return dot_detail::IqRowDot(type, use_avx2);
}

}  // namespace ggufscope::reference
