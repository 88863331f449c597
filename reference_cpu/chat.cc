#include "reference_cpu/chat.h"

namespace ggufscope::reference {

std::string_view ChatFormatName(ChatFormat f) {
  switch (f) {
    case ChatFormat::kChatMl: return "chatml";
    case ChatFormat::kGemma: return "gemma";
    case ChatFormat::kLlama3: return "llama3";
    case ChatFormat::kNone: return "none";
  }
  return "none";
}

ChatFormat DetectChatFormat(const gguf::GgufFile& f, const Tokenizer& tok) {
  const std::string tmpl = f.GetString("tokenizer.chat_template").value_or("");
  if (tmpl.find("<|im_start|>") != std::string::npos) return ChatFormat::kChatMl;
  if (tmpl.find("<start_of_turn>") != std::string::npos) return ChatFormat::kGemma;
  if (tmpl.find("<|start_header_id|>") != std::string::npos) return ChatFormat::kLlama3;
  // No template (or an unknown one): the vocabulary's turn tokens decide.
  if (tok.Find("<start_of_turn>") >= 0 && tok.Find("<end_of_turn>") >= 0) return ChatFormat::kGemma;
  if (tok.Find("<|im_start|>") >= 0 && tok.Find("<|im_end|>") >= 0) return ChatFormat::kChatMl;
  if (tok.Find("<|start_header_id|>") >= 0 && tok.Find("<|eot_id|>") >= 0) return ChatFormat::kLlama3;
  return ChatFormat::kNone;
}

std::string DefaultSystem(const gguf::GgufFile& f) {
  // Qwen2's template: "...{{ '<|im_start|>system\nYou are a helpful assistant<|im_end|>\n' }}..."
  const std::string tmpl = f.GetString("tokenizer.chat_template").value_or("");
  const std::string open = "<|im_start|>system\n";
  const size_t a = tmpl.find(open);
  if (a == std::string::npos) return "";
  const size_t b = tmpl.find("<|im_end|>", a);
  if (b == std::string::npos) return "";
  const std::string s = tmpl.substr(a + open.size(), b - a - open.size());
  // Only a literal message, not template code.
  return s.find_first_of("{}%") == std::string::npos ? s : "";
}

std::string ApplyChat(ChatFormat format, const std::string& user, const std::string& default_system) {
  switch (format) {
    case ChatFormat::kChatMl: {
      std::string out;
      if (!default_system.empty()) out += "<|im_start|>system\n" + default_system + "<|im_end|>\n";
      return out + "<|im_start|>user\n" + user + "<|im_end|>\n<|im_start|>assistant\n";
    }
    case ChatFormat::kGemma:
      return "<start_of_turn>user\n" + user + "<end_of_turn>\n<start_of_turn>model\n";
    case ChatFormat::kLlama3:
      return "<|start_header_id|>user<|end_header_id|>\n\n" + user +
             "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
    case ChatFormat::kNone: return user;
  }
  return user;
}

std::vector<int32_t> StopTokens(ChatFormat format, const Tokenizer& tok) {
  std::vector<int32_t> stop;
  if (tok.eos_id() >= 0) stop.push_back(tok.eos_id());
  const char* eot = format == ChatFormat::kChatMl  ? "<|im_end|>"
                    : format == ChatFormat::kGemma ? "<end_of_turn>"
                    : format == ChatFormat::kLlama3 ? "<|eot_id|>"
                                                    : nullptr;
  if (eot != nullptr && tok.Find(eot) >= 0) stop.push_back(tok.Find(eot));
  return stop;
}

}  // namespace ggufscope::reference
