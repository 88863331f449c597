#include "inspect/info.h"

#include <gtest/gtest.h>

#include "gguf/mapping.h"
#include "gguf/writer.h"

namespace ggufscope::inspect {
namespace {

using gguf::Value;
using gguf::ValueType;

gguf::GgufFile Build() {
  gguf::Writer w;
  EXPECT_TRUE(w.AddKv("general.architecture", Value::Str("qwen2")).ok());
  EXPECT_TRUE(w.AddKv("qwen2.block_count", Value::U(ValueType::kUint32, 1)).ok());
  EXPECT_TRUE(w.AddKv("qwen2.embedding_length", Value::U(ValueType::kUint32, 64)).ok());
  EXPECT_TRUE(w.AddKv("qwen2.attention.head_count", Value::U(ValueType::kUint32, 4)).ok());
  EXPECT_TRUE(w.AddKv("qwen2.attention.head_count_kv", Value::U(ValueType::kUint32, 2)).ok());
  std::vector<std::string> toks;
  for (int i = 0; i < 20; ++i) toks.push_back("t" + std::to_string(i));
  toks.push_back("bad\xff\xfe utf8");
  EXPECT_TRUE(w.AddKv("tokenizer.ggml.tokens", Value::StrArray(toks)).ok());
  EXPECT_TRUE(w.AddKv("general.name", Value::Str("bad\xff\xfe utf8\n")).ok());
  EXPECT_TRUE(w.AddKv("nan", Value::F32(std::numeric_limits<float>::quiet_NaN())).ok());
  static std::vector<uint8_t> emb(64 * 21 * 4);
  EXPECT_TRUE(w.AddTensor("token_embd.weight", gguf::GgmlType::kF32, {64, 21}, emb).ok());
  auto f = gguf::GgufFile::Parse(gguf::OwnBytes(*w.Serialize()));
  EXPECT_TRUE(f.ok());
  return std::move(f).value();
}

TEST(Info, JsonSummarisesArraysUnlessFull) {
  const gguf::GgufFile f = Build();
  InfoOptions opt;
  nlohmann::json j = InfoJson(f, "x.gguf", opt);
  EXPECT_EQ(j["header"]["version"], 3);
  EXPECT_EQ(j["header"]["n_tensors"], 1);
  EXPECT_EQ(j["architecture"]["arch"], "qwen2");
  EXPECT_EQ(j["architecture"]["head_dim"], 16);
  EXPECT_EQ(j["architecture"]["vocab_size"], 21);
  EXPECT_EQ(j["architecture"]["rope_type"], "NEOX");
  EXPECT_EQ(j["architecture"]["tied_output"], true);
  const auto& tokens = j["metadata"][5];
  EXPECT_EQ(tokens["key"], "tokenizer.ggml.tokens");
  EXPECT_EQ(tokens["length"], 21);
  EXPECT_EQ(tokens["value"].size(), opt.array_head);
  EXPECT_EQ(tokens["truncated"], true);
  opt.full_arrays = true;
  j = InfoJson(f, "x.gguf", opt);
  EXPECT_EQ(j["metadata"][5]["value"].size(), 21u);
  // Hostile bytes never make JSON output throw; NaN survives as a string.
  const std::string text = DumpJson(j);
  EXPECT_NE(text.find("\"nan\""), std::string::npos);
  EXPECT_EQ(j["tensors"][0]["shape"], nlohmann::json::array({64, 21}));
}

TEST(Info, TextShowsEveryPart) {
  const std::string text = InfoText(Build(), "x.gguf", InfoOptions{});
  for (const char* want : {"GGUF v3", "architecture", "GQA 2:1", "tied to token_embd.weight",
                           "tokenizer.ggml.tokens", "string[21]", "(13 more)", "token_embd.weight",
                           "\"bad\\xff\\xfe utf8\\n\""}) {
    EXPECT_NE(text.find(want), std::string::npos) << want << "\n" << text;
  }
}

TEST(Info, GroupedNumbers) {
  EXPECT_EQ(Grouped(0), "0");
  EXPECT_EQ(Grouped(999), "999");
  EXPECT_EQ(Grouped(1000), "1,000");
  EXPECT_EQ(Grouped(491400032), "491,400,032");
}

}  // namespace
}  // namespace ggufscope::inspect
