// `ggufscope hash`: llama-gguf-hash compatible digests and manifest checks.
#pragma once

#include <string>

namespace CLI {
class App;
}  // namespace CLI

namespace ggufscope::cli {

struct HashCliOptions {
  std::string model;
  bool xxh64 = false;
  bool sha1 = false;
  bool sha256 = false;
  bool uuid = false;
  bool all = false;       // xxh64 + sha1 + sha256 (not uuid, as in llama-gguf-hash)
  bool no_layer = false;  // whole-model lines only
  std::string check;      // manifest to verify against
  bool json = false;
  unsigned threads = 0;   // 0 = automatic
};

// Adds the `hash` subcommand to `app`; parsing writes into `*opt`, which must
// outlive the parse.
CLI::App* AddHashCommand(CLI::App& app, HashCliOptions* opt);

// Runs it; returns the exit code (cli/exit_codes.h): 0 hashed / all checks
// matched, 2 a mismatch, 3 the model or the manifest cannot be read or the
// manifest has nothing for this file, 74 stdout could not be written.
int RunHash(const HashCliOptions& opt);

}  // namespace ggufscope::cli
