// Chat formats of the supported families, chosen from tokenizer.chat_template
// by its markers (the template is never executed), else from the
// vocabulary's own turn tokens.
#pragma once

#include <string>
#include <vector>

#include "gguf/file.h"
#include "reference_cpu/tokenizer.h"

namespace ggufscope::reference {

enum class ChatFormat { kNone, kChatMl, kGemma, kLlama3 };

std::string_view ChatFormatName(ChatFormat f);  // "chatml", "gemma", "llama3", "none"

ChatFormat DetectChatFormat(const gguf::GgufFile& f, const Tokenizer& tok);

// The prompt of one user turn followed by the opening of the assistant's turn
// (BOS is the tokenizer's business). ChatML gets the default system message
// when the model's template supplies one.
std::string ApplyChat(ChatFormat format, const std::string& user, const std::string& default_system);

// The system message a ChatML template inserts when none is given ("" if none).
std::string DefaultSystem(const gguf::GgufFile& f);

// Tokens that end the assistant's turn: EOS, and the format's end-of-turn token.
std::vector<int32_t> StopTokens(ChatFormat format, const Tokenizer& tok);

}  // namespace ggufscope::reference
