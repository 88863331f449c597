// `ggufscope doctor`: the file-or-kernel verdict. It puts together
//   1. the audit (structure, values, provenance: proof or evidence),
//   2. a functional check of the file with the CPU reference (perplexity on
//      a short English text shipped in the binary, a short greedy generation),
//   3. optionally counterfactual repairs of the suspects (--what-if),
//   4. optionally the comparison of an engine under test with the reference
//      (a trace file, the CUDA backend, or the reference with an injected bug),
// and prints one verdict with its evidence:
//   FILE CORRUPT                  proof against the file (tensor, why)
//   FILE INTACT, KERNEL DIVERGES  the first divergent op, its layer, metrics, likely cause
//   CONSISTENT                    no proof against the file, the engine (if any) agrees
// Unusual statistics are shown as suspects, never as a verdict.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "compare/trace_compare.h"
#include "inspect/audit.h"
#include "inspect/checkpoint_diff.h"

namespace ggufscope::compare {

enum class DoctorVerdict { kConsistent, kKernelDiverges, kFileCorrupt, kUnreadable };
std::string_view DoctorVerdictName(DoctorVerdict v);  // "CONSISTENT", "FILE INTACT, KERNEL DIVERGES", ...
int DoctorExitCode(DoctorVerdict v);                  // 0, 1, 2, 3

struct DoctorOptions {
  std::string model;
  std::string backend;        // "cuda": compare the CUDA forward pass with the reference
  std::string engine_trace;   // a trace (docs/TRACE-FORMAT.md) of the engine under test
  std::string trace_map;      // name map for engine_trace
  std::string inject;         // a reference/faults.h name: the CPU reference with that bug is the engine
  std::string expect_sha256;  // provenance, passed to the audit
  std::string against;        // a reference copy of the file, passed to the audit
  std::string fingerprint;    // published statistics of the checkpoint (file or folder), passed to the audit
  std::string checkpoint;     // the Hugging Face checkpoint the file comes from (inspect/checkpoint_diff.h)
  bool what_if = false;       // counterfactual repairs of the suspects
  int threads = 0;
  bool progress = false;
};

// A tensor that stands out among its peers (same role in other layers, or
// the other norms): evidence to look at, never a verdict.
struct Suspect {
  std::string tensor;
  std::string peers;       // what it was compared with, in words
  double rms = 0, peer_rms = 0;  // its rms and its peers' median rms
  double ratio = 0;        // rms / peer_rms
  std::string fingerprint;  // with --fingerprint: what the published statistics say, in words
  std::optional<bool> matches_fingerprint;  // with --fingerprint: matches (trained) / departs (a real suspect)
  std::string checkpoint;                   // with --checkpoint: the checkpoint diff of this tensor, in words
  std::optional<bool> matches_checkpoint;   // with --checkpoint: within its type's noise of its source (trained)
};

struct WhatIfResult {
  std::string tensor;
  std::string repair;      // "x 30", ...
  double ppl_before = 0, ppl_after = 0;
  std::string reading;     // what the change says, in words
};

struct FunctionalCheck {
  bool ran = false;
  std::string skipped;     // why not, when !ran
  double ppl = 0;          // on the shipped text
  int n_scored = 0;
  std::string generation;  // greedy continuation of a short prompt
  bool nonfinite = false;  // NaN/Inf logits: the file cannot be run (proof)
  std::string nonfinite_where;
};

struct DoctorReport {
  std::string model;
  DoctorVerdict verdict = DoctorVerdict::kConsistent;
  std::string headline;                  // one line under the verdict
  std::vector<std::string> evidence;     // the reasons, most important first
  inspect::AuditReport audit;
  std::vector<Suspect> suspects;         // strongest first
  FunctionalCheck functional;
  std::vector<WhatIfResult> what_if;
  std::string engine;                    // what was compared ("cuda", "trace T", "reference with bug X"), or empty
  std::string engine_error;              // the engine asked for could not be run or read (then no comparison)
  std::optional<TraceComparison> comparison;
  // With DoctorOptions::checkpoint: the diff against it (a tensor outside its
  // type's noise band, missing, extra or reshaped, or a hyper-parameter that
  // contradicts config.json is proof), or why it could not be made.
  std::optional<inspect::CheckpointDiffReport> checkpoint;
  std::string checkpoint_error;
  std::string likely_cause;              // plain words for the first divergent op
  double seconds = 0;
};

DoctorReport RunDoctor(const DoctorOptions& opt);

// Tensors whose rms departs from their peers' median by more than `factor`
// (either way), strongest first (exposed for tests).
std::vector<Suspect> FindSuspects(const std::vector<inspect::TensorStats>& stats, double factor = 4.0);

// One tensor against its peers (nullopt: unknown, or fewer than two peers).
std::optional<Suspect> PeerComparison(const std::vector<inspect::TensorStats>& stats, const std::string& tensor);

// What usually causes a first divergence at `op` ("Qcur", "kqv_out", ...).
std::string LikelyCause(std::string_view op);

std::string DoctorText(const DoctorReport& r);
nlohmann::json DoctorJson(const DoctorReport& r);

// The English text shipped in the binary for the functional check.
std::string_view ShippedText();

}  // namespace ggufscope::compare
