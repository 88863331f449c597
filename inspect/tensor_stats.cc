#include "inspect/tensor_stats.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <thread>

#include "gguf/block_scales.h"
#include "gguf/dequant.h"

namespace ggufscope::inspect {
namespace {

using gguf::GgmlType;
using gguf::TensorInfo;

// Elements dequantized at a time by one worker: 4 MiB of floats.
constexpr uint64_t kChunkElements = uint64_t{1} << 20;
constexpr int kLanes = 16;

bool IsInteger(GgmlType t) {
  return t == GgmlType::kI8 || t == GgmlType::kI16 || t == GgmlType::kI32 || t == GgmlType::kI64;
}

// Sums of one chunk, merged into the tensor's totals under its lock.
struct Partial {
  double sum = 0, sum_sq = 0, sum_abs = 0;
  double min = std::numeric_limits<double>::infinity(), max = -std::numeric_limits<double>::infinity();
  double max_abs = -1;
  uint64_t argmax_abs = 0;
  uint64_t finite = 0, zeros = 0, nan = 0, inf = 0, first_nonfinite = UINT64_MAX;
  uint64_t impossible = 0, first_impossible = UINT64_MAX;
  uint64_t scale_nan = 0, scale_inf = 0, first_bad_scale_block = UINT64_MAX;
  uint64_t zero_rows = 0, first_zero_row = UINT64_MAX;

  void Merge(const Partial& o) {
    sum += o.sum;
    sum_sq += o.sum_sq;
    sum_abs += o.sum_abs;
    min = std::min(min, o.min);
    max = std::max(max, o.max);
    if (o.max_abs > max_abs || (o.max_abs == max_abs && o.argmax_abs < argmax_abs)) {
      max_abs = o.max_abs;
      argmax_abs = o.argmax_abs;
    }
    finite += o.finite;
    zeros += o.zeros;
    nan += o.nan;
    inf += o.inf;
    first_nonfinite = std::min(first_nonfinite, o.first_nonfinite);
    impossible += o.impossible;
    first_impossible = std::min(first_impossible, o.first_impossible);
    scale_nan += o.scale_nan;
    scale_inf += o.scale_inf;
    first_bad_scale_block = std::min(first_bad_scale_block, o.first_bad_scale_block);
    zero_rows += o.zero_rows;
    first_zero_row = std::min(first_zero_row, o.first_zero_row);
  }
};

// A range of one tensor: whole rows [row0, row1), or (for rows longer than a
// chunk) the columns [col0, col1) of the single row row0.
struct WorkItem {
  size_t tensor;
  uint64_t row0, row1, col0, col1;
  uint64_t bytes;
};

struct TensorAcc {
  std::mutex mu;
  Partial total;
  std::vector<float> piece_max;           // max |w| of each piece (row-major)
  std::vector<uint64_t> split_row_zeros;  // zero counts of rows processed in segments
};

// Accumulates x[0..n) whose first element has flat index `base`. The fast
// path keeps kLanes independent float accumulators per piece so the compiler
// vectorizes it; a piece holding a NaN, Inf or huge value is redone exactly.
void AccumulatePiece(const float* x, uint32_t n, uint64_t base, Partial& p, float* piece_max,
                     uint64_t* zeros_out) {
  float s[kLanes] = {}, s2[kLanes] = {}, mn[kLanes], mx[kLanes], am[kLanes] = {};
  uint32_t z[kLanes] = {};
  for (int l = 0; l < kLanes; ++l) {
    mn[l] = std::numeric_limits<float>::infinity();
    mx[l] = -std::numeric_limits<float>::infinity();
  }
  const uint32_t full = n / kLanes * kLanes;
  for (uint32_t i = 0; i < full; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const float v = x[i + l];
      s[l] += v;
      s2[l] += v * v;
      mn[l] = mn[l] < v ? mn[l] : v;
      mx[l] = mx[l] > v ? mx[l] : v;
      const float a = std::fabs(v);
      am[l] = am[l] > a ? am[l] : a;
      z[l] += v == 0.0f;
    }
  }
  for (uint32_t i = full; i < n; ++i) {
    const float v = x[i];
    s[0] += v;
    s2[0] += v * v;
    mn[0] = std::min(mn[0], v);
    mx[0] = std::max(mx[0], v);
    am[0] = std::max(am[0], std::fabs(v));
    z[0] += v == 0.0f;
  }
  float ts = 0, ts2 = 0, tmn = mn[0], tmx = mx[0], tam = 0;
  uint32_t tz = 0;
  for (int l = 0; l < kLanes; ++l) {
    ts += s[l];
    ts2 += s2[l];
    tmn = std::min(tmn, mn[l]);
    tmx = std::max(tmx, mx[l]);
    tam = std::max(tam, am[l]);
    tz += z[l];
  }
  const bool clean = std::isfinite(ts) && std::isfinite(ts2) && tam < kImpossibleMagnitude;
  if (clean) {
    p.sum += ts;
    p.sum_sq += ts2;
    p.min = std::min<double>(p.min, tmn);
    p.max = std::max<double>(p.max, tmx);
    p.finite += n;
    p.zeros += tz;
    *zeros_out += tz;
    *piece_max = tam;
    if (tam > p.max_abs) {
      for (uint32_t i = 0; i < n; ++i) {
        if (std::fabs(x[i]) == tam) {
          p.max_abs = tam;
          p.argmax_abs = base + i;
          break;
        }
      }
    }
    // sum |w| separately: cheap and keeps the fast loop lean.
    float sa[kLanes] = {};
    for (uint32_t i = 0; i < full; i += kLanes) {
      for (int l = 0; l < kLanes; ++l) sa[l] += std::fabs(x[i + l]);
    }
    for (uint32_t i = full; i < n; ++i) sa[0] += std::fabs(x[i]);
    float tsa = 0;
    for (int l = 0; l < kLanes; ++l) tsa += sa[l];
    p.sum_abs += tsa;
    return;
  }
  // Exact path, in double, element by element.
  float piece_abs = 0;
  bool nonfinite = false;
  for (uint32_t i = 0; i < n; ++i) {
    const double v = x[i];
    if (!std::isfinite(v)) {
      nonfinite = true;
      (std::isnan(v) ? p.nan : p.inf) += 1;
      p.first_nonfinite = std::min(p.first_nonfinite, base + i);
      continue;
    }
    const double a = std::fabs(v);
    if (a >= kImpossibleMagnitude) {
      ++p.impossible;
      p.first_impossible = std::min(p.first_impossible, base + i);
    }
    p.sum += v;
    p.sum_sq += v * v;
    p.sum_abs += a;
    p.min = std::min(p.min, v);
    p.max = std::max(p.max, v);
    ++p.finite;
    if (v == 0.0) {
      ++p.zeros;
      ++*zeros_out;
    }
    if (a > p.max_abs) {
      p.max_abs = a;
      p.argmax_abs = base + i;
    }
    piece_abs = std::max(piece_abs, static_cast<float>(a));
  }
  // A piece holding NaN or Inf ranks as infinitely far out.
  *piece_max = nonfinite ? std::numeric_limits<float>::infinity() : piece_abs;
}

// Checks the scale fields of blocks [b0, b1) of raw tensor bytes.
void CheckScales(const uint8_t* data, GgmlType type, uint64_t b0, uint64_t b1, Partial& p) {
  const gguf::BlockScales sc = gguf::ScalesOf(type);
  if (sc.kind == gguf::ScaleKind::kNone) return;
  const uint32_t ts = gguf::Traits(type).type_size;
  for (uint64_t b = b0; b < b1; ++b) {
    const uint8_t* blk = data + b * ts;
    for (uint8_t k = 0; k < sc.count; ++k) {
      const uint8_t* f = blk + sc.offsets[k];
      bool nan = false, inf = false;
      switch (sc.kind) {
        case gguf::ScaleKind::kF16: {
          const uint16_t h = static_cast<uint16_t>(f[0] | (f[1] << 8));
          nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0;
          inf = (h & 0x7fff) == 0x7c00;
          break;
        }
        case gguf::ScaleKind::kF32: {
          float v;
          std::memcpy(&v, f, 4);
          nan = std::isnan(v);
          inf = std::isinf(v);
          break;
        }
        case gguf::ScaleKind::kE8M0: nan = f[0] == 0xff; break;  // E8M0 reserves 0xff for NaN
        default: break;  // UE4M3 has no NaN or Inf encoding in ggml's use
      }
      if (nan || inf) {
        p.scale_nan += nan;
        p.scale_inf += inf;
        p.first_bad_scale_block = std::min(p.first_bad_scale_block, b);
      }
    }
  }
}

double Median(std::vector<float> v) {
  if (v.empty()) return 0;
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + mid, v.end());
  return v[mid];
}

}  // namespace

std::vector<TensorStats> ComputeStats(const gguf::GgufFile& f, const StatsOptions& opt) {
  const auto& infos = f.tensors();
  std::vector<TensorStats> out(infos.size());
  std::vector<TensorAcc> acc(infos.size());
  std::vector<WorkItem> work;
  uint64_t total_bytes = 0;
  for (size_t t = 0; t < infos.size(); ++t) {
    const TensorInfo& ti = infos[t];
    TensorStats& s = out[t];
    s.name = ti.name;
    s.type = ti.type;
    s.n = ti.n_elements;
    s.rows = ti.n_rows();
    s.values_checked = !IsInteger(ti.type) && ti.n_elements > 0;
    if (!s.values_checked) continue;
    const uint64_t row_len = static_cast<uint64_t>(ti.ne[0]);
    const uint64_t row_bytes = ti.n_bytes / s.rows;
    const uint64_t pieces_per_row = (row_len + kPiece - 1) / kPiece;
    acc[t].piece_max.assign(pieces_per_row * s.rows, 0.0f);
    if (row_len <= kChunkElements) {
      const uint64_t rows_per_chunk = std::max<uint64_t>(1, kChunkElements / row_len);
      for (uint64_t r = 0; r < s.rows; r += rows_per_chunk) {
        const uint64_t r1 = std::min(s.rows, r + rows_per_chunk);
        work.push_back({t, r, r1, 0, row_len, (r1 - r) * row_bytes});
      }
    } else {
      acc[t].split_row_zeros.assign(s.rows, 0);
      for (uint64_t r = 0; r < s.rows; ++r) {
        for (uint64_t c = 0; c < row_len; c += kChunkElements) {  // kChunkElements is a multiple of every block
          const uint64_t c1 = std::min(row_len, c + kChunkElements);
          work.push_back({t, r, r + 1, c, c1, (c1 - c) * row_bytes / row_len});
        }
      }
    }
    total_bytes += ti.n_bytes;
  }
  // Largest first, so the pool ends together.
  std::stable_sort(work.begin(), work.end(), [](const WorkItem& a, const WorkItem& b) { return a.bytes > b.bytes; });

  std::atomic<size_t> next{0};
  std::atomic<uint64_t> done_bytes{0};
  auto worker = [&]() {
    std::vector<float> buf(kChunkElements);
    for (size_t w = next++; w < work.size(); w = next++) {
      const WorkItem& it = work[w];
      const TensorInfo& ti = infos[it.tensor];
      const auto& traits = gguf::Traits(ti.type);
      const uint64_t row_len = static_cast<uint64_t>(ti.ne[0]);
      const uint64_t row_bytes = ti.n_bytes / ti.n_rows();
      const uint64_t pieces_per_row = (row_len + kPiece - 1) / kPiece;
      const std::span<const uint8_t> data = f.TensorData(ti);
      TensorAcc& a = acc[it.tensor];
      Partial p;
      const uint64_t cols = it.col1 - it.col0;
      const uint64_t n = (it.row1 - it.row0) * cols;
      const uint64_t src_off = it.row0 * row_bytes + it.col0 / traits.block_size * traits.type_size;
      const uint64_t src_len = n / traits.block_size * traits.type_size;
      const gguf::Status st = gguf::Dequantize(ti.type, data.subspan(src_off, src_len), n, std::span<float>(buf.data(), n));
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(a.mu);
        out[it.tensor].error = st.error().Message();
        continue;
      }
      const uint64_t blocks_per_row = row_len / traits.block_size;
      for (uint64_t r = it.row0; r < it.row1; ++r) {
        const float* row = buf.data() + (r - it.row0) * cols;
        uint64_t row_zeros = 0;
        for (uint64_t c = 0; c < cols; c += kPiece) {
          const uint32_t len = static_cast<uint32_t>(std::min<uint64_t>(kPiece, cols - c));
          const uint64_t piece = r * pieces_per_row + (it.col0 + c) / kPiece;
          AccumulatePiece(row + c, len, r * row_len + it.col0 + c, p, &a.piece_max[piece], &row_zeros);
        }
        CheckScales(data.data(), ti.type, r * blocks_per_row + it.col0 / traits.block_size,
                    r * blocks_per_row + it.col1 / traits.block_size, p);
        if (a.split_row_zeros.empty() && row_zeros == row_len) {
          ++p.zero_rows;
          p.first_zero_row = std::min(p.first_zero_row, r);
        } else if (!a.split_row_zeros.empty()) {
          std::lock_guard<std::mutex> lock(a.mu);
          a.split_row_zeros[r] += row_zeros;
        }
      }
      {
        std::lock_guard<std::mutex> lock(a.mu);
        a.total.Merge(p);
      }
      const uint64_t d = done_bytes += it.bytes;
      if (opt.progress) opt.progress(d, total_bytes);
    }
  };
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  const unsigned n_threads = static_cast<unsigned>(
      std::min<size_t>(opt.threads > 0 ? static_cast<unsigned>(opt.threads) : hw, std::max<size_t>(1, work.size())));
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < n_threads; ++i) pool.emplace_back(worker);
  worker();
  for (std::thread& t : pool) t.join();

  for (size_t t = 0; t < infos.size(); ++t) {
    TensorStats& s = out[t];
    if (!s.values_checked) continue;
    Partial& p = acc[t].total;
    if (!acc[t].split_row_zeros.empty()) {
      const uint64_t row_len = static_cast<uint64_t>(infos[t].ne[0]);
      for (uint64_t r = 0; r < s.rows; ++r) {
        if (acc[t].split_row_zeros[r] == row_len) {
          ++p.zero_rows;
          p.first_zero_row = std::min(p.first_zero_row, r);
        }
      }
    }
    s.finite = p.finite;
    s.zeros = p.zeros;
    s.nan = p.nan;
    s.inf = p.inf;
    s.first_nonfinite = p.first_nonfinite;
    s.impossible = p.impossible;
    s.first_impossible = p.first_impossible;
    s.scale_nan = p.scale_nan;
    s.scale_inf = p.scale_inf;
    s.first_bad_scale_block = p.first_bad_scale_block;
    s.zero_rows = p.zero_rows;
    s.first_zero_row = p.first_zero_row;
    if (p.finite > 0) {
      const double nf = static_cast<double>(p.finite);
      s.min = p.min;
      s.max = p.max;
      s.mean = p.sum / nf;
      s.rms = std::sqrt(p.sum_sq / nf);
      s.std = std::sqrt(std::max(0.0, p.sum_sq / nf - s.mean * s.mean));
      s.abs_mean = p.sum_abs / nf;
      s.max_abs = p.max_abs;
      s.argmax_abs = p.argmax_abs;
    }
    const std::vector<float>& pm = acc[t].piece_max;
    s.piece_max_median = Median(pm);
    if (s.piece_max_median > 0) {
      for (size_t i = 0; i < pm.size(); ++i) {
        const double ratio = pm[i] / s.piece_max_median;
        if (ratio > s.worst_piece_ratio) {
          s.worst_piece_ratio = ratio;
          s.worst_piece = i;
        }
      }
      const uint64_t row_len = static_cast<uint64_t>(infos[t].ne[0]);
      const uint64_t ppr = (row_len + kPiece - 1) / kPiece;
      s.worst_piece_element = s.worst_piece / ppr * row_len + s.worst_piece % ppr * kPiece;
    }
  }
  return out;
}

}  // namespace ggufscope::inspect
