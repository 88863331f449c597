#include "gguf/writer.h"

#include <gtest/gtest.h>

#include <cstring>

#include "gguf/mapping.h"
#include "test_models.h"

namespace ggufscope::gguf {
namespace {

// Reading and re-writing every shared model must reproduce it byte for byte:
// same metadata order and types, same tensor order, offsets and padding.
TEST(Writer, RewritingEverySharedModelIsByteIdentical) {
  const auto models = testing::SharedModels();
  if (models.empty()) GTEST_SKIP() << "no models under " << testing::SharedDir();
  for (const std::string& path : models) {
    SCOPED_TRACE(path);
    Result<GgufFile> f = GgufFile::Open(path);
    ASSERT_TRUE(f.ok()) << f.error().Message();
    Result<std::vector<uint8_t>> bytes = Writer::FromFile(*f).Serialize();
    ASSERT_TRUE(bytes.ok());
    ASSERT_EQ(bytes->size(), f->file_size());
    EXPECT_EQ(std::memcmp(bytes->data(), f->bytes().data(), bytes->size()), 0);
  }
}

TEST(Writer, BuiltFileParsesBackWithEveryValueType) {
  Writer w;
  ASSERT_TRUE(w.AddKv("general.architecture", Value::Str("llama")).ok());
  ASSERT_TRUE(w.AddKv("u8", Value::U(ValueType::kUint8, 200)).ok());
  ASSERT_TRUE(w.AddKv("i8", Value::I(ValueType::kInt8, -100)).ok());
  ASSERT_TRUE(w.AddKv("u16", Value::U(ValueType::kUint16, 60000)).ok());
  ASSERT_TRUE(w.AddKv("i16", Value::I(ValueType::kInt16, -30000)).ok());
  ASSERT_TRUE(w.AddKv("u32", Value::U(ValueType::kUint32, 4000000000u)).ok());
  ASSERT_TRUE(w.AddKv("i32", Value::I(ValueType::kInt32, -2000000000)).ok());
  ASSERT_TRUE(w.AddKv("f32", Value::F32(0.1f)).ok());
  ASSERT_TRUE(w.AddKv("b", Value::Bool(true)).ok());
  ASSERT_TRUE(w.AddKv("u64", Value::U(ValueType::kUint64, ~uint64_t{0})).ok());
  ASSERT_TRUE(w.AddKv("i64", Value::I(ValueType::kInt64, INT64_MIN)).ok());
  ASSERT_TRUE(w.AddKv("f64", Value::F64(-1e300)).ok());
  ASSERT_TRUE(w.AddKv("strs", Value::StrArray({"a", "", std::string("\0\xff", 2)})).ok());
  ASSERT_TRUE(w.AddKv("ints", Value::Array(ValueType::kInt32, {Value::I(ValueType::kInt32, -1),
                                                              Value::I(ValueType::kInt32, 7)}))
                  .ok());
  const Value inner = Value::Array(ValueType::kFloat32, {Value::F32(1.5f)});
  ASSERT_TRUE(w.AddKv("nested", Value::Array(ValueType::kArray, {inner, inner})).ok());
  ASSERT_TRUE(w.AddKv("general.alignment", Value::U(ValueType::kUint32, 64)).ok());
  std::vector<uint8_t> a(4 * 3 * 2), b(18 * 2);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<uint8_t>(i);
  ASSERT_TRUE(w.AddTensor("a", GgmlType::kF32, {3, 2}, a).ok());
  ASSERT_TRUE(w.AddTensor("b", GgmlType::kQ4_0, {64}, b).ok());

  Result<std::vector<uint8_t>> bytes = w.Serialize();
  ASSERT_TRUE(bytes.ok());
  Result<GgufFile> f = GgufFile::Parse(OwnBytes(*bytes));
  ASSERT_TRUE(f.ok()) << f.error().Message();
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ(f->data_offset() % 64, 0u);
  EXPECT_EQ(f->FindKey("u8")->value.u, 200u);
  EXPECT_EQ(f->FindKey("i8")->value.i, -100);
  EXPECT_EQ(f->FindKey("u32")->value.u, 4000000000u);
  EXPECT_EQ(f->FindKey("i64")->value.i, INT64_MIN);
  EXPECT_EQ(f->FindKey("u64")->value.u, ~uint64_t{0});
  EXPECT_EQ(static_cast<float>(f->FindKey("f32")->value.f), 0.1f);
  EXPECT_EQ(f->FindKey("f64")->value.f, -1e300);
  EXPECT_EQ(f->FindKey("b")->value.u, 1u);
  const Value& strs = f->FindKey("strs")->value;
  ASSERT_EQ(strs.array_size(), 3u);
  EXPECT_EQ(strs.strings[2], std::string("\0\xff", 2));
  EXPECT_EQ(f->FindKey("ints")->value.ArrayItem(0).i, -1);
  const Value& nested = f->FindKey("nested")->value;
  ASSERT_EQ(nested.array_size(), 2u);
  EXPECT_EQ(nested.ArrayItem(1).ArrayItem(0).f, 1.5);
  ASSERT_EQ(f->tensors().size(), 2u);
  EXPECT_EQ(f->tensors()[1].offset, 64u);  // 24 bytes padded to the 64 alignment
  const auto data = f->TensorData(*f->FindTensor("a"));
  EXPECT_TRUE(std::equal(data.begin(), data.end(), a.begin()));
  EXPECT_TRUE(f->warnings().empty());
}

TEST(Writer, RejectsBadInputWithErrors) {
  Writer w;
  std::vector<uint8_t> bytes(18);
  EXPECT_EQ(w.AddKv("general.alignment", Value::U(ValueType::kUint32, 3)).error().code,
            ErrorCode::kBadAlignment);
  EXPECT_EQ(w.AddKv("general.alignment", Value::U(ValueType::kUint64, 32)).error().code,
            ErrorCode::kBadAlignment);
  ASSERT_TRUE(w.AddKv("k", Value::Str("v")).ok());
  EXPECT_EQ(w.AddKv("k", Value::Str("v")).error().code, ErrorCode::kDuplicateKey);
  EXPECT_EQ(w.AddTensor("t", GgmlType::kQ4_0, {33}, bytes).error().code, ErrorCode::kBadBlockMultiple);
  EXPECT_EQ(w.AddTensor("t", GgmlType::kQ4_0, {64}, bytes).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(w.AddTensor("t", GgmlType::kQ4_0, {}, bytes).error().code, ErrorCode::kBadDims);
  EXPECT_EQ(w.AddTensor("t", static_cast<GgmlType>(4), {32}, bytes).error().code, ErrorCode::kUnknownType);
  ASSERT_TRUE(w.AddTensor("t", GgmlType::kQ4_0, {32}, bytes).ok());
  EXPECT_EQ(w.AddTensor("t", GgmlType::kQ4_0, {32}, bytes).error().code, ErrorCode::kDuplicateTensor);
}

TEST(Writer, WriteFileIsAtomicAndReadable) {
  const std::string path = ::testing::TempDir() + "/writer_test.gguf";
  Writer w;
  ASSERT_TRUE(w.AddKv("general.name", Value::Str("x")).ok());
  ASSERT_TRUE(w.WriteFile(path).ok());
  Result<GgufFile> f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.error().Message();
  EXPECT_EQ(f->GetString("general.name"), "x");
  EXPECT_FALSE(w.WriteFile("/nonexistent-dir/x.gguf").ok());
}

}  // namespace
}  // namespace ggufscope::gguf
