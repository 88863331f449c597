#include "reference_cpu/weight.h"

#include <algorithm>
#include <cstdlib>
#include <type_traits>
#include <vector>

#include "gguf/dequant.h"
#include "reference_cpu/dot.h"

namespace ggufscope::reference {

Weight::Weight(gguf::GgmlType type, int64_t rows, int64_t cols, std::span<const uint8_t> data,
               std::shared_ptr<const gguf::Mapping> owner)
    : type_(type),
      rows_(rows),
      cols_(cols),
      row_bytes_(static_cast<size_t>(gguf::BytesFor(type, static_cast<uint64_t>(cols)).value_or(0))),
      data_(data),
      owner_(std::move(owner)) {}

void Weight::DequantizeRows(int64_t r0, int64_t n, float* out) const {
  const size_t count = static_cast<size_t>(n * cols_);
  const gguf::Status s = gguf::Dequantize(type_, data_.subspan(static_cast<size_t>(r0) * row_bytes_, n * row_bytes_),
                                          count, std::span<float>(out, count));
  // The loader checked type, shape and byte count, so this cannot fail; if
  // it ever did, poison the rows rather than compute with stale memory.
  if (!s.ok()) std::fill(out, out + count, std::numeric_limits<float>::quiet_NaN());
}

template <typename T>
void MatMul(const Mat<T>& x, const Weight& w, Mat<T>& y) {
  const int64_t n = x.rows(), rows = w.rows(), cols = w.cols();
  y.resize(n, rows);
  // Decode: each weight is read once, straight from its blocks.
  if constexpr (std::is_same_v<T, float>) {
    if (const RowDotFn dot = FusedRowDot(w.type(), cols); dot != nullptr && n <= 2) {
      const int64_t chunk = 64;
      const int64_t n_chunks = (rows + chunk - 1) / chunk;
      // A parallel region costs about a microsecond while the OpenMP threads
      // still spin from the last one; a 256x256 matrix is 2-10 us of
      // kernel work. Generation, 2 threads, 2^16 against the earlier 2^19
      // (which left every matrix of the 2-layer synth models on one
      // thread), back to back: IQ2_S 5518 -> 8830 tok/s, TQ1_0 6577 ->
      // 10347, f32 10535 -> 14608, Gemma 3 270M 93 -> 95.
      const bool parallel = rows * cols >= (int64_t{1} << 16) && n_chunks > 1;
#pragma omp parallel for schedule(static) if (parallel)
      for (int64_t c = 0; c < n_chunks; ++c) {
        const int64_t r0 = c * chunk, nr = std::min(chunk, rows - r0);
        // y is row-major (n, rows): token t's outputs r0.. are contiguous.
        for (int64_t t = 0; t < n; ++t) dot(w.RowData(r0), w.row_bytes(), nr, cols, x.row(t).data(), &y(t, r0));
      }
      return;
    }
  }
  // Tiles small enough to stay in L2 while a few tokens read them; larger
  // for prefill, where each dequantized tile is reused by every token.
  const int64_t tile_floats = n <= 4 ? int64_t{16} << 10 : int64_t{128} << 10;
  const int64_t tile = std::clamp<int64_t>(tile_floats / std::max<int64_t>(cols, 1), 4, 1024);
  const int64_t n_tiles = (rows + tile - 1) / tile;
  const bool parallel = n * rows * cols >= (int64_t{1} << 18) && n_tiles > 1;
#pragma omp parallel if (parallel)
  {
    std::vector<float> buf(static_cast<size_t>(std::min(tile, rows) * cols));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < n_tiles; ++t) {
      const int64_t r0 = t * tile, nr = std::min(tile, rows - r0);
      w.DequantizeRows(r0, nr, buf.data());
      const Eigen::Map<const Mat<float>> wt(buf.data(), nr, cols);
      if constexpr (std::is_same_v<T, float>) {
        y.middleCols(r0, nr).noalias() = x * wt.transpose();
      } else {
        y.middleCols(r0, nr).noalias() = x * wt.template cast<T>().transpose();
      }
    }
  }
}

template void MatMul<float>(const Mat<float>&, const Weight&, Mat<float>&);
template void MatMul<double>(const Mat<double>&, const Weight&, Mat<double>&);

}  // namespace ggufscope::reference
