// Prefill matrix products through cublasGemmEx: the weights are dequantized
// (to f32 or f16) into the context's workspace a chunk of rows at a time,
// then multiplied by all tokens' activations at once.
#include <cuda_fp16.h>

#include <algorithm>

#include "cuda_runtime/op_common.cuh"
#include "cuda_runtime/ops.h"

namespace ggufscope::cuda {
namespace {

using gguf::GgmlType;

// Bytes of dequantized weights per chunk (one row more if a row alone is
// larger): a 4096 x 14336 f16 matrix (117 MB) is one chunk.
constexpr size_t kWeightScratchBytes = size_t{256} << 20;
constexpr size_t kScratchAlign = 256;

__global__ void F32ToF16Kernel(const float* x, int64_t n, __half* y) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    y[i] = __float2half_rn(x[i]);
  }
}

size_t AlignUp(size_t v) { return (v + kScratchAlign - 1) / kScratchAlign * kScratchAlign; }

}  // namespace

Status Gemm(Context& ctx, GgmlType type, const void* w, int64_t n_rows, int64_t n_cols,
            const float* x, int64_t n_tokens, float* y, GemmMath math) {
  constexpr const char* kOp = "Gemm";
  gguf::TypeTraits t;
  GGUFSCOPE_RETURN_IF_ERROR(internal::ActiveTraits(kOp, type, &t));
  int64_t n_w = 0, n_x = 0, n_y = 0;
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckedProduct(kOp, n_rows, n_cols, &n_w));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckedProduct(kOp, n_tokens, n_cols, &n_x));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckedProduct(kOp, n_tokens, n_rows, &n_y));
  if (n_cols % t.block_size != 0) {
    return Status::Error(std::string(kOp) + ": n_cols " + std::to_string(n_cols) +
                         " is not a multiple of the " + std::string(t.name) + " block size " +
                         std::to_string(t.block_size));
  }
  uint64_t w_bytes = 0;
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckQuantData(kOp, "w", t, w, n_w, &w_bytes));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "x", x, n_x));
  GGUFSCOPE_RETURN_IF_ERROR(internal::CheckArray(kOp, "y", y, n_y));
  if (n_cols > INT32_MAX || n_rows > INT32_MAX || n_tokens > INT32_MAX) {
    return Status::Error("Gemm: a dimension exceeds cuBLAS's int range");
  }
  if (n_y == 0) return {};
  GGUFSCOPE_RETURN_IF_ERROR(internal::Enter(ctx));
  const cudaStream_t stream = internal::StreamOf(ctx);
  if (n_cols == 0) {
    GGUFSCOPE_CUDA_TRY(cudaMemsetAsync(y, 0, static_cast<size_t>(n_y) * sizeof(float), stream));
    return {};
  }

  const bool half = math == GemmMath::kF16;
  const size_t elem = half ? 2 : 4;
  // Weights already in the GEMM's input type are used in place.
  const bool in_place = half ? type == GgmlType::kF16 : type == GgmlType::kF32;
  const size_t x_bytes = half ? AlignUp(static_cast<size_t>(n_x) * 2) : 0;
  const int64_t row_elems_bytes = n_cols * static_cast<int64_t>(elem);
  const int64_t chunk_rows =
      in_place ? n_rows
               : std::min<int64_t>(
                     n_rows, std::max<int64_t>(
                                 1, static_cast<int64_t>(kWeightScratchBytes) / row_elems_bytes));
  const size_t w_scratch = in_place ? 0 : static_cast<size_t>(chunk_rows * row_elems_bytes);
  void* scratch = nullptr;
  if (x_bytes + w_scratch > 0) {
    GGUFSCOPE_RETURN_IF_ERROR(ctx.Workspace(x_bytes + w_scratch, &scratch));
  }
  auto* scratch_bytes = static_cast<uint8_t*>(scratch);

  // B = activations: row-major (n_tokens, n_cols) is column-major (n_cols, n_tokens).
  const void* b = x;
  if (half) {
    auto* x16 = reinterpret_cast<__half*>(scratch_bytes);
    F32ToF16Kernel<<<internal::GridStrideBlocks(n_x, 256), 256, 0, stream>>>(x, n_x, x16);
    GGUFSCOPE_CHECK_LAUNCH("F32ToF16Kernel");
    b = x16;
  }
  const cudaDataType_t ab_type = half ? CUDA_R_16F : CUDA_R_32F;
  const cublasComputeType_t compute =
      math == GemmMath::kTf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  const float alpha = 1.0f, beta = 0.0f;
  const int64_t row_bytes = n_cols / t.block_size * t.type_size;
  const auto* wb = static_cast<const uint8_t*>(w);
  for (int64_t r0 = 0; r0 < n_rows; r0 += chunk_rows) {
    const int64_t rows = std::min(chunk_rows, n_rows - r0);
    const void* a = wb + r0 * row_bytes;
    if (!in_place) {
      void* dst = scratch_bytes + x_bytes;
      if (half) {
        GGUFSCOPE_RETURN_IF_ERROR(
            DequantizeToF16(ctx, type, a, rows * n_cols, static_cast<uint16_t*>(dst)));
      } else {
        GGUFSCOPE_RETURN_IF_ERROR(
            Dequantize(ctx, type, a, rows * n_cols, static_cast<float*>(dst)));
      }
      a = dst;
    }
    // Row-major W chunk (rows, n_cols) is column-major A (n_cols, rows), so
    // Y^T (rows, n_tokens), column-major with ld n_rows = row-major Y's
    // columns r0.., is A^T B.
    GGUFSCOPE_CUBLAS_TRY(
        cublasGemmEx(internal::CublasOf(ctx), CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(rows),
                     static_cast<int>(n_tokens), static_cast<int>(n_cols), &alpha, a, ab_type,
                     static_cast<int>(n_cols), b, ab_type, static_cast<int>(n_cols), &beta, y + r0,
                     CUDA_R_32F, static_cast<int>(n_rows), compute, CUBLAS_GEMM_DEFAULT));
  }
  return {};
}

}  // namespace ggufscope::cuda
