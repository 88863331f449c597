// Counterfactual repair on the trained stories260K: damaging a norm in
// memory raises the reference's perplexity on a story, undoing the damage
// restores it exactly, and "repairing" an undamaged norm makes it worse —
// the asymmetry `doctor --what-if` reads as evidence.
#include <gtest/gtest.h>

#include <string>

#include "gguf/file.h"
#include "reference_cpu/perplexity.h"
#include "reference_cpu/tokenizer.h"
#include "reference_cpu/whatif.h"
#include "test_models.h"

namespace ggufscope::reference {
namespace {

constexpr const char* kStory =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun. One day, she saw "
    "a big red ball in the park. She ran to the ball and kicked it very hard. The ball went up high into the sky "
    "and came down near a tree. Lily was happy and laughed with her friends. They played all day until the sun "
    "went down and it was time to go home. Her mom made soup for dinner and Lily ate it all.";

class WhatIf : public ::testing::Test {
 protected:
  void SetUp() override {
    auto f = gguf::GgufFile::Open(testing::SharedDir() + "/models/stories260K.gguf");
    if (!f.ok()) GTEST_SKIP() << "no stories260K";
    file_ = std::make_unique<gguf::GgufFile>(std::move(f).value());
    auto tok = Tokenizer::FromGguf(*file_);
    ASSERT_TRUE(tok.ok());
    tokens_ = (*tok)->Encode(kStory, true, false);
    ASSERT_GE(tokens_.size(), 64u);
  }
  double Ppl(const Model& m) {
    PerplexityOptions o;
    o.n_ctx = 64;
    auto r = Perplexity(m, tokens_, o, nullptr);
    EXPECT_TRUE(r.ok());
    return r.ok() ? r->ppl : 0;
  }
  std::unique_ptr<Model> Load() {
    auto m = LoadModel(*file_);
    EXPECT_TRUE(m.ok());
    return std::move(m).value();
  }
  std::unique_ptr<gguf::GgufFile> file_;
  std::vector<int32_t> tokens_;
};

TEST_F(WhatIf, DamageHurtsAndItsRepairRestores) {
  auto m = Load();
  const double clean = Ppl(*m);
  ASSERT_TRUE(ApplyRepair(*m, "blk.2.attn_norm.weight", {Repair::Kind::kScale, 1.0 / 30}).ok());
  const double damaged = Ppl(*m);
  EXPECT_GT(damaged, clean * 1.05) << "a norm scaled by 1/30 must hurt a trained model";
  ASSERT_TRUE(ApplyRepair(*m, "blk.2.attn_norm.weight", {Repair::Kind::kScale, 30.0}).ok());
  EXPECT_NEAR(Ppl(*m), clean, clean * 1e-4) << "undoing the damage restores the model";
}

// Tensors whose scale the model depends on: x7 on a norm or an FFN
// projection moves perplexity by > 5%. (Not every tensor qualifies: x7 on
// one layer's attn_q only sharpens that layer's attention, +2.5%.)
TEST_F(WhatIf, RepairingWhatIsNotBrokenMakesItWorse) {
  for (const char* t : {"output_norm.weight", "blk.0.ffn_norm.weight", "blk.1.ffn_up.weight"}) {
    auto m = Load();
    const double clean = Ppl(*m);
    ASSERT_TRUE(ApplyRepair(*m, t, {Repair::Kind::kScale, 7.0}).ok()) << t;
    EXPECT_GT(Ppl(*m), clean * 1.05) << t;
  }
  auto m = Load();
  const double clean = Ppl(*m);
  // A flipped sign on one layer's down projection hurts less in this tiny
  // model (+2.5%), but still hurts.
  ASSERT_TRUE(ApplyRepair(*m, "blk.3.ffn_down.weight", {Repair::Kind::kNegate}).ok());
  EXPECT_GT(Ppl(*m), clean * 1.01);
}

TEST_F(WhatIf, UnknownTensorIsAnError) {
  auto m = Load();
  EXPECT_FALSE(ApplyRepair(*m, "blk.99.attn_norm.weight", {}).ok());
  EXPECT_FALSE(ApplyRepair(*m, "blk.0.attn_q_norm.weight", {}).ok());  // llama has no q norm
  EXPECT_FALSE(ApplyRepair(*m, "no.such.tensor", {}).ok());
}

}  // namespace
}  // namespace ggufscope::reference
