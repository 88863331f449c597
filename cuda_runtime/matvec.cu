// Decode-time matrix-vector products, y = W x.
//
// Direct path: one warp per row. Lane i decodes units i, i+32, ... of its
// row (32 elements each, quant_decode.cuh) and multiplies them with x; the
// 32 partial sums are added with shuffles. A warp's lanes read consecutive
// units, so one warp pass over a row reads 32 consecutive units' bytes
// (576 bytes for Q4_0, 4 super-blocks for the K quants): every DRAM sector
// fetched is used, and x (n_cols f32, shared by all rows) stays in L1/L2.
// Plain F32/F16/BF16 rows are read 16 bytes per lane per step.
//
// Other types: their rows are dequantized in chunks to the context's
// workspace and multiplied by cublasSgemv.
#include <cuda_fp16.h>

#include <algorithm>
#include <type_traits>

#include "cuda_runtime/op_common.cuh"
#include "cuda_runtime/ops.h"
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

// Plain rows. kVec: rows and x 16-byte aligned and n_cols a multiple of the
// 16-byte element count, so each lane loads 16 bytes at a time.
template <GgmlType T, bool kVec>
__global__ void __launch_bounds__(kThreads)
    MatVecPlainKernel(const uint8_t* w, int64_t n_rows, int64_t n_cols, const float* x, float* y) {
  const int lane = threadIdx.x % 32;
  const int64_t row = blockIdx.x * static_cast<int64_t>(kWarpsPerBlock) + threadIdx.x / 32;
  if (row >= n_rows) return;
  const uint8_t* wr = w + row * n_cols * Plain<T>::kBytes;
  float acc0 = 0.0f, acc1 = 0.0f;
  if constexpr (kVec) {
    constexpr int kCount = Plain16<T>::kCount;
    const uint4* wv = reinterpret_cast<const uint4*>(wr);
    for (int64_t c = lane; c < n_cols / kCount; c += 32) {
      float v[kCount];
      Plain16<T>::Get(__ldg(wv + c), v);
      const float4* xv = reinterpret_cast<const float4*>(x + kCount * c);
#pragma unroll
      for (int i = 0; i < kCount / 4; ++i) {
        const float4 xx = __ldg(xv + i);
        acc0 = fmaf(v[4 * i + 0], xx.x, acc0);
        acc1 = fmaf(v[4 * i + 1], xx.y, acc1);
        acc0 = fmaf(v[4 * i + 2], xx.z, acc0);
        acc1 = fmaf(v[4 * i + 3], xx.w, acc1);
      }
    }
  } else {
    for (int64_t c = lane; c < n_cols; c += 32)
      acc0 = fmaf(Plain<T>::Get(wr, c), __ldg(x + c), acc0);
  }
  const float sum = WarpSum(acc0 + acc1);
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

// y[row] for kRows rows: lane partial sums reduced over the warp.
template <int kRows>
__device__ __forceinline__ void StoreRows(const float* acc, int64_t row0, int64_t n_rows, float* y) {
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const float s = WarpSum(acc[r]);
    if (threadIdx.x % 32 == 0 && row0 + r < n_rows) y[row0 + r] = s;
  }
}

// ---- K quants (256-element super-blocks), x in shared memory.
//
// x is staged a chunk of kChunkSb super-blocks at a time (16 KB), as float4
// slots s (elements 4s..4s+3) stored at Swizzle(s), so that the slots a
// quarter-warp reads with one 16-byte load fall in 8 distinct bank groups.
constexpr int kChunkSb = 16;
constexpr int kChunkSlots = kChunkSb * 64;

// Q4_K (144 B: d, dmin, scales[12], qs[128]) and Q5_K (176 B: the same, then
// qh[32] before qs). Lane l of a warp takes super-block l/8 of the four the
// warp reads per step, and within it t = l%8: j = t/2, h = t%2, the 16 qs
// bytes 32j + 16h .. +16: elements 16h..16h+15 of sub-blocks 2j (low
// nibbles) and 2j+1 (high nibbles), so the 8 lanes read the 128 qs bytes
// with one coalesced 16-byte load each. Their x slots: 16j + 4h + i (low)
// and 16j + 8 + 4h + i (high), i = 0..3: Swizzle XORs bits 0-1 with j.
template <bool kQ5>
struct KQ45 {
  static constexpr int kBytes = kQ5 ? 176 : 144;
  static __device__ __forceinline__ int Swizzle(int s) { return s ^ ((s >> 4) & 3); }
};

// Q6_K (210 B: ql[128], qh[64], scales[16] int8, d): only 2-byte aligned, so
// a step covers four super-blocks of one parity (then, with the row 4-byte
// aligned, all four start 4-byte aligned or all at 2 mod 4: a warp-uniform
// load path). Lane t = l%8: hh = t/4, lq = t%4 takes l = 8lq..8lq+7 of half
// hh: elements 128hh + 32k + l for k = 0..3 (32 elements, four scales).
// x slots 32hh + 8k + 2lq + {0,1}: Swizzle XORs bit 0 with hh.
struct KQ6 {
  static constexpr int kBytes = 210;
  static __device__ __forceinline__ int Swizzle(int s) { return s ^ ((s >> 5) & 1); }
};

// Super-block (within the chunk) that lane `lane` takes at step `step`.
template <typename K>
__device__ __forceinline__ int KStepSb(int step, int lane) {
  if constexpr (std::is_same_v<K, KQ6>) return 8 * (step >> 1) + (step & 1) + 2 * (lane / 8);
  return 4 * step + lane / 8;
}

template <bool kQ5, int kRows>
__device__ __forceinline__ void KQ45Step(const uint8_t* w, int64_t row0, int64_t n_rows,
                                         int64_t row_bytes, int64_t sb, const float4* xs, int sbl,
                                         int lane, float* acc) {
  const int t = lane % 8, j = t / 2, h = t % 2;
  uint4 hd[kRows], qs[kRows], qh[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int64_t row = row0 + r < n_rows ? row0 + r : row0;  // a missing row rereads row0
    const uint8_t* b = w + row * row_bytes + sb * KQ45<kQ5>::kBytes;
    hd[r] = __ldg(reinterpret_cast<const uint4*>(b));
    qs[r] = __ldg(reinterpret_cast<const uint4*>(b + (kQ5 ? 48 : 16) + 32 * j + 16 * h));
    if constexpr (kQ5) qh[r] = __ldg(reinterpret_cast<const uint4*>(b + 16 + 16 * h));
  }
  float4 xl[4], xh[4];
  const int s0 = 64 * sbl + 16 * j + 4 * h;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    xl[i] = xs[KQ45<kQ5>::Swizzle(s0 + i)];
    xh[i] = xs[KQ45<kQ5>::Swizzle(s0 + 8 + i)];
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

template <int kRows>
__device__ __forceinline__ void KQ6Step(const uint8_t* w, int64_t row0, int64_t n_rows,
                                        int64_t row_bytes, int64_t sb, bool aligned,
                                        const float4* xs, int sbl, int lane, float* acc) {
  const int t = lane % 8, hh = t / 4, lq = t % 4;
  uint32_t a0[kRows], a1[kRows], b0[kRows], b1[kRows], h0[kRows], h1[kRows], s0[kRows], s1[kRows];
  float d[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int64_t row = row0 + r < n_rows ? row0 + r : row0;
    const uint8_t* b = w + row * row_bytes + sb * KQ6::kBytes;
    Ld64At2(b + 64 * hh + 8 * lq, aligned, &a0[r], &a1[r]);       // ql, k = 0 and 2
    Ld64At2(b + 64 * hh + 32 + 8 * lq, aligned, &b0[r], &b1[r]);  // ql, k = 1 and 3
    Ld64At2(b + 128 + 32 * hh + 8 * lq, aligned, &h0[r], &h1[r]);
    Ld64At2(b + 192 + 8 * hh, aligned, &s0[r], &s1[r]);  // scales 8hh .. 8hh+7
    d[r] = HalfAt(b + 208);
  }
  float4 x[8];  // x[2k + c]: elements 128hh + 32k + 8lq + 4c .. +3
  const int base = 64 * sbl + 32 * hh + 2 * lq;
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    x[2 * k] = xs[KQ6::Swizzle(base + 8 * k)];
    x[2 * k + 1] = xs[KQ6::Swizzle(base + 8 * k + 1)];
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

// K-quant rows: block b computes rows kFastWarps * kRows * b .. (warp w:
// kRows consecutive rows); all warps walk the columns chunk by chunk.
// Q6_K needs n_sb even and the rows 4-byte aligned (checked by the caller).
template <typename K, int kRows>
__global__ void __launch_bounds__(kFastThreads)
    MatVecKQuantKernel(const uint8_t* __restrict__ w, int64_t n_rows, int64_t n_sb,
                       const float* __restrict__ x, float* __restrict__ y) {
  __shared__ float4 xs[kChunkSlots];
  const int lane = threadIdx.x % 32;
  const int64_t row0 =
      (static_cast<int64_t>(blockIdx.x) * kFastWarps + threadIdx.x / 32) * kRows;
  const int64_t row_bytes = n_sb * K::kBytes;
  const float4* x4 = reinterpret_cast<const float4*>(x);
  float acc[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) acc[r] = 0.0f;
  for (int64_t sb0 = 0; sb0 < n_sb; sb0 += kChunkSb) {
    const int nsb = static_cast<int>(n_sb - sb0 < kChunkSb ? n_sb - sb0 : kChunkSb);
    __syncthreads();  // the previous chunk's readers are done
    for (int s = threadIdx.x; s < 64 * nsb; s += kFastThreads) {
      xs[K::Swizzle(s)] = __ldg(x4 + 64 * sb0 + s);
    }
    __syncthreads();
    if (row0 >= n_rows) continue;  // (still takes part in the barriers)
#pragma unroll 2
    for (int step = 0; step < 4; ++step) {
      const int sbl = KStepSb<K>(step, lane);
      if (sbl >= nsb) continue;
      if constexpr (std::is_same_v<K, KQ6>) {
        // Rows are 4-byte aligned and n_sb is even, so the parity of the
        // super-block decides its alignment for every row.
        KQ6Step<kRows>(w, row0, n_rows, row_bytes, sb0 + sbl, (step & 1) == 0, xs, sbl, lane, acc);
      } else {
        KQ45Step<std::is_same_v<K, KQ45<true>>, kRows>(w, row0, n_rows, row_bytes, sb0 + sbl, xs,
                                                       sbl, lane, acc);
      }
    }
  }
  if (row0 < n_rows) StoreRows<kRows>(acc, row0, n_rows, y);
}

// ---- Q8_0 (34 B: d, qs[32]) and Q4_0 (18 B: d, qs[16]), x from global.
//
// A step covers blocks of one parity: with the row 4-byte aligned and an
// even number of blocks per row, even blocks start 4-byte aligned (qs at 2
// mod 4) and odd ones at 2 mod 4 (qs aligned), for every row. Q8_0: 8 lanes
// per block, lane k takes qs[4k..4k+3], elements 4k..4k+3 (x slot 8b + k:
// a warp's x loads are 512 contiguous bytes); 4 blocks per step. Q4_0: 4
// lanes per block, lane k takes qs[4k..4k+3]: elements 4k.. (low nibbles)
// and 16 + 4k.. (high); 8 blocks per step.
template <bool kQ8>
struct SmallBlock {
  static constexpr int kBytes = kQ8 ? 34 : 18;
  static constexpr int kLanes = kQ8 ? 8 : 4;           // lanes per block
  static constexpr int kPerStep = 32 / kLanes;         // blocks per step (one parity)
};

template <bool kQ8, int kRows>
__global__ void __launch_bounds__(kFastThreads)
    MatVecSmallBlockKernel(const uint8_t* __restrict__ w, int64_t n_rows, int64_t n_blocks,
                           const float* __restrict__ x, float* __restrict__ y) {
  using B = SmallBlock<kQ8>;
  const int lane = threadIdx.x % 32;
  const int64_t row0 =
      (static_cast<int64_t>(blockIdx.x) * kFastWarps + threadIdx.x / 32) * kRows;
  if (row0 >= n_rows) return;
  const int64_t row_bytes = n_blocks * B::kBytes;
  const int m = lane / B::kLanes, k = lane % B::kLanes;
  const float4* x4 = reinterpret_cast<const float4*>(x);
  float acc[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) acc[r] = 0.0f;
  // Blocks 2 * kPerStep * g + 2m + p: parity p, group g.
  for (int64_t g0 = 0; g0 < n_blocks; g0 += 2 * B::kPerStep) {
#pragma unroll
    for (int p = 0; p < 2; ++p) {
      const int64_t b = g0 + 2 * m + p;
      if (b >= n_blocks) continue;
      uint32_t q[kRows];
      float d[kRows];
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        const int64_t row = row0 + r < n_rows ? row0 + r : row0;
        const uint8_t* blk = w + row * row_bytes + b * B::kBytes;
        q[r] = Ld32At2(blk + 2 + 4 * k, p == 1);
        d[r] = HalfAt(blk);
      }
      if constexpr (kQ8) {
        const float4 xv = __ldg(x4 + 8 * b + k);
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          // Signed bytes: flip the sign bits, then byte - 128 = q.
          const float s = Dot4(q[r] ^ 0x80808080u, kTwo23 + 128.0f, xv, 0.0f);
          acc[r] = fmaf(d[r], s, acc[r]);
        }
      } else {
        const float4 xl = __ldg(x4 + 8 * b + k), xh = __ldg(x4 + 8 * b + 4 + k);
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          const float s = Dot4((q[r] >> 4) & 0x0F0F0F0Fu, kTwo23 + 8.0f, xh,
                               Dot4(q[r] & 0x0F0F0F0Fu, kTwo23 + 8.0f, xl, 0.0f));
          acc[r] = fmaf(d[r], s, acc[r]);
        }
      }
    }
  }
  StoreRows<kRows>(acc, row0, n_rows, y);
}

// ---- Plain rows (F32, F16, BF16): 16-byte loads, kUnroll per row in
// flight per lane, kRows rows per warp. Needs rows and x 16-byte aligned and
// n_cols a multiple of the 16-byte element count.
template <GgmlType T, int kRows>
__global__ void __launch_bounds__(kFastThreads)
    MatVecPlainFastKernel(const uint8_t* __restrict__ w, int64_t n_rows, int64_t n_cols,
                          const float* __restrict__ x, float* __restrict__ y) {
  constexpr int kCount = Plain16<T>::kCount;
  constexpr int kUnroll = 4;
  const int lane = threadIdx.x % 32;
  const int64_t row0 =
      (static_cast<int64_t>(blockIdx.x) * kFastWarps + threadIdx.x / 32) * kRows;
  if (row0 >= n_rows) return;
  const int64_t n_vec = n_cols / kCount;
  const float4* x4 = reinterpret_cast<const float4*>(x);
  float acc[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) acc[r] = 0.0f;
  for (int64_t c0 = 0; c0 < n_vec; c0 += 32 * kUnroll) {
    uint4 v[kRows][kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t c = c0 + 32 * u + lane;
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        const int64_t row = row0 + r < n_rows ? row0 + r : row0;
        v[r][u] = c < n_vec ? __ldg(reinterpret_cast<const uint4*>(w + row * n_cols * Plain<T>::kBytes) + c)
                            : make_uint4(0, 0, 0, 0);
      }
    }
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
  StoreRows<kRows>(acc, row0, n_rows, y);
}

// Rows per warp: 2 when there are enough rows to keep every SM busy with
// 16-row blocks (x then serves two rows per read), else 1.
int RowsPerWarp(int64_t n_rows) { return n_rows >= 4096 ? 2 : 1; }

unsigned FastGrid(int64_t n_rows, int rows_per_warp) {
  const int64_t per_block = static_cast<int64_t>(kFastWarps) * rows_per_warp;
  return static_cast<unsigned>((n_rows + per_block - 1) / per_block);
}

template <GgmlType T>
Status LaunchPlain(cudaStream_t stream, const uint8_t* w, int64_t n_rows, int64_t n_cols,
                   const float* x, float* y) {
  constexpr int kCount = 16 / Plain<T>::kBytes;
  const bool vec = n_cols % kCount == 0 && internal::IsAligned(w, 16) && internal::IsAligned(x, 16);
  if (vec) {
    if (RowsPerWarp(n_rows) == 2) {
      MatVecPlainFastKernel<T, 2><<<FastGrid(n_rows, 2), kFastThreads, 0, stream>>>(w, n_rows, n_cols, x, y);
    } else {
      MatVecPlainFastKernel<T, 1><<<FastGrid(n_rows, 1), kFastThreads, 0, stream>>>(w, n_rows, n_cols, x, y);
    }
    GGUFSCOPE_CHECK_LAUNCH("MatVecPlainFastKernel");
    return {};
  }
  const unsigned grid = static_cast<unsigned>((n_rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
  MatVecPlainKernel<T, false><<<grid, kThreads, 0, stream>>>(w, n_rows, n_cols, x, y);
  GGUFSCOPE_CHECK_LAUNCH("MatVecPlainKernel");
  return {};
}

// The fast block kernels, where the type has one and the layout allows it
// (*launched = false otherwise: the generic kernel runs).
Status LaunchFastBlocks(cudaStream_t stream, GgmlType type, const uint8_t* w, int64_t n_rows,
                        int64_t n_blocks, const float* x, float* y, bool* launched) {
  *launched = false;
  const int rows = RowsPerWarp(n_rows);
  const unsigned grid = FastGrid(n_rows, rows);
  const auto k_quant = [&](auto tag) {
    using K = typename decltype(tag)::type;
    if (rows == 2) {
      MatVecKQuantKernel<K, 2><<<grid, kFastThreads, 0, stream>>>(w, n_rows, n_blocks, x, y);
    } else {
      MatVecKQuantKernel<K, 1><<<grid, kFastThreads, 0, stream>>>(w, n_rows, n_blocks, x, y);
    }
  };
  const auto small = [&](auto q8) {
    constexpr bool kQ8 = decltype(q8)::value;
    if (rows == 2) {
      MatVecSmallBlockKernel<kQ8, 2><<<grid, kFastThreads, 0, stream>>>(w, n_rows, n_blocks, x, y);
    } else {
      MatVecSmallBlockKernel<kQ8, 1><<<grid, kFastThreads, 0, stream>>>(w, n_rows, n_blocks, x, y);
    }
  };
  // Q6_K, Q8_0, Q4_0 blocks are 2-byte aligned: their kernels need 4-byte
  // aligned rows and an even block count (so the parity of a block decides
  // its alignment in every row). Q4_K/Q5_K blocks are 16-byte multiples.
  const bool pairs = n_blocks % 2 == 0 && internal::IsAligned(w, 4);
  switch (type) {
    case GgmlType::kQ4_K:
      if (!internal::IsAligned(w, 16)) return {};
      k_quant(TypeBox<KQ45<false>>{});
      break;
    case GgmlType::kQ5_K:
      if (!internal::IsAligned(w, 16)) return {};
      k_quant(TypeBox<KQ45<true>>{});
      break;
    case GgmlType::kQ6_K:
      if (!pairs) return {};
      k_quant(TypeBox<KQ6>{});
      break;
    case GgmlType::kQ8_0:
      if (!pairs) return {};
      small(std::true_type{});
      break;
    case GgmlType::kQ4_0:
      if (!pairs) return {};
      small(std::false_type{});
      break;
    default:
      return {};
  }
  *launched = true;
  GGUFSCOPE_CHECK_LAUNCH("MatVec fast kernel");
  return {};
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
  if ((n_rows + kWarpsPerBlock - 1) / kWarpsPerBlock > internal::kMaxGridX) {
    return Status::Error("MatVec: too many rows for one launch");
  }
  switch (type) {
    case GgmlType::kF32:
      return LaunchPlain<GgmlType::kF32>(stream, wb, n_rows, n_cols, x, y);
    case GgmlType::kF16:
      return LaunchPlain<GgmlType::kF16>(stream, wb, n_rows, n_cols, x, y);
    case GgmlType::kBF16:
      return LaunchPlain<GgmlType::kBF16>(stream, wb, n_rows, n_cols, x, y);
    default:
      break;
  }
  bool launched = false;
  GGUFSCOPE_RETURN_IF_ERROR(
      LaunchFastBlocks(stream, type, wb, n_rows, n_cols / t.block_size, x, y, &launched));
  if (launched) return {};
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

}  // namespace ggufscope::cuda
