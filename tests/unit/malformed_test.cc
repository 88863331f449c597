// A corpus of malformed GGUF files, each crafted byte by byte, and the exact
// error GgufFile::Parse must give for it: the code, a field naming the culprit
// (key, tensor name, header field) and the byte offset where that field sits.
// Untrusted files are the normal input of an auditing tool, so every rejection
// must be precise, fast and must never allocate in proportion to a count the
// file merely claims.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <new>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/error.h"
#include "gguf/file.h"
#include "gguf/types.h"
#include "gguf/value.h"
#include "gguf/writer.h"

// ---------------------------------------------------------------------------
// Allocation watch. The global operator new of this test binary is replaced so
// that a test can see the largest single allocation the parser makes, and can
// refuse (with std::bad_alloc) one above a limit instead of actually making a
// multi-gigabyte reservation on the test machine. Outside a watch it is plain
// malloc/free, the same as the default implementation.
namespace {

std::atomic<bool> g_watching{false};
std::atomic<size_t> g_largest_allocation{0};
std::atomic<size_t> g_allocation_limit{std::numeric_limits<size_t>::max()};

void* CountedNew(size_t n) {
  if (g_watching.load(std::memory_order_relaxed)) {
    size_t seen = g_largest_allocation.load(std::memory_order_relaxed);
    while (n > seen && !g_largest_allocation.compare_exchange_weak(seen, n)) {
    }
    if (n > g_allocation_limit.load(std::memory_order_relaxed)) throw std::bad_alloc();
  }
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}

}  // namespace

void* operator new(size_t n) { return CountedNew(n); }
void* operator new[](size_t n) { return CountedNew(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

namespace ggufscope::gguf {

// Lets failing EXPECT_EQs on codes print "too-large" rather than raw bytes.
// It must live in the enum's own namespace for gtest to find it.
void PrintTo(ErrorCode code, std::ostream* os) { *os << ErrorCodeName(code); }

namespace {

// While alive, records the largest allocation and refuses any above `limit`.
class AllocationWatch {
 public:
  explicit AllocationWatch(size_t limit = std::numeric_limits<size_t>::max()) {
    g_largest_allocation = 0;
    g_allocation_limit = limit;
    g_watching = true;
  }
  ~AllocationWatch() {
    g_watching = false;
    g_allocation_limit = std::numeric_limits<size_t>::max();
  }
  AllocationWatch(const AllocationWatch&) = delete;
  AllocationWatch& operator=(const AllocationWatch&) = delete;
  size_t largest() const { return g_largest_allocation.load(); }
};

constexpr uint32_t kTypeArray = static_cast<uint32_t>(ValueType::kArray);
constexpr uint32_t kTypeString = static_cast<uint32_t>(ValueType::kString);
constexpr uint32_t kTypeUint8 = static_cast<uint32_t>(ValueType::kUint8);
constexpr uint32_t kTypeUint16 = static_cast<uint32_t>(ValueType::kUint16);
constexpr uint32_t kTypeUint32 = static_cast<uint32_t>(ValueType::kUint32);
constexpr uint32_t kTypeInt32 = static_cast<uint32_t>(ValueType::kInt32);
constexpr uint32_t kTypeUint64 = static_cast<uint32_t>(ValueType::kUint64);
constexpr uint32_t kF32 = static_cast<uint32_t>(GgmlType::kF32);
constexpr uint32_t kQ4_0 = static_cast<uint32_t>(GgmlType::kQ4_0);
constexpr uint64_t kHuge = uint64_t{1} << 62;

// Appends GGUF fields little-endian, so a test can write exactly the broken
// file it means (the Writer refuses to produce most of them). Every append
// returns the offset where it started, which is what the errors must report.
class Bytes {
 public:
  uint64_t size() const { return b_.size(); }
  const std::vector<uint8_t>& data() const { return b_; }
  std::span<const uint8_t> span() const { return b_; }
  // A copy of the first n bytes: a file cut short at byte n.
  std::vector<uint8_t> Prefix(uint64_t n) const { return {b_.begin(), b_.begin() + n}; }

  uint64_t Le(uint64_t v, int n) {
    const uint64_t at = size();
    for (int i = 0; i < n; ++i) b_.push_back(static_cast<uint8_t>(v >> (8 * i)));
    return at;
  }
  uint64_t U8(uint8_t v) { return Le(v, 1); }
  uint64_t U16(uint16_t v) { return Le(v, 2); }
  uint64_t U32(uint32_t v) { return Le(v, 4); }
  uint64_t U64(uint64_t v) { return Le(v, 8); }
  uint64_t I64(int64_t v) { return Le(static_cast<uint64_t>(v), 8); }
  uint64_t Raw(std::string_view s) {
    const uint64_t at = size();
    b_.insert(b_.end(), s.begin(), s.end());
    return at;
  }
  uint64_t Zeros(uint64_t n) {
    const uint64_t at = size();
    b_.resize(b_.size() + n, 0);
    return at;
  }
  uint64_t PadTo(uint64_t alignment) { return Zeros((alignment - size() % alignment) % alignment); }
  // A GGUF string: u64 length, then the bytes.
  uint64_t Str(std::string_view s) {
    const uint64_t at = U64(s.size());
    Raw(s);
    return at;
  }

  uint64_t Header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    const uint64_t at = U32(kGgufMagic);
    U32(version);
    U64(n_tensors);
    U64(n_kv);
    return at;
  }
  // Key and type of a key/value record; the caller appends the value.
  uint64_t Key(std::string_view key, uint32_t type) {
    const uint64_t at = Str(key);
    U32(type);
    return at;
  }
  uint64_t KvU32(std::string_view key, uint32_t v) {
    const uint64_t at = Key(key, kTypeUint32);
    U32(v);
    return at;
  }
  uint64_t KvStr(std::string_view key, std::string_view v) {
    const uint64_t at = Key(key, kTypeString);
    Str(v);
    return at;
  }
  // A tensor info record with n_dims written as given (it may disagree with
  // ne.size(), which is the point of some tests).
  uint64_t TensorRaw(std::string_view name, uint32_t n_dims, const std::vector<int64_t>& ne,
                     uint32_t type, uint64_t offset) {
    const uint64_t at = Str(name);
    U32(n_dims);
    for (int64_t d : ne) I64(d);
    U32(type);
    U64(offset);
    return at;
  }
  uint64_t Tensor(std::string_view name, const std::vector<int64_t>& ne, uint32_t type,
                  uint64_t offset) {
    return TensorRaw(name, static_cast<uint32_t>(ne.size()), ne, type, offset);
  }

 private:
  std::vector<uint8_t> b_;
};

// Byte offsets inside a tensor info record that starts at `at`.
uint64_t NDimsAt(uint64_t at, std::string_view name) { return at + 8 + name.size(); }
uint64_t DimAt(uint64_t at, std::string_view name, int d) { return NDimsAt(at, name) + 4 + 8 * d; }
uint64_t TypeAt(uint64_t at, std::string_view name, int n_dims) { return DimAt(at, name, n_dims); }
uint64_t OffsetAt(uint64_t at, std::string_view name, int n_dims) {
  return TypeAt(at, name, n_dims) + 4;
}

std::string Describe(const Result<GgufFile>& r) {
  return r.ok() ? std::string("parsed OK") : r.error().Message();
}

// Parse must fail with `code`, in a field containing `field_part`, at `offset`.
::testing::AssertionResult Rejects(std::span<const uint8_t> bytes, ErrorCode code,
                                   std::string_view field_part, uint64_t offset) {
  const Result<GgufFile> r = GgufFile::Parse(bytes);
  if (r.ok()) {
    return ::testing::AssertionFailure() << "parsed OK; expected " << ErrorCodeName(code) << " in '"
                                         << field_part << "' at byte " << offset;
  }
  const Error& e = r.error();
  if (e.code != code || e.field.find(field_part) == std::string::npos || e.offset != offset) {
    return ::testing::AssertionFailure()
           << "expected " << ErrorCodeName(code) << " in a field containing '" << field_part
           << "' at byte " << offset << "; got " << e.Message();
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult Rejects(const Bytes& b, ErrorCode code, std::string_view field_part,
                                   uint64_t offset) {
  return Rejects(b.span(), code, field_part, offset);
}

std::vector<uint8_t> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string Stories260KPath() {
  return std::string(GGUFSCOPE_SHARED_DIR) + "/models/stories260K.gguf";
}

// ---------------------------------------------------------------------------
// Header.

TEST(MalformedHeader, EmptyFile) {
  EXPECT_TRUE(Rejects(std::span<const uint8_t>(), ErrorCode::kTruncated, "header.magic", 0));
}

TEST(MalformedHeader, OnlyMagic) {
  const std::vector<uint8_t> b = {'G', 'G', 'U', 'F'};
  EXPECT_TRUE(Rejects(b, ErrorCode::kTruncated, "header.version", 4));
}

TEST(MalformedHeader, ShorterThanMagic) {
  const std::vector<uint8_t> b = {'G', 'G', 'U'};
  EXPECT_TRUE(Rejects(b, ErrorCode::kTruncated, "header.magic", 0));
}

TEST(MalformedHeader, BadMagic) {
  Bytes b;
  b.Raw("GGML");  // the pre-GGUF format's magic
  b.U32(3);
  b.U64(0);
  b.U64(0);
  EXPECT_TRUE(Rejects(b, ErrorCode::kBadMagic, "header.magic", 0));
  const std::vector<uint8_t> zeros(64, 0);
  EXPECT_TRUE(Rejects(zeros, ErrorCode::kBadMagic, "header.magic", 0));
}

// A failed download often saves the hosting site's HTML error page under the
// model's name; the message must say so rather than just "bad magic".
TEST(MalformedHeader, HtmlPageSavedAsGguf) {
  for (std::string_view page :
       {std::string_view("<!DOCTYPE html>\n<html lang=\"en\"><head><title>404 Not Found</title>"
                         "</head><body>Not Found</body></html>\n"),
        std::string_view("<html><body>Rate limited</body></html>"),
        std::string_view("\n\n  <!doctype html><HTML><BODY>gateway timeout</BODY></HTML>")}) {
    SCOPED_TRACE(page);
    const std::vector<uint8_t> b(page.begin(), page.end());
    EXPECT_TRUE(Rejects(b, ErrorCode::kBadMagic, "header.magic", 0));
    const Result<GgufFile> r = GgufFile::Parse(b);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().Message().find("HTML"), std::string::npos) << r.error().Message();
  }
}

TEST(MalformedHeader, GitLfsPointer) {
  const std::string_view ptr =
      "version https://git-lfs.github.com/spec/v1\n"
      "oid sha256:4d7a214614ab2935c943f9e0ff69f22eadbb8f32b1258daaa5e2ca24d17e2393\n"
      "size 1185376\n";
  const std::vector<uint8_t> b(ptr.begin(), ptr.end());
  EXPECT_TRUE(Rejects(b, ErrorCode::kBadMagic, "header.magic", 0));
  const Result<GgufFile> r = GgufFile::Parse(b);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().Message().find("Git LFS"), std::string::npos) << r.error().Message();
}

// The LFS hint must be given to LFS pointers only, not to any text file that
// starts with "vers" (matching only the first 4 bytes of "version
// https://git-lfs" once did that).
TEST(MalformedHeader, TextStartingWithVersIsNotCalledLfsPointer) {
  const std::string_view text = "version 1.2.3 release notes\n";
  const std::vector<uint8_t> b(text.begin(), text.end());
  const Result<GgufFile> r = GgufFile::Parse(b);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kBadMagic);
  EXPECT_EQ(r.error().Message().find("Git LFS"), std::string::npos) << r.error().Message();
}

TEST(MalformedHeader, UnsupportedVersions) {
  for (uint32_t version : {0u, 1u, 4u, 0xffffffffu}) {
    SCOPED_TRACE(version);
    Bytes b;
    b.Header(0, 0, version);
    EXPECT_TRUE(Rejects(b, ErrorCode::kUnsupportedVersion, "header.version", 4));
  }
}

// gguf-py --bigendian writes the magic as the bytes "GGUF" and everything after
// it big-endian, so the version is where it shows.
TEST(MalformedHeader, BigEndianFile) {
  for (uint32_t version : {2u, 3u}) {
    SCOPED_TRACE(version);
    Bytes b;
    b.Raw("GGUF");
    b.U32(__builtin_bswap32(version));
    b.U64(__builtin_bswap64(1));
    b.U64(__builtin_bswap64(1));
    b.Zeros(64);
    EXPECT_TRUE(Rejects(b, ErrorCode::kBigEndian, "header.version", 4));
  }
}

TEST(MalformedHeader, HugeTensorCount) {
  for (uint64_t n : {kHuge, std::numeric_limits<uint64_t>::max(), uint64_t{1} << 40}) {
    SCOPED_TRACE(n);
    Bytes b;
    b.Header(n, 0);
    b.Zeros(256);
    AllocationWatch watch;
    EXPECT_TRUE(Rejects(b, ErrorCode::kTooLarge, "header.n_tensors", 8));
    EXPECT_LT(watch.largest(), size_t{1} << 20);
  }
}

TEST(MalformedHeader, HugeKvCount) {
  for (uint64_t n : {kHuge, std::numeric_limits<uint64_t>::max(), uint64_t{1} << 40}) {
    SCOPED_TRACE(n);
    Bytes b;
    b.Header(0, n);
    b.Zeros(256);
    AllocationWatch watch;
    EXPECT_TRUE(Rejects(b, ErrorCode::kTooLarge, "header.n_kv", 16));
    EXPECT_LT(watch.largest(), size_t{1} << 20);
  }
}

// A count of 2^62 must be refused from the header alone: no reservation, no
// loop over the claimed records.
TEST(MalformedHeader, Count2To62ReturnsQuicklyWithoutAllocating) {
  Bytes b;
  b.Header(kHuge, kHuge);
  b.Zeros(4096);
  AllocationWatch watch(size_t{64} << 20);
  const auto start = std::chrono::steady_clock::now();
  Result<GgufFile> r = Error{ErrorCode::kIo, "", 0, "", ""};
  ASSERT_NO_THROW(r = GgufFile::Parse(b.span())) << "the parser asked for more than 64 MiB";
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kTooLarge) << r.error().Message();
  EXPECT_LT(watch.largest(), size_t{1} << 20);
  EXPECT_LT(elapsed, std::chrono::seconds(1));
}

// ---------------------------------------------------------------------------
// Metadata.

TEST(MalformedMetadata, HugeKeyLength) {
  Bytes b;
  b.Header(0, 1);
  b.U64(kHuge);
  b.U32(kTypeUint8);
  b.Zeros(64);
  AllocationWatch watch;
  EXPECT_TRUE(Rejects(b, ErrorCode::kTooLarge, "kv[0].key.length", 24));
  EXPECT_LT(watch.largest(), size_t{1} << 20);
}

TEST(MalformedMetadata, HugeStringValueLength) {
  Bytes b;
  b.Header(0, 1);
  b.Key("general.name", kTypeString);
  const uint64_t at = b.U64(kHuge);
  b.Zeros(64);
  AllocationWatch watch;
  EXPECT_TRUE(Rejects(b, ErrorCode::kTooLarge, "kv[0] 'general.name'.value.length", at));
  EXPECT_LT(watch.largest(), size_t{1} << 20);
}

TEST(MalformedMetadata, HugeStringLengthInsideStringArray) {
  Bytes b;
  b.Header(0, 1);
  b.Key("tokenizer.ggml.tokens", kTypeArray);
  b.U32(kTypeString);
  b.U64(3);
  b.Str("<s>");
  const uint64_t at = b.U64(std::numeric_limits<uint64_t>::max());
  b.Zeros(64);
  AllocationWatch watch;
  EXPECT_TRUE(Rejects(b, ErrorCode::kTooLarge, "'tokenizer.ggml.tokens'.value[1].length", at));
  EXPECT_LT(watch.largest(), size_t{1} << 20);
}

TEST(MalformedMetadata, HugeArrayLength) {
  for (uint32_t elem : {kTypeUint8, kTypeUint64, kTypeString, kTypeArray}) {
    SCOPED_TRACE(elem);
    Bytes b;
    b.Header(0, 1);
    b.Key("big", kTypeArray);
    b.U32(elem);
    const uint64_t at = b.U64(kHuge);
    b.Zeros(256);
    AllocationWatch watch;
    EXPECT_TRUE(Rejects(b, ErrorCode::kTooLarge, "kv[0] 'big'.value.count", at));
    EXPECT_LT(watch.largest(), size_t{1} << 20);
  }
}

TEST(MalformedMetadata, HugeArrayLengthNested) {
  Bytes b;
  b.Header(0, 1);
  b.Key("big", kTypeArray);
  b.U32(kTypeArray);
  b.U64(1);
  b.U32(kTypeUint32);
  const uint64_t at = b.U64(std::numeric_limits<uint64_t>::max());
  b.Zeros(256);
  EXPECT_TRUE(Rejects(b, ErrorCode::kTooLarge, "kv[0] 'big'.value[0].count", at));
}

TEST(MalformedMetadata, UnknownValueType) {
  for (uint32_t type : {13u, 0xffffffffu}) {
    SCOPED_TRACE(type);
    Bytes b;
    b.Header(0, 1);
    const uint64_t at = b.Str("general.name");
    b.U32(type);
    b.Zeros(32);
    EXPECT_TRUE(Rejects(b, ErrorCode::kBadValueType, "kv[0] 'general.name'.type", at + 8 + 12));
  }
}

TEST(MalformedMetadata, UnknownArrayElementType) {
  for (uint32_t type : {13u, 0xffffffffu}) {
    SCOPED_TRACE(type);
    Bytes b;
    b.Header(0, 1);
    b.Key("arr", kTypeArray);
    const uint64_t at = b.U32(type);
    b.U64(1);
    b.Zeros(32);
    EXPECT_TRUE(Rejects(b, ErrorCode::kBadValueType, "kv[0] 'arr'.value.elem_type", at));
  }
}

TEST(MalformedMetadata, DuplicateKey) {
  Bytes b;
  b.Header(0, 3);
  b.KvStr("general.name", "a");
  b.KvU32("k", 1);
  const uint64_t at = b.KvU32("k", 2);
  EXPECT_TRUE(Rejects(b, ErrorCode::kDuplicateKey, "kv[2] 'k'", at));
}

TEST(MalformedMetadata, AlignmentZeroOrNotPowerOfTwo) {
  for (uint32_t a : {0u, 3u, 48u, 0xffffffffu}) {
    SCOPED_TRACE(a);
    Bytes b;
    b.Header(0, 2);
    b.KvStr("general.name", "x");
    const uint64_t at = b.KvU32("general.alignment", a);
    EXPECT_TRUE(Rejects(b, ErrorCode::kBadAlignment, "kv[1] 'general.alignment'", at));
  }
}

TEST(MalformedMetadata, AlignmentOfWrongType) {
  {
    Bytes b;
    b.Header(0, 1);
    const uint64_t at = b.Key("general.alignment", kTypeUint64);
    b.U64(32);
    EXPECT_TRUE(Rejects(b, ErrorCode::kBadAlignment, "kv[0] 'general.alignment'", at));
  }
  {
    Bytes b;
    b.Header(0, 1);
    const uint64_t at = b.KvStr("general.alignment", "32");
    EXPECT_TRUE(Rejects(b, ErrorCode::kBadAlignment, "kv[0] 'general.alignment'", at));
  }
  {
    Bytes b;
    b.Header(0, 1);
    const uint64_t at = b.Key("general.alignment", kTypeInt32);
    b.U32(32);
    EXPECT_TRUE(Rejects(b, ErrorCode::kBadAlignment, "kv[0] 'general.alignment'", at));
  }
}

// Writes `levels` arrays nested in one another (each holding exactly one
// array, the innermost holding three uint8) as the value of key "deep".
// Returns the offset where array body number `mark` (1-based) starts.
uint64_t AppendNestedArrays(Bytes& b, int levels, int mark) {
  b.Key("deep", kTypeArray);
  uint64_t marked = 0;
  for (int level = 1; level <= levels; ++level) {
    const uint64_t at = b.size();
    if (level == mark) marked = at;
    if (level < levels) {
      b.U32(kTypeArray);
      b.U64(1);
    } else {
      b.U32(kTypeUint8);
      b.U64(3);
      b.U8(7);
      b.U8(8);
      b.U8(9);
    }
  }
  return marked;
}

TEST(MalformedMetadata, ArraysNestedTooDeep) {
  Bytes b;
  b.Header(0, 1);
  const uint64_t at = AppendNestedArrays(b, kMaxArrayDepth + 1, kMaxArrayDepth + 1);
  std::string field = "kv[0] 'deep'.value";
  for (int i = 0; i < kMaxArrayDepth; ++i) field += "[0]";
  EXPECT_TRUE(Rejects(b, ErrorCode::kNestingTooDeep, field, at));
}

TEST(MalformedMetadata, ArraysNestedTooDeepByWriter) {
  Value v = Value::Array(ValueType::kInt32, {Value::I(ValueType::kInt32, 1)});
  for (int i = 0; i < kMaxArrayDepth; ++i) v = Value::Array(ValueType::kArray, {v});
  Writer w;
  ASSERT_TRUE(w.AddKv("deep", v).ok());
  Result<std::vector<uint8_t>> bytes = w.Serialize();
  ASSERT_TRUE(bytes.ok());
  const Result<GgufFile> r = GgufFile::Parse(std::span<const uint8_t>(bytes.value()));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kNestingTooDeep) << r.error().Message();
}

// ---------------------------------------------------------------------------
// Tensor infos.

// A file with one tensor info written raw and 64 bytes of data.
Bytes OneTensor(std::string_view name, uint32_t n_dims, const std::vector<int64_t>& ne,
                uint32_t type, uint64_t offset, uint64_t* info_at) {
  Bytes b;
  b.Header(1, 0);
  *info_at = b.TensorRaw(name, n_dims, ne, type, offset);
  b.PadTo(kDefaultAlignment);
  b.Zeros(64);
  return b;
}

TEST(MalformedTensor, HugeNameLength) {
  Bytes b;
  b.Header(1, 0);
  b.U64(kHuge);
  b.Zeros(64);
  EXPECT_TRUE(Rejects(b, ErrorCode::kTooLarge, "tensor[0].name.length", 24));
}

TEST(MalformedTensor, UnknownTypeId) {
  for (uint32_t type : {kGgmlTypeCount, 1000u, 0xffffffffu}) {
    SCOPED_TRACE(type);
    uint64_t at = 0;
    const Bytes b = OneTensor("w", 1, {16}, type, 0, &at);
    EXPECT_TRUE(Rejects(b, ErrorCode::kUnknownType, "tensor 'w'.type", TypeAt(at, "w", 1)));
  }
}

TEST(MalformedTensor, RemovedTypeIds) {
  for (uint32_t type : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u}) {
    SCOPED_TRACE(type);
    const std::optional<TypeTraits> traits = LookupType(type);
    ASSERT_TRUE(traits.has_value());
    EXPECT_EQ(traits->status, TypeStatus::kRemoved);
    uint64_t at = 0;
    const Bytes b = OneTensor("w", 1, {256}, type, 0, &at);
    EXPECT_TRUE(Rejects(b, ErrorCode::kRemovedType, "tensor 'w'.type", TypeAt(at, "w", 1)));
  }
}

TEST(MalformedTensor, BadNDims) {
  for (uint32_t n_dims : {0u, 5u, 0xffffffffu}) {
    SCOPED_TRACE(n_dims);
    uint64_t at = 0;
    // Five dims are written so that n_dims = 5 is the only thing wrong.
    const Bytes b = OneTensor("w", n_dims, {1, 1, 1, 1, 1}, kF32, 0, &at);
    EXPECT_TRUE(Rejects(b, ErrorCode::kBadDims, "tensor 'w'.n_dims", NDimsAt(at, "w")));
  }
}

TEST(MalformedTensor, NegativeDim) {
  uint64_t at = 0;
  const Bytes b = OneTensor("w", 3, {4, -2, 1}, kF32, 0, &at);
  EXPECT_TRUE(Rejects(b, ErrorCode::kBadDims, "tensor 'w'.ne[1]", DimAt(at, "w", 1)));
  const Bytes c = OneTensor("w", 1, {std::numeric_limits<int64_t>::min()}, kF32, 0, &at);
  EXPECT_TRUE(Rejects(c, ErrorCode::kBadDims, "tensor 'w'.ne[0]", DimAt(at, "w", 0)));
}

TEST(MalformedTensor, DimProductOverflowsInt64) {
  uint64_t at = 0;
  // 2^32 * 2^32 wraps a uint64.
  const Bytes b = OneTensor("w", 2, {int64_t{1} << 32, int64_t{1} << 32}, kF32, 0, &at);
  EXPECT_TRUE(Rejects(b, ErrorCode::kBadDims, "tensor 'w'.ne", DimAt(at, "w", 0)));
  // (2^63 - 1) * 2 fits a uint64 but not the int64 ggml counts elements in.
  const Bytes c = OneTensor("w", 4, {std::numeric_limits<int64_t>::max(), 1, 1, 2}, kF32, 0, &at);
  EXPECT_TRUE(Rejects(c, ErrorCode::kBadDims, "tensor 'w'.ne", DimAt(at, "w", 0)));
}

TEST(MalformedTensor, ByteSizeOverflows) {
  uint64_t at = 0;
  // 2^61 F64 elements is a valid element count but 2^64 bytes.
  const Bytes b =
      OneTensor("w", 1, {int64_t{1} << 61}, static_cast<uint32_t>(GgmlType::kF64), 0, &at);
  EXPECT_TRUE(Rejects(b, ErrorCode::kBadDims, "tensor 'w'", NDimsAt(at, "w")));
}

TEST(MalformedTensor, RowNotMultipleOfBlock) {
  uint64_t at = 0;
  const Bytes b = OneTensor("w", 2, {33, 2}, kQ4_0, 0, &at);
  EXPECT_TRUE(Rejects(b, ErrorCode::kBadBlockMultiple, "tensor 'w'.ne[0]", DimAt(at, "w", 0)));
  const Bytes c =
      OneTensor("w", 1, {128}, static_cast<uint32_t>(GgmlType::kQ4_K), 0, &at);  // QK_K = 256
  EXPECT_TRUE(Rejects(c, ErrorCode::kBadBlockMultiple, "tensor 'w'.ne[0]", DimAt(at, "w", 0)));
}

TEST(MalformedTensor, MisalignedOffset) {
  uint64_t at = 0;
  const Bytes b = OneTensor("w", 1, {4}, kF32, 16, &at);
  EXPECT_TRUE(Rejects(b, ErrorCode::kMisalignedOffset, "tensor 'w'.offset", OffsetAt(at, "w", 1)));

  // Aligned for the default 32 but not for the file's own 64.
  Bytes c;
  c.Header(1, 1);
  c.KvU32("general.alignment", 64);
  const uint64_t info = c.Tensor("w", {4}, kF32, 32);
  c.PadTo(64);
  c.Zeros(128);
  EXPECT_TRUE(
      Rejects(c, ErrorCode::kMisalignedOffset, "tensor 'w'.offset", OffsetAt(info, "w", 1)));
}

TEST(MalformedTensor, DuplicateTensorNames) {
  Bytes b;
  b.Header(3, 0);
  b.Tensor("a", {8}, kF32, 0);
  b.Tensor("w", {8}, kF32, 32);
  const uint64_t at = b.Tensor("w", {8}, kF32, 64);
  b.PadTo(kDefaultAlignment);
  b.Zeros(96);
  EXPECT_TRUE(Rejects(b, ErrorCode::kDuplicateTensor, "tensor 'w'", at));
}

// ---------------------------------------------------------------------------
// Data layout.

TEST(MalformedLayout, OverlappingTensors) {
  Bytes b;
  b.Header(2, 0);
  b.Tensor("a", {16}, kF32, 0);  // bytes 0..64 of the data section
  b.Tensor("b", {16}, kF32, 32);
  b.PadTo(kDefaultAlignment);
  const uint64_t data_offset = b.size();
  b.Zeros(96);
  EXPECT_TRUE(Rejects(b, ErrorCode::kOverlap, "tensor 'b' data", data_offset + 32));
  const Result<GgufFile> r = GgufFile::Parse(b.span());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().expected.find("'a'"), std::string::npos) << r.error().Message();
}

TEST(MalformedLayout, TensorDataPastTheEnd) {
  Bytes b;
  b.Header(1, 0);
  b.Tensor("w", {16}, kF32, 0);  // 64 bytes
  b.PadTo(kDefaultAlignment);
  const uint64_t data_offset = b.size();
  b.Zeros(32);
  EXPECT_TRUE(Rejects(b, ErrorCode::kTruncated, "tensor 'w' data", data_offset));
}

// An offset near 2^64 must not wrap around in the bounds check, and the error
// must not point at a wrapped byte offset inside the header.
TEST(MalformedLayout, TensorOffsetNear2To64) {
  Bytes b;
  b.Header(1, 0);
  const uint64_t info = b.Tensor("w", {16}, kF32, ~uint64_t{31});
  b.PadTo(kDefaultAlignment);
  const uint64_t data_offset = b.size();
  b.Zeros(64);
  const Result<GgufFile> r = GgufFile::Parse(b.span());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kTruncated) << r.error().Message();
  EXPECT_NE(r.error().field.find("tensor 'w'"), std::string::npos) << r.error().Message();
  const uint64_t offset_field = OffsetAt(info, "w", 1);
  EXPECT_TRUE(r.error().offset >= data_offset || r.error().offset == offset_field)
      << "error offset " << r.error().offset << " wrapped around; " << r.error().Message();
}

TEST(MalformedLayout, TruncatedBeforeDataSection) {
  Bytes b;
  b.Header(1, 0);
  b.Tensor("w", {8}, kF32, 0);
  const uint64_t header_end = b.size();
  EXPECT_TRUE(Rejects(b, ErrorCode::kTruncated, "data section", header_end));
}

// ---------------------------------------------------------------------------
// Truncation at every section boundary of a small hand-built file. The file's
// first key holds a long string so that, wherever it is cut after that key,
// the header's record counts still fit what is left and the cut is met by the
// record it falls in.

struct Layout {
  Bytes bytes;
  uint64_t kv1 = 0, kv1_type = 0, kv1_value = 0;
  uint64_t kv2 = 0, kv2_elem_type = 0, kv2_count = 0, kv2_elems = 0;
  uint64_t kv3 = 0, kv3_value = 0;
  uint64_t ta = 0, tb = 0;
  uint64_t header_end = 0, data_offset = 0;
};

Layout BuildLayout() {
  Layout l;
  Bytes& b = l.bytes;
  b.Header(2, 4);
  b.KvStr("general.description", std::string(200, 'd'));
  l.kv1 = b.Str("test.u32");
  l.kv1_type = b.U32(kTypeUint32);
  l.kv1_value = b.U32(7);
  l.kv2 = b.Str("test.arr");
  b.U32(kTypeArray);
  l.kv2_elem_type = b.U32(kTypeUint16);
  l.kv2_count = b.U64(3);
  l.kv2_elems = b.U16(1);
  b.U16(2);
  b.U16(3);
  l.kv3 = b.Str("test.str");
  b.U32(kTypeString);
  l.kv3_value = b.Str("hello, world");
  l.ta = b.Tensor("a", {8}, kF32, 0);
  l.tb = b.Tensor("bb", {4, 2}, kF32, 32);
  l.header_end = b.size();
  b.PadTo(kDefaultAlignment);
  l.data_offset = b.size();
  for (int i = 0; i < 16; ++i) b.U32(0x3f800000);  // 16 floats of 1.0
  return l;
}

TEST(MalformedTruncation, HandBuiltFileIsValid) {
  const Layout l = BuildLayout();
  const Result<GgufFile> r = GgufFile::Parse(l.bytes.span());
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_EQ(r->header_end(), l.header_end);
  EXPECT_EQ(r->data_offset(), l.data_offset);
  EXPECT_EQ(r->metadata().size(), 4u);
  ASSERT_EQ(r->tensors().size(), 2u);
}

// Cuts where the parser meets the end inside a fixed-size field: the error is
// kTruncated and points at the field's first byte.
TEST(MalformedTruncation, AtEverySectionBoundary) {
  const Layout l = BuildLayout();
  struct Cut {
    const char* what;
    uint64_t at;
    std::string field;
    uint64_t offset;
  };
  const std::vector<Cut> cuts = {
      {"empty", 0, "header.magic", 0},
      {"inside magic", 2, "header.magic", 0},
      {"after magic", 4, "header.version", 4},
      {"inside version", 6, "header.version", 4},
      {"after version", 8, "header.n_tensors", 8},
      {"inside n_tensors", 12, "header.n_tensors", 8},
      {"after n_tensors", 16, "header.n_kv", 16},
      {"inside n_kv", 20, "header.n_kv", 16},
      {"inside a key's length", l.kv1 + 3, "kv[1].key.length", l.kv1},
      {"after a key", l.kv1_type, "kv[1] 'test.u32'.type", l.kv1_type},
      {"inside a value type", l.kv1_type + 2, "kv[1] 'test.u32'.type", l.kv1_type},
      {"inside a value", l.kv1_value + 1, "kv[1] 'test.u32'.value", l.kv1_value},
      {"inside an array elem_type", l.kv2_elem_type + 1, "kv[2] 'test.arr'.value.elem_type",
       l.kv2_elem_type},
      {"inside an array count", l.kv2_count + 5, "kv[2] 'test.arr'.value.count", l.kv2_count},
      {"inside a tensor name length", l.ta + 1, "tensor[0].name.length", l.ta},
      {"inside n_dims", NDimsAt(l.ta, "a") + 1, "tensor 'a'.n_dims", NDimsAt(l.ta, "a")},
      {"inside ne[0]", DimAt(l.ta, "a", 0) + 7, "tensor 'a'.ne[0]", DimAt(l.ta, "a", 0)},
      {"inside ne[1]", DimAt(l.tb, "bb", 1) + 1, "tensor 'bb'.ne[1]", DimAt(l.tb, "bb", 1)},
      {"inside a tensor type", TypeAt(l.ta, "a", 1) + 3, "tensor 'a'.type", TypeAt(l.ta, "a", 1)},
      {"inside a tensor offset", OffsetAt(l.ta, "a", 1) + 4, "tensor 'a'.offset",
       OffsetAt(l.ta, "a", 1)},
      {"after the tensor infos", l.header_end, "data section", l.header_end},
      {"inside the padding", l.data_offset - 1, "data section", l.header_end},
      {"before the data section", l.data_offset, "tensor 'a' data", l.data_offset},
      {"inside the first tensor's data", l.data_offset + 17, "tensor 'a' data", l.data_offset},
      {"inside the last tensor's data", l.data_offset + 40, "tensor 'bb' data", l.data_offset + 32},
      {"one byte short", l.bytes.size() - 1, "tensor 'bb' data", l.data_offset + 32},
  };
  ASSERT_LT(l.header_end, l.data_offset) << "the layout needs padding to test a cut inside it";
  for (const Cut& c : cuts) {
    SCOPED_TRACE(::testing::Message() << c.what << " (cut at byte " << c.at << ")");
    EXPECT_TRUE(Rejects(l.bytes.Prefix(c.at), ErrorCode::kTruncated, c.field, c.offset));
  }
}

// Cuts inside a variable-length field (key bytes, string value bytes, array
// elements) or right after the header's counts: the file ends before a
// length or count it states is satisfied. That is a truncated file, and an
// auditor must say so (an interrupted download is the common cause), not
// kTooLarge, which is for lengths no file could hold. The error names the
// field whose length ran out, at the field's start (its length/count) or at
// the first missing byte.
TEST(MalformedTruncation, InsideVariableLengthFieldsIsTruncatedNotTooLarge) {
  const Layout l = BuildLayout();
  struct Cut {
    const char* what;
    uint64_t at;
    std::vector<std::string> fields;  // any of these
    std::vector<uint64_t> offsets;    // any of these
  };
  const std::vector<Cut> cuts = {
      {"right after the counts", 24, {"header.n_kv", "header.n_tensors", "kv[0]"}, {8, 16, 24}},
      {"inside the first key", 24 + 8 + 5, {"header.n_kv", "kv[0].key"}, {8, 16, 24, 32}},
      {"inside a key", l.kv1 + 8 + 3, {"kv[1].key"}, {l.kv1, l.kv1 + 8}},
      {"inside array elements",
       l.kv2_elems + 3,
       {"kv[2] 'test.arr'.value"},
       {l.kv2_count, l.kv2_elems}},
      {"inside a string value",
       l.kv3_value + 8 + 4,
       {"kv[3] 'test.str'.value"},
       {l.kv3_value, l.kv3_value + 8}},
      {"inside a tensor name", l.tb + 8 + 1, {"tensor[1].name"}, {l.tb, l.tb + 8}},
  };
  for (const Cut& c : cuts) {
    SCOPED_TRACE(::testing::Message() << c.what << " (cut at byte " << c.at << ")");
    const std::vector<uint8_t> prefix = l.bytes.Prefix(c.at);
    const Result<GgufFile> r = GgufFile::Parse(std::span<const uint8_t>(prefix));
    ASSERT_FALSE(r.ok());
    const Error& e = r.error();
    EXPECT_EQ(e.code, ErrorCode::kTruncated) << e.Message();
    bool field_ok = false;
    for (const std::string& f : c.fields) field_ok |= e.field.find(f) != std::string::npos;
    EXPECT_TRUE(field_ok) << e.Message();
    bool offset_ok = false;
    for (uint64_t o : c.offsets) offset_ok |= e.offset == o;
    EXPECT_TRUE(offset_ok) << e.Message();
  }
}

// Every prefix of `file` (every byte through `header_bytes`, then every
// `data_step` bytes and the last few bytes) must fail to parse, without
// crashing, as kTruncated (no other code is more specific for a valid file
// cut short), at an offset inside the prefix. Collected rather than asserted
// per cut so that a regression reads as one summary, not thousands of lines.
struct PrefixSweep {
  std::map<ErrorCode, std::pair<uint64_t, std::vector<uint64_t>>> by_code;  // count, first cuts
  std::vector<uint64_t> ok_cuts;             // prefixes that parsed OK
  std::vector<std::string> outside_offsets;  // errors pointing past the prefix
  uint64_t n_cuts = 0;

  std::string Summary() const {
    std::ostringstream os;
    for (const auto& [code, v] : by_code) {
      os << "\n  " << ErrorCodeName(code) << ": " << v.first << " prefixes, e.g. cut at";
      for (uint64_t at : v.second) os << " " << at;
    }
    if (!ok_cuts.empty()) {
      os << "\n  parsed OK, e.g. cut at";
      for (uint64_t at : ok_cuts) os << " " << at;
    }
    for (const std::string& m : outside_offsets) os << "\n  " << m;
    return os.str();
  }
};

PrefixSweep SweepPrefixes(std::span<const uint8_t> file, uint64_t header_bytes,
                          uint64_t data_step) {
  std::set<uint64_t> cuts;
  for (uint64_t n = 0; n <= header_bytes && n < file.size(); ++n) cuts.insert(n);
  for (uint64_t n = header_bytes + 1; n < file.size(); n += data_step) cuts.insert(n);
  for (uint64_t back = 1; back <= 8 && back <= file.size(); ++back) {
    cuts.insert(file.size() - back);
  }
  PrefixSweep s;
  for (uint64_t n : cuts) {
    ++s.n_cuts;
    // A fresh copy, so AddressSanitizer catches any read past the prefix.
    const std::vector<uint8_t> prefix(file.begin(), file.begin() + n);
    const Result<GgufFile> r = GgufFile::Parse(std::span<const uint8_t>(prefix));
    if (r.ok()) {
      if (s.ok_cuts.size() < 8) s.ok_cuts.push_back(n);
      continue;
    }
    auto& entry = s.by_code[r.error().code];
    ++entry.first;
    if (entry.second.size() < 6) entry.second.push_back(n);
    if (r.error().offset > n && s.outside_offsets.size() < 6) {
      s.outside_offsets.push_back("cut at " + std::to_string(n) + ": " + r.error().Message());
    }
  }
  return s;
}

void ExpectEveryPrefixTruncated(const PrefixSweep& s) {
  EXPECT_TRUE(s.ok_cuts.empty()) << "prefixes of a valid file parsed OK:" << s.Summary();
  EXPECT_TRUE(s.outside_offsets.empty()) << "errors past the end of the prefix:" << s.Summary();
  for (const auto& [code, v] : s.by_code) {
    EXPECT_EQ(code, ErrorCode::kTruncated)
        << ErrorCodeName(code) << " given for " << v.first << " of " << s.n_cuts
        << " prefixes of a valid file:" << s.Summary();
  }
}

TEST(MalformedTruncation, EveryPrefixOfStories260K) {
  const std::vector<uint8_t> bytes = ReadAll(Stories260KPath());
  if (bytes.empty()) GTEST_SKIP() << Stories260KPath() << " not found";
  const Result<GgufFile> r = GgufFile::Parse(std::span<const uint8_t>(bytes));
  ASSERT_TRUE(r.ok()) << Describe(r);
  // Every byte of the header and its padding, then every 997th of the 1.1 MB
  // of tensor data (a prime step, so cuts fall at every phase of a tensor).
  const PrefixSweep s = SweepPrefixes(bytes, r->data_offset(), 997);
  EXPECT_GT(s.n_cuts, r->data_offset());
  ExpectEveryPrefixTruncated(s);
}

TEST(MalformedTruncation, EveryPrefixOfHandBuiltFile) {
  const Layout l = BuildLayout();
  ExpectEveryPrefixTruncated(SweepPrefixes(l.bytes.span(), l.bytes.size(), 1));
}

// The same for a file of every metadata value type, nested arrays and
// tensors of several types, as the Writer lays it out.
TEST(MalformedTruncation, EveryPrefixOfWriterFile) {
  const std::vector<uint8_t> q4(2 * 18, 0x11), q8(34, 0x22), f16(6 * 2, 0x33);
  Writer w;
  ASSERT_TRUE(w.AddKv("u8", Value::U(ValueType::kUint8, 1)).ok());
  ASSERT_TRUE(w.AddKv("i16", Value::I(ValueType::kInt16, -2)).ok());
  ASSERT_TRUE(w.AddKv("f64", Value::F64(0.5)).ok());
  ASSERT_TRUE(w.AddKv("b", Value::Bool(true)).ok());
  ASSERT_TRUE(w.AddKv("s", Value::Str("text")).ok());
  ASSERT_TRUE(w.AddKv("strs", Value::StrArray({"x", "", "yz"})).ok());
  ASSERT_TRUE(w.AddKv("nested", Value::Array(ValueType::kArray,
                                             {Value::Array(ValueType::kUint32,
                                                           {Value::U(ValueType::kUint32, 5)}),
                                              Value::StrArray({"w"})}))
                  .ok());
  ASSERT_TRUE(w.AddKv("general.alignment", Value::U(ValueType::kUint32, 16)).ok());
  ASSERT_TRUE(w.AddTensor("q4", GgmlType::kQ4_0, {32, 2}, q4).ok());
  ASSERT_TRUE(w.AddTensor("q8", GgmlType::kQ8_0, {32}, q8).ok());
  ASSERT_TRUE(w.AddTensor("h", GgmlType::kF16, {3, 2}, f16).ok());
  Result<std::vector<uint8_t>> bytes = w.Serialize();
  ASSERT_TRUE(bytes.ok());
  const Result<GgufFile> r = GgufFile::Parse(std::span<const uint8_t>(bytes.value()));
  ASSERT_TRUE(r.ok()) << Describe(r);
  // The padding after the last tensor is optional: a cut inside it leaves a
  // complete file. Every cut before the end of the last tensor's data is not.
  uint64_t data_end = 0;
  for (const TensorInfo& t : r->tensors()) {
    data_end = std::max(data_end, r->data_offset() + t.offset + t.n_bytes);
  }
  ASSERT_LT(data_end, bytes.value().size()) << "expected trailing padding to test";
  const std::span<const uint8_t> file = std::span<const uint8_t>(bytes.value()).first(data_end);
  ExpectEveryPrefixTruncated(SweepPrefixes(file, file.size(), 1));
  EXPECT_TRUE(GgufFile::Parse(file).ok());
}

// ---------------------------------------------------------------------------
// Memory: what the parser reserves must be paid for by the file's bytes and
// stay under the parser's 1 GiB metadata cap, whatever the counts claim.

// n_kv is checked against the bytes left at 13 bytes per record, while a
// KeyValue in memory is ~180 bytes: reserving n_kv of them up front costs ~14x
// the file. A 100 MiB file of zeros with the largest n_kv that passes the
// check would so reserve ~1.4 GiB, over the cap, before reading a single key.
// The file is rejected at kv[1] (a second empty key), so nothing beyond one
// record is ever needed.
TEST(MalformedMemory, KvCountDoesNotReserveBeyondTheMetadataCap) {
  constexpr uint64_t kFileSize = uint64_t{100} << 20;
  constexpr uint64_t kCap = uint64_t{1} << 30;
  Bytes b;
  b.Header(0, (kFileSize - 24) / 13);
  b.Zeros(kFileSize - 24);
  AllocationWatch watch(kCap);
  Result<GgufFile> r = Error{ErrorCode::kIo, "", 0, "", ""};
  try {
    r = GgufFile::Parse(b.span());
  } catch (const std::bad_alloc&) {
    ADD_FAILURE() << "Parse of a " << kFileSize << "-byte file asked for a single allocation of "
                  << watch.largest() << " bytes (over the 1 GiB metadata cap)";
    return;
  }
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kDuplicateKey) << r.error().Message();
  EXPECT_LT(watch.largest(), size_t{64} << 20);
}

// Same for tensors: n_tensors is checked at 32 bytes per record, a
// TensorInfo in memory is ~120 bytes.
TEST(MalformedMemory, TensorCountReservationIsProportionate) {
  constexpr uint64_t kFileSize = uint64_t{16} << 20;
  Bytes b;
  b.Header((kFileSize - 24) / 32, 0);
  b.Zeros(kFileSize - 24);
  AllocationWatch watch;
  const Result<GgufFile> r = GgufFile::Parse(b.span());
  ASSERT_FALSE(r.ok());
  // The first record is an empty name with n_dims 0.
  EXPECT_EQ(r.error().code, ErrorCode::kBadDims) << r.error().Message();
  // Four bytes of memory per byte of file is what a string array may cost;
  // a count no record has backed yet should not cost more.
  EXPECT_LE(watch.largest(), 4 * kFileSize)
      << "largest allocation for a " << kFileSize << "-byte file";
}

// ---------------------------------------------------------------------------
// Valid files the parser must accept.

std::span<const uint8_t> AsBytes(const std::vector<float>& v) {
  return {reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(float)};
}

TEST(ValidEdgeCases, NestedArraysWithinTheLimitKeepTheirValues) {
  // kMaxArrayDepth levels: the innermost holds int32 {1, -2, 3}.
  Value v = Value::Array(ValueType::kInt32,
                         {Value::I(ValueType::kInt32, 1), Value::I(ValueType::kInt32, -2),
                          Value::I(ValueType::kInt32, 3)});
  for (int i = 1; i < kMaxArrayDepth; ++i) v = Value::Array(ValueType::kArray, {v, v});
  // An array of string arrays next to it.
  const Value strings =
      Value::Array(ValueType::kArray,
                   {Value::StrArray({"a", "bc"}), Value::StrArray({}), Value::StrArray({"d"})});
  Writer w;
  ASSERT_TRUE(w.AddKv("deep", v).ok());
  ASSERT_TRUE(w.AddKv("strings", strings).ok());
  Result<std::vector<uint8_t>> bytes = w.Serialize();
  ASSERT_TRUE(bytes.ok());
  const Result<GgufFile> r = GgufFile::Parse(std::span<const uint8_t>(bytes.value()));
  ASSERT_TRUE(r.ok()) << Describe(r);

  const KeyValue* deep = r->FindKey("deep");
  ASSERT_NE(deep, nullptr);
  Value cur = deep->value;
  for (int level = 1; level < kMaxArrayDepth; ++level) {
    ASSERT_EQ(cur.type, ValueType::kArray);
    ASSERT_EQ(cur.elem_type, ValueType::kArray) << "level " << level;
    ASSERT_EQ(cur.array_size(), 2u);
    cur = cur.ArrayItem(1);
  }
  ASSERT_EQ(cur.elem_type, ValueType::kInt32);
  ASSERT_EQ(cur.array_size(), 3u);
  EXPECT_EQ(cur.ArrayItem(0).AsInt(), 1);
  EXPECT_EQ(cur.ArrayItem(1).AsInt(), -2);
  EXPECT_EQ(cur.ArrayItem(2).AsInt(), 3);

  const KeyValue* s = r->FindKey("strings");
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(s->value.array_size(), 3u);
  EXPECT_EQ(s->value.ArrayItem(0).strings, (std::vector<std::string>{"a", "bc"}));
  EXPECT_EQ(s->value.ArrayItem(1).array_size(), 0u);
  EXPECT_EQ(s->value.ArrayItem(2).ArrayItem(0).s, "d");
}

TEST(ValidEdgeCases, NestedArraysAtExactlyTheLimitByteLevel) {
  Bytes b;
  b.Header(0, 1);
  AppendNestedArrays(b, kMaxArrayDepth, 1);
  const Result<GgufFile> r = GgufFile::Parse(b.span());
  ASSERT_TRUE(r.ok()) << Describe(r);
  Value cur = r->metadata()[0].value;
  for (int level = 1; level < kMaxArrayDepth; ++level) cur = cur.ArrayItem(0);
  ASSERT_EQ(cur.array_size(), 3u);
  EXPECT_EQ(cur.ArrayItem(2).AsUint(), 9u);
}

TEST(ValidEdgeCases, Version2Parses) {
  const std::vector<float> data = {1, 2, 3, 4, 5, 6, 7, 8};
  Writer w(2);
  ASSERT_TRUE(w.AddKv("general.architecture", Value::Str("llama")).ok());
  ASSERT_TRUE(w.AddTensor("w", GgmlType::kF32, {4, 2}, AsBytes(data)).ok());
  Result<std::vector<uint8_t>> bytes = w.Serialize();
  ASSERT_TRUE(bytes.ok());
  const Result<GgufFile> r = GgufFile::Parse(std::span<const uint8_t>(bytes.value()));
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_EQ(r->version(), 2u);
  EXPECT_EQ(r->GetString("general.architecture"), "llama");
  ASSERT_EQ(r->tensors().size(), 1u);
  const std::span<const uint8_t> got = r->TensorData(r->tensors()[0]);
  ASSERT_EQ(got.size(), 32u);
  EXPECT_EQ(std::memcmp(got.data(), data.data(), 32), 0);
}

TEST(ValidEdgeCases, Alignment64PlacesDataCorrectly) {
  const std::vector<float> a = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};  // 40 bytes: padded to 64
  const std::vector<float> c = {-1, -2, -3};
  Writer w;
  ASSERT_TRUE(w.AddKv("general.alignment", Value::U(ValueType::kUint32, 64)).ok());
  ASSERT_TRUE(w.AddTensor("a", GgmlType::kF32, {10}, AsBytes(a)).ok());
  ASSERT_TRUE(w.AddTensor("c", GgmlType::kF32, {3}, AsBytes(c)).ok());
  Result<std::vector<uint8_t>> bytes = w.Serialize();
  ASSERT_TRUE(bytes.ok());
  const Result<GgufFile> r = GgufFile::Parse(std::span<const uint8_t>(bytes.value()));
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_EQ(r->alignment(), 64u);
  EXPECT_EQ(r->data_offset() % 64, 0u);
  EXPECT_GE(r->data_offset(), r->header_end());
  EXPECT_LT(r->data_offset() - r->header_end(), 64u);
  const TensorInfo* ta = r->FindTensor("a");
  const TensorInfo* tc = r->FindTensor("c");
  ASSERT_NE(ta, nullptr);
  ASSERT_NE(tc, nullptr);
  EXPECT_EQ(ta->offset, 0u);
  EXPECT_EQ(tc->offset, 64u);
  const std::span<const uint8_t> da = r->TensorData(*ta);
  const std::span<const uint8_t> dc = r->TensorData(*tc);
  ASSERT_EQ(da.size(), 40u);
  ASSERT_EQ(dc.size(), 12u);
  EXPECT_EQ(da.data(), bytes.value().data() + r->data_offset());
  EXPECT_EQ(dc.data(), bytes.value().data() + r->data_offset() + 64);
  EXPECT_EQ(std::memcmp(da.data(), a.data(), 40), 0);
  EXPECT_EQ(std::memcmp(dc.data(), c.data(), 12), 0);
  EXPECT_TRUE(r->warnings().empty());
}

TEST(ValidEdgeCases, ZeroTensors) {
  Writer w;
  ASSERT_TRUE(w.AddKv("general.name", Value::Str("no weights")).ok());
  Result<std::vector<uint8_t>> bytes = w.Serialize();
  ASSERT_TRUE(bytes.ok());
  const Result<GgufFile> r = GgufFile::Parse(std::span<const uint8_t>(bytes.value()));
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_TRUE(r->tensors().empty());
  EXPECT_EQ(r->GetString("general.name"), "no weights");

  // The bare 24-byte header: no tensors, no metadata, no padding.
  Bytes b;
  b.Header(0, 0);
  const Result<GgufFile> bare = GgufFile::Parse(b.span());
  ASSERT_TRUE(bare.ok()) << Describe(bare);
  EXPECT_TRUE(bare->metadata().empty());
  EXPECT_TRUE(bare->tensors().empty());
  EXPECT_EQ(bare->header_end(), 24u);
}

// A zero-element tensor owns no bytes, so it overlaps nothing. gguf-py, llama.cpp
// and our Writer put it at the running offset, which is also where the next
// tensor starts: two tensors at one offset is the normal layout then.
TEST(ValidEdgeCases, ZeroSizeTensorsOverlapNothing) {
  // The Writer's layout, in every order: the empty tensor before and after.
  const std::vector<float> data(8, 1.0f);
  for (bool empty_first : {true, false}) {
    SCOPED_TRACE(empty_first);
    Writer w;
    if (empty_first) {
      ASSERT_TRUE(w.AddTensor("empty", GgmlType::kF32, {0}, {}).ok());
    }
    ASSERT_TRUE(w.AddTensor("w", GgmlType::kF32, {8}, AsBytes(data)).ok());
    if (!empty_first) {
      ASSERT_TRUE(w.AddTensor("empty", GgmlType::kF32, {0}, {}).ok());
    }
    Result<std::vector<uint8_t>> bytes = w.Serialize();
    ASSERT_TRUE(bytes.ok());
    const Result<GgufFile> r = GgufFile::Parse(std::span<const uint8_t>(bytes.value()));
    EXPECT_TRUE(r.ok()) << Describe(r);
  }
  // Many tensors, each followed by an empty one at the same offset: with more
  // than 16 records std::sort no longer keeps equal offsets in file order.
  {
    Writer w;
    for (int i = 0; i < 40; ++i) {
      ASSERT_TRUE(w.AddTensor("empty." + std::to_string(i), GgmlType::kF32, {0, 4}, {}).ok());
      ASSERT_TRUE(w.AddTensor("w." + std::to_string(i), GgmlType::kF32, {8}, AsBytes(data)).ok());
    }
    Result<std::vector<uint8_t>> bytes = w.Serialize();
    ASSERT_TRUE(bytes.ok());
    const Result<GgufFile> r = GgufFile::Parse(std::span<const uint8_t>(bytes.value()));
    EXPECT_TRUE(r.ok()) << Describe(r);
  }
  // Byte level: an empty tensor placed inside another's bytes shares none.
  {
    Bytes b;
    b.Header(2, 0);
    b.Tensor("w", {8}, kF32, 0);
    b.Tensor("empty", {0}, kF32, 0);
    b.PadTo(kDefaultAlignment);
    b.Zeros(32);
    const Result<GgufFile> r = GgufFile::Parse(b.span());
    EXPECT_TRUE(r.ok()) << Describe(r);
  }
}

TEST(ValidEdgeCases, Stories260KParses) {
  const std::vector<uint8_t> bytes = ReadAll(Stories260KPath());
  if (bytes.empty()) GTEST_SKIP() << Stories260KPath() << " not found";
  const Result<GgufFile> r = GgufFile::Parse(std::span<const uint8_t>(bytes));
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_EQ(r->version(), 3u);
  EXPECT_EQ(r->tensors().size(), 48u);
  EXPECT_EQ(r->metadata().size(), 19u);
  EXPECT_EQ(r->header_end(), 14152u);
  EXPECT_EQ(r->data_offset(), 14176u);
}

}  // namespace
}  // namespace ggufscope::gguf
