#include "compare/tensor_diff.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "gguf/dequant.h"

namespace ggufscope::compare {
namespace {

using gguf::GgmlType;

constexpr uint64_t kChunk = uint64_t{1} << 20;

}  // namespace

double TypicalRelL2(GgmlType t) {
  using enum GgmlType;
  // Max over the 2-D tensors of synth-llama-<TYPE> vs synth-llama-f32
  // (scripts/measure_bands.py); F16 from its 11-bit mantissa, Q8_K/Q8_1 as
  // Q8_0, NVFP4 as MXFP4 (same E2M1 grid, finer scales).
  switch (t) {
    case kF32: case kF64: case kI8: case kI16: case kI32: case kI64: return 0;
    case kF16: return 0.0003;
    case kBF16: return 0.0017;
    case kQ8_0: case kQ8_1: case kQ8_K: return 0.0054;
    case kQ6_K: return 0.0178;
    case kQ5_K: return 0.0364;
    case kQ5_1: return 0.0381;
    case kQ5_0: return 0.0430;
    case kQ4_K: return 0.0720;
    case kIQ4_NL: return 0.0770;
    case kIQ4_XS: return 0.0776;
    case kQ4_1: return 0.0786;
    case kQ4_0: return 0.0866;
    case kMXFP4: case kNVFP4: return 0.1159;
    case kQ3_K: return 0.1522;
    case kIQ3_S: return 0.1673;
    case kIQ3_XXS: return 0.2132;
    case kQ2_K: return 0.2985;
    case kIQ2_XS: return 0.3096;
    case kIQ2_S: return 0.3096;
    case kIQ2_XXS: return 0.3521;
    case kIQ1_S: return 0.5029;
    case kIQ1_M: return 0.5831;
    case kQ1_0: return 0.6031;
    case kQ2_0: return 0.7215;
    case kTQ1_0: case kTQ2_0: return 0.8114;
  }
  return 1.0;
}

gguf::Result<TensorDiff> DiffTensors(const gguf::GgufFile& fa, const gguf::TensorInfo& a, const gguf::GgufFile& fb,
                                     const gguf::TensorInfo& b) {
  bool same_shape = a.n_elements == b.n_elements && a.ne[0] == b.ne[0];
  for (uint32_t d = 0; d < gguf::kMaxDims; ++d) same_shape = same_shape && a.ne[d] == b.ne[d];
  if (!same_shape) {
    return gguf::Error{gguf::ErrorCode::kInvalidArgument, "tensor '" + a.name + "'", a.info_offset,
                       "the reference's shape", "another shape"};
  }
  TensorDiff d;
  d.n = a.n_elements;
  const std::span<const uint8_t> da = fa.TensorData(a), db = fb.TensorData(b);
  if (a.type == b.type) {
    const size_t n = da.size();
    // memcmp over 64 KiB blocks finds the differing block at memory speed;
    // only that block is scanned byte by byte for the position.
    constexpr size_t kBlock = size_t{1} << 16;
    size_t i = 0;
    while (i < n && std::memcmp(da.data() + i, db.data() + i, std::min(kBlock, n - i)) == 0) i += std::min(kBlock, n - i);
    while (i < n && da[i] == db[i]) ++i;
    d.bytes_identical = i == n;
    d.first_diff_byte = i;
  }
  const uint64_t row_len = a.ne[0] > 0 ? static_cast<uint64_t>(a.ne[0]) : 1;
  const auto& ta = gguf::Traits(a.type);
  const auto& tb = gguf::Traits(b.type);
  // Chunks of whole rows, or of block-aligned pieces of one long row.
  const uint64_t step = row_len <= kChunk ? std::max<uint64_t>(1, kChunk / row_len) * row_len : kChunk;
  std::vector<float> xa(std::min<uint64_t>(step, a.n_elements)), xb(xa.size());
  DiffAccumulator acc(row_len);
  for (uint64_t e0 = 0; e0 < a.n_elements; e0 += step) {
    const uint64_t n = std::min(step, a.n_elements - e0);
    const gguf::Status sa = gguf::Dequantize(a.type, da.subspan(e0 / ta.block_size * ta.type_size, n / ta.block_size * ta.type_size), n, std::span<float>(xa.data(), n));
    const gguf::Status sb = gguf::Dequantize(b.type, db.subspan(e0 / tb.block_size * tb.type_size, n / tb.block_size * tb.type_size), n, std::span<float>(xb.data(), n));
    if (!sa.ok()) return sa.error();
    if (!sb.ok()) return sb.error();
    acc.Add(std::span<const float>(xa.data(), n), std::span<const float>(xb.data(), n), e0);
  }
  TensorDiff r = acc.Finish();
  r.bytes_identical = d.bytes_identical;
  r.first_diff_byte = d.first_diff_byte;
  return r;
}

void DiffAccumulator::Add(std::span<const float> a, std::span<const float> b, uint64_t first) {
  for (size_t i = 0; i < a.size(); ++i) {
    const double x = a[i], y = b[i];
    const uint64_t e = first + i;
    const bool fx = std::isfinite(x), fy = std::isfinite(y);
    d_.nonfinite_a += !fx;
    d_.nonfinite_b += !fy;
    if (fx && fy) {
      const double diff = x - y;
      s_dd_ += diff * diff;
      s_bb_ += y * y;
      s_aa_ += x * x;
      s_ab_ += x * y;
      row_dd_ += diff * diff;
      row_bb_ += y * y;
      if (std::fabs(diff) > d_.max_abs) {
        d_.max_abs = std::fabs(diff);
        d_.argmax_abs = e;
      }
    }
    if ((e + 1) % row_len_ == 0) {
      const double rel = row_bb_ > 0 ? std::sqrt(row_dd_ / row_bb_) : (row_dd_ > 0 ? INFINITY : 0.0);
      if (rel > d_.worst_row_rel_l2) {
        d_.worst_row_rel_l2 = rel;
        d_.worst_row = e / row_len_;
      }
      row_dd_ = row_bb_ = 0;
    }
  }
  d_.n = std::max(d_.n, first + a.size());
}

TensorDiff DiffAccumulator::Finish() const {
  TensorDiff d = d_;
  d.rel_l2 = s_bb_ > 0 ? std::sqrt(s_dd_ / s_bb_) : (s_dd_ > 0 ? INFINITY : 0.0);
  d.snr_db = s_dd_ > 0 ? 10.0 * std::log10(s_bb_ / s_dd_) : std::numeric_limits<double>::infinity();
  d.cosine = (s_aa_ > 0 && s_bb_ > 0) ? s_ab_ / std::sqrt(s_aa_ * s_bb_) : ((s_aa_ == 0 && s_bb_ == 0) ? 1.0 : 0.0);
  d.norm_ratio = s_bb_ > 0 ? std::sqrt(s_aa_ / s_bb_) : (s_aa_ > 0 ? INFINITY : 1.0);
  return d;
}

Judgement Judge(const TensorDiff& d, GgmlType a, GgmlType b) {
  Judgement j;
  const double ea = TypicalRelL2(a), eb = TypicalRelL2(b);
  j.expected = kBandFactor * std::sqrt(ea * ea + eb * eb);
  if (d.nonfinite_a != d.nonfinite_b) {
    j.within = false;
    j.reason = fmt::format("{} non-finite values here, {} in the reference", d.nonfinite_a, d.nonfinite_b);
    return j;
  }
  if (a == b) {
    // The same type holds the same bits unless something changed them.
    if (!d.bytes_identical) {
      j.within = false;
      j.reason = fmt::format("same type ({}) but different bytes from byte {} of the data", gguf::TypeName(a),
                             d.first_diff_byte);
    }
  } else if (d.rel_l2 > j.expected + 1e-7) {
    j.within = false;
    j.reason = fmt::format("relative error {:.4g}, beyond the {:.4g} that {} vs {} quantization explains", d.rel_l2,
                           j.expected, gguf::TypeName(a), gguf::TypeName(b));
  } else if (const double scale_band = kScaleSlack + 1.5 * (ea * ea + eb * eb);
             std::fabs(d.norm_ratio - 1) > scale_band) {
    // Quantization moves a tensor's norm by about e^2/2; a rescale moves it by
    // the factor itself, even when the relative error stays inside the band.
    j.within = false;
    j.reason = fmt::format("norm ratio {:.4g}, beyond the 1 +- {:.3g} that quantization explains", d.norm_ratio,
                           scale_band);
  }
  if (!j.within) {
    // Say what kind of change it looks like.
    if (d.cosine < -0.5) {
      j.reason += fmt::format("; sign flipped (cosine {:.3f})", d.cosine);
    } else if (d.cosine > 1 - 4 * j.expected * j.expected - 1e-6 && std::fabs(d.norm_ratio - 1) > j.expected) {
      j.reason += fmt::format("; same direction, scaled x{:.4g}", d.norm_ratio);
    } else if (std::fabs(d.cosine) < 0.2) {
      j.reason += fmt::format("; unrelated values (cosine {:.3f}): swapped or overwritten?", d.cosine);
    }
    j.reason += fmt::format("; worst row {} (relative error {:.4g}), largest difference {:.4g} at element {}",
                            d.worst_row, d.worst_row_rel_l2, d.max_abs, d.argmax_abs);
  }
  return j;
}

}  // namespace ggufscope::compare
