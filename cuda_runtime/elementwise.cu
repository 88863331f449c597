// Gated activations, scaling and addition: one element per thread, grid-stride.
#include <algorithm>
#include <cmath>

#include "cuda_runtime/op_common.cuh"
#include "cuda_runtime/ops.h"

namespace ggufscope::cuda {
namespace {

constexpr int kThreads = 256;

using internal::GeluTanh;
using internal::Silu;

template <GluKind kKind>
__global__ void GluKernel(const float* gate, const float* up, int64_t n, float* out) {
  internal::GridEnter();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    out[i] = (kKind == GluKind::kSwiglu ? Silu(g) : GeluTanh(g)) * up[i];
  }
}

__global__ void AddKernel(const float* a, const float* b, int64_t n, int64_t n_cols, bool broadcast,
                          float* out) {
  internal::GridEnter();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    out[i] = a[i] + b[broadcast ? i % n_cols : i];
  }
}

__global__ void ScaleKernel(const float* x, int64_t n, float s, float* y) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    y[i] = x[i] * s;
  }
}

// As reference_cpu: c * tanh(z / c), IEEE division and the precise tanhf.
__global__ void SoftcapKernel(const float* x, int64_t n, float cap, float* y) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    y[i] = cap * tanhf(x[i] / cap);
  }
}

// ArgMax in two launches: ArgMaxPartialKernel's blocks each find the first
// maximum of a grid-strided share (every thread loads kArgMaxUnroll
// elements before comparing, so the loads overlap), ArgMaxFinalKernel
// reduces the blocks' (value, index) pairs. Pairs compare by larger value,
// then lower index; an empty pair (index kNoIndex) loses to any other. NaN
// never wins: a NaN x[0] is the answer itself (std::max_element's first
// element stays best, as nothing compares greater than NaN), any other NaN
// is skipped.
constexpr int kArgMaxThreads = 256;
constexpr int kArgMaxBlocks = 256;  // partial results at most
constexpr int kArgMaxUnroll = 8;
constexpr int64_t kNoIndex = INT64_MAX;

struct ArgMaxPair {
  float v;
  int64_t i;
};

__device__ __forceinline__ bool Better(const ArgMaxPair& a, const ArgMaxPair& b) {  // b beats a
  return b.i != kNoIndex && (a.i == kNoIndex || b.v > a.v || (b.v == a.v && b.i < a.i));
}

// The block's best pair, valid in thread 0.
__device__ __forceinline__ ArgMaxPair BlockBest(ArgMaxPair p) {
  __shared__ float vs[kArgMaxThreads / 32];
  __shared__ int64_t is[kArgMaxThreads / 32];
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const ArgMaxPair o{__shfl_xor_sync(0xFFFFFFFFu, p.v, offset), __shfl_xor_sync(0xFFFFFFFFu, p.i, offset)};
    if (Better(p, o)) p = o;
  }
  if (threadIdx.x % 32 == 0) {
    vs[threadIdx.x / 32] = p.v;
    is[threadIdx.x / 32] = p.i;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kArgMaxThreads / 32; ++w) {
      const ArgMaxPair o{vs[w], is[w]};
      if (Better(p, o)) p = o;
    }
  }
  return p;
}

__global__ void __launch_bounds__(kArgMaxThreads)
    ArgMaxPartialKernel(const float* x, int64_t n, float* part_v, int64_t* part_i) {
  internal::GridEnter();
  ArgMaxPair best{-INFINITY, kNoIndex};
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kArgMaxThreads;
  for (int64_t i0 = static_cast<int64_t>(blockIdx.x) * kArgMaxThreads + threadIdx.x; i0 < n;
       i0 += stride * kArgMaxUnroll) {
    float v[kArgMaxUnroll];
#pragma unroll
    for (int u = 0; u < kArgMaxUnroll; ++u) {
      const int64_t i = i0 + u * stride;
      v[u] = i < n ? x[i] : NAN;
    }
#pragma unroll
    for (int u = 0; u < kArgMaxUnroll; ++u) {  // increasing indices: strictly greater keeps the first
      if (!isnan(v[u]) && (best.i == kNoIndex || v[u] > best.v)) best = ArgMaxPair{v[u], i0 + u * stride};
    }
  }
  best = BlockBest(best);
  if (threadIdx.x == 0) {
    part_v[blockIdx.x] = best.v;
    part_i[blockIdx.x] = best.i;
  }
}

__global__ void __launch_bounds__(kArgMaxThreads)
    ArgMaxFinalKernel(const float* x, const float* part_v, const int64_t* part_i, int n_parts, int32_t* out,
                      int32_t* next_id, int32_t* next_pos) {
  internal::GridEnter();
  ArgMaxPair best{-INFINITY, kNoIndex};
  if (static_cast<int>(threadIdx.x) < n_parts) best = ArgMaxPair{part_v[threadIdx.x], part_i[threadIdx.x]};
  best = BlockBest(best);
  if (threadIdx.x == 0) {
    const int32_t id = isnan(x[0]) || best.i == kNoIndex ? 0 : static_cast<int32_t>(best.i);
    *out = id;
    if (next_id != nullptr) *next_id = id;
    if (next_pos != nullptr) *next_pos += 1;
  }
}

}  // namespace

Status Glu(Context& ctx, GluKind kind, const float* gate, const float* up, int64_t n, float* out) {
  constexpr const char* kOp = "Glu";
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "gate", gate, n));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "up", up, n));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "out", out, n));
  if (n == 0) return {};
  GGUFSCOPE_RETURN_IF_ERROR(internal::Enter(ctx));
  const unsigned grid = internal::GridStrideBlocks(n, kThreads);
  GGUFSCOPE_CUDA_TRY(internal::LaunchDependent(
      ctx, kind == GluKind::kSwiglu ? GluKernel<GluKind::kSwiglu> : GluKernel<GluKind::kGegluTanh>, grid, kThreads,
      0, gate, up, n, out));
  GGUFSCOPE_CHECK_LAUNCH("GluKernel");
  return {};
}

Status Add(Context& ctx, const float* a, const float* b, int64_t n_rows, int64_t n_cols,
           int64_t b_rows, float* out) {
  constexpr const char* kOp = "Add";
  if (b_rows != n_rows && b_rows != 1) {
    return Status::Error("Add: b has " + std::to_string(b_rows) + " rows; expected 1 or " +
                         std::to_string(n_rows));
  }
  int64_t n = 0;
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckedProduct(kOp, n_rows, n_cols, &n));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "a", a, n));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "b", b, b_rows * n_cols));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "out", out, n));
  if (n == 0) return {};
  GGUFSCOPE_RETURN_IF_ERROR(internal::Enter(ctx));
  GGUFSCOPE_CUDA_TRY(internal::LaunchDependent(ctx, AddKernel, internal::GridStrideBlocks(n, kThreads), kThreads, 0,
                                               a, b, n, n_cols, b_rows == 1 && n_rows != 1, out));
  GGUFSCOPE_CHECK_LAUNCH("AddKernel");
  return {};
}

Status Scale(Context& ctx, const float* x, int64_t n, float s, float* y) {
  constexpr const char* kOp = "Scale";
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "x", x, n));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "y", y, n));
  if (n == 0) return {};
  GGUFSCOPE_RETURN_IF_ERROR(internal::Enter(ctx));
  ScaleKernel<<<internal::GridStrideBlocks(n, kThreads), kThreads, 0, internal::StreamOf(ctx)>>>(
      x, n, s, y);
  GGUFSCOPE_CHECK_LAUNCH("ScaleKernel");
  return {};
}

Status Softcap(Context& ctx, const float* x, int64_t n, float cap, float* y) {
  constexpr const char* kOp = "Softcap";
  if (!(cap > 0.0f) || !std::isfinite(cap)) return Status::Error("Softcap: cap must be finite and > 0");
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "x", x, n));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "y", y, n));
  if (n == 0) return {};
  GGUFSCOPE_RETURN_IF_ERROR(internal::Enter(ctx));
  SoftcapKernel<<<internal::GridStrideBlocks(n, kThreads), kThreads, 0, internal::StreamOf(ctx)>>>(
      x, n, cap, y);
  GGUFSCOPE_CHECK_LAUNCH("SoftcapKernel");
  return {};
}

size_t ArgMaxScratchBytes() { return kArgMaxBlocks * (sizeof(float) + sizeof(int64_t)); }

Status ArgMax(Context& ctx, const float* x, int64_t n, void* scratch, int32_t* out, int32_t* next_id,
              int32_t* next_pos) {
  constexpr const char* kOp = "ArgMax";
  if (n <= 0 || n > INT32_MAX) return Status::Error("ArgMax: n must be in [1, 2^31)");
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "x", x, n));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "out", out, 1));
  if (next_id != nullptr) GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "next_id", next_id, 1));
  if (next_pos != nullptr) GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "next_pos", next_pos, 1));
  if (scratch == nullptr || !internal::IsAligned(scratch, 8)) {
    return Status::Error("ArgMax: scratch must be ArgMaxScratchBytes() 8-byte aligned bytes");
  }
  GGUFSCOPE_RETURN_IF_ERROR(internal::Enter(ctx));
  const int64_t per_block = int64_t{kArgMaxThreads} * kArgMaxUnroll;
  const int blocks = static_cast<int>(std::min<int64_t>(kArgMaxBlocks, (n + per_block - 1) / per_block));
  auto* part_i = static_cast<int64_t*>(scratch);
  auto* part_v = reinterpret_cast<float*>(part_i + kArgMaxBlocks);
  GGUFSCOPE_CUDA_TRY(
      internal::LaunchDependent(ctx, ArgMaxPartialKernel, blocks, kArgMaxThreads, 0, x, n, part_v, part_i));
  GGUFSCOPE_CHECK_LAUNCH("ArgMaxPartialKernel");
  GGUFSCOPE_CUDA_TRY(
      internal::LaunchDependent(ctx, ArgMaxFinalKernel, 1, kArgMaxThreads, 0, x, part_v, part_i, blocks, out,
                                                     next_id, next_pos));
  GGUFSCOPE_CHECK_LAUNCH("ArgMaxFinalKernel");
  return {};
}

}  // namespace ggufscope::cuda
