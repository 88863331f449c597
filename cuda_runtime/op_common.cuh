// Internal to cuda_runtime's .cu files: argument checks and launch sizes
// shared by the ops.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>

#include "cuda_runtime/check.cuh"
#include "cuda_runtime/iq_grids.cuh"
#include "gguf/types.h"

namespace ggufscope::cuda::internal {

// The gated activations, same formulas as reference_cpu (and ggml), with
// the precise expf/tanhf (Glu and the fused mat-vec epilogue share them).
__device__ __forceinline__ float Silu(float z) { return z / (1.0f + expf(-z)); }
__device__ __forceinline__ float GeluTanh(float z) {
  constexpr float kSqrt2OverPi = 0.79788456080286535587989211986876f;
  return 0.5f * z * (1.0f + tanhf(kSqrt2OverPi * z * (1.0f + 0.044715f * z * z)));
}

// RoPE's rotation of pair i (of n_rot / 2) at `pos`: the angle
// pos * base^(-2i/n_rot) with its sine and cosine in f64 (the angle reaches
// thousands of radians, where an f32 angle would be off by ~1e-4), rounded
// to f32; and the pair's two dimensions, (2i, 2i+1) for NORM, (i, i + half)
// for NEOX. Rope and QkvPost share it so their results stay bit-identical.
__device__ __forceinline__ void RopeCosSin(double pos, float base, int i, int n_rot, float* c, float* s) {
  const double theta = pos * pow(static_cast<double>(base), -2.0 * i / n_rot);
  double sd, cd;
  sincos(theta, &sd, &cd);
  *c = static_cast<float>(cd);
  *s = static_cast<float>(sd);
}
__device__ __forceinline__ void RopePair(bool neox, int i, int half, int* a, int* b) {
  *a = neox ? i : 2 * i;
  *b = neox ? i + half : 2 * i + 1;
}

// ---- Programmatic dependent launch (sm_90+, Context::dependent_launch()).
//
// A kernel launched with LaunchDependent may begin while the kernel before
// it on the stream is still running: its blocks are scheduled once every
// block of that kernel has called AllowNextGrid (or exited), and
// AwaitPriorGrid then blocks until that kernel has finished and its writes
// are visible. So such a kernel must call AwaitPriorGrid, in every thread,
// before it reads or writes anything another op reads or writes; only reads
// of data no op of the step writes (model weights) may come first, which is
// how the mat-vec kernels fetch their first weights while the previous
// kernel finishes. GridEnter calls AllowNextGrid first: the next kernel is
// scheduled as soon as every block of this one has started, so behind a
// kernel of one wave the next few (attention, the q/k/v and attn_output
// products) can each have blocks resident with their first weights in
// flight while it runs. Every kernel still waits for its predecessor,
// which cannot finish before its own predecessor has, so each follows all
// the kernels before it; and a kernel is scheduled only once all of its
// predecessor's blocks are resident, so waiting blocks never hold back a
// kernel that has to finish first. (Allowing after the wait, at most two
// kernels in flight, measured 1.4% slower on the 7B Q4_K_M decode and 2.8%
// on the 1.5B one: docs/PERFORMANCE.md, 2026-11-27.) Without the launch
// attribute (older devices, GGUFSCOPE_PDL=0, kernels launched with <<<>>>)
// both are no-ops.
__device__ __forceinline__ void AwaitPriorGrid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void AllowNextGrid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
// The usual kernel entry: let the next kernel be scheduled, then wait for
// the previous one.
__device__ __forceinline__ void GridEnter() {
  AllowNextGrid();
  AwaitPriorGrid();
}

// Writes the dependent-launch attribute into *a when the context uses it;
// returns the number of attributes written (0 or 1).
inline unsigned DependentLaunchAttr(const Context& ctx, cudaLaunchAttribute* a) {
  if (!ctx.dependent_launch()) return 0;
  a->id = cudaLaunchAttributeProgrammaticStreamSerialization;
  a->val.programmaticStreamSerializationAllowed = 1;
  return 1;
}

// kernel<<<grid, block, shared, ctx's stream>>>(args...), as a dependent
// launch where the context uses them: the kernel must begin with GridEnter
// (or AwaitPriorGrid before its first access to another op's data).
template <typename... Params, typename... Args>
cudaError_t LaunchDependent(const Context& ctx, void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared,
                            Args&&... args) {
  cudaLaunchAttribute attr[1];
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared;
  config.stream = StreamOf(ctx);
  config.attrs = attr;
  config.numAttrs = DependentLaunchAttr(ctx, attr);
  return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

// Per-device kernel settings that must be made before a graph capture (the
// current device's; Context::Create calls both): the tensor-core mat-vec
// kernels' opt-in to more than 48 KB of dynamic shared memory (matvec.cu),
// and the attention kernels' preference for the largest shared-memory
// carveout (attention.cu).
cudaError_t PrepareKernels();
cudaError_t PrepareAttention();

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

// The argument checks of an attention op (Attention, FaultyAttention): one
// grid of (n_tokens, n_head) blocks over q (n_tokens, n_head, head_dim) and
// caches (n_cache_rows, n_head_kv, head_dim). Sets the strides; *n_q == 0
// means nothing to do.
inline Status CheckAttentionArgs(const char* op, const float* q, const float* k_cache, const float* v_cache,
                                 int64_t n_cache_rows, const int32_t* positions, int64_t n_tokens, int n_head,
                                 int n_head_kv, int head_dim, int max_head_dim, float scale, int window,
                                 const float* out, int64_t* q_stride, int64_t* kv_stride, int64_t* n_q) {
  const std::string o(op);
  if (n_head <= 0 || n_head_kv <= 0 || n_head % n_head_kv != 0) {
    return Status::Error(o + ": n_head " + std::to_string(n_head) + " must be a positive multiple of n_head_kv " +
                         std::to_string(n_head_kv));
  }
  if (head_dim <= 0 || head_dim > max_head_dim) {
    return Status::Error(o + ": head_dim " + std::to_string(head_dim) + " outside 1.." +
                         std::to_string(max_head_dim));
  }
  if (window < 0) return Status::Error(o + ": negative window");
  if (!std::isfinite(scale)) return Status::Error(o + ": scale must be finite");
  int64_t n_kv = 0;
  GGUFSCOPE_RETURN_IF_ERROR(CheckedProduct(op, n_head, head_dim, q_stride));
  GGUFSCOPE_RETURN_IF_ERROR(CheckedProduct(op, n_head_kv, head_dim, kv_stride));
  GGUFSCOPE_RETURN_IF_ERROR(CheckedProduct(op, n_tokens, *q_stride, n_q));
  GGUFSCOPE_RETURN_IF_ERROR(CheckedProduct(op, n_cache_rows, *kv_stride, &n_kv));
  GGUFSCOPE_RETURN_IF_ERROR(CheckArray(op, "q", q, *n_q));
  GGUFSCOPE_RETURN_IF_ERROR(CheckArray(op, "out", out, *n_q));
  GGUFSCOPE_RETURN_IF_ERROR(CheckArray(op, "k_cache", k_cache, n_kv));
  GGUFSCOPE_RETURN_IF_ERROR(CheckArray(op, "v_cache", v_cache, n_kv));
  GGUFSCOPE_RETURN_IF_ERROR(CheckArray(op, "positions", positions, n_tokens));
  if (*n_q == 0) return {};
  if (n_cache_rows == 0) return Status::Error(o + ": empty KV cache");
  if (n_tokens > kMaxGridX || n_head > 65535) return Status::Error(o + ": too many queries or heads for one launch");
  return {};
}

}  // namespace ggufscope::cuda::internal
