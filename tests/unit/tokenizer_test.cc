// The CPU reference's tokenizers against llama.cpp's own test data: every
// line of shared/models/vocab/*.gguf.out (ids llama.cpp produces for the
// matching .gguf.inp string, add_special and parse_special off), plus
// round trips, pre-tokenizer details and hostile metadata.
#include <gtest/gtest.h>

#include <fstream>
#include <optional>
#include <sstream>

#include "gguf/file.h"
#include "gguf/writer.h"
#include "reference_cpu/tokenizer.h"
#include "test_models.h"

namespace ggufscope::reference {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// llama.cpp's test-tokenizer-0 format.
std::vector<std::string> SplitInputs(const std::string& raw) {
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < raw.size()) {
    const size_t next = raw.find(sep, pos);
    if (next == std::string::npos) {
      out.push_back(raw.substr(pos));
      break;
    }
    out.push_back(raw.substr(pos, next - pos));
    pos = next + sep.size();
  }
  return out;
}

std::vector<int32_t> ParseIds(const std::string& line) {
  std::vector<int32_t> ids;
  std::istringstream in(line);
  for (int64_t v; in >> v;) ids.push_back(static_cast<int32_t>(v));
  return ids;
}

std::unique_ptr<gguf::GgufFile> OpenOrSkip(const std::string& path) {
  auto f = gguf::GgufFile::Open(path);
  if (!f.ok()) return nullptr;
  return std::make_unique<gguf::GgufFile>(std::move(f).value());
}

class VocabFileTest : public ::testing::TestWithParam<std::string> {};

TEST_P(VocabFileTest, ReproducesEveryLineOfLlamaCpp) {
  const std::string base = testing::SharedDir() + "/models/vocab/" + GetParam();
  auto f = OpenOrSkip(base);
  if (f == nullptr) GTEST_SKIP() << "no " << base;
  auto tok = Tokenizer::FromGguf(*f);
  ASSERT_TRUE(tok.ok()) << tok.error().Message();
  const std::vector<std::string> inputs = SplitInputs(ReadAll(base + ".inp"));
  std::vector<std::string> lines;
  std::istringstream out(ReadAll(base + ".out"));
  for (std::string l; std::getline(out, l);) lines.push_back(l);
  ASSERT_EQ(inputs.size(), lines.size());
  ASSERT_GT(inputs.size(), 40u);
  size_t same = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::vector<int32_t> want = ParseIds(lines[i]);
    const std::vector<int32_t> got = (*tok)->Encode(inputs[i], false, false);
    EXPECT_EQ(got, want) << GetParam() << " line " << i + 1 << ": '" << inputs[i] << "'";
    same += got == want;
    // Decoding gives the text back (SPM drops the prefix space it added).
    EXPECT_EQ((*tok)->Decode(got), inputs[i]) << GetParam() << " line " << i + 1;
  }
  EXPECT_EQ(same, inputs.size());
}

INSTANTIATE_TEST_SUITE_P(Vocab, VocabFileTest,
                         ::testing::Values("ggml-vocab-llama-spm.gguf", "ggml-vocab-qwen2.gguf",
                                           "ggml-vocab-gpt-2.gguf"),
                         [](const ::testing::TestParamInfo<std::string>& p) {
                           std::string s = p.param.substr(11, p.param.size() - 16);
                           for (char& c : s) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return s;
                         });

TEST(TokenizerTest, StoriesBosAndByteFallback) {
  auto f = OpenOrSkip(testing::SharedDir() + "/models/stories260K.gguf");
  if (f == nullptr) GTEST_SKIP();
  auto tok = Tokenizer::FromGguf(*f);
  ASSERT_TRUE(tok.ok()) << tok.error().Message();
  const std::vector<int32_t> ids = (*tok)->Encode("Once upon a time", true, false);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ((*tok)->Decode(std::span<const int32_t>(ids).subspan(1)), "Once upon a time");
  // A character outside the 512-token vocabulary falls back to its UTF-8 bytes.
  const std::vector<int32_t> snow = (*tok)->Encode("\xe2\x98\x83", false, false);
  EXPECT_EQ((*tok)->Decode(snow), "\xe2\x98\x83");
  EXPECT_GE(snow.size(), 3u);
}

TEST(TokenizerTest, SpecialTokensOnlyWithParseSpecial) {
  auto f = OpenOrSkip(testing::SharedDir() + "/models/vocab/ggml-vocab-qwen2.gguf");
  if (f == nullptr) GTEST_SKIP();
  auto tok = Tokenizer::FromGguf(*f);
  ASSERT_TRUE(tok.ok());
  const int32_t im_start = (*tok)->Find("<|im_start|>");
  ASSERT_GE(im_start, 0);
  const std::vector<int32_t> with = (*tok)->Encode("<|im_start|>user", false, true);
  ASSERT_EQ(with.size(), 2u);
  EXPECT_EQ(with[0], im_start);
  const std::vector<int32_t> without = (*tok)->Encode("<|im_start|>user", false, false);
  EXPECT_GT(without.size(), 2u);
  EXPECT_EQ((*tok)->Decode(without), "<|im_start|>user");
}

TEST(TokenizerTest, PreTokenizerSplits) {
  using internal::DecodeUtf8;
  using internal::PreTokenize;
  auto words = [](std::string_view s, PreTokenizer p) {
    const std::vector<uint32_t> cps = DecodeUtf8(s);
    std::vector<std::string> out;
    size_t at = 0;
    for (size_t n : PreTokenize(cps, p)) {
      std::string w;
      for (size_t i = at; i < at + n; ++i) internal::AppendUtf8(cps[i], &w);
      out.push_back(w);
      at += n;
    }
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(words("Hello world", PreTokenizer::kGpt2), (V{"Hello", " world"}));
  EXPECT_EQ(words("a   b", PreTokenizer::kGpt2), (V{"a", "  ", " b"}));
  EXPECT_EQ(words("12345", PreTokenizer::kLlama3), (V{"123", "45"}));
  EXPECT_EQ(words("12345", PreTokenizer::kQwen2), (V{"1", "2", "3", "4", "5"}));
  EXPECT_EQ(words("I'M ok\n\n", PreTokenizer::kLlama3), (V{"I", "'M", " ok", "\n\n"}));
  EXPECT_EQ(words("I'M", PreTokenizer::kGpt2), (V{"I", "'", "M"}));
  EXPECT_EQ(words("Привет мир", PreTokenizer::kQwen2), (V{"Привет", " мир"}));
  // default: punctuation runs are cut out first (so no contraction survives),
  // then gpt-2's regex, then number runs (losing their space), then ASCII
  // digits in threes; above ASCII only category P is punctuation.
  EXPECT_EQ(words("I'm", PreTokenizer::kDefault), (V{"I", "'", "m"}));
  EXPECT_EQ(words("hi, a+b=c", PreTokenizer::kDefault), (V{"hi", ",", " a", "+", "b", "=", "c"}));
  EXPECT_EQ(words(" x1234567 42", PreTokenizer::kDefault), (V{" x", "123", "456", "7", " ", "42"}));
  EXPECT_EQ(words("«hi» €5", PreTokenizer::kDefault), (V{"«", "hi", "»", " €", "5"}));
  EXPECT_EQ(words("1٣23", PreTokenizer::kDefault), (V{"1٣23"}));  // no three ASCII digits in a row
  EXPECT_EQ(words("`a`  b", PreTokenizer::kDefault), (V{"`", "a", "`", " ", " b"}));
  EXPECT_TRUE(words("", PreTokenizer::kDefault).empty());
  // Invalid UTF-8 bytes become U+FFFD, one each.
  EXPECT_EQ(DecodeUtf8("\xff\x80"), (std::vector<uint32_t>{0xFFFD, 0xFFFD}));
  EXPECT_TRUE(internal::IsLetter(0x4E2D));
  EXPECT_TRUE(internal::IsNumber(0x0663));
  EXPECT_TRUE(internal::IsWhitespace(0x3000));
  EXPECT_EQ(internal::ByteToCodepoint(' '), 0x120u);  // 'Ġ'
  EXPECT_EQ(internal::ByteFromCodepoint(0x120), ' ');
}

// Builds a small vocabulary file and lets `edit` break it.
gguf::Result<std::unique_ptr<Tokenizer>> FromEdited(const std::function<void(gguf::Writer&)>& edit) {
  gguf::Writer w;
  (void)w.AddKv("tokenizer.ggml.model", gguf::Value::Str("llama"));
  (void)w.AddKv("tokenizer.ggml.tokens", gguf::Value::StrArray({"<unk>", "<s>", "</s>", "\xe2\x96\x81" "a", "a"}));
  std::vector<gguf::Value> scores, types;
  for (int i = 0; i < 5; ++i) {
    scores.push_back(gguf::Value::F32(static_cast<float>(-i)));
    types.push_back(gguf::Value::I(gguf::ValueType::kInt32, i == 0 ? 2 : i < 3 ? 3 : 1));
  }
  (void)w.AddKv("tokenizer.ggml.scores", gguf::Value::Array(gguf::ValueType::kFloat32, scores));
  (void)w.AddKv("tokenizer.ggml.token_type", gguf::Value::Array(gguf::ValueType::kInt32, types));
  edit(w);
  auto bytes = w.Serialize();
  if (!bytes.ok()) return bytes.error();
  static std::vector<std::vector<uint8_t>> keep;  // the file must outlive FromGguf only
  keep.push_back(std::move(bytes).value());
  auto f = gguf::GgufFile::Parse(std::span<const uint8_t>(keep.back()));
  if (!f.ok()) return f.error();
  return Tokenizer::FromGguf(*f);
}

TEST(TokenizerTest, HostileMetadataIsAnError) {
  auto ok = FromEdited([](gguf::Writer&) {});
  ASSERT_TRUE(ok.ok()) << ok.error().Message();
  EXPECT_EQ((*ok)->Encode("a a", true, false), (std::vector<int32_t>{1, 3, 3}));
  EXPECT_TRUE((*ok)->Encode("b", false, false).empty());  // no byte tokens: unknown pieces dropped

  EXPECT_FALSE(FromEdited([](gguf::Writer& w) { w.RemoveKv("tokenizer.ggml.tokens"); }).ok());
  EXPECT_FALSE(FromEdited([](gguf::Writer& w) { w.RemoveKv("tokenizer.ggml.model"); }).ok());
  EXPECT_FALSE(FromEdited([](gguf::Writer& w) {
                 (void)w.SetKv("tokenizer.ggml.model", gguf::Value::Str("t5"));
               }).ok());
  EXPECT_FALSE(FromEdited([](gguf::Writer& w) {
                 (void)w.SetKv("tokenizer.ggml.tokens", gguf::Value::StrArray({}));
               }).ok());
  EXPECT_FALSE(FromEdited([](gguf::Writer& w) {
                 (void)w.SetKv("tokenizer.ggml.scores",
                               gguf::Value::Array(gguf::ValueType::kFloat32, {gguf::Value::F32(1.0f)}));
               }).ok());
  EXPECT_FALSE(FromEdited([](gguf::Writer& w) {
                 (void)w.SetKv("tokenizer.ggml.token_type", gguf::Value::StrArray({"1", "1", "1", "1", "1"}));
               }).ok());
  EXPECT_FALSE(FromEdited([](gguf::Writer& w) {
                 (void)w.SetKv("tokenizer.ggml.bos_token_id", gguf::Value::U(gguf::ValueType::kUint32, 1000000));
               }).ok());
  EXPECT_FALSE(FromEdited([](gguf::Writer& w) {
                 (void)w.SetKv("tokenizer.ggml.bos_token_id", gguf::Value::Str("1"));
               }).ok());
  // gpt2 without merges, or with an unknown pre-tokenizer.
  EXPECT_FALSE(FromEdited([](gguf::Writer& w) {
                 (void)w.SetKv("tokenizer.ggml.model", gguf::Value::Str("gpt2"));
                 (void)w.SetKv("tokenizer.ggml.pre", gguf::Value::Str("qwen2"));
               }).ok());
  EXPECT_FALSE(FromEdited([](gguf::Writer& w) {
                 (void)w.SetKv("tokenizer.ggml.model", gguf::Value::Str("gpt2"));
                 (void)w.SetKv("tokenizer.ggml.pre", gguf::Value::Str("no-such-pre"));
                 (void)w.SetKv("tokenizer.ggml.merges", gguf::Value::StrArray({"a b"}));
               }).ok());
  // Ids out of range decode to nothing rather than crash.
  const std::vector<int32_t> bad = {-5, 1 << 30, 3};
  EXPECT_EQ((*ok)->Decode(bad), " a");  // the prefix space is dropped only after a valid first token
  EXPECT_EQ((*ok)->Piece(-1), "");
}

TEST(TokenizerTest, DefaultPreTokenizerWhenNamedOrAbsent) {
  using MaybeValue = std::optional<gguf::Value>;
  auto gpt2 = [](const MaybeValue& pre) {
    return FromEdited([&](gguf::Writer& w) {
      (void)w.SetKv("tokenizer.ggml.model", gguf::Value::Str("gpt2"));
      (void)w.SetKv("tokenizer.ggml.merges", gguf::Value::StrArray({"a b"}));
      if (pre) (void)w.SetKv("tokenizer.ggml.pre", *pre);
    });
  };
  const MaybeValue absent, empty = gguf::Value::Str(""), named = gguf::Value::Str("default");
  for (const MaybeValue* pre : {&absent, &empty, &named}) {
    auto tok = gpt2(*pre);
    ASSERT_TRUE(tok.ok()) << tok.error().Message();
    EXPECT_EQ((*tok)->pre_tokenizer(), PreTokenizer::kDefault);
    EXPECT_FALSE((*tok)->add_bos());
  }
  auto gpt2_pre = gpt2(gguf::Value::Str("gpt-2"));
  ASSERT_TRUE(gpt2_pre.ok()) << gpt2_pre.error().Message();
  EXPECT_EQ((*gpt2_pre)->pre_tokenizer(), PreTokenizer::kGpt2);
  // A key of another type is not "absent" (llama.cpp refuses it too).
  auto bad = gpt2(gguf::Value::U(gguf::ValueType::kUint32, 0));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().Message().find("tokenizer.ggml.pre"), std::string::npos);
}

TEST(TokenizerTest, GarbageBytesNeverCrash) {
  auto f = OpenOrSkip(testing::SharedDir() + "/models/vocab/ggml-vocab-qwen2.gguf");
  if (f == nullptr) GTEST_SKIP();
  auto tok = Tokenizer::FromGguf(*f);
  ASSERT_TRUE(tok.ok());
  std::string s;
  uint32_t x = 12345;
  for (int i = 0; i < 4000; ++i) {
    x = x * 1103515245u + 12345u;
    s.push_back(static_cast<char>(x >> 24));
  }
  const std::vector<int32_t> ids = (*tok)->Encode(s, true, true);
  EXPECT_FALSE(ids.empty());
  for (int32_t id : ids) EXPECT_TRUE(id >= 0 && id < (*tok)->n_tokens());
  // Every pre-tokenizer cuts garbage into non-empty words covering it all.
  const std::vector<uint32_t> cps = internal::DecodeUtf8(s);
  for (PreTokenizer pre : {PreTokenizer::kDefault, PreTokenizer::kGpt2, PreTokenizer::kLlama3, PreTokenizer::kQwen2}) {
    size_t total = 0;
    for (size_t n : internal::PreTokenize(cps, pre)) {
      EXPECT_GT(n, 0u);
      total += n;
    }
    EXPECT_EQ(total, cps.size()) << static_cast<int>(pre);
  }
}

}  // namespace
}  // namespace ggufscope::reference
