// The fused ops of cuda_runtime/decode_ops.h against the unfused ops they
// replace and against float64. QkvPost must be bit-identical to the
// sequence RmsNorm (per head, when normed), Rope on q, Rope on k, StoreRows
// of k and of v, run on a copy of the same inputs: the forward pass's tests
// compare graph decode to op-by-op decode and CUDA to the CPU reference, so
// swapping in the fused op must not move a single bit. The float64
// reference anchors the test to an independent computation of the norm and
// the rotation, not only to our other kernels.
//
// Fresh random inputs each run (the seed is printed; GGUFSCOPE_TEST_SEED
// replays one), caches poisoned with NaN bits so that a row written by
// mistake, or a stored row left unwritten, cannot pass. Runs on the GPU
// machine; elsewhere (CI has no GPU) every test skips and says why.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "cuda_runtime/buffer.h"
#include "cuda_runtime/decode_ops.h"
#include "cuda_runtime/device.h"
#include "cuda_runtime/ops.h"
#include "tests/unit/cuda_test_util.h"

namespace ggufscope::cuda {
namespace {

using test::Bits;
using test::RandomFloats;
using test::Reference;

// ---------------------------------------------------------------- tolerances

// Against float64, the metric of cuda_ops_test.cc: NMSE = sum (got - ref)^2
// / sum scale^2, scale the magnitude the f32 rounding error is proportional
// to: |ref| for a normed but unrotated value, |x0 c| + |x1 s| for a rotated
// pair (the two products can cancel). Norm then rotation is a handful of
// f32 roundings of 2^-24 relative to that scale (the sum of squares, the
// scale, two products, the sine and cosine rounded to f32, one addition),
// so the NMSE is ~1e-14; 1e-10 leaves four orders of margin and still fails
// one wrong element among a million, or one head normed with the wrong
// weight. The fused-against-unfused comparison needs no tolerance: bits.
constexpr double kF32Nmse = 1e-10;

constexpr float kEps = 1e-6f;
constexpr int64_t kCacheRows = 9;
constexpr uint32_t kPoisonBits = 0xFFFFFFFFu;  // a NaN: the caches' bytes before the op

// ---------------------------------------------------------------- helpers

// Bit-for-bit equality (NaN bit patterns included), with the first mismatch.
void ExpectSameBits(const std::vector<float>& got, const std::vector<float>& want,
                    const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  size_t mismatches = 0, first = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (Bits(got[i]) != Bits(want[i]) && mismatches++ == 0) first = i;
  }
  EXPECT_EQ(mismatches, 0u) << what << ": " << mismatches << " of " << got.size()
                            << " differ, first at " << first << " (fused " << got[first]
                            << ", unfused " << want[first] << ")";
}

class CudaDecodeOps : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (ListDevices(&why).empty()) GTEST_SKIP() << "no GPU, CUDA decode op tests skipped: " << why;
    ctx_ = Context::Create(0, &why);
    ASSERT_NE(ctx_, nullptr) << why;
    test::SeedForTest(rng_);
  }

  template <typename T>
  DeviceBuffer Upload(const std::vector<T>& v) {
    DeviceBuffer b;
    Status st = b.Allocate(*ctx_, v.size() * sizeof(T));
    if (st.ok()) st = CopyToDevice(*ctx_, b.data(), v.data(), v.size() * sizeof(T));
    EXPECT_TRUE(st.ok()) << st.message();
    return b;
  }
  // `n` floats of NaN bits (kPoisonBits).
  DeviceBuffer Poisoned(size_t n) { return Upload(std::vector<uint32_t>(n, kPoisonBits)); }
  std::vector<float> Download(const DeviceBuffer& b, size_t n) {
    std::vector<float> v(n);
    const Status st = CopyToHost(*ctx_, v.data(), b.data(), n * sizeof(float));
    EXPECT_TRUE(st.ok()) << st.message();
    return v;
  }
  void ExpectOk(const Status& st) { EXPECT_TRUE(st.ok()) << st.message(); }

  std::unique_ptr<Context> ctx_;
  std::mt19937 rng_;
};

struct Heads {
  int n_head, n_head_kv, head_dim, n_rot;
};

// x (n_tokens, n_heads * head_dim) RMS-normed per head by w (when not null),
// then rotated, in float64.
Reference NormRope64(const std::vector<float>& x, const Heads& g, int n_heads,
                     const std::vector<int32_t>& positions, const float* w, float base,
                     RopeMode mode) {
  const int hd = g.head_dim;
  Reference want(x.size());
  std::vector<double> y(static_cast<size_t>(hd));
  for (size_t t = 0; t < positions.size(); ++t) {
    for (int h = 0; h < n_heads; ++h) {
      const size_t o = (t * static_cast<size_t>(n_heads) + static_cast<size_t>(h)) * hd;
      double scale = 1.0;
      if (w != nullptr) {
        double ss = 0;
        for (int c = 0; c < hd; ++c) ss += static_cast<double>(x[o + c]) * x[o + c];
        scale = 1.0 / std::sqrt(ss / hd + static_cast<double>(kEps));
      }
      for (int c = 0; c < hd; ++c) {
        y[c] = x[o + c] * scale * (w != nullptr ? w[c] : 1.0);
        want.value[o + c] = y[c];  // dimensions past n_rot
        want.scale[o + c] = std::abs(y[c]);
      }
      for (int i = 0; i < g.n_rot / 2; ++i) {
        const double theta = positions[t] * std::pow(static_cast<double>(base), -2.0 * i / g.n_rot);
        const int a = mode == RopeMode::kNorm ? 2 * i : i;
        const int b = mode == RopeMode::kNorm ? 2 * i + 1 : i + g.n_rot / 2;
        const double c = std::cos(theta), s = std::sin(theta);
        want.value[o + a] = y[a] * c - y[b] * s;
        want.value[o + b] = y[a] * s + y[b] * c;
        want.scale[o + a] = std::abs(y[a] * c) + std::abs(y[b] * s);
        want.scale[o + b] = std::abs(y[a] * s) + std::abs(y[b] * c);
      }
    }
  }
  return want;
}

// ---------------------------------------------------------------- QkvPost

// Every head geometry the forward pass meets and then some: head_dim 64,
// 128, 256 and 512, odd-ish 40, 80 and 200 (threads with unequal column
// counts in the norm's sum), partial rotation, GQA groups 6, 8 and 2,
// heads that divide nothing (5/5, 3/1), a 2-wide head.
TEST_F(CudaDecodeOps, QkvPostIsBitIdenticalToTheUnfusedOpsAndMatchesFloat64) {
  struct Tokens {
    std::vector<int32_t> positions, store_rows;
  };
  const std::vector<Tokens> batches = {
      {{4000}, {6}},                                        // decode at a far position
      {{7}, {kCacheRows}},                                  // decode whose row falls past the cache
      {{0, 7, 4000, 1, 32767}, {3, 0, kCacheRows, -1, 8}},  // prefill-like, rows 2 and 3 skipped
  };
  for (const Heads g :
       {Heads{12, 2, 64, 64}, Heads{12, 2, 128, 64}, Heads{8, 1, 128, 128}, Heads{4, 2, 256, 256},
        Heads{8, 1, 256, 64}, Heads{3, 1, 80, 80}, Heads{5, 5, 40, 24}, Heads{6, 3, 200, 100},
        Heads{2, 1, 512, 512}, Heads{1, 1, 2, 2}}) {
    for (const RopeMode mode : {RopeMode::kNorm, RopeMode::kNeox}) {
      for (const bool normed : {false, true}) {
        for (const Tokens& batch : batches) {
          const int64_t n = static_cast<int64_t>(batch.positions.size());
          const float base = mode == RopeMode::kNorm ? 10000.0f : 1000000.0f;
          SCOPED_TRACE("heads " + std::to_string(g.n_head) + "/" + std::to_string(g.n_head_kv) +
                       " head_dim " + std::to_string(g.head_dim) + " n_rot " +
                       std::to_string(g.n_rot) + (mode == RopeMode::kNorm ? " norm" : " neox") +
                       (normed ? " qk-normed" : "") + " tokens " + std::to_string(n));
          const int64_t q_w = int64_t{g.n_head} * g.head_dim,
                        kv_w = int64_t{g.n_head_kv} * g.head_dim;
          const size_t n_q = static_cast<size_t>(n * q_w), n_kv = static_cast<size_t>(n * kv_w);
          const size_t n_cache = static_cast<size_t>(kCacheRows * kv_w);
          const std::vector<float> q = RandomFloats(n_q, rng_, 3.0),
                                   k = RandomFloats(n_kv, rng_, 3.0), v = RandomFloats(n_kv, rng_),
                                   q_norm = RandomFloats(g.head_dim, rng_),
                                   k_norm = RandomFloats(g.head_dim, rng_);
          const DeviceBuffer d_pos = Upload(batch.positions), d_rows = Upload(batch.store_rows),
                             d_qn = Upload(q_norm), d_kn = Upload(k_norm), d_v = Upload(v);
          const float* qn = normed ? d_qn.as<float>() : nullptr;
          const float* kn = normed ? d_kn.as<float>() : nullptr;
          const int32_t* pos = d_pos.as<int32_t>();
          const int32_t* rows = d_rows.as<int32_t>();

          DeviceBuffer f_q = Upload(q), f_k = Upload(k), f_kc = Poisoned(n_cache),
                       f_vc = Poisoned(n_cache);
          ExpectOk(QkvPost(*ctx_, f_q.as<float>(), f_k.as<float>(), d_v.as<float>(), pos, rows, n,
                           g.n_head, g.n_head_kv, g.head_dim, g.n_rot, base, mode, qn, kn, kEps,
                           f_kc.as<float>(), f_vc.as<float>(), kCacheRows));

          DeviceBuffer u_q = Upload(q), u_k = Upload(k), u_kc = Poisoned(n_cache),
                       u_vc = Poisoned(n_cache);
          float *uq = u_q.as<float>(), *uk = u_k.as<float>();
          if (normed) {
            ExpectOk(RmsNorm(*ctx_, uq, qn, n * g.n_head, g.head_dim, kEps, uq));
            ExpectOk(RmsNorm(*ctx_, uk, kn, n * g.n_head_kv, g.head_dim, kEps, uk));
          }
          ExpectOk(Rope(*ctx_, uq, pos, n, g.n_head, g.head_dim, g.n_rot, base, mode, uq));
          ExpectOk(Rope(*ctx_, uk, pos, n, g.n_head_kv, g.head_dim, g.n_rot, base, mode, uk));
          ExpectOk(StoreRows(*ctx_, uk, rows, n, kv_w, u_kc.as<float>(), kCacheRows));
          ExpectOk(StoreRows(*ctx_, d_v.as<float>(), rows, n, kv_w, u_vc.as<float>(), kCacheRows));

          const std::vector<float> fq = Download(f_q, n_q), fk = Download(f_k, n_kv),
                                   fkc = Download(f_kc, n_cache), fvc = Download(f_vc, n_cache);
          ExpectSameBits(fq, Download(u_q, n_q), "q");
          ExpectSameBits(fk, Download(u_k, n_kv), "k");
          ExpectSameBits(fkc, Download(u_kc, n_cache), "k_cache");
          ExpectSameBits(fvc, Download(u_vc, n_cache), "v_cache");

          EXPECT_NMSE_BELOW(std::span<const float>(fq),
                            NormRope64(q, g, g.n_head, batch.positions,
                                       normed ? q_norm.data() : nullptr, base, mode),
                            kF32Nmse);
          EXPECT_NMSE_BELOW(std::span<const float>(fk),
                            NormRope64(k, g, g.n_head_kv, batch.positions,
                                       normed ? k_norm.data() : nullptr, base, mode),
                            kF32Nmse);
          // Unnormed, the dimensions past n_rot are the inputs' bits.
          for (size_t i = 0; i < n_q && !normed; ++i) {
            if (static_cast<int>(i % g.head_dim) >= g.n_rot) {
              ASSERT_EQ(Bits(fq[i]), Bits(q[i])) << i;
            }
          }
          // Cache row r holds the final k row and the v row of the token
          // stored there; rows no token names keep their poison.
          for (int64_t r = 0; r < kCacheRows; ++r) {
            int64_t from = -1;
            for (int64_t t = 0; t < n; ++t) from = batch.store_rows[t] == r ? t : from;
            for (int64_t c = 0; c < kv_w; ++c) {
              const size_t at = static_cast<size_t>(r * kv_w + c);
              const uint32_t want_k = from >= 0 ? Bits(fk[from * kv_w + c]) : kPoisonBits;
              const uint32_t want_v = from >= 0 ? Bits(v[from * kv_w + c]) : kPoisonBits;
              ASSERT_EQ(Bits(fkc[at]), want_k) << "k_cache row " << r << " col " << c;
              ASSERT_EQ(Bits(fvc[at]), want_v) << "v_cache row " << r << " col " << c;
            }
          }
        }
      }
    }
  }
}

// No tokens: nothing to check the pointers against, nothing launched.
TEST_F(CudaDecodeOps, QkvPostOfNoTokensIsANoOp) {
  ExpectOk(QkvPost(*ctx_, nullptr, nullptr, nullptr, nullptr, nullptr, 0, 8, 2, 64, 64, 1e4f,
                   RopeMode::kNorm, nullptr, nullptr, kEps, nullptr, nullptr, 0));
  EXPECT_TRUE(ctx_->Synchronize().ok());
}

// ---------------------------------------------------------------- errors

// A valid call (checked first), then each argument broken in turn: every
// one is an error before anything is launched.
TEST_F(CudaDecodeOps, QkvPostBadArgumentsAreErrorsNotCrashes) {
  DeviceBuffer buf = Poisoned(1024);
  const DeviceBuffer rows = Upload(std::vector<int32_t>{0});
  float* f = buf.as<float>();
  struct Args {
    float* q;
    float* k;
    const float* v;
    const int32_t* positions;
    const int32_t* store_rows;
    int64_t n_tokens;
    int n_head;
    int n_head_kv;
    int head_dim;
    int n_rot;
    float base;
    RopeMode mode;
    const float* q_norm;
    const float* k_norm;
    float eps;
    float* k_cache;
    float* v_cache;
    int64_t n_cache_rows;
  };
  // q (2 heads of 64), k and v (1 head), the norms, two-row caches.
  const Args good{.q = f,
                  .k = f + 128,
                  .v = f + 192,
                  .positions = rows.as<int32_t>(),
                  .store_rows = rows.as<int32_t>(),
                  .n_tokens = 1,
                  .n_head = 2,
                  .n_head_kv = 1,
                  .head_dim = 64,
                  .n_rot = 64,
                  .base = 1e4f,
                  .mode = RopeMode::kNorm,
                  .q_norm = f + 256,
                  .k_norm = f + 320,
                  .eps = kEps,
                  .k_cache = f + 384,
                  .v_cache = f + 512,
                  .n_cache_rows = 2};
  const auto call = [&](const Args& a) {
    return QkvPost(*ctx_, a.q, a.k, a.v, a.positions, a.store_rows, a.n_tokens, a.n_head,
                   a.n_head_kv, a.head_dim, a.n_rot, a.base, a.mode, a.q_norm, a.k_norm, a.eps,
                   a.k_cache, a.v_cache, a.n_cache_rows);
  };
  ExpectOk(call(good));
  ASSERT_TRUE(ctx_->Synchronize().ok());
  const auto fails = [&](const char* why, auto&& change) {
    Args a = good;
    change(a);
    const Status st = call(a);
    EXPECT_FALSE(st.ok()) << why;
    EXPECT_FALSE(st.message().empty()) << why;
  };
  fails("null q", [](Args& a) { a.q = nullptr; });
  fails("null k", [](Args& a) { a.k = nullptr; });
  fails("null v", [](Args& a) { a.v = nullptr; });
  fails("null positions", [](Args& a) { a.positions = nullptr; });
  fails("null store_rows", [](Args& a) { a.store_rows = nullptr; });
  fails("null k_cache", [](Args& a) { a.k_cache = nullptr; });
  fails("null v_cache", [](Args& a) { a.v_cache = nullptr; });
  fails("misaligned q",
        [](Args& a) { a.q = reinterpret_cast<float*>(reinterpret_cast<uintptr_t>(a.q) + 2); });
  fails("odd n_rot", [](Args& a) { a.n_rot = 63; });
  fails("n_rot > head_dim", [](Args& a) { a.n_rot = 66; });
  fails("n_rot 0", [](Args& a) { a.n_rot = 0; });
  fails("n_head 0", [](Args& a) { a.n_head = 0; });
  fails("n_head_kv negative", [](Args& a) { a.n_head_kv = -1; });
  fails("too many heads for a grid", [](Args& a) { a.n_head = 65535; });
  fails("head_dim 0", [](Args& a) { a.head_dim = 0; });
  fails("head_dim over 512", [](Args& a) { a.head_dim = 514; });
  fails("base 0", [](Args& a) { a.base = 0.0f; });
  fails("base NaN", [](Args& a) { a.base = std::numeric_limits<float>::quiet_NaN(); });
  fails("q_norm alone", [](Args& a) { a.k_norm = nullptr; });
  fails("k_norm alone", [](Args& a) { a.q_norm = nullptr; });
  fails("negative eps", [](Args& a) { a.eps = -1.0f; });
  fails("NaN eps", [](Args& a) { a.eps = std::numeric_limits<float>::quiet_NaN(); });
  fails("negative n_tokens", [](Args& a) { a.n_tokens = -1; });
  fails("negative n_cache_rows", [](Args& a) { a.n_cache_rows = -1; });
  EXPECT_TRUE(ctx_->Synchronize().ok());  // nothing more was launched, nothing failed
}

}  // namespace
}  // namespace ggufscope::cuda
