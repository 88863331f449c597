#include "gguf/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "gguf/mapping.h"

namespace ggufscope::gguf {
namespace {

// A safetensors file: u64 header length, the header as given, then `data`.
std::vector<uint8_t> Build(const std::string& header, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out;
  out.reserve(8 + header.size() + data.size());
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(uint64_t{header.size()} >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

template <typename T>
void Append(std::vector<uint8_t>& out, std::initializer_list<T> values) {
  for (T v : values) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out.insert(out.end(), b, b + sizeof(T));
  }
}

Result<SafetensorsFile> ParseBytes(std::vector<uint8_t> bytes) { return SafetensorsFile::Parse(OwnBytes(std::move(bytes))); }

Error ParseError(const std::string& header, const std::vector<uint8_t>& data) {
  Result<SafetensorsFile> f = ParseBytes(Build(header, data));
  EXPECT_FALSE(f.ok()) << header;
  return f.ok() ? Error{ErrorCode::kIo, "", 0, "", ""} : f.error();
}

// A valid file with one tensor of each dtype, a scalar and an empty tensor.
std::vector<uint8_t> ValidFile() {
  std::vector<uint8_t> data;
  Append<float>(data, {1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 1e-40f});  // a: F32 [2, 3], 24 bytes
  Append<uint16_t>(data, {0x3c00, 0xc000, 0x0001, 0x7c00});         // b: F16 [4] = 1, -2, 2^-24, inf
  Append<uint16_t>(data, {0x3f80, 0xbf80, 0x4049});                  // c: BF16 [3] = 1, -1, 3.140625
  Append<float>(data, {7.0f});                                      // d: F32 scalar
  const std::string header =
      R"({"__metadata__": {"format": "pt", "nested": {"x": [1, 2, {"y": null}]}},
          "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
          "b": {"dtype": "F16", "shape": [4], "data_offsets": [24, 32]},
          "c": {"shape": [3], "dtype": "BF16", "data_offsets": [32, 38], "extra": {"ignored": [1]}},
          "d": {"dtype": "F32", "shape": [], "data_offsets": [38, 42]},
          "e": {"dtype": "F16", "shape": [0, 5], "data_offsets": [42, 42]}}   )";
  return Build(header, data);
}

TEST(Safetensors, ParsesEveryDtypeAndConvertsExactly) {
  const std::vector<uint8_t> bytes = ValidFile();
  Result<SafetensorsFile> f = ParseBytes(bytes);
  ASSERT_TRUE(f.ok()) << f.error().Message();
  ASSERT_EQ(f->tensors().size(), 5u);
  EXPECT_EQ(f->tensors()[0].name, "a");  // header order
  const StTensor* a = f->Find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a->n_elements, 6u);
  EXPECT_EQ(a->offset, f->data_offset());
  std::vector<float> out(6);
  ASSERT_TRUE(ToF32(*a, out).ok());
  EXPECT_EQ(out, (std::vector<float>{1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 1e-40f}));
  EXPECT_TRUE(std::signbit(out[4]));

  const StTensor* b = f->Find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->dtype, StDtype::kF16);
  ASSERT_TRUE(ToF32(*b, out).ok());
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -2.0f);
  EXPECT_EQ(out[2], std::ldexp(1.0f, -24));
  EXPECT_TRUE(std::isinf(out[3]));

  const StTensor* c = f->Find("c");
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(ToF32(*c, out).ok());
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -1.0f);
  EXPECT_EQ(out[2], 3.140625f);

  const StTensor* d = f->Find("d");
  ASSERT_NE(d, nullptr);
  EXPECT_TRUE(d->shape.empty());
  EXPECT_EQ(d->n_elements, 1u);
  const StTensor* e = f->Find("e");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->n_elements, 0u);
  EXPECT_TRUE(e->data.empty());
  EXPECT_EQ(f->Find("__metadata__"), nullptr);
  EXPECT_EQ(f->Find("zzz"), nullptr);

  std::vector<float> small(2);
  EXPECT_EQ(ToF32(*a, small).error().code, ErrorCode::kInvalidArgument);
}

TEST(Safetensors, TruncatedHeaderLength) {
  for (size_t n = 0; n < 8; ++n) {
    Result<SafetensorsFile> f = ParseBytes(std::vector<uint8_t>(n, 0));
    ASSERT_FALSE(f.ok());
    EXPECT_EQ(f.error().code, ErrorCode::kTruncated);
    EXPECT_EQ(f.error().field, "header.length");
  }
}

TEST(Safetensors, HeaderLongerThanTheFile) {
  std::vector<uint8_t> bytes = Build("{}", {});
  const uint64_t n = 3;  // one byte past the end
  std::memcpy(bytes.data(), &n, 8);
  Result<SafetensorsFile> f = ParseBytes(bytes);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().code, ErrorCode::kTruncated);
}

TEST(Safetensors, HugeHeaderLengthIsRefusedBeforeReading) {
  for (uint64_t n : {kMaxSafetensorsHeader + 1, uint64_t{1} << 40, ~uint64_t{0}}) {
    std::vector<uint8_t> bytes = Build("{}", {});
    std::memcpy(bytes.data(), &n, 8);
    Result<SafetensorsFile> f = ParseBytes(bytes);
    ASSERT_FALSE(f.ok());
    EXPECT_EQ(f.error().code, ErrorCode::kTooLarge) << n;
    EXPECT_NE(f.error().Message().find("header.length"), std::string::npos);
  }
}

TEST(Safetensors, BadJson) {
  for (const char* h : {"", "{", "{\"a\": }", "{\"a\" {}}", "not json", "{} trailing", "{\"a\": {\"dtype\": \"F32\",}}",
                        "{\"\xff\": {}}"}) {
    const Error e = ParseError(h, {});
    EXPECT_EQ(e.code, ErrorCode::kBadJson) << h << " -> " << e.Message();
    EXPECT_GE(e.offset, 8u);
  }
}

TEST(Safetensors, SchemaViolationsAreNamed) {
  struct Case {
    const char* header;
    ErrorCode code;
    const char* in_message;
  };
  const Case cases[] = {
      {"[]", ErrorCode::kBadJson, "a JSON object"},
      {"{\"a\": 5}", ErrorCode::kBadJson, "tensor \"a\""},
      {"{\"a\": {\"dtype\": 5, \"shape\": [1], \"data_offsets\": [0, 4]}}", ErrorCode::kBadJson, "\"a\".dtype"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": \"x\", \"data_offsets\": [0, 4]}}", ErrorCode::kBadJson, ".shape"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", ErrorCode::kBadJson, "-1"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1.5], \"data_offsets\": [0, 4]}}", ErrorCode::kBadJson, ".shape"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [[1]], \"data_offsets\": [0, 4]}}", ErrorCode::kBadJson, ".shape"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1]}}", ErrorCode::kBadJson, "no data_offsets"},
      {"{\"a\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", ErrorCode::kBadJson, "no dtype"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4, 8]}}", ErrorCode::kBadJson, "[begin, end]"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", ErrorCode::kBadJson, "length 1"},
      {"{\"a\": {\"dtype\": \"F32\", \"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}",
       ErrorCode::kBadJson, "second"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 4]}}", ErrorCode::kBadDims,
       "dimensions"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 0]}}", ErrorCode::kBadDims, "begin <= end"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296], \"data_offsets\": [0, 4]}}",
       ErrorCode::kBadDims, "overflow"},
  };
  for (const Case& c : cases) {
    const Error e = ParseError(c.header, std::vector<uint8_t>(8, 0));
    EXPECT_EQ(e.code, c.code) << c.header << " -> " << e.Message();
    EXPECT_NE(e.Message().find(c.in_message), std::string::npos) << c.header << " -> " << e.Message();
  }
}

TEST(Safetensors, OffsetsPastTheEnd) {
  const Error e = ParseError(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", std::vector<uint8_t>(12));
  EXPECT_EQ(e.code, ErrorCode::kTruncated);
  EXPECT_NE(e.Message().find("tensor \"w\".data_offsets"), std::string::npos) << e.Message();
  const Error huge =
      ParseError(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [18446744073709551612, 18446744073709551615]}})",
                 std::vector<uint8_t>(12));
  EXPECT_EQ(huge.code, ErrorCode::kTruncated);
}

TEST(Safetensors, ShapeAndOffsetsDisagree) {
  const Error e = ParseError(R"({"w": {"dtype": "F16", "shape": [2, 3], "data_offsets": [0, 16]}})", std::vector<uint8_t>(16));
  EXPECT_EQ(e.code, ErrorCode::kBadDims);
  EXPECT_NE(e.Message().find("12 bytes for shape [2, 3] of F16"), std::string::npos) << e.Message();
}

TEST(Safetensors, OverlappingTensors) {
  const Error e = ParseError(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                 "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                             std::vector<uint8_t>(12));
  EXPECT_EQ(e.code, ErrorCode::kOverlap);
  EXPECT_NE(e.Message().find("\"b\""), std::string::npos) << e.Message();
  // The same span twice is an overlap too; touching spans and empty tensors are not.
  EXPECT_EQ(ParseError(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                           "b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})",
                       std::vector<uint8_t>(8))
                .code,
            ErrorCode::kOverlap);
  EXPECT_TRUE(ParseBytes(Build(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                   "z": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]},
                                   "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})",
                               std::vector<uint8_t>(12)))
                  .ok());
}

TEST(Safetensors, UnknownDtypeIsANamedError) {
  for (const char* dtype : {"I64", "F8_E4M3", "BOOL", "weird"}) {
    const std::string header = std::string(R"({"w": {"dtype": ")") + dtype + R"(", "shape": [1], "data_offsets": [0, 8]}})";
    const Error e = ParseError(header, std::vector<uint8_t>(8));
    EXPECT_EQ(e.code, ErrorCode::kUnsupported);
    EXPECT_NE(e.Message().find("unsupported dtype \"" + std::string(dtype) + "\""), std::string::npos) << e.Message();
    EXPECT_NE(e.Message().find("tensor \"w\".dtype"), std::string::npos) << e.Message();
  }
}

TEST(Safetensors, DuplicateNames) {
  const Error e = ParseError(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                 "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                             std::vector<uint8_t>(8));
  EXPECT_EQ(e.code, ErrorCode::kDuplicateTensor);
}

TEST(Safetensors, DeepNestingIsBounded) {
  std::string deep = "{\"__metadata__\": ";
  for (int i = 0; i < 100000; ++i) deep += "[";
  for (int i = 0; i < 100000; ++i) deep += "]";
  deep += "}";
  EXPECT_EQ(ParseError(deep, {}).code, ErrorCode::kNestingTooDeep);
  // A deep array where a tensor entry should be stops at once.
  std::string deep_entry = "{\"a\": ";
  for (int i = 0; i < 100000; ++i) deep_entry += "[";
  EXPECT_EQ(ParseError(deep_entry, {}).code, ErrorCode::kBadJson);
}

// Every truncation and many single-byte corruptions of a valid file parse or
// fail cleanly (the property ASan checks).
TEST(Safetensors, TruncationsAndByteFlipsNeverCrash) {
  const std::vector<uint8_t> valid = ValidFile();
  for (size_t n = 0; n < valid.size(); ++n) {
    Result<SafetensorsFile> f = ParseBytes(std::vector<uint8_t>(valid.begin(), valid.begin() + static_cast<ptrdiff_t>(n)));
    if (f.ok()) {
      for (const StTensor& t : f->tensors()) EXPECT_LE(t.offset + t.data.size(), n);
    }
  }
  std::mt19937 rng(1);
  for (int i = 0; i < 4000; ++i) {
    std::vector<uint8_t> b = valid;
    const size_t at = rng() % b.size();
    b[at] = static_cast<uint8_t>(rng());
    Result<SafetensorsFile> f = ParseBytes(b);
    if (!f.ok()) continue;
    for (const StTensor& t : f->tensors()) {
      EXPECT_LE(t.offset + t.data.size(), b.size());
      std::vector<float> out(t.n_elements);
      EXPECT_TRUE(ToF32(t, out).ok());
    }
  }
}

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ggufscope_st_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void Write(const std::string& name, const std::vector<uint8_t>& bytes) {
    std::ofstream(dir_ / name, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                                       static_cast<std::streamsize>(bytes.size()));
  }
  void WriteText(const std::string& name, const std::string& text) { std::ofstream(dir_ / name) << text; }
  static std::vector<uint8_t> OneTensor(const std::string& name, float v) {
    std::vector<uint8_t> data;
    Append<float>(data, {v});
    return Build("{\"" + name + R"(": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", data);
  }
  std::filesystem::path dir_;
};

TEST_F(CheckpointTest, FolderOfShardsWithoutIndex) {
  Write("model-00001-of-00002.safetensors", OneTensor("x", 1.0f));
  Write("model-00002-of-00002.safetensors", OneTensor("y", 2.0f));
  WriteText("config.json", R"({"model_type": "llama"})");
  WriteText("notes.txt", "not a shard");
  Result<Checkpoint> c = Checkpoint::Open(dir_.string());
  ASSERT_TRUE(c.ok()) << c.error().Message();
  EXPECT_EQ(c->files().size(), 2u);
  EXPECT_EQ(c->config_json(), R"({"model_type": "llama"})");
  ASSERT_EQ(c->Tensors().size(), 2u);
  EXPECT_EQ(c->Tensors()[0]->name, "x");
  ASSERT_NE(c->Find("y"), nullptr);
  float v = 0;
  ASSERT_TRUE(ToF32(*c->Find("y"), std::span<float>(&v, 1)).ok());
  EXPECT_EQ(v, 2.0f);

  // One file: config.json beside it.
  Result<Checkpoint> one = Checkpoint::Open((dir_ / "model-00002-of-00002.safetensors").string());
  ASSERT_TRUE(one.ok()) << one.error().Message();
  EXPECT_EQ(one->Tensors().size(), 1u);
  EXPECT_FALSE(one->config_json().empty());
}

TEST_F(CheckpointTest, DuplicateTensorAcrossShards) {
  Write("a.safetensors", OneTensor("x", 1.0f));
  Write("b.safetensors", OneTensor("x", 2.0f));
  Result<Checkpoint> c = Checkpoint::Open(dir_.string());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ErrorCode::kDuplicateTensor);
}

TEST_F(CheckpointTest, IndexDecidesTheShards) {
  Write("a.safetensors", OneTensor("x", 1.0f));
  Write("b.safetensors", OneTensor("y", 2.0f));
  Write("stray.safetensors", OneTensor("x", 3.0f));  // not in the index: not read
  WriteText("model.safetensors.index.json", R"({"metadata": {}, "weight_map": {"x": "a.safetensors", "y": "b.safetensors"}})");
  Result<Checkpoint> c = Checkpoint::Open(dir_.string());
  ASSERT_TRUE(c.ok()) << c.error().Message();
  EXPECT_EQ(c->files().size(), 2u);
  EXPECT_EQ(c->Tensors().size(), 2u);
  EXPECT_TRUE(c->config_json().empty());
}

TEST_F(CheckpointTest, IndexErrors) {
  Write("a.safetensors", OneTensor("x", 1.0f));
  WriteText("model.safetensors.index.json", R"({"weight_map": {"x": "a.safetensors", "z": "a.safetensors"}})");
  Result<Checkpoint> missing = Checkpoint::Open(dir_.string());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().Message().find("\"z\""), std::string::npos) << missing.error().Message();

  WriteText("model.safetensors.index.json", R"({"weight_map": {"x": "../a.safetensors"}})");
  Result<Checkpoint> escape = Checkpoint::Open(dir_.string());
  ASSERT_FALSE(escape.ok());
  EXPECT_EQ(escape.error().code, ErrorCode::kBadJson);

  WriteText("model.safetensors.index.json", R"({"weight_map": )");
  Result<Checkpoint> bad = Checkpoint::Open(dir_.string());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::kBadJson);
}

TEST_F(CheckpointTest, EmptyFolderAndMissingPath) {
  Result<Checkpoint> empty = Checkpoint::Open(dir_.string());
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().code, ErrorCode::kIo);
  Result<Checkpoint> none = Checkpoint::Open((dir_ / "nope").string());
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code, ErrorCode::kIo);
}

}  // namespace
}  // namespace ggufscope::gguf
