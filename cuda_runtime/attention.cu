// The KV-cache store and causal attention over the cache.
//
// Attention is flash-decoding inside a block: one block of 256 threads per
// (query token, query head), split into key groups of kLanes lanes (a warp,
// or a half or a quarter of one for small heads). The lanes of a group split
// the head's dimensions (float4 chunks when head_dim % 4 == 0 and the
// pointers are 16-byte aligned, single floats otherwise) and hold their part
// of the query in registers. Group g walks keys first + g, first + g +
// kGroups, ...; each step loads the K and V rows of kKeys (2 to 8) keys
// before using any (decode attention is bound by memory latency, so what
// counts is the rows in flight), reduces each score with shuffles inside
// the group and keeps its own online softmax in f32 (running maximum m, sum
// l, unnormalized output acc). At the end the groups' (m, l, acc) are
// merged through shared memory, each rescaled by exp(m_g - m_max).
//
// When the (token, head) blocks alone would leave most SMs idle (decode:
// n_head blocks) and a query can see many keys, each query is split over a
// thread-block cluster of 2 to 8 blocks (sm_90+): the blocks take
// consecutive slices of the keys and merge their partial (m, l, acc)
// through distributed shared memory, as the groups are merged. Shared
// memory is bounded (at most ~18 KB a block) whatever the context length.
// Positions are read from device memory, so a captured decode graph
// replays at every position.
#include <cooperative_groups.h>

#include <cmath>

#include "cuda_runtime/env_switch.h"
#include "cuda_runtime/op_common.cuh"
#include "cuda_runtime/ops.h"

namespace ggufscope::cuda {
namespace {

constexpr int kAttnThreads = 256;  // threads per block: 8 warps
constexpr int kMaxHeadDim = 512;
// Splitting a query over a cluster (see SplitFor): the cluster's barriers
// and remote reads cost about 2 us (H100), which pays once a query has
// kSplitMinFloats floats of K (max keys * head_dim: 256 keys at head_dim
// 128); each block then gets at least kSplitFloatsPerBlock of them.
constexpr int kMaxSplit = 8;  // blocks per cluster (the portable maximum)
constexpr int64_t kSplitMinFloats = 32768;
constexpr int64_t kSplitFloatsPerBlock = 8192;

// Everything a launch needs, passed by value.
struct AttnArgs {
  const float* q;            // (n_tokens, n_head * head_dim)
  const float* k_cache;      // (n_cache_rows, n_head_kv * head_dim)
  const float* v_cache;      // (n_cache_rows, n_head_kv * head_dim)
  const int32_t* positions;  // (n_tokens)
  float* out;                // (n_tokens, n_head * head_dim)
  int64_t n_cache_rows;
  int64_t q_stride;   // n_head * head_dim
  int64_t kv_stride;  // n_head_kv * head_dim
  int group;          // n_head / n_head_kv
  int head_dim;
  int window;
  int split;  // blocks per query (1: no cluster)
  float scale;
};

// kVec consecutive floats at p (16-byte aligned when kVec == 4), through
// the read-only data cache: nothing writes the inputs while the kernel runs.
template <int kVec>
__device__ __forceinline__ void LoadChunk(const float* p, float* r) {
  if constexpr (kVec == 4) {
    const float4 v = __ldg(reinterpret_cast<const float4*>(p));
    r[0] = v.x;
    r[1] = v.y;
    r[2] = v.z;
    r[3] = v.w;
  } else {
    r[0] = __ldg(p);
  }
}

// The visible keys [*first, *end) of a query at `pos`: ops.h's rule, the
// cache bound applied before the window as in FaultyAttention (the two
// orders differ only for a position past the cache, where this one sees
// the last `window` rows).
__device__ __forceinline__ void VisibleKeys(int64_t pos, int64_t n_cache_rows, int window, int64_t* first,
                                            int64_t* end) {
  *end = pos + 1 < n_cache_rows ? pos + 1 : n_cache_rows;
  *first = window > 0 && *end > window ? *end - window : 0;
}

// grid (n_tokens * split, n_head); with kSplit, clusters of (split, 1, 1).
//
// Layout: lane l of key group g owns dimensions c * kSpan + l * kVec + i
// (chunk c < kChunks, i < kVec); a chunk past head_dim is skipped. The
// group loads kKeys keys per step: kKeys * kChunks * kVec * 2 floats of K
// and V per lane in flight, at most 64 registers.
template <int kVec, int kLanes, int kChunks, bool kSplit>
__global__ void __launch_bounds__(kAttnThreads) AttentionKernel(const AttnArgs a) {
  constexpr int kGroups = kAttnThreads / kLanes;  // key groups per block
  constexpr int kSpan = kLanes * kVec;            // dimensions one chunk index covers
  constexpr int kWidth = kChunks * kVec;          // dimensions a lane owns
  constexpr int kRow = kChunks * kSpan;           // head_dim rounded up to the layout
  // Keys a group loads per step, and keys the block covers per step.
  constexpr int kKeys = kWidth >= 16 ? 2 : kWidth >= 8 ? 4 : 8;
  constexpr int kStep = kGroups * kKeys;
  static_assert(kRow <= kMaxHeadDim && 32 % kLanes == 0);

  __shared__ float m_s[kGroups], l_s[kGroups], w_s[kGroups];  // per group: max, sum, merge weight
  __shared__ __align__(16) float acc_s[kGroups * kRow];       // per group: unnormalized output
  // The block's partial result for the cluster merge: acc (head_dim), m, l.
  __shared__ float part_s[kSplit ? kMaxHeadDim + 2 : 1];
  internal::GridEnter();

  const int split = kSplit ? a.split : 1;
  const int64_t t = blockIdx.x / split;
  const int rank = static_cast<int>(blockIdx.x % split);
  const int h = blockIdx.y;
  const int lane = static_cast<int>(threadIdx.x) % kLanes;
  const int g = static_cast<int>(threadIdx.x) / kLanes;
  const int head_dim = a.head_dim;
  const int64_t kv_off = static_cast<int64_t>(h / a.group) * head_dim;

  // The lane's dimensions of the query, 0 where past head_dim.
  float q_r[kWidth];
  const float* qh = a.q + t * a.q_stride + static_cast<int64_t>(h) * head_dim;
#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    const int d = c * kSpan + lane * kVec;
    if (d < head_dim) {
      LoadChunk<kVec>(qh + d, &q_r[c * kVec]);
    } else {
#pragma unroll
      for (int i = 0; i < kVec; ++i) q_r[c * kVec + i] = 0.0f;
    }
  }

  int64_t first = 0, end = 0;
  VisibleKeys(a.positions[t], a.n_cache_rows, a.window, &first, &end);
  bool merge = false;  // the cluster merges its blocks' partial results
  if (kSplit) {
    // Every block of the cluster computes the same n, so all agree on
    // whether to merge. Below kSplitMinFloats block 0 takes every key, as
    // an unsplit block, and the others leave at once (no block reaches a
    // cluster barrier). Above, the blocks take consecutive slices of a
    // whole number of steps and at least kSplitFloatsPerBlock floats.
    const int64_t n = end > first ? end - first : 0;
    merge = n * head_dim >= kSplitMinFloats;
    if (!merge && rank > 0) return;
    if (merge) {
      const int64_t min_per = (kSplitFloatsPerBlock + head_dim - 1) / head_dim;
      int64_t per = (n + split - 1) / split;
      if (per < min_per) per = min_per;
      per = (per + kStep - 1) / kStep * kStep;
      const int64_t begin = first + rank * per;
      if (begin + per < end) end = begin + per;
      first = begin;
    }
  }

  // The group's online softmax: running max m, sum l, and acc = sum of
  // exp(s_j - m) v_j over the keys seen, for the lane's dimensions.
  float m = -INFINITY, l = 0.0f;
  float acc[kWidth];
#pragma unroll
  for (int i = 0; i < kWidth; ++i) acc[i] = 0.0f;
  const float* kh = a.k_cache + kv_off;
  const float* vh = a.v_cache + kv_off;
  // The groups of one warp step together (the shuffles need the whole
  // warp), so the loop runs while the warp's first group has a key.
  const int lead = g % (32 / kLanes);  // the group's place in its warp
  for (int64_t jw = first + g - lead; jw < end; jw += kStep) {
    // Issue every load of the step before using any: key u is row j0 + u *
    // kGroups; a key past `end` reloads row end - 1 (visible, just loaded)
    // and gets score -inf, so no row outside [first, end) is read.
    const int64_t j0 = jw + lead;
    float k_r[kKeys][kWidth], v_r[kKeys][kWidth];
    bool live[kKeys];
#pragma unroll
    for (int u = 0; u < kKeys; ++u) {
      const int64_t j = j0 + static_cast<int64_t>(u) * kGroups;
      live[u] = j < end;
      const int64_t row = (live[u] ? j : end - 1) * a.kv_stride;
#pragma unroll
      for (int c = 0; c < kChunks; ++c) {
        const int d = c * kSpan + lane * kVec;
        if (d < head_dim) {
          LoadChunk<kVec>(kh + row + d, &k_r[u][c * kVec]);
          LoadChunk<kVec>(vh + row + d, &v_r[u][c * kVec]);
        } else {
#pragma unroll
          for (int i = 0; i < kVec; ++i) k_r[u][c * kVec + i] = v_r[u][c * kVec + i] = 0.0f;
        }
      }
    }
    // Scores: the lane's partial dot, then a butterfly over the group (every
    // lane ends with the full sum), the kKeys reductions interleaved.
    float s[kKeys];
#pragma unroll
    for (int u = 0; u < kKeys; ++u) {
      float dot = 0.0f;
#pragma unroll
      for (int i = 0; i < kWidth; ++i) dot = fmaf(q_r[i], k_r[u][i], dot);
      s[u] = dot;
    }
#pragma unroll
    for (int offset = kLanes / 2; offset > 0; offset >>= 1) {
#pragma unroll
      for (int u = 0; u < kKeys; ++u) s[u] += __shfl_xor_sync(0xFFFFFFFFu, s[u], offset);
    }
    float m_new = m;
#pragma unroll
    for (int u = 0; u < kKeys; ++u) {
      s[u] = live[u] ? s[u] * a.scale : -INFINITY;
      m_new = fmaxf(m_new, s[u]);
    }
    // m_new stays -inf while the group has seen no live key; subtracting 0
    // then keeps every exp(-inf) = 0 (not exp(-inf + inf) = NaN). Dead keys
    // get p = 0; the first live step's correction is exp(-inf) = 0.
    const float m_sub = m_new == -INFINITY ? 0.0f : m_new;
    const float corr = expf(m - m_sub);
    l *= corr;
#pragma unroll
    for (int i = 0; i < kWidth; ++i) acc[i] *= corr;
#pragma unroll
    for (int u = 0; u < kKeys; ++u) {
      const float p = expf(s[u] - m_sub);
      l += p;
#pragma unroll
      for (int i = 0; i < kWidth; ++i) acc[i] = fmaf(p, v_r[u][i], acc[i]);
    }
    m = m_new;
  }

  // Merge the groups: weight w_g = exp(m_g - max_g m_g), 0 for a group that
  // saw no key (m_g = -inf).
  if (lane == 0) {
    m_s[g] = m;
    l_s[g] = l;
  }
#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    float* dst = acc_s + g * kRow + c * kSpan + lane * kVec;
    if constexpr (kVec == 4) {
      *reinterpret_cast<float4*>(dst) = make_float4(acc[c * 4], acc[c * 4 + 1], acc[c * 4 + 2], acc[c * 4 + 3]);
    } else {
      *dst = acc[c];
    }
  }
  __syncthreads();
  if (threadIdx.x < kGroups) {
    float mx = -INFINITY;
    for (int i = 0; i < kGroups; ++i) mx = fmaxf(mx, m_s[i]);
    const float mg = m_s[threadIdx.x];
    w_s[threadIdx.x] = mg == -INFINITY ? 0.0f : expf(mg - mx);
    if constexpr (kSplit) {
      if (threadIdx.x == 0) part_s[kMaxHeadDim] = mx;
    }
  }
  __syncthreads();
  float lb = 0.0f;  // the block's sum, relative to its maximum
  for (int i = 0; i < kGroups; ++i) lb = fmaf(l_s[i], w_s[i], lb);
  float* oh = a.out + t * a.q_stride + static_cast<int64_t>(h) * head_dim;
  if constexpr (kSplit) {
    if (merge) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
      for (int d = static_cast<int>(threadIdx.x); d < head_dim; d += kAttnThreads) {
        float num = 0.0f;
        for (int i = 0; i < kGroups; ++i) num = fmaf(acc_s[i * kRow + d], w_s[i], num);
        part_s[d] = num;
      }
      if (threadIdx.x == 0) part_s[kMaxHeadDim + 1] = lb;
      namespace cg = cooperative_groups;
      cg::cluster_group cluster = cg::this_cluster();
      cluster.sync();  // every block's part_s is written and visible
      // Merge the blocks as the groups were merged: block r's weight is
      // exp(m_r - max m), 0 when it saw no key; all empty gives NaN (0/0).
      // Thread x of block `rank` writes dimension rank * 256 + x: split >= 2
      // blocks cover 512 >= head_dim. Every remote read is issued before any
      // is used (one round trip); the loops run to kMaxSplit with r < split
      // tests so the arrays stay in registers.
      static_assert(2 * kAttnThreads >= kMaxHeadDim);
      const int d = rank * kAttnThreads + static_cast<int>(threadIdx.x);
      const bool owner = d < head_dim;
      float m_r[kMaxSplit], l_r[kMaxSplit], acc_r[kMaxSplit];
#pragma unroll
      for (int r = 0; r < kMaxSplit; ++r) {
        const float* part = cluster.map_shared_rank(part_s, r < split ? r : 0);
        m_r[r] = r < split ? part[kMaxHeadDim] : -INFINITY;
        l_r[r] = r < split ? part[kMaxHeadDim + 1] : 0.0f;
        acc_r[r] = r < split && owner ? part[d] : 0.0f;
      }
      float mx = -INFINITY;
#pragma unroll
      for (int r = 0; r < kMaxSplit; ++r) mx = fmaxf(mx, m_r[r]);
      float num = 0.0f, den = 0.0f;
#pragma unroll
      for (int r = 0; r < kMaxSplit; ++r) {
        const float w = m_r[r] == -INFINITY ? 0.0f : expf(m_r[r] - mx);
        num = fmaf(acc_r[r], w, num);
        den = fmaf(l_r[r], w, den);
      }
      if (owner) oh[d] = num / den;
      cluster.sync();  // no block leaves while another still reads its part_s
#else
      __trap();  // unreachable: Attention splits only kernels built for sm_90+ (SplitFor)
#endif
      return;
    }
  }
  // The block holds the whole query. No visible key (positions[t] < 0): lb
  // = 0 and every acc is 0, so the output is NaN (0/0), which no comparison
  // lets pass.
  for (int d = static_cast<int>(threadIdx.x); d < head_dim; d += kAttnThreads) {
    float num = 0.0f;
    for (int i = 0; i < kGroups; ++i) num = fmaf(acc_s[i * kRow + d], w_s[i], num);
    oh[d] = num / lb;
  }
}

using AttnKernel = void (*)(AttnArgs);

// The kernel for this head_dim and layout (see AttentionKernel): groups of
// 8, 16 or 32 lanes, as few chunks as cover head_dim.
template <bool kSplit>
AttnKernel PickKernel(int head_dim, bool vec4) {
  if (vec4) {
    const int n4 = head_dim / 4;
    if (n4 <= 8) return AttentionKernel<4, 8, 1, kSplit>;
    if (n4 <= 16) return AttentionKernel<4, 16, 1, kSplit>;
    if (n4 <= 32) return AttentionKernel<4, 32, 1, kSplit>;
    if (n4 <= 64) return AttentionKernel<4, 32, 2, kSplit>;
    return AttentionKernel<4, 32, 4, kSplit>;
  }
  if (head_dim <= 8) return AttentionKernel<1, 8, 1, kSplit>;
  if (head_dim <= 16) return AttentionKernel<1, 16, 1, kSplit>;
  if (head_dim <= 32) return AttentionKernel<1, 32, 1, kSplit>;
  if (head_dim <= 64) return AttentionKernel<1, 32, 2, kSplit>;
  if (head_dim <= 128) return AttentionKernel<1, 32, 4, kSplit>;
  if (head_dim <= 256) return AttentionKernel<1, 32, 8, kSplit>;
  return AttentionKernel<1, 32, 16, kSplit>;
}

// Blocks per query: 1 below kSplitMinFloats floats of K per query (the
// most keys a query can see times head_dim; the keys seen depend on
// positions in device memory, so a shorter context still runs on one block
// of the cluster, see AttentionKernel), else the largest power of two <=
// kMaxSplit that gives each block kSplitFloatsPerBlock and keeps the grid
// within 7/8 of the SMs. (On an H100, 32 heads in clusters of 4, 128
// blocks on 132 SMs, ran 1 to 2 us slower on short contexts than clusters
// of 2; 28 heads in clusters of 4, 112 blocks, did not.)
Status SplitFor(const Context& ctx, AttnKernel split_kernel, int64_t n_tokens, int n_head, int64_t n_cache_rows,
                int window, int head_dim, int* split) {
  *split = 1;
  const int64_t max_keys = window > 0 && window < n_cache_rows ? window : n_cache_rows;
  const int64_t floats = max_keys * head_dim;  // <= 2^31 * 512: no overflow
  if (floats < kSplitMinFloats) return {};
  const int sms = ctx.multiprocessors();
  if (!ctx.cluster_launch()) return {};
  cudaFuncAttributes attr{};
  GGUFSCOPE_CUDA_TRY(cudaFuncGetAttributes(&attr, split_kernel));
  if (attr.ptxVersion < 90) return {};  // built without the cluster code
  const int64_t blocks = n_tokens * n_head;
  while (*split < kMaxSplit && blocks * *split * 2 * 8 <= int64_t{sms} * 7 &&
         floats >= *split * 2 * kSplitFloatsPerBlock) {
    *split *= 2;
  }
  return {};
}

// Attention with `split` blocks per query (1, or 2..kMaxSplit on sm_90+).
// Arguments already checked.
Status LaunchAttention(Context& ctx, const AttnArgs& a, int64_t n_tokens, int n_head, int split) {
  const bool vec4 = a.head_dim % 4 == 0 && internal::IsAligned(a.q, 16) && internal::IsAligned(a.k_cache, 16) &&
                    internal::IsAligned(a.v_cache, 16) && internal::IsAligned(a.out, 16);
  if (split <= 1) {
    AttnArgs args = a;
    args.split = 1;
    const dim3 grid(static_cast<unsigned>(n_tokens), static_cast<unsigned>(n_head));
    GGUFSCOPE_CUDA_TRY(internal::LaunchDependent(ctx, PickKernel<false>(a.head_dim, vec4), grid, kAttnThreads, 0, args));
    GGUFSCOPE_CHECK_LAUNCH("AttentionKernel");
    return {};
  }
  AttnArgs args = a;
  args.split = split;
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(static_cast<unsigned>(n_tokens * split), static_cast<unsigned>(n_head));
  config.blockDim = dim3(kAttnThreads);
  config.stream = internal::StreamOf(ctx);
  cudaLaunchAttribute attrs[2]{};
  attrs[0].id = cudaLaunchAttributeClusterDimension;
  attrs[0].val.clusterDim.x = static_cast<unsigned>(split);
  attrs[0].val.clusterDim.y = 1;
  attrs[0].val.clusterDim.z = 1;
  config.attrs = attrs;
  config.numAttrs = 1 + internal::DependentLaunchAttr(ctx, &attrs[1]);
  GGUFSCOPE_CUDA_TRY(cudaLaunchKernelEx(&config, PickKernel<true>(a.head_dim, vec4), args));
  GGUFSCOPE_CHECK_LAUNCH("AttentionKernel (cluster)");
  return {};
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

namespace internal {

// Each attention launch of a decode step sits between two tensor-core
// mat-vecs whose blocks (40-80 KB of shared memory each) are launched early
// to request their weights while it runs. On the H200 (7B Q8_0 shape,
// 2026-11-28 timeline, docs/PERFORMANCE.md) 16 of the 224 attn_output
// blocks could not join the SMs holding the attention blocks: they entered
// 1.4-2.8 us after the attention ended, and such a layer's attn_output took
// 7.6-8.8 us against 4.3 us where all 224 were resident early. Registers
// and shared memory allow one attention block beside an attn_output block,
// so the likely cause is the carveout the driver picks for a kernel of a
// few KB of shared memory on an idle SM. Preferring the largest carveout for
// the attention kernels measured +1.9% on 7B Q8_0 decode (385.7 against
// 378.5 tokens/s, same call, two alternations), -0.4% on 7B Q4_K_M, a tie
// on 1.5B Q4_K_M. GGUFSCOPE_ATTN_CARVEOUT=0: the driver's default
// (benchmarking switch). The carveout is a hint: a device or driver that
// refuses it (cudaErrorInvalidValue, cudaErrorNotSupported) keeps its
// default, and the context stays usable; any other error is returned.
cudaError_t PrepareAttention() {
  if (!EnvSwitchOn("GGUFSCOPE_ATTN_CARVEOUT")) return cudaSuccess;
  for (const bool vec4 : {false, true}) {
    for (int head_dim = 8; head_dim <= kMaxHeadDim; head_dim *= 2) {
      for (const AttnKernel k : {PickKernel<false>(head_dim, vec4), PickKernel<true>(head_dim, vec4)}) {
        const cudaError_t err =
            cudaFuncSetAttribute(k, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared);
        if (err == cudaErrorInvalidValue || err == cudaErrorNotSupported) {
          cudaGetLastError();  // a refused hint leaves its error behind
          return cudaSuccess;
        }
        if (err != cudaSuccess) return err;
      }
    }
  }
  return cudaSuccess;
}

}  // namespace internal

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
  AttnArgs args{};
  args.q = q;
  args.k_cache = k_cache;
  args.v_cache = v_cache;
  args.positions = positions;
  args.out = out;
  args.n_cache_rows = n_cache_rows;
  args.q_stride = q_stride;
  args.kv_stride = kv_stride;
  args.group = n_head / n_head_kv;
  args.head_dim = head_dim;
  args.window = window;
  args.split = 1;
  args.scale = scale;
  int split = 1;
  GGUFSCOPE_RETURN_IF_ERROR(
      SplitFor(ctx, PickKernel<true>(head_dim, false), n_tokens, n_head, n_cache_rows, window, head_dim, &split));
  return LaunchAttention(ctx, args, n_tokens, n_head, split);
}

}  // namespace ggufscope::cuda
