// Internal to cuda_runtime's .cu files: argument checks and launch sizes
// shared by the ops.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "cuda_runtime/check.cuh"
#include "cuda_runtime/iq_grids.cuh"
#include "gguf/types.h"

namespace ggufscope::cuda::internal {

inline std::string TypeLabel(gguf::GgmlType type) {
  const auto traits = gguf::LookupType(static_cast<uint32_t>(type));
  return traits ? std::string(traits->name) : "type " + std::to_string(static_cast<uint32_t>(type));
}

// The traits of an active type, or an error naming the op.
inline Status ActiveTraits(const char* op, gguf::GgmlType type, gguf::TypeTraits* out) {
  const auto traits = gguf::LookupType(static_cast<uint32_t>(type));
  if (!traits || traits->status != gguf::TypeStatus::kActive) {
    return Status::Error(std::string(op) + ": " + TypeLabel(type) + " is not an active ggml type");
  }
  *out = *traits;
  return {};
}

// The alignment the decoders need for data of this type: plain types their
// element size; block types 2 bytes when a block is an even number of bytes
// (16-bit loads), else 1.
inline size_t DataAlignment(const gguf::TypeTraits& t) {
  if (t.block_size == 1) return t.type_size;
  return t.type_size % 2 == 0 ? 2 : 1;
}

inline bool IsAligned(const void* p, size_t alignment) {
  return reinterpret_cast<uintptr_t>(p) % alignment == 0;
}

// Checks `n` elements of `type` at `p`: whole blocks, no overflow in bytes,
// p non-null and aligned when n > 0. *bytes = the bytes they take.
inline Status CheckQuantData(const char* op, const char* what, const gguf::TypeTraits& t,
                             const void* p, int64_t n, uint64_t* bytes) {
  if (n < 0) return Status::Error(std::string(op) + ": negative " + what + " element count");
  if (n % t.block_size != 0) {
    return Status::Error(std::string(op) + ": " + what + " holds " + std::to_string(n) +
                         " elements, not a multiple of the " + std::string(t.name) +
                         " block size " + std::to_string(t.block_size));
  }
  const uint64_t blocks = static_cast<uint64_t>(n) / t.block_size;
  if (blocks > (uint64_t{1} << 62) / t.type_size) {
    return Status::Error(std::string(op) + ": " + what + " is too large");
  }
  *bytes = blocks * t.type_size;
  if (n == 0) return {};
  if (p == nullptr) return Status::Error(std::string(op) + ": " + what + " is null");
  if (!IsAligned(p, DataAlignment(t))) {
    return Status::Error(std::string(op) + ": " + what + " (" + std::string(t.name) + ") must be " +
                         std::to_string(DataAlignment(t)) + "-byte aligned");
  }
  return {};
}

inline Status CheckArray(const char* op, const char* what, const void* p, int64_t n,
                         size_t alignment = 4) {
  if (n < 0) return Status::Error(std::string(op) + ": negative size of " + what);
  if (n == 0) return {};
  if (p == nullptr) return Status::Error(std::string(op) + ": " + what + " is null");
  if (!IsAligned(p, alignment)) {
    return Status::Error(std::string(op) + ": " + what + " must be " + std::to_string(alignment) +
                         "-byte aligned");
  }
  return {};
}

// n_rows * n_cols without overflow (both >= 0).
inline Status CheckedProduct(const char* op, int64_t a, int64_t b, int64_t* out) {
  if (a < 0 || b < 0) return Status::Error(std::string(op) + ": negative dimension");
  if (a != 0 && b > INT64_MAX / a) return Status::Error(std::string(op) + ": shape overflows");
  *out = a * b;
  return {};
}

inline Status Enter(const Context& ctx) {
  GGUFSCOPE_CUDA_TRY(cudaSetDevice(ctx.device()));
  return {};
}

inline IqGrids GridsOf(const Context& ctx) { return IqGridsAt(ctx.iq_grids()); }

// Blocks for a grid-stride loop over n items: enough to fill any current
// GPU many times over, and always a valid grid.x.
inline unsigned GridStrideBlocks(int64_t n, int threads) {
  const int64_t want = (n + threads - 1) / threads;
  return static_cast<unsigned>(want < 65536 ? (want < 1 ? 1 : want) : 65536);
}

constexpr int64_t kMaxGridX = 2147483647;  // cudaDeviceProp::maxGridSize[0] on sm_30+

}  // namespace ggufscope::cuda::internal
