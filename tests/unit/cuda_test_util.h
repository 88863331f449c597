// Helpers shared by the CUDA op tests (cuda_ops_test.cc,
// cuda_decode_ops_test.cc): the seed, random inputs, and the NMSE metric
// against a float64 reference that cuda_ops_test.cc's tolerances section
// explains (NMSE = sum (got - ref)^2 / sum scale^2, scale the magnitude the
// op's f32 rounding error is proportional to; NaN always fails).
#pragma once

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace ggufscope::cuda::test {

// GGUFSCOPE_TEST_SEED=N replays a run; otherwise a fresh seed.
inline uint32_t TestSeed() {
  if (const char* s = std::getenv("GGUFSCOPE_TEST_SEED")) return static_cast<uint32_t>(std::strtoul(s, nullptr, 10));
  return std::random_device{}();
}

// Seeds `rng` for one test with TestSeed(), recorded in the test's XML
// properties and printed, so a failure can be replayed.
inline void SeedForTest(std::mt19937& rng) {
  const uint32_t seed = TestSeed();
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  std::cout << "[ seed     ] GGUFSCOPE_TEST_SEED=" << seed << "\n";
  rng.seed(seed);
}

inline uint32_t Bits(float f) { return std::bit_cast<uint32_t>(f); }

inline std::vector<float> RandomFloats(size_t n, std::mt19937& rng, double sigma = 1.0) {
  std::normal_distribution<double> normal(0.0, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(normal(rng));
  return v;
}

// A float64 result and, per output, the scale of its rounding error.
struct Reference {
  std::vector<double> value, scale;
  explicit Reference(size_t n) : value(n), scale(n) {}
  // For ops without cancellation: scale = |value|.
  void ScaleByValue() {
    for (size_t i = 0; i < value.size(); ++i) scale[i] = std::abs(value[i]);
  }
};

struct Divergence {
  double nmse = 0;
  double max_abs = 0;
  size_t worst = 0;
  size_t nan_count = 0;
};

// NMSE sum((got - ref)^2) / sum(scale^2); +infinity when anything is NaN
// (or the sizes differ), so NaN always fails.
inline Divergence Compare(std::span<const float> got, const Reference& ref) {
  Divergence d;
  if (got.size() != ref.value.size()) return {std::numeric_limits<double>::infinity(), 0, 0, 0};
  double err = 0, norm = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(got[i]) || std::isnan(ref.value[i])) {
      ++d.nan_count;
      continue;
    }
    const double e = static_cast<double>(got[i]) - ref.value[i];
    err += e * e;
    norm += ref.scale[i] * ref.scale[i];
    if (std::abs(e) > d.max_abs) {
      d.max_abs = std::abs(e);
      d.worst = i;
    }
  }
  d.nmse = d.nan_count ? std::numeric_limits<double>::infinity() : norm > 0 ? err / norm : err;
  return d;
}

}  // namespace ggufscope::cuda::test

#define EXPECT_NMSE_BELOW(got, ref, limit)                                                              \
  do {                                                                                                  \
    const ::ggufscope::cuda::test::Divergence div_ = ::ggufscope::cuda::test::Compare(got, ref);        \
    EXPECT_LT(div_.nmse, limit) << "NaN outputs " << div_.nan_count << ", max |err| " << div_.max_abs   \
                                << " at " << div_.worst << " (got " << (got)[div_.worst] << ", want "  \
                                << (ref).value[div_.worst] << ", scale " << (ref).scale[div_.worst]     \
                                << ")";                                                                 \
  } while (0)
