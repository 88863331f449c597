// The reference's fused dequantize-and-dot kernels (reference_cpu/dot.h)
// against a float64 dot product of gguf::Dequantize's values (itself proven
// bit-exact against gguf-py and llama.cpp), on random valid blocks of every
// fused type, with the AVX2 kernels and the portable ones.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "gguf/block_scales.h"
#include "gguf/dequant.h"
#include "gguf/types.h"
#include "gguf/file.h"
#include "reference_cpu/dot.h"
#include "reference_cpu/forward.h"
#include "reference_cpu/weight.h"
#include "test_models.h"

namespace ggufscope::reference {
namespace {

using gguf::GgmlType;

// f16 bits of a finite scale of a typical magnitude (about 2^-7 .. 2^-2,
// either sign): random bits there would give NaN, Inf and 1e4-sized scales.
uint16_t RandomScale(std::mt19937& rng) {
  std::uniform_int_distribution<int> exp(0x2000, 0x2C00);
  return static_cast<uint16_t>(exp(rng) | (rng() & 0x8000u));
}

// Writes f16 `h` into every scale field of block `blk` (type_size bytes).
// MXFP4's E8M0 byte gets `e8m0`; NVFP4's four UE4M3 bytes mix h's high byte
// with edge codes; IQ1_M's d lives in the top nibbles of its four u16 words.
void SetScales(GgmlType type, uint8_t* blk, uint16_t h, int e8m0) {
  const gguf::BlockScales s = gguf::ScalesOf(type);
  if (s.kind == gguf::ScaleKind::kF16) {
    for (int k = 0; k < s.count; ++k) std::memcpy(blk + s.offsets[static_cast<size_t>(k)], &h, 2);
  } else if (s.kind == gguf::ScaleKind::kE8M0) {
    blk[0] = static_cast<uint8_t>(e8m0);
  } else if (s.kind == gguf::ScaleKind::kUE4M3) {
    // one group from h, the others at the UE4M3 edges: subnormal 2^-9,
    // 0x7F (decodes as 0) and 0x7E (largest, 448)
    const uint8_t edges[4] = {static_cast<uint8_t>(h >> 8), 0x01, 0x7F, 0x7E};
    for (int k = 0; k < s.count; ++k) blk[s.offsets[static_cast<size_t>(k)]] = edges[(k + (h & 3)) % 4];
  } else if (type == GgmlType::kIQ1_M) {
    for (int i = 0; i < 4; ++i) {
      uint16_t sc;
      std::memcpy(&sc, blk + 48 + 2 * i, 2);
      sc = static_cast<uint16_t>((sc & 0x0FFF) | (((h >> (4 * i)) & 0xF) << 12));
      std::memcpy(blk + 48 + 2 * i, &sc, 2);
    }
  }
}

bool IsFloat16(GgmlType type) { return type == GgmlType::kF16 || type == GgmlType::kBF16; }

// F16/BF16 bits of a random value of either sign between 2^-4 and 4
// (F16: exponent and mantissa bits drawn directly; BF16: an f32's top half).
uint16_t RandomHalf(GgmlType type, std::mt19937& rng) {
  const uint16_t sign = static_cast<uint16_t>(rng() & 0x8000u);
  if (type == GgmlType::kBF16) {
    std::uniform_real_distribution<float> u(0.0625f, 4.0f);
    return static_cast<uint16_t>((std::bit_cast<uint32_t>(u(rng)) >> 16) | sign);
  }
  std::uniform_int_distribution<int> bits(0x2C00, 0x43FF);
  return static_cast<uint16_t>(bits(rng) | sign);
}

// Random valid rows: random quant bytes, finite scales of a typical
// magnitude, normal-distributed F32 and RandomHalf F16/BF16 elements.
std::vector<uint8_t> RandomRows(GgmlType type, int64_t rows, int64_t cols, std::mt19937& rng) {
  const gguf::TypeTraits& t = gguf::Traits(type);
  const size_t row_bytes = static_cast<size_t>(*gguf::BytesFor(type, static_cast<uint64_t>(cols)));
  std::vector<uint8_t> w(row_bytes * static_cast<size_t>(rows));
  for (uint8_t& b : w) b = static_cast<uint8_t>(rng());
  std::uniform_int_distribution<int> e8m0(110, 130);  // 2^-18 .. 2^2
  for (size_t b = 0; t.is_quantized && b < w.size() / t.type_size; ++b) {
    SetScales(type, &w[b * t.type_size], RandomScale(rng), e8m0(rng));
  }
  if (type == GgmlType::kF32) {
    std::normal_distribution<float> n;
    for (size_t i = 0; i < w.size() / 4; ++i) {
      const float v = n(rng);
      std::memcpy(&w[4 * i], &v, 4);
    }
  }
  if (IsFloat16(type)) {
    for (size_t i = 0; i < w.size() / 2; ++i) {
      const uint16_t h = RandomHalf(type, rng);
      std::memcpy(&w[2 * i], &h, 2);
    }
  }
  return w;
}

// Rows whose blocks take the formats' edge values: every quant byte 0x00,
// 0xFF, 0x55 or 0xAA (the lowest and highest codes, every grid index, sign
// and scale nibble at its extremes) or random, with scales at the f16
// extremes (smallest and largest subnormal, largest finite, zero, -0, either
// sign) or E8M0 exponents 0 and 1 (subnormal scales) up to 2^40; F16/BF16
// elements at the same extremes.
std::vector<uint8_t> EdgeRows(GgmlType type, int64_t rows, int64_t cols, std::mt19937& rng) {
  constexpr uint8_t kFill[] = {0x00, 0xFF, 0x55, 0xAA};
  constexpr uint16_t kScales[] = {0x0001, 0x03FF, 0x7BFF, 0xFBFF, 0x0000, 0x8000, 0x3C00, 0x8400};
  constexpr int kE8m0[] = {0, 1, 2, 127, 167};
  std::vector<uint8_t> w = RandomRows(type, rows, cols, rng);
  const gguf::TypeTraits& t = gguf::Traits(type);
  if (IsFloat16(type) || type == GgmlType::kF32) {
    for (size_t i = 0; IsFloat16(type) && i < w.size() / 2; i += 3) {
      const uint16_t h = kScales[rng() % std::size(kScales)];  // every third element an extreme
      std::memcpy(&w[2 * i], &h, 2);
    }
    return w;
  }
  for (size_t b = 0; b < w.size() / t.type_size; ++b) {
    uint8_t* blk = &w[b * t.type_size];
    const size_t fill = rng() % (std::size(kFill) + 1);
    if (fill < std::size(kFill)) std::memset(blk, kFill[fill], t.type_size);
    SetScales(type, blk, kScales[rng() % std::size(kScales)], kE8m0[rng() % std::size(kE8m0)]);
  }
  return w;
}

// Tolerance: the kernels accumulate in f32 (32 lanes, block scales factored
// out of the products, mins taken off once per group as min * sum(x)), the
// oracle in f64 over the same exactly dequantized values. Each lane sums at
// most cols / 32 <= 136 products here, so the error stays within a few
// dozen f32 ulps (eps = 6e-8) of the sum of |products|; 1e-6 of that sum is
// ~17 ulps, the worst case measured with room to spare, while one wrong code
// in a 4352-element row moves the dot by far more (NaN always fails).
constexpr double kRelTolToSumOfMagnitudes = 1e-6;

// The f64 dot of each of `rows` dequantized rows with x against the kernel's.
void ExpectMatchesFloat64(GgmlType type, const std::vector<uint8_t>& w, int64_t rows, int64_t cols,
                          std::mt19937& rng, const char* what) {
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
      EXPECT_LE(std::fabs(y[static_cast<size_t>(r)] - want), kRelTolToSumOfMagnitudes * scale + 1e-30)
          << gguf::TypeName(type) << " " << what << " cols " << cols << " row " << r
          << (avx2 ? " avx2" : " portable") << ": got " << y[static_cast<size_t>(r)] << " want " << want;
    }
  }
}

class FusedDot : public ::testing::TestWithParam<GgmlType> {};

TEST_P(FusedDot, MatchesFloat64DotOfDequantizedRows) {
  const GgmlType type = GetParam();
  const int64_t block = gguf::Traits(type).block_size == 1 ? 32 : gguf::Traits(type).block_size;
  std::mt19937 rng(static_cast<uint32_t>(type) * 7919u);
  for (const int64_t blocks : {int64_t{1}, int64_t{3}, int64_t{17}}) {
    for (const int64_t rows : {int64_t{1}, int64_t{13}}) {
      const int64_t cols = block * blocks;
      ExpectMatchesFloat64(type, RandomRows(type, rows, cols, rng), rows, cols, rng, "random");
      ExpectMatchesFloat64(type, EdgeRows(type, rows, cols, rng), rows, cols, rng, "edge");
    }
  }
  if (gguf::Traits(type).block_size == 1) {  // plain types: rows of any length (a tail after the 32s)
    ExpectMatchesFloat64(type, RandomRows(type, 7, 45, rng), 7, 45, rng, "random");
  }
}

INSTANTIATE_TEST_SUITE_P(
    Types, FusedDot,
    ::testing::Values(GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16, GgmlType::kQ4_0, GgmlType::kQ4_1,
                      GgmlType::kQ5_0, GgmlType::kQ5_1, GgmlType::kQ8_0, GgmlType::kQ2_K, GgmlType::kQ3_K,
                      GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K, GgmlType::kIQ2_XXS, GgmlType::kIQ2_XS,
                      GgmlType::kIQ2_S, GgmlType::kIQ3_XXS, GgmlType::kIQ3_S, GgmlType::kIQ1_S, GgmlType::kIQ1_M,
                      GgmlType::kIQ4_NL, GgmlType::kIQ4_XS, GgmlType::kTQ1_0, GgmlType::kTQ2_0, GgmlType::kMXFP4, GgmlType::kNVFP4,
                      GgmlType::kQ1_0, GgmlType::kQ2_0),
    [](const auto& p) { return std::string(gguf::TypeName(p.param)); });

// The 16-entry codebooks (IQ4_NL/IQ4_XS, MXFP4) are int8 copies in
// dot_lowbit.cc: a row that holds every code in every position once, with
// scale 1, must dot with a one-hot x to gguf::Dequantize's value.
TEST(FusedDot, CodebookTypesDecodeEveryCodeAsDequantize) {
  for (const GgmlType type : {GgmlType::kIQ4_NL, GgmlType::kMXFP4}) {
    const int off = type == GgmlType::kMXFP4 ? 1 : 2;
    const size_t tsize = gguf::Traits(type).type_size;
    std::vector<uint8_t> w(16 * tsize);
    for (int code = 0; code < 16; ++code) {
      uint8_t* blk = &w[static_cast<size_t>(code) * tsize];
      SetScales(type, blk, 0x3C00, 128);  // 1.0; E8M0 128 is 2^1 / 2 = 1
      std::memset(blk + off, code * 0x11, 16);
    }
    std::vector<float> deq(16 * 32);
    ASSERT_TRUE(gguf::Dequantize(type, w, deq.size(), deq).ok());
    for (const bool avx2 : {true, false}) {
      const RowDotFn dot = FusedRowDot(type, 32, avx2);
      for (int e = 0; e < 32; ++e) {
        std::vector<float> x(32, 0.0f), y(16);
        x[static_cast<size_t>(e)] = 1.0f;
        dot(w.data(), tsize, 16, 32, x.data(), y.data());
        for (int code = 0; code < 16; ++code) {
          EXPECT_EQ(y[static_cast<size_t>(code)], deq[static_cast<size_t>(32 * code + e)])
              << gguf::TypeName(type) << " code " << code << " element " << e << (avx2 ? " avx2" : "");
        }
      }
    }
  }
}

TEST(FusedDot, TypesWithoutAKernel) {
  EXPECT_EQ(FusedRowDot(GgmlType::kQ8_K, 256), nullptr);  // activations only, never a weight
  EXPECT_EQ(FusedRowDot(GgmlType::kI32, 32), nullptr);
  EXPECT_EQ(FusedRowDot(GgmlType::kQ8_1, 32), nullptr);  // activations only
}

// MatMul (fused for decode, dequantized tiles for prefill, f64) against the
// float64 product of the dequantized matrix, on every weight type (300 x 512:
// above the parallel threshold, so the decode chunks are split over threads).
TEST(MatMul, DecodePrefillAndF64AgreeWithFloat64) {
  std::mt19937 rng(42);
  const int64_t rows = 300, cols = 512;
  for (const GgmlType type :
       {GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16, GgmlType::kQ4_0, GgmlType::kQ8_0, GgmlType::kQ2_K,
        GgmlType::kQ3_K, GgmlType::kQ4_K, GgmlType::kIQ2_XXS, GgmlType::kIQ2_XS, GgmlType::kIQ2_S,
        GgmlType::kIQ3_XXS, GgmlType::kIQ3_S, GgmlType::kIQ1_S, GgmlType::kIQ1_M, GgmlType::kIQ4_NL,
        GgmlType::kIQ4_XS, GgmlType::kTQ1_0, GgmlType::kTQ2_0, GgmlType::kMXFP4, GgmlType::kNVFP4,
        GgmlType::kQ1_0, GgmlType::kQ2_0}) {
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

// The whole forward pass on every synth model (one per weight type, as
// llama.cpp quantized them): decoding one token at a time through the KV
// cache (the fused kernels) gives the logits of one batched prefill
// (dequantized tiles and Eigen), up to f32 summation order. These random
// models have logits of std ~100, so the bound is relative: 1e-5 of the row
// norm is ~10x the largest difference seen (1.1e-6, 7 positions of each of
// the 32 files), and far below what one wrong code does (a flipped IQ1_M
// delta sign gives 0.6).
TEST(FusedDot, DecodeEqualsPrefillOnEverySynthModel) {
  constexpr double kRelL2 = 1e-5;
  int n_models = 0;
  for (const std::string& path : testing::SharedModels()) {
    if (path.find("/synth/") == std::string::npos) continue;
    auto file = gguf::GgufFile::Open(path);
    ASSERT_TRUE(file.ok()) << path;
    auto model = LoadModel(*file);
    ASSERT_TRUE(model.ok()) << path << ": " << model.error().Message();
    const std::vector<int32_t> tokens = {1, 403, 407, 261, 378, 11, 300};
    Session batch(**model, 16);
    auto all = batch.Eval(tokens, true);
    ASSERT_TRUE(all.ok()) << path;
    Session step(**model, 16);
    for (size_t i = 0; i < tokens.size(); ++i) {
      auto one = step.Eval(std::span<const int32_t>(&tokens[i], 1), false);
      ASSERT_TRUE(one.ok()) << path;
      const auto want = all->row(static_cast<Eigen::Index>(i)).cast<double>();
      const double rel = (one->row(0).cast<double>() - want).norm() / want.norm();
      EXPECT_LE(rel, kRelL2) << path << " position " << i;
    }
    ++n_models;
  }
  if (n_models == 0) GTEST_SKIP() << "no synth models under " << testing::SharedDir();
  RecordProperty("models", n_models);
}

}  // namespace
}  // namespace ggufscope::reference
