// Building blocks shared by the fused decode kernels (dot.cc: the 4-8 bit
// types; dot_lowbit.cc: the K/ternary/1-2 bit/FP4 and 16-bit float types;
// dot_iq.cc: the IQ grid types). Internal to reference_cpu.
//
// Every kernel turns a block into small integer codes q and f32 scales such
// that scale * q (- min) is exactly gguf::Dequantize's value, then
// accumulates value * x in f32 lanes and sums the lanes once per row.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define GGUFSCOPE_HAVE_AVX2_KERNELS 1
#define GGUFSCOPE_AVX2 __attribute__((target("avx2,fma,f16c")))
#else
#define GGUFSCOPE_HAVE_AVX2_KERNELS 0
#endif

#include "gguf/block_utils.h"
#include "reference_cpu/dot.h"

namespace ggufscope::reference::dot_detail {

// acc[i] += (dl * q[i] - ml) * x[i]: the exact dequantized value times x,
// accumulated lane-wise (no horizontal sum per block; one per row, HSum).
template <int n>
[[gnu::always_inline]] inline void Accum(float* __restrict acc, float dl, float ml,
                                         const int8_t* __restrict q, const float* __restrict x) {
  for (int i = 0; i < n; ++i) acc[i] += (dl * static_cast<float>(q[i]) - ml) * x[i];
}

[[gnu::always_inline]] inline float HSum(float* acc) {
  for (int w = 16; w > 0; w /= 2) {
    for (int i = 0; i < w; ++i) acc[i] += acc[i + w];
  }
  return acc[0];
}

// Portable kernel over any block type T that decodes one block into codes
// and scales (see dot_lowbit.cc / dot_iq.cc):
//   T::kBlock elements in T::kBytes bytes, one scale per T::kGroup (16 or 32)
//   elements; T::Decode(block, q[kBlock], dl[kBlock / kGroup],
//   ml[kBlock / kGroup]) writes codes with dl * q - ml = the dequantized
//   value (T::kMin false: ml is not written, and taken as 0).
template <class T>
[[gnu::always_inline]] inline void RowsDecoded(const uint8_t* __restrict w, size_t row_bytes,
                                               int64_t n_rows, int64_t cols,
                                               const float* __restrict x, float* __restrict y) {
  constexpr int kGroups = T::kBlock / T::kGroup;
  for (int64_t r = 0; r < n_rows; ++r) {
    const uint8_t* b = w + static_cast<size_t>(r) * row_bytes;
    float acc[32] = {};
    for (int64_t c = 0; c < cols; c += T::kBlock, b += T::kBytes) {
      int8_t q[T::kBlock];
      float dl[kGroups], ml[kGroups] = {};
      T::Decode(b, q, dl, ml);
      for (int g = 0; g < kGroups; ++g) {
        Accum<T::kGroup>(acc + (T::kGroup * g) % 32, dl[g], ml[g], q + T::kGroup * g,
                         x + c + T::kGroup * g);
      }
    }
    y[r] = HSum(acc);
  }
}

#if GGUFSCOPE_HAVE_AVX2_KERNELS

// The AVX2 kernels keep per-group sums of x on the stack: rows up to 2^16
// elements (the loader bounds every dimension; longer rows use the portable
// kernels), groups of 16 or more.
constexpr int64_t kMaxCols = int64_t{1} << 16;
constexpr int64_t kMaxBlockSums = kMaxCols / 16;

// An f16 scale through F16C: exact for every half (a signaling NaN comes
// back quiet, which makes the dot NaN all the same), much cheaper than the
// integer conversion of gguf::LoadF16.
GGUFSCOPE_AVX2 inline float LoadF16Avx2(const uint8_t* p) { return _cvtsh_ss(gguf::LoadU16(p)); }

GGUFSCOPE_AVX2 inline float HSum8(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

// acc[k] += dl_k * (q[8k..8k+7] * x[8k..]), k < 4: 32 int8 codes, the first
// 16 with scale dl0, the last 16 with dl1 (the same for 32-element groups).
// A block's min (value = dl * q - ml) is added by the caller as
// -ml * sum(x), once.
GGUFSCOPE_AVX2 inline void Fma32(__m256 acc[4], __m256i q, __m256 dl0, __m256 dl1,
                                 const float* x) {
  const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
  const __m256i q32[4] = {_mm256_cvtepi8_epi32(lo), _mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)),
                          _mm256_cvtepi8_epi32(hi), _mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))};
  for (int k = 0; k < 4; ++k) {
    acc[k] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(q32[k]), _mm256_loadu_ps(x + 8 * k)),
                             k < 2 ? dl0 : dl1, acc[k]);
  }
}
GGUFSCOPE_AVX2 inline void Fma32(__m256 acc[4], __m256i q, __m256 dl, const float* x) {
  Fma32(acc, q, dl, dl, x);
}

// acc[k] += (dl_k * q - ml_k) * x for 32 int8 codes (dl0/ml0 for the first
// 16, dl1/ml1 for the last): the exact dequantized values (a rounded
// product, then a rounded difference; this file is built without FMA
// contraction), for types with mins, where factoring the min out as
// ml * sum(x) would cancel catastrophically when dl * q == ml.
GGUFSCOPE_AVX2 inline void FmaValues32(__m256 acc[4], __m256i q, __m256 dl0, __m256 dl1, __m256 ml0,
                                       __m256 ml1, const float* x) {
  const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
  const __m256i q32[4] = {_mm256_cvtepi8_epi32(lo), _mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)),
                          _mm256_cvtepi8_epi32(hi), _mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))};
  for (int k = 0; k < 4; ++k) {
    const __m256 v =
        _mm256_sub_ps(_mm256_mul_ps(k < 2 ? dl0 : dl1, _mm256_cvtepi32_ps(q32[k])), k < 2 ? ml0 : ml1);
    acc[k] = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + 8 * k), acc[k]);
  }
}

GGUFSCOPE_AVX2 inline float Sum16(const float* x) {
  return HSum8(_mm256_add_ps(_mm256_loadu_ps(x), _mm256_loadu_ps(x + 8)));
}
GGUFSCOPE_AVX2 inline float Sum32(const float* x) {
  const __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(x), _mm256_loadu_ps(x + 8)),
                                 _mm256_add_ps(_mm256_loadu_ps(x + 16), _mm256_loadu_ps(x + 24)));
  return HSum8(s);
}

GGUFSCOPE_AVX2 inline float Finish(const __m256 acc[4]) {
  return HSum8(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
}

// Bit j of `bits` -> byte j as 0xFF or 0 (j < 32).
GGUFSCOPE_AVX2 inline __m256i BitsToMask(uint32_t bits) {
  const __m256i shuffle =
      _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
  const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)), shuffle);
  const __m256i bit = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201));
  return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

// AVX2 kernel over a block type T as in RowsDecoded: the block is decoded to
// 32-byte aligned codes (T::DecodeAvx2 when T has one, else T::Decode
// compiled for AVX2), then FMA'd 32 at a time:
// - T::kLutLo (codes in [kLutLo, kLutLo + 8)): each group's eight possible
//   values, dl * q - ml computed as the dequantizer does, are looked up by
//   code (vpermps), so x is multiplied by the exact dequantized values;
// - otherwise without mins the scales are factored out ((q * x) * dl), with
//   mins each value is formed exactly first (FmaValues32).
template <class T>
concept HasDecodeAvx2 = requires(const uint8_t* b, int8_t* q, float* f) {
  T::DecodeAvx2(b, q, f, f);
};
template <class T>
concept HasLut = requires { T::kLutLo; };

// dl * q - ml for q = lo .. lo + 7, each a rounded product then a rounded
// difference, as gguf/dequant.cc forms a value (no FMA contraction here).
GGUFSCOPE_AVX2 inline __m256 Lut8(float dl, float ml, int lo) {
  const __m256 codes = _mm256_add_ps(_mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_ps(static_cast<float>(lo)));
  return _mm256_sub_ps(_mm256_mul_ps(_mm256_set1_ps(dl), codes), _mm256_set1_ps(ml));
}

// acc[k] += lut_k[q - lo] * x for 32 codes (lut0 for the first 16, lut1
// for the last); `idx` holds q - lo in 0..7.
GGUFSCOPE_AVX2 inline void FmaLut32(__m256 acc[4], __m256i idx, __m256 lut0, __m256 lut1, const float* x) {
  const __m128i lo = _mm256_castsi256_si128(idx), hi = _mm256_extracti128_si256(idx, 1);
  const __m256i i32[4] = {_mm256_cvtepu8_epi32(lo), _mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8)),
                          _mm256_cvtepu8_epi32(hi), _mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8))};
  for (int k = 0; k < 4; ++k) {
    acc[k] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(k < 2 ? lut0 : lut1, i32[k]), _mm256_loadu_ps(x + 8 * k),
                             acc[k]);
  }
}

template <class T>
GGUFSCOPE_AVX2 void RowsDecodedAvx2(const uint8_t* w, size_t row_bytes, int64_t n_rows,
                                    int64_t cols, const float* x, float* y) {
  static_assert(T::kBlock % 32 == 0 && (T::kGroup == 16 || T::kGroup == 32));
  constexpr int kGroups = T::kBlock / T::kGroup;
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t r = 0; r < n_rows; ++r) {
    const uint8_t* b = w + static_cast<size_t>(r) * row_bytes;
    __m256 acc[4] = {zero, zero, zero, zero};
    for (int64_t c = 0; c < cols; c += T::kBlock, b += T::kBytes) {
      alignas(32) int8_t q[T::kBlock];
      float dl[kGroups], ml[kGroups] = {};
      if constexpr (HasDecodeAvx2<T>) {
        T::DecodeAvx2(b, q, dl, ml);
      } else {
        T::Decode(b, q, dl, ml);
      }
      for (int k = 0; k < T::kBlock / 32; ++k) {
        const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(q + 32 * k));
        constexpr int kPer32 = 32 / T::kGroup;  // groups per 32 codes: 1 or 2
        const int g0 = kPer32 * k, g1 = kPer32 * k + kPer32 - 1;
        if constexpr (HasLut<T>) {
          FmaLut32(acc, _mm256_sub_epi8(v, _mm256_set1_epi8(T::kLutLo)), Lut8(dl[g0], ml[g0], T::kLutLo),
                   Lut8(dl[g1], ml[g1], T::kLutLo), x + c + 32 * k);
        } else if constexpr (T::kMin) {
          FmaValues32(acc, v, _mm256_set1_ps(dl[g0]), _mm256_set1_ps(dl[g1]), _mm256_set1_ps(ml[g0]),
                      _mm256_set1_ps(ml[g1]), x + c + 32 * k);
        } else {
          Fma32(acc, v, _mm256_set1_ps(dl[g0]), _mm256_set1_ps(dl[g1]), x + c + 32 * k);
        }
      }
    }
    y[r] = Finish(acc);
  }
}

// Every CPU with AVX2 and FMA has F16C (all three are x86-64-v3).
inline bool HasAvx2() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

#else
constexpr int64_t kMaxCols = 0;
inline bool HasAvx2() { return false; }
#endif

// The kernels of dot_lowbit.cc and dot_iq.cc, or nullptr for other types.
RowDotFn LowBitRowDot(gguf::GgmlType type, bool avx2);
RowDotFn IqRowDot(gguf::GgmlType type, bool avx2);

}  // namespace ggufscope::reference::dot_detail
