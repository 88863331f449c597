// cuda_runtime/act_digits.h: activations as a power-of-two scale and three
// 8-bit digits, the input of the planned integer tensor-core mat-vecs.
// Checked on the CPU (the header is shared with the device) against
// float64: the split's error bound, the digit ranges, exact zeros and
// powers of two, NaN for non-finite blocks, and Q8_0-code dot products
// joined from exact int32 sums against a float64 dot.
#include "cuda_runtime/act_digits.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

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

}  // namespace
}  // namespace ggufscope::cuda
