// The fused ops of decode_ops.h.
//
// QkvPost runs one CUDA block per (token, head): blockIdx.y walks q's n_head
// heads, then k's n_head_kv heads; a k-head block also copies its slice of
// v into the cache. The block stages its head (at most 512 floats) in
// shared memory, so the in-place norm and rotation never read a value
// another thread has already overwritten.
//
// Bit-identity with the unfused ops (norm_rope.cu, attention.cu) comes
// from doing their arithmetic in their order:
//  - the norm: a block of RmsNorm's size for a head_dim-wide row (32
//    threads below 128 columns, else 128), each thread summing the squares
//    of columns threadIdx.x, +blockDim.x, ... with fmaf from 0, then
//    RmsNormKernel's shuffle tree and warp_sums tree, then
//    1 / sqrtf(sum / n + eps) and (x * scale) * w;
//  - the rotation: RopeKernel's f64 angle pos * base^(-2i/n_rot), its f64
//    sincos rounded to f32, and x0*c - x1*s, x0*s + x1*c with each product
//    rounded (the library is built with --fmad=false; the intrinsics below
//    say so explicitly);
//  - the stores: plain copies of the final k and of v.
// A change to RmsNorm's block size or either kernel's arithmetic must be
// made here too; tests/unit/cuda_decode_ops_test.cc compares the two bit
// for bit and would catch the drift.
#include "cuda_runtime/decode_ops.h"
#include "cuda_runtime/op_common.cuh"

namespace ggufscope::cuda {
namespace {

constexpr int kMaxHeadDim = 512;  // the shared staging buffer; Attention's limit too
constexpr int kMaxThreads = 128;
constexpr int64_t kMaxGridY = 65535;  // cudaDeviceProp::maxGridSize[1]

// RmsNorm's block size for a row of head_dim <= 512 columns (norm_rope.cu:
// 32 below 128 columns, 128 from 128 to 1023). It fixes the order in which
// the squares are summed, so it must stay the same as RmsNorm's.
int BlockThreads(int head_dim) { return head_dim >= 128 ? kMaxThreads : 32; }
// Columns per thread at most: 512 / 128 (head_dim >= 128) or 127 / 32.
constexpr int kPerThread = 4;
static_assert(kMaxHeadDim / kMaxThreads <= kPerThread && (128 + 31) / 32 <= kPerThread);

// The sum over the block of each thread's `sum`, in RmsNormKernel's order:
// a butterfly within each warp, then warp 0 sums the warp totals (padded
// with zeros to 32 lanes) with the same butterfly. Valid in thread 0.
__device__ __forceinline__ float BlockSumOfSquares(float sum, float* warp_sums) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) sum += __shfl_xor_sync(0xFFFFFFFFu, sum, offset);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = sum;
  __syncthreads();
  float s = 0.0f;
  if (threadIdx.x < 32) {
    const int n_warps = blockDim.x / 32;
    s = threadIdx.x < n_warps ? warp_sums[threadIdx.x] : 0.0f;
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) s += __shfl_xor_sync(0xFFFFFFFFu, s, offset);
  }
  return s;
}

// grid (n_tokens, n_head + n_head_kv), BlockThreads(head_dim) threads.
__global__ void __launch_bounds__(kMaxThreads)
    QkvPostKernel(float* q, float* k, const float* v, const int32_t* positions,
                  const int32_t* store_rows, int n_head, int n_head_kv, int head_dim, int n_rot,
                  float base, bool neox, const float* q_norm, const float* k_norm, float eps,
                  float* k_cache, float* v_cache, int64_t n_cache_rows) {
  __shared__ float head_s[kMaxHeadDim];
  __shared__ float warp_sums[kMaxThreads / 32];
  __shared__ float scale_shared;
  const int64_t t = blockIdx.x;
  const int slot = static_cast<int>(blockIdx.y);
  const bool is_q = slot < n_head;
  const int64_t head_off = static_cast<int64_t>(is_q ? slot : slot - n_head) * head_dim;
  const int64_t kv_stride = static_cast<int64_t>(n_head_kv) * head_dim;
  float* x = is_q ? q + t * n_head * static_cast<int64_t>(head_dim) + head_off
                  : k + t * kv_stride + head_off;  // (head_dim), normed and rotated in place
  const float* w = is_q ? q_norm : k_norm;
  // A thread's norm weights (columns threadIdx.x + j * blockDim.x: at most
  // kPerThread of them), fetched before waiting for the previous kernel:
  // they are model weights, no op's output.
  float wv[kPerThread];
#pragma unroll
  for (int j = 0; j < kPerThread; ++j) {
    const int c = threadIdx.x + j * blockDim.x;
    wv[j] = w != nullptr && c < head_dim ? __ldg(w + c) : 0.0f;
  }
  internal::GridEnter();
  // Every load before the first store (a store to a possibly aliasing
  // pointer would hold back each load behind it).
  const double pos = positions[t];
  const int64_t to = is_q ? -1 : store_rows[t];
  const float* vh = v + t * kv_stride + head_off;
  float xv[kPerThread], vv[kPerThread];
#pragma unroll
  for (int j = 0; j < kPerThread; ++j) {
    const int c = threadIdx.x + j * blockDim.x;
    xv[j] = c < head_dim ? x[c] : 0.0f;
    vv[j] = !is_q && c < head_dim ? vh[c] : 0.0f;
  }
  // The rotation's angles depend on the position only: computed (f64, a
  // long dependent chain) while the head's loads are in flight.
  const int half = n_rot / 2;
  float cf[kPerThread / 2], sf[kPerThread / 2];
#pragma unroll
  for (int j = 0; j < kPerThread / 2; ++j) {
    const int i = threadIdx.x + j * blockDim.x;
    if (i < half) internal::RopeCosSin(pos, base, i, n_rot, &cf[j], &sf[j]);
  }

  // The cache rows of a k head; null for a q head or a skipped row.
  float* kc = nullptr;
  if (!is_q && to >= 0 && to < n_cache_rows) {
    kc = k_cache + to * kv_stride + head_off;
    float* vc = v_cache + to * kv_stride + head_off;
#pragma unroll
    for (int j = 0; j < kPerThread; ++j) {
      const int c = threadIdx.x + j * blockDim.x;
      if (c < head_dim) vc[c] = vv[j];
    }
  }

  float sum = 0.0f;
#pragma unroll
  for (int j = 0; j < kPerThread; ++j) {
    const int c = threadIdx.x + j * blockDim.x;
    if (c < head_dim) {
      head_s[c] = xv[j];
      sum = fmaf(xv[j], xv[j], sum);
    }
  }
  if (w != nullptr) {  // the same for the whole block
    const float s = BlockSumOfSquares(sum, warp_sums);
    // As RmsNorm: IEEE division and square root.
    if (threadIdx.x == 0) scale_shared = 1.0f / sqrtf(s / static_cast<float>(head_dim) + eps);
    __syncthreads();
    const float scale = scale_shared;
    // Each thread rescales the columns it loaded.
#pragma unroll
    for (int j = 0; j < kPerThread; ++j) {
      const int c = threadIdx.x + j * blockDim.x;
      if (c < head_dim) head_s[c] = __fmul_rn(__fmul_rn(head_s[c], scale), wv[j]);
    }
  }
  __syncthreads();

#pragma unroll
  for (int j = 0; j < kPerThread / 2; ++j) {
    const int i = threadIdx.x + j * blockDim.x;
    if (i >= half) break;
    int a, b;
    internal::RopePair(neox, i, half, &a, &b);
    const float x0 = head_s[a], x1 = head_s[b];
    const float y0 = __fsub_rn(__fmul_rn(x0, cf[j]), __fmul_rn(x1, sf[j]));
    const float y1 = __fadd_rn(__fmul_rn(x0, sf[j]), __fmul_rn(x1, cf[j]));
    x[a] = y0;
    x[b] = y1;
    if (kc != nullptr) {
      kc[a] = y0;
      kc[b] = y1;
    }
  }
  // Dimensions past n_rot pass through the rotation (normed, when normed).
  for (int c = n_rot + threadIdx.x; c < head_dim; c += blockDim.x) {
    if (w != nullptr) x[c] = head_s[c];
    if (kc != nullptr) kc[c] = head_s[c];
  }
}

}  // namespace

Status QkvPost(Context& ctx, float* q, float* k, const float* v, const int32_t* positions,
               const int32_t* store_rows, int64_t n_tokens, int n_head, int n_head_kv, int head_dim,
               int n_rot, float base, RopeMode mode, const float* q_norm, const float* k_norm,
               float eps, float* k_cache, float* v_cache, int64_t n_cache_rows) {
  constexpr const char* kOp = "QkvPost";
  if (n_head <= 0 || n_head_kv <= 0) {
    return Status::Error("QkvPost: n_head " + std::to_string(n_head) + " and n_head_kv " +
                         std::to_string(n_head_kv) + " must be > 0");
  }
  if (head_dim <= 0 || head_dim > kMaxHeadDim) {
    return Status::Error("QkvPost: head_dim " + std::to_string(head_dim) + " outside 1.." +
                         std::to_string(kMaxHeadDim));
  }
  if (n_rot <= 0 || n_rot > head_dim || n_rot % 2 != 0) {
    return Status::Error("QkvPost: n_rot " + std::to_string(n_rot) +
                         " must be even and in (0, head_dim " + std::to_string(head_dim) + "]");
  }
  if (!(base > 0.0f)) return Status::Error("QkvPost: base must be > 0");
  if ((q_norm == nullptr) != (k_norm == nullptr)) {
    return Status::Error("QkvPost: q_norm and k_norm must be both given or both null");
  }
  if (q_norm != nullptr && !(eps >= 0.0f)) return Status::Error("QkvPost: eps must be >= 0");
  int64_t q_stride = 0, kv_stride = 0, n_q = 0, n_kv = 0, n_cache = 0;
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckedProduct(kOp, n_head, head_dim, &q_stride));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckedProduct(kOp, n_head_kv, head_dim, &kv_stride));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckedProduct(kOp, n_tokens, q_stride, &n_q));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckedProduct(kOp, n_tokens, kv_stride, &n_kv));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckedProduct(kOp, n_cache_rows, kv_stride, &n_cache));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "q", q, n_q));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "k", k, n_kv));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "v", v, n_kv));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "positions", positions, n_tokens));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "store_rows", store_rows, n_tokens));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "k_cache", k_cache, n_cache));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "v_cache", v_cache, n_cache));
  if (q_norm != nullptr) {
    GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "q_norm", q_norm, head_dim));
    GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "k_norm", k_norm, head_dim));
  }
  if (n_tokens == 0) return {};
  if (n_tokens > internal::kMaxGridX || int64_t{n_head} + n_head_kv > kMaxGridY) {
    return Status::Error("QkvPost: too many tokens or heads for one launch");
  }
  GGUFSCOPE_RETURN_IF_ERROR(internal::Enter(ctx));
  const dim3 grid(static_cast<unsigned>(n_tokens), static_cast<unsigned>(n_head + n_head_kv));
  GGUFSCOPE_CUDA_TRY(internal::LaunchDependent(ctx, QkvPostKernel, grid, BlockThreads(head_dim), 0, q, k, v,
                                               positions, store_rows, n_head, n_head_kv, head_dim, n_rot, base,
                                               mode == RopeMode::kNeox, q_norm, k_norm, eps, k_cache, v_cache,
                                               n_cache_rows));
  GGUFSCOPE_CHECK_LAUNCH("QkvPostKernel");
  return {};
}

}  // namespace ggufscope::cuda
