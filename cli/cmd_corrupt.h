// `ggufscope corrupt`: writes a copy of a GGUF file with one injected fault
// (inspect/corrupt.h), to see how an engine or an audit reacts to it.
#pragma once

#include <cstdint>
#include <string>

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace ggufscope::cli {

struct CorruptCliOptions {
  std::string input;
  std::string output;
  std::string tensor;
  double scale = 1.0;
  uint32_t bit = 0;
  uint64_t index = 0;
  bool nan = false;
  bool inf = false;
  uint64_t zero_rows = 0;
  double noise = 0.0;
  uint64_t seed = 0;
  std::string swap;
  uint64_t truncate = 0;
  std::string set_key;  // KEY=VALUE

  // Set by AddCorruptCommand, so RunCorrupt can tell which options were given
  // (a mode's value may equal its default).
  CLI::Option* tensor_opt = nullptr;
  CLI::Option* index_opt = nullptr;
  CLI::Option* seed_opt = nullptr;
  CLI::Option* mode_opts[9] = {};  // in inspect::CorruptMode order
};

// Adds the `corrupt` subcommand to `app`; parsing writes into `*opt`, which
// must outlive the parse.
CLI::App* AddCorruptCommand(CLI::App& app, CorruptCliOptions* opt);

// Runs it; returns the exit code (cli/exit_codes.h): 0 written, 3 the input
// cannot be read, 64 a bad request (no or several modes, unknown tensor or
// key, bit/index/row count out of range, a mode the type can't express),
// 74 the output cannot be written.
int RunCorrupt(const CorruptCliOptions& opt);

}  // namespace ggufscope::cli
