// The KV-cache store and causal attention over the cache.
//
// Attention runs one CUDA block per (query head, query token): the block
// walks its keys in tiles of kAttnThreads, one key per thread, with an
// online softmax (the running maximum m and sum l are rescaled by
// exp(m_old - m_new) when a tile raises the maximum), so any context length
// fits in a few hundred bytes of shared memory. Correctness first: each
// thread reads its key row alone (uncoalesced, served by L1/L2); value rows
// are read coalesced, one dimension per thread. Positions come from device
// memory, so a captured decode graph replays at every position.
#include <cmath>

#include "cuda_runtime/op_common.cuh"
#include "cuda_runtime/ops.h"

namespace ggufscope::cuda {
namespace {

constexpr int kAttnThreads = 128;  // threads per block = keys per tile
constexpr int kMaxHeadDim = 512;
constexpr int kDimsPerThread = kMaxHeadDim / kAttnThreads;  // output dimensions a thread owns

// The max (kMax) or sum of v over the block, returned to every thread.
template <bool kMax>
__device__ __forceinline__ float BlockReduce(float v, float* scratch) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float o = __shfl_xor_sync(0xFFFFFFFFu, v, offset);
    v = kMax ? fmaxf(v, o) : v + o;
  }
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  float r = scratch[0];
#pragma unroll
  for (int w = 1; w < kAttnThreads / 32; ++w) r = kMax ? fmaxf(r, scratch[w]) : r + scratch[w];
  __syncthreads();  // scratch is rewritten by the next reduction
  return r;
}

// grid (n_tokens, n_head). Shared: the query (head_dim floats) and the
// tile's probabilities (kAttnThreads floats).
__global__ void __launch_bounds__(kAttnThreads)
    AttentionKernel(const float* q, const float* k_cache, const float* v_cache,
                    int64_t n_cache_rows, const int32_t* positions, int group, int head_dim,
                    int64_t q_stride, int64_t kv_stride, float scale, int window, float* out) {
  extern __shared__ float smem[];
  __shared__ float scratch[kAttnThreads / 32];
  float* q_s = smem;             // (head_dim)
  float* p_s = smem + head_dim;  // (kAttnThreads)
  const int64_t t = blockIdx.x;
  const int h = blockIdx.y;
  const int64_t kv_off = static_cast<int64_t>(h / group) * head_dim;
  const float* qh = q + t * q_stride + static_cast<int64_t>(h) * head_dim;
  for (int d = threadIdx.x; d < head_dim; d += kAttnThreads) q_s[d] = qh[d];
  const int64_t pos = positions[t];
  const int64_t n_keys = pos + 1 < n_cache_rows ? pos + 1 : n_cache_rows;
  const int64_t first = window > 0 && n_keys > window ? n_keys - window : 0;
  float m = -INFINITY, l = 0.0f;
  float acc[kDimsPerThread] = {};
  __syncthreads();
  for (int64_t j0 = first; j0 < n_keys; j0 += kAttnThreads) {
    const int64_t j = j0 + threadIdx.x;
    float s = -INFINITY;
    if (j < n_keys) {
      const float* kj = k_cache + j * kv_stride + kv_off;
      float dot = 0.0f;
      for (int d = 0; d < head_dim; ++d) dot = fmaf(q_s[d], kj[d], dot);
      s = dot * scale;
    }
    // The tile holds at least one key (j0 < n_keys), so m_new is finite and
    // masked slots get exp(-inf) = 0; the first tile's correction is exp(-inf) = 0.
    const float m_new = fmaxf(m, BlockReduce<true>(s, scratch));
    const float p = j < n_keys ? expf(s - m_new) : 0.0f;
    const float corr = expf(m - m_new);
    l = l * corr + BlockReduce<false>(p, scratch);
    p_s[threadIdx.x] = p;
    __syncthreads();
    const int n_tile = static_cast<int>(n_keys - j0 < kAttnThreads ? n_keys - j0 : kAttnThreads);
#pragma unroll
    for (int i = 0; i < kDimsPerThread; ++i) {
      const int d = threadIdx.x + i * kAttnThreads;
      if (d < head_dim) {
        float a = acc[i] * corr;
        const float* vd = v_cache + j0 * kv_stride + kv_off + d;
        for (int jj = 0; jj < n_tile; ++jj) a = fmaf(p_s[jj], vd[jj * kv_stride], a);
        acc[i] = a;
      }
    }
    m = m_new;
    __syncthreads();  // p_s is rewritten by the next tile
  }
  // n_keys >= 1 unless positions[t] < 0 or the cache is empty: then no key
  // is visible and the output is NaN (0/0), which no comparison lets pass.
  const float inv = 1.0f / l;
  float* oh = out + t * q_stride + static_cast<int64_t>(h) * head_dim;
#pragma unroll
  for (int i = 0; i < kDimsPerThread; ++i) {
    const int d = threadIdx.x + i * kAttnThreads;
    if (d < head_dim) oh[d] = acc[i] * inv;
  }
}

// One CUDA block per source row.
__global__ void StoreRowsKernel(const float* src, const int32_t* rows, int64_t n_cols, float* dst,
                                int64_t n_dst_rows) {
  const int64_t r = blockIdx.x;
  const int64_t to = rows[r];
  if (to < 0 || to >= n_dst_rows) return;
  for (int64_t c = threadIdx.x; c < n_cols; c += blockDim.x) dst[to * n_cols + c] = src[r * n_cols + c];
}

}  // namespace

Status StoreRows(Context& ctx, const float* src, const int32_t* rows, int64_t n_rows, int64_t n_cols,
                 float* dst, int64_t n_dst_rows) {
  constexpr const char* kOp = "StoreRows";
  int64_t n_src = 0, n_dst = 0;
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckedProduct(kOp, n_rows, n_cols, &n_src));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckedProduct(kOp, n_dst_rows, n_cols, &n_dst));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "src", src, n_src));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "rows", rows, n_rows));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "dst", dst, n_dst));
  if (n_src == 0) return {};
  if (n_rows > internal::kMaxGridX) return Status::Error("StoreRows: too many rows for one launch");
  GGUFSCOPE_RETURN_IF_ERROR(internal::Enter(ctx));
  const int threads = n_cols >= 256 ? 256 : 64;
  StoreRowsKernel<<<static_cast<unsigned>(n_rows), threads, 0, internal::StreamOf(ctx)>>>(
      src, rows, n_cols, dst, n_dst_rows);
  GGUFSCOPE_CHECK_LAUNCH("StoreRowsKernel");
  return {};
}

Status Attention(Context& ctx, const float* q, const float* k_cache, const float* v_cache,
                 int64_t n_cache_rows, const int32_t* positions, int64_t n_tokens, int n_head,
                 int n_head_kv, int head_dim, float scale, int window, float* out) {
  int64_t q_stride = 0, kv_stride = 0, n_q = 0;
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckAttentionArgs("Attention", q, k_cache, v_cache, n_cache_rows, positions,
                                                         n_tokens, n_head, n_head_kv, head_dim, kMaxHeadDim, scale,
                                                         window, out, &q_stride, &kv_stride, &n_q));
  if (n_q == 0) return {};
  GGUFSCOPE_RETURN_IF_ERROR(internal::Enter(ctx));
  const dim3 grid(static_cast<unsigned>(n_tokens), static_cast<unsigned>(n_head));
  const size_t shared = static_cast<size_t>(head_dim + kAttnThreads) * sizeof(float);
  AttentionKernel<<<grid, kAttnThreads, shared, internal::StreamOf(ctx)>>>(
      q, k_cache, v_cache, n_cache_rows, positions, n_head / n_head_kv, head_dim, q_stride,
      kv_stride, scale, window, out);
  GGUFSCOPE_CHECK_LAUNCH("AttentionKernel");
  return {};
}

}  // namespace ggufscope::cuda
