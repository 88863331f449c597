// Every CUDA op against its CPU twin, in the manner of llama.cpp's
// test-backend-ops: fresh random inputs each run (the seed is printed; set
// GGUFSCOPE_TEST_SEED to replay one), odd shapes, every ggml type the op
// takes, outputs poisoned with NaN before each run, NaN always a failure.
// Dequantization and the gather must be bit-identical to gguf::Dequantize;
// Add is bit-identical too; the other arithmetic ops are compared with a
// float64 reference by a normalized mean squared error, with the thresholds
// named below.
//
// Runs on the GPU machine; elsewhere (CI has no GPU) every test skips and
// says why.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <limits>
#include <numbers>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "cuda_runtime/buffer.h"
#include "cuda_runtime/decode_ops.h"
#include "cuda_runtime/device.h"
#include "cuda_runtime/ops.h"
#include "gguf/block_scales.h"
#include "gguf/dequant.h"
#include "gguf/types.h"
#include "tests/unit/cuda_test_util.h"

namespace ggufscope::cuda {
namespace {

using gguf::GgmlType;
using test::Bits;
using test::RandomFloats;
using test::Reference;

// ---------------------------------------------------------------- tolerances

//
// The metric: NMSE = sum (got - ref)^2 / sum scale^2, where ref is the
// float64 result and scale is the magnitude that the op's f32 rounding error
// is proportional to: |ref| for an op without cancellation (RMSNorm), the
// sum of the magnitudes of the added terms where terms can cancel (sum |w x|
// for a dot product, |x0 c| + |x1 s| for a rotation, |gate * up| for a GLU,
// whose 1 + tanh(..) cancels for negative gates). Normalizing by |ref| alone
// fails a correct kernel on a single output that happens to cancel (seen on
// the H100 with one-row mat-vecs and n=1 GeGLU); normalizing by the terms is
// the forward-error bound of f32 arithmetic.

// f32 arithmetic with f32 accumulation (mat-vec, f32 GEMM, RMSNorm, RoPE,
// GLU): the error of each output is a few roundings of 2^-24 relative to its
// scale, so the NMSE is ~1e-14. 1e-10 leaves four orders of margin and
// still fails on one wrong weight in a 4352-wide row (~(1/4352)^2 = 5e-8)
// or one wrong element in a million outputs.
constexpr double kF32Nmse = 1e-10;

// GEMM with tf32 or f16 operands: each operand is rounded to 10 (tf32) or
// 11 (f16) significant bits, so each product is off by up to ~2^-10 of its
// magnitude; even if every error in a row had the same sign, the NMSE would
// stay near (2^-10)^2 = 1e-6. Random data gives ~1e-10. A bad dequantization
// is caught by the f32 GEMM, which runs the same dequantization.
constexpr double kReducedPrecisionGemmNmse = 1e-6;

// ---------------------------------------------------------------- helpers

// IEEE float -> half, round to nearest even (as __float2half_rn), for finite input.
uint16_t FloatToHalfRne(float f) {
  const uint32_t x = Bits(f);
  const auto sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7FFFFFFFu;
  if (ax >= 0x477FF000u) return sign | 0x7C00u;  // >= 65520 rounds to infinity
  if (ax < 0x38800000u) {                        // below 2^-14: a subnormal half
    return sign | static_cast<uint16_t>(std::nearbyint(std::bit_cast<float>(ax) * 0x1p24f));
  }
  uint32_t h = (ax >> 13) - ((127u - 15u) << 10);
  const uint32_t rem = ax & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return sign | static_cast<uint16_t>(h);
}

std::vector<GgmlType> ActiveTypes() {
  std::vector<GgmlType> out;
  for (uint32_t id = 0; id < gguf::kGgmlTypeCount; ++id) {
    const auto t = gguf::LookupType(id);
    if (t && t->status == gguf::TypeStatus::kActive) out.push_back(static_cast<GgmlType>(id));
  }
  return out;
}

bool IsPlain(GgmlType type) { return gguf::Traits(type).block_size == 1; }

// A sane, finite, never-zero half scale: +-[2^-8, 2^-2).
uint16_t RandomScaleHalf(std::mt19937& rng) {
  return static_cast<uint16_t>(((rng() & 1u) << 15) | ((7u + rng() % 6u) << 10) | (rng() & 0x3FFu));
}

// `n_elements` of `type` as GGUF stores them. Block types: random bytes with
// every scale field replaced by a sane finite value (gguf/block_scales.h), so
// every decoded value is finite and within f16 range. Plain types: random
// normal values (random integers for the integer types).
std::vector<uint8_t> RandomData(GgmlType type, uint64_t n_elements, std::mt19937& rng) {
  const gguf::TypeTraits& t = gguf::Traits(type);
  std::vector<uint8_t> out(n_elements / t.block_size * t.type_size);
  std::uniform_int_distribution<int> byte(0, 255);
  std::normal_distribution<double> normal(0.0, 1.0);
  const auto put = [&](size_t at, const auto& v) { std::memcpy(out.data() + at, &v, sizeof v); };
  if (t.block_size == 1) {
    for (uint64_t i = 0; i < n_elements; ++i) {
      const size_t at = i * t.type_size;
      switch (type) {
        case GgmlType::kF32:
          put(at, static_cast<float>(normal(rng)));
          break;
        case GgmlType::kF16:
          put(at, FloatToHalfRne(static_cast<float>(normal(rng))));
          break;
        case GgmlType::kBF16:
          put(at, static_cast<uint16_t>(Bits(static_cast<float>(normal(rng))) >> 16));
          break;
        case GgmlType::kF64:
          put(at, normal(rng));
          break;
        case GgmlType::kI8:
          put(at, static_cast<int8_t>(byte(rng) - 128));
          break;
        case GgmlType::kI16:
          put(at, static_cast<int16_t>(rng()));
          break;
        case GgmlType::kI32:
          put(at, static_cast<int32_t>(rng()));
          break;
        case GgmlType::kI64:
          put(at, static_cast<int64_t>((static_cast<uint64_t>(rng()) << 32) | rng()));
          break;
        default:
          ADD_FAILURE() << "no generator for " << t.name;
          return out;
      }
    }
    return out;
  }
  for (auto& b : out) b = static_cast<uint8_t>(byte(rng));
  const gguf::BlockScales scales = gguf::ScalesOf(type);
  for (size_t blk = 0; blk < out.size(); blk += t.type_size) {
    for (int i = 0; i < scales.count; ++i) {
      const size_t at = blk + scales.offsets[i];
      switch (scales.kind) {
        case gguf::ScaleKind::kF16:
          put(at, RandomScaleHalf(rng));
          break;
        case gguf::ScaleKind::kF32:
          put(at, std::ldexp(static_cast<float>(1.0 + std::abs(normal(rng))),
                             -3 - static_cast<int>(rng() % 6)));
          break;
        case gguf::ScaleKind::kE8M0:
          out[at] = static_cast<uint8_t>(119 + rng() % 8);
          break;  // 2^-9..2^-2
        case gguf::ScaleKind::kUE4M3:
          out[at] = static_cast<uint8_t>(0x08 + rng() % (0x7E - 0x08));
          break;
        case gguf::ScaleKind::kNone:
          break;
      }
    }
    if (type == GgmlType::kIQ1_M) {  // its f16 scale is the top nibbles of 4 u16 at 48
      const uint16_t d = RandomScaleHalf(rng);
      for (int i = 0; i < 4; ++i) {
        uint16_t v;
        std::memcpy(&v, out.data() + blk + 48 + 2 * i, 2);
        v = static_cast<uint16_t>((v & 0x0FFFu) | (((d >> (4 * i)) & 0xFu) << 12));
        put(blk + 48 + 2 * i, v);
      }
    }
  }
  return out;
}

std::vector<float> CpuDequantize(GgmlType type, const std::vector<uint8_t>& src, uint64_t n) {
  std::vector<float> out(n);
  const gguf::Status st = gguf::Dequantize(type, src, n, out);
  EXPECT_TRUE(st.ok()) << st.error().Message();
  return out;
}

class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (ListDevices(&why).empty()) GTEST_SKIP() << "no GPU, CUDA op tests skipped: " << why;
    ctx_ = Context::Create(0, &why);
    ASSERT_NE(ctx_, nullptr) << why;
    test::SeedForTest(rng_);
  }

  // A device copy of `bytes` bytes of host data (`extra` bytes more room).
  DeviceBuffer Upload(const void* data, size_t bytes, size_t extra = 0) {
    DeviceBuffer b;
    Status st = b.Allocate(*ctx_, bytes + extra);
    if (st.ok()) st = CopyToDevice(*ctx_, b.data(), data, bytes);
    EXPECT_TRUE(st.ok()) << st.message();
    return b;
  }
  template <typename T>
  DeviceBuffer Upload(const std::vector<T>& v, size_t extra = 0) {
    return Upload(v.data(), v.size() * sizeof(T), extra);
  }
  // `n` T's of NaN bits (0xFF bytes), to be overwritten by the op under test.
  template <typename T = float>
  DeviceBuffer Poisoned(size_t n, size_t extra_elems = 0) {
    const std::vector<uint8_t> nan((n + extra_elems) * sizeof(T), 0xFF);
    return Upload(nan);
  }
  template <typename T>
  std::vector<T> Download(const void* device, size_t n) {
    std::vector<T> v(n);
    const Status st = CopyToHost(*ctx_, v.data(), device, n * sizeof(T));
    EXPECT_TRUE(st.ok()) << st.message();
    return v;
  }
  void ExpectOk(const Status& st) { EXPECT_TRUE(st.ok()) << st.message(); }

  std::unique_ptr<Context> ctx_;
  std::mt19937 rng_;
};

// Element counts for a type: 1, 17 and 4097 blocks (elements, for plain types).
std::vector<int64_t> OddCounts(GgmlType type) {
  const int64_t bs = gguf::Traits(type).block_size;
  return {bs, 17 * bs, 4097 * bs};
}

// ---------------------------------------------------------------- dequantization

TEST_F(CudaOps, DequantizeIsBitExactForEveryType) {
  for (const GgmlType type : ActiveTypes()) {
    SCOPED_TRACE(gguf::TypeName(type));
    ASSERT_TRUE(cuda::CanDequantize(type));
    for (const int64_t n : OddCounts(type)) {
      SCOPED_TRACE("n=" + std::to_string(n));
      const std::vector<uint8_t> src = RandomData(type, n, rng_);
      const std::vector<float> want = CpuDequantize(type, src, n);
      DeviceBuffer d_src = Upload(src);
      // Offset 1 exercises the unaligned-store path; 0 the 16-byte stores.
      for (const int64_t offset : {0, 1}) {
        DeviceBuffer d_f32 = Poisoned<float>(n, 1);
        ExpectOk(Dequantize(*ctx_, type, d_src.data(), n, d_f32.as<float>() + offset));
        const std::vector<float> got = Download<float>(d_f32.as<float>() + offset, n);
        size_t bad = 0;
        for (int64_t i = 0; i < n; ++i) {
          if (Bits(got[i]) != Bits(want[i]) && bad++ < 3) {
            ADD_FAILURE() << "f32 element " << i << ": got " << got[i] << ", want " << want[i];
          }
        }
        EXPECT_EQ(bad, 0u) << "offset " << offset;

        DeviceBuffer d_f16 = Poisoned<uint16_t>(n, 1);
        ExpectOk(DequantizeToF16(*ctx_, type, d_src.data(), n, d_f16.as<uint16_t>() + offset));
        const std::vector<uint16_t> got16 = Download<uint16_t>(d_f16.as<uint16_t>() + offset, n);
        bad = 0;
        for (int64_t i = 0; i < n; ++i) {
          if (got16[i] != FloatToHalfRne(want[i]) && bad++ < 3) {
            ADD_FAILURE() << "f16 element " << i << ": got 0x" << std::hex << got16[i]
                          << ", want 0x" << FloatToHalfRne(want[i]) << std::dec << " (" << want[i]
                          << ")";
          }
        }
        EXPECT_EQ(bad, 0u) << "offset " << offset;
      }
    }
  }
}

TEST_F(CudaOps, GetRowsGathersExactRowsForEveryType) {
  constexpr int64_t kRows = 37;
  for (const GgmlType type : ActiveTypes()) {
    SCOPED_TRACE(gguf::TypeName(type));
    const int64_t n_cols = IsPlain(type) ? 17 : 3 * gguf::Traits(type).block_size;
    const std::vector<uint8_t> table = RandomData(type, kRows * n_cols, rng_);
    const std::vector<float> rows = CpuDequantize(type, table, kRows * n_cols);
    std::vector<int32_t> ids = {0, kRows - 1, 5, 5};  // ends and a repeat
    std::uniform_int_distribution<int32_t> pick(0, kRows - 1);
    for (int i = 0; i < 15; ++i) ids.push_back(pick(rng_));
    DeviceBuffer d_table = Upload(table), d_ids = Upload(ids);
    DeviceBuffer d_out = Poisoned(ids.size() * n_cols);
    ExpectOk(GetRows(*ctx_, type, d_table.data(), kRows, n_cols, d_ids.as<int32_t>(),
                     static_cast<int64_t>(ids.size()), d_out.as<float>()));
    const std::vector<float> got = Download<float>(d_out.data(), ids.size() * n_cols);
    for (size_t r = 0; r < ids.size(); ++r) {
      for (int64_t c = 0; c < n_cols; ++c) {
        const float want = rows[ids[r] * n_cols + c];
        ASSERT_EQ(Bits(got[r * n_cols + c]), Bits(want))
            << "row " << r << " (id " << ids[r] << ") col " << c;
      }
    }
  }
}

TEST_F(CudaOps, GetRowsWritesNanForAnOutOfRangeId) {
  const GgmlType type = GgmlType::kQ4_K;
  const std::vector<uint8_t> table = RandomData(type, 4 * 256, rng_);
  const std::vector<int32_t> ids = {1, 4, -1, 3};
  DeviceBuffer d_table = Upload(table), d_ids = Upload(ids), d_out = Poisoned(4 * 256);
  ExpectOk(GetRows(*ctx_, type, d_table.data(), 4, 256, d_ids.as<int32_t>(), 4, d_out.as<float>()));
  const std::vector<float> got = Download<float>(d_out.data(), 4 * 256);
  for (int c = 0; c < 256; ++c) {
    EXPECT_FALSE(std::isnan(got[c]));
    EXPECT_TRUE(std::isnan(got[256 + c])) << c;
    EXPECT_TRUE(std::isnan(got[512 + c])) << c;
    EXPECT_FALSE(std::isnan(got[768 + c]));
  }
}

// ---------------------------------------------------------------- matrix products

// (rows, cols) for mat-vec and GEMM: one row, odd counts of rows and blocks,
// 4097 rows, and 4096 columns (the vectorized plain path). 4099 rows of an
// even block count take the fast mat-vec kernels with two rows per warp and
// a partial last warp (the Q6_K/Q8_0/Q4_0 kernels need even block counts;
// 17 * 256 columns is a partial 16-super-block chunk of the K-quant kernels).
std::vector<std::pair<int64_t, int64_t>> MatrixShapes(GgmlType type) {
  if (IsPlain(type)) return {{1, 1}, {17, 17}, {4097, 17}, {3, 4097}, {5, 4096}, {4099, 64}};
  const int64_t bs = gguf::Traits(type).block_size;
  return {{1, bs}, {17, 3 * bs}, {4097, bs}, {3, 17 * 256}, {5, 4096}, {4099, 2 * bs}};
}

// y[t][r] = sum_c W[r][c] x[t][c] in float64 over the exactly dequantized
// weights; its scale sum_c |W[r][c] x[t][c]|.
Reference Float64MatVec(const std::vector<float>& w, const std::vector<float>& x, int64_t n_rows,
                        int64_t n_cols, int64_t n_tokens = 1) {
  Reference y(n_tokens * n_rows);
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t r = 0; r < n_rows; ++r) {
      double acc = 0, mag = 0;
      for (int64_t c = 0; c < n_cols; ++c) {
        const double term = static_cast<double>(w[r * n_cols + c]) * x[t * n_cols + c];
        acc += term;
        mag += std::abs(term);
      }
      y.value[t * n_rows + r] = acc;
      y.scale[t * n_rows + r] = mag;
    }
  }
  return y;
}

TEST_F(CudaOps, MatVecMatchesFloat64DotForEveryType) {
  for (const GgmlType type : ActiveTypes()) {
    SCOPED_TRACE(gguf::TypeName(type));
    for (const auto& [n_rows, n_cols] : MatrixShapes(type)) {
      SCOPED_TRACE(std::to_string(n_rows) + "x" + std::to_string(n_cols));
      const std::vector<uint8_t> w = RandomData(type, n_rows * n_cols, rng_);
      const std::vector<float> x = RandomFloats(n_cols, rng_);
      const Reference want =
          Float64MatVec(CpuDequantize(type, w, n_rows * n_cols), x, n_rows, n_cols);
      DeviceBuffer d_w = Upload(w), d_x = Upload(x);
      std::vector<MatVecPath> paths = {MatVecPath::kAuto};
      if (MatVecHasDirect(type)) paths.push_back(MatVecPath::kDequantCublas);
      for (const MatVecPath path : paths) {
        SCOPED_TRACE(path == MatVecPath::kAuto ? "auto path" : "dequantize + cuBLAS path");
        DeviceBuffer d_y = Poisoned(n_rows);
        ExpectOk(MatVec(*ctx_, type, d_w.data(), n_rows, n_cols, d_x.as<float>(), d_y.as<float>(),
                        path));
        const std::vector<float> got = Download<float>(d_y.data(), n_rows);
        EXPECT_NMSE_BELOW(std::span<const float>(got), want, kF32Nmse);
      }
    }
  }
}

// Q8_0, Q4_K and Q6_K on the integer tensor cores (what kAuto takes for
// them; forced here), x as a power-of-two scale and three 8-bit digits per
// 32 elements (Q8_0) or per 256 (a K-quant super-block). Against float64 at the
// f32 threshold: the digits carry x to 2^-21 of the largest element sharing
// the scale, the int32 sums are exact. Row counts that leave partial 16- and
// 32-row tiles, one to 74 stages per row, x spanning six orders of magnitude
// inside every block and stage (so Q4_K's one scale per 256 is held to the
// same threshold), an all-zero block and a block of subnormals. On an H100 the shapes take every launch variant:
// 16 rows and 4 warps a block (1 to 4099 rows; several waves: 21000 x 3584,
// and 40000 x 512 with fewer stages than warps; 4608 x 3584, the 7B q/k/v
// launch), 8 warps (3584 x 18944), and for Q4_K 32 rows (25344 x 256: one
// stage, so two of the four warps have none; 38000 x 2048) and 48 rows
// (18010 x 2048: 376 blocks in one wave, the last one 10 rows); Q8_0 and
// Q6_K have 16-row blocks only, Q6_K in both parities of its 2-byte
// aligned blocks.
TEST_F(CudaOps, MatVecIntegerTensorCoreMatchesFloat64) {
  for (const GgmlType type : {GgmlType::kQ8_0, GgmlType::kQ4_K, GgmlType::kQ6_K}) {
    SCOPED_TRACE(gguf::TypeName(type));
    // Q6_K: its 210-byte blocks in either parity of row (odd block counts:
    // 96 x 8960, 5 x 768, 1 x 256), matrices ending off a 16-byte boundary
    // (its window copies are cut there: 1 x 256, 4099 x 1536 in 4-warp
    // blocks, 4 copy lanes a row); 8-warp launches with 4 stages in flight
    // (96 x 8960: TcQ6KDeep) and 2 (3584 x 18944), and the same two with 8
    // copy lanes a row cut at the matrix end (from cudaMalloc's 256-byte
    // aligned base, the last block at 22 and 0 bytes into its 32-byte
    // window: chunks 14 and 13 cross the end; 100 x 2304 TcQ6KDeep, 2201 x
    // 2304 more blocks than multiprocessors on an H100).
    const std::vector<std::pair<int64_t, int64_t>> shapes =
        type == GgmlType::kQ6_K
            ? std::vector<std::pair<int64_t, int64_t>>{{1, 256},     {5, 768},     {17, 2048},
                                                       {48, 3584},   {4099, 1536}, {96, 8960},
                                                       {3584, 18944}, {100, 2304}, {2201, 2304}}
            : std::vector<std::pair<int64_t, int64_t>>{{1, 256},      {17, 2048},    {48, 3584},
                                                       {4099, 1536},  {3584, 18944}, {25344, 256},
                                                       {38000, 2048}, {21000, 3584}, {40000, 512},
                                                       {4608, 3584},  {18010, 2048}};
    for (const auto& [n_rows, n_cols] : shapes) {
      SCOPED_TRACE(std::to_string(n_rows) + "x" + std::to_string(n_cols));
      const std::vector<uint8_t> w = RandomData(type, n_rows * n_cols, rng_);
      std::vector<float> x = RandomFloats(n_cols, rng_);
      std::uniform_int_distribution<int> e(-10, 10);
      for (float& v : x) v = std::ldexp(v, e(rng_));
      for (int i = 0; i < 32; ++i) x[32 + i] = 0.0f;                         // block 1: zeros
      for (int i = 0; i < 32; ++i) x[64 + i] = std::ldexp(x[64 + i], -135);  // block 2: subnormal
      const Reference want =
          Float64MatVec(CpuDequantize(type, w, n_rows * n_cols), x, n_rows, n_cols);
      DeviceBuffer d_w = Upload(w), d_x = Upload(x), d_y = Poisoned(n_rows);
      ExpectOk(MatVec(*ctx_, type, d_w.data(), n_rows, n_cols, d_x.as<float>(), d_y.as<float>(),
                      MatVecPath::kIntegerTensorCore));
      const std::vector<float> got = Download<float>(d_y.data(), n_rows);
      EXPECT_NMSE_BELOW(std::span<const float>(got), want, kF32Nmse);
    }
  }
  // A non-finite element of x makes every row non-finite, as in f32: an
  // infinity, and a NaN with its sign bit set (the digit split finds both by
  // an integer max over |x|'s bits, where they are the largest).
  for (const GgmlType type : {GgmlType::kQ8_0, GgmlType::kQ4_K, GgmlType::kQ6_K}) {
    for (const float bad : {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::quiet_NaN()}) {
      const int64_t n_rows = 40, n_cols = 512;
      const std::vector<uint8_t> w = RandomData(type, n_rows * n_cols, rng_);
      std::vector<float> x = RandomFloats(n_cols, rng_);
      x[300] = bad;
      // (y starts finite: a NaN poison would pass unwritten.)
      DeviceBuffer d_w = Upload(w), d_x = Upload(x), d_y = Upload(std::vector<float>(n_rows, 1.0f));
      ExpectOk(MatVec(*ctx_, type, d_w.data(), n_rows, n_cols, d_x.as<float>(), d_y.as<float>(),
                      MatVecPath::kIntegerTensorCore));
      for (const float v : Download<float>(d_y.data(), n_rows)) EXPECT_FALSE(std::isfinite(v)) << bad;
    }
  }
  // Shapes and types it does not take are errors, not wrong answers.
  DeviceBuffer d_w = Upload(RandomData(GgmlType::kQ8_0, 4 * 64, rng_)),
               d_x = Upload(RandomFloats(64, rng_)), d_y = Poisoned(4);
  EXPECT_FALSE(MatVec(*ctx_, GgmlType::kQ8_0, d_w.data(), 4, 64, d_x.as<float>(), d_y.as<float>(),
                      MatVecPath::kIntegerTensorCore)
                   .ok());
  DeviceBuffer d_w4 = Upload(RandomData(GgmlType::kQ4_0, 4 * 256, rng_)),
               d_x4 = Upload(RandomFloats(256, rng_));
  EXPECT_FALSE(MatVec(*ctx_, GgmlType::kQ4_0, d_w4.data(), 4, 256, d_x4.as<float>(),
                      d_y.as<float>(), MatVecPath::kIntegerTensorCore)
                   .ok());
  DeviceBuffer d_w6 = Upload(RandomData(GgmlType::kQ6_K, 5 * 768, rng_)),
               d_x6 = Upload(RandomFloats(768, rng_));
  EXPECT_FALSE(MatVec(*ctx_, GgmlType::kQ6_K, static_cast<const uint8_t*>(d_w6.data()) + 210, 4, 768,
                      d_x6.as<float>(), d_y.as<float>(), MatVecPath::kIntegerTensorCore)
                   .ok());  // a matrix starting off a 16-byte boundary
}

// The Q8_0, Q4_K and Q6_K SIMT kernels (kDirect) where kAuto takes the
// tensor cores; Q6_K rows of an odd block count (1536 x 8960's 35 blocks),
// which only the tensor-core and generic kernels take, on the generic one.
TEST_F(CudaOps, MatVecSimtKernelsMatchFloat64) {
  for (const GgmlType type : {GgmlType::kQ8_0, GgmlType::kQ4_K, GgmlType::kQ6_K}) {
    for (const auto& [n_rows, n_cols] :
         std::vector<std::pair<int64_t, int64_t>>{{17, 2048}, {4099, 1536}, {96, 8960}}) {
      SCOPED_TRACE(std::string(gguf::TypeName(type)) + " " + std::to_string(n_rows) + "x" +
                   std::to_string(n_cols));
      const std::vector<uint8_t> w = RandomData(type, n_rows * n_cols, rng_);
      const std::vector<float> x = RandomFloats(n_cols, rng_);
      const Reference want =
          Float64MatVec(CpuDequantize(type, w, n_rows * n_cols), x, n_rows, n_cols);
      DeviceBuffer d_w = Upload(w), d_x = Upload(x), d_y = Poisoned(n_rows);
      ExpectOk(MatVec(*ctx_, type, d_w.data(), n_rows, n_cols, d_x.as<float>(), d_y.as<float>(),
                      MatVecPath::kDirect));
      EXPECT_NMSE_BELOW(std::span<const float>(Download<float>(d_y.data(), n_rows)), want,
                        kF32Nmse);
    }
  }
}

TEST_F(CudaOps, MatVecHasDirectKernelsForTheDecodeTypes) {
  for (const GgmlType type :
       {GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_0, GgmlType::kQ5_1, GgmlType::kQ8_0,
        GgmlType::kQ2_K, GgmlType::kQ3_K, GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K,
        GgmlType::kIQ4_NL, GgmlType::kIQ4_XS, GgmlType::kF16, GgmlType::kBF16, GgmlType::kF32}) {
    EXPECT_TRUE(MatVecHasDirect(type)) << gguf::TypeName(type);
  }
  EXPECT_FALSE(MatVecHasDirect(GgmlType::kIQ2_XXS));
}

// The fused decode products (MatVecParts, MatVecResidual, MatVecGlu) on
// types with a fast kernel and on IQ4_XS, which has none (the unfused
// fallback), each
// output against float64: the products as Float64MatVec, the epilogues on
// top (a bias or residual adds one rounding; the activation is checked on
// the products the op itself returned, so its own error is isolated). Row
// counts: a few (columns split across warps), odd, and > 4096 (two rows per
// warp, a partial last block); columns wide enough for several steps.
TEST_F(CudaOps, FusedMatVecsMatchFloat64) {
  for (const GgmlType type :
       {GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K, GgmlType::kQ8_0, GgmlType::kQ4_0,
        GgmlType::kF16, GgmlType::kBF16, GgmlType::kF32, GgmlType::kQ4_1, GgmlType::kIQ4_XS}) {
    SCOPED_TRACE(gguf::TypeName(type));
    const int64_t n_cols = IsPlain(type) ? 1024 : 6 * 256;
    const std::vector<float> x = RandomFloats(n_cols, rng_);
    DeviceBuffer d_x = Upload(x);
    // MatVecParts: three matrices (the q, k, v shapes of a GQA model), two
    // with a bias; small, and large enough for the tensor-core kernels; the
    // third with q and k meeting inside a 16-row block (6152 = 384 * 16 + 8),
    // so the tensor-core kernels' blocks take both ways to their copies'
    // sources (one base pointer, and the per-row search across the boundary).
    for (const auto& rows : {std::array<int64_t, 3>{96, 16, 40}, std::array<int64_t, 3>{6144, 512, 512},
                             std::array<int64_t, 3>{6152, 504, 512}}) {
      SCOPED_TRACE(std::to_string(rows[0]) + " q rows");
      std::vector<std::vector<uint8_t>> w(3);
      std::vector<std::vector<float>> bias(3);
      std::vector<DeviceBuffer> d_w(3), d_b(3), d_y(3);
      MatVecPart parts[3];
      for (int i = 0; i < 3; ++i) {
        w[i] = RandomData(type, rows[i] * n_cols, rng_);
        bias[i] = RandomFloats(rows[i], rng_);
        d_w[i] = Upload(w[i]);
        d_b[i] = Upload(bias[i]);
        d_y[i] = Poisoned(rows[i]);
        parts[i] = MatVecPart{d_w[i].data(), rows[i], d_y[i].as<float>(),
                              i == 1 ? nullptr : d_b[i].as<float>()};
      }
      ExpectOk(MatVecParts(*ctx_, type, n_cols, d_x.as<float>(), parts, 3));
      for (int i = 0; i < 3; ++i) {
        SCOPED_TRACE("part " + std::to_string(i));
        Reference want =
            Float64MatVec(CpuDequantize(type, w[i], rows[i] * n_cols), x, rows[i], n_cols);
        for (int64_t r = 0; r < rows[i] && i != 1; ++r) {
          want.value[r] += bias[i][r];
          want.scale[r] += std::abs(bias[i][r]);
        }
        const std::vector<float> got = Download<float>(d_y[i].data(), rows[i]);
        EXPECT_NMSE_BELOW(std::span<const float>(got), want, kF32Nmse);
      }
    }
    // 6400 rows: the tensor-core kernels' residual epilogue (their GLU pairs from 4099 up).
    for (const int64_t n_rows : {int64_t{3}, int64_t{37}, int64_t{4099}, int64_t{6400}}) {
      SCOPED_TRACE(std::to_string(n_rows) + " rows");
      const std::vector<uint8_t> wa = RandomData(type, n_rows * n_cols, rng_),
                                 wb = RandomData(type, n_rows * n_cols, rng_);
      const Reference pa =
          Float64MatVec(CpuDequantize(type, wa, n_rows * n_cols), x, n_rows, n_cols);
      const Reference pb =
          Float64MatVec(CpuDequantize(type, wb, n_rows * n_cols), x, n_rows, n_cols);
      DeviceBuffer d_wa = Upload(wa), d_wb = Upload(wb);
      // MatVecResidual, in place over the residual as the forward pass calls it.
      const std::vector<float> resid = RandomFloats(n_rows, rng_);
      DeviceBuffer d_res = Upload(resid), d_pre = Poisoned(n_rows);
      ExpectOk(MatVecResidual(*ctx_, type, d_wa.data(), n_rows, n_cols, d_x.as<float>(),
                              d_res.as<float>(), d_pre.as<float>(), d_res.as<float>()));
      Reference want_y = pa;
      for (int64_t r = 0; r < n_rows; ++r) {
        want_y.value[r] += resid[r];
        want_y.scale[r] += std::abs(resid[r]);
      }
      const std::vector<float> pre = Download<float>(d_pre.data(), n_rows),
                               y = Download<float>(d_res.data(), n_rows);
      EXPECT_NMSE_BELOW(std::span<const float>(pre), pa, kF32Nmse);
      EXPECT_NMSE_BELOW(std::span<const float>(y), want_y, kF32Nmse);
      // MatVecGlu, both activations.
      for (const GluKind kind : {GluKind::kSwiglu, GluKind::kGegluTanh}) {
        SCOPED_TRACE(kind == GluKind::kSwiglu ? "swiglu" : "geglu");
        DeviceBuffer d_gate = Poisoned(n_rows), d_up = Poisoned(n_rows), d_out = Poisoned(n_rows);
        ExpectOk(MatVecGlu(*ctx_, type, d_wa.data(), d_wb.data(), n_rows, n_cols, d_x.as<float>(),
                           kind, d_gate.as<float>(), d_up.as<float>(), d_out.as<float>()));
        const std::vector<float> gate = Download<float>(d_gate.data(), n_rows),
                                 up = Download<float>(d_up.data(), n_rows),
                                 out = Download<float>(d_out.data(), n_rows);
        EXPECT_NMSE_BELOW(std::span<const float>(gate), pa, kF32Nmse);
        EXPECT_NMSE_BELOW(std::span<const float>(up), pb, kF32Nmse);
        Reference want_out(static_cast<size_t>(n_rows));
        for (int64_t r = 0; r < n_rows; ++r) {
          const double z = gate[r];
          const double act = kind == GluKind::kSwiglu
                                 ? z / (1.0 + std::exp(-z))
                                 : 0.5 * z *
                                       (1.0 + std::tanh(std::sqrt(2.0 / std::numbers::pi) * z *
                                                        (1.0 + 0.044715 * z * z)));
          want_out.value[r] = act * up[r];
          want_out.scale[r] = std::abs(z * up[r]);
        }
        EXPECT_NMSE_BELOW(std::span<const float>(out), want_out, kF32Nmse);
      }
    }
  }
  // Aliasing the activation onto an input is refused, not silently wrong.
  DeviceBuffer buf = Poisoned(4096);
  EXPECT_FALSE(MatVecGlu(*ctx_, GgmlType::kF32, buf.data(), buf.data(), 4, 32, buf.as<float>(),
                         GluKind::kSwiglu, buf.as<float>() + 1024, buf.as<float>() + 2048,
                         buf.as<float>() + 1024)
                   .ok());
  EXPECT_FALSE(MatVecParts(*ctx_, GgmlType::kF32, 32, buf.as<float>(), nullptr, 1).ok());
}

// The down projections as the forward pass calls them (MatVecResidual in
// place over the residual) on rows of 32 super-blocks or more, which the
// Q4_K and Q6_K tensor-core kernels take fed from x's digit table
// (MatVecXTableKernel, one launch before the product's): the 7B shape
// (3584 x 18944, 74 super-blocks: Q4_K in stages of two, TcQ4KW), the 1.5B
// one (1536 x 8960, 35: an odd count, so Q4_K's stages of one; Q6_K's rows
// of an odd block count, TcQ6KDeep), a partial last block (1037 rows), and
// more 16-row blocks than two 8-warp blocks a multiprocessor hold (8704 x
// 8192 on an H100 or H200: 544 blocks, the table-fed 4-warp launches).
// Against float64 at the f32 threshold, twice in a row from
// poisoned outputs (the table is rewritten by each launch), the same bits
// both times.
TEST_F(CudaOps, MatVecResidualLongRowsMatchFloat64) {
  for (const GgmlType type : {GgmlType::kQ4_K, GgmlType::kQ6_K}) {
    SCOPED_TRACE(gguf::TypeName(type));
    for (const auto& [n_rows, n_cols] :
         std::vector<std::pair<int64_t, int64_t>>{{3584, 18944}, {1536, 8960}, {1037, 18944}, {8704, 8192}}) {
      SCOPED_TRACE(std::to_string(n_rows) + "x" + std::to_string(n_cols));
      const std::vector<uint8_t> w = RandomData(type, n_rows * n_cols, rng_);
      const std::vector<float> x = RandomFloats(n_cols, rng_), resid = RandomFloats(n_rows, rng_);
      const Reference product = Float64MatVec(CpuDequantize(type, w, n_rows * n_cols), x, n_rows, n_cols);
      Reference want = product;
      for (int64_t r = 0; r < n_rows; ++r) {
        want.value[r] += resid[r];
        want.scale[r] += std::abs(resid[r]);
      }
      DeviceBuffer d_w = Upload(w), d_x = Upload(x);
      std::vector<std::vector<uint32_t>> bits;
      for (int run = 0; run < 2; ++run) {
        DeviceBuffer d_res = Upload(resid), d_pre = Poisoned(n_rows);
        ExpectOk(MatVecResidual(*ctx_, type, d_w.data(), n_rows, n_cols, d_x.as<float>(), d_res.as<float>(),
                                d_pre.as<float>(), d_res.as<float>()));
        const std::vector<float> pre = Download<float>(d_pre.data(), n_rows),
                                 y = Download<float>(d_res.data(), n_rows);
        EXPECT_NMSE_BELOW(std::span<const float>(pre), product, kF32Nmse);
        EXPECT_NMSE_BELOW(std::span<const float>(y), want, kF32Nmse);
        bits.push_back(Download<uint32_t>(d_res.data(), n_rows));
      }
      EXPECT_EQ(bits[0], bits[1]) << "the same product twice gave different bits";
    }
  }
}


// Q6_K products of short rows on the tensor cores from one matrix of whole
// 16-row blocks, 8192 rows or more (kSpanMinRows): each block's rows
// fetched as one contiguous span (kSpan, the output head's launch), with
// and without the output norm folded in, rows of an even block count (14,
// 6: words 4-byte aligned per stage parity), an odd one (15: per row) and
// one block, an odd number of 16-row blocks (8208 rows: 513); 4224 rows
// keep the stages' windows (below kSpanMinRows). Against float64 (RmsNorm
// too) at the f32 threshold, from poisoned outputs.
TEST_F(CudaOps, MatVecQ6KSpansMatchFloat64) {
  constexpr float kEps = 1e-6f;
  for (const auto& [n_rows, n_cols] :
       std::vector<std::pair<int64_t, int64_t>>{{8448, 3584}, {8208, 1536}, {8192, 3840}, {8192, 256}, {4224, 3584}}) {
    for (const bool fold : {false, true}) {
      SCOPED_TRACE(std::to_string(n_rows) + "x" + std::to_string(n_cols) + (fold ? " folded norm" : ""));
      const std::vector<uint8_t> w = RandomData(GgmlType::kQ6_K, n_rows * n_cols, rng_);
      std::vector<float> x = RandomFloats(n_cols, rng_, 4.0);
      const std::vector<float> nw = RandomFloats(n_cols, rng_, 2.0);
      std::vector<float> xin = x;  // the product's input: x, or float64 RmsNorm(x) rounded once
      if (fold) {
        double ss = 0;
        for (const float v : x) ss += static_cast<double>(v) * v;
        const double row_scale = 1.0 / std::sqrt(ss / static_cast<double>(n_cols) + kEps);
        for (int64_t i = 0; i < n_cols; ++i) xin[i] = static_cast<float>(x[i] * row_scale * nw[i]);
      }
      const Reference want = Float64MatVec(CpuDequantize(GgmlType::kQ6_K, w, n_rows * n_cols), xin, n_rows, n_cols);
      DeviceBuffer d_w = Upload(w), d_x = Upload(x), d_nw = Upload(nw), d_y = Poisoned(n_rows),
                   d_normed = Poisoned(n_cols);
      const MatVecPart part{d_w.data(), n_rows, d_y.as<float>(), nullptr};
      const NormFold nf{d_nw.as<float>(), kEps, d_normed.as<float>()};
      ExpectOk(MatVecParts(*ctx_, GgmlType::kQ6_K, n_cols, d_x.as<float>(), &part, 1, fold ? &nf : nullptr));
      EXPECT_NMSE_BELOW(std::span<const float>(Download<float>(d_y.data(), n_rows)), want, kF32Nmse);
    }
  }
}

// The fused decode products with RMSNorm folded in (NormFold): against
// float64 RmsNorm(x) (its weights too) then the product. A launch that folds
// the norm leaves the `normed` scratch untouched (poisoned): Q8_0 and Q4_K
// on the tensor cores, which they take on rows of 8192+ columns or one
// 16-row block per multiprocessor, Q6_K from one block per multiprocessor
// or on rows of an odd block count (KeepTensorCore). The cases cover the
// launch variants with a folded norm: 8 warps (few rows of 8192 columns;
// 2560 rows of 2304 columns, Q6_K's 8 copy lanes a row), 16-row blocks of 4
// warps (2560 q/k/v rows of 1536), 32-row blocks (12672 gate/up rows); and
// the K-quant SIMT kernels that stage x with one row per warp
// group (Q4_K, Q5_K, Q6_K q/k/v and single parts of 1536 columns; 152 rows
// take 4 warps a row, 2560 one). Every other case (Q8_0 and F16 on the SIMT
// kernels, the K-quants' gate/up pairs and 8192-column rows there) runs
// RmsNorm into `normed` first, which must then hold RmsNorm's values;
// MatVecFoldsNorm must say which for MatVecParts. x spans three
// orders of magnitude (the row scale matters); the norm weights have both
// signs.
TEST_F(CudaOps, FusedMatVecsFoldRmsNorm) {
  constexpr float kEps = 1e-6f;
  struct Case {
    int64_t n_cols;
    std::array<int64_t, 3> rows;  // q, k, v
    int64_t glu_rows;
  };
  const int sms = ctx_->multiprocessors();
  for (const GgmlType type :
       {GgmlType::kQ8_0, GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K, GgmlType::kF16}) {
    // (9504 gate/up pairs: 19008 virtual rows, which Q4_K's 48-row blocks
    // fill in one wave on an H100 or H200: LaunchTensorCore's 3 tiles.
    // 18944 pairs, the 7B shape's: 2368 groups of 16 rows, which Q4_K's
    // TcWarp takes on a card of 132 multiprocessors, 9 warps a block, its
    // stages by tensor-map copies (kTma); 18940 pairs: the same launch with
    // a last group of 4 pairs, whose boxes reach 4 rows past each matrix.)
    for (const Case& c : {Case{1536, {96, 16, 40}, 37}, Case{8192, {96, 16, 40}, 37},
                          Case{1536, {2048, 256, 256}, 6336}, Case{2304, {96, 16, 40}, 37},
                          Case{2304, {2048, 256, 256}, 37}, Case{1536, {96, 16, 40}, 9504},
                          Case{1536, {96, 16, 40}, 18944}, Case{1536, {96, 16, 40}, 18940}}) {
      const int64_t n_cols = c.n_cols;
      // The documented rule: the tensor-core kernels (Q8_0 and Q4_K on rows of
      // 8192+ columns or from one 16-row block per multiprocessor, Q6_K below),
      // and the K-quant
      // SIMT kernels that stage x (rows under 8192 columns) with one row per
      // warp group (no gate/up pairs, under 4096 rows).
      const auto folds = [&](int64_t virtual_rows, bool pairs) {
        // Q6_K: rows of an odd block count always, else from a block per multiprocessor.
        const bool tc = type == GgmlType::kQ6_K
                            ? (n_cols / 256) % 2 == 1 || (virtual_rows + 15) / 16 >= sms
                            : (type == GgmlType::kQ8_0 || type == GgmlType::kQ4_K) &&
                                  (n_cols >= 8192 || (virtual_rows + 15) / 16 >= sms);
        const bool k_quant = type == GgmlType::kQ4_K || type == GgmlType::kQ5_K || type == GgmlType::kQ6_K;
        return tc || (k_quant && n_cols < 8192 && !pairs && virtual_rows < 4096);
      };
      SCOPED_TRACE(std::string(gguf::TypeName(type)) + " " + std::to_string(n_cols) + " columns, " +
                   std::to_string(c.rows[0]) + " q rows");
      std::vector<float> x = RandomFloats(n_cols, rng_, 4.0);
      std::uniform_int_distribution<int> e(-5, 5);
      for (float& v : x) v = std::ldexp(v, e(rng_));
      const std::vector<float> nw = RandomFloats(n_cols, rng_, 2.0);
      double ss = 0;
      for (const float v : x) ss += static_cast<double>(v) * v;
      const double row_scale = 1.0 / std::sqrt(ss / static_cast<double>(n_cols) + kEps);
      std::vector<float> xn(n_cols);  // float64 RmsNorm, rounded once
      Reference want_norm(static_cast<size_t>(n_cols));
      for (int64_t i = 0; i < n_cols; ++i) {
        want_norm.value[i] = x[i] * row_scale * nw[i];
        xn[i] = static_cast<float>(want_norm.value[i]);
      }
      want_norm.ScaleByValue();
      DeviceBuffer d_x = Upload(x), d_nw = Upload(nw);
      const auto check_normed = [&](const DeviceBuffer& d_normed, bool folded) {
        SCOPED_TRACE(folded ? "folded" : "RmsNorm first");
        const std::vector<float> normed = Download<float>(d_normed.data(), n_cols);
        if (folded) {
          EXPECT_TRUE(std::all_of(normed.begin(), normed.end(), [](float v) { return std::isnan(v); }))
              << "the folded launch wrote the normed scratch";
        } else {
          EXPECT_NMSE_BELOW(std::span<const float>(normed), want_norm, kF32Nmse);
        }
      };
      // MatVecParts: q, k, v with biases on two, and one part (the output head).
      std::vector<std::vector<uint8_t>> w(3);
      std::vector<std::vector<float>> bias(3);
      std::vector<DeviceBuffer> d_w(3), d_b(3), d_y(3);
      MatVecPart parts[3];
      for (int i = 0; i < 3; ++i) {
        w[i] = RandomData(type, c.rows[i] * n_cols, rng_);
        bias[i] = RandomFloats(c.rows[i], rng_);
        d_w[i] = Upload(w[i]);
        d_b[i] = Upload(bias[i]);
        d_y[i] = Poisoned(c.rows[i]);
        parts[i] = MatVecPart{d_w[i].data(), c.rows[i], d_y[i].as<float>(), i == 1 ? nullptr : d_b[i].as<float>()};
      }
      for (const int n_parts : {3, 1}) {
        SCOPED_TRACE(std::to_string(n_parts) + " parts");
        DeviceBuffer d_normed = Poisoned(n_cols);
        const NormFold fold{d_nw.as<float>(), kEps, d_normed.as<float>()};
        ExpectOk(MatVecParts(*ctx_, type, n_cols, d_x.as<float>(), parts, n_parts, &fold));
        const int64_t all_rows = n_parts == 3 ? c.rows[0] + c.rows[1] + c.rows[2] : c.rows[0];
        const void* ws[3] = {d_w[0].data(), d_w[1].data(), d_w[2].data()};
        EXPECT_EQ(MatVecFoldsNorm(*ctx_, type, n_cols, ws, n_parts, all_rows), folds(all_rows, false));
        check_normed(d_normed, folds(all_rows, false));
        for (int i = 0; i < n_parts; ++i) {
          SCOPED_TRACE("part " + std::to_string(i));
          Reference want = Float64MatVec(CpuDequantize(type, w[i], c.rows[i] * n_cols), xn, c.rows[i], n_cols);
          for (int64_t r = 0; r < c.rows[i] && i != 1; ++r) {
            want.value[r] += bias[i][r];
            want.scale[r] += std::abs(bias[i][r]);
          }
          EXPECT_NMSE_BELOW(std::span<const float>(Download<float>(d_y[i].data(), c.rows[i])), want, kF32Nmse);
        }
      }
      // MatVecGlu: gate and up of RmsNorm(x), then the activation.
      const int64_t n_rows = c.glu_rows;
      const std::vector<uint8_t> wa = RandomData(type, n_rows * n_cols, rng_),
                                 wb = RandomData(type, n_rows * n_cols, rng_);
      DeviceBuffer d_wa = Upload(wa), d_wb = Upload(wb), d_normed = Poisoned(n_cols);
      DeviceBuffer d_gate = Poisoned(n_rows), d_up = Poisoned(n_rows), d_out = Poisoned(n_rows);
      const NormFold fold{d_nw.as<float>(), kEps, d_normed.as<float>()};
      ExpectOk(MatVecGlu(*ctx_, type, d_wa.data(), d_wb.data(), n_rows, n_cols, d_x.as<float>(), GluKind::kSwiglu,
                         d_gate.as<float>(), d_up.as<float>(), d_out.as<float>(), &fold));
      check_normed(d_normed, folds(2 * n_rows, true));
      const std::vector<float> gate = Download<float>(d_gate.data(), n_rows),
                               up = Download<float>(d_up.data(), n_rows),
                               out = Download<float>(d_out.data(), n_rows);
      EXPECT_NMSE_BELOW(std::span<const float>(gate),
                        Float64MatVec(CpuDequantize(type, wa, n_rows * n_cols), xn, n_rows, n_cols), kF32Nmse);
      EXPECT_NMSE_BELOW(std::span<const float>(up),
                        Float64MatVec(CpuDequantize(type, wb, n_rows * n_cols), xn, n_rows, n_cols), kF32Nmse);
      Reference want_out(static_cast<size_t>(n_rows));
      for (int64_t r = 0; r < n_rows; ++r) {
        const double z = gate[r];
        want_out.value[r] = z / (1.0 + std::exp(-z)) * up[r];
        want_out.scale[r] = std::abs(z * up[r]);
      }
      EXPECT_NMSE_BELOW(std::span<const float>(out), want_out, kF32Nmse);
    }
  }
  // Misaligned norm weights, and a scratch that overlaps x (the unfused
  // path would overwrite the residual row), are refused.
  DeviceBuffer buf = Poisoned(4096), d_w = Upload(RandomData(GgmlType::kQ8_0, 4 * 256, rng_));
  const NormFold bad{buf.as<float>() + 1, 1e-6f, buf.as<float>() + 1024};
  const MatVecPart part{d_w.data(), 4, buf.as<float>() + 2048, nullptr};
  EXPECT_FALSE(MatVecParts(*ctx_, GgmlType::kQ8_0, 256, buf.as<float>() + 3072, &part, 1, &bad).ok());
  const NormFold overlapping{buf.as<float>(), 1e-6f, buf.as<float>() + 3072 + 128};
  EXPECT_FALSE(MatVecParts(*ctx_, GgmlType::kQ8_0, 256, buf.as<float>() + 3072, &part, 1, &overlapping).ok());
}

// RopeFold (ops.h): QkvPost's rotation and cache stores in the q/k/v
// products' epilogue must give exactly what MatVecParts then QkvPost give:
// bit for bit (the same products, QkvPost's own arithmetic), in q, k, v and
// both caches, for NEOX and NORM rotations, a partial one (n_rot <
// head_dim), with and without a folded norm, biases on q and v, the 7B
// Q4_K_M layout (Q4_K q/k on the tensor cores, a Q6_K v apart on a SIMT
// kernel, store only), and a store row past the cache (nothing stored);
// and the same with the angles read from a RopeTable (RopeFold::cos_sin,
// as a decode step passes them). MatVecFoldsRope must say which launches
// fold; a rotated part on a launch without the tensor cores is refused and
// nothing is written; bad arguments are refused.
TEST_F(CudaOps, MatVecPartsRopeFoldIsMatVecPartsThenQkvPost) {
  constexpr int kHeadDim = 128, kHeadsKv = 2;
  constexpr int64_t kCols = 2048, kCacheRows = 8;
  constexpr float kEps = 1e-6f, kBase = 1e6f;
  const int sms = ctx_->multiprocessors();
  struct Case {
    GgmlType qk_type, v_type;
    int n_rot;
    RopeMode mode;
    bool norm;
    int32_t pos, row;
    bool wide = false;  // 3584 columns (14 stages) and over two blocks per multiprocessor
    bool three = false;  // and 18944 rows: 3-tile Q4_K blocks on an H100 or H200 (395 of them, 132 SMs)
  };
  const std::vector<float> x = RandomFloats(kCols, rng_, 2.0), nw = RandomFloats(kCols, rng_);
  DeviceBuffer d_x = Upload(x);
  for (const Case& c : {Case{GgmlType::kQ8_0, GgmlType::kQ8_0, 128, RopeMode::kNeox, true, 5, 5},
                        Case{GgmlType::kQ4_K, GgmlType::kQ6_K, 64, RopeMode::kNeox, false, 3, 3},
                        Case{GgmlType::kQ4_K, GgmlType::kQ6_K, 128, RopeMode::kNeox, true, 6, 7},
                        Case{GgmlType::kQ4_K, GgmlType::kQ4_K, 128, RopeMode::kNorm, true, 7, 9},
                        Case{GgmlType::kQ8_0, GgmlType::kQ8_0, 96, RopeMode::kNorm, false, 2, 2},
                        // Q6_K q/k/v in one launch: TcQ6K's kRope variant.
                        Case{GgmlType::kQ6_K, GgmlType::kQ6_K, 128, RopeMode::kNeox, true, 4, 4},
                        // Qwen2.5-7B's q/k/v shape: 14 stages a row, more than two
                        // 16-row blocks per multiprocessor (4-warp blocks).
                        Case{GgmlType::kQ4_K, GgmlType::kQ4_K, 128, RopeMode::kNeox, true, 1, 1, true},
                        Case{GgmlType::kQ4_K, GgmlType::kQ4_K, 128, RopeMode::kNeox, false, 2, 2, true},
                        // 18944 rows (the 7B gate/up matrix's): more than a wave
                        // of blocks, which 48-row blocks fill best (LaunchTensorCore).
                        Case{GgmlType::kQ4_K, GgmlType::kQ4_K, 128, RopeMode::kNeox, true, 3, 4, true, true}}) {
    SCOPED_TRACE(std::string(gguf::TypeName(c.qk_type)) + " q/k, " + std::string(gguf::TypeName(c.v_type)) + " v, n_rot " +
                 std::to_string(c.n_rot) + (c.mode == RopeMode::kNeox ? " NEOX" : " NORM") +
                 (c.norm ? ", norm folded" : "") + ", position " + std::to_string(c.pos) + " into row " +
                 std::to_string(c.row) + (c.wide ? ", 3584 columns" : ""));
    // Enough q heads that q + k takes the tensor cores (one 16-row block per
    // multiprocessor: KeepTensorCore; wide: more than two).
    const int64_t cols = c.wide ? 3584 : kCols;
    int n_head = 16;
    while ((n_head + kHeadsKv) * kHeadDim / 16 < (c.wide ? 2 * sms + 1 : sms)) n_head += kHeadsKv;
    if (c.three) n_head = 18944 / kHeadDim - 2 * kHeadsKv;
    const int64_t rows[3] = {int64_t{n_head} * kHeadDim, kHeadsKv * kHeadDim, kHeadsKv * kHeadDim};
    DeviceBuffer d_xc = Upload(c.wide ? RandomFloats(cols, rng_, 2.0) : x),
                 d_nw = Upload(c.wide ? RandomFloats(cols, rng_) : nw);
    std::vector<DeviceBuffer> d_w(3), d_b(3);
    for (int i = 0; i < 3; ++i) {
      d_w[i] = Upload(RandomData(i == 2 ? c.v_type : c.qk_type, rows[i] * cols, rng_));
      d_b[i] = Upload(RandomFloats(rows[i], rng_));
    }
    DeviceBuffer d_pos = Upload(std::vector<int32_t>{c.pos}), d_row = Upload(std::vector<int32_t>{c.row});
    // Launch groups as the forward pass makes them: one per type.
    const bool one = c.v_type == c.qk_type;
    const std::vector<std::pair<int, int>> groups = one ? std::vector<std::pair<int, int>>{{0, 3}}
                                                        : std::vector<std::pair<int, int>>{{0, 2}, {2, 3}};
    // Runs every group's MatVecParts (with `fold`: roles q rotate, k rotate
    // and store, v store; with `table`, the angles from RopeTable); returns
    // q, k, v, k cache, v cache as downloaded.
    const auto run = [&](bool fold, bool table) {
      std::vector<DeviceBuffer> y(3);
      for (int i = 0; i < 3; ++i) y[i] = Poisoned(rows[i]);
      DeviceBuffer kc = Poisoned(kCacheRows * rows[1]), vc = Poisoned(kCacheRows * rows[2]);
      DeviceBuffer normed = Poisoned(cols), cs = Poisoned(c.n_rot);
      if (table) ExpectOk(RopeTable(*ctx_, d_pos.as<int32_t>(), c.n_rot, kBase, cs.as<float>()));
      const NormFold norm{d_nw.as<float>(), kEps, normed.as<float>()};
      for (const auto& [first, end] : groups) {
        MatVecPart parts[3];
        RopeFold rope{.role = {},
                      .positions = d_pos.as<int32_t>(),
                      .store_rows = d_row.as<int32_t>(),
                      .k_cache = kc.as<float>(),
                      .v_cache = vc.as<float>(),
                      .n_cache_rows = kCacheRows,
                      .head_dim = kHeadDim,
                      .n_rot = c.n_rot,
                      .base = kBase,
                      .mode = c.mode,
                      .cos_sin = table ? cs.as<float>() : nullptr};
        const void* ws[3] = {};
        int64_t n_rows = 0;
        for (int i = first; i < end; ++i) {
          parts[i - first] = MatVecPart{d_w[i].data(), rows[i], y[i].as<float>(), i == 1 ? nullptr : d_b[i].as<float>()};
          rope.role[i - first] = i == 0 ? PartRole::kRotate : i == 1 ? PartRole::kRotateStore : PartRole::kStore;
          ws[i - first] = d_w[i].data();
          n_rows += rows[i];
        }
        const GgmlType type = first == 2 ? c.v_type : c.qk_type;
        if (fold) {
          EXPECT_TRUE(MatVecFoldsRope(*ctx_, type, cols, ws, end - first, n_rows, first < 2));
        }
        ExpectOk(MatVecParts(*ctx_, type, cols, d_xc.as<float>(), parts, end - first, c.norm ? &norm : nullptr,
                             fold ? &rope : nullptr));
      }
      if (!fold) {
        ExpectOk(QkvPost(*ctx_, y[0].as<float>(), y[1].as<float>(), y[2].as<float>(), d_pos.as<int32_t>(),
                         d_row.as<int32_t>(), 1, n_head, kHeadsKv, kHeadDim, c.n_rot, kBase, c.mode, nullptr, nullptr,
                         kEps, kc.as<float>(), vc.as<float>(), kCacheRows));
      }
      std::vector<std::vector<uint32_t>> out;
      for (int i = 0; i < 3; ++i) out.push_back(Download<uint32_t>(y[i].data(), rows[i]));
      out.push_back(Download<uint32_t>(kc.data(), kCacheRows * rows[1]));
      out.push_back(Download<uint32_t>(vc.data(), kCacheRows * rows[2]));
      return out;
    };
    const auto want = run(false, false);
    for (const bool table : {false, true}) {
      SCOPED_TRACE(table ? "angles from RopeTable" : "angles in the launch");
      const auto got = run(true, table);
      const char* names[5] = {"q", "k", "v", "k cache", "v cache"};
      for (int i = 0; i < 5; ++i) {
        SCOPED_TRACE(names[i]);
        size_t differ = 0, first_diff = want[i].size();
        for (size_t j = 0; j < want[i].size(); ++j) {
          if (want[i][j] != got[i][j]) {
            ++differ;
            first_diff = std::min(first_diff, j);
          }
        }
        EXPECT_EQ(differ, 0u) << "first at " << first_diff << ": " << std::bit_cast<float>(got[i][first_diff])
                              << " against QkvPost's " << std::bit_cast<float>(want[i][first_diff]);
        // Not vacuous: outputs are finite (cache rows: the stored one).
        if (i < 3) {
          EXPECT_TRUE(std::all_of(got[i].begin(), got[i].end(), [](uint32_t b) { return std::isfinite(std::bit_cast<float>(b)); }));
        }
      }
      const int64_t stored = c.row >= 0 && c.row < kCacheRows ? c.row : -1;
      for (int i = 3; i < 5; ++i) {
        const int64_t len = rows[i - 2];
        for (int64_t r = 0; r < kCacheRows; ++r) {
          const bool finite = std::isfinite(std::bit_cast<float>(got[i][r * len]));
          EXPECT_EQ(finite, r == stored) << names[i] << " row " << r;
        }
      }
    }
  }

  // A rotated part on a launch that does not take the tensor cores (128 + 128
  // rows) is refused, and writes nothing.
  const int64_t small = 128;
  DeviceBuffer d_w = Upload(RandomData(GgmlType::kQ4_K, small * kCols, rng_));
  DeviceBuffer y = Poisoned(small), kc = Poisoned(kCacheRows * small), vc = Poisoned(kCacheRows * small);
  DeviceBuffer d_pos = Upload(std::vector<int32_t>{1});
  const MatVecPart parts[2] = {{d_w.data(), small, y.as<float>(), nullptr}, {d_w.data(), small, kc.as<float>(), nullptr}};
  const void* ws[2] = {d_w.data(), d_w.data()};
  EXPECT_FALSE(MatVecFoldsRope(*ctx_, GgmlType::kQ4_K, kCols, ws, 2, 2 * small, true));
  EXPECT_TRUE(MatVecFoldsRope(*ctx_, GgmlType::kQ4_K, kCols, ws, 2, 2 * small, false));
  RopeFold rope{.role = {PartRole::kRotate, PartRole::kRotateStore},
                .positions = d_pos.as<int32_t>(),
                .store_rows = d_pos.as<int32_t>(),
                .k_cache = vc.as<float>(),
                .v_cache = nullptr,
                .n_cache_rows = kCacheRows,
                .head_dim = kHeadDim,
                .n_rot = kHeadDim,
                .base = kBase,
                .mode = RopeMode::kNeox};
  EXPECT_FALSE(MatVecParts(*ctx_, GgmlType::kQ4_K, kCols, d_x.as<float>(), parts, 2, nullptr, &rope).ok());
  const std::vector<float> untouched = Download<float>(y.data(), small);
  EXPECT_TRUE(std::all_of(untouched.begin(), untouched.end(), [](float v) { return std::isnan(v); }));
  // Parts without rows have nothing to rotate or store: not an error.
  const MatVecPart empty[1] = {{d_w.data(), 0, y.as<float>(), nullptr}};
  EXPECT_TRUE(MatVecParts(*ctx_, GgmlType::kQ4_K, kCols, d_x.as<float>(), empty, 1, nullptr, &rope).ok());
  // Bad arguments: an odd n_rot, parts that are not whole heads, a missing
  // cache for a storing part.
  RopeFold bad = rope;
  bad.n_rot = 63;
  EXPECT_FALSE(MatVecParts(*ctx_, GgmlType::kQ4_K, kCols, d_x.as<float>(), parts, 2, nullptr, &bad).ok());
  bad = rope;
  bad.head_dim = 96;
  bad.n_rot = 96;
  EXPECT_FALSE(MatVecParts(*ctx_, GgmlType::kQ4_K, kCols, d_x.as<float>(), parts, 2, nullptr, &bad).ok());
  bad = rope;
  bad.k_cache = nullptr;
  EXPECT_FALSE(MatVecParts(*ctx_, GgmlType::kQ4_K, kCols, d_x.as<float>(), parts, 2, nullptr, &bad).ok());
  bad = rope;  // a RopeTable that is not 4-byte aligned
  bad.cos_sin = reinterpret_cast<const float*>(reinterpret_cast<const char*>(y.data()) + 2);
  EXPECT_FALSE(MatVecParts(*ctx_, GgmlType::kQ4_K, kCols, d_x.as<float>(), parts, 2, nullptr, &bad).ok());
}

TEST_F(CudaOps, GemmMatchesFloat64) {
  struct Shape {
    int64_t n_tokens, n_rows, n_cols_blocks;
  };
  for (const GgmlType type :
       {GgmlType::kQ4_0, GgmlType::kQ8_0, GgmlType::kQ4_K, GgmlType::kQ6_K, GgmlType::kIQ4_XS,
        GgmlType::kIQ2_XXS, GgmlType::kF16, GgmlType::kBF16, GgmlType::kF32}) {
    SCOPED_TRACE(gguf::TypeName(type));
    const int64_t bs = IsPlain(type) ? 17 : gguf::Traits(type).block_size;
    for (const Shape s : {Shape{1, 17, 3}, Shape{17, 33, 4096 / bs}, Shape{7, 1, 17 * 256 / bs}}) {
      const int64_t n_cols = s.n_cols_blocks * bs;
      SCOPED_TRACE(std::to_string(s.n_tokens) + " tokens, " + std::to_string(s.n_rows) + "x" +
                   std::to_string(n_cols));
      const std::vector<uint8_t> w = RandomData(type, s.n_rows * n_cols, rng_);
      const std::vector<float> x = RandomFloats(s.n_tokens * n_cols, rng_);
      const Reference want =
          Float64MatVec(CpuDequantize(type, w, s.n_rows * n_cols), x, s.n_rows, n_cols, s.n_tokens);
      DeviceBuffer d_w = Upload(w), d_x = Upload(x);
      for (const GemmMath math : {GemmMath::kF32, GemmMath::kTf32, GemmMath::kF16}) {
        SCOPED_TRACE(math == GemmMath::kF32 ? "f32" : math == GemmMath::kTf32 ? "tf32" : "f16");
        DeviceBuffer d_y = Poisoned(s.n_tokens * s.n_rows);
        ExpectOk(Gemm(*ctx_, type, d_w.data(), s.n_rows, n_cols, d_x.as<float>(), s.n_tokens,
                      d_y.as<float>(), math));
        const std::vector<float> got = Download<float>(d_y.data(), s.n_tokens * s.n_rows);
        EXPECT_NMSE_BELOW(std::span<const float>(got), want,
                          math == GemmMath::kF32 ? kF32Nmse : kReducedPrecisionGemmNmse);
      }
    }
  }
}

// ---------------------------------------------------------------- elementwise

TEST_F(CudaOps, RmsNormMatchesFloat64) {
  constexpr float kEps = 1e-6f;
  for (const int64_t n_rows : {1, 17, 3}) {
    // Row lengths for every register-held size (up to 4, 8, 16, 32 per
    // thread) and the streamed one (past 32 per thread).
    for (const int64_t n_cols : {1, 17, 129, 640, 1536, 3584, 8192, 8193}) {
      for (const bool weighted : {false, true}) {
        for (const bool in_place : {false, true}) {
          SCOPED_TRACE(std::to_string(n_rows) + "x" + std::to_string(n_cols) +
                       (weighted ? " weighted" : "") + (in_place ? " in place" : ""));
          const std::vector<float> x = RandomFloats(n_rows * n_cols, rng_, 3.0);
          const std::vector<float> w = RandomFloats(n_cols, rng_);
          Reference want(x.size());
          for (int64_t r = 0; r < n_rows; ++r) {
            double ss = 0;
            for (int64_t c = 0; c < n_cols; ++c)
              ss += static_cast<double>(x[r * n_cols + c]) * x[r * n_cols + c];
            const double scale = 1.0 / std::sqrt(ss / n_cols + kEps);
            for (int64_t c = 0; c < n_cols; ++c) {
              want.value[r * n_cols + c] = x[r * n_cols + c] * scale * (weighted ? w[c] : 1.0);
            }
          }
          want.ScaleByValue();  // a product per element: nothing cancels
          DeviceBuffer d_x = Upload(x), d_w = Upload(w), d_y = Poisoned(x.size());
          float* y = in_place ? d_x.as<float>() : d_y.as<float>();
          ExpectOk(RmsNorm(*ctx_, d_x.as<float>(), weighted ? d_w.as<float>() : nullptr, n_rows,
                           n_cols, kEps, y));
          const std::vector<float> got = Download<float>(y, x.size());
          EXPECT_NMSE_BELOW(std::span<const float>(got), want, kF32Nmse);
        }
      }
    }
  }
}

// RmsNormResidual is RmsNorm then Add(residual, y): bit for bit.
TEST_F(CudaOps, RmsNormResidualIsRmsNormThenAdd) {
  for (const int64_t n_cols : {17, 640, 3584, 9000}) {
    SCOPED_TRACE(n_cols);
    const int64_t n_rows = 3;
    const std::vector<float> x = RandomFloats(n_rows * n_cols, rng_, 3.0),
                             w = RandomFloats(n_cols, rng_),
                             r = RandomFloats(n_rows * n_cols, rng_);
    DeviceBuffer d_x = Upload(x), d_w = Upload(w), d_r = Upload(r), d_y = Poisoned(x.size());
    DeviceBuffer d_x2 = Upload(x), d_r2 = Upload(r), d_y2 = Poisoned(x.size());
    ExpectOk(RmsNormResidual(*ctx_, d_x.as<float>(), d_w.as<float>(), n_rows, n_cols, 1e-6f,
                             d_y.as<float>(), d_r.as<float>()));
    ExpectOk(
        RmsNorm(*ctx_, d_x2.as<float>(), d_w.as<float>(), n_rows, n_cols, 1e-6f, d_y2.as<float>()));
    ExpectOk(
        Add(*ctx_, d_r2.as<float>(), d_y2.as<float>(), n_rows, n_cols, n_rows, d_r2.as<float>()));
    const std::vector<float> y = Download<float>(d_y.data(), x.size()),
                             y2 = Download<float>(d_y2.data(), x.size()),
                             res = Download<float>(d_r.data(), x.size()),
                             res2 = Download<float>(d_r2.data(), x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      ASSERT_EQ(Bits(y[i]), Bits(y2[i])) << "y " << i;
      ASSERT_EQ(Bits(res[i]), Bits(res2[i])) << "residual " << i;
    }
  }
  DeviceBuffer buf = Poisoned(64);
  EXPECT_FALSE(
      RmsNormResidual(*ctx_, buf.as<float>(), nullptr, 1, 8, 1e-6f, buf.as<float>(), nullptr).ok());
}

// The post-norm, residual add and next pre-norm in one launch: bit for bit
// RmsNormResidual then RmsNorm of the updated residual, at lengths held in
// registers (17 .. 3584), past them (9000: the two launches) and without a
// second weight.
TEST_F(CudaOps, RmsNormResidualNormIsRmsNormResidualThenRmsNorm) {
  for (const int64_t n_cols : {17, 640, 3584, 9000}) {
    for (const bool w2_null : {false, true}) {
      SCOPED_TRACE(std::to_string(n_cols) + (w2_null ? " no w2" : ""));
      const int64_t n_rows = 3;
      const std::vector<float> x = RandomFloats(n_rows * n_cols, rng_, 3.0),
                               w = RandomFloats(n_cols, rng_), w2 = RandomFloats(n_cols, rng_),
                               r = RandomFloats(n_rows * n_cols, rng_);
      DeviceBuffer d_x = Upload(x), d_w = Upload(w), d_w2 = Upload(w2), d_r = Upload(r),
                   d_y = Poisoned(x.size()), d_z = Poisoned(x.size());
      DeviceBuffer d_x2 = Upload(x), d_r2 = Upload(r), d_y2 = Poisoned(x.size()),
                   d_z2 = Poisoned(x.size());
      const float* w2p = w2_null ? nullptr : d_w2.as<float>();
      ExpectOk(RmsNormResidualNorm(*ctx_, d_x.as<float>(), d_w.as<float>(), n_rows, n_cols, 1e-6f,
                                   d_y.as<float>(), d_r.as<float>(), w2p, d_z.as<float>()));
      ExpectOk(RmsNormResidual(*ctx_, d_x2.as<float>(), d_w.as<float>(), n_rows, n_cols, 1e-6f,
                               d_y2.as<float>(), d_r2.as<float>()));
      ExpectOk(RmsNorm(*ctx_, d_r2.as<float>(), w2p, n_rows, n_cols, 1e-6f, d_z2.as<float>()));
      const size_t n = x.size();
      const std::vector<float> y = Download<float>(d_y.data(), n),
                               y2 = Download<float>(d_y2.data(), n),
                               res = Download<float>(d_r.data(), n),
                               res2 = Download<float>(d_r2.data(), n),
                               z = Download<float>(d_z.data(), n),
                               z2 = Download<float>(d_z2.data(), n);
      for (size_t i = 0; i < n; ++i) {
        ASSERT_EQ(Bits(y[i]), Bits(y2[i])) << "y " << i;
        ASSERT_EQ(Bits(res[i]), Bits(res2[i])) << "residual " << i;
        ASSERT_EQ(Bits(z[i]), Bits(z2[i])) << "y2 " << i;
        ASSERT_TRUE(std::isfinite(z[i])) << "y2 " << i;
      }
    }
  }
  DeviceBuffer buf = Poisoned(64);
  EXPECT_FALSE(RmsNormResidualNorm(*ctx_, buf.as<float>(), nullptr, 1, 8, 1e-6f, buf.as<float>(),
                                   buf.as<float>(), nullptr, nullptr)
                   .ok());
}

TEST_F(CudaOps, RopeMatchesFloat64InBothModes) {
  struct Geometry {
    int head_dim, n_rot;
  };
  std::uniform_int_distribution<int32_t> pos_dist(0, 32767);
  for (const RopeMode mode : {RopeMode::kNorm, RopeMode::kNeox}) {
    for (const Geometry g :
         {Geometry{64, 64}, Geometry{128, 64}, Geometry{80, 32}, Geometry{2, 2}}) {
      for (const int64_t n_tokens : {1, 17}) {
        for (const int n_heads : {1, 3}) {
          for (const float base : {10000.0f, 1000000.0f}) {
            for (const bool in_place : {false, true}) {
              SCOPED_TRACE(std::string(mode == RopeMode::kNorm ? "norm" : "neox") + " head_dim " +
                           std::to_string(g.head_dim) + " n_rot " + std::to_string(g.n_rot) +
                           " tokens " + std::to_string(n_tokens) + " heads " +
                           std::to_string(n_heads) + " base " + std::to_string(base) +
                           (in_place ? " in place" : ""));
              const int64_t n = n_tokens * n_heads * g.head_dim;
              const std::vector<float> x = RandomFloats(n, rng_);
              std::vector<int32_t> pos(n_tokens);
              for (auto& p : pos) p = pos_dist(rng_);
              Reference want(n);  // pass-through dimensions: value x, scale |x|
              for (int64_t k = 0; k < n; ++k) {
                want.value[k] = x[k];
                want.scale[k] = std::abs(x[k]);
              }
              for (int64_t t = 0; t < n_tokens; ++t) {
                for (int h = 0; h < n_heads; ++h) {
                  const int64_t o = (t * n_heads + h) * g.head_dim;
                  for (int i = 0; i < g.n_rot / 2; ++i) {
                    const double theta =
                        pos[t] * std::pow(static_cast<double>(base), -2.0 * i / g.n_rot);
                    const int a = mode == RopeMode::kNorm ? 2 * i : i;
                    const int b = mode == RopeMode::kNorm ? 2 * i + 1 : i + g.n_rot / 2;
                    const double x0 = x[o + a], x1 = x[o + b], c = std::cos(theta),
                                 s = std::sin(theta);
                    want.value[o + a] = x0 * c - x1 * s;
                    want.value[o + b] = x0 * s + x1 * c;
                    want.scale[o + a] = std::abs(x0 * c) + std::abs(x1 * s);
                    want.scale[o + b] = std::abs(x0 * s) + std::abs(x1 * c);
                  }
                }
              }
              DeviceBuffer d_x = Upload(x), d_pos = Upload(pos), d_y = Poisoned(n);
              float* y = in_place ? d_x.as<float>() : d_y.as<float>();
              ExpectOk(Rope(*ctx_, d_x.as<float>(), d_pos.as<int32_t>(), n_tokens, n_heads,
                            g.head_dim, g.n_rot, base, mode, y));
              const std::vector<float> got = Download<float>(y, n);
              EXPECT_NMSE_BELOW(std::span<const float>(got), want, kF32Nmse);
              // Dimensions past n_rot pass through unchanged.
              for (int64_t k = 0; k < n; ++k) {
                if (k % g.head_dim >= g.n_rot) {
                  ASSERT_EQ(Bits(got[k]), Bits(x[k])) << k;
                }
              }
            }
          }
        }
      }
    }
  }
}

// RopeTable: each pair's cosine and sine at positions[0], the f64 values
// rounded to f32 (so within an f32 ulp of float64's, and of the angle's own
// f64 error), for both bases the models use, short and long rotations;
// and bit for bit what Rope applies (a Rope of
// x = (1, 0) pairs leaves (cos, sin) in them). Bad arguments are refused and
// write nothing.
TEST_F(CudaOps, RopeTableIsRopesAnglesAndMatchesFloat64) {
  std::uniform_int_distribution<int32_t> pos_dist(0, 131071);
  for (const int n_rot : {2, 64, 128, 256}) {
    for (const float base : {10000.0f, 1000000.0f}) {
      const int32_t pos = pos_dist(rng_);
      SCOPED_TRACE("n_rot " + std::to_string(n_rot) + " base " + std::to_string(base) + " position " +
                   std::to_string(pos));
      DeviceBuffer d_pos = Upload(std::vector<int32_t>{pos}), cs = Poisoned(n_rot);
      ExpectOk(RopeTable(*ctx_, d_pos.as<int32_t>(), n_rot, base, cs.as<float>()));
      const std::vector<float> got = Download<float>(cs.data(), n_rot);
      // Rope of one head of (1, 0) pairs (NORM: pair m at 2m, 2m + 1).
      std::vector<float> ones(n_rot, 0.0f);
      for (int m = 0; m < n_rot / 2; ++m) ones[2 * m] = 1.0f;
      DeviceBuffer d_x = Upload(ones), d_y = Poisoned(n_rot);
      ExpectOk(Rope(*ctx_, d_x.as<float>(), d_pos.as<int32_t>(), 1, 1, n_rot, n_rot, base, RopeMode::kNorm,
                    d_y.as<float>()));
      const std::vector<float> rope = Download<float>(d_y.data(), n_rot);
      for (int m = 0; m < n_rot / 2; ++m) {
        const double theta = pos * std::pow(static_cast<double>(base), -2.0 * m / n_rot);
        const double want[2] = {std::cos(theta), std::sin(theta)};
        for (int k = 0; k < 2; ++k) {
          const float g = got[2 * m + k];
          ASSERT_TRUE(std::isfinite(g)) << "pair " << m;
          const float w = static_cast<float>(want[k]);
          // An f32 ulp of the value, plus what the two f64 angles (ours
          // and std::pow's, each within a few f64 ulps) may differ by.
          const double tol = (std::nextafter(std::abs(w), INFINITY) - std::abs(w)) + theta * 1e-15;
          EXPECT_LE(std::abs(static_cast<double>(g) - want[k]), tol) << "pair " << m << (k ? " sine" : " cosine");
          EXPECT_EQ(std::bit_cast<uint32_t>(g), std::bit_cast<uint32_t>(rope[2 * m + k]))
              << "pair " << m << (k ? " sine" : " cosine") << ": Rope applied " << rope[2 * m + k];
        }
      }
    }
  }
  DeviceBuffer d_pos = Upload(std::vector<int32_t>{3}), cs = Poisoned(64);
  EXPECT_FALSE(RopeTable(*ctx_, d_pos.as<int32_t>(), 63, 1e4f, cs.as<float>()).ok());
  EXPECT_FALSE(RopeTable(*ctx_, d_pos.as<int32_t>(), 0, 1e4f, cs.as<float>()).ok());
  EXPECT_FALSE(RopeTable(*ctx_, d_pos.as<int32_t>(), 64, 0.0f, cs.as<float>()).ok());
  EXPECT_FALSE(RopeTable(*ctx_, d_pos.as<int32_t>(), 64, NAN, cs.as<float>()).ok());
  EXPECT_FALSE(RopeTable(*ctx_, nullptr, 64, 1e4f, cs.as<float>()).ok());
  EXPECT_FALSE(RopeTable(*ctx_, d_pos.as<int32_t>(), 64, 1e4f, nullptr).ok());
  const std::vector<float> untouched = Download<float>(cs.data(), 64);
  EXPECT_TRUE(std::all_of(untouched.begin(), untouched.end(), [](float v) { return std::isnan(v); }));
}

TEST_F(CudaOps, GluMatchesFloat64) {
  for (const GluKind kind : {GluKind::kSwiglu, GluKind::kGegluTanh}) {
    for (const int64_t n : {1, 17, 4097}) {
      for (const bool in_place : {false, true}) {
        SCOPED_TRACE(std::string(kind == GluKind::kSwiglu ? "swiglu" : "geglu") +
                     " n=" + std::to_string(n) + (in_place ? " in place" : ""));
        const std::vector<float> gate = RandomFloats(n, rng_, 3.0), up = RandomFloats(n, rng_);
        Reference want(n);
        for (int64_t i = 0; i < n; ++i) {
          const double z = gate[i];
          const double act = kind == GluKind::kSwiglu
                                 ? z / (1.0 + std::exp(-z))
                                 : 0.5 * z *
                                       (1.0 + std::tanh(std::sqrt(2.0 / std::numbers::pi) * z *
                                                        (1.0 + 0.044715 * z * z)));
          want.value[i] = act * up[i];
          want.scale[i] = std::abs(z * up[i]);
        }
        DeviceBuffer d_gate = Upload(gate), d_up = Upload(up), d_out = Poisoned(n);
        float* out = in_place ? d_gate.as<float>() : d_out.as<float>();
        ExpectOk(Glu(*ctx_, kind, d_gate.as<float>(), d_up.as<float>(), n, out));
        const std::vector<float> got = Download<float>(out, n);
        EXPECT_NMSE_BELOW(std::span<const float>(got), want, kF32Nmse);
      }
    }
  }
}

// ArgMax against std::max_element (the CPU sampler's greedy pick): random
// rows of every length class, planted ties (the first one wins), -inf, and
// NaN at the front (answer 0) and elsewhere (skipped).
TEST_F(CudaOps, ArgMaxIsStdMaxElement) {
  DeviceBuffer d_out = Poisoned<int32_t>(1), d_scratch = Poisoned<uint8_t>(ArgMaxScratchBytes());
  const auto check = [&](const std::vector<float>& x, const std::string& what) {
    SCOPED_TRACE(what + " n=" + std::to_string(x.size()));
    DeviceBuffer d_x = Upload(x);
    ExpectOk(ArgMax(*ctx_, d_x.as<float>(), static_cast<int64_t>(x.size()), d_scratch.data(),
                    d_out.as<int32_t>()));
    const int32_t got = Download<int32_t>(d_out.data(), 1)[0];
    EXPECT_EQ(got, std::max_element(x.begin(), x.end()) - x.begin());
  };
  for (const size_t n :
       {size_t{1}, size_t{17}, size_t{1025}, size_t{151936}, size_t{262144}, size_t{1} << 22}) {
    std::vector<float> x = RandomFloats(n, rng_);
    check(x, "random");
    if (n < 17) continue;
    const float top = *std::max_element(x.begin(), x.end()) + 1.0f;
    x[n - 1] = top;
    x[n / 3] = top;
    x[n / 2] = top;
    check(x, "three tied maxima");
    x[n / 5] = std::numeric_limits<float>::quiet_NaN();
    check(x, "a NaN inside");
    x[0] = std::numeric_limits<float>::quiet_NaN();
    check(x, "NaN first");
    std::fill(x.begin(), x.end(), -std::numeric_limits<float>::infinity());
    check(x, "all -inf");
  }
  EXPECT_FALSE(ArgMax(*ctx_, d_out.as<float>(), 0, d_scratch.data(), d_out.as<int32_t>()).ok());
  EXPECT_FALSE(ArgMax(*ctx_, d_out.as<float>(), 1, nullptr, d_out.as<int32_t>()).ok());

  // A greedy loop's feed: next_id gets the id as well, next_pos one more
  // than it held; neither changes anything else.
  const std::vector<float> x = RandomFloats(151936, rng_);
  const int32_t want = static_cast<int32_t>(std::max_element(x.begin(), x.end()) - x.begin());
  DeviceBuffer d_x = Upload(x), d_feed = Upload(std::vector<int32_t>{-7, 41, 99});
  ExpectOk(ArgMax(*ctx_, d_x.as<float>(), static_cast<int64_t>(x.size()), d_scratch.data(), d_out.as<int32_t>(),
                  d_feed.as<int32_t>(), d_feed.as<int32_t>() + 1));
  EXPECT_EQ(Download<int32_t>(d_out.data(), 1)[0], want);
  EXPECT_EQ(Download<int32_t>(d_feed.data(), 3), (std::vector<int32_t>{want, 42, 99}));
}

// One f32 addition per element: bit-identical to the CPU's.
TEST_F(CudaOps, AddIsExactElementwiseAndBroadcast) {
  for (const auto& [n_rows, n_cols] :
       std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {17, 17}, {3, 4097}}) {
    for (const bool broadcast : {false, true}) {
      SCOPED_TRACE(std::to_string(n_rows) + "x" + std::to_string(n_cols) +
                   (broadcast ? " broadcast" : ""));
      const int64_t b_rows = broadcast ? 1 : n_rows;
      const std::vector<float> a = RandomFloats(n_rows * n_cols, rng_),
                               b = RandomFloats(b_rows * n_cols, rng_);
      DeviceBuffer d_a = Upload(a), d_b = Upload(b), d_out = Poisoned(a.size());
      ExpectOk(
          Add(*ctx_, d_a.as<float>(), d_b.as<float>(), n_rows, n_cols, b_rows, d_out.as<float>()));
      const std::vector<float> got = Download<float>(d_out.data(), a.size());
      for (int64_t i = 0; i < n_rows * n_cols; ++i) {
        const float want = a[i] + b[broadcast ? i % n_cols : i];
        ASSERT_EQ(Bits(got[i]), Bits(want)) << i;
      }
    }
  }
}

// One f32 multiplication per element: bit-identical to the CPU's.
TEST_F(CudaOps, ScaleIsExact) {
  for (const int64_t n : {1, 17, 4097}) {
    const std::vector<float> x = RandomFloats(n, rng_);
    const float s = std::sqrt(2048.0f);
    DeviceBuffer d_x = Upload(x), d_y = Poisoned(n);
    ExpectOk(Scale(*ctx_, d_x.as<float>(), n, s, d_y.as<float>()));
    const std::vector<float> got = Download<float>(d_y.data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(Bits(got[i]), Bits(x[i] * s)) << i;
  }
}

TEST_F(CudaOps, SoftcapMatchesFloat64) {
  for (const int64_t n : {1, 17, 4097}) {
    for (const float cap : {5.0f, 30.0f}) {
      SCOPED_TRACE("n=" + std::to_string(n) + " cap " + std::to_string(cap));
      const std::vector<float> x = RandomFloats(n, rng_, 20.0);
      Reference want(n);
      for (int64_t i = 0; i < n; ++i)
        want.value[i] = cap * std::tanh(static_cast<double>(x[i]) / cap);
      want.ScaleByValue();
      DeviceBuffer d_x = Upload(x), d_y = Poisoned(n);
      ExpectOk(Softcap(*ctx_, d_x.as<float>(), n, cap, d_y.as<float>()));
      const std::vector<float> got = Download<float>(d_y.data(), n);
      EXPECT_NMSE_BELOW(std::span<const float>(got), want, kF32Nmse);
    }
  }
}

// Rows land at their indices; other rows and out-of-range indices are untouched.
TEST_F(CudaOps, StoreRowsScattersByIndex) {
  const int64_t n_cols = 72, n_dst = 9;
  const std::vector<float> src = RandomFloats(4 * n_cols, rng_),
                           dst0 = RandomFloats(n_dst * n_cols, rng_);
  const std::vector<int32_t> rows = {5, 0, -1, 9};  // the last two are outside the table
  DeviceBuffer d_src = Upload(src), d_rows = Upload(rows), d_dst = Upload(dst0);
  ExpectOk(StoreRows(*ctx_, d_src.as<float>(), d_rows.as<int32_t>(), 4, n_cols, d_dst.as<float>(),
                     n_dst));
  const std::vector<float> got = Download<float>(d_dst.data(), dst0.size());
  for (int64_t r = 0; r < n_dst; ++r) {
    const int64_t from = r == 5 ? 0 : r == 0 ? 1 : -1;
    for (int64_t c = 0; c < n_cols; ++c) {
      const float want = from >= 0 ? src[from * n_cols + c] : dst0[r * n_cols + c];
      ASSERT_EQ(Bits(got[r * n_cols + c]), Bits(want)) << "row " << r << " col " << c;
    }
  }
}

// Causal attention against float64. A cache of 1100 rows followed by NaN
// guard rows (reading past n_cache_rows would poison the output); queries
// at positions that give the kernel's key groups a single key, a part of
// one step, many whole steps and a remainder, plus one past the end of the
// cache (window 0 only: it sees every row); a single query at 0 and at the
// last row (decode, where the keys of one query are split over a cluster of
// blocks); GQA groups 1 to 8; windows 0, 1, 8, 200. head_dim from 1 to 512
// reaches every kernel layout: the float4 path (head_dim % 4 == 0, 16-byte
// aligned pointers) with 8, 16 and 32-lane groups and 1, 2, 4 chunks, and
// the scalar path (head_dim not a multiple of 4, or every pointer one float
// off alignment) with 1 to 16 chunks. The error scale of an output is
// sum_j p_j |v_j| (its terms' magnitudes).
TEST_F(CudaOps, AttentionMatchesFloat64) {
  const int64_t n_cache = 1100, n_guard_rows = 2;
  const std::vector<int32_t> batch_positions = {0,   1,   7,   31,  32,   33,   127,
                                                255, 256, 299, 700, 1023, 1098, 1099};
  struct Heads {
    int n_head, n_head_kv, head_dim;
    bool misaligned = false;  // q, caches and out start one float past 16-byte alignment
  };
  const auto check = [&](const Heads& hs, const std::vector<int32_t>& positions, int window) {
    SCOPED_TRACE("heads " + std::to_string(hs.n_head) + "/" + std::to_string(hs.n_head_kv) +
                 " head_dim " + std::to_string(hs.head_dim) + (hs.misaligned ? " misaligned" : "") +
                 " window " + std::to_string(window) + ", " + std::to_string(positions.size()) +
                 " queries");
    const int64_t n_tokens = static_cast<int64_t>(positions.size());
    const int64_t q_w = int64_t{hs.n_head} * hs.head_dim,
                  kv_w = int64_t{hs.n_head_kv} * hs.head_dim;
    const std::vector<float> q = RandomFloats(n_tokens * q_w, rng_),
                             k = RandomFloats(n_cache * kv_w, rng_),
                             v = RandomFloats(n_cache * kv_w, rng_);
    const float scale = 1.0f / std::sqrt(static_cast<float>(hs.head_dim));
    Reference want(static_cast<size_t>(n_tokens * q_w));
    const int group = hs.n_head / hs.n_head_kv;
    for (int64_t t = 0; t < n_tokens; ++t) {
      const int64_t n_keys = std::min<int64_t>(positions[t] + 1, n_cache);
      const int64_t first = window > 0 ? std::max<int64_t>(0, n_keys - window) : 0;
      for (int h = 0; h < hs.n_head; ++h) {
        const int64_t kv_off = int64_t{h / group} * hs.head_dim;
        std::vector<double> p(static_cast<size_t>(n_keys - first));
        double mx = -std::numeric_limits<double>::infinity(), sum = 0;
        for (int64_t j = first; j < n_keys; ++j) {
          double dot = 0;
          for (int d = 0; d < hs.head_dim; ++d) {
            dot += static_cast<double>(q[t * q_w + h * hs.head_dim + d]) * k[j * kv_w + kv_off + d];
          }
          p[j - first] = dot * scale;
          mx = std::max(mx, p[j - first]);
        }
        for (double& e : p) sum += e = std::exp(e - mx);
        for (int d = 0; d < hs.head_dim; ++d) {
          double acc = 0, mag = 0;
          for (int64_t j = first; j < n_keys; ++j) {
            acc += p[j - first] / sum * v[j * kv_w + kv_off + d];
            mag += p[j - first] / sum * std::abs(v[j * kv_w + kv_off + d]);
          }
          want.value[t * q_w + h * hs.head_dim + d] = acc;
          want.scale[t * q_w + h * hs.head_dim + d] = mag;
        }
      }
    }
    // Device copies: `pad` leading floats (one when misaligned), the caches
    // followed by NaN guard rows.
    const size_t pad = hs.misaligned ? 1 : 0;
    const auto padded = [&](const std::vector<float>& x, size_t tail) {
      std::vector<float> y(pad, 0.0f);
      y.insert(y.end(), x.begin(), x.end());
      y.insert(y.end(), tail, std::numeric_limits<float>::quiet_NaN());
      return y;
    };
    const size_t guard = static_cast<size_t>(n_guard_rows * kv_w);
    DeviceBuffer d_q = Upload(padded(q, 0)), d_k = Upload(padded(k, guard)),
                 d_v = Upload(padded(v, guard)), d_pos = Upload(positions),
                 d_out = Poisoned(q.size() + pad);
    ExpectOk(Attention(*ctx_, d_q.as<float>() + pad, d_k.as<float>() + pad, d_v.as<float>() + pad,
                       n_cache, d_pos.as<int32_t>(), n_tokens, hs.n_head, hs.n_head_kv, hs.head_dim,
                       scale, window, d_out.as<float>() + pad));
    const std::vector<float> got = Download<float>(d_out.data(), q.size() + pad);
    EXPECT_NMSE_BELOW(std::span<const float>(got).subspan(pad), want, kF32Nmse);
  };
  for (const Heads hs :
       {Heads{1, 1, 1}, Heads{4, 4, 8}, Heads{2, 1, 14}, Heads{3, 3, 17}, Heads{2, 2, 42},
        Heads{6, 2, 64}, Heads{8, 1, 80}, Heads{4, 2, 128}, Heads{4, 1, 128, true},
        Heads{2, 1, 130}, Heads{2, 1, 256}, Heads{1, 1, 510}, Heads{1, 1, 512}}) {
    for (const int window : {0, 1, 8, 200}) {
      std::vector<int32_t> positions = batch_positions;
      if (window == 0) positions.push_back(static_cast<int32_t>(n_cache + 37));
      check(hs, positions, window);
      for (const int32_t pos : {0, static_cast<int32_t>(n_cache - 1)}) check(hs, {pos}, window);
    }
  }
}

// ---------------------------------------------------------------- errors

TEST_F(CudaOps, BadArgumentsAreErrorsNotCrashes) {
  DeviceBuffer buf = Poisoned(4096);
  float* f = buf.as<float>();
  const auto fails = [](const Status& st) {
    EXPECT_FALSE(st.ok());
    EXPECT_FALSE(st.message().empty());
  };
  fails(MatVec(*ctx_, GgmlType::kQ4_K, f, 1, 100, f, f));          // 100 not whole blocks
  fails(MatVec(*ctx_, GgmlType::kQ4_0, f, 1, 32, nullptr, f));     // null x
  fails(MatVec(*ctx_, GgmlType::kQ4_0, f, 1, 32, f + 1, f + 64));  // x not 16-byte aligned
  fails(MatVec(*ctx_, GgmlType::kIQ2_XXS, f, 1, 256, f, f, MatVecPath::kDirect));
  fails(Dequantize(*ctx_, static_cast<GgmlType>(4), f, 32, f));   // removed type id
  fails(Dequantize(*ctx_, static_cast<GgmlType>(99), f, 32, f));  // unknown type id
  fails(
      Dequantize(*ctx_, GgmlType::kQ4_0, reinterpret_cast<uint8_t*>(f) + 1, 32, f));  // misaligned
  fails(Rope(*ctx_, f, reinterpret_cast<int32_t*>(f), 1, 1, 64, 63, 1e4f, RopeMode::kNorm, f));
  fails(Add(*ctx_, f, f, 4, 8, 2, f));
  fails(RmsNorm(*ctx_, f, nullptr, -1, 8, 1e-6f, f));
  fails(Gemm(*ctx_, GgmlType::kQ8_0, f, 2, 40, f, 1, f, GemmMath::kF32));
  fails(GetRows(*ctx_, GgmlType::kQ8_0, f, 2, 40, reinterpret_cast<int32_t*>(f), 1, f));
  const int32_t* pos = reinterpret_cast<const int32_t*>(f);
  fails(Attention(*ctx_, f, f, f, 4, pos, 1, 3, 2, 8, 1.0f, 0,
                  f));  // 3 heads cannot share 2 KV heads
  fails(Attention(*ctx_, f, f, f, 1, pos, 1, 1, 1, 513, 1.0f, 0, f));  // head_dim over 512
  fails(Attention(*ctx_, f, f, f, 0, pos, 1, 1, 1, 8, 1.0f, 0, f));    // empty cache
  fails(StoreRows(*ctx_, f, pos, 1, 8, nullptr, 4));
  fails(Softcap(*ctx_, f, 8, 0.0f, f));
  EXPECT_TRUE(ctx_->Synchronize().ok());  // nothing was launched, nothing failed
}

}  // namespace
}  // namespace ggufscope::cuda
