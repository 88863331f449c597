// The faulty ops of fault_ops.h: simple kernels that reproduce the CPU
// reference's injected bugs (reference_cpu/forward.cc), not fast ones.
#include <cuda_fp16.h>

#include <cmath>

#include "cuda_runtime/fault_ops.h"
#include "cuda_runtime/op_common.cuh"

namespace ggufscope::cuda {
namespace {

constexpr int kAttnThreads = 128;  // threads per block = keys per tile
constexpr int kMaxHeadDim = 512;
constexpr int kDimsPerThread = kMaxHeadDim / kAttnThreads;  // output dimensions a thread owns

// The max (kMax) or sum of v over the block, returned to every thread.
// scratch: kAttnThreads entries; thread 0 reduces them in order.
template <bool kMax, typename T>
__device__ T BlockReduce(T v, T* scratch) {
  scratch[threadIdx.x] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    T r = scratch[0];
    for (int i = 1; i < kAttnThreads; ++i) r = kMax ? (scratch[i] > r ? scratch[i] : r) : r + scratch[i];
    scratch[0] = r;
  }
  __syncthreads();
  const T r = scratch[0];
  __syncthreads();  // scratch is rewritten by the next reduction
  return r;
}

// scale * (q . k), as the reference's dot * kq_scale.
__device__ __forceinline__ float Score(const float* q_s, const float* k, int head_dim, float scale) {
  float dot = 0.0f;
  for (int d = 0; d < head_dim; ++d) dot = fmaf(q_s[d], k[d], dot);
  return dot * scale;
}

// The unnormalized weight of score s. f16_exp: the reference's
// ToF16AndBack(std::exp(s)): exp in f64 rounded to f32 is the correctly
// rounded f32 exp (glibc's expf, within 0.502 ulp, agrees but for a
// vanishing few), then to f16, nearest even, inf from 65520 on. Else the
// clean softmax term exp(s - max).
__device__ __forceinline__ float Weight(float s, float max_score, bool f16_exp) {
  if (f16_exp) return __half2float(__float2half_rn(static_cast<float>(exp(static_cast<double>(s)))));
  return expf(s - max_score);
}

// grid (n_tokens, n_head), kAttnThreads threads. Shared: the query
// (head_dim floats) and one tile's weights (kAttnThreads floats).
__global__ void __launch_bounds__(kAttnThreads)
    FaultyAttentionKernel(const float* q, const float* k_cache, const float* v_cache,
                          int64_t n_cache_rows, const int32_t* positions, int n_head_kv, int group,
                          int head_dim, int64_t q_stride, int64_t kv_stride, float scale, int window,
                          bool f16_exp, bool kv_head_modulo, float* out) {
  extern __shared__ float smem[];
  __shared__ float max_scratch[kAttnThreads];
  __shared__ double sum_scratch[kAttnThreads];
  float* q_s = smem;             // (head_dim)
  float* w_s = smem + head_dim;  // (kAttnThreads)
  const int64_t t = blockIdx.x;
  const int h = blockIdx.y;
  const int kv_head = kv_head_modulo ? h % n_head_kv : h / group;
  const int64_t kv_off = static_cast<int64_t>(kv_head) * head_dim;
  const float* qh = q + t * q_stride + static_cast<int64_t>(h) * head_dim;
  for (int d = threadIdx.x; d < head_dim; d += kAttnThreads) q_s[d] = qh[d];
  // Visible keys [first, n_keys): ops.h's Attention rule.
  const int64_t pos = positions[t];
  const int64_t n_keys = pos + 1 < n_cache_rows ? pos + 1 : n_cache_rows;
  const int64_t first = window > 0 && n_keys > window ? n_keys - window : 0;
  __syncthreads();

  float max_score = -INFINITY;  // unused by f16_exp, which subtracts nothing
  if (!f16_exp) {
    for (int64_t j = first + threadIdx.x; j < n_keys; j += kAttnThreads) {
      max_score = fmaxf(max_score, Score(q_s, k_cache + j * kv_stride + kv_off, head_dim, scale));
    }
    max_score = BlockReduce<true>(max_score, max_scratch);
  }
  double sum = 0.0;
  for (int64_t j = first + threadIdx.x; j < n_keys; j += kAttnThreads) {
    sum += Weight(Score(q_s, k_cache + j * kv_stride + kv_off, head_dim, scale), max_score, f16_exp);
  }
  sum = BlockReduce<false>(sum, sum_scratch);
  if (f16_exp) sum = __half2float(__float2half_rn(static_cast<float>(sum)));
  // The reference's T(1.0 / sum): 1/inf = 0, so an overflowed sum zeroes
  // every weight and an overflowed weight becomes inf * 0 = NaN.
  const float inv = static_cast<float>(1.0 / sum);

  float acc[kDimsPerThread] = {};
  for (int64_t j0 = first; j0 < n_keys; j0 += kAttnThreads) {
    const int64_t j = j0 + threadIdx.x;
    w_s[threadIdx.x] =
        j < n_keys ? Weight(Score(q_s, k_cache + j * kv_stride + kv_off, head_dim, scale), max_score, f16_exp) * inv
                   : 0.0f;
    __syncthreads();
    const int n_tile = static_cast<int>(n_keys - j0 < kAttnThreads ? n_keys - j0 : kAttnThreads);
#pragma unroll
    for (int i = 0; i < kDimsPerThread; ++i) {
      const int d = threadIdx.x + i * kAttnThreads;
      if (d < head_dim) {
        const float* vd = v_cache + j0 * kv_stride + kv_off + d;
        for (int jj = 0; jj < n_tile; ++jj) acc[i] = fmaf(w_s[jj], vd[jj * kv_stride], acc[i]);
      }
    }
    __syncthreads();  // w_s is rewritten by the next tile
  }
  // No visible key (positions[t] < 0): NaN, as ops.h's Attention gives.
  const bool none = n_keys <= first;
  float* oh = out + t * q_stride + static_cast<int64_t>(h) * head_dim;
#pragma unroll
  for (int i = 0; i < kDimsPerThread; ++i) {
    const int d = threadIdx.x + i * kAttnThreads;
    if (d < head_dim) oh[d] = none ? NAN : acc[i];
  }
}

// y[t, r] = sum_c x[t, c] * w[c, r]: one output element per thread,
// grid-stride; neighbouring threads read neighbouring w elements.
__global__ void MatMulUntransposedKernel(const float* w, int64_t d, const float* x, int64_t n, float* y) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = i / d, r = i % d;
    const float* xt = x + t * d;
    float acc = 0.0f;
    for (int64_t c = 0; c < d; ++c) acc = fmaf(xt[c], w[c * d + r], acc);
    y[i] = acc;
  }
}

}  // namespace

Status FaultyAttention(Context& ctx, const float* q, const float* k_cache, const float* v_cache,
                       int64_t n_cache_rows, const int32_t* positions, int64_t n_tokens, int n_head,
                       int n_head_kv, int head_dim, float scale, int window, AttentionFaults faults,
                       float* out) {
  int64_t q_stride = 0, kv_stride = 0, n_q = 0;
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckAttentionArgs("FaultyAttention", q, k_cache, v_cache, n_cache_rows, positions,
                                                         n_tokens, n_head, n_head_kv, head_dim, kMaxHeadDim, scale,
                                                         window, out, &q_stride, &kv_stride, &n_q));
  if (n_q == 0) return {};
  GGUFSCOPE_RETURN_IF_ERROR(internal::Enter(ctx));
  const dim3 grid(static_cast<unsigned>(n_tokens), static_cast<unsigned>(n_head));
  const size_t shared = static_cast<size_t>(head_dim + kAttnThreads) * sizeof(float);
  FaultyAttentionKernel<<<grid, kAttnThreads, shared, internal::StreamOf(ctx)>>>(
      q, k_cache, v_cache, n_cache_rows, positions, n_head_kv, n_head / n_head_kv, head_dim, q_stride,
      kv_stride, scale, window, faults.f16_exp, faults.kv_head_modulo, out);
  GGUFSCOPE_CHECK_LAUNCH("FaultyAttentionKernel");
  return {};
}

Status MatMulUntransposed(Context& ctx, const float* w, int64_t d, const float* x, int64_t n_tokens,
                          float* y) {
  constexpr const char* kOp = "MatMulUntransposed";
  int64_t n_w = 0, n_y = 0;
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckedProduct(kOp, d, d, &n_w));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckedProduct(kOp, n_tokens, d, &n_y));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "w", w, n_w));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "x", x, n_y));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "y", y, n_y));
  if (n_y == 0) return {};
  GGUFSCOPE_RETURN_IF_ERROR(internal::Enter(ctx));
  constexpr int kThreads = 256;
  MatMulUntransposedKernel<<<internal::GridStrideBlocks(n_y, kThreads), kThreads, 0, internal::StreamOf(ctx)>>>(
      w, d, x, n_y, y);
  GGUFSCOPE_CHECK_LAUNCH("MatMulUntransposedKernel");
  return {};
}

Status ZeroFill(Context& ctx, float* p, int64_t n) {
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray("ZeroFill", "p", p, n));
  if (n == 0) return {};
  GGUFSCOPE_RETURN_IF_ERROR(internal::Enter(ctx));
  GGUFSCOPE_CUDA_TRY(
      cudaMemsetAsync(p, 0, static_cast<size_t>(n) * sizeof(float), internal::StreamOf(ctx)));
  return {};
}

}  // namespace ggufscope::cuda
