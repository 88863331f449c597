#include "inspect/info.h"

#include <fmt/format.h>

#include <cmath>

#include "inspect/arch_summary.h"

namespace ggufscope::inspect {
namespace {

using gguf::GgufFile;
using gguf::TensorInfo;
using gguf::Value;
using gguf::ValueType;


// Printable form of raw bytes: valid UTF-8 kept, control and invalid bytes
// escaped, so a hostile string can neither garble a terminal nor hide.
std::string Escaped(const std::string& s, size_t max_bytes) {
  std::string out;
  const size_t n = std::min(s.size(), max_bytes);
  for (size_t i = 0; i < n;) {
    const auto c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '\n': out += "\\n"; ++i; continue;
      case '\t': out += "\\t"; ++i; continue;
      case '\r': out += "\\r"; ++i; continue;
      case '"': out += "\\\""; ++i; continue;
      case '\\': out += "\\\\"; ++i; continue;
      default: break;
    }
    if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
      ++i;
      continue;
    }
    uint32_t cp = 0;
    const size_t len = Utf8At(s, i, &cp);
    if (len == 0 || i + len > n || (cp >= 0x80 && cp < 0xa0)) {  // invalid, cut, or a C1 control (CSI)
      out += fmt::format("\\x{:02x}", c);
      ++i;
      continue;
    }
    out.append(s, i, len);
    i += len;
  }
  if (s.size() > max_bytes) out += fmt::format("...(+{} bytes)", s.size() - max_bytes);
  return out;
}

std::string ScalarText(const Value& v) {
  switch (v.type) {
    case ValueType::kBool: return v.u == 0 ? "false" : (v.u == 1 ? "true" : fmt::format("bool({})", v.u));
    case ValueType::kFloat32: return fmt::format("{}", static_cast<float>(v.f));
    case ValueType::kFloat64: return fmt::format("{}", v.f);
    case ValueType::kInt8:
    case ValueType::kInt16:
    case ValueType::kInt32:
    case ValueType::kInt64: return fmt::format("{}", v.i);
    default: return fmt::format("{}", v.u);
  }
}

std::string TypeText(const Value& v) {
  if (v.type != ValueType::kArray) return std::string(gguf::ValueTypeName(v.type));
  if (v.elem_type == ValueType::kArray) {
    return fmt::format("array[{}] of arrays", v.array_size());
  }
  return fmt::format("{}[{}]", gguf::ValueTypeName(v.elem_type), v.array_size());
}

nlohmann::json ScalarJson(const Value& v) {
  switch (v.type) {
    case ValueType::kBool: return v.u != 0;
    case ValueType::kFloat32:
    case ValueType::kFloat64:
      // JSON has no NaN/Inf: write them as strings so nothing is lost.
      if (!std::isfinite(v.f)) return fmt::format("{}", v.f);
      return v.type == ValueType::kFloat32 ? nlohmann::json(static_cast<float>(v.f)) : nlohmann::json(v.f);
    case ValueType::kInt8:
    case ValueType::kInt16:
    case ValueType::kInt32:
    case ValueType::kInt64: return v.i;
    case ValueType::kString: return v.s;
    default: return v.u;
  }
}

std::string ShapeText(const TensorInfo& t) {
  std::string s;
  for (uint32_t d = 0; d < t.n_dims; ++d) s += (d ? " x " : "") + std::to_string(t.ne[d]);
  return s;
}

}  // namespace

size_t Utf8At(std::string_view s, size_t i, uint32_t* cp_out) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t len = 0;
  uint32_t cp = 0;
  if (c < 0x80) {
    if (cp_out != nullptr) *cp_out = c;
    return 1;
  }
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2, cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3, cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4, cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3f);
  }
  static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  if (cp_out != nullptr) *cp_out = cp;
  return len;
}

std::string Grouped(uint64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string DumpJson(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string ValueText(const Value& v, const InfoOptions& opt) {
  if (v.type == ValueType::kString) return "\"" + Escaped(v.s, opt.max_string) + "\"";
  if (v.type != ValueType::kArray) return ScalarText(v);
  std::string out = "[";
  const size_t n = v.array_size();
  const size_t shown = std::min(n, opt.array_head);
  for (size_t i = 0; i < shown; ++i) {
    if (i > 0) out += ", ";
    const Value item = v.ArrayItem(i);
    out += item.type == ValueType::kString ? "\"" + Escaped(item.s, 40) + "\"" : ValueText(item, opt);
  }
  if (n > shown) out += fmt::format(", ... ({} more)", n - shown);
  return out + "]";
}

nlohmann::json ValueJson(const Value& v, const InfoOptions& opt) {
  if (v.type != ValueType::kArray) return ScalarJson(v);
  nlohmann::json items = nlohmann::json::array();
  const size_t n = v.array_size();
  const size_t shown = opt.full_arrays ? n : std::min(n, opt.array_head);
  for (size_t i = 0; i < shown; ++i) items.push_back(ValueJson(v.ArrayItem(i), opt));
  return items;
}

nlohmann::json ErrorJson(const gguf::Error& e, const std::string& path) {
  return {{"file", path},
          {"error",
           {{"code", gguf::ErrorCodeName(e.code)},
            {"field", e.field},
            {"offset", e.has_offset() ? nlohmann::json(e.offset) : nlohmann::json(nullptr)},  // null: no position
            {"expected", e.expected},
            {"actual", e.actual},
            {"message", e.Message()}}}};
}

nlohmann::json InfoJson(const GgufFile& f, const std::string& path, const InfoOptions& opt) {
  nlohmann::json j;
  j["file"] = path;
  j["file_size"] = f.file_size();
  j["header"] = {{"magic", "GGUF"},
                 {"version", f.version()},
                 {"endianness", "little"},
                 {"n_tensors", f.tensors().size()},
                 {"n_kv", f.metadata().size()},
                 {"alignment", f.alignment()},
                 {"header_end", f.header_end()},
                 {"data_offset", f.data_offset()}};
  const ArchSummary a = SummarizeArch(f);
  nlohmann::json arch = {{"arch", a.arch}, {"rope_type", RopeKindName(a.rope)},
                         {"tied_output", a.tied_output}, {"has_output", a.has_output},
                         {"tokenizer_model", a.tokenizer_model}, {"tokenizer_pre", a.tokenizer_pre},
                         {"vocab_source", a.vocab_source}};
  auto put = [&](const char* k, const std::optional<uint64_t>& v) {
    arch[k] = v ? nlohmann::json(*v) : nlohmann::json(nullptr);
  };
  put("n_layers", a.n_layers);
  put("n_embd", a.n_embd);
  put("n_ff", a.n_ff);
  put("n_head", a.n_head);
  put("n_head_kv", a.n_head_kv);
  put("head_dim", a.head_dim);
  put("context_length", a.context_length);
  put("rope_dims", a.rope_dims);
  put("vocab_size", a.vocab_size);
  put("sliding_window", a.sliding_window);
  arch["rope_base"] = a.rope_base ? nlohmann::json(*a.rope_base) : nlohmann::json(nullptr);
  arch["rms_eps"] = a.rms_eps ? nlohmann::json(*a.rms_eps) : nlohmann::json(nullptr);
  j["architecture"] = arch;

  nlohmann::json md = nlohmann::json::array();
  for (const gguf::KeyValue& kv : f.metadata()) {
    nlohmann::json e = {{"key", kv.key}, {"type", gguf::ValueTypeName(kv.value.type)}, {"offset", kv.offset}};
    if (kv.value.type == ValueType::kArray) {
      e["element_type"] = gguf::ValueTypeName(kv.value.elem_type);
      e["length"] = kv.value.array_size();
      e["truncated"] = !opt.full_arrays && kv.value.array_size() > opt.array_head;
    }
    e["value"] = ValueJson(kv.value, opt);
    md.push_back(std::move(e));
  }
  j["metadata"] = std::move(md);

  nlohmann::json ts = nlohmann::json::array();
  for (const TensorInfo& t : f.tensors()) {
    ts.push_back({{"name", t.name},
                  {"type", gguf::TypeName(t.type)},
                  {"type_id", static_cast<uint32_t>(t.type)},
                  {"shape", std::vector<int64_t>(t.ne.begin(), t.ne.begin() + t.n_dims)},
                  {"n_elements", t.n_elements},
                  {"offset", t.offset},
                  {"file_offset", f.data_offset() + t.offset},
                  {"n_bytes", t.n_bytes},
                  {"info_offset", t.info_offset}});
  }
  j["tensors"] = std::move(ts);
  nlohmann::json ws = nlohmann::json::array();
  for (const gguf::Warning& w : f.warnings()) {
    ws.push_back({{"field", w.field}, {"offset", w.offset}, {"message", w.message}});
  }
  j["warnings"] = std::move(ws);
  return j;
}

std::string InfoText(const GgufFile& f, const std::string& path, const InfoOptions& opt) {
  std::string o;
  auto line = [&](std::string_view label, const std::string& value) {
    o += fmt::format("  {:<16}{}\n", label, value);
  };
  o += fmt::format("{}\n", path);
  line("size", Grouped(f.file_size()) + " bytes");
  line("format", fmt::format("GGUF v{}, little-endian, alignment {}", f.version(), f.alignment()));
  line("counts", fmt::format("{} tensors, {} metadata keys", f.tensors().size(), f.metadata().size()));
  uint64_t tensor_bytes = 0;
  for (const TensorInfo& t : f.tensors()) tensor_bytes += t.n_bytes;
  line("data", fmt::format("header ends at byte {}, data section at byte {} ({} bytes of tensors)",
                           Grouped(f.header_end()), Grouped(f.data_offset()), Grouped(tensor_bytes)));

  const ArchSummary a = SummarizeArch(f);
  auto opt_num = [](const std::optional<uint64_t>& v) { return v ? std::to_string(*v) : std::string("-"); };
  o += "\narchitecture\n";
  line("arch", a.arch.empty() ? "(general.architecture missing)" : a.arch);
  line("layers", opt_num(a.n_layers));
  line("embedding", opt_num(a.n_embd));
  line("feed-forward", opt_num(a.n_ff));
  std::string heads = opt_num(a.n_head);
  if (a.n_head_kv) {
    heads += fmt::format(", KV heads {}", *a.n_head_kv);
    if (a.n_head && *a.n_head_kv > 0 && *a.n_head % *a.n_head_kv == 0 && *a.n_head != *a.n_head_kv) {
      heads += fmt::format(" (GQA {}:1)", *a.n_head / *a.n_head_kv);
    }
  }
  if (!a.n_head_note.empty()) heads += " (" + a.n_head_note + ")";
  line("heads", heads);
  line("head dim", opt_num(a.head_dim));
  line("context", opt_num(a.context_length));
  std::string rope = std::string(RopeKindName(a.rope));
  if (a.rope == RopeKind::kNorm) rope += " (adjacent pairs)";
  if (a.rope == RopeKind::kNeox) rope += " (halves)";
  if (a.rope_dims) rope += fmt::format(", {} dims", *a.rope_dims);
  if (a.rope_base) {
    rope += fmt::format(", base {}", *a.rope_base);
  } else if (a.rope == RopeKind::kNorm || a.rope == RopeKind::kNeox) {
    rope += ", base 10000 (llama.cpp's default; no rope.freq_base key)";
  }
  line("rope", rope);
  if (a.rms_eps) line("norm eps", fmt::format("{}", static_cast<float>(*a.rms_eps)));
  if (a.sliding_window) line("sliding window", std::to_string(*a.sliding_window));
  std::string vocab = opt_num(a.vocab_size);
  if (!a.vocab_source.empty()) vocab += " (from " + a.vocab_source + ")";
  if (!a.tokenizer_model.empty()) vocab += ", tokenizer " + a.tokenizer_model;
  if (!a.tokenizer_pre.empty()) vocab += ", pre " + a.tokenizer_pre;
  line("vocab", vocab);
  line("output", a.has_output ? "separate output.weight"
                              : (a.tied_output ? "tied to token_embd.weight" : "no output.weight, no token_embd.weight"));

  if (opt.show_metadata) {
    o += fmt::format("\nmetadata ({} keys)\n", f.metadata().size());
    size_t key_w = 10, type_w = 6;
    for (const gguf::KeyValue& kv : f.metadata()) {
      key_w = std::max(key_w, std::min<size_t>(kv.key.size(), 48));
      type_w = std::max(type_w, TypeText(kv.value).size());
    }
    for (const gguf::KeyValue& kv : f.metadata()) {
      o += fmt::format("  {:<{}}  {:<{}}  {}\n", Escaped(kv.key, 80), key_w, TypeText(kv.value), type_w,
                       ValueText(kv.value, opt));
    }
  }
  if (opt.show_tensors) {
    o += fmt::format("\ntensors ({}, {} bytes; shape is ne0 x ne1 ..., innermost first)\n",
                     f.tensors().size(), Grouped(tensor_bytes));
    size_t name_w = 4, shape_w = 5;
    for (const TensorInfo& t : f.tensors()) {
      name_w = std::max(name_w, std::min<size_t>(t.name.size(), 64));
      shape_w = std::max(shape_w, ShapeText(t).size());
    }
    o += fmt::format("  {:>5}  {:<{}}  {:<8}  {:<{}}  {:>14}  {:>14}\n", "#", "name", name_w, "type", "shape",
                     shape_w, "file offset", "bytes");
    size_t i = 0;
    for (const TensorInfo& t : f.tensors()) {
      o += fmt::format("  {:>5}  {:<{}}  {:<8}  {:<{}}  {:>14}  {:>14}\n", i++, Escaped(t.name, 64), name_w,
                       gguf::TypeName(t.type), ShapeText(t), shape_w, Grouped(f.data_offset() + t.offset),
                       Grouped(t.n_bytes));
    }
  }
  if (!f.warnings().empty()) {
    o += fmt::format("\nwarnings ({})\n", f.warnings().size());
    for (const gguf::Warning& w : f.warnings()) {
      o += fmt::format("  {} at byte {}: {}\n", Escaped(w.field, 80), w.offset, w.message);
    }
  }
  return o;
}

}  // namespace ggufscope::inspect
