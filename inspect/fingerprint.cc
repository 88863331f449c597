#include "inspect/fingerprint.h"

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <unordered_map>

namespace ggufscope::inspect {
namespace {

constexpr uint64_t kMaxBytes = uint64_t{64} << 20;
constexpr size_t kMaxTensors = size_t{1} << 20;

gguf::Error Bad(const std::string& field, const std::string& expected, const std::string& actual) {
  return gguf::Error{gguf::ErrorCode::kBadJson, field, gguf::Error::kNoOffset, expected, actual};
}

double Round3(double x) { return std::round(x * 1000.0) / 1000.0; }

bool IsGemma(const std::string& arch) { return arch.rfind("gemma", 0) == 0; }

}  // namespace

gguf::Result<Fingerprint> ParseFingerprint(std::string_view text, const std::string& what) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Bad(what, "a JSON object", "not valid JSON");
  Fingerprint fp;
  auto str = [&](const char* key, std::string& out) {
    if (j.contains(key) && j[key].is_string()) out = j[key].get<std::string>();
  };
  str("model", fp.model);
  str("architecture", fp.architecture);
  str("source", fp.source);
  str("precision", fp.precision);
  str("conventions", fp.conventions);
  if (!j.contains("tensors") || !j["tensors"].is_array()) return Bad(what + ": tensors", "an array", "absent");
  const nlohmann::json& ts = j["tensors"];
  if (ts.size() > kMaxTensors) return Bad(what + ": tensors", "at most 2^20 entries", std::to_string(ts.size()));
  fp.tensors.reserve(ts.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    const nlohmann::json& t = ts[i];
    const std::string at = fmt::format("{}: tensors[{}]", what, i);
    if (!t.is_object() || !t.contains("gguf") || !t["gguf"].is_string()) return Bad(at + ".gguf", "a string", "absent");
    FingerprintEntry e;
    e.gguf = t["gguf"].get<std::string>();
    if (t.contains("hf") && t["hf"].is_string()) e.hf = t["hf"].get<std::string>();
    for (const char* k : {"mean", "std"}) {
      if (!t.contains(k) || !t[k].is_number()) return Bad(at + "." + k, "a number", "absent");
    }
    e.mean = t["mean"].get<double>();
    e.std = t["std"].get<double>();
    if (!std::isfinite(e.mean) || !std::isfinite(e.std) || e.std < 0) {
      return Bad(at, "a finite mean and a std >= 0", fmt::format("{}, {}", e.mean, e.std));
    }
    const char* shape_key = t.contains("hf_shape") ? "hf_shape" : "shape";
    if (t.contains(shape_key)) {
      if (!t[shape_key].is_array() || t[shape_key].size() > 8) return Bad(at + "." + shape_key, "up to 8 dims", "other");
      for (const nlohmann::json& d : t[shape_key]) {
        if (!d.is_number_integer() || d.get<int64_t>() < 0) return Bad(at + "." + shape_key, "non-negative integers", d.dump());
        e.shape.push_back(d.get<int64_t>());
      }
    }
    fp.tensors.push_back(std::move(e));
  }
  return fp;
}

gguf::Result<Fingerprint> ReadFingerprint(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return gguf::Error{gguf::ErrorCode::kIo, path, gguf::Error::kNoOffset, "a readable file", "cannot open"};
  const std::streamoff size = in.tellg();
  if (size < 0 || static_cast<uint64_t>(size) > kMaxBytes) {
    return gguf::Error{gguf::ErrorCode::kTooLarge, path, gguf::Error::kNoOffset, "at most 64 MiB", std::to_string(size) + " bytes"};
  }
  std::string text(static_cast<size_t>(size), '\0');
  in.seekg(0);
  in.read(text.data(), size);
  return ParseFingerprint(text, path);
}

Fingerprint FingerprintOf(const gguf::GgufFile& f, const std::vector<TensorStats>& stats, bool round) {
  Fingerprint fp;
  fp.architecture = f.GetString("general.architecture").value_or("");
  fp.model = f.GetString("general.name").value_or("");
  fp.source = "ggufscope fingerprint of a GGUF file";
  fp.precision = round ? "mean and std rounded to 3 decimals, of the dequantized values" : "exact";
  fp.conventions = "gguf";
  for (const TensorStats& s : stats) {
    if (!s.values_checked) continue;
    FingerprintEntry e;
    e.gguf = s.name;
    if (const gguf::TensorInfo* t = f.FindTensor(s.name)) {
      for (int d = static_cast<int>(t->n_dims) - 1; d >= 0; --d) e.shape.push_back(static_cast<int64_t>(t->ne[d]));
    }
    e.mean = round ? Round3(s.mean) : s.mean;
    e.std = round ? Round3(s.std) : s.std;
    fp.tensors.push_back(std::move(e));
  }
  return fp;
}

nlohmann::json FingerprintJson(const Fingerprint& fp) {
  nlohmann::json j{{"model", fp.model}, {"architecture", fp.architecture}, {"source", fp.source},
                   {"precision", fp.precision}, {"tensors", nlohmann::json::array()}};
  if (!fp.conventions.empty()) j["conventions"] = fp.conventions;
  for (const FingerprintEntry& e : fp.tensors) {
    nlohmann::json t{{"gguf", e.gguf}, {"hf_shape", e.shape}, {"mean", e.mean}, {"std", e.std}};
    if (!e.hf.empty()) t["hf"] = e.hf;
    j["tensors"].push_back(std::move(t));
  }
  return j;
}

std::vector<FingerprintMatch> CompareFingerprint(const gguf::GgufFile& f, const std::vector<TensorStats>& stats,
                                                 const Fingerprint& fp) {
  std::unordered_map<std::string, const TensorStats*> by_name;
  for (const TensorStats& s : stats) by_name[s.name] = &s;
  const bool gemma = IsGemma(f.GetString("general.architecture").value_or(""));
  std::vector<FingerprintMatch> out;
  for (const FingerprintEntry& e : fp.tensors) {
    FingerprintMatch m;
    m.tensor = e.gguf;
    m.pub_mean = e.mean;
    m.pub_std = e.std;
    const auto it = by_name.find(e.gguf);
    const gguf::TensorInfo* t = f.FindTensor(e.gguf);
    if (it == by_name.end() || t == nullptr || !it->second->values_checked) {
      m.message = "not in the file";
      out.push_back(std::move(m));
      continue;
    }
    if (!e.shape.empty()) {
      std::vector<int64_t> shape;
      for (int d = static_cast<int>(t->n_dims) - 1; d >= 0; --d) shape.push_back(static_cast<int64_t>(t->ne[d]));
      if (shape != e.shape) {
        m.message = "a different shape: the fingerprint is of another model";
        out.push_back(std::move(m));
        continue;
      }
    }
    const TensorStats& s = *it->second;
    m.compared = true;
    m.mean = s.mean;
    m.std = s.std;
    const bool norm = e.gguf.find("norm") != std::string::npos;
    // Gemma GGUF norms are stored as value + 1; published statistics are not.
    const double shift = gemma && norm && fp.conventions != "gguf" ? 1.0 : 0.0;
    const double dmean = std::fabs((s.mean - shift) - e.mean);
    const double dstd = std::fabs(s.std - e.std);
    const bool mean_ok = dmean <= 0.002 + 0.1 * e.std;
    const bool std_ok = dstd <= 0.002 + 0.15 * e.std;
    m.matches = mean_ok && std_ok;
    m.message = m.matches ? fmt::format("matches the published statistics (mean {:.3f} vs {:.3f}, std {:.3f} vs {:.3f})",
                                        s.mean - shift, e.mean, s.std, e.std)
                          : fmt::format("departs from the published statistics: mean {:.4g} vs {:.4g}, std {:.4g} vs "
                                        "{:.4g}{}",
                                        s.mean - shift, e.mean, s.std, e.std,
                                        e.mean != 0 && std::fabs(e.mean) > 3 * e.std / 100
                                            ? fmt::format(" ({:.3g}x the published mean)", (s.mean - shift) / e.mean)
                                            : "");
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace ggufscope::inspect
