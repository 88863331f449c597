// Chat formats chosen from the template's markers or the vocabulary's turn
// tokens, and the sampler's contract (temp 0 is greedy; a seed reproduces).
#include <gtest/gtest.h>

#include "reference_cpu/chat.h"
#include "reference_cpu/forward.h"
#include "test_models.h"

namespace ggufscope::reference {
namespace {

TEST(Chat, Qwen2TemplateIsChatMlWithItsDefaultSystemMessage) {
  auto f = gguf::GgufFile::Open(testing::SharedDir() + "/models/vocab/ggml-vocab-qwen2.gguf");
  if (!f.ok()) GTEST_SKIP();
  auto tok = Tokenizer::FromGguf(*f);
  ASSERT_TRUE(tok.ok()) << tok.error().Message();
  const ChatFormat fmt = DetectChatFormat(*f, **tok);
  EXPECT_EQ(fmt, ChatFormat::kChatMl);
  EXPECT_EQ(DefaultSystem(*f), "You are a helpful assistant");
  EXPECT_EQ(ApplyChat(fmt, "hi", DefaultSystem(*f)),
            "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
            "<|im_start|>assistant\n");
  const std::vector<int32_t> stop = StopTokens(fmt, **tok);
  EXPECT_NE(std::find(stop.begin(), stop.end(), (*tok)->Find("<|im_end|>")), stop.end());
}

TEST(Chat, NoFormatWithoutTemplateOrTurnTokens) {
  auto f = gguf::GgufFile::Open(testing::SharedDir() + "/models/stories260K.gguf");
  if (!f.ok()) GTEST_SKIP();
  auto tok = Tokenizer::FromGguf(*f);
  ASSERT_TRUE(tok.ok());
  EXPECT_EQ(DetectChatFormat(*f, **tok), ChatFormat::kNone);
  EXPECT_EQ(ApplyChat(ChatFormat::kGemma, "hi", ""), "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n");
}

TEST(Sampler, GreedyAtTempZeroAndReproducibleWithASeed) {
  auto f = gguf::GgufFile::Open(testing::SharedDir() + "/models/stories260K.gguf");
  if (!f.ok()) GTEST_SKIP();
  auto m = LoadModel(*f);
  ASSERT_TRUE(m.ok());
  const std::vector<int32_t> prompt = {1, 403, 407, 261, 378};
  auto greedy = GenerateGreedy(**m, prompt, 20, -1);
  auto t0 = Generate(**m, prompt, 20, SamplerOptions{}, {}, nullptr);
  ASSERT_TRUE(greedy.ok() && t0.ok());
  EXPECT_EQ(*greedy, *t0);
  SamplerOptions hot{1.5f, 0, 1.0f, 7};
  auto a = Generate(**m, prompt, 20, hot, {}, nullptr);
  auto b = Generate(**m, prompt, 20, hot, {}, nullptr);
  hot.seed = 8;
  auto c = Generate(**m, prompt, 20, hot, {}, nullptr);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_NE(*a, *c);  // 20 draws at temperature 1.5 from 512 tokens: different seeds differ
  std::vector<int32_t> seen;
  const int32_t stop[1] = {(*t0)[3]};
  auto stopped = Generate(**m, prompt, 20, SamplerOptions{}, stop, [&](int32_t id) { seen.push_back(id); });
  ASSERT_TRUE(stopped.ok());
  EXPECT_EQ(stopped->size(), 4u);  // ends with the stop token
  EXPECT_EQ(seen, *stopped);
}

}  // namespace
}  // namespace ggufscope::reference
