#include "compare/trace_io.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "compare/npy_reader.h"
#include "gguf/dequant.h"
#include "gguf/writer.h"

// Returns the error of a failed gguf::Status from the enclosing function.
#define TRY_OK(expr)                            \
  do {                                          \
    const ::ggufscope::gguf::Status s_ = (expr); \
    if (!s_.ok()) return s_.error();            \
  } while (false)

namespace ggufscope::compare {
namespace {

using gguf::Error;
using gguf::ErrorCode;
using gguf::Value;
using gguf::ValueType;

constexpr std::string_view kStatMin = "min", kStatMax = "max", kStatMean = "mean", kStatRms = "rms",
                           kStatNan = "nan", kStatInf = "inf", kStatTokens = "n_tokens", kStatWidth = "width";

// A trace this large in one point is not a trace (and would not fit memory).
constexpr uint64_t kMaxPointElements = uint64_t{1} << 32;

std::optional<double> GetNumber(const gguf::GgufFile& f, const std::string& key) {
  const gguf::KeyValue* kv = f.FindKey(key);
  return kv == nullptr ? std::nullopt : kv->value.AsDouble();
}

std::optional<uint64_t> GetCount(const gguf::GgufFile& f, const std::string& key) {
  const gguf::KeyValue* kv = f.FindKey(key);
  return kv == nullptr ? std::nullopt : kv->value.AsUint();
}

Error Bad(const std::string& source, std::string field, std::string expected, std::string actual) {
  return Error{ErrorCode::kInvalidArgument, source + ": " + field, Error::kNoOffset, std::move(expected), std::move(actual)};
}

// Stats a trace states for a point without its data (stats-only traces).
PointStats StatedStats(const gguf::GgufFile& f, const std::string& name, uint64_t n) {
  PointStats s;
  s.n = n;
  s.nan = GetCount(f, PointKey(name, kStatNan)).value_or(0);
  s.inf = GetCount(f, PointKey(name, kStatInf)).value_or(0);
  s.min = GetNumber(f, PointKey(name, kStatMin)).value_or(0);
  s.max = GetNumber(f, PointKey(name, kStatMax)).value_or(0);
  s.mean = GetNumber(f, PointKey(name, kStatMean)).value_or(0);
  s.rms = GetNumber(f, PointKey(name, kStatRms)).value_or(0);
  return s;
}

// Renames (or drops) the points of `t`, refusing two points of one name.
gguf::Status Rename(Trace& t, const NameMap* map) {
  std::set<std::string> seen;
  std::vector<TracePoint> kept;
  for (TracePoint& p : t.points) {
    if (map != nullptr) p.name = map->Apply(p.name);
    if (p.name.empty()) continue;
    if (!seen.insert(p.name).second) {
      return Bad(t.source, fmt::format("point '{}'", p.name), "one tensor per trace point (check the name map)",
                 "two");
    }
    kept.push_back(std::move(p));
  }
  t.points = std::move(kept);
  return {};
}

}  // namespace

std::string PointKey(std::string_view point, std::string_view stat) {
  return fmt::format("{}{}.{}", kPointKeyPrefix, point, stat);
}

std::pair<int64_t, int64_t> AsRowsCols(const std::vector<int64_t>& shape) {
  size_t first = 0;
  while (shape.size() - first > 2 && shape[first] == 1) ++first;
  const size_t nd = shape.size() - first;
  if (nd == 0) return {1, 1};
  if (nd == 1) return {1, shape[first]};
  // A zero anywhere makes the width 0 before any product is formed, so the
  // product is of non-zero dims only, which the readers bound (no overflow).
  int64_t cols = 1;
  for (size_t i = first + 1; i < shape.size(); ++i) {
    if (shape[i] == 0) return {shape[first], 0};
  }
  for (size_t i = first + 1; i < shape.size(); ++i) cols *= shape[i];
  return {shape[first], cols};
}

gguf::Status WriteTraceGguf(const Trace& t, const std::string& path) {
  gguf::Writer w;
  const TraceHeader& h = t.header;
  TRY_OK(w.AddKv("general.architecture", Value::Str("trace")));
  TRY_OK(w.AddKv(std::string(kKeyVersion), Value::U(ValueType::kUint32, kTraceVersion)));
  auto str = [&](std::string_view key, const std::string& v) {
    return v.empty() ? gguf::Status{} : w.AddKv(std::string(key), Value::Str(v));
  };
  TRY_OK(str(kKeyProducer, h.producer));
  TRY_OK(str(kKeyBackend, h.backend));
  TRY_OK(str(kKeyPrecision, h.precision));
  TRY_OK(str(kKeyModelPath, h.model_path));
  if (h.model_size) TRY_OK(w.AddKv(std::string(kKeyModelSize), Value::U(ValueType::kUint64, *h.model_size)));
  TRY_OK(str(kKeyModelSha256, h.model_sha256));
  TRY_OK(str(kKeyModelArch, h.model_arch));
  if (h.tokens) {
    std::vector<Value> ids;
    for (int32_t id : *h.tokens) ids.push_back(Value::I(ValueType::kInt32, id));
    TRY_OK(w.AddKv(std::string(kKeyTokens), Value::Array(ValueType::kInt32, ids)));
  }
  TRY_OK(w.AddKv(std::string(kKeyStatsOnly), Value::Bool(h.stats_only)));
  std::vector<std::string> names;
  for (const TracePoint& p : t.points) names.push_back(p.name);
  TRY_OK(w.AddKv(std::string(kKeyPoints), Value::StrArray(names)));
  for (const TracePoint& p : t.points) {
    const PointStats& s = p.stats;
    TRY_OK(w.AddKv(PointKey(p.name, kStatTokens), Value::U(ValueType::kUint64, static_cast<uint64_t>(p.rows))));
    TRY_OK(w.AddKv(PointKey(p.name, kStatWidth), Value::U(ValueType::kUint64, static_cast<uint64_t>(p.cols))));
    if (s.n_finite() > 0) {
      TRY_OK(w.AddKv(PointKey(p.name, kStatMin), Value::F64(s.min)));
      TRY_OK(w.AddKv(PointKey(p.name, kStatMax), Value::F64(s.max)));
      TRY_OK(w.AddKv(PointKey(p.name, kStatMean), Value::F64(s.mean)));
      TRY_OK(w.AddKv(PointKey(p.name, kStatRms), Value::F64(s.rms)));
    }
    TRY_OK(w.AddKv(PointKey(p.name, kStatNan), Value::U(ValueType::kUint64, s.nan)));
    TRY_OK(w.AddKv(PointKey(p.name, kStatInf), Value::U(ValueType::kUint64, s.inf)));
  }
  if (!h.stats_only) {
    for (const TracePoint& p : t.points) {
      if (p.data.size() != static_cast<size_t>(p.rows * p.cols)) {
        return Error{ErrorCode::kInvalidArgument, fmt::format("trace point '{}'", p.name), Error::kNoOffset,
                     fmt::format("{} x {} values", p.rows, p.cols), std::to_string(p.data.size())};
      }
      const auto bytes = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(p.data.data()), p.data.size() * 4);
      TRY_OK(w.AddTensor(p.name, gguf::GgmlType::kF32, {p.cols, p.rows}, bytes));
    }
  }
  return w.WriteFile(path);
}

// --- name maps ------------------------------------------------------------------

gguf::Result<NameMap> NameMap::Parse(std::string_view text, const std::string& what) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Error{ErrorCode::kBadJson, what, Error::kNoOffset, "a JSON object (docs/TRACE-FORMAT.md, name maps)", "something else"};
  }
  NameMap m;
  const bool structured = j.contains("names") || j.contains("rules");
  const nlohmann::json& names = structured ? (j.contains("names") ? j["names"] : nlohmann::json::object()) : j;
  if (!names.is_object()) return Error{ErrorCode::kBadJson, what + ": names", Error::kNoOffset, "an object", names.type_name()};
  for (const auto& [k, v] : names.items()) {
    if (!v.is_string()) {
      return Error{ErrorCode::kBadJson, what + ": names." + k, Error::kNoOffset, "a string (our point name, or \"\" to drop it)",
                   v.type_name()};
    }
    m.names_[k] = v.get<std::string>();
  }
  if (structured && j.contains("rules")) {
    const nlohmann::json& rules = j["rules"];
    if (!rules.is_array()) return Error{ErrorCode::kBadJson, what + ": rules", Error::kNoOffset, "an array", rules.type_name()};
    for (size_t i = 0; i < rules.size(); ++i) {
      const nlohmann::json& r = rules[i];
      const std::string field = fmt::format("{}: rules[{}]", what, i);
      if (!r.is_object() || !r.contains("match") || !r.contains("name") || !r["match"].is_string() ||
          !r["name"].is_string()) {
        return Error{ErrorCode::kBadJson, field, Error::kNoOffset, "{\"match\": REGEX, \"name\": REPLACEMENT}", r.dump()};
      }
      Rule rule;
      rule.pattern = r["match"].get<std::string>();
      rule.replacement = r["name"].get<std::string>();
      try {
        rule.re = std::regex(rule.pattern, std::regex::ECMAScript);
      } catch (const std::regex_error& e) {
        return Error{ErrorCode::kBadJson, field + ".match", Error::kNoOffset, "an ECMAScript regular expression",
                     fmt::format("'{}' ({})", rule.pattern, e.what())};
      }
      m.rules_.push_back(std::move(rule));
    }
  }
  return m;
}

gguf::Result<NameMap> NameMap::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{ErrorCode::kIo, path, Error::kNoOffset, "a readable name map (JSON)", std::strerror(errno)};
  std::stringstream ss;
  ss << in.rdbuf();
  return Parse(ss.str(), path);
}

std::string NameMap::Apply(const std::string& name) const {
  if (const auto it = names_.find(name); it != names_.end()) return it->second;
  for (const Rule& r : rules_) {
    std::smatch m;
    if (std::regex_match(name, m, r.re)) return m.format(r.replacement);
  }
  return name;
}

// --- reading ------------------------------------------------------------------

gguf::Result<Trace> ReadTraceGguf(const gguf::GgufFile& f, const std::string& source, const NameMap* map) {
  Trace t;
  t.source = source;
  TraceHeader& h = t.header;
  const std::optional<uint64_t> version = f.GetUint(kKeyVersion);
  if (!version) {
    return Bad(source, std::string(kKeyVersion), "a trace file (docs/TRACE-FORMAT.md) with this key",
               f.FindKey("general.architecture") != nullptr && f.FindKey(kKeyPoints) == nullptr
                   ? "no such key: a model file, not a trace?"
                   : "no such key");
  }
  if (*version < 1 || *version > kTraceVersion) {
    return Error{ErrorCode::kUnsupportedVersion, source + ": " + std::string(kKeyVersion), Error::kNoOffset,
                 fmt::format("1..{}", kTraceVersion), std::to_string(*version)};
  }
  h.version = static_cast<uint32_t>(*version);
  h.producer = f.GetString(kKeyProducer).value_or("");
  h.backend = f.GetString(kKeyBackend).value_or("");
  h.precision = f.GetString(kKeyPrecision).value_or("");
  h.model_path = f.GetString(kKeyModelPath).value_or("");
  h.model_size = f.GetUint(kKeyModelSize);
  h.model_sha256 = f.GetString(kKeyModelSha256).value_or("");
  h.model_arch = f.GetString(kKeyModelArch).value_or("");
  if (const gguf::KeyValue* kv = f.FindKey(kKeyTokens); kv != nullptr) {
    if (kv->value.type != ValueType::kArray) {
      return Bad(source, std::string(kKeyTokens), "an array of integer token ids", std::string(ValueTypeName(kv->value.type)));
    }
    std::vector<int32_t> ids;
    for (size_t i = 0; i < kv->value.array_size(); ++i) {
      const std::optional<int64_t> id = kv->value.ArrayItem(i).AsInt();
      if (!id || *id < INT32_MIN || *id > INT32_MAX) {
        return Bad(source, fmt::format("{}[{}]", kKeyTokens, i), "an int32 token id", "another value");
      }
      ids.push_back(static_cast<int32_t>(*id));
    }
    h.tokens = std::move(ids);
  }
  if (const gguf::KeyValue* kv = f.FindKey(kKeyStatsOnly); kv != nullptr) h.stats_only = kv->value.u != 0;

  // Points: those trace.points lists, in its order, then any other tensor.
  std::vector<std::string> order;
  if (const gguf::KeyValue* kv = f.FindKey(kKeyPoints); kv != nullptr && kv->value.type == ValueType::kArray) {
    order = kv->value.strings;
  }
  std::set<std::string> listed(order.begin(), order.end());
  for (const gguf::TensorInfo& ti : f.tensors()) {
    if (!listed.count(ti.name)) order.push_back(ti.name);
  }
  for (const std::string& name : order) {
    TracePoint p;
    p.name = name;
    const gguf::TensorInfo* ti = f.FindTensor(name);
    if (ti != nullptr) {
      std::vector<int64_t> shape(ti->ne.rbegin() + (gguf::kMaxDims - ti->n_dims), ti->ne.rend());
      // Every dim is bounded, not only their product: a zero dim makes the
      // product small while the width (a product of the others) may not be.
      const bool dims_ok = std::all_of(shape.begin(), shape.end(), [](int64_t d) {
        return d >= 0 && static_cast<uint64_t>(d) <= kMaxPointElements;
      });
      if (!dims_ok || ti->n_elements > kMaxPointElements) {
        return Error{ErrorCode::kTooLarge, fmt::format("{}: tensor '{}'", source, name), ti->offset,
                     fmt::format("at most {} elements", kMaxPointElements), std::to_string(ti->n_elements)};
      }
      // Activations are floats: a quantized type would let a small file ask
      // for many times its size in f32.
      using gguf::GgmlType;
      if (ti->type != GgmlType::kF32 && ti->type != GgmlType::kF16 && ti->type != GgmlType::kBF16 &&
          ti->type != GgmlType::kF64) {
        return Error{ErrorCode::kUnsupported, fmt::format("{}: tensor '{}'", source, name), ti->info_offset,
                     "F32, F16, BF16 or F64", std::string(gguf::TypeName(ti->type))};
      }
      std::tie(p.rows, p.cols) = AsRowsCols(shape);
      p.data.resize(ti->n_elements);
      const gguf::Status s = gguf::Dequantize(ti->type, f.TensorData(*ti), ti->n_elements, p.data);
      if (!s.ok()) return s.error();
      p.stats = ComputeStats(p.data);
    } else {
      const std::optional<uint64_t> rows = f.GetUint(PointKey(name, kStatTokens));
      const std::optional<uint64_t> cols = f.GetUint(PointKey(name, kStatWidth));
      if (!rows || !cols || *rows > kMaxPointElements || *cols > kMaxPointElements ||
          (*rows != 0 && *cols > kMaxPointElements / *rows)) {
        return Bad(source, fmt::format("point '{}'", name), fmt::format("a tensor, or {} and {} keys",
                   PointKey(name, kStatTokens), PointKey(name, kStatWidth)), "neither");
      }
      p.rows = static_cast<int64_t>(*rows);
      p.cols = static_cast<int64_t>(*cols);
      p.stats = StatedStats(f, name, *rows * *cols);
    }
    t.points.push_back(std::move(p));
  }
  TRY_OK(Rename(t, map));
  return t;
}

gguf::Result<Trace> ReadTraceNpyDir(const std::string& dir, const NameMap* map) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<fs::path> files;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().extension() == ".npy") files.push_back(it->path());
  }
  if (ec) return Error{ErrorCode::kIo, dir, Error::kNoOffset, "a readable directory of .npy files", ec.message()};
  std::sort(files.begin(), files.end());
  Trace t;
  t.source = dir;
  t.header.version = kTraceVersion;
  for (const fs::path& file : files) {
    gguf::Result<NpyArray> a = ReadNpy(file.string());
    if (!a.ok()) return a.error();
    const std::string stem = file.stem().string();
    if (stem == "tokens") {  // the token ids the trace was made from, not a point
      std::vector<int32_t> ids;
      for (float v : a->data) ids.push_back(static_cast<int32_t>(v));
      t.header.tokens = std::move(ids);
      continue;
    }
    TracePoint p;
    p.name = stem;
    std::tie(p.rows, p.cols) = AsRowsCols(a->shape);
    p.data = std::move(a->data);
    p.stats = ComputeStats(p.data);
    t.points.push_back(std::move(p));
  }
  if (t.points.empty()) return Error{ErrorCode::kIo, dir, Error::kNoOffset, "at least one NAME.npy trace point", "none"};
  TRY_OK(Rename(t, map));
  return t;
}

gguf::Result<Trace> ReadTrace(const std::string& path, const NameMap* map) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return ReadTraceNpyDir(path, map);
  gguf::Result<gguf::GgufFile> f = gguf::GgufFile::Open(path);
  if (!f.ok()) return f.error();
  return ReadTraceGguf(*f, path, map);
}

}  // namespace ggufscope::compare
