#include "cli/cmd_fingerprint.h"

#include <fmt/format.h>

#include <fstream>

#include "cli/exit_codes.h"
#include "gguf/file.h"
#include "inspect/fingerprint.h"
#include "inspect/tensor_stats.h"

namespace ggufscope::cli {

CLI::App* AddFingerprintCommand(CLI::App& app, FingerprintCliOptions* opt) {
  CLI::App* c = app.add_subcommand(
      "fingerprint", "Per-tensor shape, mean and std as JSON (the format of published checkpoint statistics; "
                     "audit --fingerprint compares a file with one)");
  c->add_option("model", opt->model, "GGUF file")->required();
  c->add_option("-o,--output", opt->out, "Write the JSON here (default: stdout)");
  c->add_flag("--exact", opt->exact, "Full-precision means and stds (default: 3 decimals, as published)");
  c->add_option("--threads", opt->threads, "Worker threads (default: all cores)");
  return c;
}

int RunFingerprint(const FingerprintCliOptions& opt) {
  gguf::Result<gguf::GgufFile> f = gguf::GgufFile::Open(opt.model);
  if (!f.ok()) {
    fmt::print(stderr, "ggufscope: {}: {}\n", opt.model, f.error().Message());
    return kExitUnreadable;
  }
  inspect::StatsOptions so;
  so.threads = opt.threads;
  const std::vector<inspect::TensorStats> stats = inspect::ComputeStats(*f, so);
  const std::string text = inspect::FingerprintJson(inspect::FingerprintOf(*f, stats, !opt.exact)).dump(1) + "\n";
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
