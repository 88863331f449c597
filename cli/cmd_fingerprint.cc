#include "cli/cmd_fingerprint.h"

#include <fmt/format.h>

#include <fstream>

#include "cli/exit_codes.h"
#include "gguf/file.h"
#include "inspect/checkpoint_diff.h"
#include "inspect/fingerprint.h"
#include "inspect/tensor_stats.h"

namespace ggufscope::cli {

CLI::App* AddFingerprintCommand(CLI::App& app, FingerprintCliOptions* opt) {
  CLI::App* c = app.add_subcommand(
      "fingerprint", "Per-tensor shape, mean and std as JSON (the format of published checkpoint statistics; "
                     "audit --fingerprint compares a file with one)");
  c->add_option("model", opt->model,
                "GGUF file, or a checkpoint (a folder of *.safetensors with config.json, or one .safetensors file): "
                "its values as the GGUF would store them, keyed by GGUF names")
      ->required();
  c->add_option("-o,--output", opt->out, "Write the JSON here (default: stdout)");
  c->add_flag("--exact", opt->exact, "Full-precision means and stds (default: 3 decimals, as published)");
  c->add_option("--threads", opt->threads, "Worker threads (default: all cores)");
  return c;
}

namespace {

gguf::Result<inspect::Fingerprint> FingerprintOfPath(const FingerprintCliOptions& opt) {
  if (inspect::IsCheckpointPath(opt.model)) return inspect::CheckpointFingerprint(opt.model, !opt.exact, opt.threads);
  gguf::Result<gguf::GgufFile> f = gguf::GgufFile::Open(opt.model);
  if (!f.ok()) return f.error();
  inspect::StatsOptions so;
  so.threads = opt.threads;
  return inspect::FingerprintOf(*f, inspect::ComputeStats(*f, so), !opt.exact);
}

}  // namespace

int RunFingerprint(const FingerprintCliOptions& opt) {
  gguf::Result<inspect::Fingerprint> fp = FingerprintOfPath(opt);
  if (!fp.ok()) {
    fmt::print(stderr, "ggufscope: {}: {}\n", opt.model, fp.error().Message());
    return kExitUnreadable;
  }
  const std::string text = inspect::FingerprintJson(*fp).dump(1) + "\n";
  if (opt.out.empty()) {
    fmt::print("{}", text);
    return kExitOk;
  }
  std::ofstream out(opt.out, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out.good()) {
    fmt::print(stderr, "ggufscope: cannot write {}\n", opt.out);
    return kExitIo;
  }
  return kExitOk;
}

}  // namespace ggufscope::cli
