// `ggufscope audit`: is this file intact? Findings come in three strengths,
// kept apart on purpose (the seed case is a team that took unusual
// statistics for proof):
//   note      shown, not counted: unusual but within what training produces
//   evidence  worth a look, no proof            -> verdict suspicious
//   proof     broken structure, a hash or reference mismatch, NaN/Inf,
//             values no training produces       -> verdict corrupt
#pragma once

#include <nlohmann/json.hpp>
#include <array>
#include <optional>
#include <string>
#include <vector>

#include "gguf/file.h"
#include "inspect/fingerprint.h"
#include "inspect/tensor_stats.h"

namespace ggufscope::inspect {

enum class Severity { kNote, kEvidence, kProof };
enum class Verdict { kIntact, kSuspicious, kCorrupt, kUnreadable };

std::string_view SeverityName(Severity s);  // "note", "evidence", "proof"
std::string_view VerdictName(Verdict v);    // "intact", "suspicious", "corrupt", "unreadable"

struct Finding {
  Severity severity = Severity::kNote;
  std::string check;    // stable id, e.g. "values.nan", "structure.truncated"
  std::string tensor;   // tensor name, or empty
  std::string key;      // metadata key, or empty
  uint64_t offset = 0;  // byte offset in the file the finding points at; gguf::Error::kNoOffset: none (an I/O error)
  std::string message;

  bool has_offset() const { return offset != gguf::Error::kNoOffset; }
};

struct AuditOptions {
  std::string expect_sha256;  // hex; empty: not checked (and not computed)
  std::string manifest;       // llama-gguf-hash manifest path; empty: none
  std::string against;        // reference GGUF path; empty: none
  std::string fingerprint;    // published statistics (inspect/fingerprint.h) or a folder of them; empty: none
  int threads = 0;
  bool progress = false;      // progress bar on stderr
  bool hashes = false;        // per-tensor xxh64 and sha256 (as llama-gguf-hash computes them)
};

struct AuditReport {
  std::string file;
  uint64_t file_size = 0;
  Verdict verdict = Verdict::kIntact;
  std::vector<Finding> findings;
  std::vector<TensorStats> tensors;
  std::optional<std::string> sha256;  // computed when asked for
  // With AuditOptions::fingerprint: the model of the fingerprint that fits
  // the file (empty if none does) and every published tensor's comparison.
  std::string fingerprint_model;
  std::vector<FingerprintMatch> fingerprint;
  // With AuditOptions::hashes: per tensor (file order) {xxh64, sha256} hex,
  // and the whole model's (over all tensor data in order).
  std::vector<std::array<std::string, 2>> tensor_hashes;
  std::array<std::string, 2> model_hashes;
  double seconds = 0;
};

AuditReport Audit(const std::string& path, const AuditOptions& opt);

// The checks on a parsed file, exposed for tests.
void CheckStructure(const gguf::GgufFile& f, std::vector<Finding>& out);
void CheckMetadata(const gguf::GgufFile& f, std::vector<Finding>& out);
void CheckValues(const gguf::GgufFile& f, const std::vector<TensorStats>& stats, std::vector<Finding>& out);
void CheckConsistency(const gguf::GgufFile& f, const std::vector<TensorStats>& stats, std::vector<Finding>& out);

Verdict VerdictOf(const std::vector<Finding>& findings);
int ExitCodeOf(Verdict v);  // 0 intact, 1 suspicious, 2 corrupt, 3 unreadable

nlohmann::json AuditJson(const AuditReport& r);
std::string AuditText(const AuditReport& r, bool all_tensors);

}  // namespace ggufscope::inspect
