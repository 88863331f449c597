// The numeric half of inspect/corrupt: how each type stores its numbers
// (plain elements, block scale fields in f16/f32/E8M0/UE4M3, IQ1_M's spread
// d), and the modes that rewrite them in place: --scale, --bitflip, --nan,
// --inf, --zero-rows.
#include <fmt/format.h>

#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <string_view>

#include "gguf/block_scales.h"
#include "gguf/dequant.h"
#include "inspect/corrupt_internal.h"
#include "inspect/info.h"

namespace ggufscope::inspect::corrupt_internal {

using gguf::Error;
using gguf::ErrorCode;
using gguf::GgmlType;
using gguf::ScaleKind;
using gguf::Status;
using gguf::TensorInfo;
using gguf::Value;

Error BadArg(std::string field, std::string expected, std::string actual) {
  return Error{ErrorCode::kInvalidArgument, std::move(field), Error::kNoOffset, std::move(expected),
               std::move(actual)};
}
// A mode the tensor's type cannot express; `why` is the whole explanation.
Error Refused(std::string field, std::string why) {
  return Error{ErrorCode::kUnsupported, std::move(field), Error::kNoOffset, "", std::move(why)};
}

// Names come from the file: quoted and escaped so a hostile one can't garble a terminal.
std::string Quoted(const std::string& s) { return ValueText(Value::Str(s), InfoOptions{}); }

std::string TensorLabel(const TensorInfo& t) {
  return fmt::format("tensor {} ({})", Quoted(t.name), gguf::TypeName(t.type));
}

// Round to nearest even from double into a binary format with `exp_bits`
// exponent and `man_bits` mantissa bits (IEEE-style bias, Inf/NaN at the top
// exponent). nearbyint rounds ties to even in the default rounding mode.
uint32_t EncodeBinary(double x, int exp_bits, int man_bits) {
  const uint32_t sign = std::signbit(x) ? 1u << (exp_bits + man_bits) : 0u;
  const uint32_t exp_all = (1u << exp_bits) - 1;
  if (std::isnan(x)) return sign | (exp_all << man_bits) | (1u << (man_bits - 1));
  const double a = std::fabs(x);
  const int bias = (1 << (exp_bits - 1)) - 1;
  const int emin = 1 - bias;
  if (a < std::ldexp(1.0, emin)) {
    // Subnormal: a multiple of 2^(emin - man_bits). A result of 1 << man_bits
    // is the smallest normal, whose bits are exactly that number.
    return sign | static_cast<uint32_t>(std::nearbyint(std::ldexp(a, man_bits - emin)));
  }
  if (std::isinf(a)) return sign | (exp_all << man_bits);
  int e = 0;
  std::frexp(a, &e);  // a = m * 2^e with m in [0.5, 1)
  int exp = e - 1;
  double q = std::nearbyint(std::ldexp(a, man_bits - exp));  // in [2^man_bits, 2^(man_bits+1)]
  if (q == std::ldexp(1.0, man_bits + 1)) {
    q = std::ldexp(1.0, man_bits);
    ++exp;
  }
  if (exp > bias) return sign | (exp_all << man_bits);
  return sign | (static_cast<uint32_t>(exp + bias) << man_bits) |
         (static_cast<uint32_t>(q) - (1u << man_bits));
}

bool IsFloatType(GgmlType t) {
  return t == GgmlType::kF32 || t == GgmlType::kF16 || t == GgmlType::kBF16 || t == GgmlType::kF64;
}
bool IsIntType(GgmlType t) {
  return t == GgmlType::kI8 || t == GgmlType::kI16 || t == GgmlType::kI32 || t == GgmlType::kI64;
}

namespace {
uint64_t LoadWord(const uint8_t* p, size_t n) {
  uint64_t w = 0;
  std::memcpy(&w, p, n);  // little-endian host (checked by CMake)
  return w;
}
}  // namespace

void StoreWord(uint8_t* p, size_t n, uint64_t w) { std::memcpy(p, &w, n); }

// Element value of a plain (float or integer) type.
double LoadElement(GgmlType t, const uint8_t* p) {
  const uint64_t w = LoadWord(p, gguf::Traits(t).type_size);
  switch (t) {
    case GgmlType::kF32:
      return std::bit_cast<float>(static_cast<uint32_t>(w));
    case GgmlType::kF16:
      return gguf::HalfToFloat(static_cast<uint16_t>(w));
    case GgmlType::kBF16:
      return gguf::Bf16ToFloat(static_cast<uint16_t>(w));
    case GgmlType::kF64:
      return std::bit_cast<double>(w);
    case GgmlType::kI8:
      return static_cast<int8_t>(w);
    case GgmlType::kI16:
      return static_cast<int16_t>(w);
    case GgmlType::kI32:
      return static_cast<int32_t>(w);
    case GgmlType::kI64:
      return static_cast<double>(static_cast<int64_t>(w));
    default:
      return 0.0;
  }
}

// The stored word of v in float type t, rounded to nearest even.
uint64_t FloatWord(GgmlType t, double v) {
  switch (t) {
    case GgmlType::kF32:
      return std::bit_cast<uint32_t>(static_cast<float>(v));
    case GgmlType::kF16:
      return DoubleToHalf(v);
    case GgmlType::kBF16:
      return DoubleToBf16(v);
    default:
      return std::bit_cast<uint64_t>(v);
  }
}

std::string DescribeElement(GgmlType t, const uint8_t* p) {
  const uint32_t size = gguf::Traits(t).type_size;
  const uint64_t w = LoadWord(p, size);
  const double v = LoadElement(t, p);
  const std::string value = t == GgmlType::kF64 ? fmt::format("{}", v)
                            : IsIntType(t)      ? fmt::format("{}", static_cast<int64_t>(v))
                                                : fmt::format("{}", static_cast<float>(v));
  return fmt::format("{} (0x{:0{}x})", value, w, 2 * size);
}

namespace {

// ---------------------------------------------------------------- block scales

// Where a quantized type keeps its scale fields. IQ1_M is the one type whose
// f16 d is not a plain field: its 16 bits are the top nibbles of the four u16
// sc[] words at byte 48 (sc[0] holding the lowest nibble), so it is read and
// written through that spread.
struct ScaleLayout {
  ScaleKind kind = ScaleKind::kNone;
  int count = 0;
  std::array<uint16_t, 4> offsets{};
  bool iq1m_spread = false;
};

ScaleLayout LayoutOf(GgmlType t) {
  if (t == GgmlType::kIQ1_M) return {ScaleKind::kF16, 1, {48}, true};
  const gguf::BlockScales b = gguf::ScalesOf(t);
  return {b.kind, b.count, b.offsets, false};
}

int FieldBits(ScaleKind k) {
  switch (k) {
    case ScaleKind::kF16:
      return 16;
    case ScaleKind::kF32:
      return 32;
    case ScaleKind::kE8M0:
    case ScaleKind::kUE4M3:
      return 8;
    case ScaleKind::kNone:
      return 0;
  }
  return 0;
}

std::string_view KindName(ScaleKind k) {
  switch (k) {
    case ScaleKind::kF16:
      return "f16";
    case ScaleKind::kF32:
      return "f32";
    case ScaleKind::kE8M0:
      return "E8M0";
    case ScaleKind::kUE4M3:
      return "UE4M3";
    case ScaleKind::kNone:
      return "none";
  }
  return "none";
}

std::string FieldName(GgmlType t, int k) {
  switch (t) {
    case GgmlType::kMXFP4:
      return "e";
    case GgmlType::kNVFP4:
      return fmt::format("d[{}]", k);
    case GgmlType::kQ4_1:
    case GgmlType::kQ5_1:
      return k == 0 ? "d" : "m";
    case GgmlType::kQ8_1:
      return k == 0 ? "d" : "s";
    case GgmlType::kQ2_K:
    case GgmlType::kQ4_K:
    case GgmlType::kQ5_K:
      return k == 0 ? "d" : "dmin";
    default:
      return "d";
  }
}

uint32_t LoadField(const ScaleLayout& l, const uint8_t* block, int k) {
  if (l.iq1m_spread) {
    uint32_t d = 0;
    for (int i = 0; i < 4; ++i) d |= (LoadWord(block + 48 + 2 * i, 2) >> 12) << (4 * i);
    return d;
  }
  return static_cast<uint32_t>(LoadWord(block + l.offsets[k], FieldBits(l.kind) / 8));
}

void StoreField(const ScaleLayout& l, uint8_t* block, int k, uint32_t bits) {
  if (l.iq1m_spread) {
    for (int i = 0; i < 4; ++i) {
      const uint64_t sc = LoadWord(block + 48 + 2 * i, 2);
      StoreWord(block + 48 + 2 * i, 2, (sc & 0x0FFF) | (((bits >> (4 * i)) & 0xF) << 12));
    }
    return;
  }
  StoreWord(block + l.offsets[k], FieldBits(l.kind) / 8, bits);
}

// UE4M3 as a number (bias 7, 3 mantissa bits, bit 7 unused). ggml decodes the
// E4M3 NaN pattern 0x7F as 0, and so does this.
double Ue4m3Value(uint32_t x) {
  x &= 0x7F;
  if (x == 0x7F) return 0.0;
  const int exp = static_cast<int>(x >> 3);
  const int man = static_cast<int>(x & 7);
  return exp == 0 ? std::ldexp(man, -9) : std::ldexp(8 + man, exp - 10);
}

// The UE4M3 byte holding exactly v (keeping bit 7 of `old`), or nullopt.
std::optional<uint32_t> Ue4m3Exact(double v, uint32_t old) {
  for (uint32_t x = 0; x < 0x7F; ++x) {
    if (Ue4m3Value(x) == v) return (old & 0x80) | x;
  }
  return std::nullopt;
}

std::string DescribeField(ScaleKind k, uint32_t bits) {
  switch (k) {
    case ScaleKind::kF16:
      return fmt::format("{} (0x{:04x})", gguf::HalfToFloat(static_cast<uint16_t>(bits)), bits);
    case ScaleKind::kF32:
      return fmt::format("{} (0x{:08x})", std::bit_cast<float>(bits), bits);
    case ScaleKind::kE8M0:
      return bits == 0xFF ? "nan (0xff)"
                          : fmt::format("2^{} (0x{:02x})", static_cast<int>(bits) - 127, bits);
    case ScaleKind::kUE4M3:
      return fmt::format("{} (0x{:02x})", Ue4m3Value(bits), bits);
    case ScaleKind::kNone:
      break;
  }
  return fmt::format("0x{:x}", bits);
}

// k where s == 2^k, or nullopt.
std::optional<int> PowerOfTwo(double s) {
  if (!(s > 0) || !std::isfinite(s)) return std::nullopt;
  int e = 0;
  if (std::frexp(s, &e) != 0.5) return std::nullopt;
  return e - 1;
}

}  // namespace

// ---------------------------------------------------------------- modes

Status ScaleTensor(const TensorInfo& t, std::span<uint8_t> data, double scale, std::string* line) {
  const std::string field = fmt::format("--scale {} on {}", scale, TensorLabel(t));
  if (!std::isfinite(scale)) return BadArg(field, "a finite factor", fmt::format("{}", scale));
  const gguf::TypeTraits& tr = gguf::Traits(t.type);
  if (IsFloatType(t.type)) {
    const std::string before = t.n_elements ? DescribeElement(t.type, data.data()) : "";
    uint64_t overflowed = 0;
    for (uint64_t i = 0; i < t.n_elements; ++i) {
      uint8_t* p = data.data() + i * tr.type_size;
      const double v = LoadElement(t.type, p);
      StoreWord(p, tr.type_size, FloatWord(t.type, v * scale));
      overflowed += std::isfinite(v) && !std::isfinite(LoadElement(t.type, p));
    }
    *line = fmt::format("scale: {} x {} on all {} elements", TensorLabel(t), scale, t.n_elements);
    if (t.n_elements)
      *line += fmt::format(": element 0 {} -> {}", before, DescribeElement(t.type, data.data()));
    if (overflowed) *line += fmt::format("; {} elements overflowed to Inf", overflowed);
    return {};
  }
  if (!tr.is_quantized)
    return Refused(field, "integer tensors are not scaled (only float and quantized types)");
  if (t.type == GgmlType::kIQ1_M) {
    return Refused(field,
                   "IQ1_M spreads its f16 d over four nibbles and is not scaled; "
                   "use --bitflip, --nan, --inf or --noise on it");
  }
  const ScaleLayout l = LayoutOf(t.type);
  const std::optional<int> k2 = PowerOfTwo(scale);
  if ((l.kind == ScaleKind::kE8M0 || l.kind == ScaleKind::kUE4M3) && !k2) {
    return Refused(
        field, fmt::format("{} scales hold only (a subset of) powers of two, so only a factor 2^k "
                           "(0.25, 0.5, 2, 4, ...) scales them exactly",
                           KindName(l.kind)));
  }
  const uint64_t n_blocks = t.n_elements / tr.block_size;
  uint64_t overflowed = 0, underflowed = 0;
  std::string first;
  for (uint64_t b = 0; b < n_blocks; ++b) {
    uint8_t* block = data.data() + b * tr.type_size;
    for (int k = 0; k < l.count; ++k) {
      const uint32_t old = LoadField(l, block, k);
      uint32_t bits = old;
      switch (l.kind) {
        case ScaleKind::kF16: {
          const double v = gguf::HalfToFloat(static_cast<uint16_t>(old));
          bits = DoubleToHalf(v * scale);
          const double nv = gguf::HalfToFloat(static_cast<uint16_t>(bits));
          overflowed += std::isfinite(v) && !std::isfinite(nv);
          underflowed += v != 0 && scale != 0 && nv == 0;
          break;
        }
        case ScaleKind::kF32: {
          const double v = std::bit_cast<float>(old);
          const float nv = static_cast<float>(v * scale);
          bits = std::bit_cast<uint32_t>(nv);
          overflowed += std::isfinite(v) && !std::isfinite(nv);
          underflowed += v != 0 && scale != 0 && nv == 0;
          break;
        }
        case ScaleKind::kE8M0: {
          if (old == 0xFF) break;  // NaN stays NaN
          const int e = static_cast<int>(old) + *k2;
          if (e < 0 || e > 254) {
            return Refused(
                field, fmt::format("block {} has exponent 2^{}; times 2^{} it leaves E8M0's range "
                                   "2^-127..2^127",
                                   b, static_cast<int>(old) - 127, *k2));
          }
          bits = static_cast<uint32_t>(e);
          break;
        }
        case ScaleKind::kUE4M3: {
          const std::optional<uint32_t> x = Ue4m3Exact(Ue4m3Value(old) * scale, old);
          if (!x) {
            return Refused(field,
                           fmt::format("block {} scale {} is {}; times {} it is not a UE4M3 value "
                                       "(2^-9..448)",
                                       b, FieldName(t.type, k), Ue4m3Value(old), scale));
          }
          if ((old & 0x7F) != 0x7F) bits = *x;  // the NaN pattern (read as 0) is left alone
          break;
        }
        case ScaleKind::kNone:
          break;
      }
      if (b == 0 && k == 0)
        first = fmt::format("{} -> {}", DescribeField(l.kind, old), DescribeField(l.kind, bits));
      StoreField(l, block, k, bits);
    }
  }
  std::string names = FieldName(t.type, 0);
  for (int k = 1; k < l.count; ++k) names += ", " + FieldName(t.type, k);
  *line = fmt::format("scale: {} x {}: {} {} scale fields ({} in each of {} blocks) scaled",
                      TensorLabel(t), scale, n_blocks * l.count, KindName(l.kind), names, n_blocks);
  if (n_blocks) *line += fmt::format(": block 0 {} {}", FieldName(t.type, 0), first);
  if (overflowed) *line += fmt::format("; {} fields overflowed to Inf", overflowed);
  if (underflowed) *line += fmt::format("; {} fields rounded to 0", underflowed);
  return {};
}

// --bitflip, --nan and --inf: one stored word changes.
Status PokeTensor(const TensorInfo& t, std::span<uint8_t> data, const CorruptSpec& spec,
                  std::string* line) {
  const gguf::TypeTraits& tr = gguf::Traits(t.type);
  const char* mode = spec.mode == CorruptMode::kBitflip ? "bitflip"
                     : spec.mode == CorruptMode::kNan   ? "nan"
                                                        : "inf";
  const std::string field = fmt::format("--{} on {}", mode, TensorLabel(t));
  if (!tr.is_quantized) {
    if (spec.index >= t.n_elements) {
      return BadArg(field + " --index", fmt::format("an element index below {}", t.n_elements),
                    std::to_string(spec.index));
    }
    uint8_t* p = data.data() + spec.index * tr.type_size;
    const std::string before = DescribeElement(t.type, p);
    uint64_t w = LoadWord(p, tr.type_size);
    if (spec.mode == CorruptMode::kBitflip) {
      if (spec.bit >= 8 * tr.type_size) {
        return BadArg(field,
                      fmt::format("a bit 0..{} of the {}-bit element", 8 * tr.type_size - 1,
                                  8 * tr.type_size),
                      fmt::format("bit {}", spec.bit));
      }
      w ^= uint64_t{1} << spec.bit;
    } else if (IsIntType(t.type)) {
      return Refused(field, "integer types have no NaN or Inf");
    } else {
      w = FloatWord(t.type, spec.mode == CorruptMode::kNan
                                ? std::numeric_limits<double>::quiet_NaN()
                                : std::numeric_limits<double>::infinity());
    }
    StoreWord(p, tr.type_size, w);
    *line = fmt::format("{}: {} element {}", mode, TensorLabel(t), spec.index);
    if (spec.mode == CorruptMode::kBitflip) *line += fmt::format(" bit {}", spec.bit);
    *line += fmt::format(": {} -> {}", before, DescribeElement(t.type, p));
    return {};
  }
  const ScaleLayout l = LayoutOf(t.type);
  if (l.kind == ScaleKind::kNone) return Refused(field, "this type has no block scale field");
  const uint64_t n_blocks = t.n_elements / tr.block_size;
  if (spec.index >= n_blocks) {
    return BadArg(field + " --index", fmt::format("a block index below {}", n_blocks),
                  std::to_string(spec.index));
  }
  uint8_t* block = data.data() + spec.index * tr.type_size;
  const uint32_t old = LoadField(l, block, 0);
  uint32_t bits = old;
  const int width = FieldBits(l.kind);
  if (spec.mode == CorruptMode::kBitflip) {
    if (spec.bit >= static_cast<uint32_t>(width)) {
      return BadArg(field,
                    fmt::format("a bit 0..{} of the {} scale {}", width - 1, KindName(l.kind),
                                FieldName(t.type, 0)),
                    fmt::format("bit {}", spec.bit));
    }
    bits ^= 1u << spec.bit;
  } else if (l.kind == ScaleKind::kUE4M3) {
    return Refused(field,
                   "UE4M3 scales have no NaN or Inf (ggml reads the E4M3 NaN pattern 0x7f as 0)");
  } else if (l.kind == ScaleKind::kE8M0) {
    if (spec.mode == CorruptMode::kInf)
      return Refused(field, "E8M0 scales have no Inf (0xff is their NaN)");
    bits = 0xFF;  // the OCP MX NaN; note ggml decodes it as 2^127 (docs/USER-GUIDE.md)
  } else if (l.kind == ScaleKind::kF16) {
    bits = spec.mode == CorruptMode::kNan ? 0x7E00 : 0x7C00;
  } else {
    bits = spec.mode == CorruptMode::kNan ? 0x7FC00000u : 0x7F800000u;
  }
  StoreField(l, block, 0, bits);
  *line = fmt::format("{}: {} block {} scale {} ({})", mode, TensorLabel(t), spec.index,
                      FieldName(t.type, 0), KindName(l.kind));
  if (spec.mode == CorruptMode::kBitflip) *line += fmt::format(" bit {}", spec.bit);
  *line += fmt::format(": {} -> {}", DescribeField(l.kind, old), DescribeField(l.kind, bits));
  if (l.kind == ScaleKind::kE8M0 && bits == 0xFF) {
    *line +=
        " (the OCP MX NaN; ggml reads it as 2^127, so the block's nonzero values become huge or "
        "Inf)";
  }
  return {};
}

// All-zero bytes decode to 0 in every type (every scale field is then 0, or
// for MXFP4 the element codes are E2M1 zeros); corrupt_test checks it per type.
Status ZeroRows(const TensorInfo& t, std::span<uint8_t> data, uint64_t rows, std::string* line) {
  const uint64_t n_rows = t.n_rows();
  if (rows == 0 || rows > n_rows) {
    return BadArg(fmt::format("--zero-rows on {}", TensorLabel(t)),
                  fmt::format("a row count 1..{}", n_rows), std::to_string(rows));
  }
  const gguf::TypeTraits& tr = gguf::Traits(t.type);
  const uint64_t row_bytes = static_cast<uint64_t>(t.ne[0]) / tr.block_size * tr.type_size;
  std::memset(data.data(), 0, rows * row_bytes);
  *line = fmt::format(
      "zero-rows: {}, rows of {} elements: rows 0..{} of {} zeroed ({} bytes): their values are 0",
      TensorLabel(t), t.ne[0], rows - 1, n_rows, rows * row_bytes);
  return {};
}

}  // namespace ggufscope::inspect::corrupt_internal

namespace ggufscope::inspect {

uint16_t DoubleToHalf(double x) {
  return static_cast<uint16_t>(corrupt_internal::EncodeBinary(x, 5, 10));
}
uint16_t DoubleToBf16(double x) {
  return static_cast<uint16_t>(corrupt_internal::EncodeBinary(x, 8, 7));
}

}  // namespace ggufscope::inspect
