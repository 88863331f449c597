// Unit tests of gguf/dequant: the exact half/bfloat16 conversions over every
// bit pattern, hand-built blocks checked against values worked out by hand,
// size errors, and a no-crash/finiteness property over every active type.
// Bit-exactness against gguf-py on real files is proven by tests/oracle.
#include "gguf/dequant.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "gguf/types.h"

namespace ggufscope::gguf {
namespace {

uint32_t Bits(float f) { return std::bit_cast<uint32_t>(f); }

// Dequantizes `src` and fails the test on an error.
std::vector<float> DequantizeOrFail(GgmlType type, const std::vector<uint8_t>& src, uint64_t n) {
  std::vector<float> out(n, -12345.0f);
  const Status st = Dequantize(type, src, n, out);
  EXPECT_TRUE(st.ok()) << TypeName(type) << ": " << st.error().Message();
  return out;
}

void PutU16(std::vector<uint8_t>& b, size_t at, uint16_t v) { std::memcpy(&b[at], &v, 2); }
void PutU32(std::vector<uint8_t>& b, size_t at, uint32_t v) { std::memcpy(&b[at], &v, 4); }

// f16 bit patterns of a few exactly representable scales.
constexpr uint16_t kHalfQuarter = 0x3400;  // 0.25
constexpr uint16_t kHalfHalf = 0x3800;     // 0.5
constexpr uint16_t kHalfOne = 0x3C00;      // 1.0
constexpr uint16_t kHalfOneAndHalf = 0x3E00;
constexpr uint16_t kHalfTwo = 0x4000;
constexpr uint16_t kHalfMinusOne = 0xBC00;

// ---------------------------------------------------------------- half / bfloat16

// The value of a binary16 pattern, computed independently in double.
TEST(HalfToFloat, AllBitPatternsMatchFloat64Reference) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const bool negative = (h & 0x8000) != 0;
    const int exp = static_cast<int>((h >> 10) & 0x1F);
    const int mant = static_cast<int>(h & 0x3FF);
    const float got = HalfToFloat(static_cast<uint16_t>(h));
    if (exp == 31) {
      if (mant == 0) {
        EXPECT_TRUE(std::isinf(got)) << h;
        EXPECT_EQ(std::signbit(got), negative) << h;
      } else {
        // NaN keeps its sign and payload, shifted into the top mantissa bits.
        EXPECT_TRUE(std::isnan(got)) << h;
        const uint32_t want =
            (negative ? 0x80000000u : 0u) | 0x7F800000u | (static_cast<uint32_t>(mant) << 13);
        EXPECT_EQ(Bits(got), want) << h;
      }
      continue;
    }
    const double magnitude =
        exp == 0 ? std::ldexp(static_cast<double>(mant), -24) : std::ldexp(1024.0 + mant, exp - 25);
    const double want = negative ? -magnitude : magnitude;
    // Every half is exactly a float, so the double narrows without rounding.
    ASSERT_EQ(static_cast<double>(static_cast<float>(want)), want);
    EXPECT_EQ(Bits(got), Bits(static_cast<float>(want))) << "h=" << h;
  }
}

TEST(Bf16ToFloat, AllBitPatternsMatchFloat64Reference) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const bool negative = (h & 0x8000) != 0;
    const int exp = static_cast<int>((h >> 7) & 0xFF);
    const int mant = static_cast<int>(h & 0x7F);
    const float got = Bf16ToFloat(static_cast<uint16_t>(h));
    if (exp == 255) {
      EXPECT_EQ(std::isnan(got), mant != 0) << h;
      EXPECT_EQ(std::isinf(got), mant == 0) << h;
      EXPECT_EQ(Bits(got), h << 16) << h;  // sign and payload kept
      continue;
    }
    const double magnitude = exp == 0 ? std::ldexp(static_cast<double>(mant), -133)
                                      : std::ldexp(128.0 + mant, exp - 134);
    const double want = negative ? -magnitude : magnitude;
    EXPECT_EQ(Bits(got), Bits(static_cast<float>(want))) << "h=" << h;
  }
}

// ---------------------------------------------------------------- hand-built blocks

TEST(Dequantize, Q8_0AllCodes) {
  // 8 blocks, d = 0.5, q = -128..127 in order.
  std::vector<uint8_t> src(8 * 34);
  for (int b = 0; b < 8; ++b) {
    PutU16(src, 34 * b, kHalfHalf);
    for (int j = 0; j < 32; ++j) src[34 * b + 2 + j] = static_cast<uint8_t>(b * 32 + j - 128);
  }
  const auto y = DequantizeOrFail(GgmlType::kQ8_0, src, 256);
  for (int i = 0; i < 256; ++i) EXPECT_EQ(y[i], 0.5f * static_cast<float>(i - 128)) << i;
}

TEST(Dequantize, Q8_1AndQ8_KScaleTimesCode) {
  std::vector<uint8_t> q81(36);
  PutU16(q81, 0, kHalfTwo);
  PutU16(q81, 2, 0x7C00);  // s (an inf here) is not used by dequantization
  for (int j = 0; j < 32; ++j) q81[4 + j] = static_cast<uint8_t>(j - 16);
  const auto y = DequantizeOrFail(GgmlType::kQ8_1, q81, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], 2.0f * static_cast<float>(j - 16)) << j;

  std::vector<uint8_t> q8k(292);
  const float d = 0.25f;
  std::memcpy(q8k.data(), &d, 4);
  for (int j = 0; j < 256; ++j) q8k[4 + j] = static_cast<uint8_t>(j);
  const auto z = DequantizeOrFail(GgmlType::kQ8_K, q8k, 256);
  for (int j = 0; j < 256; ++j) {
    EXPECT_EQ(z[j], 0.25f * static_cast<float>(static_cast<int8_t>(j))) << j;
  }
}

TEST(Dequantize, Q4_0AndQ4_1Nibbles) {
  // qs[j] = j | (15 - j) << 4: element j has code j, element j + 16 code 15 - j.
  std::vector<uint8_t> q40(18);
  PutU16(q40, 0, kHalfTwo);
  for (int j = 0; j < 16; ++j) q40[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const auto y = DequantizeOrFail(GgmlType::kQ4_0, q40, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 2.0f * static_cast<float>(j - 8)) << j;
    EXPECT_EQ(y[j + 16], 2.0f * static_cast<float>(7 - j)) << j;
  }

  std::vector<uint8_t> q41(20);
  PutU16(q41, 0, kHalfQuarter);
  PutU16(q41, 2, kHalfMinusOne);
  for (int j = 0; j < 16; ++j) q41[4 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const auto z = DequantizeOrFail(GgmlType::kQ4_1, q41, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(z[j], 0.25f * static_cast<float>(j) - 1.0f) << j;
    EXPECT_EQ(z[j + 16], 0.25f * static_cast<float>(15 - j) - 1.0f) << j;
  }
}

TEST(Dequantize, Q5_0FifthBit) {
  // All nibbles 0xF; the fifth bit set on odd elements only: q = 15 or 31.
  std::vector<uint8_t> src(22, 0xFF);
  PutU16(src, 0, kHalfOne);
  PutU32(src, 2, 0xAAAAAAAAu);
  const auto y = DequantizeOrFail(GgmlType::kQ5_0, src, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], j % 2 ? 15.0f : -1.0f) << j;
}

TEST(Dequantize, Q1_0SignBits) {
  std::vector<uint8_t> src(18);
  PutU16(src, 0, kHalfOneAndHalf);
  for (int i = 0; i < 16; ++i) src[2 + i] = static_cast<uint8_t>(i % 2 ? 0xA5 : 0x0F);
  const auto y = DequantizeOrFail(GgmlType::kQ1_0, src, 128);
  for (int j = 0; j < 128; ++j) {
    const uint8_t byte = (j / 8) % 2 ? 0xA5 : 0x0F;
    EXPECT_EQ(y[j], (byte >> (j % 8)) & 1 ? 1.5f : -1.5f) << j;
  }
}

TEST(Dequantize, Q2_0Codes) {
  // Byte 0b11100100 holds codes 0, 1, 2, 3 (lowest bits first): -d, 0, d, 2d.
  std::vector<uint8_t> src(2 * 18, 0xE4);
  PutU16(src, 0, kHalfHalf);
  PutU16(src, 18, kHalfMinusOne);
  const auto y = DequantizeOrFail(GgmlType::kQ2_0, src, 128);
  const float first[4] = {-0.5f, 0.0f, 0.5f, 1.0f};
  const float second[4] = {1.0f, -0.0f, -1.0f, -2.0f};
  for (int j = 0; j < 64; ++j) {
    EXPECT_EQ(Bits(y[j]), Bits(first[j % 4])) << j;
    EXPECT_EQ(Bits(y[64 + j]), Bits(second[j % 4])) << j;
  }
}

TEST(Dequantize, Mxfp4Scales) {
  // e = 127 gives scale 2^0 / 2, so the doubled E2M1 table comes out halved.
  const float e2m1[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, 0, -0.5f, -1, -1.5f, -2, -3, -4, -6};
  std::vector<uint8_t> src(4 * 17);
  const uint8_t exps[4] = {127, 0, 1, 255};
  for (int b = 0; b < 4; ++b) {
    src[17 * b] = exps[b];
    for (int j = 0; j < 16; ++j) src[17 * b + 1 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  }
  const auto y = DequantizeOrFail(GgmlType::kMXFP4, src, 128);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], e2m1[j]) << j;
    EXPECT_EQ(y[16 + j], e2m1[15 - j]) << j;
    // Halved scales: e = 0 and e = 1 give the subnormals 2^-128 and 2^-127,
    // e = 255 gives 2^127, where codes above 1 overflow to infinity.
    EXPECT_EQ(y[32 + j], std::ldexp(e2m1[j], -127)) << j;
    EXPECT_EQ(y[64 + j], std::ldexp(e2m1[j], -126)) << j;
    EXPECT_EQ(y[96 + j], std::ldexp(e2m1[j], 128)) << j;
  }
  EXPECT_EQ(Bits(y[8]), 0u);  // code 8 is +0, not -0
}

TEST(Dequantize, Nvfp4SubBlockScales) {
  // Scales: 0x38 = 1.0 (exp 7), 0x7F decodes as 0, 0x01 = 2^-9, 0x41 = 2.25.
  const float e2m1[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, 0, -0.5f, -1, -1.5f, -2, -3, -4, -6};
  const float scale[4] = {1.0f, 0.0f, 0x1p-9f, 2.25f};
  std::vector<uint8_t> src(36);
  src[0] = 0x38;
  src[1] = 0x7F;
  src[2] = 0x01;
  src[3] = 0x41;
  for (int s = 0; s < 4; ++s) {
    for (int j = 0; j < 8; ++j) src[4 + 8 * s + j] = static_cast<uint8_t>(j | ((j + 8) << 4));
  }
  const auto y = DequantizeOrFail(GgmlType::kNVFP4, src, 64);
  for (int s = 0; s < 4; ++s) {
    for (int j = 0; j < 16; ++j) EXPECT_EQ(y[16 * s + j], scale[s] * e2m1[j]) << s << " " << j;
  }
}

TEST(Dequantize, Q2_KScaleAndMin) {
  // Every scale byte 0x21: scale 1, min 2. Every qs byte 0b11100100: the
  // element at shift s (elements 32s.. of each half) has code s.
  std::vector<uint8_t> src(84);
  for (int i = 0; i < 16; ++i) src[i] = 0x21;
  for (int i = 0; i < 64; ++i) src[16 + i] = 0xE4;
  PutU16(src, 80, kHalfOne);   // d
  PutU16(src, 82, kHalfHalf);  // dmin
  const auto y = DequantizeOrFail(GgmlType::kQ2_K, src, 256);
  for (int e = 0; e < 256; ++e) EXPECT_EQ(y[e], static_cast<float>((e % 128) / 32) - 1.0f) << e;
}

TEST(Dequantize, Tq2_0Codes) {
  std::vector<uint8_t> src(66, 0xE4);
  PutU16(src, 64, kHalfTwo);
  const auto y = DequantizeOrFail(GgmlType::kTQ2_0, src, 256);
  for (int e = 0; e < 256; ++e) EXPECT_EQ(y[e], 2.0f * static_cast<float>((e % 128) / 32 - 1)) << e;
}

TEST(Dequantize, Iq4NlCodebook) {
  const float kv[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
  std::vector<uint8_t> src(18);
  PutU16(src, 0, kHalfHalf);
  for (int j = 0; j < 16; ++j) src[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const auto y = DequantizeOrFail(GgmlType::kIQ4_NL, src, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.5f * kv[j]) << j;
    EXPECT_EQ(y[16 + j], 0.5f * kv[15 - j]) << j;
  }
}

TEST(Dequantize, Iq2XxsGridRowZeroWithSigns) {
  // Grid row 0 is eight 8s. Scale 15: db = 1 * (0.5 + 15) * 0.25 = 3.875.
  // Sign index 1 -> ksigns 0x81: elements 0 and 7 of each 8 negative.
  std::vector<uint8_t> src(66);
  PutU16(src, 0, kHalfOne);
  for (int ib = 0; ib < 8; ++ib) {
    PutU32(src, 2 + 8 * ib, 0);
    PutU32(src, 6 + 8 * ib, (15u << 28) | (1u << 0) | (1u << 7) | (1u << 14) | (1u << 21));
  }
  const auto y = DequantizeOrFail(GgmlType::kIQ2_XXS, src, 256);
  for (int e = 0; e < 256; ++e) EXPECT_EQ(y[e], (e % 8 == 0 || e % 8 == 7) ? -31.0f : 31.0f) << e;
}

TEST(Dequantize, Iq3XxsGridRowZero) {
  // Grid row 0 is four 4s; scale 0 gives db = 1 * 0.5 * 0.5; no signs.
  std::vector<uint8_t> src(98);
  PutU16(src, 0, kHalfOne);
  const auto y = DequantizeOrFail(GgmlType::kIQ3_XXS, src, 256);
  for (int e = 0; e < 256; ++e) EXPECT_EQ(y[e], 1.0f) << e;
}

TEST(Dequantize, Iq1SGridRowZeroWithDelta) {
  // Grid row 0 is eight -1s. Scale 0 gives dl = d; delta is +1/8 unless bit 15.
  std::vector<uint8_t> src(50);
  PutU16(src, 0, kHalfOne);
  for (int ib = 0; ib < 8; ++ib) PutU16(src, 34 + 2 * ib, ib % 2 ? 0x8000 : 0);
  const auto y = DequantizeOrFail(GgmlType::kIQ1_S, src, 256);
  for (int e = 0; e < 256; ++e) EXPECT_EQ(y[e], (e / 32) % 2 ? -1.125f : -0.875f) << e;
}

// ---------------------------------------------------------------- errors

TEST(Dequantize, RejectsBadSizesWithoutCrashing) {
  std::vector<uint8_t> src(18 * 4);
  std::vector<float> dst(128);

  Status st = Dequantize(GgmlType::kQ4_0, src, 33, dst);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(st.error().field, "n_elements");

  st = Dequantize(GgmlType::kQ4_0, std::span<const uint8_t>(src).first(18 * 4 - 1), 128, dst);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(st.error().field, "src");

  st = Dequantize(GgmlType::kQ4_0, src, 128, std::span<float>(dst).first(127));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(st.error().field, "dst");

  // A block count whose byte size overflows 64 bits.
  st = Dequantize(GgmlType::kQ8_0, src, std::numeric_limits<uint64_t>::max() / 32 * 32, dst);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().field, "src");

  // Removed and unknown type ids.
  EXPECT_FALSE(Dequantize(static_cast<GgmlType>(4), src, 32, dst).ok());
  EXPECT_FALSE(Dequantize(static_cast<GgmlType>(31), src, 32, dst).ok());
  EXPECT_FALSE(Dequantize(static_cast<GgmlType>(999), src, 32, dst).ok());

  // Empty input is fine, and a larger dst is left alone past n_elements.
  EXPECT_TRUE(Dequantize(GgmlType::kQ4_0, {}, 0, {}).ok());
  std::vector<float> big(200, 7.0f);
  EXPECT_TRUE(Dequantize(GgmlType::kQ4_0, src, 128, big).ok());
  EXPECT_EQ(big[128], 7.0f);
}

TEST(CanDequantize, EveryActiveTypeAndNoOther) {
  for (uint32_t id = 0; id < 64; ++id) {
    const auto traits = LookupType(id);
    const bool active = traits && traits->status == TypeStatus::kActive;
    EXPECT_EQ(CanDequantize(static_cast<GgmlType>(id)), active) << id;
  }
}

// ---------------------------------------------------------------- properties

// Three blocks of random bytes: no crash, deterministic, unaffected by source
// alignment; with every byte <= 0x7B, no f16/f32/bf16 field can be infinite
// or NaN, so every value must be finite (F64 may overflow float: not NaN).
TEST(Dequantize, RandomBlocksOfEveryType) {
  std::mt19937 rng(20240607);
  for (uint32_t id = 0; id < kGgmlTypeCount; ++id) {
    const auto traits = LookupType(id);
    if (!traits || traits->status != TypeStatus::kActive) continue;
    const auto type = static_cast<GgmlType>(id);
    const uint64_t n = 3ull * traits->block_size;
    const size_t bytes = 3ull * traits->type_size;
    SCOPED_TRACE(TypeName(type));

    for (int round = 0; round < 20; ++round) {
      std::vector<uint8_t> any(bytes + 1);
      for (auto& b : any) b = static_cast<uint8_t>(rng());
      const auto a = DequantizeOrFail(type, any, n);
      // Same bytes at an odd address give the same bits.
      std::vector<uint8_t> shifted(bytes + 1);
      std::memcpy(shifted.data() + 1, any.data(), bytes);
      std::vector<float> b(n);
      ASSERT_TRUE(Dequantize(type, std::span<const uint8_t>(shifted).subspan(1), n, b).ok());
      ASSERT_EQ(std::memcmp(a.data(), b.data(), n * sizeof(float)), 0);

      std::vector<uint8_t> tame(bytes);
      for (auto& v : tame) v = static_cast<uint8_t>(rng() % 0x7C);
      const auto c = DequantizeOrFail(type, tame, n);
      for (uint64_t i = 0; i < n; ++i) {
        if (type == GgmlType::kF64) {
          ASSERT_FALSE(std::isnan(c[i])) << i;
        } else {
          ASSERT_TRUE(std::isfinite(c[i])) << i << " " << c[i];
        }
      }
    }
  }
}

}  // namespace
}  // namespace ggufscope::gguf
