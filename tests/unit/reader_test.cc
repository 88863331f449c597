#include <gtest/gtest.h>

#include "gguf/file.h"
#include "inspect/arch_summary.h"
#include "test_models.h"

namespace ggufscope::gguf {
namespace {

std::string Model(const std::string& rel) { return testing::SharedDir() + "/models/" + rel; }

#define OPEN_OR_SKIP(var, path)                                              \
  Result<GgufFile> var = GgufFile::Open(path);                               \
  if (!var.ok() && var.error().code == ErrorCode::kIo) GTEST_SKIP() << path; \
  ASSERT_TRUE(var.ok()) << var.error().Message()

// Facts from shared/models/README.md (an independent description of the files).
TEST(Reader, Stories260KMatchesItsPublishedDescription) {
  OPEN_OR_SKIP(f, Model("stories260K.gguf"));
  const inspect::ArchSummary a = inspect::SummarizeArch(*f);
  EXPECT_EQ(a.arch, "llama");
  EXPECT_EQ(a.n_layers, 5u);
  EXPECT_EQ(a.n_embd, 64u);
  EXPECT_EQ(a.n_ff, 172u);
  EXPECT_EQ(a.n_head, 8u);
  EXPECT_EQ(a.n_head_kv, 4u);
  EXPECT_EQ(a.vocab_size, 512u);
  EXPECT_EQ(a.tokenizer_model, "llama");
  EXPECT_EQ(a.rope, inspect::RopeKind::kNorm);
  EXPECT_TRUE(a.has_output);
  EXPECT_FALSE(a.tied_output);
  for (const TensorInfo& t : f->tensors()) EXPECT_EQ(t.type, GgmlType::kF32) << t.name;
  EXPECT_TRUE(f->warnings().empty());
}

TEST(Reader, SynthQwen2IsTiedNeoxWithBiases) {
  OPEN_OR_SKIP(f, Model("synth/synth-qwen2-Q8_0.gguf"));
  const inspect::ArchSummary a = inspect::SummarizeArch(*f);
  EXPECT_EQ(a.arch, "qwen2");
  EXPECT_EQ(a.n_layers, 2u);
  EXPECT_EQ(a.n_embd, 256u);
  EXPECT_EQ(a.head_dim, 32u);
  EXPECT_EQ(a.rope, inspect::RopeKind::kNeox);
  EXPECT_DOUBLE_EQ(*a.rope_base, 1e6);
  EXPECT_NEAR(*a.rms_eps, 1e-6, 1e-12);
  EXPECT_TRUE(a.tied_output);
  EXPECT_NE(f->FindTensor("blk.0.attn_k.bias"), nullptr);
  // Norms stay F32 in every quantization.
  EXPECT_EQ(f->FindTensor("blk.0.attn_norm.weight")->type, GgmlType::kF32);
}

TEST(Reader, EverySharedModelParsesWithConsistentLayout) {
  const auto models = testing::SharedModels();
  if (models.empty()) GTEST_SKIP();
  for (const std::string& path : models) {
    SCOPED_TRACE(path);
    Result<GgufFile> f = GgufFile::Open(path);
    ASSERT_TRUE(f.ok()) << f.error().Message();
    EXPECT_EQ(f->data_offset() % f->alignment(), 0u);
    for (const TensorInfo& t : f->tensors()) {
      EXPECT_EQ(f->TensorData(t).size(), t.n_bytes);
      EXPECT_LE(f->data_offset() + t.offset + t.n_bytes, f->file_size());
    }
  }
}

TEST(Reader, OpenReportsMissingFileAsIoError) {
  Result<GgufFile> f = GgufFile::Open("/nonexistent/model.gguf");
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().code, ErrorCode::kIo);
  EXPECT_NE(f.error().Message().find("/nonexistent/model.gguf"), std::string::npos);
  // No position in the file to name: the message has no "at byte".
  EXPECT_FALSE(f.error().has_offset());
  EXPECT_EQ(f.error().Message().find(" at byte"), std::string::npos) << f.error().Message();
  Result<GgufFile> d = GgufFile::Open("/tmp");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, ErrorCode::kIo);
  EXPECT_EQ(d.error().Message(), "io-error: /tmp: expected a regular file, found not a regular file");
}

TEST(Reader, ErrorMessageNamesTheByteOnlyWhereThereIsOne) {
  EXPECT_EQ((Error{ErrorCode::kBadMagic, "header.magic", 0, "\"GGUF\"", "\"<!DO\""}).Message(),
            "bad-magic: header.magic at byte 0: expected \"GGUF\", found \"<!DO\"");
  EXPECT_EQ((Error{ErrorCode::kInvalidArgument, "--type", Error::kNoOffset, "f32 or f16", "q4_0"}).Message(),
            "invalid-argument: --type: expected f32 or f16, found q4_0");
}

}  // namespace
}  // namespace ggufscope::gguf
