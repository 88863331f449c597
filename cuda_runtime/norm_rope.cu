// RMSNorm and rotary position embedding.
#include <string>

#include "cuda_runtime/op_common.cuh"
#include "cuda_runtime/ops.h"

namespace ggufscope::cuda {
namespace {

constexpr int kNormThreads = 256;

// 1 / sqrt(mean + eps) of a row from each thread's partial sum of squares:
// warps reduce with shuffles, warp 0 reduces the warp totals, as ggml:
// IEEE division and square root. Every thread of the block must call it; it
// holds two barriers, so warp_sums and scale_shared may be reused after it.
__device__ __forceinline__ float RowScale(float sum, int64_t n_cols, float eps, float* warp_sums,
                                          float* scale_shared) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) sum += __shfl_xor_sync(0xFFFFFFFFu, sum, offset);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = sum;
  __syncthreads();
  if (threadIdx.x < 32) {
    const int n_warps = blockDim.x / 32;
    float s = threadIdx.x < n_warps ? warp_sums[threadIdx.x] : 0.0f;
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) s += __shfl_xor_sync(0xFFFFFFFFu, s, offset);
    if (threadIdx.x == 0) *scale_shared = 1.0f / sqrtf(s / static_cast<float>(n_cols) + eps);
  }
  __syncthreads();
  return *scale_shared;
}

// One CUDA block per row: each thread sums the squares of its strided
// elements in f32, then RowScale. With kPer > 0 a thread holds its (at most
// kPer) elements in registers: all its loads are issued before the first
// use and x is read once; kPer 0 streams any row length. The sum's order is
// the same either way (columns threadIdx.x, +blockDim.x, ... from 0), so the
// results are too. With a residual, residual += y afterwards (as
// Add(residual, y) would); with y2 as well (kPer > 0 only), y2 =
// RmsNorm(residual, w2) of the updated residual, summed in the same order
// as RmsNorm would sum it (the next block's pre-norm, one launch fewer).
// y may alias x: every element is read before the barrier and written after
// it by the same thread. With kPer > 0 the thread also loads its weights
// (before waiting for the previous kernel: they are no op's output) and its
// residual elements before its first store: loads behind stores to a
// possibly aliasing y would each wait a memory round trip.
template <int kPer>
__global__ void __launch_bounds__(kNormThreads)
    RmsNormKernel(const float* x, const float* w, int64_t n_cols, float eps, float* y, float* residual,
                  const float* w2, float* y2) {
  __shared__ float warp_sums[kNormThreads / 32];
  __shared__ float scale_shared;
  constexpr int kHeld = kPer > 0 ? kPer : 1;
  const auto col = [](int i) { return threadIdx.x + static_cast<int64_t>(i) * blockDim.x; };  // held element i
  float wv[kHeld], w2v[kHeld];
  if constexpr (kPer > 0) {
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      const int64_t c = col(i);
      wv[i] = w != nullptr && c < n_cols ? __ldg(w + c) : 1.0f;
      w2v[i] = y2 != nullptr && w2 != nullptr && c < n_cols ? __ldg(w2 + c) : 1.0f;
    }
  }
  internal::GridEnter();
  const int64_t row = blockIdx.x;
  const float* xr = x + row * n_cols;
  float* yr = y + row * n_cols;
  float* rr = residual != nullptr ? residual + row * n_cols : nullptr;
  float held[kHeld], rv[kHeld];
  float sum = 0.0f;
  if constexpr (kPer > 0) {
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      const int64_t c = col(i);
      held[i] = c < n_cols ? xr[c] : 0.0f;
    }
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      if (col(i) < n_cols) sum = fmaf(held[i], held[i], sum);
    }
  } else {
    for (int64_t c = threadIdx.x; c < n_cols; c += blockDim.x) sum = fmaf(xr[c], xr[c], sum);
  }
  const float scale = RowScale(sum, n_cols, eps, warp_sums, &scale_shared);
  if constexpr (kPer > 0) {
    if (rr != nullptr) {
#pragma unroll
      for (int i = 0; i < kPer; ++i) {
        const int64_t c = col(i);
        rv[i] = c < n_cols ? rr[c] : 0.0f;
      }
    }
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      const int64_t c = col(i);
      if (c >= n_cols) break;
      const float v = held[i] * scale;
      const float out = w != nullptr ? v * wv[i] : v;
      yr[c] = out;
      if (rr != nullptr) {
        rv[i] = rv[i] + out;  // the updated residual, kept for y2
        rr[c] = rv[i];
      }
    }
    if (rr != nullptr && y2 != nullptr) {
      float sum2 = 0.0f;
#pragma unroll
      for (int i = 0; i < kPer; ++i) {
        if (col(i) < n_cols) sum2 = fmaf(rv[i], rv[i], sum2);
      }
      const float scale2 = RowScale(sum2, n_cols, eps, warp_sums, &scale_shared);
      float* y2r = y2 + row * n_cols;
#pragma unroll
      for (int i = 0; i < kPer; ++i) {
        const int64_t c = col(i);
        if (c >= n_cols) break;
        const float v = rv[i] * scale2;
        y2r[c] = w2 != nullptr ? v * w2v[i] : v;
      }
    }
  } else {
    for (int64_t c = threadIdx.x; c < n_cols; c += blockDim.x) {
      const float v = xr[c] * scale;
      const float out = w != nullptr ? v * w[c] : v;
      yr[c] = out;
      if (rr != nullptr) rr[c] = rr[c] + out;
    }
  }
}

// One CUDA block per token. Thread i computes pair i's angle once (in f64:
// pos * base^(-2i/n_rot) reaches thousands of radians, where an f32 angle
// would be off by ~1e-4) and rotates that pair in every head. y may alias x:
// each pair is read and written by one thread.
__global__ void RopeKernel(const float* x, const int32_t* positions, int n_heads, int head_dim,
                           int n_rot, float base, bool neox, float* y) {
  const int64_t token = blockIdx.x;
  const int64_t row = token * n_heads * static_cast<int64_t>(head_dim);
  const double pos = positions[token];
  const int half = n_rot / 2;
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    float cf, sf;
    internal::RopeCosSin(pos, base, i, n_rot, &cf, &sf);
    int a, b;
    internal::RopePair(neox, i, half, &a, &b);
    for (int h = 0; h < n_heads; ++h) {
      const int64_t o = row + static_cast<int64_t>(h) * head_dim;
      const float x0 = x[o + a], x1 = x[o + b];
      y[o + a] = x0 * cf - x1 * sf;
      y[o + b] = x0 * sf + x1 * cf;
    }
  }
  if (x != y) {  // dimensions past n_rot pass through
    const int tail = head_dim - n_rot;
    for (int k = threadIdx.x; k < n_heads * tail; k += blockDim.x) {
      const int64_t o = row + static_cast<int64_t>(k / tail) * head_dim + n_rot + k % tail;
      y[o] = x[o];
    }
  }
}

// Thread m: pair m's cosine and sine at positions[0] (RopeTable).
__global__ void RopeTableKernel(const int32_t* positions, int half, int n_rot, float base, float* cos_sin) {
  internal::GridEnter();
  const double pos = positions[0];
  for (int m = threadIdx.x; m < half; m += blockDim.x) {
    float cf, sf;
    internal::RopeCosSin(pos, base, m, n_rot, &cf, &sf);
    cos_sin[2 * m] = cf;
    cos_sin[2 * m + 1] = sf;
  }
}

}  // namespace

namespace {

Status LaunchRmsNorm(Context& ctx, const char* op, const float* x, const float* w, int64_t n_rows, int64_t n_cols,
                     float eps, float* y, bool with_residual, float* residual, const float* w2 = nullptr,
                     float* y2 = nullptr) {
  int64_t n = 0;
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckedProduct(op, n_rows, n_cols, &n));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(op, "x", x, n));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(op, "y", y, n));
  if (with_residual) {
    GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(op, "residual", residual, n));
  }
  if (w != nullptr) GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(op, "w", w, n_cols));
  if (y2 != nullptr) {
    GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(op, "y2", y2, n));
    if (w2 != nullptr) GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(op, "w2", w2, n_cols));
  }
  if (!(eps >= 0.0f)) return Status::Error(std::string(op) + ": eps must be >= 0");
  if (n == 0) return {};
  if (n_rows > internal::kMaxGridX) return Status::Error(std::string(op) + ": too many rows for one launch");
  GGUFSCOPE_RETURN_IF_ERROR(internal::Enter(ctx));
  // Small rows get one warp: no idle threads in the reduction. (QkvPost in
  // decode_ops.cu repeats this choice for its per-head norms.)
  const int threads = n_cols >= 1024 ? kNormThreads : n_cols >= 128 ? 128 : 32;
  const int64_t per = (n_cols + threads - 1) / threads;
  if (y2 != nullptr && per > 32) {  // rows too long to hold: the two launches
    GGUFSCOPE_RETURN_IF_ERROR(LaunchRmsNorm(ctx, op, x, w, n_rows, n_cols, eps, y, true, residual));
    return LaunchRmsNorm(ctx, op, residual, w2, n_rows, n_cols, eps, y2, false, nullptr);
  }
  const unsigned grid = static_cast<unsigned>(n_rows);
  const auto kernel = per <= 4    ? RmsNormKernel<4>
                      : per <= 8  ? RmsNormKernel<8>
                      : per <= 16 ? RmsNormKernel<16>
                      : per <= 32 ? RmsNormKernel<32>
                                  : RmsNormKernel<0>;
  GGUFSCOPE_CUDA_TRY(
      internal::LaunchDependent(ctx, kernel, grid, threads, 0, x, w, n_cols, eps, y, residual, w2, y2));
  GGUFSCOPE_CHECK_LAUNCH("RmsNormKernel");
  return {};
}

}  // namespace

Status RmsNorm(Context& ctx, const float* x, const float* w, int64_t n_rows, int64_t n_cols,
               float eps, float* y) {
  return LaunchRmsNorm(ctx, "RmsNorm", x, w, n_rows, n_cols, eps, y, false, nullptr);
}

Status RmsNormResidual(Context& ctx, const float* x, const float* w, int64_t n_rows, int64_t n_cols, float eps,
                       float* y, float* residual) {
  return LaunchRmsNorm(ctx, "RmsNormResidual", x, w, n_rows, n_cols, eps, y, true, residual);
}

Status RmsNormResidualNorm(Context& ctx, const float* x, const float* w, int64_t n_rows, int64_t n_cols, float eps,
                           float* y, float* residual, const float* w2, float* y2) {
  if (y2 == nullptr) return Status::Error("RmsNormResidualNorm: y2 is null");
  return LaunchRmsNorm(ctx, "RmsNormResidualNorm", x, w, n_rows, n_cols, eps, y, true, residual, w2, y2);
}

Status Rope(Context& ctx, const float* x, const int32_t* positions, int64_t n_tokens, int n_heads,
            int head_dim, int n_rot, float base, RopeMode mode, float* y) {
  constexpr const char* kOp = "Rope";
  if (n_heads <= 0 || head_dim <= 0) return Status::Error("Rope: n_heads and head_dim must be > 0");
  if (n_rot <= 0 || n_rot > head_dim || n_rot % 2 != 0) {
    return Status::Error("Rope: n_rot " + std::to_string(n_rot) +
                         " must be even and in (0, head_dim " + std::to_string(head_dim) + "]");
  }
  if (!(base > 0.0f)) return Status::Error("Rope: base must be > 0");
  int64_t row = 0, n = 0;
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckedProduct(kOp, n_heads, head_dim, &row));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckedProduct(kOp, n_tokens, row, &n));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "x", x, n));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "y", y, n));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "positions", positions, n_tokens));
  if (n == 0) return {};
  if (n_tokens > internal::kMaxGridX) return Status::Error("Rope: too many tokens for one launch");
  GGUFSCOPE_RETURN_IF_ERROR(internal::Enter(ctx));
  const int threads = n_rot / 2 >= 128 ? 128 : 64;
  RopeKernel<<<static_cast<unsigned>(n_tokens), threads, 0, internal::StreamOf(ctx)>>>(
      x, positions, n_heads, head_dim, n_rot, base, mode == RopeMode::kNeox, y);
  GGUFSCOPE_CHECK_LAUNCH("RopeKernel");
  return {};
}

Status RopeTable(Context& ctx, const int32_t* positions, int n_rot, float base, float* cos_sin) {
  constexpr const char* kOp = "RopeTable";
  if (n_rot <= 0 || n_rot % 2 != 0) {
    return Status::Error("RopeTable: n_rot " + std::to_string(n_rot) + " must be even and > 0");
  }
  if (!(base > 0.0f)) return Status::Error("RopeTable: base must be > 0");
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "positions", positions, 1));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "cos_sin", cos_sin, n_rot));
  GGUFSCOPE_RETURN_IF_ERROR(internal::Enter(ctx));
  const int half = n_rot / 2;
  GGUFSCOPE_CUDA_TRY(internal::LaunchDependent(ctx, RopeTableKernel, 1, half >= 128 ? 128 : 64, 0, positions, half,
                                               n_rot, base, cos_sin));
  GGUFSCOPE_CHECK_LAUNCH("RopeTableKernel");
  return {};
}

}  // namespace ggufscope::cuda
