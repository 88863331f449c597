// Properties of the CPU reference that need no oracle: decoding one token at a
// time through the KV cache gives the same logits as one batched prefill, and
// bad input is an error. (Against llama.cpp: tests/oracle/test_reference.py.)
#include <gtest/gtest.h>

#include "gguf/file.h"
#include "gguf/mapping.h"
#include "gguf/writer.h"
#include "reference_cpu/forward.h"
#include "test_models.h"

namespace ggufscope::reference {
namespace {

class ReferenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto f = gguf::GgufFile::Open(testing::SharedDir() + "/models/stories260K.gguf");
    if (!f.ok()) GTEST_SKIP() << "no stories260K";
    file_ = std::make_unique<gguf::GgufFile>(std::move(f).value());
    auto m = LoadModel(*file_);
    ASSERT_TRUE(m.ok()) << m.error().Message();
    model_ = std::move(m).value();
  }
  std::unique_ptr<gguf::GgufFile> file_;
  std::unique_ptr<Model> model_;
};

TEST_F(ReferenceTest, KvCacheDecodeEqualsBatchedPrefill) {
  const std::vector<int32_t> tokens = {1, 403, 407, 261, 378, 11, 300, 42, 7, 499};
  Session batch(*model_, 16);
  auto all = batch.Eval(tokens, true);
  ASSERT_TRUE(all.ok());
  Session step(*model_, 16);
  for (size_t i = 0; i < tokens.size(); ++i) {
    auto one = step.Eval(std::span<const int32_t>(&tokens[i], 1), false);
    ASSERT_TRUE(one.ok());
    const float err = (one->row(0) - all->row(static_cast<Eigen::Index>(i))).cwiseAbs().maxCoeff();
    EXPECT_LT(err, 1e-4f) << "position " << i;
  }
  EXPECT_EQ(step.n_past(), 10);
}

TEST_F(ReferenceTest, HyperParametersFromTheFile) {
  EXPECT_EQ(model_->hp.n_layers, 5);
  EXPECT_EQ(model_->hp.n_embd, 64);
  EXPECT_EQ(model_->hp.head_dim, 8);
  EXPECT_EQ(model_->family.rope, RopeType::kNorm);
  EXPECT_FALSE(model_->family.qkv_bias);
}

TEST_F(ReferenceTest, BadInputIsAnError) {
  Session s(*model_, 4);
  const std::vector<int32_t> bad = {1, 512};
  EXPECT_FALSE(s.Eval(bad, false).ok());
  const std::vector<int32_t> too_many = {1, 2, 3, 4, 5};
  EXPECT_FALSE(s.Eval(too_many, false).ok());
  EXPECT_FALSE(s.Eval({}, false).ok());
}

TEST_F(ReferenceTest, HostileHyperParametersAreErrorsBeforeAnyAllocation) {
  // Out of range: refused outright. In range but contradicting the tensors:
  // refused by the shape check that precedes every allocation (a 2^19 x 512
  // embedding would be 1 GiB).
  for (uint64_t embd : {uint64_t{1} << 40, uint64_t{1} << 19, uint64_t{0}}) {
    gguf::Writer w = gguf::Writer::FromFile(*file_);
    ASSERT_TRUE(w.SetKv("llama.embedding_length", gguf::Value::U(gguf::ValueType::kUint64, embd)).ok());
    auto bytes = w.Serialize();
    ASSERT_TRUE(bytes.ok());
    auto f = gguf::GgufFile::Parse(gguf::OwnBytes(*bytes));
    ASSERT_TRUE(f.ok());
    auto m = LoadModel(*f);
    EXPECT_FALSE(m.ok()) << embd;
  }
  gguf::Writer w = gguf::Writer::FromFile(*file_);
  ASSERT_TRUE(w.SetKv("llama.attention.head_count_kv", gguf::Value::U(gguf::ValueType::kUint32, 3)).ok());
  auto f = gguf::GgufFile::Parse(gguf::OwnBytes(*w.Serialize()));
  ASSERT_TRUE(f.ok());
  EXPECT_FALSE(LoadModel(*f).ok());  // 8 heads cannot share 3 KV heads
}

TEST(ReferenceLoad, UnsupportedArchitectureIsNamed) {
  auto f = gguf::GgufFile::Open(testing::SharedDir() + "/models/vocab/ggml-vocab-gpt-2.gguf");
  if (!f.ok()) GTEST_SKIP();
  auto m = LoadModel(*f);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().Message().find("gpt2"), std::string::npos) << m.error().Message();
}

}  // namespace
}  // namespace ggufscope::reference
