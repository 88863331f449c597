// Tokenizer construction from GGUF metadata, special-token partitioning,
// SentencePiece-style (`llama`) encoding and decoding. Byte-level BPE is in
// tokenizer_bpe.cc.
#include "reference_cpu/tokenizer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <queue>

namespace ggufscope::reference {
namespace {

using gguf::Error;
using gguf::ErrorCode;
using gguf::ValueType;

constexpr std::string_view kSpace = "\xe2\x96\x81";  // U+2581, SentencePiece's space

Error Bad(ErrorCode code, const gguf::KeyValue* kv, std::string_view key, std::string expected, std::string actual) {
  return Error{code, std::string(key), kv == nullptr ? 0 : kv->offset, std::move(expected), std::move(actual)};
}

std::string Describe(const gguf::Value& v) {
  if (v.type != ValueType::kArray) return std::string(gguf::ValueTypeName(v.type));
  return fmt::format("array of {} {}", v.array_size(), gguf::ValueTypeName(v.elem_type));
}

// An optional boolean key; nullopt if absent or of another type.
std::optional<bool> GetBool(const gguf::GgufFile& f, std::string_view key) {
  const gguf::KeyValue* kv = f.FindKey(key);
  if (kv == nullptr || kv->value.type != ValueType::kBool) return std::nullopt;
  return kv->value.u != 0;
}

void ReplaceAll(std::string* s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s->size());
  for (size_t i = 0; i < s->size();) {
    if (s->compare(i, from.size(), from) == 0) {
      out.append(to);
      i += from.size();
    } else {
      out.push_back((*s)[i++]);
    }
  }
  *s = std::move(out);
}

// The byte of a "<0xNN>" token, or -1.
int HexByte(std::string_view t) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
  int v = 0;
  for (const char c : t.substr(3, 2)) {
    const int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                                   : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

}  // namespace

gguf::Result<std::unique_ptr<Tokenizer>> Tokenizer::FromGguf(const gguf::GgufFile& f) {
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  const std::optional<std::string> model = f.GetString("tokenizer.ggml.model");
  if (!model) {
    return Bad(ErrorCode::kUnsupported, f.FindKey("tokenizer.ggml.model"), "tokenizer.ggml.model", "a string",
               "absent or not a string");
  }
  const gguf::KeyValue* pre_kv = f.FindKey("tokenizer.ggml.pre");
  const std::optional<std::string> pre_str = f.GetString("tokenizer.ggml.pre");
  if (pre_kv != nullptr && !pre_str) {
    return Bad(ErrorCode::kUnsupported, pre_kv, "tokenizer.ggml.pre", "a string", Describe(pre_kv->value));
  }
  const std::string pre = pre_str.value_or("");
  if (*model == "llama") {
    t->kind_ = TokenizerKind::kSpm;
    t->add_space_prefix_ = true;
    t->add_bos_ = true;
  } else if (*model == "gpt2") {
    t->kind_ = TokenizerKind::kBpe;
    // llama.cpp takes an empty or absent name for "default" (with a warning).
    static const std::map<std::string, PreTokenizer, std::less<>> kPre = {
        {"", PreTokenizer::kDefault},        {"default", PreTokenizer::kDefault},
        {"gpt-2", PreTokenizer::kGpt2},      {"phi-2", PreTokenizer::kGpt2},     {"jina-es", PreTokenizer::kGpt2},
        {"jina-de", PreTokenizer::kGpt2},    {"gigachat", PreTokenizer::kGpt2},  {"jina-v2-es", PreTokenizer::kGpt2},
        {"jina-v2-de", PreTokenizer::kGpt2}, {"a.x-4.0", PreTokenizer::kGpt2},   {"mellum", PreTokenizer::kGpt2},
        {"modern-bert", PreTokenizer::kGpt2}, {"exaone4", PreTokenizer::kGpt2},  {"mpt", PreTokenizer::kGpt2},
        {"olmo", PreTokenizer::kGpt2},       {"llama3", PreTokenizer::kLlama3}, {"llama-v3", PreTokenizer::kLlama3},
        {"llama-bpe", PreTokenizer::kLlama3}, {"falcon3", PreTokenizer::kLlama3}, {"falcon-h1", PreTokenizer::kLlama3},
        {"pixtral", PreTokenizer::kLlama3},  {"midm-2.0", PreTokenizer::kLlama3}, {"lfm2", PreTokenizer::kLlama3},
        {"qwen2", PreTokenizer::kQwen2},     {"deepseek-r1-qwen", PreTokenizer::kQwen2},
        {"megrez", PreTokenizer::kQwen2},    {"kormo", PreTokenizer::kQwen2},
    };
    auto it = kPre.find(pre);
    if (it == kPre.end()) {
      return Bad(ErrorCode::kUnsupported, f.FindKey("tokenizer.ggml.pre"), "tokenizer.ggml.pre",
                 "default or a pre-tokenizer of the gpt-2, llama3 or qwen2 families", pre);
    }
    t->pre_ = it->second;
    t->ignore_merges_ = t->add_bos_ = t->pre_ == PreTokenizer::kLlama3;
  } else {
    return Bad(ErrorCode::kUnsupported, f.FindKey("tokenizer.ggml.model"), "tokenizer.ggml.model", "llama or gpt2",
               *model);
  }

  // Tokens.
  const gguf::KeyValue* tok = f.FindKey("tokenizer.ggml.tokens");
  if (tok == nullptr || tok->value.type != ValueType::kArray || tok->value.elem_type != ValueType::kString ||
      tok->value.strings.empty()) {
    return Bad(ErrorCode::kUnsupported, tok, "tokenizer.ggml.tokens", "a non-empty array of strings",
               tok == nullptr ? "absent" : Describe(tok->value));
  }
  const size_t n = tok->value.strings.size();
  if (n > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return Bad(ErrorCode::kTooLarge, tok, "tokenizer.ggml.tokens", "at most 2^31-1 tokens", std::to_string(n));
  }
  t->tokens_ = tok->value.strings;
  for (size_t i = 0; i < n; ++i) {
    if (t->tokens_[i].empty()) t->tokens_[i] = fmt::format("[EMPTY_{}]", i);  // as llama.cpp
    t->token_to_id_[t->tokens_[i]] = static_cast<int32_t>(i);
  }

  // Scores (float32 or int32) and token types (int32), at least n of each.
  t->scores_.assign(n, 0.0f);
  if (const gguf::KeyValue* kv = f.FindKey("tokenizer.ggml.scores"); kv != nullptr) {
    const gguf::Value& v = kv->value;
    const bool f32 = v.elem_type == ValueType::kFloat32, i32 = v.elem_type == ValueType::kInt32;
    if (v.type != ValueType::kArray || !(f32 || i32) || v.raw.size() / 4 < n) {
      return Bad(ErrorCode::kUnsupported, kv, "tokenizer.ggml.scores",
                 fmt::format("an array of at least {} float32 or int32", n), Describe(v));
    }
    for (size_t i = 0; i < n; ++i) {
      if (f32) {
        std::memcpy(&t->scores_[i], v.raw.data() + 4 * i, 4);
      } else {
        int32_t s;
        std::memcpy(&s, v.raw.data() + 4 * i, 4);
        t->scores_[i] = static_cast<float>(s);
      }
    }
  }
  t->types_.assign(n, TokenType::kNormal);
  if (const gguf::KeyValue* kv = f.FindKey("tokenizer.ggml.token_type"); kv != nullptr) {
    const gguf::Value& v = kv->value;
    if (v.type != ValueType::kArray || v.elem_type != ValueType::kInt32 || v.raw.size() / 4 < n) {
      return Bad(ErrorCode::kUnsupported, kv, "tokenizer.ggml.token_type",
                 fmt::format("an array of at least {} int32", n), Describe(v));
    }
    for (size_t i = 0; i < n; ++i) {
      int32_t ty;
      std::memcpy(&ty, v.raw.data() + 4 * i, 4);
      t->types_[i] = (ty >= 0 && ty <= 6) ? static_cast<TokenType>(ty) : TokenType::kUndefined;
    }
  }

  // Merges (BPE): "left right", split at the first space after byte 0;
  // the first occurrence of a pair keeps its rank.
  if (t->kind_ == TokenizerKind::kBpe) {
    const gguf::KeyValue* kv = f.FindKey("tokenizer.ggml.merges");
    if (kv == nullptr || kv->value.type != ValueType::kArray || kv->value.elem_type != ValueType::kString ||
        kv->value.strings.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
      return Bad(ErrorCode::kUnsupported, kv, "tokenizer.ggml.merges", "an array of strings",
                 kv == nullptr ? "absent" : Describe(kv->value));
    }
    const std::vector<std::string>& merges = kv->value.strings;
    t->merge_ranks_.reserve(merges.size());
    for (size_t i = 0; i < merges.size(); ++i) {
      const std::string& m = merges[i];
      const size_t sp = m.find(' ', 1);
      std::string left, right;
      if (sp != std::string::npos) {
        left = m.substr(0, sp);
        right = m.substr(sp + 1);
      }
      std::string key;
      const uint32_t ln = static_cast<uint32_t>(left.size());
      key.append(reinterpret_cast<const char*>(&ln), sizeof(ln));
      key += left;
      key += right;
      t->merge_ranks_.emplace(std::move(key), static_cast<int32_t>(i));
    }
  }

  // Special ids: defaults per model, then the file's, which must be in range.
  const int64_t n64 = static_cast<int64_t>(n);
  int64_t bos = t->kind_ == TokenizerKind::kSpm ? 1 : 11, eos = t->kind_ == TokenizerKind::kSpm ? 2 : 11;
  int64_t unk = t->kind_ == TokenizerKind::kSpm ? 0 : -1;
  for (auto [key, id] : {std::pair<const char*, int64_t*>{"tokenizer.ggml.bos_token_id", &bos},
                         {"tokenizer.ggml.eos_token_id", &eos},
                         {"tokenizer.ggml.unknown_token_id", &unk}}) {
    if (*id >= n64) *id = -1;  // a default the vocabulary does not reach
    const gguf::KeyValue* kv = f.FindKey(key);
    if (kv == nullptr) continue;
    const std::optional<uint64_t> v = kv->value.AsUint();
    if (!v) return Bad(ErrorCode::kUnsupported, kv, key, "an unsigned integer", Describe(kv->value));
    if (*v >= static_cast<uint64_t>(n)) {
      if (*v == 0xFFFFFFFFu || *v == UINT64_MAX) continue;  // "none", as converters write it
      return Bad(ErrorCode::kTooLarge, kv, key, fmt::format("a token id below {}", n), std::to_string(*v));
    }
    *id = static_cast<int64_t>(*v);
  }
  t->bos_id_ = static_cast<int32_t>(bos);
  t->eos_id_ = static_cast<int32_t>(eos);
  t->unk_id_ = static_cast<int32_t>(unk);
  if (std::optional<bool> b = GetBool(f, "tokenizer.ggml.add_bos_token")) t->add_bos_ = *b;
  if (t->kind_ == TokenizerKind::kSpm) {
    if (std::optional<bool> b = GetBool(f, "tokenizer.ggml.add_space_prefix")) t->add_space_prefix_ = *b;
  }

  // Names llama.cpp treats as control whatever their type: end-of-generation
  // always, fill-in-the-middle when the file names no such token.
  t->control_.assign(n, false);
  for (size_t i = 0; i < n; ++i) t->control_[i] = t->types_[i] == TokenType::kControl;
  static const std::vector<std::pair<const char*, std::vector<std::string_view>>> kForced = {
      {nullptr,
       {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>",
        "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
        "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
        "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>", "[e~["}},
      {"tokenizer.ggml.fim_pre_token_id",
       {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>", "<PRE>",
        "\xe2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>"}},
      {"tokenizer.ggml.fim_suf_token_id",
       {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81hole\xef\xbd\x9c>", "<SUF>",
        "\xe2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>"}},
      {"tokenizer.ggml.fim_mid_token_id",
       {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>", "<MID>",
        "\xe2\x96\x81<MID>", "<|code_middle|>", "<|middle|>"}},
      {"tokenizer.ggml.fim_pad_token_id", {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"}},
      {"tokenizer.ggml.fim_rep_token_id", {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"}},
      {"tokenizer.ggml.fim_sep_token_id", {"<|file_sep|>"}},
  };
  for (const auto& [key, names] : kForced) {
    if (key != nullptr && f.FindKey(key) != nullptr) continue;
    for (const std::string_view name : names) {
      if (const int32_t id = t->Find(name); id >= 0) t->control_[static_cast<size_t>(id)] = true;
    }
  }

  // Special tokens, longest text first (ties by id: llama.cpp's sort is not
  // stable, so its order among equal lengths is unspecified).
  for (size_t i = 0; i < n; ++i) {
    const TokenType ty = t->types_[i];
    if (t->control_[i] || ty == TokenType::kUserDefined || ty == TokenType::kUnknown) {
      t->special_ids_.push_back(static_cast<int32_t>(i));
    }
  }
  std::stable_sort(t->special_ids_.begin(), t->special_ids_.end(), [&](int32_t a, int32_t b) {
    return t->tokens_[static_cast<size_t>(a)].size() > t->tokens_[static_cast<size_t>(b)].size();
  });
  return t;
}

int32_t Tokenizer::Find(std::string_view text) const {
  auto it = token_to_id_.find(std::string(text));
  return it == token_to_id_.end() ? -1 : it->second;
}

std::vector<Tokenizer::Fragment> Tokenizer::Partition(std::string_view text, bool parse_special) const {
  std::vector<Fragment> frags;
  if (!text.empty()) frags.push_back({-1, 0, text.size()});
  std::vector<Fragment> next;
  for (const int32_t id : special_ids_) {
    const TokenType ty = types_[static_cast<size_t>(id)];
    if (!parse_special && (control_[static_cast<size_t>(id)] || ty == TokenType::kUnknown)) continue;
    const std::string& s = tokens_[static_cast<size_t>(id)];
    next.clear();
    bool changed = false;
    for (const Fragment& fr : frags) {
      if (fr.token >= 0) {
        next.push_back(fr);
        continue;
      }
      size_t pos = fr.begin;
      while (pos < fr.end) {
        const size_t m = text.substr(0, fr.end).find(s, pos);
        if (m == std::string_view::npos) break;
        if (m > pos) next.push_back({-1, pos, m});
        next.push_back({id, m, m + s.size()});
        pos = m + s.size();
        changed = true;
      }
      if (pos < fr.end) next.push_back({-1, pos, fr.end});
    }
    if (changed) frags.swap(next);
  }
  return frags;
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool add_bos, bool parse_special) const {
  std::vector<int32_t> out;
  if (add_bos && add_bos_ && bos_id_ >= 0) out.push_back(bos_id_);
  bool prev_special = true;  // SPM: a space prefix at the start and after each special token
  for (const Fragment& fr : Partition(text, parse_special)) {
    if (fr.token >= 0) {
      out.push_back(fr.token);
      prev_special = true;
      continue;
    }
    const std::string_view piece = text.substr(fr.begin, fr.end - fr.begin);
    if (kind_ == TokenizerKind::kBpe) {
      EncodeBpe(piece, &out);
    } else {
      // (Built with append, not `s = " "`: GCC 12 at -O3 under ASan warns a
      // false -Wrestrict on the literal assignment.)
      std::string s;
      s.reserve(piece.size() + 1);
      if (add_space_prefix_ && prev_special) s.push_back(' ');
      s.append(piece);
      ReplaceAll(&s, " ", kSpace);
      EncodeSpm(s, &out);
    }
    prev_special = false;
  }
  return out;
}

int32_t Tokenizer::SpmByteToken(uint8_t byte) const {
  if (const int32_t id = Find(fmt::format("<0x{:02X}>", byte)); id >= 0) return id;
  const char c = static_cast<char>(byte);
  return Find(std::string_view(&c, 1));  // llama.cpp throws here; we drop the byte
}

void Tokenizer::EncodeSpm(std::string_view text, std::vector<int32_t>* out) const {
  struct Symbol {
    int prev, next;
    size_t start, n;
  };
  struct Bigram {
    int left, right;
    float score;
    size_t size;
  };
  auto lower = [](const Bigram& a, const Bigram& b) {  // top: highest score, then leftmost
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::vector<Symbol> sym;
  for (size_t off = 0; off < text.size();) {
    const size_t n = std::min(text.size() - off, internal::Utf8Len(static_cast<uint8_t>(text[off])));
    const int idx = static_cast<int>(sym.size());
    sym.push_back({idx - 1, off + n == text.size() ? -1 : idx + 1, off, n});
    off += n;
  }
  if (sym.empty()) return;
  std::priority_queue<Bigram, std::vector<Bigram>, decltype(lower)> queue(lower);
  std::unordered_map<std::string, std::pair<int, int>> rev_merge;
  auto try_add = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    const std::string s(text.substr(sym[l].start, sym[l].n + sym[r].n));
    const int32_t id = Find(s);
    if (id < 0) return;
    queue.push({l, r, scores_[static_cast<size_t>(id)], s.size()});
    rev_merge[s] = {l, r};
  };
  for (int i = 1; i < static_cast<int>(sym.size()); ++i) try_add(i - 1, i);
  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = sym[b.left];
    Symbol& r = sym[b.right];
    if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }
  // A symbol that is no token splits back along the merge that made it, or
  // falls back to byte tokens (depth-limited against hostile vocabularies).
  auto resegment = [&](auto&& self, int i, int depth) -> void {
    const std::string s(text.substr(sym[i].start, sym[i].n));
    if (const int32_t id = Find(s); id >= 0) {
      out->push_back(id);
      return;
    }
    auto p = rev_merge.find(s);
    if (p == rev_merge.end() || depth > 64) {
      for (const char c : s) {
        if (const int32_t id = SpmByteToken(static_cast<uint8_t>(c)); id >= 0) out->push_back(id);
      }
      return;
    }
    self(self, p->second.first, depth + 1);
    self(self, p->second.second, depth + 1);
  };
  for (int i = 0; i != -1; i = sym[i].next) resegment(resegment, i, 0);
}

std::string Tokenizer::Piece(int32_t id) const {
  if (id < 0 || id >= n_tokens()) return "";
  const std::string& text = tokens_[static_cast<size_t>(id)];
  if (control_[static_cast<size_t>(id)]) return text;
  switch (types_[static_cast<size_t>(id)]) {
    case TokenType::kControl:
    case TokenType::kUnknown:
    case TokenType::kUserDefined:
      return text;
    case TokenType::kByte: {
      const int b = HexByte(text);
      if (b >= 0) return std::string(1, static_cast<char>(b));
      if (kind_ == TokenizerKind::kBpe) break;
      return text;
    }
    case TokenType::kNormal:
      break;
    case TokenType::kUnused:
    case TokenType::kUndefined:
      return "";
  }
  if (kind_ == TokenizerKind::kSpm) {
    std::string s = text;
    ReplaceAll(&s, kSpace, " ");
    return s;
  }
  std::string out;
  for (const uint32_t cp : internal::DecodeUtf8(text)) {
    const int b = internal::ByteFromCodepoint(cp);
    if (b >= 0) {
      out.push_back(static_cast<char>(b));
    } else {
      internal::AppendUtf8(cp, &out);  // not a byte image: kept as written
    }
  }
  return out;
}

std::string Tokenizer::Decode(std::span<const int32_t> ids) const {
  std::string out;
  for (const int32_t id : ids) out += Piece(id);
  if (kind_ == TokenizerKind::kSpm && add_space_prefix_ && !out.empty() && out[0] == ' ' && ids[0] >= 0 &&
      ids[0] < n_tokens() && types_[static_cast<size_t>(ids[0])] == TokenType::kNormal) {
    out.erase(0, 1);
  }
  return out;
}

}  // namespace ggufscope::reference
