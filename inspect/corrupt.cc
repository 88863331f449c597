// inspect/corrupt: dispatch, the modes that rebuild tensors or the file
// (--noise, --swap, --truncate, --set-key) and the output. The in-place
// numeric modes live in corrupt_values.cc.
#include "inspect/corrupt.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <numbers>
#include <random>
#include <span>
#include <vector>

#include "gguf/dequant.h"
#include "gguf/writer.h"
#include "inspect/corrupt_internal.h"
#include "inspect/info.h"

namespace ggufscope::inspect {
namespace {

using corrupt_internal::BadArg;
using corrupt_internal::DescribeElement;
using corrupt_internal::FloatWord;
using corrupt_internal::IsFloatType;
using corrupt_internal::IsIntType;
using corrupt_internal::LoadElement;
using corrupt_internal::PokeTensor;
using corrupt_internal::Quoted;
using corrupt_internal::Refused;
using corrupt_internal::ScaleTensor;
using corrupt_internal::StoreWord;
using corrupt_internal::TensorLabel;
using corrupt_internal::ZeroRows;
using gguf::Error;
using gguf::ErrorCode;
using gguf::GgmlType;
using gguf::GgufFile;
using gguf::Status;
using gguf::TensorInfo;
using gguf::Value;
using gguf::ValueType;

// ---------------------------------------------------------------- output

struct Replacement {
  const TensorInfo* tensor;
  GgmlType type;
  std::span<const uint8_t> data;
};

gguf::Writer BuildWriter(const GgufFile& in, std::span<const Replacement> repl, Status* status) {
  gguf::Writer w(in.version());
  for (const gguf::KeyValue& kv : in.metadata()) {
    if (Status s = w.AddKv(kv.key, kv.value); !s.ok() && status->ok()) *status = s;
  }
  for (const TensorInfo& t : in.tensors()) {
    GgmlType type = t.type;
    std::span<const uint8_t> data = in.TensorData(t);
    for (const Replacement& r : repl) {
      if (r.tensor == &t) {
        type = r.type;
        data = r.data;
      }
    }
    Status s = w.AddTensor(t.name, type,
                           std::vector<int64_t>(t.ne.begin(), t.ne.begin() + t.n_dims), data);
    if (!s.ok() && status->ok()) *status = s;
  }
  return w;
}

Status WriteWith(const GgufFile& in, const std::string& out_path,
                 std::span<const Replacement> repl) {
  Status s;
  gguf::Writer w = BuildWriter(in, repl, &s);
  if (!s.ok()) return s;
  return w.WriteFile(out_path);
}

// Standard normal deviates from mt19937_64 by Box-Muller: unlike
// std::normal_distribution, whose algorithm each standard library picks, this
// gives the same noise for a seed everywhere (up to libm's log/cos/sin).
class Gaussian {
 public:
  explicit Gaussian(uint64_t seed) : gen_(seed) {}
  double Next() {
    if (have_spare_) {
      have_spare_ = false;
      return spare_;
    }
    const double u1 = static_cast<double>((gen_() >> 11) + 1) * 0x1p-53;  // (0, 1]
    const double u2 = static_cast<double>(gen_() >> 11) * 0x1p-53;        // [0, 1)
    const double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = r * std::sin(2.0 * std::numbers::pi * u2);
    have_spare_ = true;
    return r * std::cos(2.0 * std::numbers::pi * u2);
  }

 private:
  std::mt19937_64 gen_;
  double spare_ = 0.0;
  bool have_spare_ = false;
};

// Fills `out` (the new bytes) and `out_type`.
Status AddNoise(const GgufFile& in, const TensorInfo& t, const CorruptSpec& spec,
                std::vector<uint8_t>* out, GgmlType* out_type, std::string* line) {
  const std::string field = fmt::format("--noise {} on {}", spec.sigma, TensorLabel(t));
  if (!(spec.sigma > 0) || !std::isfinite(spec.sigma)) {
    return BadArg(field, "a finite SIGMA > 0", fmt::format("{}", spec.sigma));
  }
  if (IsIntType(t.type))
    return Refused(field, "integer tensors get no noise (only float and quantized types)");
  std::vector<float> values(t.n_elements);
  if (Status s = gguf::Dequantize(t.type, in.TensorData(t), t.n_elements, values); !s.ok())
    return s;
  double sum_sq = 0;
  uint64_t finite = 0;
  for (float v : values) {
    if (std::isfinite(v)) {
      sum_sq += static_cast<double>(v) * v;
      ++finite;
    }
  }
  const double rms = finite ? std::sqrt(sum_sq / static_cast<double>(finite)) : 0.0;
  if (!(rms > 0))
    return BadArg(field, "a tensor with a nonzero rms (the noise is relative to it)", "rms 0");
  const double stddev = spec.sigma * rms;
  Gaussian g(spec.seed);
  const gguf::TypeTraits& tr = gguf::Traits(t.type);
  std::string element0;
  if (IsFloatType(t.type)) {
    const auto src = in.TensorData(t);
    out->assign(src.begin(), src.end());
    *out_type = t.type;
    if (t.n_elements) element0 = DescribeElement(t.type, out->data());
    for (uint64_t i = 0; i < t.n_elements; ++i) {
      uint8_t* p = out->data() + i * tr.type_size;
      StoreWord(p, tr.type_size, FloatWord(t.type, LoadElement(t.type, p) + stddev * g.Next()));
    }
    if (t.n_elements) element0 += " -> " + DescribeElement(t.type, out->data());
  } else {
    // A quantized tensor cannot hold arbitrary values: it is stored as F32.
    const float before = values.empty() ? 0.0f : values[0];
    for (float& v : values) v = static_cast<float>(v + stddev * g.Next());
    if (!values.empty()) element0 = fmt::format("{} -> {}", before, values[0]);
    out->resize(values.size() * sizeof(float));
    std::memcpy(out->data(), values.data(), out->size());
    *out_type = GgmlType::kF32;
  }
  *line = fmt::format("noise: {}: added N(0, ({} x rms {:.6g})^2) with seed {} to {} elements",
                      TensorLabel(t), spec.sigma, rms, spec.seed, t.n_elements);
  if (!element0.empty()) *line += ": element 0 " + element0;
  if (*out_type != t.type) *line += fmt::format("; stored as F32 (was {})", gguf::TypeName(t.type));
  return {};
}

// The tensor is located in the written file by parsing it, so the cut is
// exactly where that file's reader will look, whatever the layout.
Status Truncate(const GgufFile& in, const TensorInfo& t, const std::string& out_path,
                uint64_t bytes, std::string* line) {
  if (bytes >= t.n_bytes) {
    return BadArg(fmt::format("--truncate on {}", TensorLabel(t)),
                  t.n_bytes ? fmt::format("a byte count 0..{} (the tensor has {} bytes)",
                                          t.n_bytes - 1, t.n_bytes)
                            : "a tensor that has data (this one has 0 bytes)",
                  std::to_string(bytes));
  }
  const std::string part = out_path + ".part";
  if (Status s = WriteWith(in, part, {}); !s.ok()) return s;
  std::error_code ec;
  uint64_t cut = 0;
  {
    gguf::Result<GgufFile> full = GgufFile::Open(part);
    const TensorInfo* w = full.ok() ? full->FindTensor(t.name) : nullptr;
    if (w == nullptr) {  // our own output, so a failure here is an I/O problem
      std::filesystem::remove(part, ec);
      return Error{ErrorCode::kIo, part, Error::kNoOffset, "a readable copy with tensor " + Quoted(t.name),
                   full.ok() ? "no such tensor" : full.error().Message()};
    }
    cut = full->data_offset() + w->offset + bytes;
  }  // unmapped before the file is cut
  std::filesystem::resize_file(part, cut, ec);
  if (!ec) std::filesystem::rename(part, out_path, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(part, ignored);
    return Error{ErrorCode::kIo, out_path, Error::kNoOffset, "a truncated copy", ec.message()};
  }
  *line = fmt::format(
      "truncate: the file ends {} bytes into the {} bytes of {} (at byte {}); the rest of it "
      "and every later tensor are cut",
      bytes, t.n_bytes, TensorLabel(t), cut);
  return {};
}

template <typename T>
std::optional<T> ParseInt(const std::string& s) {
  T v{};
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<double> ParseDouble(const std::string& s) {
  if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return std::nullopt;
  return v;
}

// `text` as a value of old's type.
gguf::Result<Value> ParseAs(const Value& old, const std::string& key, const std::string& text) {
  const std::string field = fmt::format("--set-key {}", Quoted(key));
  const std::string_view tn = gguf::ValueTypeName(old.type);
  const auto fail = [&](std::string expected) {
    return BadArg(field, std::move(expected), Quoted(text));
  };
  switch (old.type) {
    case ValueType::kString:
      return Value::Str(text);
    case ValueType::kBool:
      if (text == "true" || text == "1") return Value::Bool(true);
      if (text == "false" || text == "0") return Value::Bool(false);
      return fail("a bool: true, false, 1 or 0");
    case ValueType::kUint8:
    case ValueType::kUint16:
    case ValueType::kUint32:
    case ValueType::kUint64: {
      const uint64_t max = old.type == ValueType::kUint64
                               ? ~uint64_t{0}
                               : (uint64_t{1} << (8 * gguf::ScalarSize(old.type))) - 1;
      const std::optional<uint64_t> v = ParseInt<uint64_t>(text);
      if (!v || *v > max) return fail(fmt::format("a {} (0..{})", tn, max));
      return Value::U(old.type, *v);
    }
    case ValueType::kInt8:
    case ValueType::kInt16:
    case ValueType::kInt32:
    case ValueType::kInt64: {
      const int bits = 8 * static_cast<int>(gguf::ScalarSize(old.type));
      const int64_t max =
          bits == 64 ? std::numeric_limits<int64_t>::max() : (int64_t{1} << (bits - 1)) - 1;
      const std::optional<int64_t> v = ParseInt<int64_t>(text);
      if (!v || *v > max || *v < -max - 1)
        return fail(fmt::format("an {} ({}..{})", tn, -max - 1, max));
      return Value::I(old.type, *v);
    }
    case ValueType::kFloat32: {
      const std::optional<double> v = ParseDouble(text);
      if (!v || (std::isfinite(*v) && std::fabs(*v) > std::numeric_limits<float>::max())) {
        return fail("a float32 (a number within +-3.4e38, nan or inf)");
      }
      return Value::F32(static_cast<float>(*v));
    }
    case ValueType::kFloat64: {
      const std::optional<double> v = ParseDouble(text);
      if (!v) return fail("a float64 (a number, nan or inf)");
      return Value::F64(*v);
    }
    case ValueType::kArray:
      return Refused(
          field,
          fmt::format("the key holds an array ({}[{}]); arrays are not set from the command line",
                      gguf::ValueTypeName(old.elem_type), old.array_size()));
  }
  return fail("a scalar or string value");
}

Status SetKey(const GgufFile& in, const std::string& out_path, const CorruptSpec& spec,
              std::string* line) {
  if (spec.key.empty())
    return BadArg("--set-key", "KEY=VALUE with a non-empty KEY", Quoted("=" + spec.value));
  const gguf::KeyValue* old = in.FindKey(spec.key);
  // general.alignment can only be a uint32 (the writer refuses anything else), even when absent.
  const Value alignment = Value::U(ValueType::kUint32, gguf::kDefaultAlignment);
  const Value* like = old ? &old->value : spec.key == "general.alignment" ? &alignment : nullptr;
  Value value = Value::Str(spec.value);
  if (like != nullptr) {
    gguf::Result<Value> parsed = ParseAs(*like, spec.key, spec.value);
    if (!parsed.ok()) return parsed.error();
    value = std::move(*parsed);
  }
  Status s;
  gguf::Writer w = BuildWriter(in, {}, &s);
  if (!s.ok()) return s;
  if (Status set = w.SetKv(spec.key, value); !set.ok()) {
    return BadArg(fmt::format("--set-key {}", Quoted(spec.key)), set.error().expected,
                  set.error().actual);
  }
  if (Status write = w.WriteFile(out_path); !write.ok()) return write;
  *line = fmt::format(
      "set-key: {} ({}): {} -> {}", Quoted(spec.key), gguf::ValueTypeName(value.type),
      old ? ValueText(old->value, InfoOptions{}) : "(absent)", ValueText(value, InfoOptions{}));
  if (!old)
    *line += value.type == ValueType::kString ? " (a new key, stored as a string)" : " (a new key)";
  return {};
}

}  // namespace

Status Corrupt(const GgufFile& in, const std::string& out_path, const CorruptSpec& spec,
               std::string* what_changed) {
  std::string line;
  Status s;
  if (spec.mode == CorruptMode::kSetKey) {
    s = SetKey(in, out_path, spec, &line);
    if (s.ok() && what_changed != nullptr) *what_changed = line;
    return s;
  }
  const TensorInfo* t = in.FindTensor(spec.tensor);
  if (t == nullptr) {
    return BadArg(fmt::format("--tensor {}", Quoted(spec.tensor)),
                  fmt::format("the name of one of the file's {} tensors", in.tensors().size()),
                  "no such tensor");
  }
  const auto src = in.TensorData(*t);
  std::vector<uint8_t> bytes;
  GgmlType type = t->type;
  switch (spec.mode) {
    case CorruptMode::kScale:
    case CorruptMode::kBitflip:
    case CorruptMode::kNan:
    case CorruptMode::kInf:
    case CorruptMode::kZeroRows:
      bytes.assign(src.begin(), src.end());
      s = spec.mode == CorruptMode::kScale      ? ScaleTensor(*t, bytes, spec.scale, &line)
          : spec.mode == CorruptMode::kZeroRows ? ZeroRows(*t, bytes, spec.rows, &line)
                                                : PokeTensor(*t, bytes, spec, &line);
      break;
    case CorruptMode::kNoise:
      s = AddNoise(in, *t, spec, &bytes, &type, &line);
      break;
    case CorruptMode::kSwap: {
      const TensorInfo* o = in.FindTensor(spec.other);
      const std::string field =
          fmt::format("--swap {} with {}", Quoted(spec.other), TensorLabel(*t));
      if (o == nullptr)
        return BadArg(field, "the name of another tensor in the file", "no such tensor");
      if (o == t) return BadArg(field, "a tensor other than --tensor", "the same tensor");
      if (o->type != t->type || o->n_dims != t->n_dims || o->ne != t->ne) {
        const auto shape = [](const TensorInfo& x) {
          return fmt::format("{} {}", gguf::TypeName(x.type),
                             fmt::join(std::span(x.ne.data(), x.n_dims), " x "));
        };
        return BadArg(field, "the same type and shape: " + shape(*t), shape(*o));
      }
      const Replacement repl[] = {{t, t->type, in.TensorData(*o)}, {o, o->type, src}};
      s = WriteWith(in, out_path, repl);
      line = fmt::format("swap: tensors {} and {} ({}, {} bytes) exchanged their data",
                         Quoted(t->name), Quoted(o->name), gguf::TypeName(t->type), t->n_bytes);
      if (s.ok() && what_changed != nullptr) *what_changed = line;
      return s;
    }
    case CorruptMode::kTruncate:
      s = Truncate(in, *t, out_path, spec.truncate_bytes, &line);
      if (s.ok() && what_changed != nullptr) *what_changed = line;
      return s;
    case CorruptMode::kSetKey:
      break;
  }
  if (!s.ok()) return s;
  const Replacement repl[] = {{t, type, bytes}};
  s = WriteWith(in, out_path, repl);
  if (s.ok() && what_changed != nullptr) *what_changed = line;
  return s;
}

}  // namespace ggufscope::inspect
