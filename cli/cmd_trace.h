// `ggufscope trace`: run an engine (CPU reference or CUDA) over a prompt and
// write every intermediate as a GGUF trace file (docs/TRACE-FORMAT.md).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "cli/compute_options.h"
#include "gguf/error.h"
#include "gguf/file.h"

namespace ggufscope::cli {

struct TraceCliOptions {
  std::string model;
  std::string prompt;       // text, tokenized by the model's tokenizer
  std::string tokens;       // or comma-separated ids
  std::string backend = "cpu";
  int device = 0;           // CUDA device index
  std::string out;          // trace file (.gguf); empty: print statistics only
  std::string points;       // regex: keep matching points
  bool stats_only = false;
  bool json = false;
  std::string inject;       // a known kernel bug in the engine (reference/faults.h names)
  ComputeOptions compute;
};

CLI::App* AddTraceCommand(CLI::App& app, TraceCliOptions* opt);

// --inject BUG (one of reference::AllFaults()'s names), checked at parse time.
void AddInjectOption(CLI::App* cmd, std::string* inject, const std::string& what);

// Exit codes: 0 written, 3 the model cannot be read, 64 bad command line
// (tokens, regex), 69 the CUDA backend cannot run, 74 the trace cannot be
// written.
int RunTrace(const TraceCliOptions& opt);

// Prompt token ids: `prompt` through the model's tokenizer, else `ids`
// ("1,9038,2501"). The error says which input is wrong.
gguf::Result<std::vector<int32_t>> PromptTokens(const gguf::GgufFile& f, const std::string& prompt,
                                                const std::string& ids);

// The exit code of a failed capture or tokenization: 69 for the device
// (cuda::IsDeviceError), 64 for kInvalidArgument, else 3.
int ExitCodeFor(const gguf::Error& e);

// "ggufscope 0.1.0", as trace.producer.
std::string ProducerString();

}  // namespace ggufscope::cli
