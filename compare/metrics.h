// The divergence metrics every report and test in ggufscope uses, so that a
// failing test and a `compare` report read alike (max abs, max rel, relative
// L2 / NMSE, cosine, NaN and Inf counts). Accumulated in double.
#pragma once

#include <cstdint>
#include <span>

namespace ggufscope::compare {

struct Divergence {
  uint64_t n = 0;
  uint64_t nan_a = 0, nan_b = 0, inf_a = 0, inf_b = 0;
  uint64_t bit_identical = 0;  // elements whose bits match exactly
  double max_abs = 0.0;        // max |a - b| over finite pairs
  uint64_t argmax_abs = 0;
  double max_rel = 0.0;        // max |a - b| / max(|b|, tiny) over finite pairs
  double nmse = 0.0;           // sum (a-b)^2 / sum b^2 (0 when b is all zero and a == b)
  double rel_l2 = 0.0;         // sqrt(nmse)
  double cosine = 1.0;         // a.b / (|a| |b|); 1 when both are zero
  uint64_t max_ulp = 0;        // largest distance in units in the last place (finite pairs)
};

// `a` is the value under test, `b` the reference. Sizes must match.
Divergence Diverge(std::span<const float> a, std::span<const float> b);

// Distance in ulps between two finite floats (0 for equal values, +0 == -0).
uint64_t UlpDistance(float a, float b);

}  // namespace ggufscope::compare
