// `ggufscope fingerprint`: a file's per-tensor statistics in the format of
// published checkpoint fingerprints (inspect/fingerprint.h), for
// `audit --fingerprint` on other copies of the model.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace ggufscope::cli {

struct FingerprintCliOptions {
  std::string model;
  std::string out;  // empty: stdout
  bool exact = false;
  int threads = 0;
};

CLI::App* AddFingerprintCommand(CLI::App& app, FingerprintCliOptions* opt);
int RunFingerprint(const FingerprintCliOptions& opt);

}  // namespace ggufscope::cli
