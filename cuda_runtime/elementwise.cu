// Gated activations, scaling and addition: one element per thread, grid-stride.
#include <cmath>

#include "cuda_runtime/op_common.cuh"
#include "cuda_runtime/ops.h"

namespace ggufscope::cuda {
namespace {

constexpr int kThreads = 256;

// Same formulas as reference_cpu (and ggml), with the precise expf/tanhf.
__device__ __forceinline__ float Silu(float z) { return z / (1.0f + expf(-z)); }
__device__ __forceinline__ float GeluTanh(float z) {
  constexpr float kSqrt2OverPi = 0.79788456080286535587989211986876f;
  return 0.5f * z * (1.0f + tanhf(kSqrt2OverPi * z * (1.0f + 0.044715f * z * z)));
}

template <GluKind kKind>
__global__ void GluKernel(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    out[i] = (kKind == GluKind::kSwiglu ? Silu(g) : GeluTanh(g)) * up[i];
  }
}

__global__ void AddKernel(const float* a, const float* b, int64_t n, int64_t n_cols, bool broadcast,
                          float* out) {
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

}  // namespace

Status Glu(Context& ctx, GluKind kind, const float* gate, const float* up, int64_t n, float* out) {
  constexpr const char* kOp = "Glu";
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "gate", gate, n));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "up", up, n));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "out", out, n));
  if (n == 0) return {};
  GGUFSCOPE_RETURN_IF_ERROR(internal::Enter(ctx));
  const unsigned grid = internal::GridStrideBlocks(n, kThreads);
  const cudaStream_t stream = internal::StreamOf(ctx);
  if (kind == GluKind::kSwiglu) {
    GluKernel<GluKind::kSwiglu><<<grid, kThreads, 0, stream>>>(gate, up, n, out);
  } else {
    GluKernel<GluKind::kGegluTanh><<<grid, kThreads, 0, stream>>>(gate, up, n, out);
  }
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
  AddKernel<<<internal::GridStrideBlocks(n, kThreads), kThreads, 0, internal::StreamOf(ctx)>>>(
      a, b, n, n_cols, b_rows == 1 && n_rows != 1, out);
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

}  // namespace ggufscope::cuda
