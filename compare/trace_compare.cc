#include "compare/trace_compare.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <regex>
#include <set>
#include <unordered_map>

namespace ggufscope::compare {
namespace {

enum class From { kSameLayer, kPrevLayer, kLastLayer };
enum class Block { kBefore, kLayer, kAfter };

struct InputRef {
  std::string_view op;
  From from;
};

// llama.cpp's decoder graph (llm_build_llama / llm_build_qwen2 / ...), as
// the reference computes it and names its intermediates. Qcur and Kcur are
// captured after RoPE (and after the q/k head norms where a family has them);
// attn_out and ffn_out after the post norms of families that have them.
struct OpSpec {
  std::string_view op;
  Block block;
  std::array<InputRef, 3> inputs;
  int n_inputs;
};

constexpr std::array<OpSpec, 15> kGraph = {{
    {"inp_embd", Block::kBefore, {}, 0},
    {"attn_norm", Block::kLayer, {{{"l_out", From::kPrevLayer}}}, 1},
    {"Qcur", Block::kLayer, {{{"attn_norm", From::kSameLayer}}}, 1},
    {"Kcur", Block::kLayer, {{{"attn_norm", From::kSameLayer}}}, 1},
    {"Vcur", Block::kLayer, {{{"attn_norm", From::kSameLayer}}}, 1},
    {"kqv_out", Block::kLayer,
     {{{"Qcur", From::kSameLayer}, {"Kcur", From::kSameLayer}, {"Vcur", From::kSameLayer}}}, 3},
    {"attn_out", Block::kLayer, {{{"kqv_out", From::kSameLayer}}}, 1},
    {"ffn_inp", Block::kLayer, {{{"attn_out", From::kSameLayer}, {"l_out", From::kPrevLayer}}}, 2},
    {"ffn_norm", Block::kLayer, {{{"ffn_inp", From::kSameLayer}}}, 1},
    {"ffn_gate", Block::kLayer, {{{"ffn_norm", From::kSameLayer}}}, 1},
    {"ffn_up", Block::kLayer, {{{"ffn_norm", From::kSameLayer}}}, 1},
    {"ffn_out", Block::kLayer, {{{"ffn_gate", From::kSameLayer}, {"ffn_up", From::kSameLayer}}}, 2},
    {"l_out", Block::kLayer, {{{"ffn_out", From::kSameLayer}, {"ffn_inp", From::kSameLayer}}}, 2},
    {"result_norm", Block::kAfter, {{{"l_out", From::kLastLayer}}}, 1},
    {"result_output", Block::kAfter, {{{"result_norm", From::kSameLayer}}}, 1},
}};

const OpSpec* FindOp(std::string_view op, int layer) {
  for (const OpSpec& s : kGraph) {
    if (s.op == op && (s.block == Block::kLayer) == (layer >= 0)) return &s;
  }
  return nullptr;
}

// Relative L2 over the finite pairs of one row.
double RowRelL2(std::span<const float> a, std::span<const float> b) {
  double d2 = 0, a2 = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) continue;
    const double d = static_cast<double>(b[i]) - a[i];
    d2 += d * d;
    a2 += static_cast<double>(a[i]) * a[i];
  }
  if (a2 > 0) return std::sqrt(d2 / a2);
  return d2 > 0 ? std::numeric_limits<double>::infinity() : 0.0;
}

// Index of the largest finite value (the first of equals); -1 if none.
int64_t Argmax(std::span<const float> x) {
  int64_t best = -1;
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isfinite(x[i]) && (best < 0 || x[i] > x[static_cast<size_t>(best)])) best = static_cast<int64_t>(i);
  }
  return best;
}

// Same kind of non-finite value (NaN with NaN, +Inf with +Inf) or both finite.
bool SameFiniteness(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  if (std::isinf(a) || std::isinf(b)) return a == b;
  return true;
}

std::string NonFiniteNote(const PointComparison& c) {
  return fmt::format("{} position(s) where A and B disagree on NaN/Inf (A {} NaN {} Inf, B {} NaN {} Inf)",
                     c.nonfinite_mismatch, c.a.stats.nan, c.a.stats.inf, c.b.stats.nan, c.b.stats.inf);
}

}  // namespace

GraphRank RankOf(std::string_view point) {
  const ParsedName p = ParsePointName(point);
  int before = 0, in_layer = 0, after = 0;
  for (const OpSpec& s : kGraph) {
    int& counter = s.block == Block::kBefore ? before : s.block == Block::kLayer ? in_layer : after;
    if (s.op == p.op && (s.block == Block::kLayer) == (p.layer >= 0)) {
      const int block = s.block == Block::kBefore ? -1 : s.block == Block::kLayer ? p.layer : kOutputBlock;
      return {block, counter, true};
    }
    ++counter;
  }
  return {p.layer >= 0 ? p.layer : kOutputBlock + 1, 1000, false};
}

std::vector<std::string> GraphInputs(std::string_view point, int n_layers) {
  const ParsedName p = ParsePointName(point);
  const OpSpec* s = FindOp(p.op, p.layer);
  std::vector<std::string> out;
  if (s == nullptr) return out;
  for (int i = 0; i < s->n_inputs; ++i) {
    const InputRef& in = s->inputs[static_cast<size_t>(i)];
    switch (in.from) {
      case From::kSameLayer: out.push_back(PointName(in.op, p.layer)); break;
      case From::kPrevLayer: out.push_back(p.layer == 0 ? "inp_embd" : PointName(in.op, p.layer - 1)); break;
      case From::kLastLayer:
        if (n_layers > 0) out.push_back(PointName(in.op, n_layers - 1));
        break;
    }
  }
  return out;
}

double DefaultTolerance(std::string_view op) {
  (void)op;  // one value for every op today; see docs/USER-GUIDE.md
  return kDefaultRelL2;
}

double Tolerance::For(std::string_view point) const {
  if (const auto it = by_name.find(point); it != by_name.end()) return it->second;
  const ParsedName p = ParsePointName(point);
  if (const auto it = by_name.find(p.op); it != by_name.end()) return it->second;
  return all ? *all : DefaultTolerance(p.op);
}

std::string_view VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kOk: return "ok";
    case Verdict::kDiverges: return "diverges";
    case Verdict::kNonFinite: return "nan/inf";
    case Verdict::kShape: return "shape";
    case Verdict::kUnjudged: return "unjudged";
  }
  return "?";
}

PointComparison ComparePoint(const TracePoint& a, const TracePoint& b, double tol) {
  PointComparison c;
  c.name = a.name;
  c.parsed = ParsePointName(a.name);
  c.a = {a.rows, a.cols, a.stats};
  c.b = {b.rows, b.cols, b.stats};
  c.tol = tol;
  c.rows = std::min(a.rows, b.rows);
  if (a.cols != b.cols) {
    c.verdict = Verdict::kShape;
    c.note = fmt::format("widths differ: A ({}, {}), B ({}, {}){}", a.rows, a.cols, b.rows, b.cols,
                         a.rows == b.cols && a.cols == b.rows ? ": transposed?" : "");
    return c;
  }
  if (!a.has_data() || !b.has_data()) {
    // Statistics only. | ||B|| - ||A|| | <= ||B - A||, so a difference of
    // norms bounds the relative L2 error from below and can prove a
    // divergence (never rule one out).
    if (a.rows == b.rows && a.stats.nan + a.stats.inf != b.stats.nan + b.stats.inf) {
      c.verdict = Verdict::kNonFinite;
      c.note = fmt::format("NaN/Inf counts differ: A {} NaN {} Inf, B {} NaN {} Inf", a.stats.nan, a.stats.inf,
                           b.stats.nan, b.stats.inf);
      return c;
    }
    if (a.rows == b.rows && a.stats.rms > 0) {
      c.rel_l2_lower_bound = std::fabs(b.stats.rms - a.stats.rms) / a.stats.rms;
      if (*c.rel_l2_lower_bound > tol) {
        c.verdict = Verdict::kDiverges;
        c.note = fmt::format("statistics only: rms {:.6g} vs {:.6g}, so relative L2 >= {:.3g} > tol {:.3g}",
                             a.stats.rms, b.stats.rms, *c.rel_l2_lower_bound, tol);
        return c;
      }
    }
    c.verdict = Verdict::kUnjudged;
    c.note = "statistics only: no element-wise comparison";
    return c;
  }
  c.element_wise = true;
  const size_t off_a = static_cast<size_t>((a.rows - c.rows) * a.cols);
  const size_t off_b = static_cast<size_t>((b.rows - c.rows) * b.cols);
  const size_t n = static_cast<size_t>(c.rows * a.cols);
  const std::span<const float> xa = std::span<const float>(a.data).subspan(off_a, n);
  const std::span<const float> xb = std::span<const float>(b.data).subspan(off_b, n);
  c.d = Diverge(xb, xa);  // B under test, A the reference
  for (size_t i = 0; i < n; ++i) c.nonfinite_mismatch += !SameFiniteness(xa[i], xb[i]);
  const size_t w = static_cast<size_t>(a.cols);
  uint64_t same_top1 = 0;
  for (int64_t r = 0; r < c.rows; ++r) {
    const auto ra = xa.subspan(static_cast<size_t>(r) * w, w), rb = xb.subspan(static_cast<size_t>(r) * w, w);
    const double e = RowRelL2(ra, rb);
    if (c.worst_row < 0 || e > c.worst_row_rel_l2) {
      c.worst_row = r;
      c.worst_row_rel_l2 = e;
    }
    same_top1 += Argmax(ra) == Argmax(rb);
  }
  if (c.parsed.op == "result_output" && c.parsed.layer < 0 && c.rows > 0) {
    c.argmax_agreement = static_cast<double>(same_top1) / static_cast<double>(c.rows);
  }
  if (c.nonfinite_mismatch > 0) {
    c.verdict = Verdict::kNonFinite;
    c.note = NonFiniteNote(c);
  } else if (!(c.d.rel_l2 <= tol)) {
    c.verdict = Verdict::kDiverges;
    c.note = fmt::format("relative L2 {:.3g} > tol {:.3g}", c.d.rel_l2, tol);
  }
  return c;
}

bool TraceComparison::consistent() const { return n_bad() == 0; }

size_t TraceComparison::n_bad() const {
  return static_cast<size_t>(std::count_if(points.begin(), points.end(), [](const PointComparison& p) {
    return IsBad(p.verdict);
  }));
}

const PointComparison* TraceComparison::Find(std::string_view name) const {
  for (const PointComparison& p : points) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

gguf::Result<TraceComparison> CompareTraces(const Trace& a, const Trace& b, const CompareOptions& opt) {
  if (!opt.ignore_tokens && a.header.tokens && b.header.tokens && *a.header.tokens != *b.header.tokens) {
    auto show = [](const std::vector<int32_t>& t) {
      std::string s;
      for (size_t i = 0; i < t.size() && i < 8; ++i) s += fmt::format("{}{}", i ? "," : "", t[i]);
      return fmt::format("{} tokens [{}{}]", t.size(), s, t.size() > 8 ? ",..." : "");
    };
    return gguf::Error{gguf::ErrorCode::kInvalidArgument, "trace.tokens", gguf::Error::kNoOffset,
                       fmt::format("the same tokens on both sides (A: {})", show(*a.header.tokens)),
                       fmt::format("B: {}", show(*b.header.tokens))};
  }
  std::optional<std::regex> filter;
  if (!opt.points_regex.empty()) {
    try {
      filter.emplace(opt.points_regex, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      return gguf::Error{gguf::ErrorCode::kInvalidArgument, "--points", gguf::Error::kNoOffset, "an ECMAScript regular expression",
                         fmt::format("'{}' ({})", opt.points_regex, e.what())};
    }
  }
  auto wanted = [&](const std::string& name) { return !filter || std::regex_search(name, *filter); };

  TraceComparison r;
  std::vector<std::pair<const TracePoint*, const TracePoint*>> pairs;
  for (const TracePoint& pa : a.points) {
    if (!wanted(pa.name)) continue;
    const TracePoint* pb = b.Find(pa.name);
    if (pb == nullptr) {
      r.only_a.push_back(pa.name);
    } else {
      pairs.emplace_back(&pa, pb);
    }
  }
  for (const TracePoint& pb : b.points) {
    if (wanted(pb.name) && a.Find(pb.name) == nullptr) r.only_b.push_back(pb.name);
  }
  for (const Trace* t : {&a, &b}) {
    for (const TracePoint& p : t->points) {
      const ParsedName n = ParsePointName(p.name);
      if (n.layer >= 0 && FindOp(n.op, n.layer) != nullptr) r.n_layers = std::max(r.n_layers, n.layer + 1);
    }
  }
  std::sort(pairs.begin(), pairs.end(), [](const auto& x, const auto& y) {
    const GraphRank rx = RankOf(x.first->name), ry = RankOf(y.first->name);
    return rx != ry ? rx < ry : x.first->name < y.first->name;
  });
  std::unordered_map<std::string, size_t> index;
  for (const auto& [pa, pb] : pairs) {
    PointComparison c = ComparePoint(*pa, *pb, opt.tol.For(pa->name));
    c.in_graph = RankOf(pa->name).known;
    index[c.name] = r.points.size();
    r.points.push_back(std::move(c));
  }

  // Each point is judged against its nearest judged ancestors: a graph input
  // that is missing (or statistics only) is replaced by its own inputs.
  std::unordered_map<std::string, std::set<std::string>> memo;
  auto effective = [&](auto&& self, const std::string& point) -> const std::set<std::string>& {
    if (const auto it = memo.find(point); it != memo.end()) return it->second;
    std::set<std::string> out;
    for (const std::string& in : GraphInputs(point, r.n_layers)) {
      const auto it = index.find(in);
      if (it != index.end() && r.points[it->second].verdict != Verdict::kUnjudged) {
        out.insert(in);
      } else {
        const std::set<std::string>& up = self(self, in);
        out.insert(up.begin(), up.end());
      }
    }
    return memo.emplace(point, std::move(out)).first->second;
  };
  for (size_t i = 0; i < r.points.size(); ++i) {
    PointComparison& c = r.points[i];
    const std::set<std::string>& in = effective(effective, c.name);
    c.inputs.assign(in.begin(), in.end());
    std::sort(c.inputs.begin(), c.inputs.end(), [](const std::string& x, const std::string& y) {
      return RankOf(x) < RankOf(y);
    });
    if (!c.in_graph || !IsBad(c.verdict)) continue;
    const bool inputs_ok = std::all_of(c.inputs.begin(), c.inputs.end(), [&](const std::string& n) {
      return r.points[index.at(n)].verdict == Verdict::kOk;
    });
    if (inputs_ok) r.origins.push_back(i);
  }
  if (!r.origins.empty()) {
    r.first_divergent = r.origins.front();
  } else {
    for (size_t i = 0; i < r.points.size(); ++i) {
      if (IsBad(r.points[i].verdict)) {
        r.first_divergent = i;  // an op the graph table does not know: its inputs are unknown
        break;
      }
    }
  }

  for (int l = 0; l < r.n_layers; ++l) {
    const auto out = index.find(PointName("l_out", l));
    const std::string in_name = l == 0 ? "inp_embd" : PointName("l_out", l - 1);
    const auto in = index.find(in_name);
    if (out == index.end() || in == index.end()) continue;
    const PointComparison &po = r.points[out->second], &pi = r.points[in->second];
    if (!po.element_wise || !pi.element_wise) continue;
    LayerGain g;
    g.layer = l;
    g.input = in_name;
    g.rel_in = pi.d.rel_l2;
    g.rel_out = po.d.rel_l2;
    if (g.rel_in > 0 && std::isfinite(g.rel_in)) g.gain = g.rel_out / g.rel_in;
    r.layers.push_back(g);
  }
  return r;
}

}  // namespace ggufscope::compare
