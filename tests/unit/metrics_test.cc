#include "compare/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace ggufscope::compare {
namespace {

TEST(Metrics, IdenticalInputs) {
  const std::vector<float> a = {1.f, -2.f, 3.5f, 0.f};
  const Divergence d = Diverge(a, a);
  EXPECT_EQ(d.bit_identical, 4u);
  EXPECT_EQ(d.max_abs, 0.0);
  EXPECT_EQ(d.nmse, 0.0);
  EXPECT_DOUBLE_EQ(d.cosine, 1.0);
  EXPECT_EQ(d.max_ulp, 0u);
}

TEST(Metrics, KnownErrorAgainstFloat64) {
  const std::vector<float> ref = {3.f, 4.f};
  const std::vector<float> got = {3.f, 4.5f};
  const Divergence d = Diverge(got, ref);
  EXPECT_DOUBLE_EQ(d.max_abs, 0.5);
  EXPECT_EQ(d.argmax_abs, 1u);
  EXPECT_DOUBLE_EQ(d.nmse, 0.25 / 25.0);
  EXPECT_DOUBLE_EQ(d.rel_l2, 0.1);
  EXPECT_DOUBLE_EQ(d.cosine, (9.0 + 18.0) / (5.0 * std::sqrt(9.0 + 20.25)));
}

TEST(Metrics, UlpAndNonFinite) {
  EXPECT_EQ(UlpDistance(1.f, std::nextafter(1.f, 2.f)), 1u);
  EXPECT_EQ(UlpDistance(0.f, -0.f), 0u);
  EXPECT_EQ(UlpDistance(-std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::denorm_min()), 2u);
  const std::vector<float> a = {NAN, 1.f, INFINITY};
  const std::vector<float> b = {1.f, 1.f, 1.f};
  const Divergence d = Diverge(a, b);
  EXPECT_EQ(d.nan_a, 1u);
  EXPECT_EQ(d.inf_a, 1u);
  EXPECT_EQ(d.max_abs, 0.0);  // only finite pairs count
}

}  // namespace
}  // namespace ggufscope::compare
