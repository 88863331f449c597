#include "compare/trace.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

namespace ggufscope::compare {

PointStats ComputeStats(std::span<const float> x) {
  PointStats s;
  s.n = x.size();
  double lo = std::numeric_limits<double>::infinity(), hi = -lo, sum = 0, sum2 = 0;
  for (float v : x) {
    if (std::isnan(v)) {
      ++s.nan;
    } else if (std::isinf(v)) {
      ++s.inf;
    } else {
      const double d = v;
      lo = std::min(lo, d);
      hi = std::max(hi, d);
      sum += d;
      sum2 += d * d;
    }
  }
  const uint64_t finite = s.n_finite();
  if (finite > 0) {
    s.min = lo;
    s.max = hi;
    s.mean = sum / static_cast<double>(finite);
    s.rms = std::sqrt(sum2 / static_cast<double>(finite));
  }
  return s;
}

const TracePoint* Trace::Find(std::string_view name) const {
  for (const TracePoint& p : points) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

std::string PointName(std::string_view op, int layer) {
  return layer < 0 ? std::string(op) : fmt::format("{}-{}", op, layer);
}

ParsedName ParsePointName(std::string_view name) {
  const size_t dash = name.rfind('-');
  if (dash == std::string_view::npos || dash == 0 || dash + 1 == name.size() || name.size() - dash > 7) {
    return {std::string(name), -1};
  }
  int layer = 0;
  for (size_t i = dash + 1; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return {std::string(name), -1};
    layer = layer * 10 + (name[i] - '0');
  }
  return {std::string(name.substr(0, dash)), layer};
}

}  // namespace ggufscope::compare
