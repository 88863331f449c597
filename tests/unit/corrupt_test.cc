// Tests of inspect/corrupt: each mode on the shared models (stories260K and
// every single-type synth file) and on built files of every quantized type,
// checked through the dequantized values: the targeted tensor changed exactly
// as specified, every other tensor kept its bytes.
#include "inspect/corrupt.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <set>

#include "gguf/block_scales.h"
#include "gguf/dequant.h"
#include "gguf/mapping.h"
#include "gguf/writer.h"
#include "inspect/info.h"
#include "test_models.h"

namespace ggufscope::inspect {
namespace {

using gguf::ErrorCode;
using gguf::GgmlType;
using gguf::GgufFile;
using gguf::TensorInfo;

constexpr char kTarget[] = "blk.0.attn_q.weight";
constexpr char kOther[] =
    "blk.1.attn_q.weight";  // same type and shape as kTarget in every model used

std::vector<float> Values(const GgufFile& f, const std::string& name) {
  const TensorInfo* t = f.FindTensor(name);
  EXPECT_NE(t, nullptr) << name;
  if (t == nullptr) return {};
  std::vector<float> v(t->n_elements);
  EXPECT_TRUE(gguf::Dequantize(t->type, f.TensorData(*t), t->n_elements, v).ok());
  return v;
}

std::vector<uint8_t> Bytes(const GgufFile& f, const std::string& name) {
  const auto d = f.TensorData(*f.FindTensor(name));
  return {d.begin(), d.end()};
}

bool SameBits(float a, float b) { return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b); }

// Same metadata keys (unless !same_keys), same tensor table, and identical bytes for every tensor
// not in `changed`.
void ExpectRestIdentical(const GgufFile& in, const GgufFile& out,
                         const std::set<std::string>& changed, bool same_keys = true) {
  if (same_keys) {
    ASSERT_EQ(in.metadata().size(), out.metadata().size());
    for (size_t i = 0; i < in.metadata().size(); ++i)
      EXPECT_EQ(in.metadata()[i].key, out.metadata()[i].key);
  }
  ASSERT_EQ(in.tensors().size(), out.tensors().size());
  for (size_t i = 0; i < in.tensors().size(); ++i) {
    const TensorInfo& a = in.tensors()[i];
    const TensorInfo& b = out.tensors()[i];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.ne, b.ne);
    if (changed.count(a.name) != 0) continue;
    EXPECT_EQ(a.type, b.type) << a.name;
    EXPECT_TRUE(std::ranges::equal(in.TensorData(a), out.TensorData(b))) << a.name << " changed";
  }
}

std::string TempPath(const std::string& tag) {
  std::string name = tag;
  for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return ::testing::TempDir() + "/corrupt_" + name + ".gguf";
}

// Runs Corrupt on `in` and parses the output.
gguf::Result<GgufFile> RunCorrupt(const GgufFile& in, const CorruptSpec& spec,
                                  const std::string& tag, std::string* line = nullptr) {
  const std::string path = TempPath(tag);
  std::string what;
  const gguf::Status s = Corrupt(in, path, spec, &what);
  if (!s.ok()) return s.error();
  EXPECT_FALSE(what.empty());
  EXPECT_EQ(what.find('\n'), std::string::npos);
  if (line != nullptr) *line = what;
  return GgufFile::Open(path);
}

CorruptSpec Spec(CorruptMode mode, std::string tensor = kTarget) {
  CorruptSpec s;
  s.mode = mode;
  s.tensor = std::move(tensor);
  return s;
}

bool IsFloat(GgmlType t) {
  return t == GgmlType::kF32 || t == GgmlType::kF16 || t == GgmlType::kBF16 || t == GgmlType::kF64;
}

// ---------------------------------------------------------------- shared models

class CorruptModel : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const std::string path = testing::SharedDir() + "/models/" + GetParam();
    if (!std::filesystem::exists(path)) GTEST_SKIP() << "no " << path;
    gguf::Result<GgufFile> f = GgufFile::Open(path);
    ASSERT_TRUE(f.ok()) << f.error().Message();
    in_.emplace(std::move(*f));
    t_ = in_->FindTensor(kTarget);
    ASSERT_NE(t_, nullptr);
    traits_ = gguf::Traits(t_->type);
  }
  gguf::Result<GgufFile> Run(const CorruptSpec& spec, const std::string& tag) {
    return RunCorrupt(*in_, spec, GetParam() + "_" + tag);
  }
  uint64_t BlockElems() const { return traits_.block_size; }

  std::optional<GgufFile> in_;
  const TensorInfo* t_ = nullptr;
  gguf::TypeTraits traits_{};
};

TEST_P(CorruptModel, ScaleByTwoDoublesEveryValueExactly) {
  CorruptSpec spec = Spec(CorruptMode::kScale);
  spec.scale = 2.0;
  gguf::Result<GgufFile> out = Run(spec, "scale2");
  if (t_->type == GgmlType::kIQ1_M) {
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.error().code, ErrorCode::kUnsupported);
    return;
  }
  ASSERT_TRUE(out.ok()) << out.error().Message();
  const std::vector<float> a = Values(*in_, kTarget), b = Values(*out, kTarget);
  for (size_t i = 0; i < a.size(); ++i)
    ASSERT_TRUE(SameBits(b[i], 2.0f * a[i])) << i << ": " << a[i] << " " << b[i];
  ExpectRestIdentical(*in_, *out, {kTarget});
}

// A factor that is not a power of two: float elements are rounded once into
// their type; f16 scale fields once into f16 (so each value is off by at most
// the fields' rounding); E8M0 refuses.
TEST_P(CorruptModel, ScaleByPointThreeRoundsOnceIntoTheFieldFormat) {
  constexpr double kS = 0.3;
  CorruptSpec spec = Spec(CorruptMode::kScale);
  spec.scale = kS;
  gguf::Result<GgufFile> out = Run(spec, "scale03");
  const gguf::ScaleKind kind = gguf::ScalesOf(t_->type).kind;
  if (t_->type == GgmlType::kIQ1_M || kind == gguf::ScaleKind::kE8M0) {
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.error().code, ErrorCode::kUnsupported) << out.error().Message();
    return;
  }
  ASSERT_TRUE(out.ok()) << out.error().Message();
  const std::vector<float> a = Values(*in_, kTarget), b = Values(*out, kTarget);
  if (IsFloat(t_->type)) {
    for (size_t i = 0; i < a.size(); ++i) {
      const double x = a[i] * kS;
      const float want = t_->type == GgmlType::kF16    ? gguf::HalfToFloat(DoubleToHalf(x))
                         : t_->type == GgmlType::kBF16 ? gguf::Bf16ToFloat(DoubleToBf16(x))
                                                       : static_cast<float>(x);
      ASSERT_TRUE(SameBits(b[i], want)) << i;
    }
  } else {
    // The fields, re-encoded by hand from block_scales.h, give the same bytes.
    std::vector<uint8_t> want = Bytes(*in_, kTarget);
    const gguf::BlockScales bs = gguf::ScalesOf(t_->type);
    for (size_t off = 0; off < want.size(); off += traits_.type_size) {
      for (int k = 0; k < bs.count; ++k) {
        uint16_t h;
        std::memcpy(&h, &want[off + bs.offsets[k]], 2);
        h = DoubleToHalf(gguf::HalfToFloat(h) * kS);
        std::memcpy(&want[off + bs.offsets[k]], &h, 2);
      }
    }
    EXPECT_EQ(Bytes(*out, kTarget), want);
    // And every value is a*S within the rounding of its block's fields: with
    // r the largest relative rounding error of a field (2^-11 unless it went
    // subnormal), each of an affine block's two terms (at most ~2x the
    // block's largest value) is off by at most r times itself.
    const std::vector<uint8_t> got = Bytes(*out, kTarget), had = Bytes(*in_, kTarget);
    for (size_t blk = 0; blk < a.size() / BlockElems(); ++blk) {
      double r = 0;
      for (int k = 0; k < bs.count; ++k) {
        uint16_t h0, h1;
        std::memcpy(&h0, &had[blk * traits_.type_size + bs.offsets[k]], 2);
        std::memcpy(&h1, &got[blk * traits_.type_size + bs.offsets[k]], 2);
        const double exact = gguf::HalfToFloat(h0) * kS;
        if (exact != 0)
          r = std::max(r, std::fabs(gguf::HalfToFloat(h1) - exact) / std::fabs(exact));
      }
      EXPECT_LE(r, 0x1p-7);  // even a subnormal d keeps a few bits here
      const size_t lo = blk * BlockElems(), hi = lo + BlockElems();
      float amax = 0;
      for (size_t i = lo; i < hi; ++i) amax = std::max(amax, std::fabs(a[i]));
      for (size_t i = lo; i < hi; ++i) {
        ASSERT_NEAR(b[i], a[i] * kS, 3 * r * kS * amax + 0x1p-24 * kS * amax) << "element " << i;
      }
    }
  }
  ExpectRestIdentical(*in_, *out, {kTarget});
}

TEST_P(CorruptModel, BitflipChangesOneBitOfOneElementOrBlockScale) {
  CorruptSpec spec = Spec(CorruptMode::kBitflip);
  spec.index = 3;
  spec.bit = t_->type == GgmlType::kMXFP4 ? 2 : 14;  // an exponent bit (f16, bf16 and E8M0 alike)
  gguf::Result<GgufFile> out = Run(spec, "bitflip");
  ASSERT_TRUE(out.ok()) << out.error().Message();
  const std::vector<uint8_t> a = Bytes(*in_, kTarget), b = Bytes(*out, kTarget);
  ASSERT_EQ(a.size(), b.size());
  // Where the flipped bit must be.
  size_t byte = 3 * traits_.type_size + spec.bit / 8;
  unsigned bit = spec.bit % 8;
  if (t_->type == GgmlType::kIQ1_M) {  // d's bit 14 is bit 2 of sc[3]'s top nibble
    byte = 3 * traits_.type_size + 48 + 2 * 3 + 1;
    bit = 4 + 2;
  } else if (traits_.is_quantized) {
    byte += gguf::ScalesOf(t_->type).offsets[0];
  }
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i] ^ b[i], i == byte ? 1u << bit : 0u) << "byte " << i;
  }
  const std::vector<float> va = Values(*in_, kTarget), vb = Values(*out, kTarget);
  const size_t lo = 3 * BlockElems(), hi = lo + BlockElems();  // element 3, or block 3
  bool changed = false;
  for (size_t i = 0; i < va.size(); ++i) {
    if (i >= lo && i < hi) {
      changed |= !SameBits(va[i], vb[i]);
    } else {
      ASSERT_TRUE(SameBits(va[i], vb[i])) << i;
    }
  }
  EXPECT_TRUE(changed);
  if (t_->type == GgmlType::kQ8_0) {  // d * q with the new d, exactly
    uint16_t d_old, d_new;
    std::memcpy(&d_old, &a[3 * 34], 2);
    std::memcpy(&d_new, &b[3 * 34], 2);
    for (size_t i = lo; i < hi; ++i) {
      EXPECT_EQ(vb[i], gguf::HalfToFloat(d_new) * (va[i] / gguf::HalfToFloat(d_old)));
    }
  }
  ExpectRestIdentical(*in_, *out, {kTarget});
}

// NaN goes into element 0 or block 0's first scale and nowhere else.
TEST_P(CorruptModel, NanPoisonsTheFirstElementOrBlockOnly) {
  gguf::Result<GgufFile> out = Run(Spec(CorruptMode::kNan), "nan");
  ASSERT_TRUE(out.ok()) << out.error().Message();
  const std::vector<float> a = Values(*in_, kTarget), b = Values(*out, kTarget);
  for (size_t i = 0; i < BlockElems(); ++i) {
    if (t_->type == GgmlType::kMXFP4) {
      // 0xff is the E8M0 NaN, but ggml (and ggufscope, bit-identical to it)
      // decodes it as 2^127: nonzero codes become +-1.7e38 or +-Inf.
      EXPECT_TRUE(b[i] == 0 || std::fabs(b[i]) >= 0x1p127f) << i << ": " << b[i];
    } else {
      EXPECT_TRUE(std::isnan(b[i])) << i;
    }
  }
  for (size_t i = BlockElems(); i < a.size(); ++i) ASSERT_TRUE(SameBits(a[i], b[i])) << i;
  ExpectRestIdentical(*in_, *out, {kTarget});
}

TEST_P(CorruptModel, InfMakesTheFirstBlockNonFinite) {
  gguf::Result<GgufFile> out = Run(Spec(CorruptMode::kInf), "inf");
  if (t_->type == GgmlType::kMXFP4) {  // E8M0 has no Inf
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.error().code, ErrorCode::kUnsupported);
    return;
  }
  ASSERT_TRUE(out.ok()) << out.error().Message();
  const std::vector<float> a = Values(*in_, kTarget), b = Values(*out, kTarget);
  if (IsFloat(t_->type)) {
    EXPECT_EQ(b[0], std::numeric_limits<float>::infinity());
  }
  for (size_t i = 0; i < BlockElems(); ++i)
    EXPECT_FALSE(std::isfinite(b[i])) << i;  // Inf, or Inf * 0 = NaN
  for (size_t i = BlockElems(); i < a.size(); ++i) ASSERT_TRUE(SameBits(a[i], b[i])) << i;
  ExpectRestIdentical(*in_, *out, {kTarget});
}

TEST_P(CorruptModel, ZeroRowsZeroesExactlyThoseRows) {
  CorruptSpec spec = Spec(CorruptMode::kZeroRows);
  spec.rows = 3;
  gguf::Result<GgufFile> out = Run(spec, "zero");
  ASSERT_TRUE(out.ok()) << out.error().Message();
  const std::vector<float> a = Values(*in_, kTarget), b = Values(*out, kTarget);
  const size_t n_zero = 3 * static_cast<size_t>(t_->ne[0]);
  for (size_t i = 0; i < n_zero; ++i) ASSERT_EQ(b[i], 0.0f) << i;
  for (size_t i = n_zero; i < a.size(); ++i) ASSERT_TRUE(SameBits(a[i], b[i])) << i;
  // Row 3 is the input's, so exactly 3 rows are zero (row 3 has nonzero values in every model).
  EXPECT_TRUE(std::any_of(b.begin() + n_zero, b.begin() + n_zero + t_->ne[0],
                          [](float v) { return v != 0; }));
  ExpectRestIdentical(*in_, *out, {kTarget});
}

TEST_P(CorruptModel, NoiseHasTheAskedSpreadAndIsReproducible) {
  CorruptSpec spec = Spec(CorruptMode::kNoise);
  spec.sigma = 0.1;
  spec.seed = 7;
  gguf::Result<GgufFile> out = Run(spec, "noise");
  ASSERT_TRUE(out.ok()) << out.error().Message();
  EXPECT_EQ(out->FindTensor(kTarget)->type, traits_.is_quantized ? GgmlType::kF32 : t_->type);
  const std::vector<float> a = Values(*in_, kTarget), b = Values(*out, kTarget);
  double sq = 0, diff_sum = 0, diff_sq = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    sq += double{a[i]} * a[i];
    const double d = double{b[i]} - a[i];
    diff_sum += d;
    diff_sq += d * d;
  }
  const double n = static_cast<double>(a.size());
  const double want = 0.1 * std::sqrt(sq / n);
  EXPECT_NEAR(std::sqrt(diff_sq / n), want, 0.1 * want);
  EXPECT_NEAR(diff_sum / n, 0.0, 5 * want / std::sqrt(n));
  ExpectRestIdentical(*in_, *out, {kTarget});
  // Same seed, same bytes; another seed, other bytes.
  gguf::Result<GgufFile> again = Run(spec, "noise_again");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(Bytes(*again, kTarget), Bytes(*out, kTarget));
  spec.seed = 8;
  gguf::Result<GgufFile> other = Run(spec, "noise_other");
  ASSERT_TRUE(other.ok());
  EXPECT_NE(Bytes(*other, kTarget), Bytes(*out, kTarget));
}

TEST_P(CorruptModel, SwapExchangesTheTwoTensors) {
  CorruptSpec spec = Spec(CorruptMode::kSwap);
  spec.other = kOther;
  gguf::Result<GgufFile> out = Run(spec, "swap");
  ASSERT_TRUE(out.ok()) << out.error().Message();
  EXPECT_EQ(Bytes(*out, kTarget), Bytes(*in_, kOther));
  EXPECT_EQ(Bytes(*out, kOther), Bytes(*in_, kTarget));
  ExpectRestIdentical(*in_, *out, {kTarget, kOther});
}

TEST_P(CorruptModel, TruncateIsReportedOnThatTensor) {
  CorruptSpec spec = Spec(CorruptMode::kTruncate);
  spec.truncate_bytes = 100;
  gguf::Result<GgufFile> out = Run(spec, "trunc");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kTruncated) << out.error().Message();
  EXPECT_EQ(out.error().field, std::string("tensor '") + kTarget + "' data");
  // The shared models are packed, so the output is the input's first bytes.
  const std::string path = TempPath(GetParam() + "_trunc");
  const uint64_t size = in_->data_offset() + t_->offset + 100;
  EXPECT_EQ(std::filesystem::file_size(path), size);
  gguf::Result<std::shared_ptr<const gguf::Mapping>> m = gguf::MapFile(path);
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(std::ranges::equal((*m)->bytes(), in_->bytes().first(size)));
}

TEST_P(CorruptModel, BadRequestsAreErrorsAndWriteNothing) {
  const uint64_t n_units = t_->n_elements / traits_.block_size;  // elements or blocks
  std::vector<CorruptSpec> bad;
  bad.push_back(Spec(CorruptMode::kNan, "no.such.tensor"));
  bad.push_back(Spec(CorruptMode::kBitflip));
  bad.back().bit = traits_.is_quantized
                       ? (gguf::ScalesOf(t_->type).kind == gguf::ScaleKind::kE8M0 ? 8 : 16)
                       : 8 * traits_.type_size;
  bad.push_back(Spec(CorruptMode::kNan));
  bad.back().index = n_units;
  bad.push_back(Spec(CorruptMode::kZeroRows));
  bad.back().rows = t_->n_rows() + 1;
  bad.push_back(Spec(CorruptMode::kSwap));
  bad.back().other = "blk.0.attn_k.weight";  // fewer rows
  bad.push_back(Spec(CorruptMode::kSwap));
  bad.back().other = kTarget;
  bad.push_back(Spec(CorruptMode::kTruncate));
  bad.back().truncate_bytes = t_->n_bytes;
  bad.push_back(Spec(CorruptMode::kNoise));
  bad.back().sigma = -1;
  bad.push_back(Spec(CorruptMode::kScale));
  bad.back().scale = std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < bad.size(); ++i) {
    const std::string path = TempPath(GetParam() + "_bad" + std::to_string(i));
    std::filesystem::remove(path);
    const gguf::Status s = Corrupt(*in_, path, bad[i], nullptr);
    ASSERT_FALSE(s.ok()) << i;
    EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument) << i << ": " << s.error().Message();
    EXPECT_FALSE(s.error().field.empty());
    EXPECT_FALSE(std::filesystem::exists(path)) << i;
  }
}

std::vector<std::string> ModelFiles() {
  std::vector<std::string> out = {"stories260K.gguf", "synth/synth-qwen2-F16.gguf"};
  for (const char* q :
       {"BF16",   "f32",    "IQ1_M",     "IQ1_S",  "IQ2_S", "IQ2_XS", "IQ2_XXS", "IQ3_S", "IQ3_XXS",
        "IQ4_NL", "IQ4_XS", "MXFP4_MOE", "Q1_0",   "Q2_0",  "Q2_K",   "Q3_K_S",  "Q4_0",  "Q4_1",
        "Q4_K_S", "Q5_0",   "Q5_1",      "Q5_K_S", "Q6_K",  "Q8_0",   "TQ1_0",   "TQ2_0"}) {
    out.push_back(std::string("synth/synth-llama-") + q + ".gguf");
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Models, CorruptModel, ::testing::ValuesIn(ModelFiles()),
                         [](const ::testing::TestParamInfo<std::string>& p) {
                           std::string n = std::filesystem::path(p.param).stem().string();
                           for (char& c : n)
                             c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return n;
                         });

// ---------------------------------------------------------------- every type, built in code

// A one-tensor file of `type`: random bytes with every scale field set to a
// plausible value, so the tensor decodes to finite numbers.
std::vector<uint8_t> BuildFile(GgmlType type, uint64_t n_rows) {
  const gguf::TypeTraits& tr = gguf::Traits(type);
  const int64_t ne0 = 2 * tr.block_size;
  std::vector<uint8_t> data(*gguf::BytesFor(type, ne0 * n_rows));
  std::mt19937 rng(static_cast<uint32_t>(type));
  for (uint8_t& b : data) b = static_cast<uint8_t>(rng());
  const gguf::BlockScales bs = gguf::ScalesOf(type);
  for (size_t off = 0; off < data.size(); off += tr.type_size) {
    for (int k = 0; k < bs.count; ++k) {
      uint8_t* p = &data[off + bs.offsets[k]];
      const uint16_t h = 0x2000 + (rng() & 0x3FF);  // f16 around 0.01
      const float f = 0.01f;
      if (bs.kind == gguf::ScaleKind::kF16) std::memcpy(p, &h, 2);
      if (bs.kind == gguf::ScaleKind::kF32) std::memcpy(p, &f, 4);
      if (bs.kind == gguf::ScaleKind::kE8M0) *p = 0x7A;                 // 2^-5
      if (bs.kind == gguf::ScaleKind::kUE4M3) *p = 0x30 + (rng() & 7);  // 0.5 .. 0.94
    }
    if (type == GgmlType::kIQ1_M) {  // d = 0x2400, spread over sc[0..3]'s top nibbles
      for (int i = 0; i < 4; ++i) {
        uint8_t& hi = data[off + 49 + 2 * i];
        hi = static_cast<uint8_t>((hi & 0x0F) | ((0x2400 >> (4 * i)) & 0xF) << 4);
      }
    }
    if (IsFloat(type)) {  // plain values in [-1, 1)
      const double v = static_cast<double>(rng()) / 0x1p31 - 1.0;
      const uint64_t w = type == GgmlType::kF32    ? std::bit_cast<uint32_t>(static_cast<float>(v))
                         : type == GgmlType::kF16  ? DoubleToHalf(v)
                         : type == GgmlType::kBF16 ? DoubleToBf16(v)
                                                   : std::bit_cast<uint64_t>(v);
      std::memcpy(&data[off], &w, tr.type_size);
    }
  }
  gguf::Writer w;
  EXPECT_TRUE(w.AddKv("general.architecture", gguf::Value::Str("test")).ok());
  EXPECT_TRUE(w.AddTensor("a", type, {ne0, static_cast<int64_t>(n_rows)}, data).ok());
  EXPECT_TRUE(w.AddTensor("b", type, {ne0, static_cast<int64_t>(n_rows)}, data).ok());
  return *w.Serialize();
}

TEST(CorruptEveryType, ZeroBytesDecodeToZero) {
  for (uint32_t id = 0; id < gguf::kGgmlTypeCount; ++id) {
    const gguf::TypeTraits t = *gguf::LookupType(id);
    if (t.status != gguf::TypeStatus::kActive) continue;
    const std::vector<uint8_t> zeros(4 * t.type_size, 0);
    std::vector<float> v(4 * t.block_size, 1.0f);
    ASSERT_TRUE(gguf::Dequantize(static_cast<GgmlType>(id), zeros, v.size(), v).ok());
    for (float x : v) ASSERT_EQ(x, 0.0f) << t.name;
  }
}

TEST(CorruptEveryType, ScaleNanAndZeroRowsOnEveryActiveType) {
  for (uint32_t id = 0; id < gguf::kGgmlTypeCount; ++id) {
    const gguf::TypeTraits tr = *gguf::LookupType(id);
    const auto type = static_cast<GgmlType>(id);
    if (tr.status != gguf::TypeStatus::kActive) continue;
    SCOPED_TRACE(std::string(tr.name));
    const std::vector<uint8_t> file = BuildFile(type, 4);
    gguf::Result<GgufFile> in = GgufFile::Parse(std::span<const uint8_t>(file));
    ASSERT_TRUE(in.ok()) << in.error().Message();
    const std::vector<float> a = Values(*in, "a");
    const bool is_int = !IsFloat(type) && !tr.is_quantized;

    CorruptSpec spec = Spec(CorruptMode::kScale, "a");
    spec.scale = 2;
    gguf::Result<GgufFile> out = RunCorrupt(*in, spec, std::string(tr.name) + "_scale");
    if (type == GgmlType::kIQ1_M || is_int) {
      ASSERT_FALSE(out.ok());
      EXPECT_EQ(out.error().code, ErrorCode::kUnsupported);
    } else {
      ASSERT_TRUE(out.ok()) << out.error().Message();
      const std::vector<float> b = Values(*out, "a");
      for (size_t i = 0; i < a.size(); ++i) ASSERT_TRUE(SameBits(b[i], 2.0f * a[i])) << i;
      ExpectRestIdentical(*in, *out, {"a"});
    }

    out = RunCorrupt(*in, Spec(CorruptMode::kNan, "a"), std::string(tr.name) + "_nan");
    if (type == GgmlType::kNVFP4 || is_int) {
      ASSERT_FALSE(out.ok());
      EXPECT_EQ(out.error().code, ErrorCode::kUnsupported);
    } else {
      ASSERT_TRUE(out.ok()) << out.error().Message();
      const std::vector<float> b = Values(*out, "a");
      // NVFP4 and MXFP4 aside, a NaN first scale makes the whole first block NaN.
      const size_t n_nan = type == GgmlType::kMXFP4 ? 0 : tr.block_size;
      for (size_t i = 0; i < n_nan; ++i) EXPECT_TRUE(std::isnan(b[i])) << i;
      for (size_t i = tr.block_size; i < a.size(); ++i) ASSERT_TRUE(SameBits(a[i], b[i])) << i;
    }

    spec = Spec(CorruptMode::kZeroRows, "a");
    spec.rows = 2;
    out = RunCorrupt(*in, spec, std::string(tr.name) + "_zero");
    ASSERT_TRUE(out.ok()) << out.error().Message();
    const std::vector<float> b = Values(*out, "a");
    for (size_t i = 0; i < a.size(); ++i)
      ASSERT_TRUE(i < a.size() / 2 ? b[i] == 0 : SameBits(a[i], b[i])) << i;
    ExpectRestIdentical(*in, *out, {"a"});
  }
}

TEST(CorruptEveryType, Ue4m3ScalesOnlyByPowersOfTwoInRange) {
  const std::vector<uint8_t> file = BuildFile(GgmlType::kNVFP4, 2);
  gguf::Result<GgufFile> in = GgufFile::Parse(std::span<const uint8_t>(file));
  ASSERT_TRUE(in.ok());
  CorruptSpec spec = Spec(CorruptMode::kScale, "a");
  for (double s : {0.3, -2.0, 0.0, 1024.0}) {  // not 2^k, negative, zero, past 448
    spec.scale = s;
    EXPECT_EQ(RunCorrupt(*in, spec, "nvfp4_bad").error().code, ErrorCode::kUnsupported) << s;
  }
  spec.scale = 0.25;
  gguf::Result<GgufFile> out = RunCorrupt(*in, spec, "nvfp4_quarter");
  ASSERT_TRUE(out.ok());
  const std::vector<float> a = Values(*in, "a"), b = Values(*out, "a");
  for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(b[i], 0.25f * a[i]) << i;
}

// ---------------------------------------------------------------- small cases

TEST(Corrupt, BitThirtyOfAHalfInF32IsTheExponentTop) {
  gguf::Writer w;
  const float v[2] = {0.5f, -2.0f};
  ASSERT_TRUE(
      w.AddTensor("x", GgmlType::kF32, {2}, {reinterpret_cast<const uint8_t*>(v), sizeof v}).ok());
  const std::vector<uint8_t> file = *w.Serialize();
  gguf::Result<GgufFile> in = GgufFile::Parse(std::span<const uint8_t>(file));
  ASSERT_TRUE(in.ok());
  CorruptSpec spec = Spec(CorruptMode::kBitflip, "x");
  spec.bit = 30;
  std::string line;
  gguf::Result<GgufFile> out = RunCorrupt(*in, spec, "half_bit30", &line);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(Values(*out, "x")[0], 0x1p127f);  // 1.7e38
  EXPECT_EQ(Values(*out, "x")[1], -2.0f);
  EXPECT_NE(line.find("0.5 (0x3f000000) -> 1.7014118e+38 (0x7f000000)"), std::string::npos) << line;
}

TEST(Corrupt, DoubleToHalfAndBf16RoundToNearestEven) {
  for (uint32_t h = 0; h < 0x10000; ++h) {  // every half round-trips (NaNs stay NaN)
    const float f = gguf::HalfToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(gguf::HalfToFloat(DoubleToHalf(f))));
    } else {
      ASSERT_EQ(DoubleToHalf(f), h) << h;
    }
  }
  EXPECT_EQ(DoubleToHalf(1.0 + 0x1p-11), 0x3C00);      // tie to even (down)
  EXPECT_EQ(DoubleToHalf(1.0 + 3 * 0x1p-11), 0x3C02);  // tie to even (up)
  EXPECT_EQ(DoubleToHalf(65520.0), 0x7C00);            // half-way past the max: Inf
  EXPECT_EQ(DoubleToHalf(65519.99), 0x7BFF);
  EXPECT_EQ(DoubleToHalf(0x1p-25), 0x0000);            // tie between 0 and the least subnormal
  EXPECT_EQ(DoubleToHalf(0x1p-14 - 0x1p-25), 0x0400);  // subnormal rounding up to the least normal
  EXPECT_EQ(DoubleToHalf(-0.0), 0x8000);
  EXPECT_EQ(DoubleToBf16(1.0 + 0x1p-8), 0x3F80);  // tie to even
  EXPECT_EQ(DoubleToBf16(3.0e38), 0x7F62);
  EXPECT_EQ(DoubleToBf16(std::numeric_limits<double>::infinity()), 0x7F80);
}

TEST(Corrupt, SetKeyKeepsTheKeysType) {
  const std::string path = testing::SharedDir() + "/models/stories260K.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no " << path;
  gguf::Result<GgufFile> in = GgufFile::Open(path);
  ASSERT_TRUE(in.ok());
  struct Case {
    std::string key, value;
    gguf::ValueType type;
    std::string shown;  // the value as `info` prints it
  };
  for (const Case& c :
       {Case{"llama.context_length", "4096", gguf::ValueType::kUint32, "4096"},
        Case{"llama.attention.layer_norm_rms_epsilon", "1e-6", gguf::ValueType::kFloat32, "1e-06"},
        Case{"general.name", "x", gguf::ValueType::kString, "\"x\""},
        Case{"new.key", "17", gguf::ValueType::kString, "\"17\""},
        Case{"general.alignment", "64", gguf::ValueType::kUint32, "64"}}) {
    CorruptSpec spec = Spec(CorruptMode::kSetKey, "");
    spec.key = c.key;
    spec.value = c.value;
    gguf::Result<GgufFile> out = RunCorrupt(*in, spec, "setkey");
    ASSERT_TRUE(out.ok()) << c.key << ": " << out.error().Message();
    const gguf::KeyValue* kv = out->FindKey(c.key);
    ASSERT_NE(kv, nullptr);
    EXPECT_EQ(kv->value.type, c.type) << c.key;
    EXPECT_EQ(ValueText(kv->value, InfoOptions{}), c.shown);
    if (c.key == "general.alignment") continue;  // re-laid out, same tensors
    ExpectRestIdentical(*in, *out, {}, /*same_keys=*/false);
  }
  struct Bad {
    std::string key, value;
    ErrorCode code;
  };
  for (const Bad& b :
       {Bad{"llama.context_length", "-1", ErrorCode::kInvalidArgument},
        Bad{"llama.context_length", "4294967296", ErrorCode::kInvalidArgument},
        Bad{"llama.context_length", "12abc", ErrorCode::kInvalidArgument},
        Bad{"llama.attention.layer_norm_rms_epsilon", "small", ErrorCode::kInvalidArgument},
        Bad{"llama.attention.layer_norm_rms_epsilon", "1e39", ErrorCode::kInvalidArgument},
        Bad{"tokenizer.ggml.tokens", "x", ErrorCode::kUnsupported},
        Bad{"general.alignment", "48", ErrorCode::kInvalidArgument},
        Bad{"", "x", ErrorCode::kInvalidArgument}}) {
    CorruptSpec spec = Spec(CorruptMode::kSetKey, "");
    spec.key = b.key;
    spec.value = b.value;
    const gguf::Status s = Corrupt(*in, TempPath("setkey_bad"), spec, nullptr);
    ASSERT_FALSE(s.ok()) << b.key << "=" << b.value;
    EXPECT_EQ(s.error().code, b.code) << s.error().Message();
  }
}

}  // namespace
}  // namespace ggufscope::inspect
