#include "cli/cmd_tokenize.h"

#include <fmt/format.h>

#include "cli/exit_codes.h"
#include "gguf/file.h"
#include "inspect/info.h"
#include "reference_cpu/tokenizer.h"

namespace ggufscope::cli {

CLI::App* AddTokenizeCommand(CLI::App& app, TokenizeCliOptions* opt) {
  CLI::App* cmd = app.add_subcommand("tokenize", "Token ids and pieces of a text (CPU reference tokenizer, as llama.cpp)");
  cmd->add_option("model", opt->model, "GGUF file")->required();
  cmd->add_option("text", opt->text, "Text to tokenize")->required();
  cmd->add_flag("--json", opt->json, "Print ids, pieces and piece_bytes as JSON");
  cmd->add_flag("--no-bos", opt->no_bos, "Do not prepend BOS (add_special off)");
  cmd->add_flag("--special", opt->special, "Parse control tokens written in the text");
  return cmd;
}

int RunTokenize(const TokenizeCliOptions& opt) {
  gguf::Result<gguf::GgufFile> f = gguf::GgufFile::Open(opt.model);
  if (!f.ok()) {
    fmt::print(stderr, "ggufscope: {}: {}\n", opt.model, f.error().Message());
    return kExitUnreadable;
  }
  gguf::Result<std::unique_ptr<reference::Tokenizer>> tok = reference::Tokenizer::FromGguf(*f);
  if (!tok.ok()) {
    fmt::print(stderr, "ggufscope: {}: {}\n", opt.model, tok.error().Message());
    return kExitUnreadable;
  }
  const std::vector<int32_t> ids = (*tok)->Encode(opt.text, !opt.no_bos, opt.special);
  std::vector<std::string> pieces;
  for (const int32_t id : ids) pieces.push_back((*tok)->Piece(id));
  if (opt.json) {
    // Pieces may be partial UTF-8 (byte tokens): keep them lossless as byte arrays too.
    nlohmann::json bytes = nlohmann::json::array();
    for (const std::string& p : pieces) bytes.push_back(std::vector<uint8_t>(p.begin(), p.end()));
    nlohmann::json j = {{"ids", ids}, {"pieces", pieces}, {"piece_bytes", bytes}};
    fmt::print("{}\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  } else {
    for (size_t i = 0; i < ids.size(); ++i) {
      std::string shown;
      for (const char c : pieces[i]) {
        const auto u = static_cast<unsigned char>(c);
        shown += (u < 0x20 || u == 0x7F) ? fmt::format("\\x{:02x}", u) : std::string(1, c);
      }
      fmt::print("{:>8}  '{}'\n", ids[i], shown);
    }
    fmt::print(stderr, "[{} tokens]\n", ids.size());
  }
  return kExitOk;
}

}  // namespace ggufscope::cli
