// `ggufscope tokenize`: the CPU reference's tokenizer on a text.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace ggufscope::cli {

struct TokenizeCliOptions {
  std::string model;
  std::string text;
  bool json = false;
  bool no_bos = false;   // do not prepend BOS even if the model asks for it
  bool special = false;  // parse control tokens written in the text
};

CLI::App* AddTokenizeCommand(CLI::App& app, TokenizeCliOptions* opt);
int RunTokenize(const TokenizeCliOptions& opt);

}  // namespace ggufscope::cli
