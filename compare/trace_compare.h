// The compare engine: two traces of the same tokens, point by point, with
// the metrics of metrics.h, a tolerance per point, and the first divergent
// op: the first trace point in graph order whose error is above tolerance
// while every point it is computed from is within tolerance. `ggufscope
// compare` prints it; `doctor` calls it.
//
// Trace A is the reference: relative errors are ||B - A|| / ||A||.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "compare/metrics.h"
#include "compare/trace.h"
#include "gguf/error.h"

namespace ggufscope::compare {

// --- the graph ---------------------------------------------------------------

// Where a point sits in the forward pass: whole-model points before the
// layers (inp_embd), each layer's ops in execution order, then the output
// (result_norm, result_output). Points of ops the table does not know sort
// after the known ops of their layer (or of the model), by name.
struct GraphRank {
  int block = 0;  // -1: before the layers; L: layer L; kOutputBlock: after them
  int index = 0;  // position of the op within its block
  bool known = false;
  auto operator<=>(const GraphRank&) const = default;
};
inline constexpr int kOutputBlock = 1 << 20;
GraphRank RankOf(std::string_view point);

// The points `point` is computed from (llama.cpp's graph: Qcur-L <-
// attn_norm-L, ffn_inp-L <- attn_out-L + l_out-(L-1), ...); the previous
// layer's l_out is inp_embd for layer 0, result_norm reads l_out of the
// last layer (n_layers - 1). Empty for inp_embd and for unknown ops.
std::vector<std::string> GraphInputs(std::string_view point, int n_layers);

// --- tolerances --------------------------------------------------------------

// Relative L2 error above which a point diverges, by op (docs/USER-GUIDE.md,
// "compare", says why these values).
inline constexpr double kDefaultRelL2 = 1e-3;
double DefaultTolerance(std::string_view op);

struct Tolerance {
  std::optional<double> all;                        // --tol X: every point
  std::map<std::string, double, std::less<>> by_name;  // --tol OP=X or --tol POINT=X
  // The point's own entry, else its op's, else `all`, else the default.
  double For(std::string_view point) const;
};

// --- results -----------------------------------------------------------------

enum class Verdict {
  kOk,         // within tolerance
  kDiverges,   // relative L2 above tolerance
  kNonFinite,  // NaN/Inf where the other side has a number (or another non-finite value)
  kShape,      // widths differ: nothing element-wise to compare
  kUnjudged,   // a stats-only side whose statistics do not prove a divergence
};
std::string_view VerdictName(Verdict v);  // "ok", "diverges", "nan/inf", "shape", "unjudged"
inline bool IsBad(Verdict v) { return v == Verdict::kDiverges || v == Verdict::kNonFinite || v == Verdict::kShape; }

struct SideInfo {
  int64_t rows = 0, cols = 0;
  PointStats stats;  // over the whole point (all its rows)
};

struct PointComparison {
  std::string name;
  ParsedName parsed;
  bool in_graph = false;  // an op of the graph table (first-divergent candidates)
  SideInfo a, b;
  // The last `rows` positions of each side are compared (an engine may keep
  // only the rows it needs for the output, as llama.cpp's last layer does).
  int64_t rows = 0;
  bool element_wise = false;  // both sides had data and the widths agreed
  Divergence d;               // over the compared rows (d.n == 0 unless element_wise)
  uint64_t nonfinite_mismatch = 0;  // positions where exactly one side (or a different) non-finite value
  int64_t worst_row = -1;     // compared position (0-based from the first compared) with the largest relative error
  double worst_row_rel_l2 = 0;
  std::optional<double> argmax_agreement;  // result_output: share of positions with the same top-1 token
  std::optional<double> rel_l2_lower_bound;  // stats only: |rms_B - rms_A| / rms_A <= relative L2
  double tol = kDefaultRelL2;
  Verdict verdict = Verdict::kOk;
  std::string note;  // why, in words, when not ok
  std::vector<std::string> inputs;  // the compared points this one is judged against (see EffectiveInputs)
};

struct LayerGain {
  int layer = 0;
  std::string input;          // l_out-(L-1), or inp_embd for layer 0
  double rel_in = 0, rel_out = 0;
  std::optional<double> gain;  // rel_out / rel_in; none when the input matched exactly
};

struct TraceComparison {
  std::vector<PointComparison> points;  // points in both traces, graph order
  std::vector<std::string> only_a, only_b;
  int n_layers = 0;                     // 1 + the largest layer seen
  // Bad points whose inputs were all within tolerance, in graph order; the
  // first of them is the first divergent op.
  std::vector<size_t> origins;
  std::optional<size_t> first_divergent;  // index into points
  std::vector<LayerGain> layers;

  bool consistent() const;
  size_t n_bad() const;
  const PointComparison* Find(std::string_view name) const;
};

struct CompareOptions {
  Tolerance tol;
  std::string points_regex;  // only points whose name matches (search); empty: all
  // Compare traces made from different tokens anyway (off: an error).
  bool ignore_tokens = false;
};

// Errors: the traces were made from different token ids (both say which),
// or points_regex is not a valid regular expression.
gguf::Result<TraceComparison> CompareTraces(const Trace& a, const Trace& b, const CompareOptions& opt);

// One point pair, outside any graph (used by CompareTraces; tol from the caller).
PointComparison ComparePoint(const TracePoint& a, const TracePoint& b, double tol);

}  // namespace ggufscope::compare
