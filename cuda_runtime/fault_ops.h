// The ops the CUDA pass needs only as an "engine under test" with a known
// bug (reference_cpu/faults.h, SessionOptions::inject): the faulty attention
// and the untransposed output projection. Deliberately simple kernels, kept
// apart from the fast ones of ops.h so the clean forward pass never pays for
// a fault it does not have; they run in self-tests and demos, correctness
// over speed. Each reproduces the CPU reference's fault exactly
// (reference_cpu/forward.cc) up to f32 summation order; the tests in
// tests/unit/cuda_forward_test.cc hold the faulty CUDA pass against the
// faulty CPU pass.
//
// Conventions as ops.h: Context first, work queued on its stream, device
// pointers, row-major shapes in the comments. Host-facing: no CUDA types. In
// a build without CUDA every op returns "built without CUDA".
#pragma once

#include <cstdint>

#include "cuda_runtime/device.h"
#include "cuda_runtime/status.h"

namespace ggufscope::cuda {

// The two attention bugs; both off is the clean attention of ops.h's
// Attention (computed by this simpler kernel).
struct AttentionFaults {
  // kF16Softmax: each score s becomes f16(exp(s)) (exp correctly rounded to
  // f32, then to f16 to nearest even: inf past 11.09), no maximum
  // subtracted; their sum, in f64, is rounded to f32 and then to f16; the
  // weights are f16(exp(s)) * f32(1 / sum). An overflowed score makes its
  // row NaN (inf * 0), an overflowed sum alone makes it zero.
  bool f16_exp = false;
  // kWrongGqaMap: query head h reads KV head h % n_head_kv instead of
  // h / (n_head / n_head_kv).
  bool kv_head_modulo = false;
};

// Attention (ops.h) with `faults`: the same causal rule, sliding window,
// cache bound and scale. One block per (query token, head): the maximum
// score, then the sum of the weights (f64), then the weighted value rows.
// head_dim at most 512; n_head a multiple of n_head_kv.
//   q, out: (n_tokens, n_head * head_dim) f32;  positions: (n_tokens) int32
//   k_cache, v_cache: (n_cache_rows, n_head_kv * head_dim) f32
Status FaultyAttention(Context& ctx, const float* q, const float* k_cache, const float* v_cache,
                       int64_t n_cache_rows, const int32_t* positions, int64_t n_tokens, int n_head,
                       int n_head_kv, int head_dim, float scale, int window, AttentionFaults faults,
                       float* out);

// kTransposedGemm: Y = X * W where the clean pass computes X * W^T (the
// square output projection read the wrong way round), f32 accumulation.
//   w: (d, d) f32;  x, y: (n_tokens, d) f32;  y must not overlap x
Status MatMulUntransposed(Context& ctx, const float* w, int64_t d, const float* x, int64_t n_tokens,
                          float* y);

// p[0..n) = 0 (kKvOffByOne reads the cache row no token was written to,
// which the CPU reference holds at zero).
//   p: (n) f32
Status ZeroFill(Context& ctx, float* p, int64_t n);

}  // namespace ggufscope::cuda
