// `ggufscope compare`: two traces (GGUF trace files or .npy directories), or
// a model run by two engines, point by point; names the first divergent op.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "cli/compute_options.h"

namespace ggufscope::cli {

struct CompareCliOptions {
  std::vector<std::string> inputs;  // A B (two traces), or MODEL
  std::string a = "cpu", b = "cuda";  // with MODEL: an engine (cpu, cuda) or a trace path per side
  std::string prompt, tokens;       // with MODEL: the input of the engines
  int device = 0;                   // CUDA device index of a cuda side
  std::string map, map_a, map_b;    // name maps (JSON): both sides, A only, B only
  std::vector<std::string> tol;     // "1e-3" (all points), "Kcur=1e-2" (an op), "Kcur-1=1e-2" (a point)
  std::string points;               // regex: only matching points
  bool diverging = false;           // list only the points that diverge
  bool ignore_tokens = false;
  bool json = false;
  std::string html;                 // --html FILE: also write the self-contained HTML report
  std::string inject;               // with MODEL: side B's engine runs with this known bug
  ComputeOptions compute;
};

CLI::App* AddCompareCommand(CLI::App& app, CompareCliOptions* opt);

// Exit codes (cli/exit_codes.h): 0 consistent (every point in both traces
// within tolerance), 1 diverges, 3 an input cannot be read (model, trace,
// name map), the traces were made from different tokens, or no point is in
// both, 64 bad command line, 69 a cuda side cannot run (no usable device),
// 74 the --html file cannot be written.
int RunCompare(const CompareCliOptions& opt, const CLI::App& cmd);

}  // namespace ggufscope::cli
