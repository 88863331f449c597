// The vocabulary of an imported Hugging Face checkpoint, as GGUF
// tokenizer.ggml.* keys.
//
// A tokenizer.json holding a byte-level BPE whose pre-tokenizer is one that
// llama.cpp names (the GPT-2 ByteLevel regex, or a Split regex identical to
// Llama 3's or Qwen2's) becomes a `gpt2` vocabulary the way convert_hf_to_gguf
// builds one: tokens by id padded with [PAD{i}] (UNUSED) up to vocab_size,
// added tokens CONTROL when special (or shaped like <|...|>) and USER_DEFINED
// otherwise, merges as "left right", special ids from tokenizer_config.json
// then config.json. llama.cpp picks the pre-tokenizer by hashing a test
// string's tokens; we compare the regex text instead, so an unknown one is
// never guessed.
//
// Anything else (no tokenizer.json, SentencePiece, WordPiece, another regex)
// gets a placeholder: the 256 byte-level tokens, "ĠĠ" (two spaces, with its
// one merge), then [PAD{i}], pre-tokenizer gpt-2. It encodes text byte by
// byte, so `run --tokens` and even `run -p` work, and llama.cpp loads it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gguf/error.h"
#include "gguf/writer.h"

namespace ggufscope::gguf {

struct HfVocab {
  std::string model = "gpt2";
  std::string pre = "gpt-2";
  std::vector<std::string> tokens;  // n_vocab
  std::vector<int32_t> types;       // GGUF token types, n_vocab
  std::vector<std::string> merges;
  std::optional<uint32_t> bos, eos, unk, pad;
  std::optional<bool> add_bos, add_eos;
  std::string source;  // what it was built from, for the report
};

// Special token ids from config.json (bos_token_id, eos_token_id, pad_token_id).
struct HfSpecialIds {
  std::optional<uint64_t> bos, eos, pad;
};

// The folder's tokenizer.json as above; nullopt (and *why) when there is none
// or it is of a kind we do not import; an Error when it is malformed.
Result<std::optional<HfVocab>> ReadHfVocab(const std::string& dir, uint64_t n_vocab, const HfSpecialIds& ids,
                                           std::string* why);

// The stand-in vocabulary of n_vocab tokens.
HfVocab PlaceholderVocab(uint64_t n_vocab, const HfSpecialIds& ids);

Status AddVocab(Writer& w, const HfVocab& v);

}  // namespace ggufscope::gguf
