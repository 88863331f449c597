#include "compare/metrics.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace ggufscope::compare {
namespace {

// Maps float bits onto a line where adjacent floats differ by one.
int64_t Ordered(float x) {
  int32_t i;
  std::memcpy(&i, &x, 4);
  return i < 0 ? -static_cast<int64_t>(i & 0x7fffffff) : static_cast<int64_t>(i);
}

}  // namespace

uint64_t UlpDistance(float a, float b) {
  const int64_t d = Ordered(a) - Ordered(b);
  return static_cast<uint64_t>(d < 0 ? -d : d);
}

Divergence Diverge(std::span<const float> a, std::span<const float> b) {
  Divergence r;
  r.n = a.size() < b.size() ? a.size() : b.size();
  double sum_d2 = 0, sum_b2 = 0, sum_a2 = 0, dot = 0;
  for (uint64_t i = 0; i < r.n; ++i) {
    const float x = a[i], y = b[i];
    if (std::memcmp(&x, &y, 4) == 0) ++r.bit_identical;
    r.nan_a += std::isnan(x);
    r.nan_b += std::isnan(y);
    r.inf_a += std::isinf(x);
    r.inf_b += std::isinf(y);
    if (!std::isfinite(x) || !std::isfinite(y)) continue;
    const double dx = x, dy = y, diff = std::fabs(dx - dy);
    if (diff > r.max_abs) {
      r.max_abs = diff;
      r.argmax_abs = i;
    }
    const double rel = diff / std::max(std::fabs(dy), std::numeric_limits<double>::min());
    if (diff > 0 && rel > r.max_rel) r.max_rel = rel;
    const uint64_t ulp = UlpDistance(x, y);
    if (ulp > r.max_ulp) r.max_ulp = ulp;
    sum_d2 += diff * diff;
    sum_b2 += dy * dy;
    sum_a2 += dx * dx;
    dot += dx * dy;
  }
  r.nmse = sum_b2 > 0 ? sum_d2 / sum_b2 : (sum_d2 > 0 ? std::numeric_limits<double>::infinity() : 0.0);
  r.rel_l2 = std::sqrt(r.nmse);
  if (sum_a2 > 0 && sum_b2 > 0) {
    r.cosine = dot / (std::sqrt(sum_a2) * std::sqrt(sum_b2));
  } else {
    r.cosine = (sum_a2 == 0 && sum_b2 == 0) ? 1.0 : 0.0;
  }
  return r;
}

}  // namespace ggufscope::compare
