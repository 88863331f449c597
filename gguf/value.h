// GGUF metadata values. Strings are owned (a tokenizer's 150k tokens cost a
// few MB), so a Value outlives the file it came from and the writer can take
// values built in code.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ggufscope::gguf {

// On-disk ids of GGUF metadata value types.
enum class ValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

inline constexpr uint32_t kValueTypeCount = 13;

std::string_view ValueTypeName(ValueType t);  // "uint32", "string", "array", ...

// Bytes a scalar of this type occupies on disk; 0 for string and array.
uint32_t ScalarSize(ValueType t);

struct Value {
  ValueType type = ValueType::kUint8;
  // Scalars: exactly one of these is meaningful, chosen by `type`.
  uint64_t u = 0;   // kUint8/16/32/64 and kBool; for kFloat32/64 the raw bits
  int64_t i = 0;    // kInt8/16/32/64
  double f = 0.0;   // kFloat32 (exactly representable) and kFloat64
  std::string s;    // kString (raw bytes, not necessarily valid UTF-8)
  // kArray: the element type and the elements, stored compactly so that
  // memory stays proportional to the file: scalar elements as their raw
  // little-endian bytes, strings as strings, nested arrays as Values.
  ValueType elem_type = ValueType::kUint8;
  std::vector<uint8_t> raw;          // scalar elements, ScalarSize(elem_type) bytes each
  std::vector<std::string> strings;  // string elements
  std::vector<Value> arrays;         // nested array elements (each of type kArray)

  static Value U(ValueType t, uint64_t v);
  static Value I(ValueType t, int64_t v);
  static Value F32(float v);
  static Value F64(double v);
  static Value Bool(bool v);
  // A scalar of type t from its on-disk little-endian bits.
  static Value FromBits(ValueType t, uint64_t bits);
  static Value Str(std::string v);
  // An array of scalars, strings or arrays; every item must have elem_type.
  static Value Array(ValueType elem_type, const std::vector<Value>& items);
  static Value StrArray(std::vector<std::string> items);

  size_t array_size() const;
  // Element i of an array as a standalone Value (i < array_size()).
  Value ArrayItem(size_t i) const;

  bool is_integer() const;
  // Integer value as signed/unsigned, nullopt if not an integer type or out of range.
  std::optional<int64_t> AsInt() const;
  std::optional<uint64_t> AsUint() const;
  std::optional<double> AsDouble() const;  // any numeric type
};

struct KeyValue {
  std::string key;
  Value value;
  uint64_t offset = 0;  // where the key's length field starts in the file (0 if built in code)
};

}  // namespace ggufscope::gguf
