// cuda_runtime/act_digits.h: activations as a power-of-two scale and three
// 8-bit digits, the input of the integer tensor-core mat-vecs (matvec.cu).
// Checked on the CPU (the header is shared with the device) against
// float64: the split's error bound, the digit ranges, exact zeros and
// powers of two, NaN for non-finite blocks, Q8_0-code dot products joined
// from exact int32 sums against a float64 dot, and the Q4_K tensor-core
// stage's arithmetic against float64 on gguf's dequantization.
#include "cuda_runtime/act_digits.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "gguf/dequant.h"

namespace ggufscope::cuda {
namespace {

struct Split {
  float scale = 0;
  int8_t d0[kDigitBlock], d1[kDigitBlock], d2[kDigitBlock];
};

Split SplitOf(const std::vector<float>& x) {
  Split s;
  SplitDigits(x.data(), &s.scale, s.d0, s.d1, s.d2);
  return s;
}

double Rebuilt(const Split& s, int i) {
  return static_cast<double>(s.scale) * (s.d0[i] + s.d1[i] / 128.0 + s.d2[i] / 16384.0);
}

double MaxAbs(const std::vector<float>& x) {
  double m = 0;
  for (float v : x) m = std::max(m, std::fabs(static_cast<double>(v)));
  return m;
}

// Random blocks whose magnitudes span the f32 range, with a few elements
// far below the largest (they must survive as well as f32 keeps them).
std::vector<float> RandomBlock(std::mt19937_64& rng, int max_exp = 120) {
  std::uniform_real_distribution<double> mant(-1.0, 1.0);
  std::uniform_int_distribution<int> exp(-max_exp, max_exp), tiny(0, 40);
  const int e = exp(rng);
  std::vector<float> x(kDigitBlock);
  for (float& v : x) v = static_cast<float>(std::ldexp(mant(rng), e - (tiny(rng) == 0 ? 20 : 0)));
  return x;
}

TEST(ActDigits, SplitIsWithinTwoToTheMinus21OfTheBlockMaximum) {
  std::mt19937_64 rng(20261127);
  double worst = 0;
  for (int trial = 0; trial < 20000; ++trial) {
    const std::vector<float> x = RandomBlock(rng);
    const Split s = SplitOf(x);
    const double m = MaxAbs(x);
    ASSERT_GT(s.scale, 0.0f);
    // The scale is the smallest power of two with max / s <= 127.
    int e = 0;
    ASSERT_EQ(std::frexp(s.scale, &e), 0.5f) << "a power of two";
    ASSERT_LE(m / s.scale, 127.0);
    ASSERT_GT(m / (s.scale / 2), 127.0);
    for (int i = 0; i < kDigitBlock; ++i) {
      ASSERT_LE(std::abs(s.d0[i]), 127);
      ASSERT_LE(std::abs(s.d1[i]), 64);
      ASSERT_LE(std::abs(s.d2[i]), 64);
      const double err = std::fabs(Rebuilt(s, i) - x[static_cast<size_t>(i)]);
      ASSERT_LE(err, m / (127.0 * 16384.0)) << "trial " << trial << " element " << i;
      worst = std::max(worst, err / m);
    }
  }
  EXPECT_LE(worst, 1.0 / (127.0 * 16384.0));  // 4.8e-7: about 2^-21
}

// DigitBytesOf, the device kernels' arithmetic (two power-of-two products,
// rint as an add of 1.5 * 2^23, the digit as a low byte), gives DigitsOf's
// digits for every element, over blocks spanning the whole f32 range (the
// scale exponent k from -155 for subnormal blocks to 122 near FLT_MAX, where
// 2^-k alone is not a float), ties at .5 included.
TEST(ActDigits, DeviceArithmeticGivesTheSameDigits) {
  std::mt19937_64 rng(27112026);
  const auto check = [](const std::vector<float>& x) {
    float m = 0.0f;
    for (float v : x) m = std::max(m, std::fabs(v));
    if (m == 0.0f) return;
    const int k = DigitScaleExponent(m);
    for (float v : x) {
      int8_t d0, d1, d2;
      DigitsOf(v, k, &d0, &d1, &d2);
      uint32_t b0, b1, b2;
      DigitBytesOf(v, k, &b0, &b1, &b2);
      ASSERT_EQ(static_cast<int8_t>(b0 & 0xFF), d0) << v << " k " << k;
      ASSERT_EQ(static_cast<int8_t>(b1 & 0xFF), d1) << v << " k " << k;
      ASSERT_EQ(static_cast<int8_t>(b2 & 0xFF), d2) << v << " k " << k;
    }
  };
  for (int trial = 0; trial < 20000; ++trial) check(RandomBlock(rng, 125));
  // The extremes: the largest finite floats, subnormal blocks, one element
  // far below the block's maximum, and halves (rint's ties go to even).
  check({std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(), 1.0f});
  check({std::numeric_limits<float>::denorm_min(), -3 * std::numeric_limits<float>::denorm_min()});
  check({std::numeric_limits<float>::min(), 1e-44f, 0.0f});
  check({127.0f, 0.5f, 1.5f, 2.5f, -0.5f, -2.5f, 1.0f / 256, 3.0f / 256, 1.0f / 65536, 3.0f / 65536});
  check({1e30f, 1e-30f, -1e10f});
}

// The kernels' exponent from the bits of the group's largest |x|
// (DigitScaleExponentOfBits, for 2^-120 <= max < inf) is DigitScaleExponent's,
// and 2^-k is then a normal float, so v * 2^-k is DigitBytesOf's two
// products: every exponent, the fractions around 63/64 (where k steps), and
// random ones.
TEST(ActDigits, ExponentFromBitsIsDigitScaleExponent) {
  std::mt19937_64 rng(28112026);
  int checked = 0;
  for (uint32_t e = kFastDigitBits >> 23; e < 255; ++e) {
    std::vector<uint32_t> fracs = {0, 1, 0x7DFFFF, 0x7E0000, 0x7E0001, 0x7FFFFF, 0x400000};
    for (int i = 0; i < 64; ++i) fracs.push_back(static_cast<uint32_t>(rng()) & 0x7FFFFFu);
    for (const uint32_t f : fracs) {
      const uint32_t bits = e << 23 | f;
      const float m = BitCast<float>(bits);
      const int k = DigitScaleExponentOfBits(bits);
      ASSERT_EQ(k, DigitScaleExponent(m)) << "max " << m << " bits " << bits;
      ASSERT_GE(k, -126);
      ASSERT_LE(k, 126);
      for (const float v : {m, -m, m / 3, m * 0x1p-30f, -m * 0x1p-100f}) {
        uint32_t a[3], b[3];
        DigitBytesOf(v, k, &a[0], &a[1], &a[2]);
        DigitBytesOfScaled(v * Pow2(-k), &b[0], &b[1], &b[2]);
        ASSERT_EQ(a[0], b[0]) << v;
        ASSERT_EQ(a[1], b[1]) << v;
        ASSERT_EQ(a[2], b[2]) << v;
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 240 * 70);
  // Below the fast range the kernels take DigitScaleExponent itself: one
  // binade below it (2^-121) the scale 2^k = 2^-127 is no normal float.
  EXPECT_EQ(DigitScaleExponent(BitCast<float>(kFastDigitBits - (1u << 23))), -127);
}

TEST(ActDigits, ExactWhereF32IsExact) {
  // Zeros: scale 1, every digit 0.
  const Split z = SplitOf(std::vector<float>(kDigitBlock, 0.0f));
  EXPECT_EQ(z.scale, 1.0f);
  for (int i = 0; i < kDigitBlock; ++i) EXPECT_EQ(z.d0[i] | z.d1[i] | z.d2[i], 0);
  // Small integers and halves are rebuilt exactly.
  std::vector<float> x(kDigitBlock);
  for (int i = 0; i < kDigitBlock; ++i) x[static_cast<size_t>(i)] = static_cast<float>(i - 16) * 0.5f;
  const Split s = SplitOf(x);
  for (int i = 0; i < kDigitBlock; ++i) EXPECT_EQ(Rebuilt(s, i), x[static_cast<size_t>(i)]) << i;
  // Subnormals and the largest finite value keep the bound.
  for (const float big : {std::numeric_limits<float>::denorm_min() * 1000, std::numeric_limits<float>::max()}) {
    std::vector<float> y(kDigitBlock, big / 3);
    y[0] = big;
    const Split t = SplitOf(y);
    for (int i = 0; i < kDigitBlock; ++i) {
      EXPECT_LE(std::fabs(Rebuilt(t, i) - y[static_cast<size_t>(i)]), static_cast<double>(big) / (127.0 * 16384.0));
    }
  }
}

TEST(ActDigits, NonFiniteBlocksGetANanScale) {
  for (const float bad : {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                          std::numeric_limits<float>::quiet_NaN()}) {
    std::vector<float> x(kDigitBlock, 1.0f);
    x[7] = bad;
    const Split s = SplitOf(x);
    EXPECT_TRUE(std::isnan(s.scale));
    EXPECT_TRUE(std::isnan(JoinDigitSums(s.scale, 0, 0, 0)));
  }
}

// A Q8_0-style dot product (codes -128..127, one f16-like block scale d):
// three exact int32 sums joined in f32, against float64. Its error is the
// split's (<= max|x| / (127 * 2^14) per element, times sum |q|) plus two f32
// roundings of the result. Magnitudes up to 2^100: the sums stay in f32's
// range, as an f32 dot product's would have to.
TEST(ActDigits, DotOfCodesMatchesFloat64) {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int> code(-128, 127);
  for (int trial = 0; trial < 5000; ++trial) {
    const std::vector<float> x = RandomBlock(rng, 100);
    const Split s = SplitOf(x);
    int32_t s0 = 0, s1 = 0, s2 = 0;
    double want = 0, abs_sum = 0, q_abs = 0;
    for (int i = 0; i < kDigitBlock; ++i) {
      const int q = code(rng);
      s0 += q * s.d0[i];
      s1 += q * s.d1[i];
      s2 += q * s.d2[i];
      want += q * static_cast<double>(x[static_cast<size_t>(i)]);
      abs_sum += std::fabs(q * static_cast<double>(x[static_cast<size_t>(i)]));
      q_abs += std::abs(q);
    }
    const double got = JoinDigitSums(s.scale, s0, s1, s2);
    const double bound = q_abs * MaxAbs(x) / (127.0 * 16384.0) + 4 * std::ldexp(abs_sum, -24);
    ASSERT_LE(std::fabs(got - want), bound) << "trial " << trial;
  }
}

// The Q4_K tensor-core stage's arithmetic (matvec.cu, TcQ4K), step for step
// on the host: x split with one scale for the whole 256-element
// super-block; the low nibbles as codes q and the high ones in place (16 q);
// each sub-block's digit sums times its 6-bit scale, the even (low-nibble)
// sub-blocks' and the odd ones' in two int32 sums, joined as 16 even + odd;
// the sums converted to f32 and joined per lane (t = 0: columns 0 and 1,
// t = 1: column 2). The min term in f32 from x itself: each sub-block's sum
// of x (a lane's 8 elements pairwise, then the 4 lanes of the sub-block as
// the shuffles add them), lane t taking sub-blocks 2t and 2t + 1 of both
// rows; the four lanes added as the kernel's quad reduction does. Against
// float64 on the super-block as gguf's dequantizer (checked against gguf-py)
// decodes it: this holds the scale/min unpacking and the documented int32
// bound (|16 even + odd| < 2^29), including all-maximal blocks.
double Q4KStageAsTheKernel(const uint8_t* blk, const std::vector<float>& x, int64_t* max_sum) {
  float m = 0.0f;
  for (float v : x) m = std::max(m, std::fabs(v));
  const int k = m > 0.0f ? DigitScaleExponent(m) : 0;
  const float xs = m > 0.0f ? std::ldexp(1.0f, k) : 1.0f;
  std::vector<int8_t> dg[3];
  for (auto& v : dg) v.resize(256);
  for (int i = 0; i < 256; ++i) {
    if (m > 0.0f) DigitsOf(x[static_cast<size_t>(i)], k, &dg[0][i], &dg[1][i], &dg[2][i]);
    else dg[0][i] = dg[1][i] = dg[2][i] = 0;
  }
  uint16_t dh, dminh;
  std::memcpy(&dh, blk, 2);
  std::memcpy(&dminh, blk + 2, 2);
  uint32_t u[3];
  std::memcpy(u, blk + 4, 12);
  const uint32_t sc[2] = {u[0] & 0x3F3F3F3Fu, (u[2] & 0x0F0F0F0Fu) | ((u[0] >> 2) & 0x30303030u)};
  const uint32_t mn[2] = {u[1] & 0x3F3F3F3Fu, ((u[2] >> 4) & 0x0F0F0F0Fu) | ((u[1] >> 2) & 0x30303030u)};
  int64_t se[3] = {0, 0, 0}, so[3] = {0, 0, 0};
  float sx[8];
  for (int j = 0; j < 8; ++j) {
    const int64_t scale = (sc[j / 4] >> (8 * (j % 4))) & 0xFF;
    for (int col = 0; col < 3; ++col) {
      int64_t sum = 0;
      for (int i = 0; i < 32; ++i) {
        const uint8_t byte = blk[16 + 32 * (j / 2) + i];
        const int64_t a = j % 2 == 0 ? (byte & 0x0F) : (byte & 0xF0);  // the high nibble in place: 16 q
        sum += a * dg[col][32 * j + i];
      }
      (j % 2 == 0 ? se : so)[col] += scale * sum;
    }
    float p[4];
    for (int l = 0; l < 4; ++l) {
      const float* v = x.data() + 32 * j + 8 * l;
      p[l] = ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
    }
    sx[j] = (p[0] + p[1]) + (p[2] + p[3]);
  }
  int64_t s[3];
  for (int col = 0; col < 3; ++col) {
    s[col] = 16 * se[col] + so[col];
    *max_sum = std::max(*max_sum, std::abs(s[col]));
  }
  const float d = gguf::HalfToFloat(dh), dmin = gguf::HalfToFloat(dminh);
  const float xq = xs * (1.0f / 16);
  float lanes[4];
  for (int t = 0; t < 4; ++t) {
    const float q = t == 0   ? std::fma(static_cast<float>(s[1]), 1.0f / 128, static_cast<float>(s[0]))
                    : t == 1 ? std::fma(0.0f, 0.0f, static_cast<float>(s[2]) * (1.0f / (128 * 128)))
                             : 0.0f;
    const int64_t m0 = (mn[t / 2] >> (16 * (t % 2))) & 0xFF, m1 = (mn[t / 2] >> (16 * (t % 2) + 8)) & 0xFF;
    const float mins = std::fma(static_cast<float>(m1), sx[2 * t + 1], static_cast<float>(m0) * sx[2 * t]);
    lanes[t] = std::fma(d, q * xq, std::fma(-dmin, mins, 0.0f));
  }
  return static_cast<double>((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]));
}

TEST(ActDigits, Q4KStageArithmeticMatchesFloat64) {
  std::mt19937_64 rng(1127);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<double> mant(-1.0, 1.0);
  std::uniform_int_distribution<int> exp(-20, 20);
  int64_t max_sum = 0;
  const auto check = [&](const std::vector<uint8_t>& blk, const std::vector<float>& x, int trial) {
    std::vector<float> w(256);
    ASSERT_TRUE(gguf::Dequantize(gguf::GgmlType::kQ4_K, blk, 256, w).ok());
    double want = 0, abs_wx = 0, abs_w = 0, mx = 0;
    for (int i = 0; i < 256; ++i) {
      want += static_cast<double>(w[static_cast<size_t>(i)]) * x[static_cast<size_t>(i)];
      abs_wx += std::fabs(static_cast<double>(w[static_cast<size_t>(i)]) * x[static_cast<size_t>(i)]);
      abs_w += std::fabs(w[static_cast<size_t>(i)]);
      mx = std::max(mx, std::fabs(static_cast<double>(x[static_cast<size_t>(i)])));
    }
    const double got = Q4KStageAsTheKernel(blk.data(), x, &max_sum);
    // The split's error (per element <= max|x| / (127 * 2^14)) plus the f32
    // roundings of the join, relative to the two terms before they cancel.
    uint16_t dh, dminh;
    std::memcpy(&dh, blk.data(), 2);
    std::memcpy(&dminh, blk.data() + 2, 2);
    const double terms = std::fabs(gguf::HalfToFloat(dh)) * 15 * 63 * 256 * mx +
                         std::fabs(gguf::HalfToFloat(dminh)) * 63 * 256 * mx;
    const double bound = abs_w * mx / (127.0 * 16384.0) + 16 * std::ldexp(terms + abs_wx, -24);
    ASSERT_LE(std::fabs(got - want), bound) << "trial " << trial << " got " << got << " want " << want;
  };
  for (int trial = 0; trial < 3000; ++trial) {
    std::vector<uint8_t> blk(144);
    for (auto& b : blk) b = static_cast<uint8_t>(byte(rng));
    // d and dmin: finite f16 values of either sign, moderate magnitude.
    const uint16_t dh = static_cast<uint16_t>((byte(rng) & 0x80) << 8 | (0x2000 + byte(rng) * 32));
    const uint16_t dminh = static_cast<uint16_t>((byte(rng) & 0x80) << 8 | (0x2000 + byte(rng) * 32));
    std::memcpy(blk.data(), &dh, 2);
    std::memcpy(blk.data() + 2, &dminh, 2);
    std::vector<float> x(256);
    const int e = exp(rng);
    for (auto& v : x) v = static_cast<float>(std::ldexp(mant(rng), e - (byte(rng) < 8 ? 15 : 0)));
    check(blk, x, trial);
  }
  // All-maximal: every code 15, every scale and min 63, x at the largest
  // first digit (127 * 2^k, other digits 0) with both signs.
  std::vector<uint8_t> blk(144, 0xFF);
  const uint16_t one = 0x3C00;
  std::memcpy(blk.data(), &one, 2);
  std::memcpy(blk.data() + 2, &one, 2);
  for (const float sign : {1.0f, -1.0f}) check(blk, std::vector<float>(256, sign * 127.0f), -1);
  EXPECT_LT(max_sum, int64_t{1} << 29);
  EXPECT_GT(max_sum, int64_t{1} << 28);  // the all-maximal block comes close: the bound is not loose
}

}  // namespace
}  // namespace ggufscope::cuda
