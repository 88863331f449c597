#include "cli/cmd_corrupt.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <string_view>

#include "cli/exit_codes.h"
#include "gguf/file.h"
#include "inspect/corrupt.h"

namespace ggufscope::cli {
namespace {

using inspect::CorruptMode;

constexpr std::string_view kModeNames[9] = {"--scale", "--bitflip",   "--nan",
                                            "--inf",   "--zero-rows", "--noise",
                                            "--swap",  "--truncate",  "--set-key"};

int Usage(std::string_view message) {
  fmt::print(stderr, "ggufscope corrupt: {}\n", message);
  return kExitUsage;
}

bool Given(const CLI::Option* o) { return o != nullptr && o->count() > 0; }

}  // namespace

CLI::App* AddCorruptCommand(CLI::App& app, CorruptCliOptions* opt) {
  CLI::App* c = app.add_subcommand(
      "corrupt", "Write a copy of a GGUF file with one injected fault (exactly one mode per call)");
  c->add_option("input", opt->input, "Input GGUF file")->required();
  c->add_option("output", opt->output, "Output GGUF file (written atomically)")->required();
  opt->tensor_opt =
      c->add_option("-t,--tensor", opt->tensor, "The tensor to corrupt (all modes but --set-key)")
          ->type_name("NAME");
  auto** m = opt->mode_opts;
  m[0] = c->add_option("--scale", opt->scale,
                       "Multiply values (float types) or every block scale field (quantized) by S")
             ->type_name("S");
  m[1] =
      c->add_option(
           "--bitflip", opt->bit,
           "Flip bit BIT of element --index (float types) or of block --index's first scale field")
          ->type_name("BIT");
  m[2] = c->add_flag("--nan", opt->nan,
                     "Element --index (float types) or block --index's first scale becomes NaN");
  m[3] = c->add_flag("--inf", opt->inf,
                     "Element --index (float types) or block --index's first scale becomes +Inf");
  m[4] = c->add_option("--zero-rows", opt->zero_rows, "Zero the bytes of the first R rows")
             ->type_name("R");
  m[5] =
      c->add_option(
           "--noise", opt->noise,
           "Add Gaussian noise of SIGMA x the tensor's rms (quantized tensors are stored as F32)")
          ->type_name("SIGMA");
  m[6] = c->add_option("--swap", opt->swap,
                       "Exchange the data of --tensor and OTHER (same type and shape)")
             ->type_name("OTHER");
  m[7] = c->add_option("--truncate", opt->truncate, "End the file BYTES bytes into --tensor's data")
             ->type_name("BYTES");
  m[8] = c->add_option(
              "--set-key", opt->set_key,
              "KEY=VALUE: set a metadata key (parsed as its existing type; a new key is a string)")
             ->type_name("KEY=VALUE");
  opt->index_opt =
      c->add_option(
           "--index", opt->index,
           "Element (float types) or block (quantized) for --bitflip/--nan/--inf (default 0)")
          ->type_name("I");
  opt->seed_opt = c->add_option("--seed", opt->seed, "Seed of --noise (default 0)")->type_name("N");
  return c;
}

int RunCorrupt(const CorruptCliOptions& opt) {
  int mode = -1;
  std::string given;
  for (int i = 0; i < 9; ++i) {
    if (!Given(opt.mode_opts[i])) continue;
    given += (given.empty() ? "" : ", ") + std::string(kModeNames[i]);
    mode = mode == -1 ? i : -2;
  }
  if (mode == -1) {
    return Usage(
        "give one mode: --scale, --bitflip, --nan, --inf, --zero-rows, --noise, --swap, --truncate "
        "or "
        "--set-key");
  }
  if (mode == -2) return Usage(fmt::format("give exactly one mode per call, not {}", given));
  inspect::CorruptSpec spec;
  spec.mode = static_cast<CorruptMode>(mode);
  const bool pokes = spec.mode == CorruptMode::kBitflip || spec.mode == CorruptMode::kNan ||
                     spec.mode == CorruptMode::kInf;
  if (Given(opt.index_opt) && !pokes) return Usage("--index goes with --bitflip, --nan or --inf");
  if (Given(opt.seed_opt) && spec.mode != CorruptMode::kNoise)
    return Usage("--seed goes with --noise");
  if (spec.mode == CorruptMode::kSetKey) {
    if (Given(opt.tensor_opt)) return Usage("--set-key changes metadata; it takes no --tensor");
    const size_t eq = opt.set_key.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Usage(fmt::format("--set-key expects KEY=VALUE, got '{}'", opt.set_key));
    }
    spec.key = opt.set_key.substr(0, eq);
    spec.value = opt.set_key.substr(eq + 1);
  } else if (!Given(opt.tensor_opt)) {
    return Usage(fmt::format("{} needs --tensor NAME", kModeNames[mode]));
  }
  spec.tensor = opt.tensor;
  spec.scale = opt.scale;
  spec.bit = opt.bit;
  spec.index = opt.index;
  spec.rows = opt.zero_rows;
  spec.sigma = opt.noise;
  spec.seed = opt.seed;
  spec.other = opt.swap;
  spec.truncate_bytes = opt.truncate;

  gguf::Result<gguf::GgufFile> in = gguf::GgufFile::Open(opt.input);
  if (!in.ok()) {
    fmt::print(stderr, "ggufscope: {}: {}\n", opt.input, in.error().Message());
    return kExitUnreadable;
  }
  std::string what;
  const gguf::Status s = inspect::Corrupt(*in, opt.output, spec, &what);
  if (s.ok()) {
    fmt::print(stderr, "{}\n", what);
    return kExitOk;
  }
  const gguf::Error& e = s.error();
  switch (e.code) {
    case gguf::ErrorCode::kInvalidArgument:
      return Usage(fmt::format("{}: expected {}, found {}", e.field, e.expected, e.actual));
    case gguf::ErrorCode::kUnsupported:
      return Usage(fmt::format("{}: refused: {}", e.field, e.actual));
    case gguf::ErrorCode::kIo:
      fmt::print(stderr, "ggufscope corrupt: cannot write {}: {}\n", opt.output, e.Message());
      return kExitIo;
    default:  // the input's data did not decode
      fmt::print(stderr, "ggufscope: {}: {}\n", opt.input, e.Message());
      return kExitUnreadable;
  }
}

}  // namespace ggufscope::cli
