// Fused ops that cut kernel launches in the decode step. Each one computes
// exactly what a sequence of ops.h's ops computes, bit for bit (same f32
// and f64 operations in the same order), in one launch; the tests in
// tests/unit/cuda_decode_ops_test.cc hold each against that sequence and
// against a float64 reference.
//
// Conventions as ops.h: Context first, work queued on its stream, device
// pointers, row-major shapes in the comments. Host-facing: no CUDA types,
// C++17. In a build without CUDA every op returns "built without CUDA".
#pragma once

#include <cstdint>

#include "cuda_runtime/device.h"
#include "cuda_runtime/ops.h"
#include "cuda_runtime/status.h"

namespace ggufscope::cuda {

// The attention block's work between the q/k/v projections and Attention,
// for n_tokens rows, in one launch instead of up to six:
//   1. with norms (q_norm and k_norm both non-null): q and k RMS-normed per
//      head, in place, exactly as
//        RmsNorm(q, q_norm, n_tokens * n_head, head_dim, eps, q)
//        RmsNorm(k, k_norm, n_tokens * n_head_kv, head_dim, eps, k)
//      (both null: no norm, eps unused; exactly one null is an error);
//   2. q and k rotated in place, exactly as
//        Rope(q, positions, n_tokens, n_head, head_dim, n_rot, base, mode, q)
//        Rope(k, positions, n_tokens, n_head_kv, head_dim, n_rot, base, mode, k);
//   3. row t of the final k and of v stored into k_cache and v_cache row
//      store_rows[t], exactly as StoreRows: an index outside
//      [0, n_cache_rows) skips the row (the indices live on the device, so
//      the op cannot report them); other cache rows are not touched. Two
//      tokens with the same index: which row lands is unspecified.
// head_dim at most 512 (Attention's limit); n_rot even, in (0, head_dim];
// n_head and n_head_kv need not divide each other. The caches must not
// overlap q, k or v; q and k must not overlap each other or v.
//   q: (n_tokens, n_head * head_dim) f32;  k, v: (n_tokens, n_head_kv * head_dim) f32
//   positions, store_rows: (n_tokens) int32;  q_norm, k_norm: (head_dim) f32 or null
//   k_cache, v_cache: (n_cache_rows, n_head_kv * head_dim) f32
Status QkvPost(Context& ctx, float* q, float* k, const float* v, const int32_t* positions,
               const int32_t* store_rows, int64_t n_tokens, int n_head, int n_head_kv, int head_dim,
               int n_rot, float base, RopeMode mode, const float* q_norm, const float* k_norm,
               float eps, float* k_cache, float* v_cache, int64_t n_cache_rows);

}  // namespace ggufscope::cuda
