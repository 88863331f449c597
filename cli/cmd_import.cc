#include "cli/cmd_import.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>

#include "cli/exit_codes.h"
#include "gguf/hf_import.h"
#include "inspect/info.h"

namespace ggufscope::cli {

CLI::App* AddImportCommand(CLI::App& app, ImportCliOptions* opt) {
  CLI::App* cmd = app.add_subcommand(
      "import-hf", "Write a Hugging Face checkpoint (llama, qwen2, qwen3, gemma3 safetensors + config.json) as GGUF");
  cmd->add_option("checkpoint", opt->checkpoint, "A .safetensors file (config.json beside it) or a checkpoint folder")
      ->required();
  cmd->add_option("-o,--output", opt->output, "Output GGUF file")->required();
  cmd->add_option("--type", opt->type, "Type of the 2-D weights: f32 (default) or f16; norms and biases stay f32")
      ->check(CLI::IsMember({"f32", "f16"}));
  cmd->add_option("--name", opt->name, "general.name (default: the checkpoint folder's name)");
  cmd->add_flag("--json", opt->json, "Print the import report as JSON");
  return cmd;
}

int RunImport(const ImportCliOptions& opt) {
  gguf::HfImportOptions io;
  io.matrix_type = opt.type == "f16" ? gguf::GgmlType::kF16 : gguf::GgmlType::kF32;
  io.name = opt.name;
  gguf::Result<gguf::HfImport> imp = gguf::ImportHf(opt.checkpoint, io);
  if (!imp.ok()) {
    if (opt.json) {
      fmt::print("{}\n", inspect::DumpJson(inspect::ErrorJson(imp.error(), opt.checkpoint)));
    }
    fmt::print(stderr, "ggufscope: {}: {}\n", opt.checkpoint, imp.error().Message());
    return kExitUnreadable;
  }
  if (const gguf::Status s = imp->writer.WriteFile(opt.output); !s.ok()) {
    fmt::print(stderr, "ggufscope: cannot write {}: {}\n", opt.output, s.error().Message());
    return kExitIo;
  }
  const gguf::HfImportReport& r = imp->report;
  if (opt.json) {
    fmt::print("{}\n", inspect::DumpJson({{"checkpoint", opt.checkpoint},
                                          {"output", opt.output},
                                          {"hf_class", r.hf_class},
                                          {"architecture", r.gguf_arch},
                                          {"type", opt.type},
                                          {"tensors", r.n_tensors},
                                          {"ignored", r.n_ignored},
                                          {"tied_output", r.tied_output},
                                          {"vocab", r.vocab},
                                          {"notes", r.notes}}));
  }
  for (const std::string& n : r.notes) fmt::print(stderr, "note: {}\n", n);
  fmt::print(stderr, "wrote {}: {} ({}), {} tensors ({} matrices), {} dropped{}; vocabulary: {}\n", opt.output,
             r.gguf_arch, r.hf_class, r.n_tensors, opt.type, r.n_ignored, r.tied_output ? ", output tied to token_embd" : "",
             r.vocab);
  return kExitOk;
}

}  // namespace ggufscope::cli
