// Activations as integer digits, the input of the integer tensor-core
// mat-vecs (matvec.cu; cuda_runtime/README.md, "Integer tensor-core mat-vecs").
//
// A block of 32 activations x becomes a power-of-two scale s and three
// signed 8-bit digits per element,
//   x ≈ s · (d0 + d1 / 128 + d2 / 128²),   |d0| <= 127, |d1|, |d2| <= 64,
// with s the smallest power of two for which max|x| / s <= 127. Every step
// is exact in f32 (x / s is a power-of-two scaling, each remainder a
// difference of nearby values, each digit a rint), so the only error is the
// last digit's rounding: at most s / 2^15, and s < 2 · max|x| / 127, so
// below max|x| / (127 · 2^14), about 2^-21 of the block's largest element. A dot product with 8-bit
// weight codes then sums exactly in int32 (|q| <= 128: 128 · 127 · 32 <
// 2^20), leaving one f32 rounding per block when the three sums are joined:
// as accurate as an f32 dot product, which the reference comparison needs.
//
// A block with an infinite or NaN element gets a NaN scale, so the products
// that use it are NaN, as an f32 product would be.
//
// The group that shares a scale need not be 32 elements: the bound is the
// same with the group's largest element. The Q8_0 mat-vec on the integer
// tensor cores (matvec.cu) uses 32 (its blocks' own scales are per 32); the
// Q4_K one uses the whole 256-element super-block, so that its sums over
// the eight sub-blocks stay integers: the error is then 2^-21 of the
// largest element among 256.
//
// Header-only, plain C++ on the host and __host__ __device__ under nvcc (the
// kernel and the CPU test share it); rint is done as an add of 1.5 * 2^23.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define GGUFSCOPE_HD __host__ __device__
#else
#define GGUFSCOPE_HD
#endif

namespace ggufscope::cuda {

constexpr int kDigitBlock = 32;  // activations per scale: a Q8_0/Q4_0 block, a K-quant sub-block
constexpr int kDigitBase = 128;  // d0 + d1 / 128 + d2 / 128²

// The exponent k of the scale s = 2^k for a block whose largest magnitude
// is `max_abs` (> 0, finite): the smallest k with max_abs / 2^k <= 127.
GGUFSCOPE_HD inline int DigitScaleExponent(float max_abs) {
  int k = std::ilogb(max_abs) - 6;  // max_abs / 2^k in [64, 128)
  if (std::ldexp(max_abs, -k) > 127.0f) ++k;
  return k;
}

// DigitScaleExponent from max_abs's bits, for max_abs >= kFastDigitBits
// (2^-120) and finite: then k is in [-126, 122], so 2^k and 2^-k are normal
// floats (Pow2) and x / 2^k is one exact product. max_abs = 2^e * 1.f, so
// max_abs / 2^(e - 6) = 64 * 1.f is in [64, 128) and exceeds 127 exactly when
// f > 63/64, its 23 fraction bits above 63 * 2^17. (The kernels' common
// case: a few integer operations where ilogb and ldexp take ~50
// instructions with branches. The CPU test holds it equal to
// DigitScaleExponent.)
constexpr uint32_t kFastDigitBits = 0x03800000u;  // the bits of 2^-120
GGUFSCOPE_HD inline int DigitScaleExponentOfBits(uint32_t bits) {
  return static_cast<int>(bits >> 23) - 133 + ((bits & 0x7FFFFFu) > 0x7E0000u ? 1 : 0);
}

// The three digits of one element v of a block with scale 2^k (|v| <= 127 * 2^k).
GGUFSCOPE_HD inline void DigitsOf(float v, int k, int8_t* d0, int8_t* d1, int8_t* d2) {
  const float u = std::ldexp(v, -k);  // exact, |u| <= 127
  const float a = std::rint(u);
  const float r1 = (u - a) * kDigitBase;  // exact: |u - a| <= 1/2, a power-of-two product
  const float b = std::rint(r1);
  const float r2 = (r1 - b) * kDigitBase;
  *d0 = static_cast<int8_t>(a);
  *d1 = static_cast<int8_t>(b);
  *d2 = static_cast<int8_t>(std::rint(r2));
}

// The same 32 bits as another type (float <-> uint32_t): memcpy, which
// nvcc and the host compilers reduce to a register move.
template <typename To, typename From>
GGUFSCOPE_HD inline To BitCast(From from) {
  static_assert(sizeof(To) == sizeof(From), "BitCast: sizes differ");
  To to;
  std::memcpy(&to, &from, sizeof to);
  return to;
}

// 2^e for e in [-126, 127] (a normal float).
GGUFSCOPE_HD inline float Pow2(int e) { return BitCast<float>(static_cast<uint32_t>(e + 127) << 23); }

constexpr float kRintMagic = 12582912.0f;  // 1.5 * 2^23: v + it is rint(v) in the low bits, |v| < 2^22

// DigitsOf as the device kernels compute it (matvec.cu): v / 2^k as two
// exact power-of-two products (2^-k alone overflows f32 for the smallest
// blocks; k is in [-155, 122]), rint as an add of 1.5 * 2^23 (round to
// nearest even, as rint, for |u| < 2^22), each digit the low byte of the
// sum's bits (*b0, *b1, *b2; the bytes the kernels pack into int8
// fragments). The same digits as DigitsOf (tests/unit/act_digits_test.cc).
// No step may be contracted into an FMA: the CUDA build has --fmad=false,
// and each product here is exact anyway. DigitBytesOfScaled takes u = v /
// 2^k itself: where k >= -126 (DigitScaleExponentOfBits' range) one product
// v * Pow2(-k) is exact and gives the same u.
GGUFSCOPE_HD inline void DigitBytesOfScaled(float u, uint32_t* b0, uint32_t* b1, uint32_t* b2) {
  const float t0 = u + kRintMagic;
  const float r1 = (u - (t0 - kRintMagic)) * kDigitBase;
  const float t1 = r1 + kRintMagic;
  const float r2 = (r1 - (t1 - kRintMagic)) * kDigitBase;
  *b0 = BitCast<uint32_t>(t0);
  *b1 = BitCast<uint32_t>(t1);
  *b2 = BitCast<uint32_t>(r2 + kRintMagic);
}
GGUFSCOPE_HD inline void DigitBytesOf(float v, int k, uint32_t* b0, uint32_t* b1, uint32_t* b2) {
  const int neg_k = -k;
  DigitBytesOfScaled((v * Pow2(neg_k >> 1)) * Pow2(neg_k - (neg_k >> 1)), b0, b1, b2);
}

// Splits x[0..31] into *scale and the digits d0, d1, d2 (32 each).
GGUFSCOPE_HD inline void SplitDigits(const float* x, float* scale, int8_t* d0, int8_t* d1, int8_t* d2) {
  float max_abs = 0.0f;
  bool finite = true;
  for (int i = 0; i < kDigitBlock; ++i) {
    const float a = std::fabs(x[i]);
    finite = finite && std::isfinite(a);
    max_abs = a > max_abs ? a : max_abs;
  }
  if (!finite || max_abs == 0.0f) {
    *scale = finite ? 1.0f : NAN;
    for (int i = 0; i < kDigitBlock; ++i) d0[i] = d1[i] = d2[i] = 0;
    return;
  }
  const int k = DigitScaleExponent(max_abs);
  *scale = std::ldexp(1.0f, k);
  for (int i = 0; i < kDigitBlock; ++i) DigitsOf(x[i], k, &d0[i], &d1[i], &d2[i]);
}

// The three exact integer sums of a dot product with 8-bit codes q, joined:
// scale · (s0 + s1 / 128 + s2 / 128²), in f32 (one rounding per addition
// of the three terms; the sums themselves are exact).
GGUFSCOPE_HD inline float JoinDigitSums(float scale, int32_t s0, int32_t s1, int32_t s2) {
  const float t = static_cast<float>(s2) * (1.0f / (kDigitBase * kDigitBase)) +
                  static_cast<float>(s1) * (1.0f / kDigitBase);
  return scale * (static_cast<float>(s0) + t);
}

}  // namespace ggufscope::cuda

#undef GGUFSCOPE_HD
