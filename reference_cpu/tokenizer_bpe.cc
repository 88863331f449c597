// Byte-level BPE (tokenizer.ggml.model == "gpt2"): Unicode classes, the
// hand-written pre-tokenizers, GPT-2's byte map and merging by rank.
// The pre-tokenizers follow llama.cpp's unicode_regex_split_custom_* word
// for word in behaviour (including its quirks), re-implemented here; the
// `default` one also follows how unicode_regex_split chains regexes and how
// its std::regex fallback sees Unicode classes.
#include <algorithm>
#include <array>
#include <cstring>
#include <queue>

#include "reference_cpu/tokenizer.h"

namespace ggufscope::reference {
namespace internal {
namespace {

constexpr uint8_t kOther = 0;
constexpr uint8_t kLetter = 1;  // \p{L}
constexpr uint8_t kNumber = 2;  // \p{N}
constexpr uint8_t kPunct = 3;   // \p{P}

struct UnicodeRun {
  uint32_t first;
  uint8_t cls;  // kOther, kLetter, kNumber or kPunct
};

#include "reference_cpu/unicode_tables.inc"

uint8_t ClassOf(uint32_t cp) {
  if (cp < 0x80) {  // the common case without a search
    if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return kLetter;
    if (cp >= '0' && cp <= '9') return kNumber;
  }
  if (cp >= 0x110000) return kOther;
  const UnicodeRun* end = kUnicodeRuns + kUnicodeRunCount;
  const UnicodeRun* it =
      std::upper_bound(kUnicodeRuns, end, cp, [](uint32_t v, const UnicodeRun& r) { return v < r.first; });
  return (it - 1)->cls;  // kUnicodeRuns[0].first == 0, so it > kUnicodeRuns
}

// What the splitters ask about the code point at a position; `in` is false
// past the end of the text (llama.cpp's empty flags there).
struct Flags {
  bool in = false;
  bool letter = false;
  bool number = false;
  bool space = false;
};

// The text a splitter sees: all of it, or one word an earlier regex left
// (llama.cpp never looks past a word's end, so Cpt/At read "out" there).
class Cursor {
 public:
  explicit Cursor(std::span<const uint32_t> cps) : cps_(cps) {}
  static constexpr uint32_t kOut = 0xFFFFFFFF;
  uint32_t Cpt(size_t pos) const { return pos < cps_.size() ? cps_[pos] : kOut; }
  Flags At(size_t pos) const {
    if (pos >= cps_.size()) return {};
    const uint32_t cp = cps_[pos];
    const uint8_t c = ClassOf(cp);
    return {true, c == kLetter, c == kNumber, IsWhitespace(cp)};
  }
  size_t size() const { return cps_.size(); }

 private:
  std::span<const uint32_t> cps_;
};

// Appends the lengths of the words a splitter cuts, in code points.
class WordCuts {
 public:
  explicit WordCuts(std::vector<size_t>* lens) : lens_(lens) {}
  // Ends the current word at `end` (> every earlier cut); nothing if empty.
  void At(size_t end) {
    if (end > prev_) lens_->push_back(end - prev_);
    prev_ = end;
  }

 private:
  std::vector<size_t>* lens_;
  size_t prev_ = 0;
};

uint32_t AsciiLower(uint32_t cp) { return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp; }

// 's 't 're 've 'm 'll 'd at pos (case-insensitively if `fold`); returns the
// match length in code points or 0.
size_t Contraction(const Cursor& c, size_t pos, bool fold) {
  if (c.Cpt(pos) != '\'' || pos + 1 >= c.size()) return 0;
  auto lower = [&](uint32_t cp) { return fold ? AsciiLower(cp) : cp; };
  const uint32_t a = lower(c.Cpt(pos + 1));
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (pos + 2 >= c.size()) return 0;
  const uint32_t b = lower(c.Cpt(pos + 2));
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

bool IsLnS(const Flags& f) { return f.space || f.letter || f.number; }

// The end of ` ?[^\s\p{L}\p{N}]+` at pos, once the caller has decided that it
// matches there.
size_t OtherRunEnd(const Cursor& c, size_t pos) {
  pos += c.Cpt(pos) == ' ';
  while (c.At(pos).in && !IsLnS(c.At(pos))) ++pos;
  return pos;
}

// The end of the last alternatives shared by the gpt-2 and llama3 regexes,
// `\s+(?!\S)|\s+`, or of one code point where nothing matched. llama.cpp
// counts whitespace and leaves the last one to the next word only when
// something follows (in this word).
size_t TrailingWhitespaceEnd(const Cursor& c, size_t pos) {
  size_t n_ws = 0;
  while (c.At(pos + n_ws).space) ++n_ws;
  if (n_ws > 1 && c.At(pos + n_ws).in) return pos + n_ws - 1;
  return pos + std::max<size_t>(n_ws, 1);
}

void SplitGpt2(const Cursor& c, std::vector<size_t>* lens) {
  WordCuts cut(lens);
  for (size_t pos = 0; pos < c.size();) {
    const uint32_t cpt = c.Cpt(pos);
    if (const size_t n = Contraction(c, pos, false); n > 0) {
      pos += n;
      cut.At(pos);
      continue;
    }
    const Flags f2 = cpt == ' ' ? c.At(pos + 1) : c.At(pos);
    if (f2.letter || f2.number) {  // ` ?\p{L}+` or ` ?\p{N}+`
      const bool letter = f2.letter;
      pos += (cpt == ' ');
      while (letter ? c.At(pos).letter : c.At(pos).number) ++pos;
    } else if (!IsLnS(f2) && f2.in) {  // ` ?[^\s\p{L}\p{N}]+`
      pos = OtherRunEnd(c, pos);
    } else {
      pos = TrailingWhitespaceEnd(c, pos);
    }
    cut.At(pos);
  }
}

// llama3 (digits in runs of up to 3) and qwen2 (single digits).
void SplitLlama3(const Cursor& c, size_t max_digits, std::vector<size_t>* lens) {
  WordCuts cut(lens);
  for (size_t pos = 0; pos < c.size();) {
    const uint32_t cpt = c.Cpt(pos);
    const Flags f = c.At(pos);
    if (const size_t n = Contraction(c, pos, true); n > 0) {
      pos += n;
      cut.At(pos);
      continue;
    }
    // `[^\r\n\p{L}\p{N}]?\p{L}+`
    if (!(cpt == '\r' || cpt == '\n' || f.number) && (f.letter || c.At(pos + 1).letter)) {
      ++pos;
      while (c.At(pos).letter) ++pos;
      cut.At(pos);
      continue;
    }
    if (f.number) {  // `\p{N}{1,max_digits}`
      size_t start = pos;
      while (c.At(pos).number) {
        if (++pos - start >= max_digits) {
          cut.At(pos);
          start = pos;
        }
      }
      cut.At(pos);
      continue;
    }
    // ` ?[^\s\p{L}\p{N}]+[\r\n]*`; llama.cpp asks only that the first code
    // point (the optional space) be in the word.
    const Flags f2 = cpt == ' ' ? c.At(pos + 1) : f;
    if (!IsLnS(f2) && f.in) {
      pos = OtherRunEnd(c, pos);
      while (c.Cpt(pos) == '\r' || c.Cpt(pos) == '\n') ++pos;
      cut.At(pos);
      continue;
    }
    size_t last_rn_end = 0;  // `\s*[\r\n]+`: up to the last \r or \n of the run
    for (size_t p = pos; c.At(p).space; ++p) {
      if (c.Cpt(p) == '\r' || c.Cpt(p) == '\n') last_rn_end = p + 1;
    }
    pos = last_rn_end > 0 ? last_rn_end : TrailingWhitespaceEnd(c, pos);
    cut.At(pos);
  }
}

// llama.cpp's `default` pre-tokenizer is four regexes, each applied to every
// word the previous ones left (never across them), with llama.cpp's regex
// fallback's view of the Unicode classes:
//   1. `[\p{P}\$\+<=>\^~\|]+`  runs of punctuation, and the runs between
//   2. the gpt-2 regex          (so no contraction survives step 1)
//   3. `\p{N}+`                 runs of numbers, and the runs between
//   4. `[0-9][0-9][0-9]`        ASCII digits in threes from the left
//
// Step 1's class as llama.cpp matches it: in ASCII its own list (every
// punctuation and symbol character but '`'), above ASCII general category P
// only (symbols such as '€' or emoji are not in it).
bool InDefaultPunct(uint32_t cp) {
  if (cp < 0x80 && std::string_view("$+<=>^~|").find(static_cast<char>(cp)) != std::string_view::npos) return true;
  return ClassOf(cp) == kPunct;
}

// A regex `[class]+` and the gaps between its matches: maximal runs of code
// points on which `in_class` agrees.
template <typename InClass>
void SplitRuns(const Cursor& c, InClass in_class, std::vector<size_t>* lens) {
  WordCuts cut(lens);
  for (size_t pos = 0; pos < c.size();) {
    const bool in = in_class(c.Cpt(pos));
    ++pos;
    while (pos < c.size() && in_class(c.Cpt(pos)) == in) ++pos;
    cut.At(pos);
  }
}

void SplitAsciiDigitTriples(const Cursor& c, std::vector<size_t>* lens) {
  WordCuts cut(lens);
  auto digit = [&](size_t p) { return c.Cpt(p) >= '0' && c.Cpt(p) <= '9'; };  // kOut is none
  for (size_t pos = 0; pos < c.size();) {
    if (digit(pos) && digit(pos + 1) && digit(pos + 2)) {
      cut.At(pos);
      pos += 3;
      cut.At(pos);
    } else {
      ++pos;
    }
  }
  cut.At(c.size());
}

// Splits each of `words` (lengths of consecutive words of cps) by `split`.
template <typename Split>
std::vector<size_t> SplitEach(std::span<const uint32_t> cps, std::span<const size_t> words, Split split) {
  std::vector<size_t> out;
  out.reserve(words.size());
  size_t at = 0;
  for (const size_t len : words) {
    split(Cursor(cps.subspan(at, len)), &out);
    at += len;
  }
  return out;
}

std::vector<size_t> SplitDefault(std::span<const uint32_t> cps) {
  std::vector<size_t> words;
  if (!cps.empty()) words.push_back(cps.size());
  words = SplitEach(cps, words, [](const Cursor& c, std::vector<size_t>* out) { SplitRuns(c, InDefaultPunct, out); });
  words = SplitEach(cps, words, SplitGpt2);
  words = SplitEach(cps, words, [](const Cursor& c, std::vector<size_t>* out) { SplitRuns(c, IsNumber, out); });
  return SplitEach(cps, words, SplitAsciiDigitTriples);
}

}  // namespace

size_t Utf8Len(uint8_t lead) {
  static constexpr std::array<uint8_t, 16> kLen = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}

std::vector<uint32_t> DecodeUtf8(std::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  auto cont = [&](size_t i) { return i < s.size() && (static_cast<uint8_t>(s[i]) & 0xC0) == 0x80; };
  auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(s[i])); };
  size_t i = 0;
  while (i < s.size()) {
    const uint32_t c0 = b(i);
    if (c0 < 0x80) {
      out.push_back(c0);
      i += 1;
    } else if ((c0 & 0xE0) == 0xC0 && cont(i + 1)) {
      out.push_back(((c0 & 0x1F) << 6) | (b(i + 1) & 0x3F));
      i += 2;
    } else if ((c0 & 0xF0) == 0xE0 && cont(i + 1) && cont(i + 2)) {
      out.push_back(((c0 & 0x0F) << 12) | ((b(i + 1) & 0x3F) << 6) | (b(i + 2) & 0x3F));
      i += 3;
    } else if ((c0 & 0xF8) == 0xF0 && cont(i + 1) && cont(i + 2) && cont(i + 3)) {
      out.push_back(((c0 & 0x07) << 18) | ((b(i + 1) & 0x3F) << 12) | ((b(i + 2) & 0x3F) << 6) | (b(i + 3) & 0x3F));
      i += 4;
    } else {
      out.push_back(0xFFFD);  // stray continuation, bad lead or truncated sequence: one byte
      i += 1;
    }
  }
  return out;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp > 0x10FFFF) cp = 0xFFFD;
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool IsLetter(uint32_t cp) { return ClassOf(cp) == kLetter; }
bool IsNumber(uint32_t cp) { return ClassOf(cp) == kNumber; }

bool IsWhitespace(uint32_t cp) {
  // llama.cpp's \s: 0x09-0x0D, space, NEL, NBSP, and the Unicode spaces.
  if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
  switch (cp) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

std::vector<size_t> PreTokenize(std::span<const uint32_t> cps, PreTokenizer pre) {
  const Cursor c(cps);
  std::vector<size_t> lens;
  switch (pre) {
    case PreTokenizer::kDefault:
      return SplitDefault(cps);
    case PreTokenizer::kGpt2:
      SplitGpt2(c, &lens);
      return lens;
    case PreTokenizer::kLlama3:
      SplitLlama3(c, 3, &lens);
      return lens;
    case PreTokenizer::kQwen2:
      SplitLlama3(c, 1, &lens);
      return lens;
    case PreTokenizer::kNone:
      break;
  }
  if (!cps.empty()) lens.push_back(cps.size());
  return lens;
}

namespace {
bool ByteIsPrintable(int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); }

struct ByteMap {
  std::array<uint32_t, 256> to_cp{};
  ByteMap() {
    uint32_t n = 0;
    for (int b = 0; b < 256; ++b) to_cp[b] = ByteIsPrintable(b) ? static_cast<uint32_t>(b) : 256 + n++;
  }
};
const ByteMap& Bytes() {
  static const ByteMap m;
  return m;
}
}  // namespace

uint32_t ByteToCodepoint(uint8_t b) { return Bytes().to_cp[b]; }

int ByteFromCodepoint(uint32_t cp) {
  if (cp < 256) return ByteIsPrintable(static_cast<int>(cp)) ? static_cast<int>(cp) : -1;
  if (cp >= 256 + 68) return -1;  // 68 bytes are not printable
  for (int b = 0; b < 256; ++b) {
    if (Bytes().to_cp[b] == cp) return b;
  }
  return -1;
}

}  // namespace internal

namespace {
std::string MergeKey(std::string_view left, std::string_view right) {
  std::string key;
  const uint32_t n = static_cast<uint32_t>(left.size());
  key.append(reinterpret_cast<const char*>(&n), sizeof(n));
  key.append(left);
  key.append(right);
  return key;
}
}  // namespace

int32_t Tokenizer::MergeRank(std::string_view left, std::string_view right) const {
  auto it = merge_ranks_.find(MergeKey(left, right));
  return it == merge_ranks_.end() ? -1 : it->second;
}

void Tokenizer::EncodeBpe(std::string_view text, std::vector<int32_t>* out) const {
  const std::vector<uint32_t> cps = internal::DecodeUtf8(text);
  const std::vector<size_t> lens = internal::PreTokenize(cps, pre_);
  struct Symbol {
    int prev, next;
    size_t start, n;
  };
  struct Bigram {
    int left, right;
    int32_t rank;
    size_t left_n, right_n;
  };
  auto worse = [](const Bigram& a, const Bigram& b) {  // top: lowest rank, then leftmost
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  };
  size_t at = 0;
  std::string word, utf8;
  std::vector<Symbol> sym;
  for (const size_t len : lens) {
    word.clear();
    for (size_t i = at; i < at + len; ++i) {
      utf8.clear();
      internal::AppendUtf8(cps[i], &utf8);
      for (const char ch : utf8) internal::AppendUtf8(internal::ByteToCodepoint(static_cast<uint8_t>(ch)), &word);
    }
    at += len;
    if (ignore_merges_) {
      if (const int32_t id = Find(word); id >= 0) {
        out->push_back(id);
        continue;
      }
    }
    sym.clear();
    for (size_t off = 0; off < word.size();) {
      const size_t n = std::min(word.size() - off, internal::Utf8Len(static_cast<uint8_t>(word[off])));
      const int idx = static_cast<int>(sym.size());
      sym.push_back({idx - 1, off + n == word.size() ? -1 : idx + 1, off, n});
      off += n;
    }
    std::priority_queue<Bigram, std::vector<Bigram>, decltype(worse)> queue(worse);
    auto view = [&](int i) { return std::string_view(word).substr(sym[i].start, sym[i].n); };
    auto try_add = [&](int l, int r) {
      if (l < 0 || r < 0) return;
      const int32_t rank = MergeRank(view(l), view(r));
      if (rank >= 0) queue.push({l, r, rank, sym[l].n, sym[r].n});
    };
    for (int i = 1; i < static_cast<int>(sym.size()); ++i) try_add(i - 1, i);
    while (!queue.empty()) {
      const Bigram b = queue.top();
      queue.pop();
      Symbol& l = sym[b.left];
      Symbol& r = sym[b.right];
      if (l.n == 0 || r.n == 0 || l.n != b.left_n || r.n != b.right_n) continue;  // outdated
      l.n += r.n;
      r.n = 0;
      l.next = r.next;
      if (r.next >= 0) sym[r.next].prev = b.left;
      try_add(l.prev, b.left);
      try_add(b.left, l.next);
    }
    for (int i = 0; !sym.empty() && i != -1; i = sym[i].next) {
      if (sym[i].n == 0) continue;
      const std::string_view piece = view(i);
      if (const int32_t id = Find(piece); id >= 0) {
        out->push_back(id);
        continue;
      }
      for (const char ch : piece) {  // llama.cpp looks each byte up as a one-byte token
        if (const int32_t id = Find(std::string_view(&ch, 1)); id >= 0) out->push_back(id);
      }
    }
  }
}

}  // namespace ggufscope::reference
