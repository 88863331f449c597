#include "gguf/value.h"

#include <cstring>
#include <limits>

namespace ggufscope::gguf {

std::string_view ValueTypeName(ValueType t) {
  switch (t) {
    case ValueType::kUint8: return "uint8";
    case ValueType::kInt8: return "int8";
    case ValueType::kUint16: return "uint16";
    case ValueType::kInt16: return "int16";
    case ValueType::kUint32: return "uint32";
    case ValueType::kInt32: return "int32";
    case ValueType::kFloat32: return "float32";
    case ValueType::kBool: return "bool";
    case ValueType::kString: return "string";
    case ValueType::kArray: return "array";
    case ValueType::kUint64: return "uint64";
    case ValueType::kInt64: return "int64";
    case ValueType::kFloat64: return "float64";
  }
  return "?";
}

uint32_t ScalarSize(ValueType t) {
  switch (t) {
    case ValueType::kUint8:
    case ValueType::kInt8:
    case ValueType::kBool: return 1;
    case ValueType::kUint16:
    case ValueType::kInt16: return 2;
    case ValueType::kUint32:
    case ValueType::kInt32:
    case ValueType::kFloat32: return 4;
    case ValueType::kUint64:
    case ValueType::kInt64:
    case ValueType::kFloat64: return 8;
    case ValueType::kString:
    case ValueType::kArray: return 0;
  }
  return 0;
}

Value Value::U(ValueType t, uint64_t v) {
  Value r;
  r.type = t;
  r.u = v;
  return r;
}
Value Value::I(ValueType t, int64_t v) {
  Value r;
  r.type = t;
  r.i = v;
  return r;
}
Value Value::F32(float v) {
  Value r;
  r.type = ValueType::kFloat32;
  r.f = v;
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  r.u = bits;  // the exact bits: a signalling NaN must survive a rewrite
  return r;
}
Value Value::F64(double v) {
  Value r;
  r.type = ValueType::kFloat64;
  r.f = v;
  std::memcpy(&r.u, &v, 8);
  return r;
}
Value Value::Bool(bool v) { return U(ValueType::kBool, v ? 1 : 0); }
Value Value::Str(std::string v) {
  Value r;
  r.type = ValueType::kString;
  r.s = std::move(v);
  return r;
}
namespace {

void AppendLe(std::vector<uint8_t>& out, uint64_t bits, uint32_t size) {
  for (uint32_t b = 0; b < size; ++b) out.push_back(static_cast<uint8_t>(bits >> (8 * b)));
}

uint64_t LoadLe(const uint8_t* p, uint32_t size) {
  uint64_t v = 0;
  for (uint32_t b = 0; b < size; ++b) v |= uint64_t{p[b]} << (8 * b);
  return v;
}

// The on-disk bits of a scalar value.
uint64_t ScalarBits(const Value& v) {
  switch (v.type) {
    case ValueType::kFloat32:
    case ValueType::kFloat64: return v.u;  // the stored bits
    case ValueType::kInt8:
    case ValueType::kInt16:
    case ValueType::kInt32:
    case ValueType::kInt64: return static_cast<uint64_t>(v.i);
    default: return v.u;
  }
}

}  // namespace

Value Value::Array(ValueType elem_type, const std::vector<Value>& items) {
  Value r;
  r.type = ValueType::kArray;
  r.elem_type = elem_type;
  for (const Value& item : items) {
    if (elem_type == ValueType::kString) {
      r.strings.push_back(item.s);
    } else if (elem_type == ValueType::kArray) {
      r.arrays.push_back(item);
    } else {
      AppendLe(r.raw, ScalarBits(item), ScalarSize(elem_type));
    }
  }
  return r;
}

Value Value::StrArray(std::vector<std::string> items) {
  Value r;
  r.type = ValueType::kArray;
  r.elem_type = ValueType::kString;
  r.strings = std::move(items);
  return r;
}

size_t Value::array_size() const {
  if (type != ValueType::kArray) return 0;
  if (elem_type == ValueType::kString) return strings.size();
  if (elem_type == ValueType::kArray) return arrays.size();
  const uint32_t size = ScalarSize(elem_type);
  return size == 0 ? 0 : raw.size() / size;
}

Value Value::FromBits(ValueType t, uint64_t bits) {
  switch (t) {
    case ValueType::kInt8: return I(t, static_cast<int8_t>(bits));
    case ValueType::kInt16: return I(t, static_cast<int16_t>(bits));
    case ValueType::kInt32: return I(t, static_cast<int32_t>(bits));
    case ValueType::kInt64: return I(t, static_cast<int64_t>(bits));
    case ValueType::kFloat32: {
      const uint32_t b = static_cast<uint32_t>(bits);
      float f;
      std::memcpy(&f, &b, 4);
      Value r = F32(f);
      r.u = b;  // F32() may have seen a quieted NaN
      return r;
    }
    case ValueType::kFloat64: {
      double d;
      std::memcpy(&d, &bits, 8);
      Value r = F64(d);
      r.u = bits;
      return r;
    }
    default: return U(t, bits);
  }
}

Value Value::ArrayItem(size_t idx) const {
  if (elem_type == ValueType::kString) return Str(strings[idx]);
  if (elem_type == ValueType::kArray) return arrays[idx];
  const uint32_t size = ScalarSize(elem_type);
  return FromBits(elem_type, LoadLe(raw.data() + idx * size, size));
}

bool Value::is_integer() const {
  switch (type) {
    case ValueType::kUint8:
    case ValueType::kUint16:
    case ValueType::kUint32:
    case ValueType::kUint64:
    case ValueType::kInt8:
    case ValueType::kInt16:
    case ValueType::kInt32:
    case ValueType::kInt64: return true;
    default: return false;
  }
}

static bool IsUnsigned(ValueType t) {
  return t == ValueType::kUint8 || t == ValueType::kUint16 || t == ValueType::kUint32 ||
         t == ValueType::kUint64;
}

std::optional<int64_t> Value::AsInt() const {
  if (!is_integer()) return std::nullopt;
  if (IsUnsigned(type)) {
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  return i;
}

std::optional<uint64_t> Value::AsUint() const {
  if (!is_integer()) return std::nullopt;
  if (IsUnsigned(type)) return u;
  if (i < 0) return std::nullopt;
  return static_cast<uint64_t>(i);
}

std::optional<double> Value::AsDouble() const {
  if (type == ValueType::kFloat32 || type == ValueType::kFloat64) return f;
  if (IsUnsigned(type)) return static_cast<double>(u);
  if (is_integer()) return static_cast<double>(i);
  return std::nullopt;
}

}  // namespace ggufscope::gguf
