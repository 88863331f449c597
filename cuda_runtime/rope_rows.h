// The row order in which a RopeFold's rotated parts are read and emitted
// (ops.h, matvec.cu): the tensor-core kernels' emitting threads hold two
// adjacent virtual rows, so in a rotated part virtual rows 2m and 2m + 1 of
// each head's first n_rot rows are rotation pair m: rows m and m + n_rot/2
// for NEOX (ggml's GGML_ROPE_TYPE_NEOX), 2m and 2m + 1 for NORM (the
// identity). Rows n_rot.. of a head keep their place.
//
// Header-only, plain C++ on the host and __host__ __device__ under nvcc (the
// kernels and the CPU test tests/unit/rope_rows_test.cc share it).
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define GGUFSCOPE_ROPE_HD __host__ __device__
#else
#define GGUFSCOPE_ROPE_HD
#endif

namespace ggufscope::cuda {

// The part row that virtual row i of a rotated part holds (head_dim even,
// n_rot even and in (0, head_dim]).
GGUFSCOPE_ROPE_HD inline int64_t RopeRowOf(int64_t i, int head_dim, int n_rot, bool neox) {
  if (!neox) return i;
  const int64_t head = i / head_dim;
  const int j = static_cast<int>(i - head * head_dim);
  if (j >= n_rot) return i;
  return head * head_dim + (j >> 1) + (j & 1) * (n_rot / 2);
}

}  // namespace ggufscope::cuda

#undef GGUFSCOPE_ROPE_HD
