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

template <GgmlType T>
Status LaunchPlain(cudaStream_t stream, const uint8_t* w, int64_t n_rows, int64_t n_cols,
                   const float* x, float* y) {
  const unsigned grid = static_cast<unsigned>((n_rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
  constexpr int kCount = 16 / Plain<T>::kBytes;
  const bool vec = n_cols % kCount == 0 && internal::IsAligned(w, 16) && internal::IsAligned(x, 16);
  if (vec) {
    MatVecPlainKernel<T, true><<<grid, kThreads, 0, stream>>>(w, n_rows, n_cols, x, y);
  } else {
    MatVecPlainKernel<T, false><<<grid, kThreads, 0, stream>>>(w, n_rows, n_cols, x, y);
  }
  GGUFSCOPE_CHECK_LAUNCH("MatVecPlainKernel");
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
