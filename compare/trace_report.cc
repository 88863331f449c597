#include "compare/trace_report.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>

namespace ggufscope::compare {
namespace {


std::string NonFinite(const PointStats& s) {
  if (s.nan == 0 && s.inf == 0) return "";
  return fmt::format(" {}nan {}inf", s.nan, s.inf);
}

std::string Mark(Verdict v) {
  switch (v) {
    case Verdict::kOk: return "ok";
    case Verdict::kDiverges: return "DIVERGES";
    case Verdict::kNonFinite: return "NAN/INF";
    case Verdict::kShape: return "SHAPE";
    case Verdict::kUnjudged: return "stats?";
  }
  return "?";
}

std::string Describe(const Trace& t) {
  std::vector<std::string> parts;
  if (!t.header.backend.empty()) parts.push_back(t.header.backend);
  if (!t.header.precision.empty()) parts.push_back(t.header.precision);
  if (!t.header.producer.empty()) parts.push_back(t.header.producer);
  if (t.header.tokens) parts.push_back(fmt::format("{} tokens", t.header.tokens->size()));
  if (t.header.stats_only) parts.push_back("statistics only");
  parts.push_back(fmt::format("{} point{}", t.points.size(), t.points.size() == 1 ? "" : "s"));
  return fmt::format("{}  [{}]", t.source, fmt::join(parts, ", "));
}

std::string Inputs(const PointComparison& p) {
  return p.inputs.empty() ? std::string("none traced") : fmt::format("{}", fmt::join(p.inputs, ", "));
}

std::string OpAndLayer(const PointComparison& p) {
  return p.parsed.layer >= 0 ? fmt::format("{} in layer {}", p.parsed.op, p.parsed.layer)
                             : fmt::format("{} (whole model)", p.parsed.op);
}

nlohmann::json StatsJson(const SideInfo& s) {
  nlohmann::json j = {{"shape", {s.rows, s.cols}}, {"nan", s.stats.nan}, {"inf", s.stats.inf}};
  if (s.stats.n_finite() > 0) {
    j["min"] = JsonNumber(s.stats.min);
    j["max"] = JsonNumber(s.stats.max);
    j["mean"] = JsonNumber(s.stats.mean);
    j["rms"] = JsonNumber(s.stats.rms);
  }
  return j;
}

}  // namespace

std::optional<bool> SameModel(const Trace& a, const Trace& b) {
  if (a.header.model_sha256.empty() || b.header.model_sha256.empty()) return std::nullopt;
  return a.header.model_sha256 == b.header.model_sha256;
}

nlohmann::json JsonNumber(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  return x;
}

std::string SummaryLine(const TraceComparison& c) {
  if (c.points.empty()) return "nothing compared: no trace point is in both traces";
  const size_t bad = c.n_bad();
  const PointComparison* out = c.Find("result_output");
  std::string top1;
  if (out != nullptr && out->argmax_agreement) {
    top1 = fmt::format("; result_output top-1 agreement {:.1f}% over {} positions", 100 * *out->argmax_agreement,
                       out->rows);
  }
  if (bad == 0) {
    const size_t unjudged = static_cast<size_t>(std::count_if(c.points.begin(), c.points.end(), [](const auto& p) {
      return p.verdict == Verdict::kUnjudged;
    }));
    return fmt::format("consistent: {} of {} points within tolerance{}{}", c.points.size() - unjudged,
                       c.points.size(), unjudged ? fmt::format(" ({} statistics only, unjudged)", unjudged) : "",
                       top1);
  }
  const PointComparison& f = c.points[*c.first_divergent];
  std::string why = f.note;
  std::string where;
  if (!f.in_graph) {
    where = fmt::format("{} (an op outside the graph table: its inputs are unknown)", f.name);
  } else if (f.inputs.empty()) {
    where = fmt::format("{} ({}; no input of it is in both traces)", OpAndLayer(f), f.name);
  } else {
    where = fmt::format("{} ({}; its input{} {} {} within tolerance)", OpAndLayer(f), f.name,
                        f.inputs.size() > 1 ? "s" : "", Inputs(f), f.inputs.size() > 1 ? "are" : "is");
  }
  std::string also;
  if (c.origins.size() > 1) {
    std::vector<std::string> names;
    for (size_t i = 1; i < c.origins.size() && i < 6; ++i) names.push_back(c.points[c.origins[i]].name);
    also = fmt::format("; {} more op(s) diverge with good inputs: {}{}", c.origins.size() - 1, fmt::join(names, ", "),
                       c.origins.size() > 6 ? ", ..." : "");
  }
  return fmt::format("DIVERGES: first divergent op {}: {}; {} of {} points diverge{}{}", where, why, bad,
                     c.points.size(), also, top1);
}

std::string ComparisonText(const TraceComparison& c, const Trace& a, const Trace& b, bool only_bad) {
  std::string out;
  out += fmt::format("A (reference)  {}\n", Describe(a));
  out += fmt::format("B              {}\n", Describe(b));
  if (SameModel(a, b) == false) {
    out += fmt::format("note: A and B were made from different model files (sha256 {}... vs {}...)\n",
                       a.header.model_sha256.substr(0, 12), b.header.model_sha256.substr(0, 12));
  }
  out += fmt::format("{:<16} {:>9} {:>9} {:>10}  {:<26} {:<26} {}\n", "point", "rel_l2", "max_abs", "cosine",
                     "A [min, max]", "B [min, max]", "verdict");
  size_t hidden = 0;
  for (size_t i = 0; i < c.points.size(); ++i) {
    const PointComparison& p = c.points[i];
    if (only_bad && !IsBad(p.verdict)) {
      ++hidden;
      continue;
    }
    std::string rel = "-", mx = "-", cos = "-";
    if (p.element_wise) {
      rel = Sci(p.d.rel_l2);
      mx = Sci(p.d.max_abs);
      cos = fmt::format("{:.7f}", p.d.cosine);
    } else if (p.rel_l2_lower_bound) {
      rel = ">=" + Sci(*p.rel_l2_lower_bound);
    }
    std::string note;
    if (c.first_divergent && *c.first_divergent == i) {
      note = "  <- first divergent";
    } else if (std::find(c.origins.begin(), c.origins.end(), i) != c.origins.end()) {
      note = "  <- also diverges with good inputs";
    }
    if (p.verdict == Verdict::kShape || p.verdict == Verdict::kNonFinite) note += "  (" + p.note + ")";
    if (p.argmax_agreement) {
      const auto same = static_cast<int64_t>(std::lround(*p.argmax_agreement * static_cast<double>(p.rows)));
      note += fmt::format("  top-1 {}/{}", same, p.rows);
    }
    out += fmt::format("{:<16} {:>9} {:>9} {:>10}  {:<26} {:<26} {}{}\n", p.name, rel, mx, cos,
                       Range(p.a.stats) + NonFinite(p.a.stats), Range(p.b.stats) + NonFinite(p.b.stats),
                       Mark(p.verdict), note);
  }
  if (hidden > 0) out += fmt::format("({} points within tolerance not shown)\n", hidden);
  auto list = [&](const char* what, const std::vector<std::string>& names) {
    if (names.empty()) return;
    std::vector<std::string> shown(names.begin(), names.begin() + static_cast<std::ptrdiff_t>(std::min<size_t>(names.size(), 12)));
    out += fmt::format("only in {} ({}): {}{}\n", what, names.size(), fmt::join(shown, ", "),
                       names.size() > shown.size() ? ", ..." : "");
  };
  list("A", c.only_a);
  list("B", c.only_b);
  if (!c.layers.empty()) {
    out += "\nlayer  rel_l2 in  rel_l2 out  gain (l_out-L over its input)\n";
    for (const LayerGain& g : c.layers) {
      out += fmt::format("{:>5}  {:>9}  {:>10}  {}\n", g.layer, Sci(g.rel_in), Sci(g.rel_out),
                         g.gain ? fmt::format("{:.3g}x", *g.gain)
                                : (g.rel_out > 0 ? std::string("(input exact)") : std::string("-")));
    }
  }
  out += "\n" + SummaryLine(c) + "\n";
  return out;
}

nlohmann::json TraceHeaderJson(const Trace& t) {
  const TraceHeader& h = t.header;
  nlohmann::json j = {{"source", t.source}, {"points", t.points.size()}, {"stats_only", h.stats_only}};
  if (h.version) j["version"] = h.version;
  if (!h.producer.empty()) j["producer"] = h.producer;
  if (!h.backend.empty()) j["backend"] = h.backend;
  if (!h.precision.empty()) j["precision"] = h.precision;
  if (!h.model_path.empty()) j["model_path"] = h.model_path;
  if (h.model_size) j["model_size"] = *h.model_size;
  if (!h.model_sha256.empty()) j["model_sha256"] = h.model_sha256;
  if (!h.model_arch.empty()) j["model_arch"] = h.model_arch;
  if (h.tokens) j["tokens"] = *h.tokens;
  return j;
}

nlohmann::json ComparisonJson(const TraceComparison& c, const Trace& a, const Trace& b) {
  nlohmann::json points = nlohmann::json::array();
  for (const PointComparison& p : c.points) {
    nlohmann::json j = {{"name", p.name},          {"op", p.parsed.op},       {"layer", p.parsed.layer},
                        {"in_graph", p.in_graph},  {"verdict", VerdictName(p.verdict)},
                        {"tol", JsonNumber(p.tol)}, {"inputs", p.inputs},     {"a", StatsJson(p.a)},
                        {"b", StatsJson(p.b)},     {"rows_compared", p.rows}};
    if (p.element_wise) {
      j["rel_l2"] = JsonNumber(p.d.rel_l2);
      j["nmse"] = JsonNumber(p.d.nmse);
      j["max_abs"] = JsonNumber(p.d.max_abs);
      j["max_rel"] = JsonNumber(p.d.max_rel);
      j["cosine"] = JsonNumber(p.d.cosine);
      j["bit_identical"] = p.d.bit_identical;
      j["elements"] = p.d.n;
      j["nonfinite_mismatch"] = p.nonfinite_mismatch;
      j["worst_row"] = p.worst_row;
      j["worst_row_rel_l2"] = JsonNumber(p.worst_row_rel_l2);
    }
    if (p.rel_l2_lower_bound) j["rel_l2_lower_bound"] = JsonNumber(*p.rel_l2_lower_bound);
    if (p.argmax_agreement) j["argmax_agreement"] = *p.argmax_agreement;
    if (!p.note.empty()) j["note"] = p.note;
    points.push_back(std::move(j));
  }
  nlohmann::json layers = nlohmann::json::array();
  for (const LayerGain& g : c.layers) {
    layers.push_back({{"layer", g.layer},
                      {"input", g.input},
                      {"rel_l2_in", JsonNumber(g.rel_in)},
                      {"rel_l2_out", JsonNumber(g.rel_out)},
                      {"gain", g.gain ? JsonNumber(*g.gain) : nlohmann::json(nullptr)}});
  }
  nlohmann::json first = nullptr;
  if (c.first_divergent) {
    const PointComparison& f = c.points[*c.first_divergent];
    first = {{"name", f.name}, {"op", f.parsed.op}, {"layer", f.parsed.layer}, {"verdict", VerdictName(f.verdict)},
             {"inputs", f.inputs}, {"in_graph", f.in_graph}, {"note", f.note}};
    if (f.element_wise) first["rel_l2"] = JsonNumber(f.d.rel_l2);
    first["tol"] = JsonNumber(f.tol);
  }
  nlohmann::json origins = nlohmann::json::array();
  for (size_t i : c.origins) origins.push_back(c.points[i].name);
  nlohmann::json j = {{"a", TraceHeaderJson(a)},
                      {"b", TraceHeaderJson(b)},
                      {"reference", "a"},
                      {"same_model", SameModel(a, b) ? nlohmann::json(*SameModel(a, b)) : nlohmann::json(nullptr)},
                      {"verdict", c.points.empty() ? "nothing-compared" : c.consistent() ? "consistent" : "diverges"},
                      {"summary", SummaryLine(c)},
                      {"n_points", c.points.size()},
                      {"n_diverging", c.n_bad()},
                      {"first_divergent", first},
                      {"origins", origins},
                      {"points", points},
                      {"only_in_a", c.only_a},
                      {"only_in_b", c.only_b},
                      {"layers", layers}};
  if (const PointComparison* out = c.Find("result_output"); out != nullptr && out->argmax_agreement) {
    j["argmax_agreement"] = *out->argmax_agreement;
  }
  return j;
}

std::string Sci(double x) {
  if (x == 0) return "0";
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  return fmt::format("{:.2e}", x);
}

std::string Range(const PointStats& s, bool with_nonfinite) {
  if (s.n_finite() == 0) return s.n == 0 ? "(empty)" : "(no finite values)";
  std::string r = fmt::format("[{:.4g}, {:.4g}]", s.min, s.max);
  if (with_nonfinite && (s.nan != 0 || s.inf != 0)) r += fmt::format(" {} nan {} inf", s.nan, s.inf);
  return r;
}

}  // namespace ggufscope::compare
