// Decode-time matrix-vector products, y = W x.
//
// Integer tensor-core kernels (Q8_0, Q4_K, where KeepTensorCore says the
// shape suits them): x split into exact 8-bit digits, mma.m16n8k32 on the
// file's codes, weights streamed through shared memory by cp.async; the
// section "Q8_0 and Q4_K on the integer tensor cores" below.
//
// Fast kernels (Q4_K Q5_K Q6_K Q8_0 Q4_0 Q5_0 Q4_1 Q5_1 and the plain types
// with GGUF's alignment): wide loads, several rows per warp, a row's
// columns split across warps when rows are few, and fused epilogues (bias,
// residual, gated activation) for the decode step's products; the section
// "fast kernels" below and cuda_runtime/README.md say how.
//
// Generic direct kernel (Q2_K Q3_K IQ4_NL IQ4_XS, and layouts the fast
// kernels cannot take): one warp per row, lane i decodes units i, i+32, ...
// of its row (32 elements each, quant_decode.cuh) and multiplies them with
// x; the 32 partial sums are added with shuffles.
//
// Other types: their rows are dequantized in chunks to the context's
// workspace and multiplied by cublasSgemv.
#include <cuda.h>  // CUtensorMap (the encoder is reached through the runtime: no -lcuda)
#include <cuda_fp16.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <limits>
#include <type_traits>
#include <utility>

#include "cuda_runtime/act_digits.h"
#include "cuda_runtime/bulk_copy.cuh"
#include "cuda_runtime/env_switch.h"
#include "cuda_runtime/op_common.cuh"
#include "cuda_runtime/ops.h"
#include "cuda_runtime/rope_rows.h"
#include "cuda_runtime/type_dispatch.cuh"

namespace ggufscope::cuda {
namespace {

using gguf::GgmlType;
using internal::IqGrids;
using internal::Plain;
using internal::Quant;

constexpr int kWarpsPerBlock = 4;  // rows per CUDA block
constexpr int kThreads = 32 * kWarpsPerBlock;

// Scratch for the dequantize-then-cuBLAS path: rows are done in chunks of at
// most this many bytes of f32 (one row more if a row alone is larger).
constexpr size_t kFallbackScratchBytes = size_t{64} << 20;

__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, offset);
  return v;
}

// x is 16-byte aligned; x32 points at 32 consecutive elements of it.
__device__ __forceinline__ void Dot32(const float* v, const float* x32, float* acc0, float* acc1) {
  const float4* xv = reinterpret_cast<const float4*>(x32);
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const float4 xx = __ldg(xv + i);
    *acc0 = fmaf(v[4 * i + 0], xx.x, *acc0);
    *acc1 = fmaf(v[4 * i + 1], xx.y, *acc1);
    *acc0 = fmaf(v[4 * i + 2], xx.z, *acc0);
    *acc1 = fmaf(v[4 * i + 3], xx.w, *acc1);
  }
}

template <GgmlType T>
__global__ void __launch_bounds__(kThreads)
    MatVecBlocksKernel(const uint8_t* w, int64_t n_rows, int64_t row_bytes, int64_t units_per_row,
                       const float* x, IqGrids grids, float* y) {
  using Q = Quant<T>;
  constexpr int kUnits = Q::kBlock / 32;
  const int lane = threadIdx.x % 32;
  const int64_t row = blockIdx.x * static_cast<int64_t>(kWarpsPerBlock) + threadIdx.x / 32;
  if (row >= n_rows) return;  // the whole warp leaves together
  const uint8_t* wr = w + row * row_bytes;
  float acc0 = 0.0f, acc1 = 0.0f;
  for (int64_t t = lane; t < units_per_row; t += 32) {
    float v[32];
    Q::Unit(wr + (t / kUnits) * Q::kBytes, static_cast<int>(t % kUnits), grids, v);
    Dot32(v, x + 32 * t, &acc0, &acc1);
  }
  const float sum = WarpSum(acc0 + acc1);
  if (lane == 0) y[row] = sum;
}

// Converts 16 bytes of a plain row to floats.
template <GgmlType T>
struct Plain16;
template <>
struct Plain16<GgmlType::kF32> {
  static constexpr int kCount = 4;
  static __device__ __forceinline__ void Get(uint4 b, float* v) {
    v[0] = __uint_as_float(b.x);
    v[1] = __uint_as_float(b.y);
    v[2] = __uint_as_float(b.z);
    v[3] = __uint_as_float(b.w);
  }
};
template <>
struct Plain16<GgmlType::kF16> {
  static constexpr int kCount = 8;
  static __device__ __forceinline__ void Get(uint4 b, float* v) {
    const uint32_t w[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      v[2 * i] = __half2float(__ushort_as_half(static_cast<unsigned short>(w[i] & 0xFFFF)));
      v[2 * i + 1] = __half2float(__ushort_as_half(static_cast<unsigned short>(w[i] >> 16)));
    }
  }
};
template <>
struct Plain16<GgmlType::kBF16> {
  static constexpr int kCount = 8;
  static __device__ __forceinline__ void Get(uint4 b, float* v) {
    const uint32_t w[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      v[2 * i] = __uint_as_float(w[i] << 16);
      v[2 * i + 1] = __uint_as_float(w[i] & 0xFFFF0000u);
    }
  }
};

// Plain rows the fast kernel cannot take (unaligned, or a width that is
// not a multiple of 16 bytes): one element per lane per step.
template <GgmlType T>
__global__ void __launch_bounds__(kThreads)
    MatVecPlainKernel(const uint8_t* w, int64_t n_rows, int64_t n_cols, const float* x, float* y) {
  const int lane = threadIdx.x % 32;
  const int64_t row = blockIdx.x * static_cast<int64_t>(kWarpsPerBlock) + threadIdx.x / 32;
  if (row >= n_rows) return;
  const uint8_t* wr = w + row * n_cols * Plain<T>::kBytes;
  float acc = 0.0f;
  for (int64_t c = lane; c < n_cols; c += 32) acc = fmaf(Plain<T>::Get(wr, c), __ldg(x + c), acc);
  const float sum = WarpSum(acc);
  if (lane == 0) y[row] = sum;
}

// ---------------------------------------------------------------- fast kernels
//
// Bandwidth-bound kernels for the decode types (Q4_K Q5_K Q6_K Q8_0 Q4_0 and
// the plain types). What makes them fast (cuda_runtime/README.md, MatVec):
//  * weight bytes are read with wide loads, a warp's loads covering whole
//    contiguous runs of a row, and several loads are issued before the first
//    use;
//  * each warp computes kRows rows at once, so every x value it reads
//    serves kRows rows (x is f32: 4 bytes per element against 0.56 for
//    Q4_K, so x traffic, not weight traffic, would otherwise bound the rate);
//  * the lane -> element mapping is chosen per type so that a warp's x reads
//    are contiguous (Q8_0, Q4_0: straight from global memory through L1) or
//    conflict-free in a swizzled shared-memory copy (K quants, whose 16-byte
//    weight loads cover two runs of elements);
//  * block scales are factored out of the inner sums: d * sum(q * x), and
//    for Q4_K/Q5_K's minimum dl * sum(q * x) - ml * sum(x), with sum(x)
//    shared by all rows of the warp.
// Codes become floats exactly: PRMT builds the float 2^23 + u from a byte u,
// one subtraction leaves u (or u - offset). Accumulation is f32 with explicit
// fmaf (the library is built with --fmad=false).

template <typename T>
struct TypeBox {
  using type = T;
};

constexpr int kFastWarps = 8;  // warps per CUDA block
constexpr int kFastThreads = 32 * kFastWarps;

// Float(byte k of w) - bias, exactly (bias an integer; 2^23 + byte is exact).
template <int k>
__device__ __forceinline__ float ByteToFloat(uint32_t w, float bias) {
  return __uint_as_float(__byte_perm(w, 0x4B000000u, 0x7440 + k)) - bias;
}
constexpr float kTwo23 = 8388608.0f;

// sum_c (byte c of w - bias) * x.c over four bytes, into acc.
__device__ __forceinline__ float Dot4(uint32_t w, float bias, float4 x, float acc) {
  acc = fmaf(ByteToFloat<0>(w, bias), x.x, acc);
  acc = fmaf(ByteToFloat<1>(w, bias), x.y, acc);
  acc = fmaf(ByteToFloat<2>(w, bias), x.z, acc);
  acc = fmaf(ByteToFloat<3>(w, bias), x.w, acc);
  return acc;
}

__device__ __forceinline__ float Sum4(float4 v) { return (v.x + v.y) + (v.z + v.w); }

__device__ __forceinline__ uint32_t Ld32(const uint8_t* p) {
  return __ldg(reinterpret_cast<const unsigned int*>(p));
}
__device__ __forceinline__ float HalfAt(const uint8_t* p) {
  return __half2float(__ushort_as_half(__ldg(reinterpret_cast<const unsigned short*>(p))));
}

// The 4 bytes at p, p 2-byte aligned: `aligned` (warp-uniform in the
// callers) says p is 4-byte aligned; otherwise the two words around it are
// read and funnel-shifted. Reads stay inside [p - 2, p + 6).
__device__ __forceinline__ uint32_t Ld32At2(const uint8_t* p, bool aligned) {
  if (aligned) return Ld32(p);
  return __funnelshift_r(Ld32(p - 2), Ld32(p + 2), 16);
}

// ---- Where a launch's rows come from and where its results go.
//
// One launch computes the rows of up to three matrices of the same type and
// width against the same x ("virtual rows": segment 0's rows, then segment
// 1's, ...), or two matrices row by row (`pairs`: virtual row 2i is row i of
// w[0], 2i+1 row i of w[1], so one warp holds both), and finishes each row in
// its epilogue: a bias added, a residual added (y = residual + s, with s
// itself kept in `pre`), or for pairs the gated activation act(s0) * s1
// (with s0, s1 kept in pre, pre2). The epilogues are the same f32
// operations as the separate Add and Glu ops, so fusing changes no bit.
struct RowPlan {
  const uint8_t* w[3];
  float* y[3];
  const float* bias[3];
  int64_t end[3];  // cumulative virtual row counts; end[2] = all rows
  int64_t row_bytes;
  const float* residual;
  float* pre;
  float* pre2;
  int glu;  // pairs: 0 SwiGLU, 1 GeGLU (tanh)
  bool pairs;
  // RMSNorm folded in (the tensor-core kernels, and the K-quant SIMT
  // kernels that stage x with one row per group: SimtFolds): x is the row
  // before the norm; the product takes x * norm_w, and each row's sum is
  // scaled by 1 / sqrt(mean(x^2) + norm_eps) before the epilogue (ops.h,
  // NormFold).
  const float* norm_w;
  float norm_eps;
  // RopeFold (ops.h): each segment's PartRole; a rotated segment's rows
  // are read and emitted in rotation pairs (RopeRow), on the tensor-core
  // kernels' kRope instantiation only. cache[seg]: the segment's KV cache
  // (rows as long as the segment), or null where it stores nothing.
  uint8_t role[3];
  const int32_t* positions;
  const int32_t* store_rows;
  float* cache[3];
  int64_t n_cache_rows;
  int head_dim, n_rot;
  float rope_base;
  bool neox;
  // RopeFold::cos_sin (RopeTable's), or null: the emitters compute the angle.
  const float* cos_sin;
};

__device__ __forceinline__ int SegOf(const RowPlan& p, int64_t v) { return v < p.end[0] ? 0 : v < p.end[1] ? 1 : 2; }
__device__ __forceinline__ int64_t SegStart(const RowPlan& p, int seg) { return seg == 0 ? 0 : p.end[seg - 1]; }

__device__ __forceinline__ bool Rotates(const RowPlan& p, int seg) {
  const auto r = static_cast<PartRole>(p.role[seg]);
  return r == PartRole::kRotate || r == PartRole::kRotateStore;
}

// The segment row that virtual row v (of segment seg, offset i in it) holds
// under a RopeFold: in a rotated segment, rope_rows.h's order (virtual rows
// 2m and 2m + 1 of a head's first n_rot are rotation pair m).
__device__ __forceinline__ int64_t RopeRow(const RowPlan& p, int seg, int64_t i) {
  if (!Rotates(p, seg)) return i;
  return RopeRowOf(i, p.head_dim, p.n_rot, p.neox);
}

__device__ __forceinline__ const uint8_t* RowPtr(const RowPlan& p, int64_t v) {
  if (p.pairs) return p.w[v & 1] + (v >> 1) * p.row_bytes;
  if (v < p.end[0]) return p.w[0] + v * p.row_bytes;
  if (v < p.end[1]) return p.w[1] + (v - p.end[0]) * p.row_bytes;
  return p.w[2] + (v - p.end[1]) * p.row_bytes;
}

// The row pointers of a warp's kRows rows (a row past the end rereads row0).
template <int kRows>
__device__ __forceinline__ void RowPtrs(const RowPlan& p, int64_t row0, const uint8_t** rp) {
#pragma unroll
  for (int r = 0; r < kRows; ++r) rp[r] = RowPtr(p, row0 + r < p.end[2] ? row0 + r : row0);
}

// f(r, seg, i) for the rows row0 + r (r < kRows) of a non-pair plan that
// exist: seg the matrix of the plan, i the row in there.
template <int kRows, typename F>
__device__ __forceinline__ void ForRows(const RowPlan& p, int64_t row0, F&& f) {
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int64_t v = row0 + r;
    if (v >= p.end[2]) break;
    const int seg = v < p.end[0] ? 0 : v < p.end[1] ? 1 : 2;
    f(r, seg, seg == 0 ? v : v - p.end[seg - 1]);
  }
}

// The bias and residual elements of a warp's rows, loaded (by the lane that
// emits) right after GridEnter so they arrive during the products: loaded
// in Emit, each behind the previous row's stores to a possibly aliasing y,
// they cost a memory round trip per row at the end of every warp.
template <int kRows>
struct EmitInputs {
  float bias[kRows], residual[kRows];

  __device__ __forceinline__ void Load(const RowPlan& p, int64_t row0, bool emits) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) bias[r] = residual[r] = 0.0f;
    if (!emits || p.pairs) return;
    ForRows<kRows>(p, row0, [&](int r, int seg, int64_t i) {
      if (p.bias[seg] != nullptr) bias[r] = p.bias[seg][i];
      if (p.residual != nullptr) residual[r] = p.residual[i];
    });
  }
};

template <int kRows>
__device__ __forceinline__ void Emit(const RowPlan& p, int64_t row0, const float* s, const EmitInputs<kRows>& in) {
  if constexpr (kRows == 2) {
    if (p.pairs) {
      const int64_t i = row0 >> 1;
      p.pre[i] = s[0];
      p.pre2[i] = s[1];
      p.y[0][i] = (p.glu == 0 ? internal::Silu(s[0]) : internal::GeluTanh(s[0])) * s[1];
      return;
    }
  }
  ForRows<kRows>(p, row0, [&](int r, int seg, int64_t i) {
    float o = s[r];
    if (p.bias[seg] != nullptr) o = o + in.bias[r];
    if (p.residual != nullptr) {
      p.pre[i] = o;
      o = in.residual[r] + o;
    }
    p.y[seg][i] = o;
    // A store-only segment's cache row (RopeFold's kStore; rotated ones
    // emit through the tensor-core kernels' kRope path).
    if (p.cache[seg] != nullptr) {
      const int64_t to = *p.store_rows;
      if (to >= 0 && to < p.n_cache_rows) p.cache[seg][to * (p.end[seg] - SegStart(p, seg)) + i] = o;
    }
  });
}

// The warps of a block form groups of `split` consecutive warps; a group
// shares kRows rows, each warp taking every split-th step of the columns.
// Lane sums are reduced over the warp, then (split > 1) over the group in
// warp order through shared memory, and the group's first warp emits the
// rows. Every thread of the block must call this (it may hold a barrier).
template <int kRows, bool kScaled = false>
__device__ __forceinline__ void Finish(const RowPlan& p, const float* acc, int64_t row0, bool active,
                                       int split, float (*red)[kRows], const EmitInputs<kRows>& in,
                                       float scale = 1.0f) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float s[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) s[r] = WarpSum(acc[r]);
  if (split == 1) {
    if (active && lane == 0) {
      if constexpr (kScaled) {
#pragma unroll
        for (int r = 0; r < kRows; ++r) s[r] *= scale;
      }
      Emit<kRows>(p, row0, s, in);
    }
    return;
  }
  if (lane == 0) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) red[warp][r] = s[r];
  }
  __syncthreads();
  if (warp % split == 0 && active && lane == 0) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      float t = red[warp][r];
      for (int c = 1; c < split; ++c) t += red[warp + c][r];
      s[r] = kScaled ? t * scale : t;
    }
    Emit<kRows>(p, row0, s, in);
  }
}

// A fast kernel's entry, once its first weights are requested: GridEnter
// (from here on it may read other ops' data), then the emitting lane's
// bias and residual loads. Enter() may be called in a loop; it acts once.
template <int kRows>
struct Entry {
  EmitInputs<kRows> in;
  bool done = false;

  __device__ __forceinline__ void Enter(const RowPlan& p, int64_t row0, bool active, int split) {
    if (done) return;
    done = true;
    internal::GridEnter();
    // Only the lane that emits the group's rows (Finish's choice) loads.
    in.Load(p, row0, active && threadIdx.x % 32 == 0 && (threadIdx.x / 32) % split == 0);
  }
};

// First virtual row of the calling warp's group.
template <int kRows>
__device__ __forceinline__ int64_t GroupRow0(int split) {
  const int warp = threadIdx.x / 32;
  return (static_cast<int64_t>(blockIdx.x) * (kFastWarps / split) + warp / split) * kRows;
}

// ---- K quants (256-element super-blocks).
//
// Rows of fewer than kStageColsBelow columns stage the whole of x once per
// block (dynamic shared memory, n_cols floats) as float4 slots s (elements
// 4s..4s+3) stored at Swizzle(s), so that the slots a quarter-warp reads
// with one 16-byte load fall in 8 distinct bank groups. Wider rows read
// their slots from global memory (L1 and L2 hits: every block reads the
// same x): staging 74 KB of x per block of the 7B down projection (3584 x
// 18944) cost more than it saved, Q6_K 36.2 -> 33.4 us, Q4_K 31.6 -> 29.4
// us without it, while the rows of 3584 columns lost (Q6_K 3584 x 3584:
// 10.3 -> 12.0 us) and 18944 x 3584 tied (H100, docs/PERFORMANCE.md,
// 2026-11-27). Unstaged rows have no width limit.
constexpr int64_t kStageColsBelow = 8192;

template <bool kStaged, typename Swz>
__device__ __forceinline__ float4 XSlot(const float4* xs, int s, Swz swizzle) {
  if constexpr (kStaged) {
    return xs[swizzle(s)];
  } else {
    return __ldg(xs + s);
  }
}

// Q4_K (144 B: d, dmin, scales[12], qs[128]) and Q5_K (176 B: the same, then
// qh[32] before qs). Lane l of a warp takes super-block l/8 of the four the
// warp reads per step, and within it t = l%8: j = t/2, h = t%2, the 16 qs
// bytes 32j + 16h .. +16: elements 16h..16h+15 of sub-blocks 2j (low
// nibbles) and 2j+1 (high nibbles), so the 8 lanes read the 128 qs bytes
// with one coalesced 16-byte load each. Their x slots: 16j + 4h + i (low)
// and 16j + 8 + 4h + i (high), i = 0..3: Swizzle XORs bits 0-1 with j.
template <bool kQ5, int kRows>
struct KQ45 {
  static constexpr int kBytes = kQ5 ? 176 : 144;
  static __device__ __forceinline__ int Swizzle(int s) { return s ^ ((s >> 4) & 3); }
  static __device__ __forceinline__ int64_t StepSb(int64_t step, int lane) { return 4 * step + lane / 8; }
  static __device__ __forceinline__ int64_t Steps(int64_t n_sb) { return (n_sb + 3) / 4; }

  uint4 hd[kRows], qs[kRows], qh[kRows];

  __device__ __forceinline__ void Load(const uint8_t* const* rp, int64_t sb, int lane) {
    const int t = lane % 8, j = t / 2, h = t % 2;
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const uint8_t* b = rp[r] + sb * kBytes;
      hd[r] = __ldg(reinterpret_cast<const uint4*>(b));
      qs[r] = __ldg(reinterpret_cast<const uint4*>(b + (kQ5 ? 48 : 16) + 32 * j + 16 * h));
      if constexpr (kQ5) qh[r] = __ldg(reinterpret_cast<const uint4*>(b + 16 + 16 * h));
    }
  }

  template <bool kStaged>
  __device__ __forceinline__ void Compute(const float4* xs, int64_t sb, int lane, float* acc) const {
    const int t = lane % 8, j = t / 2, h = t % 2;
    float4 xl[4], xh[4];
    const int s0 = static_cast<int>(64 * sb) + 16 * j + 4 * h;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      xl[i] = XSlot<kStaged>(xs, s0 + i, Swizzle);
      xh[i] = XSlot<kStaged>(xs, s0 + 8 + i, Swizzle);
    }
    const float sxl = (Sum4(xl[0]) + Sum4(xl[1])) + (Sum4(xl[2]) + Sum4(xl[3]));
    const float sxh = (Sum4(xh[0]) + Sum4(xh[1])) + (Sum4(xh[2]) + Sum4(xh[3]));
    const int sh = 16 * (j & 1);
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      // Scales and minimums of sub-blocks 2j, 2j+1 (two bytes each), as
      // gguf/dequant.cc's get_scale_min_k4.
      const uint32_t a = hd[r].y >> sh, bb = hd[r].z >> sh, c = hd[r].w >> sh;
      const uint32_t scp = j < 2 ? (a & 0x3F3Fu) : ((c & 0x0F0Fu) | ((a >> 2) & 0x3030u));
      const uint32_t mp = j < 2 ? (bb & 0x3F3Fu) : (((c >> 4) & 0x0F0Fu) | ((bb >> 2) & 0x3030u));
      const float d = __half2float(__ushort_as_half(static_cast<unsigned short>(hd[r].x & 0xFFFF)));
      const float dmin = __half2float(__ushort_as_half(static_cast<unsigned short>(hd[r].x >> 16)));
      const uint32_t q[4] = {qs[r].x, qs[r].y, qs[r].z, qs[r].w};
      uint32_t hb[4] = {0, 0, 0, 0};
      if constexpr (kQ5) {
        hb[0] = qh[r].x;
        hb[1] = qh[r].y;
        hb[2] = qh[r].z;
        hb[3] = qh[r].w;
      }
      float sl = 0.0f, su = 0.0f;
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        uint32_t lo = q[i] & 0x0F0F0F0Fu, hi = (q[i] >> 4) & 0x0F0F0F0Fu;
        if constexpr (kQ5) {
          lo |= ((hb[i] >> (2 * j)) & 0x01010101u) << 4;
          hi |= ((hb[i] >> (2 * j + 1)) & 0x01010101u) << 4;
        }
        sl = Dot4(lo, kTwo23, xl[i], sl);
        su = Dot4(hi, kTwo23, xh[i], su);
      }
      const float dl0 = d * ByteToFloat<0>(scp, kTwo23), dl1 = d * ByteToFloat<1>(scp, kTwo23);
      const float ml0 = dmin * ByteToFloat<0>(mp, kTwo23), ml1 = dmin * ByteToFloat<1>(mp, kTwo23);
      float v = acc[r];
      v = fmaf(dl0, sl, v);
      v = fmaf(-ml0, sxl, v);
      v = fmaf(dl1, su, v);
      v = fmaf(-ml1, sxh, v);
      acc[r] = v;
    }
  }
};

// Eight bytes at p (2-byte aligned; `aligned`: 4-byte aligned) as two words.
__device__ __forceinline__ void Ld64At2(const uint8_t* p, bool aligned, uint32_t* w0,
                                        uint32_t* w1) {
  if (aligned) {
    *w0 = Ld32(p);
    *w1 = Ld32(p + 4);
  } else {
    const uint32_t u0 = Ld32(p - 2), u1 = Ld32(p + 2), u2 = Ld32(p + 6);
    *w0 = __funnelshift_r(u0, u1, 16);
    *w1 = __funnelshift_r(u1, u2, 16);
  }
}

// Q6_K (210 B: ql[128], qh[64], scales[16] int8, d): only 2-byte aligned, so
// a step covers four super-blocks of one parity (then, with the rows 4-byte
// aligned and n_sb even, all four start 4-byte aligned or all at 2 mod 4: a
// warp-uniform load path). Lane t = l%8: hh = t/4, lq = t%4 takes
// l = 8lq..8lq+7 of half hh: elements 128hh + 32k + l for k = 0..3 (32
// elements, four scales). x slots 32hh + 8k + 2lq + {0,1}: Swizzle XORs bit
// 0 with hh.
template <int kRows>
struct KQ6 {
  static constexpr int kBytes = 210;
  static __device__ __forceinline__ int Swizzle(int s) { return s ^ ((s >> 5) & 1); }
  static __device__ __forceinline__ int64_t StepSb(int64_t step, int lane) {
    return 8 * (step >> 1) + (step & 1) + 2 * (lane / 8);
  }
  static __device__ __forceinline__ int64_t Steps(int64_t n_sb) { return 2 * ((n_sb + 7) / 8); }

  uint32_t a0[kRows], a1[kRows], b0[kRows], b1[kRows], h0[kRows], h1[kRows], s0[kRows], s1[kRows];
  float d[kRows];

  __device__ __forceinline__ void Load(const uint8_t* const* rp, int64_t sb, int lane) {
    const int t = lane % 8, hh = t / 4, lq = t % 4;
    const bool aligned = (sb & 1) == 0;  // rows 4-byte aligned: the parity decides
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const uint8_t* b = rp[r] + sb * kBytes;
      Ld64At2(b + 64 * hh + 8 * lq, aligned, &a0[r], &a1[r]);       // ql, k = 0 and 2
      Ld64At2(b + 64 * hh + 32 + 8 * lq, aligned, &b0[r], &b1[r]);  // ql, k = 1 and 3
      Ld64At2(b + 128 + 32 * hh + 8 * lq, aligned, &h0[r], &h1[r]);
      Ld64At2(b + 192 + 8 * hh, aligned, &s0[r], &s1[r]);  // scales 8hh .. 8hh+7
      d[r] = HalfAt(b + 208);
    }
  }

  template <bool kStaged>
  __device__ __forceinline__ void Compute(const float4* xs, int64_t sb, int lane, float* acc) const {
    const int t = lane % 8, hh = t / 4, lq = t % 4;
    float4 x[8];  // x[2k + c]: elements 128hh + 32k + 8lq + 4c .. +3
    const int base = static_cast<int>(64 * sb) + 32 * hh + 2 * lq;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      x[2 * k] = XSlot<kStaged>(xs, base + 8 * k, Swizzle);
      x[2 * k + 1] = XSlot<kStaged>(xs, base + 8 * k + 1, Swizzle);
    }
    constexpr float kBias = kTwo23 + 32.0f;  // q - 32
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      float v = acc[r];
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const uint32_t l0 = (k % 2) ? b0[r] : a0[r], l1 = (k % 2) ? b1[r] : a1[r];
        const int ns = 4 * (k / 2);
        const uint32_t q0 = ((l0 >> ns) & 0x0F0F0F0Fu) | (((h0[r] >> (2 * k)) & 0x03030303u) << 4);
        const uint32_t q1 = ((l1 >> ns) & 0x0F0F0F0Fu) | (((h1[r] >> (2 * k)) & 0x03030303u) << 4);
        const float s = Dot4(q1, kBias, x[2 * k + 1], Dot4(q0, kBias, x[2 * k], 0.0f));
        // scale byte 2k + lq/2 of the eight at 192 + 8hh, a signed int8.
        const uint32_t sw = k < 2 ? s0[r] : s1[r];
        const int sc = static_cast<int8_t>((sw >> (8 * (2 * (k % 2) + lq / 2))) & 0xFF);
        v = fmaf(d[r] * internal::SmallIntToFloat(sc), s, v);
      }
      acc[r] = v;
    }
  }
};

// Staged x fits the 48 KB of dynamic shared memory a launch gets without an opt-in.
static_assert(kStageColsBelow * sizeof(float) <= 48 * 1024);

// K-quant rows (K = KQ45<.., kRows> or KQ6<kRows>; Q6_K needs n_sb even and
// the rows 4-byte aligned, checked by the launcher). Q6_K's unstaged 2-row
// variant (the 7B down projections) capped for 4 resident blocks: 78 -> 64
// registers without a spill, 3584 x 18944 33.4 -> 30.8 us (56 -> 61% of the
// copy bandwidth), 7B Q4_K_M decode 385.6 -> 394.9 tokens/s (H100, same
// call, 2026-11-27); the other variants uncapped (a cap spills Q4_K/Q5_K's
// 2-row variants, and a bound of 1 block lets ptxas take 128-150 registers).
//
// kNorm (staged only): a folded RMSNorm (RowPlan::norm_w): x * w is staged,
// the block sums x^2 while staging, and Finish scales each row's sum by
// 1 / sqrt(mean(x^2) + eps). Only the 1-row variants take it (products of
// few rows, e.g. a Q4_K_M layer's Q6_K attn_v beside its Q4_K q and k): in
// the 2-row variants (the output matrix) it cost a resident block and 9%
// (10f318b, docs/PERFORMANCE.md); a separate instantiation leaves the
// unfolded kernels as they were.
template <typename K, int kRows, bool kStaged, bool kNorm = false>
__global__ void __launch_bounds__(kFastThreads, !kStaged && kRows == 2 && K::kBytes == 210 ? 4 : 0)
    MatVecKQuantKernel(RowPlan p, int64_t n_sb, const float* __restrict__ x, int split) {
  static_assert(!kNorm || (kStaged && kRows == 1), "the folded norm is for the staged 1-row kernels");
  extern __shared__ float4 xs[];
  __shared__ float red[kFastWarps][kRows];
  const int lane = threadIdx.x % 32;
  const int part = (threadIdx.x / 32) % split;
  const int64_t row0 = GroupRow0<kRows>(split);
  const bool active = row0 < p.end[2];
  const uint8_t* rp[kRows];
  RowPtrs<kRows>(p, active ? row0 : 0, rp);
  const int64_t n_steps = K::Steps(n_sb);
  float acc[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) acc[r] = 0.0f;
  // The first step's weights are requested before anything else: they are
  // no op's output, so this may run while the previous kernel finishes
  // (dependent launch), and x is staged while they arrive.
  K first;
  const int64_t sb0 = K::StepSb(part, lane);
  const bool have0 = active && part < n_steps && sb0 < n_sb;
  if (have0) first.Load(rp, sb0, lane);
  Entry<kRows> entry;
  entry.Enter(p, row0, active, split);
  const float4* x4 = reinterpret_cast<const float4*>(x);
  float norm_scale = 1.0f;
  if constexpr (kNorm) {  // x * w staged; the block's sum of x^2 (per thread, warp, then warps in order)
    __shared__ float ss_warp[kFastWarps];
    const float4* w4 = reinterpret_cast<const float4*>(p.norm_w);
    float ss = 0.0f;
    for (int64_t s = threadIdx.x; s < 64 * n_sb; s += kFastThreads) {
      const float4 v = __ldg(x4 + s), w = __ldg(w4 + s);
      ss = fmaf(v.x, v.x, ss);
      ss = fmaf(v.y, v.y, ss);
      ss = fmaf(v.z, v.z, ss);
      ss = fmaf(v.w, v.w, ss);
      xs[K::Swizzle(static_cast<int>(s))] = make_float4(v.x * w.x, v.y * w.y, v.z * w.z, v.w * w.w);
    }
    ss = WarpSum(ss);
    if (lane == 0) ss_warp[threadIdx.x / 32] = ss;
    __syncthreads();
    float total = 0.0f;
#pragma unroll
    for (int w = 0; w < kFastWarps; ++w) total += ss_warp[w];
    norm_scale = 1.0f / sqrtf(total / static_cast<float>(256 * n_sb) + p.norm_eps);
  } else if constexpr (kStaged) {
    for (int64_t s = threadIdx.x; s < 64 * n_sb; s += kFastThreads) {
      xs[K::Swizzle(static_cast<int>(s))] = __ldg(x4 + s);
    }
    __syncthreads();
  }
  const float4* xsrc = kStaged ? xs : x4;
  if (active) {
    if (have0) first.template Compute<kStaged>(xsrc, sb0, lane, acc);
    // Load and compute each further step; unrolled by two, the second
    // step's loads are issued before the first's arithmetic. (A software
    // pipeline that kept the next step's weights in flight across
    // iterations measured slower on the H100: more registers, fewer
    // resident warps.)
#pragma unroll 2
    for (int64_t step = part + split; step < n_steps; step += split) {
      const int64_t sb = K::StepSb(step, lane);
      if (sb >= n_sb) continue;
      K one;
      one.Load(rp, sb, lane);
      one.template Compute<kStaged>(xsrc, sb, lane, acc);
    }
  }
  Finish<kRows, kNorm>(p, acc, row0, active, split, red, entry.in, norm_scale);
}

// ---- The 32-element block types: Q8_0 (34 B: d, qs[32]), Q4_0 (18 B: d,
// qs[16]), Q5_0 (22 B: d, qh[4], qs[16]), Q4_1 (20 B: d, m, qs[16]), Q5_1
// (24 B: d, m, qh[4], qs[16]); x from global memory.
//
// Q8_0: 8 lanes per block, lane k takes qs[4k..4k+3], elements 4k..4k+3 (x
// slot 8b + k: a warp's x loads are 512 contiguous bytes); 4 blocks per
// step. The 4-bit types: 4 lanes per block, lane k takes qs[4k..4k+3]:
// elements 4k.. (low nibbles) and 16 + 4k.. (high), the fifth bits from qh
// bits 4k.. and 16 + 4k..; 8 blocks per step. A step covers blocks of one
// parity: for the 2-byte aligned blocks (34, 18, 22 bytes), with the row
// 4-byte aligned and an even number of blocks per row, every field at an
// even offset is 4-byte aligned in odd blocks and at 2 mod 4 in even ones,
// for every row (a warp-uniform load path). Q4_1 and Q5_1 blocks are 4-byte
// multiples: always aligned.
enum class Small { kQ8_0, kQ4_0, kQ5_0, kQ4_1, kQ5_1 };

template <Small S>
struct SmallBlock {
  static constexpr int kBytes = S == Small::kQ8_0 ? 34 : S == Small::kQ4_0 ? 18 : S == Small::kQ5_0 ? 22
                                : S == Small::kQ4_1 ? 20 : 24;
  static constexpr int kLanes = S == Small::kQ8_0 ? 8 : 4;  // lanes per block
  static constexpr int kPerStep = 32 / kLanes;               // blocks per step (one parity)
  static constexpr bool kMin = S == Small::kQ4_1 || S == Small::kQ5_1;  // d * q + m
  static constexpr bool kHigh = S == Small::kQ5_0 || S == Small::kQ5_1;  // a fifth bit in qh
  static __device__ __forceinline__ constexpr int QhOffset() { return S == Small::kQ5_0 ? 2 : 4; }
  static constexpr int kQs = S == Small::kQ8_0 || S == Small::kQ4_0 ? 2 : S == Small::kQ4_1 ? 4
                             : S == Small::kQ5_0 ? 6 : 8;
  static constexpr bool kAlwaysAligned = kBytes % 4 == 0;
  // q - offset for the symmetric types (q is stored + offset).
  static constexpr float kOffset = S == Small::kQ8_0 ? 128.0f : S == Small::kQ4_0 ? 8.0f
                                   : S == Small::kQ5_0 ? 16.0f : 0.0f;
};

// Bits 0..3 of `bits` to bit 4 of bytes 0..3 (the multiply places bit i at
// 9i, whose disjoint partial products cannot carry).
__device__ __forceinline__ uint32_t FifthBits(uint32_t bits) {
  return ((((bits & 0xFu) * 0x00204081u) & 0x01010101u) << 4);
}

template <Small S, int kRows>
__global__ void __launch_bounds__(kFastThreads)
    MatVecSmallBlockKernel(RowPlan p, int64_t n_blocks, const float* __restrict__ x, int split) {
  using B = SmallBlock<S>;
  __shared__ float red[kFastWarps][kRows];
  const int lane = threadIdx.x % 32;
  const int part = (threadIdx.x / 32) % split;
  const int64_t row0 = GroupRow0<kRows>(split);
  const bool active = row0 < p.end[2];
  const uint8_t* rp[kRows];
  RowPtrs<kRows>(p, active ? row0 : 0, rp);
  const int m = lane / B::kLanes, k = lane % B::kLanes;
  const float4* x4 = reinterpret_cast<const float4*>(x);
  float acc[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) acc[r] = 0.0f;
  // Blocks 2 * kPerStep * g + 2m + par: parity par, group g. A warp takes
  // groups part, part + split, ...; kDepth of them per batch, all their
  // loads issued before the first use.
  const int64_t stride = int64_t{2} * B::kPerStep;
  constexpr int kDepth = 4;           // groups per batch (1 measured within +-8% either way)
  constexpr int kSlots = 2 * kDepth;  // (group, parity) pairs of a batch
  // The first batch's weights are requested before waiting for the
  // previous kernel (dependent launch): weights are no op's output; x is.
  Entry<kRows> entry;
  for (int64_t g0 = active ? part * stride : n_blocks; g0 < n_blocks; g0 += int64_t{kDepth} * split * stride) {
    uint32_t q[kSlots][kRows], qh[kSlots][kRows];
    float d[kSlots][kRows], mn[kSlots][kRows];
#pragma unroll
    for (int sl = 0; sl < kSlots; ++sl) {
      const int par = sl % 2;
      const int64_t g = g0 + int64_t{sl / 2} * split * stride;
      // Past the row's end: load a block of the same parity that exists
      // instead (discarded below). The 2-byte aligned types have an even
      // block count; Q4_1 and Q5_1 (always aligned) may have one block.
      const int64_t b = g + 2 * m + par < n_blocks ? g + 2 * m + par : (n_blocks > 1 ? par : 0);
      const bool aligned = B::kAlwaysAligned || par == 1;
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        const uint8_t* blk = rp[r] + b * B::kBytes;
        q[sl][r] = Ld32At2(blk + B::kQs + 4 * k, aligned);
        d[sl][r] = HalfAt(blk);
        if constexpr (B::kMin) mn[sl][r] = HalfAt(blk + 2);
        if constexpr (B::kHigh) qh[sl][r] = Ld32At2(blk + B::QhOffset(), aligned);
      }
    }
    entry.Enter(p, row0, active, split);
#pragma unroll
    for (int sl = 0; sl < kSlots; ++sl) {
      const int64_t b = g0 + int64_t{sl / 2} * split * stride + 2 * m + sl % 2;
      if (b >= n_blocks) continue;
      if constexpr (S == Small::kQ8_0) {
        const float4 xv = __ldg(x4 + 8 * b + k);
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          // Signed bytes: flip the sign bits, then byte - 128 = q.
          const float s = Dot4(q[sl][r] ^ 0x80808080u, kTwo23 + B::kOffset, xv, 0.0f);
          acc[r] = fmaf(d[sl][r], s, acc[r]);
        }
      } else {
        const float4 xl = __ldg(x4 + 8 * b + k), xh = __ldg(x4 + 8 * b + 4 + k);
        const float sx = B::kMin ? Sum4(xl) + Sum4(xh) : 0.0f;
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          uint32_t lo = q[sl][r] & 0x0F0F0F0Fu, hi = (q[sl][r] >> 4) & 0x0F0F0F0Fu;
          if constexpr (B::kHigh) {
            lo |= FifthBits(qh[sl][r] >> (4 * k));
            hi |= FifthBits(qh[sl][r] >> (16 + 4 * k));
          }
          const float s = Dot4(hi, kTwo23 + B::kOffset, xh, Dot4(lo, kTwo23 + B::kOffset, xl, 0.0f));
          acc[r] = fmaf(d[sl][r], s, acc[r]);
          if constexpr (B::kMin) acc[r] = fmaf(mn[sl][r], sx, acc[r]);
        }
      }
    }
  }
  entry.Enter(p, row0, active, split);  // a warp with no batch
  Finish<kRows>(p, acc, row0, active, split, red, entry.in);
}

// ---- Plain rows (F32, F16, BF16): 16-byte loads, kUnroll per row in
// flight per lane, kRows rows per warp. Needs rows and x 16-byte aligned and
// n_cols a multiple of the 16-byte element count.
template <GgmlType T, int kRows>
__global__ void __launch_bounds__(kFastThreads)
    MatVecPlainFastKernel(RowPlan p, int64_t n_cols, const float* __restrict__ x, int split) {
  constexpr int kCount = Plain16<T>::kCount;
  constexpr int kUnroll = 4;
  __shared__ float red[kFastWarps][kRows];
  const int lane = threadIdx.x % 32;
  const int part = (threadIdx.x / 32) % split;
  const int64_t row0 = GroupRow0<kRows>(split);
  const bool active = row0 < p.end[2];
  const uint8_t* rp[kRows];
  RowPtrs<kRows>(p, active ? row0 : 0, rp);
  const int64_t n_vec = n_cols / kCount;
  const float4* x4 = reinterpret_cast<const float4*>(x);
  float acc[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) acc[r] = 0.0f;
  const int64_t stride = int64_t{32} * kUnroll;
  Entry<kRows> entry;  // entered after the first batch's loads, as in MatVecSmallBlockKernel
  for (int64_t c0 = active ? part * stride : n_vec; c0 < n_vec; c0 += split * stride) {
    uint4 v[kRows][kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t c = c0 + 32 * u + lane;
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        v[r][u] = c < n_vec ? __ldg(reinterpret_cast<const uint4*>(rp[r]) + c) : make_uint4(0, 0, 0, 0);
      }
    }
    entry.Enter(p, row0, active, split);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t c = c0 + 32 * u + lane;
      if (c >= n_vec) break;
      float4 xv[kCount / 4];
#pragma unroll
      for (int i = 0; i < kCount / 4; ++i) xv[i] = __ldg(x4 + (kCount / 4) * c + i);
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        float f[kCount];
        Plain16<T>::Get(v[r][u], f);
#pragma unroll
        for (int i = 0; i < kCount / 4; ++i) {
          acc[r] = fmaf(f[4 * i + 0], xv[i].x, acc[r]);
          acc[r] = fmaf(f[4 * i + 1], xv[i].y, acc[r]);
          acc[r] = fmaf(f[4 * i + 2], xv[i].z, acc[r]);
          acc[r] = fmaf(f[4 * i + 3], xv[i].w, acc[r]);
        }
      }
    }
  }
  entry.Enter(p, row0, active, split);  // a warp with no batch
  Finish<kRows>(p, acc, row0, active, split, red, entry.in);
}

// ---- Launch shape.
//
// Rows per warp: 2 when there are enough rows (x then serves two rows per
// read), or the rows are wide (x reads would otherwise outweigh the weight
// reads: 4 bytes of x per Q8_0 byte with one row; the split below restores
// the block count), or the rows come in pairs; else 1. Warps per row group (`split`):
// the smallest of 1, 2, 4, 8 (at most max_split) that gives at least two
// blocks per multiprocessor, so narrow matrices (few rows, e.g. the k and v
// projections) still have every SM reading, and leaves a warp at most
// kColsPerWarp columns: long rows (the down projections, 18944 columns on
// Qwen2.5-7B) otherwise make few long blocks, whose last wave runs with most
// of the device idle.
struct FastShape {
  int rows = 1, split = 1;
  unsigned grid = 0;
};
constexpr int64_t kColsPerWarp = 4096;

FastShape PlanShape(int64_t n_rows, int64_t n_cols, bool pairs, int max_split, int multiprocessors) {
  FastShape s;
  s.rows = pairs || n_rows >= 4096 || (n_rows >= 1024 && n_cols >= 8192) ? 2 : 1;
  // GGUFSCOPE_MATVEC_BLOCKS_PER_SM: the target (benchmarking switch; the
  // split changes the summation order, not what is summed).
  static const int per_sm = static_cast<int>(EnvSwitchInt("GGUFSCOPE_MATVEC_BLOCKS_PER_SM", 2, 1, 64));
  const int64_t want = per_sm * static_cast<int64_t>(multiprocessors);
  const auto blocks = [&](int split) {
    const int64_t per_block = static_cast<int64_t>(kFastWarps / split) * s.rows;
    return (n_rows + per_block - 1) / per_block;
  };
  // GGUFSCOPE_MATVEC_COLS_PER_WARP: kColsPerWarp (benchmarking switch; 0:
  // no bound).
  static const int64_t cols_per_warp =
      EnvSwitchInt("GGUFSCOPE_MATVEC_COLS_PER_WARP", kColsPerWarp, 0, int64_t{1} << 30);
  while (s.split < max_split && blocks(s.split) < want) s.split *= 2;
  while (s.split < max_split && cols_per_warp > 0 && n_cols > cols_per_warp * s.split) s.split *= 2;
  s.grid = static_cast<unsigned>(blocks(s.split));
  return s;
}

// Which fast kernel a type and layout take (kNone: the generic kernel).
enum class FastKind { kNone, kQ4K, kQ4KTc, kQ5K, kQ6K, kQ6KTc, kQ8_0, kQ8_0Tc, kQ4_0, kQ5_0, kQ4_1, kQ5_1, kF32, kF16, kBF16 };

bool TensorCoreEnabled();
bool Q6KTensorCoreEnabled();
// TcQ6K's rows: shorter than 2^30 bytes (its copies count bytes within a row in int).
constexpr int64_t kTcQ6KMaxRowBytes = int64_t{1} << 30;
// Lanes that copy one row's window together per instruction (TcQ6K), by
// warps per block: 4 or 8 (a lane then copies the windows of half as many
// rows). Kernels alone (H100, 2026-11-27), 4 / 8 lanes, us: 4-warp launches
// 152064 x 3584 185.1 / 189.0, 18944 x 3584 29.6 / 30.1; 8-warp launches
// 3584 x 18944 29.9 / 28.3, 3584 x 3584 8.7 / 8.1 (lane pairs on one 32-byte
// sector each, the layout before: 200.2, 30.6, 31.6, 8.8). Those timings
// include 16-24 bytes of spills in some variants under the 128-register cap
// (the row pointers a lane keeps); since the -32 term left the mma (TcQ6K,
// 2026-11-28) no TcQ6K kernel spills.
__host__ __device__ constexpr int TcQ6KCopyLanes(int warps) { return warps >= 8 ? 8 : 4; }
// Whether TcQ6K takes Q6_K matrices whose bases are 16-byte aligned or not
// (`aligned`), of rows of row_bytes: any block count (FastKindOf, and
// MatVec's forced tensor-core path).
constexpr bool TcQ6KTakes(bool aligned, int64_t row_bytes) { return aligned && row_bytes < kTcQ6KMaxRowBytes; }
// A Q6_K row of n_cols columns with an odd block count: no SIMT kernel (it
// needs rows 4-byte aligned), so the tensor cores or the generic kernel.
constexpr bool Q6KOddBlocks(int64_t n_cols) { return (n_cols / 256) % 2 == 1; }
constexpr int64_t kQ8TcBlocks = 8;  // Q8_0 on the tensor cores: rows of whole stages of 8 blocks

// Every matrix of the plan must allow the kernel: Q4_K/Q5_K blocks are
// 16-byte multiples (rows 16-byte aligned); Q6_K, Q8_0, Q4_0 blocks are
// 2-byte aligned, so their SIMT kernels need 4-byte aligned rows and an
// even block count (the parity of a block decides its alignment in every
// row), and Q6_K's tensor-core kernel matrices that start 16-byte aligned
// (any block count); plain rows 16-byte aligned and n_cols a multiple of
// the 16-byte count.
FastKind FastKindOf(GgmlType type, const uint8_t* const* w, int n_w, int64_t n_cols, int64_t n_blocks,
                    int64_t row_bytes) {
  const auto bases_aligned = [&](size_t a) {
    for (int i = 0; i < n_w; ++i) {
      if (!internal::IsAligned(w[i], a)) return false;
    }
    return true;
  };
  const auto all_aligned = [&](size_t a) { return row_bytes % static_cast<int64_t>(a) == 0 && bases_aligned(a); };
  const bool pairs = n_blocks % 2 == 0 && all_aligned(4);
  switch (type) {
    case GgmlType::kQ4_K:
      if (all_aligned(16) && TensorCoreEnabled()) return FastKind::kQ4KTc;
      return all_aligned(16) ? FastKind::kQ4K : FastKind::kNone;
    case GgmlType::kQ5_K:
      return all_aligned(16) ? FastKind::kQ5K : FastKind::kNone;
    case GgmlType::kQ6_K:  // the tensor cores take odd block counts too (TcQ6K)
      if (TcQ6KTakes(bases_aligned(16), row_bytes) && Q6KTensorCoreEnabled()) return FastKind::kQ6KTc;
      return pairs ? FastKind::kQ6K : FastKind::kNone;
    case GgmlType::kQ8_0:
      if (n_blocks % kQ8TcBlocks == 0 && all_aligned(16) && TensorCoreEnabled()) return FastKind::kQ8_0Tc;
      return pairs ? FastKind::kQ8_0 : FastKind::kNone;
    case GgmlType::kQ4_0:
      return pairs ? FastKind::kQ4_0 : FastKind::kNone;
    case GgmlType::kQ5_0:
      return pairs ? FastKind::kQ5_0 : FastKind::kNone;
    case GgmlType::kQ4_1:
      return all_aligned(4) ? FastKind::kQ4_1 : FastKind::kNone;
    case GgmlType::kQ5_1:
      return all_aligned(4) ? FastKind::kQ5_1 : FastKind::kNone;
    case GgmlType::kF32:
      return n_cols % 4 == 0 && all_aligned(16) ? FastKind::kF32 : FastKind::kNone;
    case GgmlType::kF16:
      return n_cols % 8 == 0 && all_aligned(16) ? FastKind::kF16 : FastKind::kNone;
    case GgmlType::kBF16:
      return n_cols % 8 == 0 && all_aligned(16) ? FastKind::kBF16 : FastKind::kNone;
    default:
      return FastKind::kNone;
  }
}

// Every fast kernel takes the same arguments: the plan, the row's blocks
// (or columns, for plain rows), x and the split.
using FastKernel = void (*)(RowPlan, int64_t, const float*, int);

// The SIMT kind for a tensor-core kind over rows of n_cols columns (a Q8_0
// row of whole stages has the even block count its SIMT kernel needs; a
// Q6_K row of an odd block count has no SIMT kernel: kNone, the generic
// one); other kinds as they are.
FastKind SimtKind(FastKind kind, int64_t n_cols) {
  if (kind == FastKind::kQ8_0Tc) return FastKind::kQ8_0;
  if (kind == FastKind::kQ4KTc) return FastKind::kQ4K;
  if (kind == FastKind::kQ6KTc) return Q6KOddBlocks(n_cols) ? FastKind::kNone : FastKind::kQ6K;
  return kind;
}

template <int kRows>
using KQ4 = KQ45<false, kRows>;
template <int kRows>
using KQ5 = KQ45<true, kRows>;

// ---- Q8_0 and Q4_K on the integer tensor cores.
//
// x becomes a power-of-two scale and three signed 8-bit digits per element
// (act_digits.h: error at most 2^-21 of the largest element sharing the
// scale: 32 elements for Q8_0, whose own scales are per 32; a whole
// 256-element stage for Q4_K, whose sub-block scales are integers), so the
// dot products of 32 elements with the file's integer codes are three exact
// int32 sums: one mma.m16n8k32 (s8 or u8 x s8 -> s32) per 32 columns and 16
// rows, the codes as A (Q8_0's as they lie in the file, Q4_K's nibbles
// masked in place), the digits as B's columns 0-2. What is left for the
// SIMT cores is joining the sums and the digit split (Q4_K: integer
// multiply-adds per sub-block, f32 once per stage; Q8_0: f32 per block),
// and the weights stream through shared memory with cp.async (Q4_K, Q6_K)
// or Hopper's bulk copies, one a row and stage (Q8_0; F::kBulk):
// bytes in flight no longer cost registers (the SIMT kernels stop at 40-60%
// of the copy bandwidth on the 7B shapes, issue- and latency-bound).
//
// A stage is 256 columns of a row (8 Q8_0 blocks, 272 bytes; one Q4_K
// super-block, 144 bytes). A CUDA block takes kTiles * 16 rows (virtual
// rows of the plan; rows past the end reread the last row and are not
// emitted); its kWarps warps (4, or 8 for long rows on few blocks) take
// every kWarps-th stage, F::kDepth stages in flight per warp. Per stage a
// warp splits its 256 elements of x into digits itself (lane 4j + t:
// elements 8t..8t+7 of 32-element block j, just what B's fragment wants),
// so the op needs no scratch and can be recorded into a graph. Thread (g, t) = (lane / 4, lane % 4) of an mma
// holds rows g and g + 8: A's k slots 4t..4t+3 are the codes of elements
// 8t..8t+3, slots 16+4t.. those of 8t+4..8t+7, B the same elements'
// digits; D's columns 2t, 2t+1 come back to it. Needs rows of whole stages,
// 16-byte aligned (FastKindOf).
constexpr int kTcWarps = 4;
constexpr int kTcStageCols = 256;
// Per warp and stage: digits (3 planes of 256 bytes, kTcPlaneBytes apart),
// then the 8 blocks' scales of x (f32; Q8_0's, whose x scale is per 32
// elements). The planes start 32 bytes apart in the banks, so the lanes
// that read B's fragments from the three planes at once (columns 0-2) hit
// distinct banks; 256 bytes apart they were a 3-way conflict (H100,
// 2026-11-27: ncu's excessive shared wavefronts on the 7B gate/up launch
// 1.95 M -> 1.68 M; Q4_K and Q6_K kernels alone 1-3% faster, Q8_0 a tie,
// decode within the noise).
constexpr int kTcPlaneBytes = kTcStageCols + 32;
constexpr int kTcScaleOffset = 3 * kTcPlaneBytes;
constexpr int kTcDigitBytes = kTcScaleOffset + 8 * 4;
constexpr uint32_t kMagicBits = 0x4B400000u;  // the bits of kRintMagic (act_digits.h), 1.5 * 2^23

__device__ __forceinline__ void CpAsync16(uint32_t dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src) : "memory");
}
__device__ __forceinline__ void CpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int kPending>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

// Hopper's bulk copies (the TMA unit): one instruction copies a row's whole
// stage (a multiple of 16 bytes, 16-byte aligned at both ends) and reports
// its bytes to an mbarrier in shared memory, whose phase completes when
// the bytes it expects have landed.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
constexpr bool kTcBulk = true;
#else
constexpr bool kTcBulk = false;
#endif
using internal::BarExpect;
using internal::BarInit;
using internal::BarInitFence;
using internal::BarWait;
using internal::BulkCopy;
using internal::FenceProxyAsync;
using internal::TensorCopy2d;

// f(std::integral_constant<int, i>{}) for i = 0, 1, ..., N - 1, in order: the
// stage bodies' compile-time loops over blocks, chunks and sub-blocks.
template <typename F, int... I>
__device__ __forceinline__ void StaticForEach(F&& f, std::integer_sequence<int, I...>) {
  (f(std::integral_constant<int, I>{}), ...);
}
template <int N, typename F>
__device__ __forceinline__ void StaticFor(F&& f) {
  StaticForEach(f, std::make_integer_sequence<int, N>{});
}

// Digits of 8 elements v (one lane's share of the kLanes * 8 elements that
// share a scale: a 32-element block when kLanes = 4, the whole 256-element
// stage when 32): act_digits.h's DigitBytesOf, whose bytes the CPU test
// holds equal to DigitsOf's digits. d[n] = digit n of elements 0..3 and
// 4..7, packed; *scale the group's scale (NaN when an element is not
// finite, 1 when all are zero).
//
// The group's largest |v| is taken on the bits: for non-negative floats the
// integer order is the float order, and infinities and NaNs have the largest
// bits, so one integer max reduction also tells whether all are finite. For
// a maximum of 2^-120 or more (all but the tiniest groups) the exponent comes
// from those bits and each element takes one exact product
// (DigitScaleExponentOfBits; ilogb, ldexpf and two products per element
// were a fifth of a 2-tile Q4_K stage's instructions).
template <int kLanes>
__device__ __forceinline__ void LaneDigits(const float (&v)[8], uint32_t (&d)[3][2], float* scale) {
  uint32_t mb = 0;
#pragma unroll
  for (int i = 0; i < 8; ++i) mb = max(mb, __float_as_uint(v[i]) & 0x7FFFFFFFu);
#pragma unroll
  for (int o = 1; o < kLanes; o *= 2) mb = max(mb, __shfl_xor_sync(0xFFFFFFFFu, mb, o));
  const bool finite = mb < 0x7F800000u;
  uint32_t b[3][8];
  if (finite && mb >= kFastDigitBits) {
    const int k = DigitScaleExponentOfBits(mb);  // in [-126, 122]
    *scale = Pow2(k);
    const float inv = Pow2(-k);
#pragma unroll
    for (int i = 0; i < 8; ++i) DigitBytesOfScaled(v[i] * inv, &b[0][i], &b[1][i], &b[2][i]);
  } else {
    int k = 0;
    *scale = finite ? 1.0f : NAN;
    const bool any = finite && mb != 0;
    if (any) {
      k = DigitScaleExponent(__uint_as_float(mb));  // in [-155, -126]
      *scale = ldexpf(1.0f, k);
    }
#pragma unroll
    for (int i = 0; i < 8; ++i) DigitBytesOf(any ? v[i] : 0.0f, k, &b[0][i], &b[1][i], &b[2][i]);
  }
#pragma unroll
  for (int n = 0; n < 3; ++n) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const uint32_t lo = __byte_perm(b[n][4 * h], b[n][4 * h + 1], 0x0040);
      const uint32_t hi = __byte_perm(b[n][4 * h + 2], b[n][4 * h + 3], 0x0040);
      d[n][h] = __byte_perm(lo, hi, 0x5410);
    }
  }
}

__device__ __forceinline__ void MmaS8(const uint32_t (&a)[4], uint2 b, int (&c)[4]) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%10,%10,%10};\n"
      : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b.x), "r"(b.y), "r"(kMagicBits));
}
// Unsigned codes (A) times signed digits (B): c = A B.
__device__ __forceinline__ void MmaU8S8(const uint32_t (&a)[4], uint2 b, int (&c)[4]) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%10,%10,%10};\n"
      : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b.x), "r"(b.y), "r"(0));
}

// The sum of x over groups of kLanes * 8 elements: each lane's 8 pairwise,
// then the group's lanes (lane l holds elements 8l..8l+7; every lane of a
// group gets the same float, whatever the order of the shuffles' adds).
// Q6_K's 16-element scale groups (kLanes 2), Q4_K's 32-element sub-blocks (4).
template <int kLanes>
__device__ __forceinline__ float GroupSum(const float (&v)[8]) {
  float s = ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
#pragma unroll
  for (int o = 1; o < kLanes; o *= 2) s += __shfl_xor_sync(0xFFFFFFFFu, s, o);
  return s;
}

// What a warp's stage gives its lane: the stage's digits and (Q8_0) block
// scales of x in shared memory, and the weights of D's columns 2t, 2t+1
// (digit weights 1, 1/128, 1/128^2 for the lanes t = 0, 1 that hold
// columns 0-2, else 0).
struct TcLane {
  const uint8_t* b_sm;
  int g, t;
  float w0, w1;
  // B's fragments of this lane, block 0 (lanes of columns 3..7 read column 2:
  // their D columns get weight 0); block j is 32 j bytes on.
  const uint8_t* b_frag = b_sm + (g < 2 ? g : 2) * kTcPlaneBytes + 8 * t;

  // B's fragment for 32-element block j.
  __device__ __forceinline__ uint2 B(int j) const { return *reinterpret_cast<const uint2*>(b_frag + 32 * j); }
  __device__ __forceinline__ float Scale(int j) const {
    return reinterpret_cast<const float*>(b_sm + kTcScaleOffset)[j];
  }
  // The digit sums of D's two columns in this lane (biased by kMagicBits), joined.
  __device__ __forceinline__ float Join(int c0, int c1) const {
    return fmaf(__int_as_float(c1) - kRintMagic, w1, (__int_as_float(c0) - kRintMagic) * w0);
  }
};

// Q8_0: a stage is 8 blocks (34 bytes: f16 d, 32 int8 codes).
struct TcQ8 {
  static constexpr int kStageBytes = 8 * 34;
  static constexpr int kRowStride = 288;  // 8-byte fragment loads without bank conflicts
  static constexpr int kDepth = 2;
  static constexpr int kScaleLanes = 4;  // x's scale per 32-element block, as the file's d
  static constexpr bool kWindow = false;  // stages are 16-byte aligned (TcQ6K)
  static constexpr bool kSubSums = false;  // Stage takes x's sub-block sums (TcQ4K)
  // A row's stage by one bulk copy (MatVecTensorCoreKernel's kBulk): on the
  // H200 (2026-11-28, docs/PERFORMANCE.md, section "Session 23") 7B Q8_0
  // decode 402.5 / 401.1 tokens/s against 388.7 with 16-byte cp.async in
  // one call, 386.4 / 388.4 against 379.8 / 380.0 in another (both at the
  // 700 W cap), 1.5B Q8_0 946.4 / 937.4 against 914.9 / 913.6. Q4_K's
  // 144-byte stages were slower by bulk copies (7B Q4_K_M 428 against 502),
  // so TcQ4K keeps cp.async.
  static constexpr bool kBulk = true;
  static constexpr int kSuper = 1;  // super-blocks (x's 256-element digit groups) a stage

  // A's two 4-byte words for thread t of block j of a stage row (compile-time
  // j: odd blocks' codes are 4-byte aligned, even blocks' at 2 mod 4).
  template <int j>
  static __device__ __forceinline__ void Codes(const uint8_t* row, int t, uint32_t* lo, uint32_t* hi) {
    const uint8_t* p = row + 34 * j + 8 * t;
    if constexpr (j % 4 == 3) {  // 34j + 2 = 0 mod 8 (rows are 288-byte multiples)
      const uint2 w = *reinterpret_cast<const uint2*>(p + 2);
      *lo = w.x;
      *hi = w.y;
    } else if constexpr (j % 2 == 1) {  // 4 mod 8
      const uint32_t* q = reinterpret_cast<const uint32_t*>(p + 2);
      *lo = q[0];
      *hi = q[1];
    } else {
      const uint32_t* q = reinterpret_cast<const uint32_t*>(p);
      const uint32_t u0 = q[0], u1 = q[1], u2 = q[2];
      *lo = __funnelshift_r(u0, u1, 16);
      *hi = __funnelshift_r(u1, u2, 16);
    }
  }

  template <int kTiles>
  static __device__ __forceinline__ void Stage(const uint8_t* slot, const TcLane& l, float /*xs*/,
                                               float (&acc)[kTiles][2]) {
    const auto block = [&](auto jc) {
      constexpr int j = decltype(jc)::value;
      const uint2 bw = l.B(j);
      const float sc = l.Scale(j);
#pragma unroll
      for (int m = 0; m < kTiles; ++m) {
        const uint8_t* ra = slot + (16 * m + l.g) * kRowStride;
        const uint8_t* rb = ra + 8 * kRowStride;
        uint32_t a[4];
        Codes<j>(ra, l.t, &a[0], &a[2]);
        Codes<j>(rb, l.t, &a[1], &a[3]);
        int c[4];
        MmaS8(a, bw, c);
        const float fa = __half2float(*reinterpret_cast<const __half*>(ra + 34 * j)) * sc;
        const float fb = __half2float(*reinterpret_cast<const __half*>(rb + 34 * j)) * sc;
        acc[m][0] = fmaf(fa, l.Join(c[0], c[1]), acc[m][0]);
        acc[m][1] = fmaf(fb, l.Join(c[2], c[3]), acc[m][1]);
      }
    };
    StaticFor<8>(block);
  }
};

// Q4_K: a stage is one super-block (144 bytes: f16 d, f16 dmin, 12 bytes of
// 6-bit scales and mins, 128 bytes of nibbles). Sub-block j = 2c + h is
// nibble h of qs[32c .. 32c+31]; its value d * sc_j * q - dmin * m_j, so
// with x = xs * (digits) over the whole stage (one scale for its 256
// elements) a row's stage sum is
//   xs * d * sum_j sc_j * (q . digits)_j  -  dmin * sum_j m_j * sum(x)_j.
// The first sum is exact in int32: (q . digits)_j is an mma per sub-block,
// scaled by sc_j with an integer multiply-add. The high nibbles are masked
// in place (16 q, as unsigned codes), so the odd sub-blocks' sums come out
// times 16: the even ones add into a sum of their own, taken times 16
// before the two are joined, and the total divided by 16 at the end.
// Bounds: |(16 q . digits)_j| <= 32 * 240 * 128 < 2^20, times 63 and 8
// sub-blocks < 2^29. The min term is f32: the kernel sums x over each
// sub-block (kSubSums) and lane t takes sub-blocks 2t and 2t + 1 of its two
// rows; the quad's lanes are added with the columns at the end. (It was an
// mma per sub-block on the digits, with m_j as A: 16 mmas and their operand
// moves of a 2-tile stage's 835 instructions; with the exponent from the
// bits, LaneDigits, the stage is 688: cuobjdump -sass, 2026-11-28.)
struct TcQ4K {
  static constexpr int kStageBytes = 144;
  static constexpr int kRowStride = 160;  // 8-byte fragment loads without bank conflicts
  static constexpr int kDepth = 2;         // 3 measured slower, resident blocks equal or not (PERFORMANCE.md)
  static constexpr int kScaleLanes = 32;  // one x scale per stage
  static constexpr bool kWindow = false;
  static constexpr bool kSubSums = true;
  static constexpr bool kBulk = false;  // 16-byte cp.async (TcQ8)
  static constexpr int kSuper = 1;  // super-blocks (x's 256-element digit groups) a stage
  // The int32 bound above (digits |d| <= 128; codes 15 or 240, scales 63; 16 even + odd).
  static_assert(int64_t{8} * 32 * 240 * 128 * 63 < (int64_t{1} << 29), "Q4_K stage sums fit in int32");

  // A Q4_K row's header: d and dmin, and its 8 scales (sc) and 8 mins (mn)
  // as bytes: sc[0] = sc_0..3, sc[1] = sc_4..7, mn the same.
  struct Row {
    float d, dmin;
    uint32_t sc[2], mn[2];
    __device__ __forceinline__ explicit Row(const uint8_t* r) {
      const uint4 h = *reinterpret_cast<const uint4*>(r);  // rows start 16-byte aligned
      const float2 dd = __half22float2(*reinterpret_cast<const __half2*>(&h.x));
      d = dd.x;
      dmin = dd.y;
      sc[0] = h.y & 0x3F3F3F3Fu;
      mn[0] = h.z & 0x3F3F3F3Fu;
      sc[1] = (h.w & 0x0F0F0F0Fu) | ((h.y >> 2) & 0x30303030u);
      mn[1] = ((h.w >> 4) & 0x0F0F0F0Fu) | ((h.z >> 2) & 0x30303030u);
    }
    template <int j>
    __device__ __forceinline__ int Scale() const {  // sc_j
      return static_cast<int>(__byte_perm(sc[j / 4], 0, 0x4440 + j % 4));
    }
  };

  // A lane's part of the min term: rows g and g + 8 times sub-blocks 2t and
  // 2t + 1 (t < 2: word mn[0], else mn[1]; sel the PRMT selectors of its
  // bytes 2 (t % 2) and 2 (t % 2) + 1).
  struct MinLane {
    bool hi;
    uint32_t sel0, sel1;
    __device__ __forceinline__ explicit MinLane(int t)
        : hi(t >= 2), sel0(0x4440u + 2 * (t % 2)), sel1(0x4441u + 2 * (t % 2)) {}
    __device__ __forceinline__ float Of(const Row& r, float2 sx) const {
      const uint32_t w = hi ? r.mn[1] : r.mn[0];
      return fmaf(static_cast<float>(__byte_perm(w, 0, sel1)), sx.y,
                  static_cast<float>(__byte_perm(w, 0, sel0)) * sx.x);
    }
  };

  // sx: x's sums over sub-blocks 2t and 2t + 1 of this stage (f32, the
  // kernel's kSubSums), for the min term.
  // kStride: the bytes between rows in the slot (TcWarp's stages of two
  // super-blocks: 288).
  template <int kTiles, int kStride = kRowStride>
  static __device__ __forceinline__ void Stage(const uint8_t* slot, const TcLane& l, float xs, float2 sx,
                                               float (&acc)[kTiles][2]) {
    const MinLane ml(l.t);
#pragma unroll
    for (int m = 0; m < kTiles; ++m) {
      const uint8_t* ra = slot + (16 * m + l.g) * kStride;
      const uint8_t* rb = ra + 8 * kStride;
      const Row row_a(ra), row_b(rb);
      // sum_j sc_j (q . digits)_j over the even j (low nibbles, codes q) and
      // the odd j (high nibbles in place, 16 q): rows g, g + 8, D's columns
      // 2t, 2t + 1. The row's sum is 16 se + so.
      int se[4] = {0, 0, 0, 0}, so[4] = {0, 0, 0, 0};
      const auto sub = [&](auto jc, uint2 qa, uint2 qb) {
        constexpr int j = decltype(jc)::value;
        constexpr uint32_t mask = j % 2 == 0 ? 0x0F0F0F0Fu : 0xF0F0F0F0u;
        const uint2 b = l.B(j);
        const uint32_t a[4] = {qa.x & mask, qb.x & mask, qa.y & mask, qb.y & mask};
        int d[4];
        MmaU8S8(a, b, d);
        const int sa = row_a.template Scale<j>(), sb = row_b.template Scale<j>();
        int(&s)[4] = j % 2 == 0 ? se : so;
        s[0] += sa * d[0];
        s[1] += sa * d[1];
        s[2] += sb * d[2];
        s[3] += sb * d[3];
      };
      const auto chunk = [&](auto cc) {
        constexpr int c = decltype(cc)::value;
        const uint2 qa = *reinterpret_cast<const uint2*>(ra + 16 + 32 * c + 8 * l.t);
        const uint2 qb = *reinterpret_cast<const uint2*>(rb + 16 + 32 * c + 8 * l.t);
        sub(std::integral_constant<int, 2 * c>{}, qa, qb);
        sub(std::integral_constant<int, 2 * c + 1>{}, qa, qb);
      };
      StaticFor<4>(chunk);
      // Columns joined with the lane's digit weights; then d and x's scale;
      // the lane's min term (its two sub-blocks; the quad's lanes are added
      // at the end).
      const float xq = xs * (1.0f / 16);
      const float qa = fmaf(static_cast<float>(16 * se[1] + so[1]), l.w1, static_cast<float>(16 * se[0] + so[0]) * l.w0);
      const float qb = fmaf(static_cast<float>(16 * se[3] + so[3]), l.w1, static_cast<float>(16 * se[2] + so[2]) * l.w0);
      // (x's scale first: the sums times a power of two stay exact where d * xs
      // alone could underflow.)
      acc[m][0] = fmaf(row_a.d, qa * xq, fmaf(-row_a.dmin, ml.Of(row_a, sx), acc[m][0]));
      acc[m][1] = fmaf(row_b.d, qb * xq, fmaf(-row_b.dmin, ml.Of(row_b, sx), acc[m][1]));
    }
  }
};

// Q6_K: a stage is one super-block (210 bytes: 128 bytes ql, the low 4
// bits; 64 bytes qh, the high 2; 16 int8 scales, one per 16 elements; f16
// d). Element 128n + 32Q + l (n < 2, Q < 4, l < 32) is the code
// q = (nibble Q / 2 of ql[64n + 32(Q % 2) + l]) | (bits 2Q.. of qh[32n + l]) << 4,
// value d * sc[8n + 2Q + l / 16] * (q - 32). A 32-element sub-block j =
// 4n + Q thus has two scales, for l < 16 and l >= 16: lane t's k slots (l =
// 8t..8t+7) are group t / 2's, so B's columns 0-2 carry the digits of group
// 0's elements (zero in group 1's slots) and columns 3-5 those of group 1:
// one mma (unsigned codes q) gives each group's (q . digits) in its own
// columns, each scaled by its sc with an integer multiply-add. Bounds:
// group sums |16 * 63 * 128| < 2^17, times |sc| <= 128 and 8 sub-blocks <
// 2^27: int32. The -32 is f32, from x itself: the kernel sums x over each
// 16-element group (kWindow) and lane t takes groups 4t..4t+3 of its two
// rows, 32 * sum_g sc_g * sum(x)_g, subtracted from its share before the
// quad's lanes are added. (It was a second mma per sub-block, every slot's
// sc as A and the plain digits as B, chained through the accumulator, with
// its operand moves: as the Q4_K min term, TcQ4K.)
//
// Blocks are 2-byte aligned (210 bytes), so the copies work in the window
// of 240 bytes that starts at a block's address rounded down to 32 bytes
// (a sector), and Stage is told where in it each row's block begins: an
// even offset o <= 30 (kWindow). Of its 15 chunks of 16 bytes the block
// needs 14: 0-13 when o < 16, else 1-14, copied by 4 or 8 lanes per row and
// instruction on contiguous chunks (TcQ6KCopyLanes), so a row's window
// takes a few requests of whole sectors. (The first layout, two lanes per
// row on 16-byte aligned windows, made each request one sector or two
// halves: ncu counted 20.5 M L2 requests of one sector each on the 7B
// output matrix, the L2 87% busy for DRAM at 56%, where Q4_K's copies make
// requests of 1.6 sectors: 75% for 68%.) The matrix must start 16-byte
// aligned (FastKindOf): a window that starts before it is the case o = 16,
// whose chunk 0 is not copied. Rows of an even
// block count are then 4-byte aligned, so a block's parity decides whether
// its fields are 4-byte aligned or at 2 mod 4 (kPar 0 or 1: words by
// funnel shifts), and a warp's stages (every kWarps-th, kWarps even) all
// have its own parity. Rows of an odd block count alternate: kPar 2, the
// shift per lane (rows g and g + 8 of a fragment share their parity). The
// SIMT kernel takes even block counts only, so those rows (Qwen2.5-1.5B's
// down projection, 35 blocks) had only the generic kernel before this one.
struct TcQ6K {
  static constexpr int kBlockBytes = 210;
  static constexpr int kStageBytes = 224;  // the chunks copied per row and stage (of a 240-byte window)
  static constexpr int kRowStride = 240;   // the window; 60 words: the 8 rows g of a fragment load on distinct banks
  static constexpr int kDepth = 2;
  static constexpr int kScaleLanes = 32;  // one x scale per stage (the sub-block scales are integers)
  static constexpr bool kWindow = true;
  static constexpr bool kBulk = false;  // 2-byte aligned blocks: cp.async windows
  static constexpr int kSuper = 1;  // super-blocks (x's 256-element digit groups) a stage
  static constexpr bool kSubSums = false;  // its group sums come with kWindow's Stage
  static_assert(int64_t{8} * 16 * 63 * 128 * 128 < (int64_t{1} << 28), "Q6_K group sums fit in int32");

  // 8 bytes at p. kPar: 0, p is 4-byte aligned; 1, p = 2 mod 4 (two words
  // from three by funnel shifts); 2, either, per lane (the third word read
  // only when needed: a block at o = 30 ends at the window's last byte).
  template <int kPar>
  static __device__ __forceinline__ uint2 Load8(const uint8_t* p) {
    if constexpr (kPar == 2) {
      // The word below p as p minus its misalignment (not p's bits masked
      // through an integer): the compiler then still knows p's address
      // space, and these are shared-memory loads rather than generic ones.
      const uint32_t mis = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(p) & 3);
      const uint32_t* q = reinterpret_cast<const uint32_t*>(p - mis);
      const uint32_t sh = (mis & 2) * 8;
      const uint32_t u0 = q[0], u1 = q[1], u2 = sh != 0 ? q[2] : 0u;
      return make_uint2(__funnelshift_r(u0, u1, sh), __funnelshift_r(u1, u2, sh));
    } else if constexpr (kPar == 1) {
      const uint32_t* q = reinterpret_cast<const uint32_t*>(p - 2);
      const uint32_t u0 = q[0], u1 = q[1], u2 = q[2];
      return make_uint2(__funnelshift_r(u0, u1, 16), __funnelshift_r(u1, u2, 16));
    } else {
      const uint32_t* q = reinterpret_cast<const uint32_t*>(p);
      return make_uint2(q[0], q[1]);
    }
  }
  // The 6-bit codes of quarter Q from a ql word (both nibble sets) and a qh word.
  template <int Q>
  static __device__ __forceinline__ uint32_t Codes(uint32_t ql, uint32_t qh) {
    const uint32_t lo = Q >= 2 ? ql >> 4 : ql;
    const uint32_t hi = Q == 0 ? qh << 4 : Q == 1 ? qh << 2 : Q == 2 ? qh : qh >> 2;
    return (lo & 0x0F0F0F0Fu) | (hi & 0x30303030u);
  }
  // 4 bytes at p (kPar as Load8).
  template <int kPar>
  static __device__ __forceinline__ uint32_t Load4(const uint8_t* p) {
    if constexpr (kPar == 0) {
      return *reinterpret_cast<const uint32_t*>(p);
    } else {
      const uint32_t mis = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(p) & 3);  // (as Load8)
      const uint32_t* q = reinterpret_cast<const uint32_t*>(p - mis);
      const uint32_t sh = kPar == 1 ? 16u : (mis & 2) * 8;
      return __funnelshift_r(q[0], sh != 0 ? q[1] : 0u, sh);
    }
  }
  // PTX prmt of w and zero with selector sel: byte b of w sign-extended
  // (sel = 0x8880 + b * 0x1111: the upper nibbles take b's sign), or copied
  // into all four bytes (b * 0x1111).
  static __device__ __forceinline__ int SignedByte(uint32_t w, uint32_t sel) {
    uint32_t r;
    asm("prmt.b32 %0, %1, 0, %2;" : "=r"(r) : "r"(w), "r"(sel));
    return static_cast<int>(r);
  }

  // gs: x's sums over groups 4t..4t+3 of this stage (f32, from the kernel).
  // stride: the bytes between rows in the slot (kSpan: the matrix's row).
  template <int kTiles, int kPar>
  static __device__ __forceinline__ void Stage(const uint8_t* slot, const TcLane& l, float xs, float4 gs,
                                               const int (&o)[kTiles][2], float (&acc)[kTiles][2],
                                               int stride = kRowStride) {
    const int g = l.g, t = l.t;
    // B: column g's digits (plane g % 3), kept in group g / 3's slots; columns 6, 7 zero.
    const uint8_t* bp = l.b_sm + (g < 3 ? g : g < 6 ? g - 3 : 2) * kTcPlaneBytes + 8 * t;
    const uint32_t keep = (g < 3 && t < 2) || (g >= 3 && g < 6 && t >= 2) ? 0xFFFFFFFFu : 0u;
    // D's columns 2t, 2t + 1: their groups (column >= 3), the sign-extending
    // selectors of their scales; the digit weights (column c: digit c % 3).
    const uint32_t s0 = (t >= 2 ? 0x1111u : 0u) | 0x8880u, s1 = (t >= 1 ? 0x1111u : 0u) | 0x8880u;
    const float w0 = t == 0 ? 1.0f : t == 1 ? 1.0f / (128 * 128) : t == 2 ? 1.0f / 128 : 0.0f;
    const float w1 = t == 0 ? 1.0f / 128 : t == 1 ? 1.0f : t == 2 ? 1.0f / (128 * 128) : 0.0f;
#pragma unroll
    for (int m = 0; m < kTiles; ++m) {
      const uint8_t* ra = slot + (16 * m + g) * stride + o[m][0];
      const uint8_t* rb = slot + (16 * m + g + 8) * stride + o[m][1];
      int sm[4] = {0, 0, 0, 0};  // sum_j sc_j (q . digits): rows g, g + 8, columns 2t, 2t + 1
      const auto half = [&](auto nc) {
        constexpr int n = decltype(nc)::value;
        const uint2 qla[2] = {Load8<kPar>(ra + 64 * n + 8 * t), Load8<kPar>(ra + 64 * n + 32 + 8 * t)};
        const uint2 qlb[2] = {Load8<kPar>(rb + 64 * n + 8 * t), Load8<kPar>(rb + 64 * n + 32 + 8 * t)};
        const uint2 qha = Load8<kPar>(ra + 128 + 32 * n + 8 * t), qhb = Load8<kPar>(rb + 128 + 32 * n + 8 * t);
        const uint2 sca = Load8<kPar>(ra + 192 + 8 * n), scb = Load8<kPar>(rb + 192 + 8 * n);
        const auto quarter = [&](auto qc) {
          constexpr int Q = decltype(qc)::value;
          const uint32_t a[4] = {Codes<Q>(qla[Q % 2].x, qha.x), Codes<Q>(qlb[Q % 2].x, qhb.x),
                                 Codes<Q>(qla[Q % 2].y, qha.y), Codes<Q>(qlb[Q % 2].y, qhb.y)};
          const uint2 raw = *reinterpret_cast<const uint2*>(bp + 32 * (4 * n + Q));
          int d[4];
          MmaU8S8(a, make_uint2(raw.x & keep, raw.y & keep), d);
          // Scale byte 2 (Q % 2) + group of word Q / 2 of the eight.
          constexpr uint32_t b = 2 * (Q % 2) * 0x1111u;
          const uint32_t wa = Q < 2 ? sca.x : sca.y, wb = Q < 2 ? scb.x : scb.y;
          sm[0] += SignedByte(wa, b + s0) * d[0];
          sm[1] += SignedByte(wa, b + s1) * d[1];
          sm[2] += SignedByte(wb, b + s0) * d[2];
          sm[3] += SignedByte(wb, b + s1) * d[3];
        };
        StaticFor<4>(quarter);
      };
      StaticFor<2>(half);
      const float da = __half2float(*reinterpret_cast<const __half*>(ra + 208));
      const float db = __half2float(*reinterpret_cast<const __half*>(rb + 208));
      const float va = fmaf(static_cast<float>(sm[1]), w1, static_cast<float>(sm[0]) * w0);
      const float vb = fmaf(static_cast<float>(sm[3]), w1, static_cast<float>(sm[2]) * w0);
      // The -32 term of this lane's groups 4t..4t+3 (scale bytes 4t.. of the 16).
      const auto offset = [&](const uint8_t* r) {
        const uint32_t w = Load4<kPar>(r + 192 + 4 * t);
        const float a = fmaf(static_cast<float>(SignedByte(w, 0x9991u)), gs.y,
                             static_cast<float>(SignedByte(w, 0x8880u)) * gs.x);
        return fmaf(static_cast<float>(SignedByte(w, 0xBBB3u)), gs.w,
                    fmaf(static_cast<float>(SignedByte(w, 0xAAA2u)), gs.z, a));
      };
      acc[m][0] = fmaf(da, fmaf(-32.0f, offset(ra), va * xs), acc[m][0]);
      acc[m][1] = fmaf(db, fmaf(-32.0f, offset(rb), vb * xs), acc[m][1]);
    }
  }
};

// TcQ6K with 4 stages in flight per warp: its 8-warp launches of at most
// one block per multiprocessor (LaunchTensorCore).
struct TcQ6KDeep : TcQ6K {
  static constexpr int kDepth = 4;
};

// Q4_K in stages of two super-blocks (288 bytes a row, one bulk copy a
// row, rows 288 bytes apart in the slot: 72 words, so the 8-byte fragment
// loads of a half-warp's rows g fall on distinct banks, as TcQ4K's 160),
// fed from x's table only (kTable: two entries a stage). Each half is
// TcQ4K's Stage with its own entry. Session 24 timed 288-byte stages with
// x split in the stage loop (docs/PERFORMANCE.md): 89% of the copy
// bandwidth without arithmetic on 3584 x 18944, 14.45 us with it against
// 15.26: arithmetic-bound, which the table is meant to relieve.
struct TcQ4KW {
  static constexpr int kStageBytes = 2 * TcQ4K::kStageBytes;
  static constexpr int kRowStride = kStageBytes;
  static constexpr int kDepth = 2;
  static constexpr int kScaleLanes = 32;
  static constexpr bool kWindow = false;
  static constexpr bool kSubSums = true;
  static constexpr bool kBulk = true;
  static constexpr int kSuper = 2;
};

template <typename F, int kTiles, int kWarps>
constexpr size_t TcSharedBytes() {
  return size_t{kWarps} * (size_t{F::kDepth} * 16 * kTiles * F::kRowStride + F::kSuper * kTcDigitBytes);
}

// Resident blocks the register allocation must allow, by [tiles - 1][8 warps]
// (ptxas otherwise takes up to 128-160 registers and the occupancy falls;
// tighter caps spill: 6 blocks of 1 tile, 3 of 8 warps; 4 of 2 tiles spills
// 16 bytes and measured 85% against 90% on 152064 x 3584 Q4_K; 3 tiles,
// Q4_K only, 4 warps: 3 blocks, 157 registers).
constexpr int kTcMinBlocks[3][2] = {{5, 2}, {3, 4}, {3, 2}};

// A folded norm (kNorm) keeps the next stage's norm weights in flight beside
// x: 8 registers, which spill 40 bytes under the cap of 5 blocks of 1 tile
// and 4 warps, so that variant is capped at 4. Loading each stage's norm
// weights when it is needed (L1 hits) fits the cap of 5 but measured slower
// even where the cap of 4 costs a wave (H100, 2026-11-27: 1.5B Q8_0 decode
// 768 against 787 tokens/s, 7B Q8_0 298 against 307; the Q4_K_M files tied).
// TcQ6K's (window) 4-warp blocks are capped at 4 as well (under the cap of
// 5 its window copies' tail spilled 28-44 bytes).
constexpr int TcMinBlocks(int tiles, int warps, bool norm, bool window) {
  return (norm || window) && tiles == 1 && warps == 4 ? 4 : kTcMinBlocks[tiles - 1][warps / 8];
}

// A RopeFold's epilogue in the tensor-core kernels (kRope): thread i <
// kR / 2 emits virtual rows v0 + 2i and v0 + 2i + 1, which in a rotated
// segment are one rotation pair (RopeRow). Its angle's cosine and sine
// (QkvPost's f64 computation, RopeCosSin) and the cache row are computed
// before the kernel waits for the previous one, while its first weights
// are in flight: they depend on positions[0] and store_rows[0] only, which
// no op this kernel may overlap writes (ops.h). With a RopeTable
// (p.cos_sin), the emitter only notes its pair before the wait and loads
// the pair's values after it (Load), so warp 0 no longer runs the f64
// chain before its stages; it runs once a step. Measured on the H200
// (2026-11-29, same build, GGUFSCOPE_ROPE_TABLE alternated twice): 7B
// Q4_K_M 500.0 / 500.9 tokens/s against 498.7 / 498.7, 7B Q8_0 394.9 /
// 393.6 against 391.8 / 392.7 (+0.3-0.5%). The rest of the fold's cost
// (--skip-ops 2: 510.4) is elsewhere in it, not in the angle.
struct RopeEmit {
  float c = 1.0f, s = 0.0f;
  int64_t to = -1;
  int pair = -1;  // with p.cos_sin: the pair whose values Load reads

  __device__ __forceinline__ void Prepare(const RowPlan& p, int64_t e) {
    const int seg = SegOf(p, e);
    to = p.cache[seg] != nullptr ? *p.store_rows : -1;
    if (!Rotates(p, seg)) return;
    const int64_t i = e - SegStart(p, seg);
    const int j = static_cast<int>(i % p.head_dim);
    if (j >= p.n_rot) return;
    if (p.cos_sin != nullptr) {
      pair = j >> 1;
    } else {
      internal::RopeCosSin(static_cast<double>(*p.positions), p.rope_base, j >> 1, p.n_rot, &c, &s);
    }
  }

  // After the wait (the table is an op's output).
  __device__ __forceinline__ void Load(const RowPlan& p) {
    if (pair >= 0) {
      c = p.cos_sin[2 * pair];
      s = p.cos_sin[2 * pair + 1];
    }
  }

  // QkvPost's arithmetic on y = s + bias: the pair rotated (each product
  // rounded, no FMA), then stored into y and the cache. Rows past n_rot, and
  // store-only or plain segments, pass through.
  __device__ __forceinline__ void Emit(const RowPlan& p, int64_t e, const float* sum,
                                       const EmitInputs<2>& in) const {
    const int seg = SegOf(p, e);
    const int64_t i = e - SegStart(p, seg);
    const int64_t a = RopeRow(p, seg, i), b = RopeRow(p, seg, i + 1);
    float o0 = sum[0], o1 = sum[1];
    if (p.bias[seg] != nullptr) {
      o0 = o0 + in.bias[0];
      o1 = o1 + in.bias[1];
    }
    if (Rotates(p, seg) && static_cast<int>(i % p.head_dim) < p.n_rot) {
      const float y0 = __fsub_rn(__fmul_rn(o0, c), __fmul_rn(o1, s));
      const float y1 = __fadd_rn(__fmul_rn(o0, s), __fmul_rn(o1, c));
      o0 = y0;
      o1 = y1;
    }
    p.y[seg][a] = o0;
    p.y[seg][b] = o1;
    if (to >= 0 && to < p.n_cache_rows) {
      float* row = p.cache[seg] + to * (p.end[seg] - SegStart(p, seg));
      row[a] = o0;
      row[b] = o1;
    }
  }
};

// The bias elements of a kRope emitter's two rows (segment rows RopeRow).
__device__ __forceinline__ void LoadRopeBias(const RowPlan& p, int64_t e, bool emits, EmitInputs<2>* in) {
  in->bias[0] = in->bias[1] = in->residual[0] = in->residual[1] = 0.0f;
  if (!emits) return;
  const int seg = SegOf(p, e);
  if (p.bias[seg] == nullptr) return;
  const int64_t i = e - SegStart(p, seg);
  in->bias[0] = p.bias[seg][RopeRow(p, seg, i)];
  in->bias[1] = p.bias[seg][RopeRow(p, seg, i + 1)];
}

// The emitting thread's inputs, after the wait: its rows' bias and
// residual (EmitInputs), or under a RopeFold (kRope) the segment rows' bias
// and the pair's cosine and sine from a RopeTable.
template <bool kRope>
__device__ __forceinline__ void LoadEmitInputs(const RowPlan& p, int64_t emit_row, bool emits, EmitInputs<2>* in,
                                               RopeEmit* rope) {
  if constexpr (kRope) {
    LoadRopeBias(p, emit_row, emits, in);
    if (emits) rope->Load(p);
  } else {
    in->Load(p, emit_row, emits);
  }
}

// Rows emit_row and emit_row + 1 from their sums s: the plan's epilogue, or
// a RopeFold's rotation and cache stores.
template <bool kRope>
__device__ __forceinline__ void EmitPair(const RowPlan& p, int64_t emit_row, const float* s, const EmitInputs<2>& in,
                                         const RopeEmit& rope) {
  if constexpr (kRope) {
    rope.Emit(p, emit_row, s, in);
  } else {
    Emit<2>(p, emit_row, s, in);
  }
}

// The sum of v over a quad of lanes (4i..4i + 3: an mma's D columns of one
// row, the digit columns' shares), in the same order in every lane.
__device__ __forceinline__ float QuadSum(float v) {
  v += __shfl_xor_sync(0xFFFFFFFFu, v, 1);
  return v + __shfl_xor_sync(0xFFFFFFFFu, v, 2);
}

// The end of the matrix that holds virtual row v (the bound of TcQ6K's window copies).
__device__ __forceinline__ const uint8_t* MatrixEnd(const RowPlan& p, int64_t v) {
  if (p.pairs) return p.w[v & 1] + (p.end[2] >> 1) * p.row_bytes;
  const int seg = SegOf(p, v);
  return p.w[seg] + (p.end[seg] - SegStart(p, seg)) * p.row_bytes;
}

// The weights of virtual row v: under kRope, its segment row (RopeRow).
template <bool kRope>
__device__ __forceinline__ const uint8_t* TcRowPtr(const RowPlan& p, int64_t v) {
  if constexpr (kRope) {
    const int seg = SegOf(p, v);
    const int64_t start = SegStart(p, seg);
    return p.w[seg] + RopeRow(p, seg, v - start) * p.row_bytes;
  } else {
    return RowPtr(p, v);
  }
}

// x's digits made once per x (kTable): MatVecXTableKernel writes one entry
// per 256-element super-block of x, what a warp's stage of the Q4_K and
// Q6_K kernels would otherwise compute from x itself: the three digit
// planes as the stage's b_sm holds them, the stage's scale, and x's sums
// over its 16-element groups (Q6_K's; Q4_K's 32-element sums are pairs of
// them added, bit for bit the shuffle tree of GroupSum<4>). A product of
// many blocks then reads the entries instead of splitting every
// super-block of x again in each block (224 times on the 7B down
// projection, ~180 of a stage's 383 instructions: docs/PERFORMANCE.md,
// session 27). The entries go to Context::x_table(), written by their own
// launch just before the product's (one more dependent launch).
constexpr int kXEntrySums = kTcDigitBytes;  // 16 floats: x's 16-element group sums
constexpr int kXEntryBytes = kTcDigitBytes + 16 * 4;
static_assert(kXEntryBytes % 16 == 0, "16-byte aligned entries");

// A table-fed launch's shared memory: each warp's slots of weights, and
// beside them each slot's kSuper entries, copied with the slot's weights
// (no digits of its own: the stage reads the entries in place).
template <typename F, int kWarps>
constexpr size_t TcTableSharedBytes() {
  return size_t{kWarps} * F::kDepth * (size_t{16} * F::kRowStride + size_t{F::kSuper} * kXEntryBytes);
}

// A warp's entry for one super-block of x, lane holding elements 8 lane..
// (its 8 in v): the three digit planes at n kTcPlaneBytes, the scale at
// kTcScaleOffset, the 16-element group sums at kXEntrySums. Also the
// per-block table of MatVecTcWarpKernel.
__device__ __forceinline__ void WriteDigitEntry(const float (&v)[8], uint8_t* e, int lane) {
  uint32_t dg[3][2];
  float scale;
  LaneDigits<32>(v, dg, &scale);
#pragma unroll
  for (int n = 0; n < 3; ++n) *reinterpret_cast<uint2*>(e + n * kTcPlaneBytes + 8 * lane) = make_uint2(dg[n][0], dg[n][1]);
  const float part = GroupSum<2>(v);
  if (lane == 0) *reinterpret_cast<float*>(e + kTcScaleOffset) = scale;
  if (lane % 2 == 0) reinterpret_cast<float*>(e + kXEntrySums)[lane / 2] = part;
}

// x's 16-element group sums 4t..4t + 3 of an entry as Q4_K's sub-block
// sums 2t and 2t + 1: GroupSum<4>'s shuffle tree, bit for bit.
__device__ __forceinline__ float2 SubBlockSums(const uint8_t* e, int t) {
  const float4 s = *reinterpret_cast<const float4*>(e + kXEntrySums + 16 * t);
  return make_float2(s.x + s.y, s.z + s.w);
}

__global__ void __launch_bounds__(256) MatVecXTableKernel(const float* __restrict__ x, int64_t n_blocks,
                                                          uint8_t* __restrict__ table) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t b = int64_t{blockIdx.x} * 8 + warp;
  internal::GridEnter();
  if (b >= n_blocks) return;
  const float4* q = reinterpret_cast<const float4*>(x) + b * (kTcStageCols / 4) + 2 * lane;
  const float4 lo = __ldg(q), hi = __ldg(q + 1);
  const float v[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
  WriteDigitEntry(v, table + b * kXEntryBytes, lane);
}

// Tensor maps of the TMA unit's tiled copies (kTma), passed as a
// __grid_constant__ parameter: MatVecTcWarpKernel's GLU pairs (gate, up),
// the table-fed TcQ4KW kernel's one matrix (m[0]).
struct TmaPair {
  CUtensorMap m[2];
};

// kSpan (TcQ6K on rows of at most kSpanMaxStages super-blocks, one matrix
// of whole 16-row blocks): a block's 16 rows are one contiguous span of
// 16 row_bytes, 16-byte aligned (rows start at 16 b row_bytes), fetched
// whole by one bulk copy before the wait instead of each stage's 16-byte
// cp.async windows (row_bytes = 210 n is no multiple of 16, so no stage
// of a row is 16-byte aligned and no tensor map can describe the rows);
// the stages then read rows at a stride of row_bytes.
constexpr int kSpanMaxStages = 16;
// A block waits for its whole span before its first stage: that pays only
// when several blocks share a multiprocessor, one's wait covered by the
// others' stages. H200, session 29 (bench_cuda.sh's matvec table, Q6_K):
// 152064 x 3584 159.6 -> 142.8 us and 8960 x 1536 (560 blocks) 10.0 ->
// 8.3, but 3584 x 3584 (224 blocks, under 2 a multiprocessor) 7.3 -> 9.3
// and 1536 x 1536 3.7 -> 4.0. Rows below kSpanMinRows keep the windows.
constexpr int64_t kSpanMinRows = 8192;
__host__ __device__ constexpr int64_t SpanBytes(int64_t row_bytes) { return (16 * row_bytes + 127) / 128 * 128; }

template <typename F, int kTiles, int kWarps, bool kNorm, bool kRope = false, bool kTable = false, bool kTma = false,
          bool kSpan = false>
__global__ void __launch_bounds__(32 * kWarps, TcMinBlocks(kTiles, kWarps, kNorm, F::kWindow))
    MatVecTensorCoreKernel(RowPlan p, int64_t n_stages, const float* __restrict__ x,
                           const __grid_constant__ TmaPair tma) {
  static_assert(!kTma || (F::kBulk && kTiles == 1 && kTable), "tensor-map copies: the table-fed TcQ4KW kernel");
  static_assert(!kSpan || (F::kWindow && kTiles == 1 && !kRope && !kTable), "spans: one-tile TcQ6K products");
  // kTable: x is Context::x_table()'s entries (MatVecXTableKernel), one a stage.
  static_assert(!kTable || (kTiles == 1 && F::kScaleLanes == 32 && !kNorm && !kRope),
                "table-fed: one-tile Q4_K and Q6_K products without folds");
  static_assert(kTable || F::kSuper == 1, "stages of two super-blocks are table-fed only");
  constexpr int kSuper = F::kSuper;
  constexpr int kR = 16 * kTiles;
  constexpr int kChunks = F::kStageBytes / 16;     // 16-byte copies per row and stage
  constexpr int kC = (kR * kChunks + 31) / 32;     // per lane
  constexpr int kSlotBytes = kR * F::kRowStride;
  constexpr bool kWindow = F::kWindow;
  extern __shared__ __align__(128) uint4 tc_shared[];  // (kTma: the tensor copies' destinations)
  __shared__ float red[kWarps][kR];
  // kBulk: each row's stage by one bulk copy (lane i copies rows i, i + 32),
  // completed on the warp's mbarrier of the stage's slot.
  static_assert(!(F::kBulk && kWindow), "bulk copies need 16-byte aligned stages, which kWindow's are not");
  constexpr bool kBulk = kTcBulk && F::kBulk;
  constexpr int kBulkRows = (kR + 31) / 32;
  __shared__ uint64_t tc_bar[kBulk ? kWarps : 1][kBulk ? F::kDepth : 1];
  __shared__ float red_ss[kNorm ? kWarps : 1];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t v0 = static_cast<int64_t>(blockIdx.x) * kR;
  const int64_t last = p.end[2] - 1;
  // kSpan: the block's span at the start (shared by its warps), the warps'
  // digits after it.
  [[maybe_unused]] const int64_t span_bytes = kSpan ? SpanBytes(p.row_bytes) : 0;
  uint8_t* const a_sm = reinterpret_cast<uint8_t*>(tc_shared) + (kSpan ? 0 : warp * (F::kDepth * kSlotBytes));
  uint8_t* const b_sm = reinterpret_cast<uint8_t*>(tc_shared) +
                        (kSpan ? span_bytes : kWarps * (F::kDepth * kSlotBytes)) + warp * (kSuper * kTcDigitBytes);
  // kTable: slot s's entries at e_sm + s kEntryStage (after every warp's
  // weight slots, in place of b_sm), copied in the slot's copy group (or
  // on its mbarrier) with its weights, so they arrive with them. (Loaded
  // into registers one stage ahead they did not: on the H200 on 2026-11-29
  // a quarter of the Q6_K down projection's stall samples waited for them,
  // L2 reads behind the weight stream.)
  constexpr int kEntryStage = kTable ? kSuper * kXEntryBytes : 0;
  uint8_t* const e_sm =
      reinterpret_cast<uint8_t*>(tc_shared) + kWarps * (F::kDepth * kSlotBytes) + warp * (F::kDepth * kEntryStage);
  const uint32_t e_addr = static_cast<uint32_t>(__cvta_generic_to_shared(e_sm));
  const uint32_t a_addr = static_cast<uint32_t>(__cvta_generic_to_shared(a_sm));
  // This lane's copies of a stage: (row, chunk) = divmod(lane + 32i, kChunks).
  // kWindow (one tile, TcQ6K): the kLanes lanes kLanes i.. copy rows i +
  // (32 / kLanes) j of the tile, each lane chunks s + lane % kLanes + kLanes m
  // of the row's window (s = 1 where the block begins at o >= 16 in it; the
  // 14 chunks the block needs): kLanes lanes on contiguous bytes of a row
  // per instruction. Nothing outside the matrix is read (the window's bytes
  // around the block are never used).
  constexpr int kLanes = TcQ6KCopyLanes(kWarps), kLaneRows = kLanes / 2;
  const uint8_t* src[kWindow ? kLaneRows : kBulk ? kBulkRows : kC];
  uint32_t dst[kWindow ? 1 : kBulk ? kBulkRows : kC];
  const uint32_t bar0 = static_cast<uint32_t>(__cvta_generic_to_shared(&tc_bar[kBulk ? warp : 0][0]));
  if constexpr (kBulk) {
    if (lane == 0) {
#pragma unroll
      for (int s = 0; s < F::kDepth; ++s) BarInit(bar0 + 8 * s);
    }
    BarInitFence();
    __syncwarp();
  }
  [[maybe_unused]] unsigned last_rows = 0;  // kWindow: bit j, row j of this lane is its matrix's last
  [[maybe_unused]] int lo[2] = {0, 0};  // kWindow: rows g and g + 8 modulo 32 bytes
  if constexpr (kWindow) {
    static_assert(kTiles == 1 && kWarps % 2 == 0 && F::kStageBytes == 32 * 7, "TcQ6K: one tile");
#pragma unroll
    for (int j = 0; j < kLaneRows; ++j) {
      const int64_t r = v0 + lane / kLanes + (32 / kLanes) * j;
      const int64_t v = r < last ? r : last;
      src[j] = TcRowPtr<kRope>(p, v);
      if (MatrixEnd(p, v) - src[j] <= p.row_bytes) last_rows |= 1u << j;
    }
    dst[0] = a_addr + (lane / kLanes) * F::kRowStride + 16 * (lane % kLanes);
    for (int r = 0; r < 2; ++r) {
      const int64_t vr = v0 + g + 8 * r < last ? v0 + g + 8 * r : last;
      lo[r] = static_cast<int>(reinterpret_cast<uintptr_t>(TcRowPtr<kRope>(p, vr)) & 31);
    }
  } else if constexpr (kBulk) {
#pragma unroll
    for (int i = 0; i < kBulkRows; ++i) {
      const int row = lane + 32 * i;
      const int64_t v = v0 + row < last ? v0 + row : last;
      src[i] = row < kR ? TcRowPtr<kRope>(p, v) : nullptr;
      dst[i] = a_addr + row * F::kRowStride;
    }
  } else {
    // A block whose rows all exist and lie in one matrix (or, for pairs,
    // alternate between the two from an even row) takes its copies' sources
    // from one or two base pointers instead of RowPtr's segment search per
    // copy (14 copies a lane in a 3-tile Q4_K block). ncu's source view of
    // Q4_K 18944 x 3584 on the H200 (2026-11-28): a warp ran 773
    // instructions once per block, ~530 of them before its first copy,
    // beside 692 per stage, and on 3584 columns it runs only 3.5 stages.
    // With the base pointers, in one call: Q4_K 1536 x 1536 3.71 against
    // 4.66 us, 18944 x 3584 13.91 against 14.15; decode 1.5B Q8_0 +3.5%,
    // Q4_K_M +2.0%, 7B Q4_K_M +0.9%. The addresses are RowPtr's.
    const int seg0 = SegOf(p, v0);
    const bool flat = !kRope && v0 + kR - 1 <= last && (p.pairs || SegOf(p, v0 + kR - 1) == seg0);
    if (flat) {
      const int64_t first = p.pairs ? v0 >> 1 : v0 - SegStart(p, seg0);  // v0 is even (kR = 16 kTiles)
      const uint8_t* b0 = p.w[p.pairs ? 0 : seg0] + first * p.row_bytes;
      const uint8_t* b1 = p.pairs ? p.w[1] + first * p.row_bytes : b0;
#pragma unroll
      for (int i = 0; i < kC; ++i) {
        const int c = lane + 32 * i;
        const int row = c / kChunks, chunk = c % kChunks;
        const int64_t r = p.pairs ? row >> 1 : row;
        src[i] = c < kR * kChunks ? (p.pairs && (row & 1) != 0 ? b1 : b0) + r * p.row_bytes + 16 * chunk : nullptr;
      }
    } else {
#pragma unroll
      for (int i = 0; i < kC; ++i) {
        const int c = lane + 32 * i;
        const int row = c / kChunks, chunk = c % kChunks;
        src[i] = c < kR * kChunks ? TcRowPtr<kRope>(p, v0 + row < last ? v0 + row : last) + 16 * chunk : nullptr;
      }
    }
#pragma unroll
    for (int i = 0; i < kC; ++i) {
      const int c = lane + 32 * i;
      dst[i] = a_addr + (c / kChunks) * F::kRowStride + 16 * (c % kChunks);
    }
  }
  const int64_t mine = warp < n_stages ? (n_stages - warp + kWarps - 1) / kWarps : 0;
  __shared__ uint64_t span_bar;
  [[maybe_unused]] const uint32_t span_bar_addr = static_cast<uint32_t>(__cvta_generic_to_shared(&span_bar));
  if constexpr (kSpan && kTcBulk) {
    // The whole span by one bulk copy, before the wait (weights).
    if (threadIdx.x == 0) {
      BarInit(span_bar_addr);
      BarInitFence();
      const uint32_t bytes = static_cast<uint32_t>(16 * p.row_bytes);
      BarExpect(span_bar_addr, bytes);
      BulkCopy(a_addr, p.w[0] + v0 * p.row_bytes, bytes, span_bar_addr);
    }
    __syncthreads();  // the barrier initialized before any warp waits on it
  }
  const auto issue = [&](int64_t k) {  // this warp's k-th stage into slot k % kDepth
    const uint32_t slot = static_cast<uint32_t>(k % F::kDepth) * kSlotBytes;
    if constexpr (kSpan) {
      return;  // (the span came whole)
    } else if constexpr (kWindow) {
      const int64_t off = (warp + k * kWarps) * F::kBlockBytes;
      const int cl = lane % kLanes;
      constexpr int kLast = (14 + kLanes - 1) / kLanes - 1;  // a lane's last chunk: m = kLast
#pragma unroll
      for (int j = 0; j < kLaneRows; ++j) {
        const uint8_t* b = src[j] + off;
        const uint8_t* a = reinterpret_cast<const uint8_t*>(reinterpret_cast<uintptr_t>(b) & ~uintptr_t{31});
        const int s = b - a >= 16 ? 1 : 0;
        // dst[0] + 16 cl is chunk cl of row lane / kLanes: this row's chunk cl + s.
        const uint32_t d = dst[0] + slot + (32 / kLanes) * j * F::kRowStride + 16 * s;
        const uint8_t* q = a + 16 * (cl + s);
#pragma unroll
        for (int m = 0; m < kLast; ++m) CpAsync16(d + 16 * kLanes * m, q + 16 * kLanes * m);  // chunks < 13: in the block
        if (cl + kLanes * kLast < 14) {
          // Chunks 13 and 14 may cross the end of the matrix (its last row's
          // last block): then the bytes before the end (an even count) by
          // 2-byte loads.
          q += 16 * kLanes * kLast;
          const uint32_t e = d + 16 * kLanes * kLast;
          const int left = (last_rows >> j & 1u) != 0 ? static_cast<int>(p.row_bytes - (q - src[j])) : 16;
          if (left >= 16) {
            CpAsync16(e, q);
          } else {
            const int n = left > 0 ? left : 0;
            const unsigned short* from = reinterpret_cast<const unsigned short*>(q);
#pragma unroll 1
            for (int i = 0; 2 * i < n; ++i) {
              const unsigned short h = __ldg(from + i);
              asm volatile("st.shared.u16 [%0], %1;" ::"r"(e + 2 * i), "h"(h) : "memory");
            }
          }
        }
      }
    } else if constexpr (kBulk) {
      const int64_t off = (warp + k * kWarps) * F::kStageBytes;
      const uint32_t bar = bar0 + 8 * static_cast<uint32_t>(k % F::kDepth);
      FenceProxyAsync();
      if constexpr (kTma) {
        // The block's 16 rows of the stage as one box (rows past the matrix
        // zero-filled), instead of 16 lanes' bulk copies issued one at a time.
        if (lane == 0) {
          BarExpect(bar, kR * F::kStageBytes + kEntryStage);
          TensorCopy2d(a_addr + slot, &tma.m[0], static_cast<int>(off / 2), static_cast<int>(v0), bar);
        }
      } else {
        if (lane == 0) BarExpect(bar, kR * F::kStageBytes + kEntryStage);  // kTable: issue_entry's bytes too
#pragma unroll
        for (int i = 0; i < kBulkRows; ++i) {
          if (src[i] != nullptr) BulkCopy(dst[i] + slot, src[i] + off, F::kStageBytes, bar);
        }
      }
    } else {
      const int64_t off = (warp + k * kWarps) * F::kStageBytes;
#pragma unroll
      for (int i = 0; i < kC; ++i) {
        if (src[i] != nullptr) CpAsync16(dst[i] + slot, src[i] + off);
      }
    }
  };
  // kTable: stage k's entries into its slot (an op's output: after the
  // wait), on the stage's mbarrier (kBulk: its expected bytes count them)
  // or with cp.async.
  const auto issue_entry = [&](int64_t k) {
    if constexpr (kTable) {
      const uint8_t* from = reinterpret_cast<const uint8_t*>(x) + (warp + k * kWarps) * kEntryStage;
      const uint32_t to = e_addr + static_cast<uint32_t>(k % F::kDepth) * kEntryStage;
      if constexpr (kBulk) {
        if (lane == 0) BulkCopy(to, from, kEntryStage, bar0 + 8 * static_cast<uint32_t>(k % F::kDepth));
      } else {
#pragma unroll
        for (int c = lane; c < kEntryStage / 16; c += 32) CpAsync16(to + 16 * c, from + 16 * c);
      }
    }
  };
  // Weights are no op's output: the first stages are requested before
  // waiting for the previous kernel (dependent launch).
#pragma unroll
  for (int k = 0; k < F::kDepth; ++k) {
    if (k < mine) issue(k);
    CpAsyncCommit();
  }
  // Thread i < kR / 2 emits rows v0 + 2i, v0 + 2i + 1.
  const int64_t emit_row = v0 + 2 * static_cast<int64_t>(threadIdx.x);
  const bool emits = threadIdx.x < kR / 2 && emit_row <= last;
  [[maybe_unused]] RopeEmit rope;
  if constexpr (kRope) {
    if (emits) rope.Prepare(p, emit_row);
  }
  internal::GridEnter();
  if constexpr (kTable) {  // the first stages' entries (one more copy group: stage 0 waits for all)
#pragma unroll
    for (int k = 0; k < F::kDepth; ++k) {
      if (k < mine) issue_entry(k);
    }
    CpAsyncCommit();
  }
  // The emitter's bias and residual now.
  EmitInputs<2> in;
  LoadEmitInputs<kRope>(p, emit_row, emits, &in, &rope);
  const TcLane l{b_sm, g, t, t == 0 ? 1.0f : t == 1 ? 1.0f / (128 * 128) : 0.0f, t == 0 ? 1.0f / 128 : 0.0f};
  float acc[kTiles][2];
#pragma unroll
  for (int m = 0; m < kTiles; ++m) acc[m][0] = acc[m][1] = 0.0f;
  const float4* x4 = reinterpret_cast<const float4*>(x);
  const auto load8 = [&](const float4* base, int64_t k, float (&v)[8]) {
    const float4* q = base + (warp + k * kWarps) * (kTcStageCols / 4) + 2 * lane;
    const float4 lo = __ldg(q), hi = __ldg(q + 1);
    v[0] = lo.x, v[1] = lo.y, v[2] = lo.z, v[3] = lo.w, v[4] = hi.x, v[5] = hi.y, v[6] = hi.z, v[7] = hi.w;
  };
  // kNorm: the norm's weights beside x, and this lane's sum of x^2 (each
  // element of x is one lane's in one warp's stage).
  const float4* nw4 = reinterpret_cast<const float4*>(p.norm_w);
  float xv[8] = {}, wv[kNorm ? 8 : 1] = {};
  float ss = 0.0f;
  if (mine > 0) {
    if constexpr (!kTable) load8(x4, 0, xv);
    if constexpr (kNorm) load8(nw4, 0, wv);
  }
  for (int64_t k = 0; k < mine; ++k) {
    float xn[8] = {}, wn[kNorm ? 8 : 1] = {};
    if (k + 1 < mine) {
      if constexpr (!kTable) load8(x4, k + 1, xn);
      if constexpr (kNorm) load8(nw4, k + 1, wn);
    }
    if constexpr (kNorm) {
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        ss = fmaf(xv[i], xv[i], ss);
        xv[i] *= wv[i];
      }
    }
    // This stage's digits (the previous stage's readers passed the
    // __syncwarp at the end of the last iteration); kTable: its entries,
    // read in their slot after the wait below.
    float scale = 1.0f;
    if constexpr (!kTable) {
      uint32_t dg[3][2];
      LaneDigits<F::kScaleLanes>(xv, dg, &scale);
#pragma unroll
      for (int n = 0; n < 3; ++n) {
        *reinterpret_cast<uint2*>(b_sm + n * kTcPlaneBytes + 8 * lane) = make_uint2(dg[n][0], dg[n][1]);
      }
      if (F::kScaleLanes == 4 && t == 0) reinterpret_cast<float*>(b_sm + kTcScaleOffset)[g] = scale;
    }
    if constexpr (kSpan) {
      BarWait(span_bar_addr, 0);
    } else if constexpr (kBulk) {
      BarWait(bar0 + 8 * static_cast<uint32_t>(k % F::kDepth), static_cast<uint32_t>((k / F::kDepth) & 1));
    } else if (kTable && k == 0) {
      CpAsyncWait<0>();  // the first stages' entries came in a group of their own, after the wait
    } else {
      CpAsyncWait<F::kDepth - 1>();
    }
    __syncwarp();
    [[maybe_unused]] const uint8_t* const e = e_sm + (k % F::kDepth) * kEntryStage;
    if constexpr (kTable) scale = *reinterpret_cast<const float*>(e + kTcScaleOffset);
    if constexpr (kWindow) {
      // Where rows g and g + 8 begin in their windows: (row + 210 kb) mod 32.
      // (kSpan: the stage's super-block within each row of the span.)
      const int kb18 = static_cast<int>(18 * (warp + k * kWarps));
      const int kb = static_cast<int>(F::kBlockBytes * (warp + k * kWarps));
      const int o[1][2] = {{kSpan ? kb : (lo[0] + kb18) & 31, kSpan ? kb : (lo[1] + kb18) & 31}};
      const uint8_t* slot = kSpan ? a_sm : a_sm + (k % F::kDepth) * kSlotBytes;
      const int stride = kSpan ? static_cast<int>(p.row_bytes) : F::kRowStride;  // (kSpan: rows of <= 16 blocks)
      // x's sums over the 16-element groups 4t..4t+3 (lanes 2g, 2g + 1 hold group g).
      float4 gs;
      if constexpr (kTable) {
        gs = reinterpret_cast<const float4*>(e + kXEntrySums)[t];
      } else {
        const float part = GroupSum<2>(xv);
        gs = make_float4(__shfl_sync(0xFFFFFFFFu, part, 8 * t), __shfl_sync(0xFFFFFFFFu, part, 8 * t + 2),
                         __shfl_sync(0xFFFFFFFFu, part, 8 * t + 4), __shfl_sync(0xFFFFFFFFu, part, 8 * t + 6));
      }
      const TcLane lk = kTable ? TcLane{e, g, t, l.w0, l.w1} : l;
      if (p.row_bytes % 4 != 0) {  // an odd block count: each row's parity
        F::template Stage<kTiles, 2>(slot, lk, scale, gs, o, acc, stride);
      } else if (warp % 2 != 0) {
        F::template Stage<kTiles, 1>(slot, lk, scale, gs, o, acc, stride);
      } else {
        F::template Stage<kTiles, 0>(slot, lk, scale, gs, o, acc, stride);
      }
    } else if constexpr (F::kSubSums) {
      // x's sums over sub-blocks 2t and 2t + 1 (lanes 4j.. hold sub-block j).
      if constexpr (kTable) {
        // Each super-block of the stage with its own entry (TcQ4KW: two).
#pragma unroll
        for (int h = 0; h < kSuper; ++h) {
          const uint8_t* const eh = e + h * kXEntryBytes;
          const float4 sums = reinterpret_cast<const float4*>(eh + kXEntrySums)[t];
          const float2 sx = make_float2(sums.x + sums.y, sums.z + sums.w);
          TcQ4K::Stage<kTiles, F::kRowStride>(a_sm + (k % F::kDepth) * kSlotBytes + h * TcQ4K::kStageBytes,
                                              TcLane{eh, g, t, l.w0, l.w1},
                                              *reinterpret_cast<const float*>(eh + kTcScaleOffset), sx, acc);
        }
      } else {
        const float part = GroupSum<4>(xv);
        const float2 sx =
            make_float2(__shfl_sync(0xFFFFFFFFu, part, 8 * t), __shfl_sync(0xFFFFFFFFu, part, 8 * t + 4));
        F::template Stage<kTiles>(a_sm + (k % F::kDepth) * kSlotBytes, l, scale, sx, acc);
      }
    } else {
      F::template Stage<kTiles>(a_sm + (k % F::kDepth) * kSlotBytes, l, scale, acc);
    }
    __syncwarp();
    if (k + F::kDepth < mine) {
      issue(k + F::kDepth);
      issue_entry(k + F::kDepth);
    }
    CpAsyncCommit();
#pragma unroll
    for (int i = 0; i < 8; ++i) xv[i] = xn[i];
    if constexpr (kNorm) {
#pragma unroll
      for (int i = 0; i < 8; ++i) wv[i] = wn[i];
    }
  }
  CpAsyncWait<0>();
  if constexpr (kNorm) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xFFFFFFFFu, ss, o);
    if (lane == 0) red_ss[warp] = ss;
  }
  // The quad's lanes hold the three digit columns' shares: add them, then
  // the warps' sums in warp order.
#pragma unroll
  for (int m = 0; m < kTiles; ++m) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const float s = QuadSum(acc[m][h]);
      if (t == 0) red[warp][16 * m + 8 * h + g] = s;
    }
  }
  __syncthreads();
  if (emits) {
    float s[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float total = 0.0f;
#pragma unroll
      for (int w = 0; w < kWarps; ++w) total += red[w][2 * threadIdx.x + r];
      s[r] = total;
    }
    if constexpr (kNorm) {  // RmsNorm's row scale, with the warps' sums in warp order
      float total = 0.0f;
#pragma unroll
      for (int w = 0; w < kWarps; ++w) total += red_ss[w];
      const float scale = 1.0f / sqrtf(total / static_cast<float>(n_stages * kTcStageCols) + p.norm_eps);
      s[0] *= scale;
      s[1] *= scale;
    }
    EmitPair<kRope>(p, emit_row, s, in, rope);
  }
}

// ---- Q4_K with a warp per row group (TcWarp).
//
// MatVecTensorCoreKernel shares each 16-row group among a block's warps
// (each takes every 4th or 8th stage of the row), so every group ends in a
// block barrier and a reduction, and a product of many groups runs in
// waves of short-lived blocks that each split x into digits again. Here
// each warp takes whole groups and streams their stages (two super-blocks
// of a row, 288 bytes, one bulk copy a row) through its own ring of two
// slots, and reduces and emits its rows itself: no block barrier after the
// start. x's digits, scale and group sums are split once per block
// into a table in shared memory (rows of up to kWarpMaxBlocks
// super-blocks), so a stage is TcQ4K's Stage on each of its two
// super-blocks and nothing else. Two blocks a multiprocessor of up to 9
// warps (95-96 registers; up to ~110 KB of shared memory each, 94 KB on
// the 7B gate/up launch's 14-super-block rows); warp w of block b
// takes groups w * grid + b, + grid * warps, ..., so the idle warps of the
// last round are spread over the multiprocessors.
//
// Session 26 (H200, 2026-11-29, docs/PERFORMANCE.md "Session 26 on the
// H200"): on the 7B gate/up launch (2368 groups, 9 warps a block, one
// round) the launch alone 23.6-23.8 us against 28.0 (76% of the copy
// bandwidth against 65%); in this final form (session 27, switch alternated
// in one build) the 7B Q4_K_M decode 537.4-538.0 tokens/s against
// 506.0-506.2 (+6.3%). Two earlier forms lost: the stages of a group split
// over a block's 8 warps with a barrier per group (-10%), and a warp per
// group with 8 warps and too few blocks or a last round of a few warps
// (-5%). Each warp's sums run over every stage of its rows, so results
// differ from TcQ4K's kernel by f32 rounding only.
constexpr int kWarpMinWarps = 8;  // the launches it takes (WarpLaunch): one round of 8 or 9 warps a block
constexpr int kWarpMaxWarps = 9;  // two blocks of 9 fit a multiprocessor (registers and shared memory)
constexpr int kWarpDepth = 2;
constexpr int kWarpStageBytes = 2 * TcQ4K::kStageBytes;
constexpr int kWarpSlotBytes = 16 * kWarpStageBytes;
constexpr int kWarpMaxBlocks = 28;
static_assert(kWarpSlotBytes % 16 == 0, "16-byte aligned slots");

// kTma (GLU pairs): a stage's 16 rows by two boxes of the TMA unit's tensor
// copies, one per matrix (gate rows v0 / 2 .. + 7, then up rows), instead of
// 16 lanes' bulk copies, which the compiler issues one lane at a time (a
// 9-instruction loop a lane: ~144 of a stage's ~600 instructions, SASS of
// 2026-11-29). The slot then holds the 8 gate rows and below them the 8 up
// rows, so the mma's rows g and g + 8 are pair g's two halves; each row's
// sum is computed as before (the same bits), only its place differs.
// The maps: uint16 elements (rows of row_bytes / 2), boxes of 144 x 8 (one
// 288-byte stage of 8 rows), made by LaunchWarpAs for each launch.
constexpr int kTmaBoxRows = 8;
constexpr int kTmaBoxCols = kWarpStageBytes / 2;  // uint16 elements
static_assert(kTmaBoxCols <= 256, "a tensor map box is at most 256 elements a side");

// Its table: WriteDigitEntry's entries, one a super-block of the row.
constexpr size_t WarpSharedBytes(int warps, int64_t n_blocks) {
  return size_t(warps) * kWarpDepth * kWarpSlotBytes + static_cast<size_t>(n_blocks) * kXEntryBytes;
}

template <bool kNorm, bool kRope, bool kTma = false>
__global__ void __launch_bounds__(32 * kWarpMaxWarps, 2)
    MatVecTcWarpKernel(RowPlan p, int64_t n_blocks, const float* __restrict__ x, const __grid_constant__ TmaPair tma) {
  static_assert(!(kTma && kRope), "tensor-map copies: GLU pairs only");
  // (128-byte aligned: the tensor copies' destinations; slots are 4608 bytes.)
  extern __shared__ __align__(128) uint4 tc_shared[];
  __shared__ float red[kWarpMaxWarps][16];
  __shared__ uint64_t bars[kWarpMaxWarps][kWarpDepth];
  __shared__ float red_ss[kNorm ? kWarpMaxWarps : 1];
  const int warps = static_cast<int>(blockDim.x / 32);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t last = p.end[2] - 1;
  const int64_t groups = (p.end[2] + 15) / 16;
  const int64_t tw = int64_t{gridDim.x} * warps, gw = int64_t{warp} * gridDim.x + blockIdx.x;
  const int n_stages = static_cast<int>(n_blocks / 2);
  const int my_groups = groups > gw ? static_cast<int>((groups - 1 - gw) / tw + 1) : 0;
  const int total = my_groups * n_stages;
  uint8_t* const a_sm = reinterpret_cast<uint8_t*>(tc_shared) + warp * (kWarpDepth * kWarpSlotBytes);
  uint8_t* const table = reinterpret_cast<uint8_t*>(tc_shared) + warps * (kWarpDepth * kWarpSlotBytes);
  const uint32_t a_addr = static_cast<uint32_t>(__cvta_generic_to_shared(a_sm));
  const uint32_t bar0 = static_cast<uint32_t>(__cvta_generic_to_shared(&bars[warp][0]));
  if (lane == 0) {
#pragma unroll
    for (int s = 0; s < kWarpDepth; ++s) BarInit(bar0 + 8 * s);
  }
  BarInitFence();
  __syncwarp();
  int64_t in_v0 = gw * 16;
  int in_k = 0;
  const auto row_src = [&](int64_t v0) { return TcRowPtr<kRope>(p, v0 + lane < last ? v0 + lane : last); };
  const uint8_t* src = !kTma && lane < 16 && my_groups > 0 ? row_src(in_v0) : nullptr;
  const auto issue = [&](int j) {
    const uint32_t bar = bar0 + 8 * static_cast<uint32_t>(j % kWarpDepth);
    FenceProxyAsync();
    if constexpr (kTma) {
      if (lane == 0) {
        BarExpect(bar, kWarpSlotBytes);
        const uint32_t slot = a_addr + static_cast<uint32_t>(j % kWarpDepth) * kWarpSlotBytes;
        const int c0 = in_k * kTmaBoxCols, c1 = static_cast<int>(in_v0 >> 1);
        TensorCopy2d(slot, &tma.m[0], c0, c1, bar);
        TensorCopy2d(slot + kTmaBoxRows * kWarpStageBytes, &tma.m[1], c0, c1, bar);
      }
    } else {
      if (lane == 0) BarExpect(bar, kWarpSlotBytes);
      if (lane < 16) {
        BulkCopy(a_addr + static_cast<uint32_t>(j % kWarpDepth) * kWarpSlotBytes + lane * kWarpStageBytes,
                 src + static_cast<int64_t>(in_k) * kWarpStageBytes, kWarpStageBytes, bar);
      }
    }
    if (++in_k == n_stages) {
      in_k = 0;
      in_v0 += tw * 16;
      if (!kTma && lane < 16 && in_v0 <= last) src = row_src(in_v0);
    }
  };
  for (int j = 0; j < kWarpDepth && j < total; ++j) issue(j);
  int64_t v0 = gw * 16;
  int64_t emit_row = v0 + 2 * lane;
  bool emits = lane < 8 && my_groups > 0 && emit_row <= last;
  [[maybe_unused]] RopeEmit rope;
  if constexpr (kRope) {
    if (emits) rope.Prepare(p, emit_row);
  }
  internal::GridEnter();
  float ss = 0.0f;
  for (int64_t b = warp; b < n_blocks; b += warps) {
    float v[8];
    const float4* q = reinterpret_cast<const float4*>(x) + b * (kTcStageCols / 4) + 2 * lane;
    const float4 lo = __ldg(q), hi = __ldg(q + 1);
    v[0] = lo.x, v[1] = lo.y, v[2] = lo.z, v[3] = lo.w, v[4] = hi.x, v[5] = hi.y, v[6] = hi.z, v[7] = hi.w;
    if constexpr (kNorm) {
      const float4* nq = reinterpret_cast<const float4*>(p.norm_w) + b * (kTcStageCols / 4) + 2 * lane;
      const float4 nlo = __ldg(nq), nhi = __ldg(nq + 1);
      const float w[8] = {nlo.x, nlo.y, nlo.z, nlo.w, nhi.x, nhi.y, nhi.z, nhi.w};
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        ss = fmaf(v[i], v[i], ss);
        v[i] *= w[i];
      }
    }
    WriteDigitEntry(v, table + b * kXEntryBytes, lane);
  }
  [[maybe_unused]] float rs = 1.0f;
  if constexpr (kNorm) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xFFFFFFFFu, ss, o);
    if (lane == 0) red_ss[warp] = ss;
  }
  __syncthreads();
  if constexpr (kNorm) {
    float total_ss = 0.0f;
    for (int w = 0; w < warps; ++w) total_ss += red_ss[w];
    rs = 1.0f / sqrtf(total_ss / static_cast<float>(n_blocks * kTcStageCols) + p.norm_eps);
  }
  const float w0 = t == 0 ? 1.0f : t == 1 ? 1.0f / (128 * 128) : 0.0f, w1 = t == 0 ? 1.0f / 128 : 0.0f;
  int j = 0;
  for (int gi = 0; gi < my_groups; ++gi, v0 += tw * 16) {
    if (gi > 0) {
      emit_row = v0 + 2 * lane;
      emits = lane < 8 && emit_row <= last;
      if constexpr (kRope) {
        if (emits) rope.Prepare(p, emit_row);
      }
    }
    EmitInputs<2> in;
    LoadEmitInputs<kRope>(p, emit_row, emits, &in, &rope);
    float acc[1][2] = {{0.0f, 0.0f}};
    for (int k = 0; k < n_stages; ++k, ++j) {
      BarWait(bar0 + 8 * static_cast<uint32_t>(j % kWarpDepth), static_cast<uint32_t>((j / kWarpDepth) & 1));
      const uint8_t* slot = a_sm + (j % kWarpDepth) * kWarpSlotBytes;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const uint8_t* e = table + (2 * k + h) * kXEntryBytes;
        TcQ4K::Stage<1, kWarpStageBytes>(slot + h * TcQ4K::kStageBytes, TcLane{e, g, t, w0, w1},
                                         *reinterpret_cast<const float*>(e + kTcScaleOffset), SubBlockSums(e, t), acc);
      }
      __syncwarp();
      if (j + kWarpDepth < total) issue(j + kWarpDepth);
    }
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const float sum = QuadSum(acc[0][h]);
      if (t == 0) red[warp][8 * h + g] = sum;
    }
    __syncwarp();
    if (emits) {
      // kTma: pair lane's gate row is the slot's row lane, its up row lane + 8.
      float sum[2] = {red[warp][kTma ? lane : 2 * lane], red[warp][kTma ? lane + 8 : 2 * lane + 1]};
      if constexpr (kNorm) {
        sum[0] *= rs;
        sum[1] *= rs;
      }
      EmitPair<kRope>(p, emit_row, sum, in, rope);
    }
    __syncwarp();
  }
}

// GGUFSCOPE_MATVEC_TC=0: Q8_0, Q4_K and Q6_K take the SIMT kernels (Q6_K
// rows of an odd block count the generic one); GGUFSCOPE_MATVEC_TC_Q6K=0:
// Q6_K alone (benchmarking switches).
bool TensorCoreEnabled() {
  static const bool on = EnvSwitchOn("GGUFSCOPE_MATVEC_TC");
  return on;
}
bool Q6KTensorCoreEnabled() {
  static const bool on = TensorCoreEnabled() && EnvSwitchOn("GGUFSCOPE_MATVEC_TC_Q6K");
  return on;
}

// Resident blocks per multiprocessor of the unfolded kernel. (A launch with
// a folded norm runs the kNorm variant, whose 1-tile 4-warp cap is 4 blocks
// instead of 5; LaunchTensorCore still sizes its waves with 5: the exact
// count measured slower, H100 2026-11-27 14:45 UTC, same call, two
// alternations: 1.5B Q4_K_M 746 against 762 tokens/s, 1.5B Q8_0 761
// against 772, 7B Q8_0 308 against 311; 7B Q4_K_M a tie.)
// (at_least_one: 1 where none fits or the query fails, for the wave sizing;
// else 0 there, for a variant that may not fit the card: TcQ6KDeep.)
template <typename F, int kTiles, int kWarps>
int TcResident(bool at_least_one = true) {
  static const int n = [] {
    int v = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&v, MatVecTensorCoreKernel<F, kTiles, kWarps, false>,
                                                      32 * kWarps, TcSharedBytes<F, kTiles, kWarps>()) != cudaSuccess) {
      (void)cudaGetLastError();  // not left for the next launch's check
      v = 0;
    }
    return v;
  }();
  return at_least_one ? std::max(n, 1) : n;
}

// Whether a plan rotates a segment (RopeFold): the kRope kernels.
bool PlanRotates(const RowPlan& p) {
  for (const uint8_t r : p.role) {
    if (r == static_cast<uint8_t>(PartRole::kRotate) || r == static_cast<uint8_t>(PartRole::kRotateStore)) return true;
  }
  return false;
}

// GGUFSCOPE_MATVEC_XTABLE=0: no table-fed launch (kTable); =q4k or =q6k:
// only that type's (benchmarking switch; unset: both).
int XTableTypes() {
  static const int m = [] {
    const std::string v = EnvSwitchString("GGUFSCOPE_MATVEC_XTABLE", "both");
    return v == "0" ? 0 : v == "q4k" ? 1 : v == "q6k" ? 2 : 3;
  }();
  return m;
}

// Rows of this many super-blocks or more take the table (the 7B and 1.5B
// down projections, 74 and 35): a product of short rows has too few
// stages a warp to pay for the table's launch. GGUFSCOPE_MATVEC_XTABLE_MIN=n
// sets another bound (benchmarking switch: 14 also takes the 7B attn_output).
int64_t XTableMinBlocks() {
  static const int64_t n = EnvSwitchInt("GGUFSCOPE_MATVEC_XTABLE_MIN", 32, 1, INT64_MAX);
  return n;
}

// Whether a one-tile Q4_K or Q6_K product is fed from x's table
// (MatVecXTableKernel): no folded norm or RoPE (their x is made in the
// launch), long rows, and the table fits Context::x_table().
template <typename F>
bool TakesXTable(const Context& ctx, const RowPlan& p, int64_t n_stages) {
  if constexpr (F::kScaleLanes != 32) {
    return false;  // Q8_0: a scale per 32-element block
  } else {
    const int type = F::kSubSums ? 1 : 2;
    return (XTableTypes() & type) != 0 && p.norm_w == nullptr && !PlanRotates(p) && n_stages >= XTableMinBlocks() &&
           ctx.x_table() != nullptr && n_stages * kXEntryBytes <= static_cast<int64_t>(Context::kXTableBytes);
  }
}

// GGUFSCOPE_MATVEC_XTABLE_WIDE=0: table-fed Q4_K products keep one
// super-block a stage (benchmarking switch; else the 8-warp ones of an even
// block count take TcQ4KW's two).
bool XTableWide() {
  static const bool on = EnvSwitchOn("GGUFSCOPE_MATVEC_XTABLE_WIDE");
  return on;
}

// GGUFSCOPE_MATVEC_TMA=0: MatVecTcWarpKernel's GLU pairs keep the lanes'
// bulk copies instead of tensor-map copies (benchmarking switch).
bool TmaEnabled() {
  static const bool on = EnvSwitchOn("GGUFSCOPE_MATVEC_TMA");
  return on;
}

// The driver's cuTensorMapEncodeTiled, through the runtime (no link with
// libcuda), or null where the driver has none.
using EncodeTiledFn = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                   const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                   CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
EncodeTiledFn EncodeTiled() {
  static const EncodeTiledFn fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q{};
#if CUDART_VERSION >= 12050
    const cudaError_t err = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q);
#else
    const cudaError_t err = cudaGetDriverEntryPoint("cuTensorMapEncodeTiled", &f, cudaEnableDefault, &q);
#endif
    if (err != cudaSuccess || q != cudaDriverEntryPointSuccess) {
      (void)cudaGetLastError();  // not left for the next launch's check
      return static_cast<EncodeTiledFn>(nullptr);
    }
    return reinterpret_cast<EncodeTiledFn>(f);
  }();
  return fn;
}

// A map of a matrix of `rows` rows of row_bytes (uint16 elements), boxes of
// box_cols x box_rows; false where the driver or the layout does not allow
// it (then the lanes' bulk copies).
bool MakeTmaMap(const uint8_t* w, int64_t row_bytes, int64_t rows, uint32_t box_cols, uint32_t box_rows,
                CUtensorMap* m) {
  const EncodeTiledFn encode = EncodeTiled();
  if (encode == nullptr || row_bytes % 16 != 0 || reinterpret_cast<uintptr_t>(w) % 16 != 0) return false;
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(row_bytes / 2), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(row_bytes)};
  const cuuint32_t box[2] = {box_cols, box_rows};
  const cuuint32_t elem[2] = {1, 1};
  return encode(m, CU_TENSOR_MAP_DATA_TYPE_UINT16, 2, const_cast<uint8_t*>(w), dims, strides, box, elem,
                CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

// The two maps of a GLU pair plan (gate = w[0], up = w[1]: end[2] / 2 rows
// each), boxes of one 288-byte stage of 8 rows: MatVecTcWarpKernel's kTma.
bool MakeTmaPair(const RowPlan& p, TmaPair* t) {
  return p.pairs && MakeTmaMap(p.w[0], p.row_bytes, p.end[2] / 2, kTmaBoxCols, kTmaBoxRows, &t->m[0]) &&
         MakeTmaMap(p.w[1], p.row_bytes, p.end[2] / 2, kTmaBoxCols, kTmaBoxRows, &t->m[1]);
}

// GGUFSCOPE_MATVEC_TMA_DOWN=0: the table-fed TcQ4KW kernel keeps the lanes'
// bulk copies (benchmarking switch; GGUFSCOPE_MATVEC_TMA=0 as well).
bool TmaDownEnabled() {
  static const bool on = TmaEnabled() && EnvSwitchOn("GGUFSCOPE_MATVEC_TMA_DOWN");
  return on;
}

template <typename F, int kTiles, int kWarps>
Status LaunchTc(Context& ctx, int64_t grid, const RowPlan& p, int64_t n_stages, const float* x) {
  if constexpr (kTiles == 1 && F::kScaleLanes == 32) {
    if (TakesXTable<F>(ctx, p, n_stages)) {
      uint8_t* const table = static_cast<uint8_t*>(ctx.x_table());
      GGUFSCOPE_CUDA_TRY(internal::LaunchDependent(ctx, MatVecXTableKernel, static_cast<unsigned>((n_stages + 7) / 8),
                                                   256, 0, x, n_stages, table));
      GGUFSCOPE_CHECK_LAUNCH("MatVecXTableKernel");
      const float* entries = reinterpret_cast<const float*>(table);
      if constexpr (std::is_same_v<F, TcQ4K> && kWarps == 2 * kTcWarps) {
        // One matrix (no pairs or segments): its 16-row boxes of a stage.
        TmaPair tma{};
        if (XTableWide() && n_stages % 2 == 0 && TmaDownEnabled() && !p.pairs && p.end[0] == p.end[2] &&
            MakeTmaMap(p.w[0], p.row_bytes, p.end[2], TcQ4KW::kStageBytes / 2, 16, &tma.m[0])) {
          GGUFSCOPE_CUDA_TRY(internal::LaunchDependent(
              ctx, MatVecTensorCoreKernel<TcQ4KW, 1, kWarps, false, false, true, true>, static_cast<unsigned>(grid),
              32 * kWarps, TcTableSharedBytes<TcQ4KW, kWarps>(), p, n_stages / 2, entries, tma));
          GGUFSCOPE_CHECK_LAUNCH("MatVecTensorCoreKernel");
          return {};
        }
        if (XTableWide() && n_stages % 2 == 0) {
          GGUFSCOPE_CUDA_TRY(internal::LaunchDependent(
              ctx, MatVecTensorCoreKernel<TcQ4KW, 1, kWarps, false, false, true>, static_cast<unsigned>(grid),
              32 * kWarps, TcTableSharedBytes<TcQ4KW, kWarps>(), p, n_stages / 2, entries, TmaPair{}));
          GGUFSCOPE_CHECK_LAUNCH("MatVecTensorCoreKernel");
          return {};
        }
      }
      GGUFSCOPE_CUDA_TRY(internal::LaunchDependent(ctx, MatVecTensorCoreKernel<F, 1, kWarps, false, false, true>,
                                                   static_cast<unsigned>(grid), 32 * kWarps,
                                                   TcTableSharedBytes<F, kWarps>(), p, n_stages, entries, TmaPair{}));
      GGUFSCOPE_CHECK_LAUNCH("MatVecTensorCoreKernel");
      return {};
    }
  }
  const bool norm = p.norm_w != nullptr, rope = PlanRotates(p);
  const auto kernel = rope ? (norm ? MatVecTensorCoreKernel<F, kTiles, kWarps, true, true>
                                   : MatVecTensorCoreKernel<F, kTiles, kWarps, false, true>)
                           : (norm ? MatVecTensorCoreKernel<F, kTiles, kWarps, true>
                                   : MatVecTensorCoreKernel<F, kTiles, kWarps, false>);
  GGUFSCOPE_CUDA_TRY(internal::LaunchDependent(ctx, kernel, static_cast<unsigned>(grid), 32 * kWarps,
                                               TcSharedBytes<F, kTiles, kWarps>(), p, n_stages, x, TmaPair{}));
  GGUFSCOPE_CHECK_LAUNCH("MatVecTensorCoreKernel");
  return {};
}

// GGUFSCOPE_MATVEC_TC_TILES=1, 2 or 3: always that many 16-row tiles per
// block (2 and 3: Q4_K only, Q8_0 keeps one; benchmarking switch; 0 or
// unset: the wave rule below).
int TcForcedTiles() {
  static const int n = static_cast<int>(EnvSwitchInt("GGUFSCOPE_MATVEC_TC_TILES", 0, 1, 3));
  return n;
}

// GGUFSCOPE_MATVEC_TC_3TILES=0: Q4_K never takes 3 tiles a block (benchmarking switch).
bool Tc3Tiles() {
  static const bool on = EnvSwitchOn("GGUFSCOPE_MATVEC_TC_3TILES");
  return on;
}

// GGUFSCOPE_MATVEC_TC_WARPS=4: never 8 warps per block (benchmarking switch).
int TcMaxWarps() {
  static const int w = EnvSwitchString("GGUFSCOPE_MATVEC_TC_WARPS") == "4" ? 4 : 8;
  return w;
}

// GGUFSCOPE_MATVEC_TC_WARP=0: Q4_K never takes MatVecTcWarpKernel
// (benchmarking switch).
bool TcWarpEnabled() {
  static const bool on = EnvSwitchOn("GGUFSCOPE_MATVEC_TC_WARP");
  return on;
}

// Resident blocks per multiprocessor of a MatVecTcWarpKernel variant with
// `warps` warps (kWarpMinWarps..kWarpMaxWarps) and the largest table; 0
// where none fits, the query fails, or the code that runs here was built
// before sm_90 (its bulk copies compile to nothing there: bulk_copy.cuh).
template <bool kNorm, bool kRope>
int WarpResident(int warps) {
  static const std::array<int, kWarpMaxWarps + 1> n = [] {
    std::array<int, kWarpMaxWarps + 1> r{};
    cudaFuncAttributes attr{};
    if (cudaFuncGetAttributes(&attr, MatVecTcWarpKernel<kNorm, kRope>) != cudaSuccess || attr.binaryVersion < 90) {
      (void)cudaGetLastError();  // not left for the next launch's check
      return r;
    }
    for (int w = kWarpMinWarps; w <= kWarpMaxWarps; ++w) {
      if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&r[w], MatVecTcWarpKernel<kNorm, kRope>, 32 * w,
                                                        WarpSharedBytes(w, kWarpMaxBlocks)) != cudaSuccess) {
        (void)cudaGetLastError();
        r[w] = 0;
      }
    }
    return r;
  }();
  return warps >= kWarpMinWarps && warps <= kWarpMaxWarps ? n[warps] : 0;
}

// The launch of MatVecTcWarpKernel for Q4_K rows of n_blocks super-blocks
// (grid, warps a block), or grid 0 where it does not take them: an odd
// block count or more than kWarpMaxBlocks, groups that one round of two
// blocks a multiprocessor covers with fewer than kWarpMinWarps or more
// than kWarpMaxWarps warps a block, no two resident blocks, or a warp's
// stages past an int.
template <bool kNorm, bool kRope>
std::pair<int64_t, int> WarpLaunch(const Context& ctx, const RowPlan& p, int64_t n_blocks) {
  const int64_t sms = ctx.multiprocessors();
  const int64_t groups = (p.end[2] + 15) / 16;
  if (n_blocks % 2 != 0 || n_blocks > kWarpMaxBlocks) return {0, 0};
  // One round of groups at two blocks a multiprocessor, with 8 or 9 warps a
  // block: the 7B gate/up launch (2368 groups on 132 multiprocessors: 9),
  // where it was timed faster (H200, 2026-11-29: the launch alone 23.6-23.8
  // us against 28.0, decode +6.3%). With 5 warps (the 1.5B gate/up launch,
  // 1120 groups) the launch alone was 2% faster but the decode 4.7% slower;
  // several rounds (Q4_K output matrices) are not timed yet.
  const int64_t warps = (groups + 2 * sms - 1) / (2 * sms);
  if (warps < kWarpMinWarps || warps > kWarpMaxWarps) return {0, 0};
  const int w = static_cast<int>(warps);
  if (WarpResident<kNorm, kRope>(w) < 2) return {0, 0};
  const int64_t grid = 2 * sms;  // groups round-robin over the blocks: every multiprocessor as busy
  const int64_t per_warp = n_blocks / 2 * ((groups + grid * w - 1) / (grid * w));
  if (per_warp > std::numeric_limits<int>::max() || grid > internal::kMaxGridX) return {0, 0};
  return {grid, w};
}


template <bool kNorm, bool kRope>
Status LaunchWarpAs(Context& ctx, const RowPlan& p, int64_t n_blocks, const float* x, bool* taken) {
  const auto [grid, warps] = WarpLaunch<kNorm, kRope>(ctx, p, n_blocks);
  *taken = grid > 0;
  if (grid == 0) return {};
  TmaPair tma{};
  if constexpr (!kRope) {
    if (TmaEnabled() && MakeTmaPair(p, &tma)) {
      GGUFSCOPE_CUDA_TRY(internal::LaunchDependent(ctx, MatVecTcWarpKernel<kNorm, false, true>,
                                                   static_cast<unsigned>(grid), 32 * warps,
                                                   WarpSharedBytes(warps, n_blocks), p, n_blocks, x, tma));
      GGUFSCOPE_CHECK_LAUNCH("MatVecTcWarpKernel");
      return {};
    }
  }
  GGUFSCOPE_CUDA_TRY(internal::LaunchDependent(ctx, MatVecTcWarpKernel<kNorm, kRope>, static_cast<unsigned>(grid),
                                               32 * warps, WarpSharedBytes(warps, n_blocks), p, n_blocks, x, tma));
  GGUFSCOPE_CHECK_LAUNCH("MatVecTcWarpKernel");
  return {};
}

Status LaunchWarpQ4K(Context& ctx, const RowPlan& p, int64_t n_blocks, const float* x, bool* taken) {
  const bool norm = p.norm_w != nullptr, rope = PlanRotates(p);
  return rope ? (norm ? LaunchWarpAs<true, true>(ctx, p, n_blocks, x, taken)
                      : LaunchWarpAs<false, true>(ctx, p, n_blocks, x, taken))
              : (norm ? LaunchWarpAs<true, false>(ctx, p, n_blocks, x, taken)
                      : LaunchWarpAs<false, false>(ctx, p, n_blocks, x, taken));
}

// GGUFSCOPE_MATVEC_Q6K_SPAN=0: Q6_K products of short rows keep the stages'
// cp.async windows (kSpan; benchmarking switch).
bool Q6KSpanEnabled() {
  static const bool on = EnvSwitchOn("GGUFSCOPE_MATVEC_Q6K_SPAN");
  return on;
}

// GGUFSCOPE_MATVEC_Q6K_SPAN_MIN_ROWS=n: the fewest rows that take kSpan
// (benchmarking switch; default kSpanMinRows).
int64_t Q6KSpanMinRows() {
  static const int64_t n = EnvSwitchInt("GGUFSCOPE_MATVEC_Q6K_SPAN_MIN_ROWS", kSpanMinRows, 0, INT64_MAX);
  return n;
}

// kSpan's launches: one matrix of whole 16-row blocks, rows of at most
// kSpanMaxStages super-blocks and at least Q6KSpanMinRows() rows (the Q6_K
// output heads; a 7B layer's Q6_K attn_v, 32 blocks, stays on the SIMT
// kernel), no RoPE fold.
bool TakesSpan(const RowPlan& p, int64_t n_stages) {
  return Q6KSpanEnabled() && n_stages <= kSpanMaxStages && !p.pairs && p.end[0] == p.end[2] && p.end[2] % 16 == 0 &&
         p.end[2] >= Q6KSpanMinRows() && !PlanRotates(p);
}
constexpr size_t kSpanSharedBytes = static_cast<size_t>(SpanBytes(int64_t{kSpanMaxStages} * 210)) +
                                    size_t{kTcWarps} * kTcDigitBytes;

template <typename F>
Status LaunchTensorCore(Context& ctx, const RowPlan& p, int64_t n_stages, const float* x) {
  if constexpr (F::kWindow) {  // TcQ6K: one 16-row tile a block
    const int64_t grid = (p.end[2] + 15) / 16;
    if (grid > internal::kMaxGridX) return Status::Error("MatVec: too many rows for one launch");
    if (TakesSpan(p, n_stages)) {
      const auto kernel = p.norm_w != nullptr ? MatVecTensorCoreKernel<F, 1, kTcWarps, true, false, false, false, true>
                                              : MatVecTensorCoreKernel<F, 1, kTcWarps, false, false, false, false, true>;
      GGUFSCOPE_CUDA_TRY(internal::LaunchDependent(
          ctx, kernel, static_cast<unsigned>(grid), 32 * kTcWarps,
          static_cast<size_t>(SpanBytes(p.row_bytes)) + size_t{kTcWarps} * kTcDigitBytes, p, n_stages, x, TmaPair{}));
      GGUFSCOPE_CHECK_LAUNCH("MatVecTensorCoreKernel");
      return {};
    }
    // One block of 8 warps per multiprocessor or fewer: 4 stages in
    // flight per warp (TcQ6KDeep: on 1536 x 8960, 96 blocks of 35 stages,
    // 13.1 -> 11.6 us; more stages in flight everywhere lost a resident
    // block on the larger shapes: docs/PERFORMANCE.md).
    if (TcMaxWarps() == 8 && n_stages > int64_t{kTcWarps} * F::kDepth) {
      const int deep = TcResident<TcQ6KDeep, 1, 2 * kTcWarps>(/*at_least_one=*/false);
      if (deep > 0 && grid <= int64_t{deep} * ctx.multiprocessors()) {
        return LaunchTc<TcQ6KDeep, 1, 2 * kTcWarps>(ctx, grid, p, n_stages, x);
      }
      if (grid <= int64_t{TcResident<F, 1, 2 * kTcWarps>()} * ctx.multiprocessors()) {
        return LaunchTc<F, 1, 2 * kTcWarps>(ctx, grid, p, n_stages, x);
      }
    }
    return LaunchTc<F, 1, kTcWarps>(ctx, grid, p, n_stages, x);
  } else {
    // Q8_0: 16 rows a block on every shape. Its 2-tile kernel (3 resident
    // blocks against 5) was slower a byte on every shape, and the one Q8_0
    // launch the wave rule below gave two tiles, the output head, lost
    // (H200, 2026-11-28: 152064 x 3584 alone 169.2 us with two tiles, 150.7
    // us with one; decode with one tile everywhere, GGUFSCOPE_MATVEC_TC_TILES=1,
    // 7B Q8_0 382.8 against 375.1 and 379.9, 1.5B Q8_0 878.8 against 865.8
    // and 862.7 tokens/s), so it is not built.
    if constexpr (F::kSubSums) {
      // Q4_K products of many groups: a warp per group (TcWarp).
      if (TcWarpEnabled() && TcForcedTiles() == 0) {
        bool taken = false;
        Status st = LaunchWarpQ4K(ctx, p, n_stages, x, &taken);
        if (taken || !st.ok()) return st;
      }
      // Q4_K: one, two or three row tiles per block (more: B and the digit
      // split serve 32 or 48 rows), whichever fills its waves of resident
      // blocks better (a last wave a quarter full leaves most of the device
      // idle for a quarter of the time).
      const auto resident = [&](int tiles) {
        return tiles == 1 ? TcResident<F, 1, kTcWarps>()
                          : tiles == 2 ? TcResident<F, 2, kTcWarps>() : TcResident<F, 3, kTcWarps>();
      };
      const auto waves = [&](int tiles) {
        return static_cast<double>((p.end[2] + 16 * tiles - 1) / (16 * tiles)) /
               (resident(tiles) * static_cast<double>(ctx.multiprocessors()));
      };
      const auto fill = [&](int tiles) { return waves(tiles) / std::ceil(waves(tiles)); };
      // Three tiles: 48 rows share each stage's x split, a sixth fewer
      // instructions a row than two tiles at the same 3 resident blocks (157
      // registers against 140). Taken where they make the launch one wave
      // and fewer tiles would not: the blocks are then half again as long,
      // so a second wave leaves a longer tail, which the next launch waits
      // out (H100, 2026-11-28: the 1.5B gate/up launch, 374 blocks of 48 rows
      // in one wave, decode 935.7 -> 948.7-962.4 tokens/s; the 7B one, 790
      // blocks in two waves, 451.8 -> 441.9-443.3, though 18944 x 3584
      // alone, 395 blocks, ran 17.84 -> 16.60 us).
      if (TcForcedTiles() == 3 ||
          (TcForcedTiles() == 0 && Tc3Tiles() && waves(1) > 1.0 && waves(2) > 1.0 && waves(3) <= 1.0)) {
        const int64_t grid3 = (p.end[2] + 47) / 48;
        if (grid3 > internal::kMaxGridX) return Status::Error("MatVec: too many rows for one launch");
        return LaunchTc<F, 3, kTcWarps>(ctx, grid3, p, n_stages, x);
      }
      // Under one wave of 16-row blocks: the more blocks the better.
      if (TcForcedTiles() != 0 ? TcForcedTiles() == 2 : waves(1) > 1.0 && fill(2) >= fill(1)) {
        const int64_t grid2 = (p.end[2] + 31) / 32;
        if (grid2 > internal::kMaxGridX) return Status::Error("MatVec: too many rows for one launch");
        return LaunchTc<F, 2, kTcWarps>(ctx, grid2, p, n_stages, x);
      }
    }
    const int64_t grid = (p.end[2] + 15) / 16;
    if (grid > internal::kMaxGridX) return Status::Error("MatVec: too many rows for one launch");
    // One wave of 8-warp blocks, and more stages per row than 4 warps keep in
    // flight at once: 8 warps, so more of a row is requested up front.
    if (TcMaxWarps() == 8 && grid <= int64_t{TcResident<F, 1, 2 * kTcWarps>()} * ctx.multiprocessors() &&
        n_stages > int64_t{kTcWarps} * F::kDepth) {
      return LaunchTc<F, 1, 2 * kTcWarps>(ctx, grid, p, n_stages, x);
    }
    return LaunchTc<F, 1, kTcWarps>(ctx, grid, p, n_stages, x);
  }
}

template <typename F, int kTiles, int kWarps>
cudaError_t PrepareTc() {
  const int bytes = static_cast<int>(TcSharedBytes<F, kTiles, kWarps>());
  cudaError_t err = cudaSuccess;
  for (const auto kernel :
       {MatVecTensorCoreKernel<F, kTiles, kWarps, false>, MatVecTensorCoreKernel<F, kTiles, kWarps, true>,
        MatVecTensorCoreKernel<F, kTiles, kWarps, false, true>, MatVecTensorCoreKernel<F, kTiles, kWarps, true, true>}) {
    if (err == cudaSuccess) err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  }
  if constexpr (kTiles == 1 && F::kScaleLanes == 32) {  // the table-fed forms (LaunchTc)
    if (err == cudaSuccess) {
      err = cudaFuncSetAttribute(MatVecTensorCoreKernel<F, 1, kWarps, false, false, true>,
                                 cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 static_cast<int>(TcTableSharedBytes<F, kWarps>()));
    }
    if constexpr (std::is_same_v<F, TcQ4K> && kWarps == 2 * kTcWarps) {
      if (err == cudaSuccess) {
        err = cudaFuncSetAttribute(MatVecTensorCoreKernel<TcQ4KW, 1, kWarps, false, false, true>,
                                   cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   static_cast<int>(TcTableSharedBytes<TcQ4KW, kWarps>()));
      }
      if (err == cudaSuccess) {
        err = cudaFuncSetAttribute(MatVecTensorCoreKernel<TcQ4KW, 1, kWarps, false, false, true, true>,
                                   cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   static_cast<int>(TcTableSharedBytes<TcQ4KW, kWarps>()));
      }
    }
  }
  return err;
}

template <typename F>
cudaError_t PrepareTensorCore() {
  cudaError_t err = PrepareTc<F, 1, kTcWarps>();
  if constexpr (F::kWindow) {  // kSpan (LaunchTensorCore)
    for (const auto kernel : {MatVecTensorCoreKernel<F, 1, kTcWarps, false, false, false, false, true>,
                              MatVecTensorCoreKernel<F, 1, kTcWarps, true, false, false, false, true>}) {
      if (err == cudaSuccess) {
        err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   static_cast<int>(kSpanSharedBytes));
      }
    }
  }
  if constexpr (F::kSubSums) {  // 2 and 3 tiles, TcWarp: Q4_K only (LaunchTensorCore)
    if (err == cudaSuccess) err = PrepareTc<F, 2, kTcWarps>();
    if (err == cudaSuccess) err = PrepareTc<F, 3, kTcWarps>();
    const int bytes = static_cast<int>(WarpSharedBytes(kWarpMaxWarps, kWarpMaxBlocks));
    for (const auto kernel : {MatVecTcWarpKernel<false, false>, MatVecTcWarpKernel<true, false>,
                              MatVecTcWarpKernel<false, true>, MatVecTcWarpKernel<true, true>,
                              MatVecTcWarpKernel<false, false, true>, MatVecTcWarpKernel<true, false, true>}) {
      if (err == cudaSuccess) err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
    }
  }
  return err == cudaSuccess ? PrepareTc<F, 1, 2 * kTcWarps>() : err;
}

template <template <int> class K>
FastKernel KQuantKernel(bool two, bool staged, bool norm) {
  if (norm) return MatVecKQuantKernel<K<1>, 1, true, true>;  // LaunchFast checked: staged, one row
  if (staged) return two ? MatVecKQuantKernel<K<2>, 2, true> : MatVecKQuantKernel<K<1>, 1, true>;
  return two ? MatVecKQuantKernel<K<2>, 2, false> : MatVecKQuantKernel<K<1>, 1, false>;
}
template <Small S>
FastKernel SmallKernel(bool two) {
  return two ? MatVecSmallBlockKernel<S, 2> : MatVecSmallBlockKernel<S, 1>;
}
template <GgmlType T>
FastKernel PlainKernel(bool two) {
  return two ? MatVecPlainFastKernel<T, 2> : MatVecPlainFastKernel<T, 1>;
}

// Whether a SIMT launch of `kind` (a SIMT kind) folds a NormFold in: the
// K-quant kernels that stage x (rows under kStageColsBelow columns) with
// one row per warp group (MatVecKQuantKernel's kNorm). LaunchFast checks a
// plan's norm against it; Folds predicts it (the same PlanShape).
bool SimtFolds(FastKind kind, int64_t n_cols, bool two_rows) {
  const bool k_quant = kind == FastKind::kQ4K || kind == FastKind::kQ5K || kind == FastKind::kQ6K;
  return k_quant && n_cols < kStageColsBelow && !two_rows;
}

// Whether a tensor-core kind keeps the tensor cores for this shape. A
// block of 16 rows walks its row with 4 warps, so few rows leave the
// device part idle, and short rows leave each warp a short pipeline whose
// fill and digit pass the SIMT kernels do not pay. Crossovers measured on
// the H100 (docs/PERFORMANCE.md, 2026-11-27, with the 8-warp launch), the
// same for both: the tensor cores win from one block of 16 rows per
// multiprocessor up (Q4_K 3584 x 3584: 6.3-6.5 against 8.2 us; Q8_0 7.9
// against 12.3) and on rows of 8192 columns or more (1536 x 8960, 96
// blocks: Q4_K 7.3 against 8.3 us, Q8_0 9.8 against 10.6); below both
// they tie or lose (1536 x 1536, 512 x 3584: within 0.1 us for Q4_K, 0.6-0.9
// us slower for Q8_0). Q6_K (TcQ6K) from one block per multiprocessor up,
// whatever the row length: since its copies became whole sectors and lines
// (2026-11-27, H100) it is ahead on every such shape against its SIMT
// kernel (3584 x 18944 28.3 against 30.8 us, 18944 x 3584 29.6 against
// 31.0, 152064 x 3584 185.1 against ~220; 7B Q4_K_M decode with the down
// projections on it 417 -> 424 tokens/s). Rows of an odd block count have
// no SIMT kernel (the generic one: 1536 x 8960, 22.7 us), so they always
// take it.
bool KeepTensorCore(FastKind kind, int64_t n_rows, int64_t n_cols, int multiprocessors) {
  if (kind != FastKind::kQ8_0Tc && kind != FastKind::kQ4KTc && kind != FastKind::kQ6KTc) return false;
  const int64_t blocks = (n_rows + 15) / 16;
  if (kind == FastKind::kQ6KTc) return Q6KOddBlocks(n_cols) || blocks >= multiprocessors;
  return blocks >= multiprocessors || n_cols >= 8192;
}

// Launches the fast kernel of `kind` over the plan's rows (x 16-byte aligned).
Status LaunchFast(Context& ctx, FastKind kind, const RowPlan& p, int64_t n_cols, int64_t n_blocks, const float* x) {
  if (KeepTensorCore(kind, p.end[2], n_cols, ctx.multiprocessors())) {
    if (kind == FastKind::kQ8_0Tc) return LaunchTensorCore<TcQ8>(ctx, p, n_blocks / kQ8TcBlocks, x);
    if (kind == FastKind::kQ6KTc) return LaunchTensorCore<TcQ6K>(ctx, p, n_blocks, x);
    return LaunchTensorCore<TcQ4K>(ctx, p, n_blocks, x);
  }
  if (PlanRotates(p)) return Status::Error("MatVec: internal: a rotated part on a kernel without the rotation");
  kind = SimtKind(kind, n_cols);
  const bool k_quant = kind == FastKind::kQ4K || kind == FastKind::kQ5K || kind == FastKind::kQ6K;
  const FastShape s = PlanShape(p.end[2], n_cols, p.pairs, k_quant ? 4 : 8, ctx.multiprocessors());
  const bool two = s.rows == 2;
  const bool staged = n_cols < kStageColsBelow;
  const bool norm = p.norm_w != nullptr;
  if (norm && !SimtFolds(kind, n_cols, two)) {
    return Status::Error("MatVec: internal: a folded norm on a kernel without one");
  }
  FastKernel kernel = nullptr;
  switch (kind) {
    case FastKind::kQ4K: kernel = KQuantKernel<KQ4>(two, staged, norm); break;
    case FastKind::kQ5K: kernel = KQuantKernel<KQ5>(two, staged, norm); break;
    case FastKind::kQ6K: kernel = KQuantKernel<KQ6>(two, staged, norm); break;
    case FastKind::kQ8_0: kernel = SmallKernel<Small::kQ8_0>(two); break;
    case FastKind::kQ8_0Tc:
    case FastKind::kQ4KTc:
    case FastKind::kQ6KTc:
    case FastKind::kNone: return Status::Error("MatVec: internal: no fast kernel");
    case FastKind::kQ4_0: kernel = SmallKernel<Small::kQ4_0>(two); break;
    case FastKind::kQ5_0: kernel = SmallKernel<Small::kQ5_0>(two); break;
    case FastKind::kQ4_1: kernel = SmallKernel<Small::kQ4_1>(two); break;
    case FastKind::kQ5_1: kernel = SmallKernel<Small::kQ5_1>(two); break;
    case FastKind::kF32: kernel = PlainKernel<GgmlType::kF32>(two); break;
    case FastKind::kF16: kernel = PlainKernel<GgmlType::kF16>(two); break;
    case FastKind::kBF16: kernel = PlainKernel<GgmlType::kBF16>(two); break;
  }
  // Staged K quants hold x in dynamic shared memory (under the 48 KB a launch
  // gets without an opt-in); plain rows count their row in columns, not blocks.
  const size_t shared = k_quant && staged ? static_cast<size_t>(n_cols) * sizeof(float) : 0;
  const unsigned grid = s.grid;
  const bool plain = kind == FastKind::kF32 || kind == FastKind::kF16 || kind == FastKind::kBF16;
  GGUFSCOPE_CUDA_TRY(internal::LaunchDependent(ctx, kernel, grid, kFastThreads, shared, p, plain ? n_cols : n_blocks,
                                               x, s.split));
  GGUFSCOPE_CHECK_LAUNCH("MatVec fast kernel");
  return {};
}

RowPlan SinglePlan(const uint8_t* w, int64_t n_rows, int64_t row_bytes, float* y) {
  RowPlan p{};
  p.w[0] = p.w[1] = p.w[2] = w;
  p.y[0] = p.y[1] = p.y[2] = y;
  p.end[0] = p.end[1] = p.end[2] = n_rows;
  p.row_bytes = row_bytes;
  return p;
}

// Calls f(TypeTag) for the types with a direct kernel.
template <typename F>
Status VisitDirectType(GgmlType t, F&& f, Status otherwise) {
  using internal::TypeTag;
  switch (t) {
    case GgmlType::kQ4_0:
      return f(TypeTag<GgmlType::kQ4_0>{});
    case GgmlType::kQ4_1:
      return f(TypeTag<GgmlType::kQ4_1>{});
    case GgmlType::kQ5_0:
      return f(TypeTag<GgmlType::kQ5_0>{});
    case GgmlType::kQ5_1:
      return f(TypeTag<GgmlType::kQ5_1>{});
    case GgmlType::kQ8_0:
      return f(TypeTag<GgmlType::kQ8_0>{});
    case GgmlType::kQ2_K:
      return f(TypeTag<GgmlType::kQ2_K>{});
    case GgmlType::kQ3_K:
      return f(TypeTag<GgmlType::kQ3_K>{});
    case GgmlType::kQ4_K:
      return f(TypeTag<GgmlType::kQ4_K>{});
    case GgmlType::kQ5_K:
      return f(TypeTag<GgmlType::kQ5_K>{});
    case GgmlType::kQ6_K:
      return f(TypeTag<GgmlType::kQ6_K>{});
    case GgmlType::kIQ4_NL:
      return f(TypeTag<GgmlType::kIQ4_NL>{});
    case GgmlType::kIQ4_XS:
      return f(TypeTag<GgmlType::kIQ4_XS>{});
    default:
      return otherwise;
  }
}

Status MatVecDequantCublas(Context& ctx, GgmlType type, const gguf::TypeTraits& t, const uint8_t* w,
                           int64_t n_rows, int64_t n_cols, const float* x, float* y) {
  if (n_cols > INT32_MAX) return Status::Error("MatVec: n_cols exceeds cuBLAS's int range");
  const int64_t row_floats_bytes = n_cols * static_cast<int64_t>(sizeof(float));
  const int64_t chunk_rows = std::min<int64_t>(
      std::min<int64_t>(n_rows, INT32_MAX),
      std::max<int64_t>(1, static_cast<int64_t>(kFallbackScratchBytes) / row_floats_bytes));
  void* scratch = nullptr;
  GGUFSCOPE_RETURN_IF_ERROR(
      ctx.Workspace(static_cast<size_t>(chunk_rows * row_floats_bytes), &scratch));
  const int64_t row_bytes = n_cols / t.block_size * t.type_size;
  const float alpha = 1.0f, beta = 0.0f;
  for (int64_t r0 = 0; r0 < n_rows; r0 += chunk_rows) {
    const int64_t rows = std::min(chunk_rows, n_rows - r0);
    float* a = static_cast<float*>(scratch);
    GGUFSCOPE_RETURN_IF_ERROR(Dequantize(ctx, type, w + r0 * row_bytes, rows * n_cols, a));
    // Row-major W (rows, n_cols) is column-major A (n_cols, rows): y = A^T x.
    GGUFSCOPE_CUBLAS_TRY(cublasSgemv(internal::CublasOf(ctx), CUBLAS_OP_T, static_cast<int>(n_cols),
                                     static_cast<int>(rows), &alpha, a, static_cast<int>(n_cols), x,
                                     1, &beta, y + r0, 1));
  }
  return {};
}

}  // namespace

namespace internal {

cudaError_t PrepareKernels() {
  cudaError_t err = PrepareTensorCore<TcQ8>();
  if (err == cudaSuccess) err = PrepareTensorCore<TcQ4K>();
  if (err == cudaSuccess) err = PrepareTensorCore<TcQ6K>();
  // TcQ6KDeep's 129 KB of shared memory a block (150 KB table-fed) is more
  // than some cards allow (99 KB on sm_86/sm_89): there it is not prepared, and
  // LaunchTensorCore finds no resident block for it and does not take it.
  int device = 0, optin = 0;
  if (err == cudaSuccess) err = cudaGetDevice(&device);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  if (err == cudaSuccess && std::max(TcSharedBytes<TcQ6KDeep, 1, 2 * kTcWarps>(),
                                     TcTableSharedBytes<TcQ6KDeep, 2 * kTcWarps>()) <= static_cast<size_t>(optin)) {
    err = PrepareTc<TcQ6KDeep, 1, 2 * kTcWarps>();
  }
  return err;
}

}  // namespace internal

bool MatVecHasDirect(GgmlType type) {
  if (type == GgmlType::kF32 || type == GgmlType::kF16 || type == GgmlType::kBF16) return true;
  return VisitDirectType(
             type, [](auto) -> Status { return {}; }, Status::Error(""))
      .ok();
}

Status MatVec(Context& ctx, GgmlType type, const void* w, int64_t n_rows, int64_t n_cols,
              const float* x, float* y, MatVecPath path) {
  constexpr const char* kOp = "MatVec";
  gguf::TypeTraits t;
  GGUFSCOPE_RETURN_IF_ERROR(internal::ActiveTraits(kOp, type, &t));
  int64_t n_w = 0;
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckedProduct(kOp, n_rows, n_cols, &n_w));
  if (n_cols % t.block_size != 0) {
    return Status::Error(std::string(kOp) + ": n_cols " + std::to_string(n_cols) +
                         " is not a multiple of the " + std::string(t.name) + " block size " +
                         std::to_string(t.block_size));
  }
  uint64_t w_bytes = 0;
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckQuantData(kOp, "w", t, w, n_w, &w_bytes));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "x", x, n_cols, 16));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "y", y, n_rows));
  const bool direct = MatVecHasDirect(type);
  if (path == MatVecPath::kDirect && !direct) {
    return Status::Error(std::string(kOp) + ": no direct kernel for " + std::string(t.name));
  }
  if (n_rows == 0) return {};
  GGUFSCOPE_RETURN_IF_ERROR(internal::Enter(ctx));
  const cudaStream_t stream = internal::StreamOf(ctx);
  const auto* wb = static_cast<const uint8_t*>(w);
  if (n_cols == 0) {  // empty dot products
    GGUFSCOPE_CUDA_TRY(cudaMemsetAsync(y, 0, static_cast<size_t>(n_rows) * sizeof(float), stream));
    return {};
  }
  if (path == MatVecPath::kDequantCublas || !direct) {
    return MatVecDequantCublas(ctx, type, t, wb, n_rows, n_cols, x, y);
  }
  const int64_t n_blocks = n_cols / t.block_size;
  if (path == MatVecPath::kIntegerTensorCore) {
    const RowPlan plan = SinglePlan(wb, n_rows, n_blocks * t.type_size, y);
    if (type == GgmlType::kQ8_0 && n_blocks % kQ8TcBlocks == 0 && internal::IsAligned(wb, 16)) {
      return LaunchTensorCore<TcQ8>(ctx, plan, n_blocks / kQ8TcBlocks, x);
    }
    if (type == GgmlType::kQ4_K && internal::IsAligned(wb, 16)) return LaunchTensorCore<TcQ4K>(ctx, plan, n_blocks, x);
    if (type == GgmlType::kQ6_K && TcQ6KTakes(internal::IsAligned(wb, 16), n_blocks * t.type_size)) {
      return LaunchTensorCore<TcQ6K>(ctx, plan, n_blocks, x);
    }
    return Status::Error("MatVec: the integer tensor-core path takes Q8_0 rows of a multiple of " +
                         std::to_string(kQ8TcBlocks * 32) + " columns and Q4_K and Q6_K rows, 16-byte aligned");
  }
  if ((n_rows + kWarpsPerBlock - 1) / kWarpsPerBlock > internal::kMaxGridX) {
    return Status::Error("MatVec: too many rows for one launch");
  }
  FastKind kind = FastKindOf(type, &wb, 1, n_cols, n_blocks, n_blocks * t.type_size);
  if (path == MatVecPath::kDirect) kind = SimtKind(kind, n_cols);
  if (kind != FastKind::kNone) {
    return LaunchFast(ctx, kind, SinglePlan(wb, n_rows, n_blocks * t.type_size, y), n_cols, n_blocks, x);
  }
  const unsigned plain_grid = static_cast<unsigned>((n_rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
  switch (type) {  // plain rows the fast kernel cannot take (unaligned, odd widths)
    case GgmlType::kF32:
      MatVecPlainKernel<GgmlType::kF32><<<plain_grid, kThreads, 0, stream>>>(wb, n_rows, n_cols, x, y);
      break;
    case GgmlType::kF16:
      MatVecPlainKernel<GgmlType::kF16><<<plain_grid, kThreads, 0, stream>>>(wb, n_rows, n_cols, x, y);
      break;
    case GgmlType::kBF16:
      MatVecPlainKernel<GgmlType::kBF16><<<plain_grid, kThreads, 0, stream>>>(wb, n_rows, n_cols, x, y);
      break;
    default:
      break;
  }
  if (t.block_size == 1) {
    GGUFSCOPE_CHECK_LAUNCH("MatVecPlainKernel");
    return {};
  }
  const unsigned grid = static_cast<unsigned>((n_rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
  const int64_t row_bytes = n_cols / t.block_size * t.type_size;
  const auto launch = [&](auto tag) -> Status {
    constexpr GgmlType T = decltype(tag)::value;
    MatVecBlocksKernel<T><<<grid, kThreads, 0, stream>>>(wb, n_rows, row_bytes, n_cols / 32, x,
                                                         internal::GridsOf(ctx), y);
    GGUFSCOPE_CHECK_LAUNCH("MatVecBlocksKernel");
    return {};
  };
  return VisitDirectType(type, launch, Status::Error("MatVec: internal: no direct kernel"));
}

// ---------------------------------------------------------------- fused decode products

namespace {

// The checks MatVec makes, for one matrix of a fused launch.
Status CheckMatrix(const char* op, const char* what, const gguf::TypeTraits& t, const void* w, int64_t n_rows,
                   int64_t n_cols) {
  int64_t n_w = 0;
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckedProduct(op, n_rows, n_cols, &n_w));
  uint64_t bytes = 0;
  return internal::CheckQuantData(op, what, t, w, n_w, &bytes);
}

Status CheckWidth(const char* op, const gguf::TypeTraits& t, int64_t n_cols, const float* x) {
  if (n_cols % t.block_size != 0) {
    return Status::Error(std::string(op) + ": n_cols " + std::to_string(n_cols) + " is not a multiple of the " +
                         std::string(t.name) + " block size " + std::to_string(t.block_size));
  }
  return internal::CheckArray(op, "x", x, n_cols, 16);
}

// A NormFold's arrays (the norm's weights are read as float4 beside x).
Status CheckNorm(const char* op, const NormFold* norm, int64_t n_cols, const float* x) {
  if (norm == nullptr) return {};
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(op, "norm weights", norm->w, n_cols, 16));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(op, "normed", norm->normed, n_cols, 16));
  // The unfused path writes `normed` and then reads x's products from it: x
  // itself (the residual stream) must survive.
  const auto at = [](const float* p) { return reinterpret_cast<uintptr_t>(p); };
  const uintptr_t bytes = static_cast<uintptr_t>(n_cols) * sizeof(float);
  if (n_cols > 0 && at(norm->normed) < at(x) + bytes && at(x) < at(norm->normed) + bytes) {
    return Status::Error(std::string(op) + ": the norm's scratch overlaps x");
  }
  return {};
}

// Whether a launch of `kind` over `rows` virtual rows (`pairs`: gate/up)
// folds the norm in: the tensor-core kernels do, and the K-quant SIMT
// kernels that stage x with one row per warp group (MatVecKQuantKernel's
// kNorm; LaunchFast makes the same choice of kernel); otherwise RmsNorm
// runs into norm->normed first and *x points there. (All staged K-quant
// variants folded it for a while: that took the 2-row ones from 64 to 72
// registers, a resident block fewer, and the Q6_K output matrix 219 -> 239
// us: more than the RmsNorm launches it saved. docs/PERFORMANCE.md.)
bool Folds(const Context& ctx, FastKind kind, int64_t rows, bool pairs, int64_t n_cols) {
  if (KeepTensorCore(kind, rows, n_cols, ctx.multiprocessors())) return true;
  // GGUFSCOPE_FOLD_SIMT=0: only the tensor-core kernels fold (benchmarking switch).
  static const bool simt_fold = EnvSwitchOn("GGUFSCOPE_FOLD_SIMT");
  if (!simt_fold) return false;
  const FastKind simt = SimtKind(kind, n_cols);
  return SimtFolds(simt, n_cols, PlanShape(rows, n_cols, pairs, 4, ctx.multiprocessors()).rows == 2);
}

Status FoldOrNorm(Context& ctx, const NormFold* norm, FastKind kind, int64_t rows, int64_t n_cols, const float** x,
                  RowPlan* p) {
  if (norm == nullptr) return {};
  if (Folds(ctx, kind, rows, p->pairs, n_cols)) {
    p->norm_w = norm->w;
    p->norm_eps = norm->eps;
    return {};
  }
  GGUFSCOPE_RETURN_IF_ERROR(RmsNorm(ctx, *x, norm->w, 1, n_cols, norm->eps, norm->normed));
  *x = norm->normed;
  return {};
}

// A RopeFold's arguments against the parts it applies to (ops.h).
Status CheckRope(const char* op, const RopeFold& r, const MatVecPart* parts, int n_parts) {
  const auto err = [op](const std::string& what) { return Status::Error(std::string(op) + ": RopeFold: " + what); };
  if (r.head_dim <= 0 || r.head_dim % 2 != 0) {
    return err("head_dim " + std::to_string(r.head_dim) + " must be even and > 0");
  }
  if (r.n_rot <= 0 || r.n_rot > r.head_dim || r.n_rot % 2 != 0) {
    return err("n_rot " + std::to_string(r.n_rot) + " must be even and in (0, head_dim]");
  }
  if (!(r.base > 0.0f)) return err("base must be > 0");
  if (r.n_cache_rows < 0) return err("n_cache_rows must be >= 0");
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(op, "positions", r.positions, 1));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(op, "store_rows", r.store_rows, 1));
  if (r.cos_sin != nullptr) GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(op, "cos_sin", r.cos_sin, r.n_rot));
  int n_k = 0, n_v = 0;
  for (int i = 0; i < n_parts; ++i) {
    const PartRole role = r.role[i];
    if (role != PartRole::kPlain && role != PartRole::kRotate && role != PartRole::kRotateStore &&
        role != PartRole::kStore) {
      return err("part " + std::to_string(i) + " has no valid role");
    }
    if (parts[i].n_rows % r.head_dim != 0) {
      return err("part " + std::to_string(i) + "'s " + std::to_string(parts[i].n_rows) +
                 " rows are not whole heads of " + std::to_string(r.head_dim));
    }
    if (role == PartRole::kPlain || role == PartRole::kRotate) continue;
    const bool k = role == PartRole::kRotateStore;
    if (++(k ? n_k : n_v) > 1) {
      return err(std::string("more than one part stores into the ") + (k ? "k" : "v") + " cache");
    }
    int64_t n = 0;
    GGUFSCOPE_RETURN_IF_ERROR(internal::CheckedProduct(op, r.n_cache_rows, parts[i].n_rows, &n));
    GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(op, k ? "k_cache" : "v_cache", k ? r.k_cache : r.v_cache, n));
  }
  return {};
}

// The fast kernel a MatVecParts launch over these n_w matrices (n_rows
// rows in all) takes; kNone also where they make no valid launch.
FastKind PartsKind(GgmlType type, int64_t n_cols, const void* const* w, int n_w, int64_t n_rows) {
  gguf::TypeTraits t;
  if (!internal::ActiveTraits("MatVecParts", type, &t).ok() || n_w < 1 || n_w > 3 || n_cols <= 0 || n_rows <= 0 ||
      n_rows > internal::kMaxGridX || n_cols % t.block_size != 0) {
    return FastKind::kNone;
  }
  const uint8_t* wb[3] = {};
  for (int i = 0; i < n_w; ++i) wb[i] = static_cast<const uint8_t*>(w[i]);
  const int64_t n_blocks = n_cols / t.block_size;
  return FastKindOf(type, wb, n_w, n_cols, n_blocks, n_blocks * t.type_size);
}

}  // namespace

bool MatVecFoldsNorm(const Context& ctx, GgmlType type, int64_t n_cols, const void* const* w, int n_w,
                     int64_t n_rows) {
  const FastKind kind = PartsKind(type, n_cols, w, n_w, n_rows);
  return kind != FastKind::kNone && Folds(ctx, kind, n_rows, false, n_cols);
}

bool MatVecFoldsRope(const Context& ctx, GgmlType type, int64_t n_cols, const void* const* w, int n_w,
                     int64_t n_rows, bool rotates) {
  const FastKind kind = PartsKind(type, n_cols, w, n_w, n_rows);
  if (kind == FastKind::kNone) return false;
  return !rotates || KeepTensorCore(kind, n_rows, n_cols, ctx.multiprocessors());
}

Status MatVecParts(Context& ctx, GgmlType type, int64_t n_cols, const float* x, const MatVecPart* parts,
                   int n_parts, const NormFold* norm, const RopeFold* rope) {
  constexpr const char* kOp = "MatVecParts";
  gguf::TypeTraits t;
  GGUFSCOPE_RETURN_IF_ERROR(internal::ActiveTraits(kOp, type, &t));
  if (n_parts < 1 || n_parts > 3 || parts == nullptr) return Status::Error("MatVecParts: 1 to 3 parts");
  GGUFSCOPE_RETURN_IF_ERROR(CheckWidth(kOp, t, n_cols, x));
  GGUFSCOPE_RETURN_IF_ERROR(CheckNorm(kOp, norm, n_cols, x));
  if (rope != nullptr) GGUFSCOPE_RETURN_IF_ERROR(CheckRope(kOp, *rope, parts, n_parts));
  const uint8_t* w[3] = {};
  int64_t total = 0;
  for (int i = 0; i < n_parts; ++i) {
    const MatVecPart& pt = parts[i];
    GGUFSCOPE_RETURN_IF_ERROR(CheckMatrix(kOp, "w", t, pt.w, pt.n_rows, n_cols));
    GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "y", pt.y, pt.n_rows));
    if (pt.bias != nullptr) GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "bias", pt.bias, pt.n_rows));
    w[i] = static_cast<const uint8_t*>(pt.w);
    total += pt.n_rows;
  }
  const int64_t n_blocks = n_cols / t.block_size;
  const FastKind kind = n_cols == 0 || total == 0 || total > internal::kMaxGridX
                            ? FastKind::kNone
                            : FastKindOf(type, w, n_parts, n_cols, n_blocks, n_blocks * t.type_size);
  RowPlan p{};
  if (rope != nullptr) {
    bool rotates = false;
    for (int i = 0; i < n_parts; ++i) {
      rotates = rotates || rope->role[i] == PartRole::kRotate || rope->role[i] == PartRole::kRotateStore;
    }
    // Refused before anything runs (MatVecFoldsRope says which launches
    // fold); parts without rows have nothing to rotate or store.
    if (total > 0 &&
        (kind == FastKind::kNone || (rotates && !KeepTensorCore(kind, total, n_cols, ctx.multiprocessors())))) {
      return Status::Error(std::string("MatVecParts: this launch cannot fold the RopeFold (") +
                           (kind == FastKind::kNone ? "no fast kernel" : "a rotated part needs the tensor cores") +
                           "; see MatVecFoldsRope)");
    }
    for (int i = 0; i < 3; ++i) {
      const PartRole role = i < n_parts ? rope->role[i] : PartRole::kPlain;
      p.role[i] = static_cast<uint8_t>(role);
      p.cache[i] = role == PartRole::kRotateStore ? rope->k_cache : role == PartRole::kStore ? rope->v_cache : nullptr;
    }
    p.positions = rope->positions;
    p.store_rows = rope->store_rows;
    p.n_cache_rows = rope->n_cache_rows;
    p.head_dim = rope->head_dim;
    p.n_rot = rope->n_rot;
    p.rope_base = rope->base;
    p.neox = rope->mode == RopeMode::kNeox;
    p.cos_sin = rope->cos_sin;
  }
  GGUFSCOPE_RETURN_IF_ERROR(FoldOrNorm(ctx, norm, kind, total, n_cols, &x, &p));
  if (kind == FastKind::kNone) {  // one MatVec (and Add) per part: the same values
    for (int i = 0; i < n_parts; ++i) {
      const MatVecPart& pt = parts[i];
      GGUFSCOPE_RETURN_IF_ERROR(MatVec(ctx, type, pt.w, pt.n_rows, n_cols, x, pt.y));
      if (pt.bias != nullptr) GGUFSCOPE_RETURN_IF_ERROR(Add(ctx, pt.y, pt.bias, 1, pt.n_rows, 1, pt.y));
    }
    return {};
  }
  p.row_bytes = n_blocks * t.type_size;
  int64_t end = 0;
  for (int i = 0; i < 3; ++i) {
    const MatVecPart& pt = parts[i < n_parts ? i : n_parts - 1];
    if (i < n_parts) end += pt.n_rows;
    p.w[i] = static_cast<const uint8_t*>(pt.w);
    p.y[i] = pt.y;
    p.bias[i] = pt.bias;
    p.end[i] = end;
  }
  GGUFSCOPE_RETURN_IF_ERROR(internal::Enter(ctx));
  return LaunchFast(ctx, kind, p, n_cols, n_blocks, x);
}

Status MatVecResidual(Context& ctx, GgmlType type, const void* w, int64_t n_rows, int64_t n_cols, const float* x,
                      const float* residual, float* pre, float* y) {
  constexpr const char* kOp = "MatVecResidual";
  gguf::TypeTraits t;
  GGUFSCOPE_RETURN_IF_ERROR(internal::ActiveTraits(kOp, type, &t));
  GGUFSCOPE_RETURN_IF_ERROR(CheckWidth(kOp, t, n_cols, x));
  GGUFSCOPE_RETURN_IF_ERROR(CheckMatrix(kOp, "w", t, w, n_rows, n_cols));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "residual", residual, n_rows));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "pre", pre, n_rows));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "y", y, n_rows));
  const auto* wb = static_cast<const uint8_t*>(w);
  const int64_t n_blocks = n_cols / t.block_size;
  const FastKind kind = n_cols == 0 || n_rows == 0 || n_rows > internal::kMaxGridX
                            ? FastKind::kNone
                            : FastKindOf(type, &wb, 1, n_cols, n_blocks, n_blocks * t.type_size);
  if (kind == FastKind::kNone) {
    GGUFSCOPE_RETURN_IF_ERROR(MatVec(ctx, type, w, n_rows, n_cols, x, pre));
    return Add(ctx, residual, pre, 1, n_rows, 1, y);
  }
  RowPlan p = SinglePlan(wb, n_rows, n_blocks * t.type_size, y);
  p.residual = residual;
  p.pre = pre;
  GGUFSCOPE_RETURN_IF_ERROR(internal::Enter(ctx));
  return LaunchFast(ctx, kind, p, n_cols, n_blocks, x);
}

Status MatVecGlu(Context& ctx, GgmlType type, const void* w_gate, const void* w_up, int64_t n_rows, int64_t n_cols,
                 const float* x, GluKind kind, float* gate, float* up, float* out, const NormFold* norm) {
  constexpr const char* kOp = "MatVecGlu";
  gguf::TypeTraits t;
  GGUFSCOPE_RETURN_IF_ERROR(internal::ActiveTraits(kOp, type, &t));
  GGUFSCOPE_RETURN_IF_ERROR(CheckWidth(kOp, t, n_cols, x));
  GGUFSCOPE_RETURN_IF_ERROR(CheckNorm(kOp, norm, n_cols, x));
  GGUFSCOPE_RETURN_IF_ERROR(CheckMatrix(kOp, "w_gate", t, w_gate, n_rows, n_cols));
  GGUFSCOPE_RETURN_IF_ERROR(CheckMatrix(kOp, "w_up", t, w_up, n_rows, n_cols));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "gate", gate, n_rows));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "up", up, n_rows));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "out", out, n_rows));
  if (n_rows > 0 && (out == gate || out == up)) return Status::Error("MatVecGlu: out must not be gate or up");
  const uint8_t* w[2] = {static_cast<const uint8_t*>(w_gate), static_cast<const uint8_t*>(w_up)};
  const int64_t n_blocks = n_cols / t.block_size;
  const FastKind fast = n_cols == 0 || n_rows == 0 || n_rows > internal::kMaxGridX / 2
                            ? FastKind::kNone
                            : FastKindOf(type, w, 2, n_cols, n_blocks, n_blocks * t.type_size);
  RowPlan p = SinglePlan(w[0], 2 * n_rows, n_blocks * t.type_size, out);
  p.pairs = true;  // before FoldOrNorm: pairs take two rows per warp group
  GGUFSCOPE_RETURN_IF_ERROR(FoldOrNorm(ctx, norm, fast, 2 * n_rows, n_cols, &x, &p));
  if (fast == FastKind::kNone) {
    GGUFSCOPE_RETURN_IF_ERROR(MatVec(ctx, type, w_gate, n_rows, n_cols, x, gate));
    GGUFSCOPE_RETURN_IF_ERROR(MatVec(ctx, type, w_up, n_rows, n_cols, x, up));
    return Glu(ctx, kind, gate, up, n_rows, out);
  }
  p.w[1] = w[1];
  p.pre = gate;
  p.pre2 = up;
  p.glu = kind == GluKind::kSwiglu ? 0 : 1;
  GGUFSCOPE_RETURN_IF_ERROR(internal::Enter(ctx));
  return LaunchFast(ctx, fast, p, n_cols, n_blocks, x);
}

}  // namespace ggufscope::cuda
