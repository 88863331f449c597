// `ggufscope import-hf`: a Hugging Face checkpoint (safetensors + config.json)
// written as GGUF, the way llama.cpp's converter writes it (gguf/hf_import.h).
#pragma once

#include <string>

namespace CLI {
class App;
}  // namespace CLI

namespace ggufscope::cli {

struct ImportCliOptions {
  std::string checkpoint;  // a .safetensors file (config.json beside it) or a folder
  std::string output;
  std::string type = "f32";  // matrices: f32 or f16 (norms and vectors are always f32)
  std::string name;          // general.name
  bool json = false;
};

// Adds the `import-hf` subcommand to `app`; parsing writes into `*opt`,
// which must outlive the parse.
CLI::App* AddImportCommand(CLI::App& app, ImportCliOptions* opt);

// Returns the exit code (cli/exit_codes.h): 0 written, 3 the checkpoint cannot
// be read or converted (malformed, or a model or setting GGUF cannot
// express), 74 the output could not be written.
int RunImport(const ImportCliOptions& opt);

}  // namespace ggufscope::cli
