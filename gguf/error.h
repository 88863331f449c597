// Errors as values. A malformed file is the normal case for an auditing tool:
// every problem the parser finds becomes an Error naming the field, the byte
// offset where it sits, what was expected and what the file holds.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

namespace ggufscope::gguf {

enum class ErrorCode {
  kIo,                 // the file could not be opened, mapped or written
  kBadMagic,           // not a GGUF file
  kBigEndian,          // a big-endian GGUF file (not supported)
  kUnsupportedVersion, // version other than 2 or 3
  kTruncated,          // a field or tensor extends past the end of the file
  kTooLarge,           // a count or length that the file cannot possibly hold
  kBadValueType,       // unknown metadata value type
  kNestingTooDeep,     // arrays of arrays beyond kMaxArrayDepth
  kDuplicateKey,
  kBadAlignment,       // general.alignment zero, not a power of two, or not UINT32
  kBadDims,            // n_dims outside 1..4, negative dims, element count overflow
  kUnknownType,        // tensor type id past the ggml table
  kRemovedType,        // tensor type id that ggml removed
  kBadBlockMultiple,   // row length not a multiple of the type's block size
  kDuplicateTensor,
  kMisalignedOffset,
  kOverlap,            // two tensors share bytes
  kUnsupported,        // a valid file using something this build cannot do
  kInvalidArgument,    // a caller asked for something impossible (writer misuse)
  kBadJson,            // a JSON header or side file (safetensors, config.json) that is not valid JSON or not the schema
};

std::string_view ErrorCodeName(ErrorCode code);

struct Error {
  // `offset` of an error that is not at a position in a file: an I/O error,
  // a caller's argument, a JSON side file's field, a device (the message
  // then names no byte).
  static constexpr uint64_t kNoOffset = ~uint64_t{0};

  ErrorCode code;
  std::string field;     // e.g. "header.n_tensors", "kv[3].value", "tensor 'blk.0.attn_q.weight'.offset"
  uint64_t offset = 0;   // byte offset in the file where the field starts, or kNoOffset
  std::string expected;  // what a valid file holds there
  std::string actual;    // what this file holds

  bool has_offset() const { return offset != kNoOffset; }
  // One line: "<code>: <field> at byte <offset>: expected <expected>, found <actual>"
  // (without " at byte <offset>" when the error has no position).
  std::string Message() const;
};

// Minimal expected<T, Error>: C++20 has no std::expected.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}    // NOLINT: implicit by design

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return Get(); }
  const T& value() const& { return const_cast<Result*>(this)->Get(); }
  T&& value() && { return std::move(Get()); }
  T* operator->() { return &Get(); }
  const T* operator->() const { return &const_cast<Result*>(this)->Get(); }
  T& operator*() { return Get(); }

  const Error& error() const {
    if (ok()) Die("error() on a Result holding a value");
    return std::get<1>(v_);
  }

 private:
  T& Get() {
    if (!ok()) Die(std::get<1>(v_).Message().c_str());
    return std::get<0>(v_);
  }
  [[noreturn]] static void Die(const char* what) {
    std::fprintf(stderr, "%s:%d: Result misuse: %s\n", __FILE__, __LINE__, what);
    std::abort();
  }
  std::variant<T, Error> v_;
};

// Result<void>.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_{ErrorCode::kIo, "", 0, "", ""};
  bool ok_ = true;
};

}  // namespace ggufscope::gguf
