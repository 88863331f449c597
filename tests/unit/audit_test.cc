// audit on files with one planted fault each: the fault is found, named and
// localized, with the right strength; clean files stay intact.
#include "inspect/audit.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "gguf/block_scales.h"
#include "gguf/dequant.h"
#include "gguf/mapping.h"
#include "gguf/writer.h"
#include "test_models.h"

namespace ggufscope::inspect {
namespace {

using gguf::GgufFile;
using gguf::Value;
using gguf::ValueType;

const std::string kStories = testing::SharedDir() + "/models/stories260K.gguf";

std::string Write(const gguf::Writer& w, const std::string& name) {
  const std::string path = ::testing::TempDir() + "/audit_" + name + ".gguf";
  EXPECT_TRUE(w.WriteFile(path).ok());
  return path;
}

const Finding* FindCheck(const AuditReport& r, const std::string& check, const std::string& tensor = "") {
  for (const Finding& f : r.findings) {
    if (f.check == check && (tensor.empty() || f.tensor == tensor)) return &f;
  }
  return nullptr;
}

class AuditTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto f = GgufFile::Open(kStories);
    if (!f.ok()) GTEST_SKIP() << "no " << kStories;
    file_ = std::make_unique<GgufFile>(std::move(f).value());
  }
  // A writer holding stories260K with tensor `name` replaced by `data` (same type and shape).
  gguf::Writer WithTensor(const std::string& name, std::vector<uint8_t> data) {
    buffers_.push_back(std::move(data));
    gguf::Writer w;
    for (const auto& kv : file_->metadata()) EXPECT_TRUE(w.AddKv(kv.key, kv.value).ok());
    for (const auto& t : file_->tensors()) {
      std::span<const uint8_t> bytes = t.name == name ? std::span<const uint8_t>(buffers_.back()) : file_->TensorData(t);
      EXPECT_TRUE(w.AddTensor(t.name, t.type, {t.ne.begin(), t.ne.begin() + t.n_dims}, bytes).ok());
    }
    return w;
  }
  std::vector<uint8_t> Copy(const std::string& name) {
    const auto d = file_->TensorData(*file_->FindTensor(name));
    return {d.begin(), d.end()};
  }
  std::unique_ptr<GgufFile> file_;
  std::vector<std::vector<uint8_t>> buffers_;
};

TEST_F(AuditTest, CleanFileIsIntact) {
  const AuditReport r = Audit(kStories, {});
  EXPECT_EQ(r.verdict, Verdict::kIntact);
  EXPECT_EQ(r.tensors.size(), 48u);
  for (const Finding& f : r.findings) EXPECT_EQ(f.severity, Severity::kNote) << f.message;
}

TEST_F(AuditTest, NanIsProofNamedAndLocalized) {
  auto data = Copy("blk.2.ffn_up.weight");
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(data.data() + 4 * 100, &nan, 4);
  const AuditReport r = Audit(Write(WithTensor("blk.2.ffn_up.weight", data), "nan"), {});
  EXPECT_EQ(r.verdict, Verdict::kCorrupt);
  const Finding* f = FindCheck(r, "values.nonfinite", "blk.2.ffn_up.weight");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->severity, Severity::kProof);
  const GgufFile g = std::move(GgufFile::Open(r.file).value());
  EXPECT_EQ(f->offset, g.data_offset() + g.FindTensor("blk.2.ffn_up.weight")->offset + 400);
  EXPECT_NE(f->message.find("element 100"), std::string::npos) << f->message;
}

TEST_F(AuditTest, FlippedExponentBitIsImpossibleValue) {
  auto data = Copy("blk.1.attn_q.weight");
  uint32_t bits;
  std::memcpy(&bits, data.data() + 4 * 7, 4);
  bits ^= 1u << 30;  // 0.0x becomes ~1e37
  std::memcpy(data.data() + 4 * 7, &bits, 4);
  const AuditReport r = Audit(Write(WithTensor("blk.1.attn_q.weight", data), "bitflip"), {});
  EXPECT_EQ(r.verdict, Verdict::kCorrupt);
  ASSERT_NE(FindCheck(r, "values.impossible", "blk.1.attn_q.weight"), nullptr);
}

TEST_F(AuditTest, ZeroRowsAreEvidenceNotProof) {
  auto data = Copy("blk.3.ffn_down.weight");  // 172 x 64: rows of 172 floats
  std::fill(data.begin() + 172 * 4 * 5, data.begin() + 172 * 4 * 8, 0);
  const AuditReport r = Audit(Write(WithTensor("blk.3.ffn_down.weight", data), "zero"), {});
  EXPECT_EQ(r.verdict, Verdict::kSuspicious);
  const Finding* f = FindCheck(r, "values.zero-rows", "blk.3.ffn_down.weight");
  ASSERT_NE(f, nullptr);
  EXPECT_NE(f->message.find("3 of 64 rows"), std::string::npos) << f->message;
  EXPECT_NE(f->message.find("row 5"), std::string::npos) << f->message;
}

TEST_F(AuditTest, RescaledLayerIsNotedOrEvidenceButNeverProof) {
  for (float scale : {30.0f, 5000.0f}) {
    auto data = Copy("blk.2.attn_norm.weight");
    for (size_t i = 0; i < data.size(); i += 4) {
      float v;
      std::memcpy(&v, data.data() + i, 4);
      v *= scale;
      std::memcpy(data.data() + i, &v, 4);
    }
    const AuditReport r = Audit(Write(WithTensor("blk.2.attn_norm.weight", data), "scaled"), {});
    const Finding* f = FindCheck(r, "consistency.layer", "blk.2.attn_norm.weight");
    ASSERT_NE(f, nullptr) << scale;
    EXPECT_NE(r.verdict, Verdict::kCorrupt) << scale;  // statistics alone never prove damage
    EXPECT_EQ(f->severity, scale > 1000 ? Severity::kEvidence : Severity::kNote);
  }
}

TEST_F(AuditTest, AgainstReferenceProvesASwapAndASignFlip) {
  auto a = Copy("blk.1.ffn_up.weight"), b = Copy("blk.2.ffn_up.weight");
  buffers_.push_back(b);
  gguf::Writer w;
  for (const auto& kv : file_->metadata()) ASSERT_TRUE(w.AddKv(kv.key, kv.value).ok());
  for (const auto& t : file_->tensors()) {
    std::span<const uint8_t> bytes = file_->TensorData(t);
    if (t.name == "blk.1.ffn_up.weight") bytes = buffers_.back();
    if (t.name == "blk.2.ffn_up.weight") bytes = file_->TensorData(*file_->FindTensor("blk.1.ffn_up.weight"));
    ASSERT_TRUE(w.AddTensor(t.name, t.type, {t.ne.begin(), t.ne.begin() + t.n_dims}, bytes).ok());
  }
  const std::string swapped = Write(w, "swapped");
  EXPECT_EQ(Audit(swapped, {}).verdict, Verdict::kIntact);  // statistics can't see a swap
  AuditOptions opt;
  opt.against = kStories;
  const AuditReport r = Audit(swapped, opt);
  EXPECT_EQ(r.verdict, Verdict::kCorrupt);
  const Finding* f = FindCheck(r, "provenance.against", "blk.1.ffn_up.weight");
  ASSERT_NE(f, nullptr);
  EXPECT_NE(f->message.find("blk.2.ffn_up.weight"), std::string::npos) << f->message;  // named as swapped

  auto flipped = Copy("output_norm.weight");
  for (size_t i = 3; i < flipped.size(); i += 4) flipped[i] ^= 0x80;
  const AuditReport s = Audit(Write(WithTensor("output_norm.weight", flipped), "signflip"), opt);
  const Finding* g = FindCheck(s, "provenance.against", "output_norm.weight");
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(s.verdict, Verdict::kCorrupt);
}

TEST_F(AuditTest, MetadataContradictionsAreProof) {
  gguf::Writer w = gguf::Writer::FromFile(*file_);
  ASSERT_TRUE(w.SetKv("llama.block_count", Value::U(ValueType::kUint32, 4)).ok());
  ASSERT_TRUE(w.SetKv("tokenizer.ggml.eos_token_id", Value::U(ValueType::kUint32, 600)).ok());
  ASSERT_TRUE(w.SetKv("llama.embedding_length", Value::U(ValueType::kUint32, 96)).ok());
  const AuditReport r = Audit(Write(w, "meta"), {});
  EXPECT_EQ(r.verdict, Verdict::kCorrupt);
  const Finding* bc = FindCheck(r, "metadata.block-count");
  ASSERT_NE(bc, nullptr);
  EXPECT_EQ(bc->key, "llama.block_count");
  const Finding* tok = FindCheck(r, "metadata.special-token");
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->key, "tokenizer.ggml.eos_token_id");
  EXPECT_NE(FindCheck(r, "structure.shape", "token_embd.weight"), nullptr);
}

TEST_F(AuditTest, TruncatedFileIsCorruptAndHtmlIsUnreadable) {
  const auto bytes = file_->bytes();
  const std::string cut = ::testing::TempDir() + "/audit_cut.gguf";
  FILE* fp = std::fopen(cut.c_str(), "wb");
  std::fwrite(bytes.data(), 1, 500000, fp);
  std::fclose(fp);
  const AuditReport r = Audit(cut, {});
  EXPECT_EQ(r.verdict, Verdict::kCorrupt);
  ASSERT_EQ(r.findings.size(), 1u);
  EXPECT_EQ(r.findings[0].check, "structure.truncated");
  EXPECT_FALSE(r.findings[0].tensor.empty());
  const std::string html = ::testing::TempDir() + "/audit_page.gguf";
  fp = std::fopen(html.c_str(), "wb");
  std::fputs("<!DOCTYPE html><html><body>404</body></html>", fp);
  std::fclose(fp);
  const AuditReport page = Audit(html, {});
  EXPECT_EQ(page.verdict, Verdict::kUnreadable);
  EXPECT_EQ(ExitCodeOf(Verdict::kUnreadable), 3);
  // The page's bad magic is at a position (byte 0), and both forms say so.
  ASSERT_EQ(page.findings.size(), 1u);
  EXPECT_EQ(page.findings[0].offset, 0u);
  EXPECT_NE(AuditText(page, false).find("byte 0"), std::string::npos);
  EXPECT_EQ(AuditJson(page)["findings"][0]["offset"], 0);
}

TEST_F(AuditTest, MissingFileNamesNoBytePosition) {
  // An I/O error has no position in a file: no "byte 0" in either form
  // (before, every such error read "at byte 0").
  const AuditReport r = Audit(::testing::TempDir() + "/no_such_model.gguf", {});
  EXPECT_EQ(r.verdict, Verdict::kUnreadable);
  ASSERT_EQ(r.findings.size(), 1u);
  EXPECT_EQ(r.findings[0].check, "structure.io-error");
  EXPECT_EQ(r.findings[0].message.find(" at byte"), std::string::npos) << r.findings[0].message;
  const std::string text = AuditText(r, false);
  EXPECT_EQ(text.find(", byte "), std::string::npos) << text;
  EXPECT_EQ(text.find(" at byte"), std::string::npos) << text;
  EXPECT_FALSE(r.findings[0].has_offset());
  EXPECT_NE(text.find("no_such_model.gguf"), std::string::npos) << text;
  EXPECT_TRUE(AuditJson(r)["findings"][0]["offset"].is_null());
}

TEST_F(AuditTest, ExpectSha256) {
  AuditOptions opt;
  opt.expect_sha256 = "00";
  const AuditReport r = Audit(kStories, opt);
  EXPECT_EQ(r.verdict, Verdict::kCorrupt);
  ASSERT_TRUE(r.sha256.has_value());
  opt.expect_sha256 = *r.sha256;
  EXPECT_EQ(Audit(kStories, opt).verdict, Verdict::kIntact);
}

TEST(AuditScales, ScaleTableMatchesDequantization) {
  // Setting the first scale field of a block to NaN must make its values NaN:
  // proves each offset in gguf/block_scales.h points at a real scale.
  using gguf::GgmlType;
  for (uint32_t id = 0; id < gguf::kGgmlTypeCount; ++id) {
    const auto tr = gguf::LookupType(id);
    if (tr->status != gguf::TypeStatus::kActive) continue;
    const auto type = static_cast<GgmlType>(id);
    const gguf::BlockScales sc = gguf::ScalesOf(type);
    if (sc.kind != gguf::ScaleKind::kF16) continue;
    std::vector<uint8_t> block(tr->type_size, 0x11);
    for (uint8_t k = 0; k < sc.count; ++k) {
      block[sc.offsets[k]] = 0x00;
      block[sc.offsets[k] + 1] = 0x3c;  // 1.0
    }
    block[sc.offsets[0]] = 0x00;
    block[sc.offsets[0] + 1] = 0x7e;  // NaN
    std::vector<float> out(tr->block_size);
    ASSERT_TRUE(gguf::Dequantize(type, block, tr->block_size, out).ok());
    size_t nans = 0;
    for (float v : out) nans += std::isnan(v);
    EXPECT_GT(nans, tr->block_size / 2) << tr->name;
  }
}

}  // namespace
}  // namespace ggufscope::inspect
