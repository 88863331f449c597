#include "gguf/hf_tokenizer.h"

#include <fmt/format.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "gguf/safetensors.h"

namespace ggufscope::gguf {
namespace {

using Json = nlohmann::json;

// GGUF token types (llama.cpp's llama_token_type).
constexpr int32_t kNormal = 1, kControl = 3, kUserDefined = 4, kUnused = 5;

// The Split regexes of tokenizer.json that llama.cpp implements, as written there.
constexpr std::string_view kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the
// others to U+0100 onwards in byte order; as UTF-8.
std::string ByteToken(int b) {
  const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  int cp = b;
  if (!printable) {
    int n = 0;
    for (int c = 0; c < b; ++c) {
      if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF))) ++n;
    }
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// convert_hf_to_gguf's does_token_look_special, for the byte-level case.
bool LooksSpecial(const std::string& t) {
  return t == "<pad>" || t == "<mask>" || (t.starts_with("<|") && t.ends_with("|>") && t.size() >= 4) ||
         (t.starts_with("<unused") && t.ends_with(">"));
}

// Typed lookups that never throw: a wrong type reads as absent.
bool GetBool(const Json& o, const char* key, bool fallback) {
  return o.is_object() && o.contains(key) && o[key].is_boolean() ? o[key].get<bool>() : fallback;
}
std::string GetStr(const Json& o, const char* key) {
  return o.is_object() && o.contains(key) && o[key].is_string() ? o[key].get<std::string>() : "";
}
// A short excerpt for an error message (invalid UTF-8 replaced, never thrown).
std::string Dump(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace).substr(0, 80);
}

// The pre-tokenizer name llama.cpp uses, or "" if we do not recognise it.
std::string PreTokenizerName(const Json& pt) {
  if (!pt.is_object()) return "";
  const std::string type = GetStr(pt, "type");
  if (type == "ByteLevel") {
    return GetBool(pt, "use_regex", true) && !GetBool(pt, "add_prefix_space", false) ? "gpt-2" : "";
  }
  if (type != "Sequence" || !pt.contains("pretokenizers") || !pt["pretokenizers"].is_array() ||
      pt["pretokenizers"].size() != 2) {
    return "";
  }
  const Json& split = pt["pretokenizers"][0];
  const Json& bytes = pt["pretokenizers"][1];
  if (GetStr(split, "type") != "Split" || GetStr(bytes, "type") != "ByteLevel" || GetBool(bytes, "use_regex", true) ||
      GetBool(bytes, "add_prefix_space", false) || !split.contains("pattern") || !split["pattern"].is_object() ||
      !split["pattern"].contains("Regex") || !split["pattern"]["Regex"].is_string()) {
    return "";
  }
  const std::string re = split["pattern"]["Regex"].get<std::string>();
  if (re == kLlama3Regex) return "llama-bpe";
  if (re == kQwen2Regex) return "qwen2";
  return "";
}

Error Bad(const std::string& path, const std::string& field, std::string expected, std::string actual) {
  return Error{ErrorCode::kBadJson, path + ": " + field, Error::kNoOffset, std::move(expected), std::move(actual)};
}

}  // namespace

HfVocab PlaceholderVocab(uint64_t n_vocab, const HfSpecialIds& ids) {
  HfVocab v;
  v.source = fmt::format("placeholder: 256 byte tokens, one merge (two spaces), [PAD<i>] up to {}", n_vocab);
  v.tokens.reserve(n_vocab);
  for (uint64_t i = 0; i < n_vocab; ++i) {
    v.tokens.push_back(i < 256 ? ByteToken(static_cast<int>(i)) : fmt::format("[PAD{}]", i));
    v.types.push_back(i < 256 ? kNormal : kUnused);
  }
  // One real merge (two spaces), so that the vocabulary is a BPE with merges
  // (audit rightly calls a gpt2 vocabulary without any corrupt).
  if (n_vocab > 256) {
    const std::string space = ByteToken(' ');
    v.tokens[256] = space + space;
    v.types[256] = kNormal;
    v.merges.push_back(space + " " + space);
  }
  auto in_range = [&](const std::optional<uint64_t>& id) -> std::optional<uint32_t> {
    if (id && *id < n_vocab) return static_cast<uint32_t>(*id);
    return std::nullopt;
  };
  v.bos = in_range(ids.bos);
  v.eos = in_range(ids.eos);
  v.pad = in_range(ids.pad);
  v.add_bos = false;
  return v;
}

Result<std::optional<HfVocab>> ReadHfVocab(const std::string& dir, uint64_t n_vocab, const HfSpecialIds& ids,
                                           std::string* why) {
  namespace fs = std::filesystem;
  const std::string path = (fs::path(dir) / "tokenizer.json").string();
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    *why = "no tokenizer.json";
    return std::optional<HfVocab>();
  }
  Result<std::string> text = ReadSideFile(path);
  if (!text.ok()) return text.error();
  const Json j = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Bad(path, "top level", "a JSON object", "invalid JSON");
  const Json* model = j.contains("model") && j["model"].is_object() ? &j["model"] : nullptr;
  if (model == nullptr || GetStr(*model, "type") != "BPE" || GetBool(*model, "byte_fallback", false)) {
    *why = "tokenizer.json is not a byte-level BPE (SentencePiece-style or other: use llama.cpp's converter for it)";
    return std::optional<HfVocab>();
  }
  HfVocab v;
  v.pre = PreTokenizerName(j.contains("pre_tokenizer") ? j["pre_tokenizer"] : Json());
  if (v.pre.empty()) {
    *why = "tokenizer.json's pre-tokenizer is not one llama.cpp names (GPT-2 ByteLevel, Llama 3 or Qwen2 regex)";
    return std::optional<HfVocab>();
  }
  if (!model->contains("vocab") || !(*model)["vocab"].is_object()) {
    return Bad(path, "model.vocab", "an object of token: id", "another type");
  }
  v.tokens.assign(n_vocab, "");
  v.types.assign(n_vocab, kNormal);
  std::vector<bool> seen(n_vocab, false);
  std::unordered_map<std::string, uint32_t> by_text;
  auto place = [&](const std::string& tok, const Json& id_json, int32_t type, bool may_repeat) -> Status {
    if (!id_json.is_number_unsigned() || id_json.get<uint64_t>() >= n_vocab) {
      return Bad(path, fmt::format("token {}", Dump(Json(tok))), fmt::format("an id below vocab_size {}", n_vocab),
                 Dump(id_json));
    }
    const uint64_t id = id_json.get<uint64_t>();
    if (seen[id] && !may_repeat) return Bad(path, fmt::format("id {}", id), "one token per id", "two");
    seen[id] = true;
    v.tokens[id] = tok;
    v.types[id] = type;
    by_text[tok] = static_cast<uint32_t>(id);
    return {};
  };
  for (const auto& [tok, id] : (*model)["vocab"].items()) {
    if (Status s = place(tok, id, kNormal, false); !s.ok()) return s.error();
  }
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const Json& a : j["added_tokens"]) {
      if (!a.is_object() || !a.contains("content") || !a["content"].is_string() || !a.contains("id")) {
        return Bad(path, "added_tokens", "objects with id and content", Dump(a));
      }
      const std::string tok = a["content"].get<std::string>();
      const int32_t type = GetBool(a, "special", false) || LooksSpecial(tok) ? kControl : kUserDefined;
      if (Status s = place(tok, a["id"], type, true); !s.ok()) return s.error();
    }
  }
  for (uint64_t i = 0; i < n_vocab; ++i) {
    if (!seen[i]) {
      v.tokens[i] = fmt::format("[PAD{}]", i);
      v.types[i] = kUnused;
    }
  }
  if (model->contains("merges") && (*model)["merges"].is_array()) {
    for (const Json& m : (*model)["merges"]) {
      if (m.is_string()) {
        v.merges.push_back(m.get<std::string>());
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        v.merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
      } else {
        return Bad(path, "model.merges", "\"left right\" strings or [left, right] pairs", Dump(m));
      }
    }
  }

  // Special tokens: tokenizer_config.json by text, then config.json by id.
  const std::string tc_path = (fs::path(dir) / "tokenizer_config.json").string();
  Json tc;
  if (fs::exists(tc_path, ec)) {
    Result<std::string> tc_text = ReadSideFile(tc_path);
    if (!tc_text.ok()) return tc_text.error();
    tc = Json::parse(*tc_text, nullptr, false);
    if (tc.is_discarded() || !tc.is_object()) return Bad(tc_path, "top level", "a JSON object", "invalid JSON");
  }
  auto special = [&](const char* key, const std::optional<uint64_t>& fallback) -> std::optional<uint32_t> {
    if (tc.is_object() && tc.contains(key)) {
      const Json& t = tc[key];
      const Json* content = t.is_string() ? &t : (t.is_object() && t.contains("content")) ? &t["content"] : nullptr;
      if (content != nullptr && content->is_string()) {
        const auto it = by_text.find(content->get<std::string>());
        if (it != by_text.end()) return it->second;
      }
    }
    if (fallback && *fallback < n_vocab) return static_cast<uint32_t>(*fallback);
    return std::nullopt;
  };
  v.bos = special("bos_token", ids.bos);
  v.eos = special("eos_token", ids.eos);
  v.unk = special("unk_token", std::nullopt);
  v.pad = special("pad_token", ids.pad);
  if (tc.is_object() && tc.contains("add_bos_token") && tc["add_bos_token"].is_boolean()) {
    v.add_bos = tc["add_bos_token"].get<bool>();
  }
  if (tc.is_object() && tc.contains("add_eos_token") && tc["add_eos_token"].is_boolean()) {
    v.add_eos = tc["add_eos_token"].get<bool>();
  }
  v.source = fmt::format("tokenizer.json (byte-level BPE, pre-tokenizer {}, {} merges)", v.pre, v.merges.size());
  return std::optional<HfVocab>(std::move(v));
}

Status AddVocab(Writer& w, const HfVocab& v) {
  Value types;
  types.type = ValueType::kArray;
  types.elem_type = ValueType::kInt32;
  types.raw.resize(v.types.size() * 4);
  for (size_t i = 0; i < v.types.size(); ++i) {
    for (int b = 0; b < 4; ++b) types.raw[4 * i + b] = static_cast<uint8_t>(static_cast<uint32_t>(v.types[i]) >> (8 * b));
  }
  Status s = w.AddKv("tokenizer.ggml.model", Value::Str(v.model));
  if (s.ok()) s = w.AddKv("tokenizer.ggml.pre", Value::Str(v.pre));
  if (s.ok()) s = w.AddKv("tokenizer.ggml.tokens", Value::StrArray(v.tokens));
  if (s.ok()) s = w.AddKv("tokenizer.ggml.token_type", std::move(types));
  if (s.ok()) s = w.AddKv("tokenizer.ggml.merges", Value::StrArray(v.merges));
  for (const auto& [key, id] : {std::pair{"tokenizer.ggml.bos_token_id", v.bos}, std::pair{"tokenizer.ggml.eos_token_id", v.eos},
                                std::pair{"tokenizer.ggml.unknown_token_id", v.unk},
                                std::pair{"tokenizer.ggml.padding_token_id", v.pad}}) {
    if (s.ok() && id) s = w.AddKv(key, Value::U(ValueType::kUint32, *id));
  }
  if (s.ok() && v.add_bos) s = w.AddKv("tokenizer.ggml.add_bos_token", Value::Bool(*v.add_bos));
  if (s.ok() && v.add_eos) s = w.AddKv("tokenizer.ggml.add_eos_token", Value::Bool(*v.add_eos));
  return s;
}

}  // namespace ggufscope::gguf
