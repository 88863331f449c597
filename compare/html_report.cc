#include "compare/html_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "compare/trace_report.h"

namespace ggufscope::compare {
namespace {

// --- text ------------------------------------------------------------------

std::string Describe(const Trace& t) {
  const TraceHeader& h = t.header;
  std::vector<std::string> parts;
  if (!h.backend.empty()) parts.push_back(h.backend);
  if (!h.precision.empty()) parts.push_back(h.precision);
  if (!h.producer.empty()) parts.push_back(h.producer);
  if (!h.model_arch.empty()) parts.push_back("arch " + h.model_arch);
  if (h.tokens) parts.push_back(fmt::format("{} tokens", h.tokens->size()));
  if (h.stats_only) parts.push_back("statistics only");
  parts.push_back(fmt::format("{} point{}", t.points.size(), t.points.size() == 1 ? "" : "s"));
  if (!h.model_path.empty()) parts.push_back("model " + h.model_path);
  if (!h.model_sha256.empty()) parts.push_back("sha256 " + h.model_sha256.substr(0, 16) + "...");
  std::string out = t.source + "  [";
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? ", " : "") + parts[i];
  return out + "]";
}

// Length of the valid UTF-8 sequence at s[i] (0: not valid).
size_t Utf8Length(std::string_view s, size_t i) {
  const auto u = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = u(i);
  size_t n = 0;
  uint32_t cp = 0;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2, cp = c & 0x1Fu;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3, cp = c & 0x0Fu;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4, cp = c & 0x07u;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((u(i + k) & 0xC0u) != 0x80u) return 0;
    cp = (cp << 6) | (u(i + k) & 0x3Fu);
  }
  const uint32_t min_cp = n == 2 ? 0x80u : n == 3 ? 0x800u : 0x10000u;
  if (cp < min_cp || cp > 0x10FFFFu || (cp >= 0xD800u && cp <= 0xDFFFu)) return 0;
  if (cp == 0xFFFEu || cp == 0xFFFFu) return 0;  // not XML characters
  return n;
}

// --- plots -----------------------------------------------------------------

constexpr std::array<const char*, 12> kPalette = {"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd",
                                                  "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
                                                  "#17becf", "#393b79", "#637939", "#843c39"};
constexpr const char* kBad = "#d62728";
constexpr const char* kColorA = "#1f77b4";
constexpr const char* kColorB = "#ff7f0e";

std::string F(double x) { return fmt::format("{:.1f}", x); }

// The x axis of both plots: a slot per layer, with "in" (points before the
// layers) and "out" (after them) slots where there are such points.
struct LayerAxis {
  bool has_in = false, has_out = false;
  int n_layers = 0;
  double left = 0, width = 0;

  int Slots() const { return n_layers + (has_in ? 1 : 0) + (has_out ? 1 : 0); }
  double SlotWidth() const { return width / std::max(1, Slots()); }
  // slot of layer L (-1: in, n_layers: out)
  int Slot(int layer) const { return layer + (has_in ? 1 : 0); }
  double SlotLeft(int layer) const { return left + SlotWidth() * Slot(layer); }
  double Center(int layer) const { return SlotLeft(layer) + SlotWidth() / 2; }
  std::string Label(int layer) const {
    return layer < 0 ? "in" : layer >= n_layers ? "out" : std::to_string(layer);
  }
  int LabelStep() const {
    return std::max(1, static_cast<int>(std::ceil(28.0 / std::max(1e-9, SlotWidth()))));
  }
};

// -1 before the layers, L in layer L, n_layers after them.
int SlotLayer(const PointComparison& p, int n_layers) {
  if (p.parsed.layer >= 0) return std::min(p.parsed.layer, n_layers - 1);
  return RankOf(p.name).block < 0 ? -1 : n_layers;
}

void XAxis(std::string& s, const LayerAxis& ax, double y_bottom, double y_top,
           const std::string& caption) {
  const int step = ax.LabelStep();
  const int first = ax.has_in ? -1 : 0, last = ax.has_out ? ax.n_layers : ax.n_layers - 1;
  for (int l = first; l <= last; ++l) {
    const double x0 = ax.SlotLeft(l);
    if (l > first) {
      s += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" class=\"grid\"/>\n",
                       F(x0), F(y_top), F(y_bottom));
    }
    const bool edge = l < 0 || l >= ax.n_layers;
    if (edge || l % step == 0) {
      s += fmt::format("<text x=\"{}\" y=\"{}\" class=\"tick\" text-anchor=\"middle\">{}</text>\n",
                       F(ax.Center(l)), F(y_bottom + 16), ax.Label(l));
    }
  }
  s += fmt::format("<text x=\"{}\" y=\"{}\" class=\"axis\" text-anchor=\"middle\">{}</text>\n",
                   F(ax.left + ax.width / 2), F(y_bottom + 36), caption);
}

std::string SvgOpen(int w, int h, const std::string& label) {
  return fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} "
      "{1}\" "
      "role=\"img\" aria-label=\"{2}\">\n",
      w, h, label);
}

// Relative L2 error by layer, one series per op, log y.
std::string ErrorPlot(const TraceComparison& c) {
  constexpr int kW = 1120, kH = 440;
  constexpr double kLeft = 70, kRight = 900, kTop = 34, kBottom = 370;
  constexpr double kNanY = kTop + 6, kLogTop = kTop + 24, kLogBottom = kBottom - 26,
                   kZeroY = kBottom - 8;
  const int n_layers = std::max(1, c.n_layers);

  struct Dot {
    size_t index;
    int layer;
    double value;  // NaN: non-finite; 0: exact
    bool lower_bound;
  };
  std::vector<std::string> ops;  // op families in graph order of first appearance
  std::map<std::string, std::vector<Dot>, std::less<>> series;
  LayerAxis ax;
  ax.n_layers = n_layers;
  std::set<double> tols;
  double lo = std::numeric_limits<double>::infinity(), hi = 0;
  for (size_t i = 0; i < c.points.size(); ++i) {
    const PointComparison& p = c.points[i];
    std::optional<double> v;
    bool bound = false;
    if (p.element_wise) {
      v = std::isfinite(p.d.rel_l2) && p.verdict != Verdict::kNonFinite
              ? p.d.rel_l2
              : std::numeric_limits<double>::quiet_NaN();
    } else if (p.rel_l2_lower_bound) {
      v = *p.rel_l2_lower_bound, bound = true;
    } else if (p.verdict == Verdict::kNonFinite) {
      v = std::numeric_limits<double>::quiet_NaN();
    }
    if (!v) continue;
    const int layer = SlotLayer(p, n_layers);
    ax.has_in = ax.has_in || layer < 0;
    ax.has_out = ax.has_out || layer >= n_layers;
    if (!series.count(p.parsed.op)) ops.push_back(p.parsed.op);
    series[p.parsed.op].push_back({i, layer, *v, bound});
    if (std::isfinite(*v) && *v > 0) lo = std::min(lo, *v), hi = std::max(hi, *v);
    if (std::isfinite(p.tol) && p.tol > 0) tols.insert(p.tol);
  }
  for (double t : tols) lo = std::min(lo, t), hi = std::max(hi, t);
  if (!std::isfinite(lo)) lo = 1e-8, hi = 1;
  int lo_exp = static_cast<int>(std::floor(std::log10(lo)));
  int hi_exp = static_cast<int>(std::ceil(std::log10(hi)));
  lo_exp = std::max(lo_exp, -30);
  hi_exp = std::clamp(hi_exp, lo_exp + 1, 30);
  if (hi_exp - lo_exp < 3) lo_exp = hi_exp - 3;
  const auto y_of = [&](double v) {
    if (std::isnan(v)) return kNanY;
    if (v <= 0) return kZeroY;
    const double t = (std::log10(v) - lo_exp) / (hi_exp - lo_exp);
    return kLogBottom - std::clamp(t, 0.0, 1.0) * (kLogBottom - kLogTop);
  };

  ax.left = kLeft;
  ax.width = kRight - kLeft;
  std::string s = SvgOpen(kW, kH, "relative L2 error by layer");
  s += fmt::format(
      "<text x=\"{}\" y=\"18\" class=\"title\">Relative L2 error ‖B − A‖ / ‖A‖ by layer, per "
      "op</text>\n",
      F(kLeft));
  s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" class=\"frame\"/>\n",
                   F(kLeft), F(kTop), F(kRight - kLeft), F(kBottom - kTop));
  // Layers holding a bad point: tinted.
  std::set<int> bad_layers;
  for (const auto& [op, dots] : series) {
    for (const Dot& d : dots) {
      if (IsBad(c.points[d.index].verdict)) bad_layers.insert(d.layer);
    }
  }
  for (int l : bad_layers) {
    s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" class=\"badslot\"/>\n",
                     F(ax.SlotLeft(l)), F(kTop), F(ax.SlotWidth()), F(kBottom - kTop));
  }
  // y axis: decades, and the rows for exact and non-finite values.
  const int dstep = (hi_exp - lo_exp) > 12 ? 2 : 1;
  for (int e = lo_exp; e <= hi_exp; e += dstep) {
    const double y = y_of(std::pow(10.0, e));
    s += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" class=\"grid\"/>\n",
                     F(kLeft), F(y), F(kRight));
    s += fmt::format("<text x=\"{}\" y=\"{}\" class=\"tick\" text-anchor=\"end\">1e{}</text>\n",
                     F(kLeft - 6), F(y + 4), e);
  }
  s += fmt::format("<text x=\"{}\" y=\"{}\" class=\"tick\" text-anchor=\"end\">0</text>\n",
                   F(kLeft - 6), F(kZeroY + 4));
  s +=
      fmt::format("<text x=\"{}\" y=\"{}\" class=\"tick bad\" text-anchor=\"end\">nan/inf</text>\n",
                  F(kLeft - 6), F(kNanY + 4));
  s += fmt::format(
      "<text transform=\"translate(16 {}) rotate(-90)\" class=\"axis\" "
      "text-anchor=\"middle\">relative "
      "L2 error (log)</text>\n",
      F((kTop + kBottom) / 2));
  XAxis(s, ax, kBottom, kTop, "layer");
  // Tolerances.
  for (double t : tols) {
    const double y = y_of(t);
    s += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" class=\"tol\"/>\n",
                     F(kLeft), F(y), F(kRight));
    s += fmt::format(
        "<text x=\"{}\" y=\"{}\" class=\"tick bad\" text-anchor=\"end\">tol {}</text>\n",
        F(kRight - 4), F(y - 4), Sci(t));
  }
  // Series: a line through each op's layers, a dot per point.
  const auto x_of = [&](const Dot& d, size_t k, size_t n_ops) {
    const double slot = ax.SlotWidth();
    const double frac =
        n_ops <= 1 ? 0.5 : 0.12 + 0.76 * static_cast<double>(k) / static_cast<double>(n_ops - 1);
    return ax.SlotLeft(d.layer) + slot * frac;
  };
  std::string legend;
  std::optional<std::pair<double, double>> first_xy;
  for (size_t k = 0; k < ops.size(); ++k) {
    const std::string& op = ops[k];
    const char* color = kPalette[k % kPalette.size()];
    const std::vector<Dot>& dots = series[op];
    // Lines join neighbouring errors on the log scale only (not the exact or
    // non-finite rows, which would draw long diagonals).
    std::string path;
    for (size_t j = 0; j < dots.size(); ++j) {
      const bool on_log = std::isfinite(dots[j].value) && dots[j].value > 0;
      const bool prev_on_log = j > 0 && std::isfinite(dots[j - 1].value) && dots[j - 1].value > 0;
      if (!on_log) continue;
      path += fmt::format("{}{},{}",
                          prev_on_log    ? " L"
                          : path.empty() ? "M"
                                         : " M",
                          F(x_of(dots[j], k, ops.size())), F(y_of(dots[j].value)));
    }
    if (path.find(" L") != std::string::npos) {
      s += fmt::format("<path d=\"{}\" class=\"series\" stroke=\"{}\"/>\n", path, color);
    }
    for (const Dot& d : dots) {
      const PointComparison& p = c.points[d.index];
      const double x = x_of(d, k, ops.size()), y = y_of(d.value);
      const bool bad = IsBad(p.verdict);
      s += fmt::format(
          "<circle cx=\"{}\" cy=\"{}\" r=\"{}\" fill=\"{}\" stroke=\"{}\" stroke-width=\"{}\">"
          "<title>{}: rel L2 {}{} ({})</title></circle>\n",
          F(x), F(y), bad ? 4.5 : 3.0, d.lower_bound ? "white" : color, bad ? kBad : color,
          bad ? 2 : 1, HtmlEscape(p.name), d.lower_bound ? ">= " : "", Sci(d.value),
          VerdictName(p.verdict));
      if (c.first_divergent && *c.first_divergent == d.index) first_xy = {x, y};
    }
    const double ly = kTop + 8 + 17.0 * static_cast<double>(k);
    if (ly < kH - 10) {
      legend += fmt::format(
          "<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"{3}\" stroke-width=\"2\"/>"
          "<circle cx=\"{4}\" cy=\"{1}\" r=\"3\" fill=\"{3}\"/>"
          "<text x=\"{5}\" y=\"{6}\" class=\"tick\">{7}</text>\n",
          F(kRight + 20), F(ly), F(kRight + 42), color, F(kRight + 31), F(kRight + 48), F(ly + 4),
          HtmlEscape(op));
    }
  }
  s += legend;
  if (first_xy) {
    const PointComparison& f = c.points[*c.first_divergent];
    const auto [x, y] = *first_xy;
    const bool right = x < (kLeft + kRight) / 2;
    const double ty = std::clamp(y - 30, kTop + 14, kBottom - 10);
    const double tx = right ? x + 16 : x - 16;
    s += fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"10\" class=\"firstring\"/>\n", F(x), F(y));
    s += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" class=\"firstline\"/>\n",
                     F(x + (right ? 7 : -7)), F(y - 7), F(tx), F(ty + 4));
    s += fmt::format(
        "<text x=\"{}\" y=\"{}\" class=\"firstlabel\" text-anchor=\"{}\">first divergent: "
        "{}</text>\n",
        F(tx + (right ? 2 : -2)), F(ty), right ? "start" : "end", HtmlEscape(f.name));
  }
  s += fmt::format(
      "<text x=\"{}\" y=\"{}\" class=\"note\">dots: points (hover for values); hollow: a lower "
      "bound "
      "(statistics only); red ring: beyond tolerance; tinted: a layer with a bad point</text>\n",
      F(kLeft), F(kH - 8));
  s += "</svg>\n";
  return s;
}

// Hidden-state ranges: min/max (and rms) of inp_embd and l_out-L, both sides.
std::string RangePlot(const TraceComparison& c) {
  constexpr int kW = 1120, kH = 360;
  constexpr double kLeft = 70, kRight = 900, kTop = 34, kBottom = 300;
  const int n_layers = std::max(1, c.n_layers);
  struct Row {
    int layer;
    const PointComparison* p;
  };
  std::vector<Row> rows;
  for (const PointComparison& p : c.points) {
    if (p.name == "inp_embd") rows.push_back({-1, &p});
    if (p.parsed.op == "l_out" && p.parsed.layer >= 0 && p.parsed.layer < n_layers)
      rows.push_back({p.parsed.layer, &p});
  }
  std::sort(rows.begin(), rows.end(), [](const Row& x, const Row& y) { return x.layer < y.layer; });
  std::string s = SvgOpen(kW, kH, "hidden-state ranges by layer");
  s += fmt::format(
      "<text x=\"{}\" y=\"18\" class=\"title\">Hidden-state range by layer: [min, max] and rms of "
      "inp_embd and l_out-L</text>\n",
      F(kLeft));
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const Row& r : rows) {
    for (const SideInfo* side : {&r.p->a, &r.p->b}) {
      if (side->stats.n_finite() == 0) continue;
      lo = std::min({lo, side->stats.min, side->stats.rms});
      hi = std::max({hi, side->stats.max, side->stats.rms});
    }
  }
  if (rows.empty() || !std::isfinite(lo) || !std::isfinite(hi) || !std::isfinite(hi - lo)) {
    s += fmt::format(
        "<text x=\"{}\" y=\"60\" class=\"axis\">nothing to plot: no l_out-L point in both traces, "
        "or its values "
        "span more than a double holds"
        "</text>\n</svg>\n",
        F(kLeft));
    return s;
  }
  if (hi - lo < 1e-12) lo -= 1, hi += 1;
  // Ticks at 1, 2 or 5 times a power of ten.
  const double raw = (hi - lo) / 6;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double step = raw / mag < 1.5   ? mag
                      : raw / mag < 3.5 ? 2 * mag
                      : raw / mag < 7.5 ? 5 * mag
                                        : 10 * mag;
  lo = std::floor(lo / step) * step;
  hi = std::ceil(hi / step) * step;
  const auto y_of = [&](double v) { return kBottom - (v - lo) / (hi - lo) * (kBottom - kTop); };

  LayerAxis ax;
  ax.n_layers = n_layers;
  ax.has_in = rows.front().layer < 0;
  ax.left = kLeft;
  ax.width = kRight - kLeft;
  s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" class=\"frame\"/>\n",
                   F(kLeft), F(kTop), F(kRight - kLeft), F(kBottom - kTop));
  for (const Row& r : rows) {
    if (IsBad(r.p->verdict)) {
      s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" class=\"badslot\"/>\n",
                       F(ax.SlotLeft(r.layer)), F(kTop), F(ax.SlotWidth()), F(kBottom - kTop));
    }
  }
  for (double v = lo; v <= hi + step / 2; v += step) {
    const double y = y_of(v);
    const double shown = std::abs(v) < step / 1e6 ? 0.0 : v;
    s += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" class=\"{3}\"/>\n",
                     F(kLeft), F(y), F(kRight), shown == 0 ? "zero" : "grid");
    s += fmt::format("<text x=\"{}\" y=\"{}\" class=\"tick\" text-anchor=\"end\">{:.4g}</text>\n",
                     F(kLeft - 6), F(y + 4), shown);
  }
  s += fmt::format(
      "<text transform=\"translate(16 {}) rotate(-90)\" class=\"axis\" text-anchor=\"middle\">value"
      "</text>\n",
      F((kTop + kBottom) / 2));
  XAxis(s, ax, kBottom, kTop, "layer (l_out-L; in: inp_embd)");

  // A: a shaded band between min and max; B: dashed min/max lines; rms dotted.
  const auto line = [&](auto get, auto side) {
    std::string d;
    for (const Row& r : rows) {
      const SideInfo& si = (*r.p).*side;
      if (si.stats.n_finite() == 0) continue;
      d += fmt::format("{}{},{}", d.empty() ? "M" : " L", F(ax.Center(r.layer)),
                       F(y_of(get(si.stats))));
    }
    return d;
  };
  const auto get_min = [](const PointStats& st) { return st.min; };
  const auto get_max = [](const PointStats& st) { return st.max; };
  const auto get_rms = [](const PointStats& st) { return st.rms; };
  {
    std::string top, bottom;
    for (const Row& r : rows) {
      if (r.p->a.stats.n_finite() == 0) continue;
      top += fmt::format("{}{},{}", top.empty() ? "M" : " L", F(ax.Center(r.layer)),
                         F(y_of(r.p->a.stats.max)));
    }
    for (auto it = rows.rbegin(); it != rows.rend(); ++it) {
      if (it->p->a.stats.n_finite() == 0) continue;
      bottom += fmt::format(" L{},{}", F(ax.Center(it->layer)), F(y_of(it->p->a.stats.min)));
    }
    if (!top.empty()) s += fmt::format("<path d=\"{}{} Z\" class=\"bandA\"/>\n", top, bottom);
  }
  for (auto side : {&PointComparison::a, &PointComparison::b}) {
    const bool is_a = side == &PointComparison::a;
    const char* color = is_a ? kColorA : kColorB;
    const char* dash = is_a ? "" : " stroke-dasharray=\"7 4\"";
    s += fmt::format("<path d=\"{}\" class=\"series\" stroke=\"{}\"{}/>\n", line(get_max, side),
                     color, dash);
    s += fmt::format("<path d=\"{}\" class=\"series\" stroke=\"{}\"{}/>\n", line(get_min, side),
                     color, dash);
    s += fmt::format(
        "<path d=\"{}\" class=\"series thin\" stroke=\"{}\" stroke-dasharray=\"2 3\"/>\n",
        line(get_rms, side), color);
  }
  for (const Row& r : rows) {
    const PointComparison& p = *r.p;
    for (auto side : {&PointComparison::a, &PointComparison::b}) {
      const bool is_a = side == &PointComparison::a;
      const SideInfo& si = p.*side;
      if (si.stats.n_finite() == 0) continue;
      const double x = ax.Center(r.layer) + (is_a ? -2.5 : 2.5);
      for (double v : {si.stats.min, si.stats.max}) {
        s += fmt::format(
            "<circle cx=\"{}\" cy=\"{}\" r=\"3\" fill=\"{}\"><title>{} {}: min {:.4g}, max {:.4g}, "
            "rms {:.4g}</title></circle>\n",
            F(x), F(y_of(v)), is_a ? kColorA : kColorB, HtmlEscape(p.name), is_a ? "A" : "B",
            si.stats.min, si.stats.max, si.stats.rms);
      }
    }
  }
  // Legend.
  const double lx = kRight + 20;
  s += fmt::format(
      "<rect x=\"{}\" y=\"{}\" width=\"22\" height=\"10\" class=\"bandA\"/>"
      "<text x=\"{}\" y=\"{}\" class=\"tick\">A [min, max]</text>\n",
      F(lx), F(kTop + 4), F(lx + 28), F(kTop + 13));
  s += fmt::format(
      "<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"{3}\" stroke-width=\"2\" "
      "stroke-dasharray=\"7 4\"/><text x=\"{4}\" y=\"{5}\" class=\"tick\">B [min, max]</text>\n",
      F(lx), F(kTop + 30), F(lx + 22), kColorB, F(lx + 28), F(kTop + 34));
  s += fmt::format(
      "<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"{3}\" stroke-width=\"1.5\" "
      "stroke-dasharray=\"2 3\"/><text x=\"{4}\" y=\"{5}\" class=\"tick\">A rms</text>\n",
      F(lx), F(kTop + 50), F(lx + 22), kColorA, F(lx + 28), F(kTop + 54));
  s += fmt::format(
      "<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"{3}\" stroke-width=\"1.5\" "
      "stroke-dasharray=\"2 3\"/><text x=\"{4}\" y=\"{5}\" class=\"tick\">B rms</text>\n",
      F(lx), F(kTop + 70), F(lx + 22), kColorB, F(lx + 28), F(kTop + 74));
  s += fmt::format(
      "<rect x=\"{}\" y=\"{}\" width=\"22\" height=\"10\" class=\"badslot\"/>"
      "<text x=\"{}\" y=\"{}\" class=\"tick\">l_out beyond tolerance</text>\n",
      F(lx), F(kTop + 86), F(lx + 28), F(kTop + 95));
  s += "</svg>\n";
  return s;
}

// --- tables ----------------------------------------------------------------

std::string PointTable(const TraceComparison& c) {
  std::string s =
      "<table class=\"points\">\n<thead><tr><th>#</th><th>point</th><th>rel L2</th><th>max "
      "abs</th><th>cosine</th>"
      "<th>A [min, max]</th><th>B [min, "
      "max]</th><th>tol</th><th>verdict</th></tr></thead>\n<tbody>\n";
  for (size_t i = 0; i < c.points.size(); ++i) {
    const PointComparison& p = c.points[i];
    const bool first = c.first_divergent && *c.first_divergent == i;
    const bool origin = std::find(c.origins.begin(), c.origins.end(), i) != c.origins.end();
    std::string cls = IsBad(p.verdict) ? "bad" : p.verdict == Verdict::kUnjudged ? "unjudged" : "";
    if (first) cls += " first";
    std::string rel = "-", mx = "-", cos = "-";
    if (p.element_wise) {
      rel = Sci(p.d.rel_l2);
      mx = Sci(p.d.max_abs);
      cos = std::isfinite(p.d.cosine) ? fmt::format("{:.7f}", p.d.cosine) : Sci(p.d.cosine);
    } else if (p.rel_l2_lower_bound) {
      rel = "≥ " + Sci(*p.rel_l2_lower_bound);
    }
    std::string verdict = std::string(VerdictName(p.verdict));
    if (first) {
      verdict += " — first divergent";
    } else if (origin) {
      verdict += " — diverges with good inputs";
    }
    if (p.argmax_agreement) {
      verdict += fmt::format(" (top-1 {:.1f}%)", 100 * *p.argmax_agreement);
    }
    std::string note = p.note.empty() || p.verdict == Verdict::kOk
                           ? ""
                           : "<br><small>" + HtmlEscape(p.note) + "</small>";
    s += fmt::format(
        "<tr{}{}><td class=\"num\">{}</td><td class=\"name\">{}</td><td class=\"num\">{}</td>"
        "<td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>"
        "<td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}{}</td></tr>\n",
        cls.empty() ? "" : fmt::format(" class=\"{}\"", cls), first ? " id=\"first\"" : "", i,
        HtmlEscape(p.name), rel, mx, cos, Range(p.a.stats, true), Range(p.b.stats, true), Sci(p.tol),
        HtmlEscape(verdict), note);
  }
  s += "</tbody>\n</table>\n";
  return s;
}

std::string LayerTable(const TraceComparison& c) {
  if (c.layers.empty()) return "<p>No layer has both its l_out and its input in both traces.</p>\n";
  std::string s =
      "<table class=\"layers\">\n<thead><tr><th>layer</th><th>input</th><th>rel L2 in</th><th>rel "
      "L2 out "
      "(l_out-L)</th><th>gain</th></tr></thead>\n<tbody>\n";
  for (const LayerGain& g : c.layers) {
    const PointComparison* out = c.Find(PointName("l_out", g.layer));
    const bool bad = out != nullptr && IsBad(out->verdict);
    const std::string gain =
        g.gain ? fmt::format("{:.3g}×", *g.gain)
               : (g.rel_out > 0 ? std::string("(input exact)") : std::string("-"));
    s += fmt::format(
        "<tr{}><td class=\"num\">{}</td><td class=\"name\">{}</td><td class=\"num\">{}</td>"
        "<td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\n",
        bad ? " class=\"bad\"" : "", g.layer, HtmlEscape(g.input), Sci(g.rel_in), Sci(g.rel_out),
        gain);
  }
  s += "</tbody>\n</table>\n";
  return s;
}

std::string NameList(const std::vector<std::string>& names) {
  std::string s;
  const size_t shown = std::min<size_t>(names.size(), 40);
  for (size_t i = 0; i < shown; ++i) s += (i ? ", " : "") + HtmlEscape(names[i]);
  if (names.size() > shown) s += fmt::format(", … ({} more)", names.size() - shown);
  return s;
}

constexpr const char* kCss = R"css(
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 16px 24px; color: #222;
       background: #fff; max-width: 1160px; }
h1 { font-size: 20px; margin: 0 0 8px; }
h2 { font-size: 16px; margin: 22px 0 6px; }
.verdict { padding: 10px 14px; border-radius: 6px; font-size: 15px; margin: 8px 0 10px; }
.verdict.ok { background: #e3f4e3; border: 1px solid #7fbf7f; }
.verdict.diverges { background: #fde2e2; border: 1px solid #d62728; }
.verdict b { font-size: 17px; }
.sides { border-collapse: collapse; font-size: 13px; }
.sides td { padding: 2px 10px 2px 0; vertical-align: top; }
.mono, td.name, td.num { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; }
.sides td.mono { word-break: break-all; }
table.points, table.layers { border-collapse: collapse; font-size: 12.5px; }
table.points th, table.layers th { text-align: left; border-bottom: 2px solid #999; padding: 3px 8px;
       background: #f3f3f3; position: sticky; top: 0; }
table.points td, table.layers td { padding: 2px 8px; border-bottom: 1px solid #e6e6e6; }
td.num { text-align: right; white-space: nowrap; }
tr.bad td { background: #fde2e2; }
tr.first td { background: #f7b6b6; font-weight: bold; }
tr.unjudged td { color: #777; }
svg { display: block; margin: 6px 0 4px; }
svg .title { font-size: 14px; font-weight: 600; fill: #222; }
svg .tick { font-size: 11px; fill: #444; }
svg .tick.bad { fill: #d62728; }
svg .axis { font-size: 12px; fill: #333; }
svg .note { font-size: 11px; fill: #666; }
svg .frame { fill: none; stroke: #888; }
svg .grid { stroke: #e4e4e4; stroke-width: 1; }
svg .zero { stroke: #999; stroke-width: 1; }
svg .badslot { fill: #d62728; fill-opacity: 0.08; }
svg .tol { stroke: #d62728; stroke-width: 1.5; stroke-dasharray: 6 4; }
svg .series { fill: none; stroke-width: 1.6; stroke-opacity: 0.85; }
svg .series.thin { stroke-width: 1.2; }
svg .bandA { fill: #1f77b4; fill-opacity: 0.15; stroke: none; }
svg .firstring { fill: none; stroke: #d62728; stroke-width: 2.5; }
svg .firstline { stroke: #d62728; stroke-width: 1.5; }
svg .firstlabel { font-size: 13px; font-weight: 700; fill: #d62728; }
.foot { color: #777; font-size: 12px; margin-top: 20px; }
)css";

}  // namespace

std::string HtmlEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 16);
  for (size_t i = 0; i < s.size();) {
    const char ch = s[i];
    const auto u = static_cast<unsigned char>(ch);
    if (u < 0x80) {
      switch (ch) {
        case '&':
          out += "&amp;";
          break;
        case '<':
          out += "&lt;";
          break;
        case '>':
          out += "&gt;";
          break;
        case '"':
          out += "&quot;";
          break;
        case '\'':
          out += "&#39;";
          break;
        default:
          if ((u < 0x20 && ch != '\t' && ch != '\n') || u == 0x7F) {
            out += "\xEF\xBF\xBD";  // U+FFFD
          } else {
            out += ch;
          }
      }
      ++i;
      continue;
    }
    const size_t n = Utf8Length(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::string ComparisonHtml(const TraceComparison& c, const Trace& a, const Trace& b) {
  std::string s;
  s += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  s += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  s += fmt::format("<title>ggufscope compare: {} vs {}</title>\n", HtmlEscape(a.source),
                   HtmlEscape(b.source));
  s += fmt::format("<style>{}</style>\n</head>\n<body>\n", kCss);
  s += "<h1>ggufscope compare</h1>\n";

  const bool diverges = !c.points.empty() && !c.consistent();
  std::string headline;
  if (c.points.empty()) {
    headline = "<b>Nothing compared</b>: no trace point is in both traces.";
  } else if (!diverges) {
    headline = fmt::format("<b>Consistent</b>: {} points compared, none beyond tolerance.",
                           c.points.size());
  } else if (c.first_divergent) {
    const PointComparison& f = c.points[*c.first_divergent];
    const std::string where =
        f.parsed.layer >= 0 ? fmt::format("in layer {}", f.parsed.layer) : "(whole model)";
    headline = fmt::format(
        "<b>Diverges</b>: first divergent op <b class=\"mono\">{}</b> {} (point <a href=\"#first\" "
        "class=\"mono\">{}</a>); {} of {} points beyond tolerance.",
        HtmlEscape(f.parsed.op), where, HtmlEscape(f.name), c.n_bad(), c.points.size());
  } else {
    headline = fmt::format("<b>Diverges</b>: {} of {} points beyond tolerance.", c.n_bad(),
                           c.points.size());
  }
  s += fmt::format("<div class=\"verdict {}\">{}<br><small>{}</small></div>\n",
                   diverges ? "diverges" : "ok", headline, HtmlEscape(SummaryLine(c)));
  s += "<table class=\"sides\">\n";
  s += fmt::format("<tr><td>A (reference)</td><td class=\"mono\">{}</td></tr>\n",
                   HtmlEscape(Describe(a)));
  s += fmt::format("<tr><td>B (under test)</td><td class=\"mono\">{}</td></tr>\n",
                   HtmlEscape(Describe(b)));
  if (SameModel(a, b) == false) {
    s += "<tr><td>note</td><td>A and B were made from different model files (sha256 "
         "differ).</td></tr>\n";
  }
  if (!c.only_a.empty()) {
    s += fmt::format("<tr><td>only in A ({})</td><td class=\"mono\">{}</td></tr>\n",
                     c.only_a.size(), NameList(c.only_a));
  }
  if (!c.only_b.empty()) {
    s += fmt::format("<tr><td>only in B ({})</td><td class=\"mono\">{}</td></tr>\n",
                     c.only_b.size(), NameList(c.only_b));
  }
  s += "</table>\n";

  if (!c.points.empty()) {
    s += "<h2>Error by layer</h2>\n" + ErrorPlot(c);
    s += "<h2>Hidden-state ranges</h2>\n" + RangePlot(c);
  }
  s += "<h2>Layer error amplification</h2>\n<p>How much each layer multiplies the error it is "
       "given: relative L2 "
       "of l_out-L over that of its input (l_out of the previous layer, inp_embd for layer "
       "0).</p>\n";
  s += LayerTable(c);
  s += fmt::format(
      "<h2>Every point ({})</h2>\n<p>A is the reference: rel L2 = ‖B − A‖ / ‖A‖ over the compared "
      "positions; ranges are over all of a side's values. Rows beyond tolerance are red; the first "
      "divergent op is bold.</p>\n",
      c.points.size());
  s += PointTable(c);
  s += "<p class=\"foot\">Generated by ggufscope compare --html. Self-contained: no scripts, fonts "
       "or network "
       "requests.</p>\n</body>\n</html>\n";
  return s;
}

}  // namespace ggufscope::compare
