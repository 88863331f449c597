// Tokenizers of the CPU reference, built from GGUF metadata, giving the token
// ids llama.cpp gives (llama-vocab.cpp / unicode.cpp, re-implemented):
//
//  - `llama` (SentencePiece-style): spaces escaped as U+2581, an optional
//    leading space, UTF-8 characters merged pairwise by highest token score
//    (ties: leftmost), unknown pieces as <0xNN> byte tokens.
//  - `gpt2` (byte-level BPE): a pre-tokenizer chosen by tokenizer.ggml.pre
//    (`default` or absent, gpt-2 family, llama3 family, qwen2 family) splits
//    the text into words, each word's bytes are mapped to printable code
//    points, then merged by rank from tokenizer.ggml.merges.
//
// Before either pass, special tokens (CONTROL, USER_DEFINED, UNKNOWN types)
// are cut out of the text as whole strings, longest first; CONTROL and
// UNKNOWN ones only when parse_special is on (USER_DEFINED always, as in
// llama.cpp).
//
// Every array length, id and type is checked in FromGguf; Encode and Decode
// never fail afterwards (invalid UTF-8 is handled as llama.cpp does it).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "gguf/error.h"
#include "gguf/file.h"

namespace ggufscope::reference {

// GGUF token types (tokenizer.ggml.token_type).
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

enum class TokenizerKind { kSpm, kBpe };

// The byte-level BPE pre-tokenizers: llama.cpp's regexes, written by hand.
enum class PreTokenizer {
  kNone,     // SPM
  kDefault,  // [\p{P}\$\+<=>\^~\|]+, kGpt2's, \p{N}+, [0-9][0-9][0-9]: each regex splits the last one's words
  kGpt2,     // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  kLlama3,   // (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  kQwen2,    // as kLlama3 with \p{N} single digits
};

class Tokenizer {
 public:
  static gguf::Result<std::unique_ptr<Tokenizer>> FromGguf(const gguf::GgufFile& f);

  // Token ids of `text`. add_bos is llama.cpp's add_special: the BOS token is
  // prepended when the model asks for it (tokenizer.ggml.add_bos_token;
  // default true for `llama`, false for `gpt2` except the llama3 family).
  std::vector<int32_t> Encode(std::string_view text, bool add_bos, bool parse_special) const;
  // Concatenated pieces; for SPM with a space prefix, one leading space of
  // the first piece is dropped (so Decode(Encode(s)) == s for plain text).
  std::string Decode(std::span<const int32_t> ids) const;
  // The text of one token, as llama.cpp's token_to_piece with special=true:
  // control/user-defined tokens as written, SPM U+2581 as a space, byte
  // tokens as their byte, byte-level BPE unmapped to bytes; unused and
  // undefined tokens and ids out of range give "".
  std::string Piece(int32_t id) const;

  TokenizerKind kind() const { return kind_; }
  PreTokenizer pre_tokenizer() const { return pre_; }
  int32_t n_tokens() const { return static_cast<int32_t>(tokens_.size()); }
  int32_t bos_id() const { return bos_id_; }  // -1 if none
  int32_t eos_id() const { return eos_id_; }  // -1 if none
  bool add_bos() const { return add_bos_; }
  bool add_space_prefix() const { return add_space_prefix_; }
  const std::string& TokenText(int32_t id) const { return tokens_.at(static_cast<size_t>(id)); }
  TokenType Type(int32_t id) const { return types_.at(static_cast<size_t>(id)); }
  bool IsControl(int32_t id) const { return control_.at(static_cast<size_t>(id)); }
  // -1 if `text` is no token.
  int32_t Find(std::string_view text) const;

 private:
  Tokenizer() = default;
  struct Fragment {
    int32_t token = -1;  // a special token, or -1 for text[begin, end)
    size_t begin = 0;
    size_t end = 0;
  };
  std::vector<Fragment> Partition(std::string_view text, bool parse_special) const;
  void EncodeSpm(std::string_view text, std::vector<int32_t>* out) const;
  void EncodeBpe(std::string_view text, std::vector<int32_t>* out) const;
  int32_t SpmByteToken(uint8_t byte) const;
  int32_t MergeRank(std::string_view left, std::string_view right) const;

  TokenizerKind kind_ = TokenizerKind::kSpm;
  PreTokenizer pre_ = PreTokenizer::kNone;
  std::vector<std::string> tokens_;
  std::vector<float> scores_;
  std::vector<TokenType> types_;
  // CONTROL type, or forced to control by name as llama.cpp does for
  // end-of-generation and fill-in-the-middle tokens (e.g. "</s>" in qwen2).
  std::vector<bool> control_;
  std::unordered_map<std::string, int32_t> token_to_id_;  // last duplicate wins, as in llama.cpp
  std::unordered_map<std::string, int32_t> merge_ranks_;  // MergeKey(left, right) -> rank
  std::vector<int32_t> special_ids_;  // CONTROL/USER_DEFINED/UNKNOWN, longest text first
  int32_t bos_id_ = -1;
  int32_t eos_id_ = -1;
  int32_t unk_id_ = -1;
  bool add_bos_ = false;
  bool add_space_prefix_ = false;
  bool ignore_merges_ = false;
};

namespace internal {

// Unicode helpers shared by the BPE tokenizer and its tests.
// Code points of UTF-8 text; each invalid byte becomes U+FFFD (as llama.cpp).
std::vector<uint32_t> DecodeUtf8(std::string_view text);
void AppendUtf8(uint32_t cp, std::string* out);  // > 0x10FFFF appends U+FFFD
bool IsLetter(uint32_t cp);
bool IsNumber(uint32_t cp);
bool IsWhitespace(uint32_t cp);
// Splits code points into words by the pre-tokenizer; returns word lengths
// in code points (summing to cps.size()).
std::vector<size_t> PreTokenize(std::span<const uint32_t> cps, PreTokenizer pre);
// GPT-2's byte <-> printable code point map.
uint32_t ByteToCodepoint(uint8_t b);
// -1 if cp is not the image of a byte.
int ByteFromCodepoint(uint32_t cp);
// The length of the UTF-8 sequence a lead byte announces (1 for stray bytes).
size_t Utf8Len(uint8_t lead);

}  // namespace internal
}  // namespace ggufscope::reference
