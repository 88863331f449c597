// The CUDA ops of the forward pass. Each one has a CPU twin (gguf::Dequantize
// or reference_cpu/) and a test against it in tests/unit/cuda_ops_test.cc.
//
// Conventions, for every op:
//  - The first argument is the Context; work is queued on its stream, in
//    call order, and nothing synchronizes (call ctx.Synchronize() or a
//    blocking copy to wait). Errors come back as a Status; an error inside a
//    kernel surfaces at the next synchronizing call.
//  - Pointers are device pointers. Matrices are row-major, with the shape in
//    the comment as (rows, columns). Output buffers may not overlap inputs
//    unless the op says so.
//  - Quantized data is GGUF's own block layout, read in place: a row of
//    `n_cols` elements of `type` is n_cols / block_size blocks, and rows
//    follow each other without padding (as in a GGUF tensor). Block data must
//    be 2-byte aligned when the type's block size in bytes is even, plain
//    types aligned to their element size; f32 activations 16-byte aligned
//    (cudaMalloc'ed buffers and GGUF's 32-byte tensor alignment give both).
//  - Where the device has dependent launch (sm_90+, Context::dependent_launch),
//    the mat-vec, RmsNorm* and QkvPost kernels read their weights (matrices,
//    norm weights) before the kernel queued just before them has finished:
//    weights must not be the output of the op queued right before (model
//    weights, uploaded once, never are). Every other input is read after.
//
// Host-facing: no CUDA types, C++17. In a build without CUDA every op
// returns "built without CUDA".
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cuda_runtime/device.h"
#include "cuda_runtime/status.h"
#include "gguf/types.h"

namespace ggufscope::cuda {

// ---------------------------------------------------------------- dequantization

// True for every type gguf::Dequantize handles (every active ggml type).
bool CanDequantize(gguf::GgmlType type);

// dst[i] = the f32 value of element i of `src`, bit-identical to
// gguf::Dequantize (same f32 operations in the same order, no FMA
// contraction). n_elements must be whole blocks.
//   src: (n_elements / block_size) blocks;  dst: (n_elements) f32
Status Dequantize(Context& ctx, gguf::GgmlType type, const void* src, int64_t n_elements,
                  float* dst);

// The same values rounded to f16 (round to nearest even), for the f16 GEMM.
//   dst: (n_elements) IEEE half bit patterns
Status DequantizeToF16(Context& ctx, gguf::GgmlType type, const void* src, int64_t n_elements,
                       uint16_t* dst);

// Embedding lookup: out row t = row ids[t] of `table`, dequantized exactly as
// Dequantize would. An id outside [0, n_rows) yields a row of NaN (the ids
// live on the device, so the op cannot report them; NaN cannot go unnoticed).
//   table: (n_rows, n_cols) of type;  ids: (n_ids) int32;  out: (n_ids, n_cols) f32
Status GetRows(Context& ctx, gguf::GgmlType type, const void* table, int64_t n_rows, int64_t n_cols,
               const int32_t* ids, int64_t n_ids, float* out);

// ---------------------------------------------------------------- matrix products

enum class MatVecPath {
  kAuto,           // kDirect where the type has one, else kDequantCublas
  kDirect,         // a kernel that reads the GGUF blocks (MatVecHasDirect types only)
  kDequantCublas,  // dequantize row chunks to f32 scratch, then cublasSgemv
  // Q8_0 (rows of a multiple of 256 columns) and Q4_K on the integer tensor
  // cores, 16-byte aligned rows: x split into a power-of-two scale and three
  // 8-bit digits per 32 elements (act_digits.h), exact int32 sums joined in
  // f32. kAuto takes them where the shape suits them (matvec.cu,
  // KeepTensorCore; GGUFSCOPE_MATVEC_TC=0: never), kDirect never. Other
  // shapes and types are an error.
  kIntegerTensorCore,
};

// Types with a direct mat-vec kernel: Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K
// Q4_K Q5_K Q6_K IQ4_NL IQ4_XS F16 BF16 F32.
bool MatVecHasDirect(gguf::GgmlType type);

// Decode: y[r] = dot(row r of W, x), f32 accumulation, x in f32. Any
// dequantizable type; n_cols whole blocks.
//   w: (n_rows, n_cols) of type;  x: (n_cols) f32;  y: (n_rows) f32
Status MatVec(Context& ctx, gguf::GgmlType type, const void* w, int64_t n_rows, int64_t n_cols,
              const float* x, float* y, MatVecPath path = MatVecPath::kAuto);

enum class GemmMath {
  kF32,   // f32 weights and activations, f32 arithmetic (CUBLAS_COMPUTE_32F)
  kTf32,  // f32 data, tensor cores with tf32 inputs (CUBLAS_COMPUTE_32F_FAST_TF32)
  kF16,   // weights dequantized to f16, activations rounded to f16, f32 accumulation
};

// "f32", "tf32", "f16" (the CLI's --prefill-math values) as a GemmMath;
// anything else is kF32 (the CLIs check the value first).
inline GemmMath GemmMathFromName(std::string_view name) {
  return name == "f16" ? GemmMath::kF16 : name == "tf32" ? GemmMath::kTf32 : GemmMath::kF32;
}

// Prefill: Y = X * W^T through cublasGemmEx, the weights dequantized to the
// workspace in row chunks (F32 weights with kF32/kTf32 and F16 weights with
// kF16 are used in place).
//   w: (n_rows, n_cols) of type;  x: (n_tokens, n_cols) f32;  y: (n_tokens, n_rows) f32
Status Gemm(Context& ctx, gguf::GgmlType type, const void* w, int64_t n_rows, int64_t n_cols,
            const float* x, int64_t n_tokens, float* y, GemmMath math);

// ---------------------------------------------------------------- elementwise

// y = x * (1 / sqrt(mean(x^2) + eps)) [* w], row by row (as ggml_rms_norm,
// then ggml_mul by the norm weight when w is not null). For per-head norms
// pass n_rows = tokens * heads, n_cols = head_dim. y may be x.
//   x, y: (n_rows, n_cols) f32;  w: (n_cols) f32 or null
Status RmsNorm(Context& ctx, const float* x, const float* w, int64_t n_rows, int64_t n_cols,
               float eps, float* y);

// RmsNorm(x, w, .., y), then residual += y (the post-norm of a block and
// its residual add, as Add(residual, y, ..) would do it). y may be x;
// residual may not overlap x or y.
//   x, y, residual: (n_rows, n_cols) f32;  w: (n_cols) f32 or null
Status RmsNormResidual(Context& ctx, const float* x, const float* w, int64_t n_rows, int64_t n_cols, float eps,
                       float* y, float* residual);

// RmsNormResidual(x, w, .., y, residual), then y2 = RmsNorm(residual, w2)
// of the updated residual (a block's post-norm and residual add, then the
// next block's pre-norm, in one launch; the same values as the two ops).
// y2 may not overlap x, y or residual.
//   x, y, residual, y2: (n_rows, n_cols) f32;  w, w2: (n_cols) f32 or null
Status RmsNormResidualNorm(Context& ctx, const float* x, const float* w, int64_t n_rows, int64_t n_cols, float eps,
                           float* y, float* residual, const float* w2, float* y2);

enum class RopeMode {
  kNorm,  // rotates pairs (2i, 2i+1): Llama
  kNeox,  // rotates pairs (i, i + n_rot/2): Qwen2, Gemma, NeoX
};

// Rotary embedding of each head's first n_rot dimensions by angle
// pos * base^(-2i/n_rot) (angles and their sine and cosine in f64, rounded
// to f32); dimensions n_rot.. are copied. y may be x.
//   x, y: (n_tokens, n_heads * head_dim) f32;  positions: (n_tokens) int32
Status Rope(Context& ctx, const float* x, const int32_t* positions, int64_t n_tokens, int n_heads,
            int head_dim, int n_rot, float base, RopeMode mode, float* y);

// The cosine and sine of each rotation pair's angle at positions[0] (pair
// m at cos_sin[2m], cos_sin[2m + 1]), computed as Rope, QkvPost and a
// RopeFold compute them (f64, rounded to f32): a decode step computes them
// once for every layer of one base (RopeFold::cos_sin).
//   positions: (1) int32;  cos_sin: (n_rot) f32
Status RopeTable(Context& ctx, const int32_t* positions, int n_rot, float base, float* cos_sin);

enum class GluKind {
  kSwiglu,    // silu(gate) * up:     z / (1 + exp(-z))
  kGegluTanh  // gelu_tanh(gate) * up: 0.5 z (1 + tanh(sqrt(2/pi) z (1 + 0.044715 z^2)))
};

// out = act(gate) * up, elementwise. out may be gate or up.
//   gate, up, out: (n) f32
Status Glu(Context& ctx, GluKind kind, const float* gate, const float* up, int64_t n, float* out);

// y = x * s, elementwise (gemma3's embedding scale). y may be x.
//   x, y: (n) f32
Status Scale(Context& ctx, const float* x, int64_t n, float s, float* y);

// y = cap * tanh(x / cap), elementwise (logit soft-capping; cap > 0). y may be x.
//   x, y: (n) f32
Status Softcap(Context& ctx, const float* x, int64_t n, float cap, float* y);

// *out = the index of the first maximum of x (std::max_element's answer:
// NaN elements are skipped, except that a NaN x[0] gives 0), for greedy
// decoding without copying the logits back. `scratch`: ArgMaxScratchBytes()
// bytes of device memory, 8-byte aligned (no initial contents needed).
// A greedy decode loop on the device (Session::DecodeGreedy) also passes
// next_id, which gets the id too, and next_pos, which is incremented: the
// next step's input token and position, written by the op's last kernel.
//   x: (n) f32, 1 <= n < 2^31;  out, next_id, next_pos: one int32 each (or null)
size_t ArgMaxScratchBytes();
Status ArgMax(Context& ctx, const float* x, int64_t n, void* scratch, int32_t* out, int32_t* next_id = nullptr,
              int32_t* next_pos = nullptr);

// out = a + b, where b has n_rows rows (elementwise) or 1 row (broadcast, a
// bias). out may be a or b.
//   a, out: (n_rows, n_cols) f32;  b: (b_rows, n_cols) f32
Status Add(Context& ctx, const float* a, const float* b, int64_t n_rows, int64_t n_cols,
           int64_t b_rows, float* out);

// ---------------------------------------------------------------- fused decode products
//
// The one-token step's products with their neighbours folded in, each in
// one launch where the type has a fast mat-vec kernel (Q4_K Q5_K Q6_K Q8_0
// Q4_0 Q5_0 Q4_1 Q5_1 F32 F16 BF16 with GGUF's alignment), otherwise as the
// unfused ops in sequence. The epilogues are Add's and Glu's own f32
// operations; the products themselves may sum a row in another order than a
// MatVec of that matrix alone would (how a row's columns are split across
// warps follows the launch's row count), so the results equal MatVec + Add /
// Glu up to f32 summation order.

struct MatVecPart {
  const void* w;       // (n_rows, n_cols) of the call's type
  int64_t n_rows;
  float* y;            // (n_rows) f32
  const float* bias;   // (n_rows) f32 added to y, or null
};

// RMSNorm folded into a product (the pre-norms of the q/k/v projections and
// the feed-forward, the output norm): the product takes RmsNorm(x, w, eps)
// of its x. Where the launch runs on the integer tensor cores (Q8_0, Q4_K
// and Q6_K at the shapes that keep them: many rows, long ones, Q6_K rows of
// an odd block count; KeepTensorCore in matvec.cu) no normed copy
// is written: each block sums x^2 while it reads x (in its own order: the
// row scale equals RmsNorm's up to f32 summation order), takes x * w into
// its digit split and scales each row's sum by the row scale before the
// epilogue (W (s (x * w)) = s W (x * w), up to f32 rounding). The K-quant
// SIMT kernels that stage x do the same with one row per warp group
// (Q4_K Q5_K Q6_K products of fewer than 4096 rows of fewer than 8192
// columns, not gate/up pairs: x * w staged, the block's own sum of x^2).
// Otherwise RmsNorm runs first into `normed` (the same values as RmsNorm,
// then the product of those); MatVecFoldsNorm says which.
struct NormFold {
  const float* w;  // (n_cols) f32 norm weights, 16-byte aligned
  float eps;
  float* normed;   // (n_cols) f32 scratch, 16-byte aligned, not overlapping x; untouched when the norm folds
};

// Whether a MatVecParts launch over these n_w matrices (n_rows rows in all)
// folds a NormFold in. (A MatVecGlu folds it where its 2 * n_rows rows take
// the tensor cores.)
bool MatVecFoldsNorm(const Context& ctx, gguf::GgmlType type, int64_t n_cols, const void* const* w, int n_w,
                     int64_t n_rows);

// QkvPost without q/k norms folded into a one-token step's q/k/v products
// (decode_ops.h): the rotation of the q and k parts and the stores of the
// final k and v rows into the KV cache happen in the products' epilogue, so
// the layer needs no QkvPost launch. The values are QkvPost's bit for bit:
// its f64 angles rounded to f32, its rounded products and sums, applied to
// y = W x + bias as MatVecParts computes it. A rotated part is emitted in
// rotation pairs (NEOX: rows i and i + n_rot/2 of a head), so it folds only
// where the launch runs on the integer tensor cores (each emitting thread
// holds two adjacent rows); a store-only part folds on every fast kernel.
// MatVecFoldsRope says whether a launch folds; MatVecParts refuses a fold
// it cannot do.
//
// positions[0] and store_rows[0] are read before the kernel waits for the
// previous one (dependent launch): no op the kernel may overlap may write
// them. The forward pass copies them from the host before the step (a
// blocking copy), or, in a greedy loop of replayed decode graphs
// (Session::DecodeGreedy), the previous graph's last kernel incremented
// positions[0] (ArgMax's next_pos), and a graph starts after the one before
// it has finished.
enum class PartRole : uint8_t {
  kPlain,        // y only
  kRotate,       // a q part: y rotated
  kRotateStore,  // a k part: y rotated, and stored into k_cache
  kStore,        // a v part: y, and stored into v_cache
};
struct RopeFold {
  PartRole role[3];          // for parts[0..n_parts)
  const int32_t* positions;  // positions[0]: the token's position (device memory)
  const int32_t* store_rows; // store_rows[0]: its cache row; outside [0, n_cache_rows): not stored
  float* k_cache;            // (n_cache_rows, rows of the kRotateStore part) f32
  float* v_cache;            // (n_cache_rows, rows of the kStore part) f32
  int64_t n_cache_rows;
  int head_dim;              // even; every part's rows a multiple of it
  int n_rot;                 // even, in (0, head_dim]
  float base;
  RopeMode mode;
  // Optional: RopeTable's output for positions[0], base and n_rot. Given,
  // the launch reads each pair's cosine and sine from it after its wait
  // instead of computing them (f64 pow and sincos) in its emitting threads
  // before it; the values, and so the results, are the same bit for bit.
  const float* cos_sin = nullptr;
};

// Whether a MatVecParts launch over these n_w matrices (n_rows rows in all)
// can fold a RopeFold: one with a rotated part (`rotates`) must run on the
// tensor cores, one with store-only parts on any fast kernel.
bool MatVecFoldsRope(const Context& ctx, gguf::GgmlType type, int64_t n_cols, const void* const* w, int n_w,
                     int64_t n_rows, bool rotates);

// y_i = W_i x (+ bias_i) for 1 to 3 matrices of one type and width sharing x
// (the q, k and v projections); with `norm`, of RmsNorm(x) (NormFold); with
// `rope`, then rotated and stored into the KV cache (RopeFold). No y may
// overlap x or another part.
Status MatVecParts(Context& ctx, gguf::GgmlType type, int64_t n_cols, const float* x, const MatVecPart* parts,
                   int n_parts, const NormFold* norm = nullptr, const RopeFold* rope = nullptr);

// pre = W x; y = residual + pre (an output projection and its residual
// add). y may be residual; pre may not overlap x, residual or y.
//   w: (n_rows, n_cols);  x: (n_cols);  residual, pre, y: (n_rows)
Status MatVecResidual(Context& ctx, gguf::GgmlType type, const void* w, int64_t n_rows, int64_t n_cols,
                      const float* x, const float* residual, float* pre, float* y);

// gate = W_gate x, up = W_up x, out = act(gate) * up (the feed-forward's
// first half); with `norm`, of RmsNorm(x) (NormFold). out may not be gate or
// up.
//   w_gate, w_up: (n_rows, n_cols);  x: (n_cols);  gate, up, out: (n_rows)
Status MatVecGlu(Context& ctx, gguf::GgmlType type, const void* w_gate, const void* w_up, int64_t n_rows,
                 int64_t n_cols, const float* x, GluKind kind, float* gate, float* up, float* out,
                 const NormFold* norm = nullptr);

// ---------------------------------------------------------------- KV cache and attention

// dst row rows[t] = src row t: new keys or values into the KV cache at their
// positions. An index outside [0, n_dst_rows) skips its row (the indices live
// on the device, so the op cannot report them).
//   src: (n_rows, n_cols) f32;  rows: (n_rows) int32;  dst: (n_dst_rows, n_cols) f32
Status StoreRows(Context& ctx, const float* src, const int32_t* rows, int64_t n_rows, int64_t n_cols,
                 float* dst, int64_t n_dst_rows);

// Causal attention of n_tokens queries over a KV cache, heads grouped
// (GQA: query head h reads KV head h / (n_head / n_head_kv)). Query t sits
// at positions[t] and sees cache rows [first, positions[t]], where first =
// max(0, positions[t] + 1 - window) when window > 0 (a sliding window) and 0
// otherwise; its scores are scale * q.k, softmaxed in f32 with the running
// maximum subtracted, and weight the value rows. Rows past n_cache_rows are
// never read. head_dim at most 512; n_head a multiple of n_head_kv.
//   q, out: (n_tokens, n_head * head_dim) f32;  positions: (n_tokens) int32
//   k_cache, v_cache: (n_cache_rows, n_head_kv * head_dim) f32
Status Attention(Context& ctx, const float* q, const float* k_cache, const float* v_cache,
                 int64_t n_cache_rows, const int32_t* positions, int64_t n_tokens, int n_head,
                 int n_head_kv, int head_dim, float scale, int window, float* out);

}  // namespace ggufscope::cuda
