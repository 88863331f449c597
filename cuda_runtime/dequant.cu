// Dequantization (to f32 and f16) and the embedding gather. One thread
// decodes one 32-element unit (quant_decode.cuh) and writes it whole.
#include <cuda_fp16.h>

#include "cuda_runtime/op_common.cuh"
#include "cuda_runtime/ops.h"
#include "cuda_runtime/type_dispatch.cuh"

namespace ggufscope::cuda {
namespace {

using internal::IqGrids;
using internal::Plain;
using internal::Quant;

constexpr int kThreads = 256;

// Stores 32 values at `out` (out is 32-element aligned within its buffer;
// `vec` says the buffer is 16-byte aligned, so 16-byte stores can be used).
__device__ __forceinline__ void Store32(float* out, const float* v, bool vec) {
  if (vec) {
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      reinterpret_cast<float4*>(out)[i] =
          make_float4(v[4 * i], v[4 * i + 1], v[4 * i + 2], v[4 * i + 3]);
    }
  } else {
#pragma unroll
    for (int i = 0; i < 32; ++i) out[i] = v[i];
  }
}

__device__ __forceinline__ void Store32(uint16_t* out, const float* v, bool vec) {
  uint32_t packed[16];
#pragma unroll
  for (int i = 0; i < 16; ++i) {
    packed[i] = static_cast<uint32_t>(__half_as_ushort(__float2half_rn(v[2 * i]))) |
                (static_cast<uint32_t>(__half_as_ushort(__float2half_rn(v[2 * i + 1]))) << 16);
  }
  if (vec) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      reinterpret_cast<uint4*>(out)[i] =
          make_uint4(packed[4 * i], packed[4 * i + 1], packed[4 * i + 2], packed[4 * i + 3]);
    }
  } else {
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      out[2 * i] = static_cast<uint16_t>(packed[i] & 0xFFFF);
      out[2 * i + 1] = static_cast<uint16_t>(packed[i] >> 16);
    }
  }
}

__device__ __forceinline__ void StoreOne(float* out, float v) { *out = v; }
__device__ __forceinline__ void StoreOne(uint16_t* out, float v) {
  *out = __half_as_ushort(__float2half_rn(v));
}

// dst[32t .. 32t+31] = unit t of the blocks at src, for t < n_units.
template <gguf::GgmlType T, typename Out>
__global__ void DequantBlocksKernel(const uint8_t* src, int64_t n_units, IqGrids grids, bool vec,
                                    Out* dst) {
  using Q = Quant<T>;
  constexpr int kUnits = Q::kBlock / 32;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < n_units;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float v[32];
    Q::Unit(src + (t / kUnits) * Q::kBytes, static_cast<int>(t % kUnits), grids, v);
    Store32(dst + 32 * t, v, vec);
  }
}

template <gguf::GgmlType T, typename Out>
__global__ void DequantPlainKernel(const uint8_t* src, int64_t n, Out* dst) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    StoreOne(dst + i, Plain<T>::Get(src, i));
  }
}

template <typename Out>
Status DequantizeImpl(const char* op, Context& ctx, gguf::GgmlType type, const void* src, int64_t n,
                      Out* dst) {
  gguf::TypeTraits t;
  GGUFSCOPE_RETURN_IF_ERROR(internal::ActiveTraits(op, type, &t));
  uint64_t bytes = 0;
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckQuantData(op, "src", t, src, n, &bytes));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(op, "dst", dst, n, sizeof(Out)));
  if (n == 0) return {};
  GGUFSCOPE_RETURN_IF_ERROR(internal::Enter(ctx));
  const cudaStream_t stream = internal::StreamOf(ctx);
  const auto* s = static_cast<const uint8_t*>(src);
  const bool vec = internal::IsAligned(dst, 16);
  const auto blocks = [&](auto tag) -> Status {
    constexpr gguf::GgmlType T = decltype(tag)::value;
    const int64_t n_units = n / 32;
    DequantBlocksKernel<T, Out>
        <<<internal::GridStrideBlocks(n_units, kThreads), kThreads, 0, stream>>>(
            s, n_units, internal::GridsOf(ctx), vec, dst);
    GGUFSCOPE_CHECK_LAUNCH("DequantBlocksKernel");
    return {};
  };
  const auto plain = [&](auto tag) -> Status {
    constexpr gguf::GgmlType T = decltype(tag)::value;
    DequantPlainKernel<T, Out>
        <<<internal::GridStrideBlocks(n, kThreads), kThreads, 0, stream>>>(s, n, dst);
    GGUFSCOPE_CHECK_LAUNCH("DequantPlainKernel");
    return {};
  };
  const Status none = Status::Error(std::string(op) + ": no decoder for " + std::string(t.name));
  if (t.block_size == 1) return internal::VisitPlainType(type, plain, none);
  return internal::VisitBlockType(type, blocks, none);
}

// Row r of out = row ids[r] of the table (NaN when the id is out of range).
// One CUDA block per output row; threads stride over the row's units.
template <gguf::GgmlType T>
__global__ void GetRowsBlocksKernel(const uint8_t* table, int64_t n_rows, int64_t row_bytes,
                                    int64_t units_per_row, const int32_t* ids, IqGrids grids,
                                    bool vec, float* out) {
  using Q = Quant<T>;
  constexpr int kUnits = Q::kBlock / 32;
  const int64_t r = blockIdx.x;
  const int64_t id = ids[r];
  float* o = out + r * units_per_row * 32;
  if (id < 0 || id >= n_rows) {
    for (int64_t c = threadIdx.x; c < units_per_row * 32; c += blockDim.x)
      o[c] = __int_as_float(0x7FC00000);
    return;
  }
  const uint8_t* row = table + id * row_bytes;
  for (int64_t t = threadIdx.x; t < units_per_row; t += blockDim.x) {
    float v[32];
    Q::Unit(row + (t / kUnits) * Q::kBytes, static_cast<int>(t % kUnits), grids, v);
    Store32(o + 32 * t, v, vec);
  }
}

template <gguf::GgmlType T>
__global__ void GetRowsPlainKernel(const uint8_t* table, int64_t n_rows, int64_t n_cols,
                                   const int32_t* ids, float* out) {
  const int64_t r = blockIdx.x;
  const int64_t id = ids[r];
  float* o = out + r * n_cols;
  if (id < 0 || id >= n_rows) {
    for (int64_t c = threadIdx.x; c < n_cols; c += blockDim.x) o[c] = __int_as_float(0x7FC00000);
    return;
  }
  const uint8_t* row = table + id * n_cols * Plain<T>::kBytes;
  for (int64_t c = threadIdx.x; c < n_cols; c += blockDim.x) o[c] = Plain<T>::Get(row, c);
}

}  // namespace

bool CanDequantize(gguf::GgmlType type) {
  const auto traits = gguf::LookupType(static_cast<uint32_t>(type));
  if (!traits || traits->status != gguf::TypeStatus::kActive) return false;
  const auto yes = [](auto) { return true; };
  return traits->block_size == 1 ? internal::VisitPlainType(type, yes, false)
                                 : internal::VisitBlockType(type, yes, false);
}

Status Dequantize(Context& ctx, gguf::GgmlType type, const void* src, int64_t n_elements,
                  float* dst) {
  return DequantizeImpl("Dequantize", ctx, type, src, n_elements, dst);
}

Status DequantizeToF16(Context& ctx, gguf::GgmlType type, const void* src, int64_t n_elements,
                       uint16_t* dst) {
  return DequantizeImpl("DequantizeToF16", ctx, type, src, n_elements, dst);
}

Status GetRows(Context& ctx, gguf::GgmlType type, const void* table, int64_t n_rows, int64_t n_cols,
               const int32_t* ids, int64_t n_ids, float* out) {
  constexpr const char* kOp = "GetRows";
  gguf::TypeTraits t;
  GGUFSCOPE_RETURN_IF_ERROR(internal::ActiveTraits(kOp, type, &t));
  int64_t n_table = 0, n_out = 0;
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckedProduct(kOp, n_rows, n_cols, &n_table));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckedProduct(kOp, n_ids, n_cols, &n_out));
  uint64_t table_bytes = 0;
  if (n_cols % t.block_size != 0) {
    return Status::Error(std::string(kOp) + ": n_cols " + std::to_string(n_cols) +
                         " is not a multiple of the " + std::string(t.name) + " block size " +
                         std::to_string(t.block_size));
  }
  GGUFSCOPE_RETURN_IF_ERROR(
      internal::CheckQuantData(kOp, "table", t, table, n_table, &table_bytes));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "ids", ids, n_ids));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "out", out, n_out));
  if (n_out == 0) return {};
  if (n_ids > internal::kMaxGridX) return Status::Error("GetRows: too many ids for one launch");
  GGUFSCOPE_RETURN_IF_ERROR(internal::Enter(ctx));
  const cudaStream_t stream = internal::StreamOf(ctx);
  const auto* tab = static_cast<const uint8_t*>(table);
  const int64_t row_bytes = n_cols / t.block_size * t.type_size;
  // 16-byte stores need every output row 16-byte aligned: n_cols is a
  // multiple of 32 for block types, so only `out` itself matters.
  const bool vec = internal::IsAligned(out, 16);
  const int threads = static_cast<int>(n_cols / 32 >= 128 ? 128 : 32);
  const auto blocks = [&](auto tag) -> Status {
    constexpr gguf::GgmlType T = decltype(tag)::value;
    GetRowsBlocksKernel<T><<<static_cast<unsigned>(n_ids), threads, 0, stream>>>(
        tab, n_rows, row_bytes, n_cols / 32, ids, internal::GridsOf(ctx), vec, out);
    GGUFSCOPE_CHECK_LAUNCH("GetRowsBlocksKernel");
    return {};
  };
  const auto plain = [&](auto tag) -> Status {
    constexpr gguf::GgmlType T = decltype(tag)::value;
    GetRowsPlainKernel<T>
        <<<static_cast<unsigned>(n_ids), 128, 0, stream>>>(tab, n_rows, n_cols, ids, out);
    GGUFSCOPE_CHECK_LAUNCH("GetRowsPlainKernel");
    return {};
  };
  const Status none = Status::Error(std::string(kOp) + ": no decoder for " + std::string(t.name));
  if (t.block_size == 1) return internal::VisitPlainType(type, plain, none);
  return internal::VisitBlockType(type, blocks, none);
}

}  // namespace ggufscope::cuda
