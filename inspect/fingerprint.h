// Published per-tensor statistics of a trained checkpoint (a "fingerprint":
// shape, mean and std of every tensor, keyed by GGUF name), and the check of
// a GGUF file against one. A tensor that matches its checkpoint's statistics
// is what training produced, however odd it looks; one that departs is a real
// suspect. Format: docs/CHECKS.md ("Fingerprints"); it reads the files in
// ../shared/fingerprints as they are.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gguf/error.h"
#include "gguf/file.h"
#include "inspect/tensor_stats.h"

namespace ggufscope::inspect {

struct FingerprintEntry {
  std::string gguf;            // GGUF tensor name
  std::string hf;              // checkpoint name (may be empty)
  std::vector<int64_t> shape;  // outermost first (PyTorch order)
  double mean = 0, std = 0;
};

struct Fingerprint {
  std::string model, architecture, source, precision;
  // "gguf": values as a GGUF file stores them (ggufscope's own fingerprints,
  // of a file or of a checkpoint with the conversion conventions applied);
  // absent: the checkpoint's values as published (Gemma norms without + 1).
  std::string conventions;
  std::vector<FingerprintEntry> tensors;
};

// Reads a fingerprint JSON file (at most 64 MiB, 2^20 tensors); a clear error
// naming the field on anything else.
gguf::Result<Fingerprint> ReadFingerprint(const std::string& path);
gguf::Result<Fingerprint> ParseFingerprint(std::string_view json, const std::string& what);

// The fingerprint of a GGUF file, from its tensor statistics (means and stds
// rounded as the published ones are, to 3 decimals unless exact).
Fingerprint FingerprintOf(const gguf::GgufFile& f, const std::vector<TensorStats>& stats, bool round = true);
nlohmann::json FingerprintJson(const Fingerprint& fp);

struct FingerprintMatch {
  std::string tensor;
  bool compared = false;  // false: shape differs or the tensor is absent from the file
  bool matches = false;
  double mean = 0, std = 0;          // the file's
  double pub_mean = 0, pub_std = 0;  // the published
  std::string message;
};

// Each published tensor against the file's statistics. Tolerances: the
// published values are rounded to 3 decimals and quantization adds noise of
// a few percent of a tensor's std, so a mean matches within 0.002 + 0.1 std
// and a std within 0.002 + 15%; Gemma-family files store norms as value + 1
// (means compared after subtracting 1, unless the fingerprint's conventions
// are "gguf").
std::vector<FingerprintMatch> CompareFingerprint(const gguf::GgufFile& f, const std::vector<TensorStats>& stats,
                                                 const Fingerprint& fp);

}  // namespace ggufscope::inspect
