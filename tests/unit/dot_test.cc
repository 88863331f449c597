// The reference's fused dequantize-and-dot kernels (reference_cpu/dot.h)
// against a float64 dot product of gguf::Dequantize's values (itself proven
// bit-exact against gguf-py and llama.cpp), on random valid blocks of every
// fused type, with the AVX2 kernels and the portable ones.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "gguf/block_scales.h"
#include "gguf/dequant.h"
#include "gguf/types.h"
#include "reference_cpu/dot.h"
#include "reference_cpu/weight.h"

namespace ggufscope::reference {
namespace {

using gguf::GgmlType;

// Random bytes with every f16 scale field set to a finite value of a typical
// magnitude (random bits there would give NaN, Inf and 1e4-sized scales).
std::vector<uint8_t> RandomRows(GgmlType type, int64_t rows, int64_t cols, std::mt19937& rng) {
  const gguf::TypeTraits& t = gguf::Traits(type);
  const size_t row_bytes = static_cast<size_t>(*gguf::BytesFor(type, static_cast<uint64_t>(cols)));
  std::vector<uint8_t> w(row_bytes * static_cast<size_t>(rows));
  for (uint8_t& b : w) b = static_cast<uint8_t>(rng());
  const gguf::BlockScales s = gguf::ScalesOf(type);
  std::uniform_int_distribution<int> exp(0x2000, 0x2C00);  // f16 bits: about 2^-7 .. 2^-2
  for (size_t b = 0; t.is_quantized && b < w.size() / t.type_size; ++b) {
    for (int k = 0; k < s.count; ++k) {
      const uint16_t h = static_cast<uint16_t>(exp(rng) | (rng() & 0x8000u));
      std::memcpy(&w[b * t.type_size + s.offsets[static_cast<size_t>(k)]], &h, 2);
    }
  }
  if (type == GgmlType::kF32) {
    std::normal_distribution<float> n;
    for (size_t i = 0; i < w.size() / 4; ++i) {
      const float v = n(rng);
      std::memcpy(&w[4 * i], &v, 4);
    }
  }
  return w;
}

class FusedDot : public ::testing::TestWithParam<GgmlType> {};

TEST_P(FusedDot, MatchesFloat64DotOfDequantizedRows) {
  const GgmlType type = GetParam();
  const int64_t block = gguf::Traits(type).block_size == 1 ? 32 : gguf::Traits(type).block_size;
  std::mt19937 rng(static_cast<uint32_t>(type) * 7919u);
  for (const int64_t blocks : {int64_t{1}, int64_t{3}, int64_t{17}}) {
    const int64_t cols = block * blocks, rows = 13;
    const std::vector<uint8_t> w = RandomRows(type, rows, cols, rng);
    std::vector<float> x(static_cast<size_t>(cols)), deq(static_cast<size_t>(rows * cols));
    std::normal_distribution<float> n;
    for (float& v : x) v = n(rng);
    ASSERT_TRUE(gguf::Dequantize(type, w, static_cast<uint64_t>(rows * cols), deq).ok());
    const size_t row_bytes = w.size() / static_cast<size_t>(rows);
    for (const bool avx2 : {true, false}) {
      const RowDotFn dot = FusedRowDot(type, cols, avx2);
      ASSERT_NE(dot, nullptr) << gguf::TypeName(type);
      std::vector<float> y(static_cast<size_t>(rows), std::nanf(""));  // poisoned
      dot(w.data(), row_bytes, rows, cols, x.data(), y.data());
      for (int64_t r = 0; r < rows; ++r) {
        double want = 0, scale = 0;
        for (int64_t c = 0; c < cols; ++c) {
          const double p = static_cast<double>(deq[static_cast<size_t>(r * cols + c)]) * x[static_cast<size_t>(c)];
          want += p;
          scale += std::fabs(p);
        }
        // f32 accumulation of `cols` terms: error within a few ulps of the
        // sum of magnitudes (1e-6 relative to it is ~8 ulps; NaN fails).
        EXPECT_LE(std::fabs(y[static_cast<size_t>(r)] - want), 1e-6 * scale + 1e-30)
            << gguf::TypeName(type) << " cols " << cols << " row " << r << (avx2 ? " avx2" : " portable");
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, FusedDot,
                         ::testing::Values(GgmlType::kF32, GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_0,
                                           GgmlType::kQ5_1, GgmlType::kQ8_0, GgmlType::kQ4_K, GgmlType::kQ5_K,
                                           GgmlType::kQ6_K),
                         [](const auto& p) { return std::string(gguf::TypeName(p.param)); });

TEST(FusedDot, OtherTypesHaveNoKernel) {
  EXPECT_EQ(FusedRowDot(GgmlType::kIQ2_XXS, 256), nullptr);
  EXPECT_EQ(FusedRowDot(GgmlType::kQ2_K, 256), nullptr);
}

// MatMul (fused for decode, dequantized tiles for prefill, f64) against the
// float64 product of the dequantized matrix, on a quantized weight.
TEST(MatMul, DecodePrefillAndF64AgreeWithFloat64) {
  std::mt19937 rng(42);
  const int64_t rows = 300, cols = 512;
  for (const GgmlType type : {GgmlType::kQ4_K, GgmlType::kIQ4_XS, GgmlType::kQ8_0}) {
    const std::vector<uint8_t> bytes = RandomRows(type, rows, cols, rng);
    const Weight w(type, rows, cols, bytes, nullptr);
    std::vector<float> deq(static_cast<size_t>(rows * cols));
    ASSERT_TRUE(gguf::Dequantize(type, bytes, static_cast<uint64_t>(rows * cols), deq).ok());
    const Eigen::Map<const Mat<float>> wf(deq.data(), rows, cols);
    for (const int64_t n : {int64_t{1}, int64_t{2}, int64_t{9}}) {
      const Mat<double> x = Mat<double>::Random(n, cols);
      const Mat<double> want = x * wf.cast<double>().transpose();
      Mat<float> y32;
      MatMul<float>(x.cast<float>(), w, y32);
      Mat<double> y64;
      MatMul<double>(x, w, y64);
      const double ref = want.norm();
      EXPECT_LT((y32.cast<double>() - want).norm() / ref, 1e-6) << gguf::TypeName(type) << " n=" << n;
      EXPECT_LT((y64 - want).norm() / ref, 1e-14) << gguf::TypeName(type) << " n=" << n;
    }
  }
}

}  // namespace
}  // namespace ggufscope::reference
