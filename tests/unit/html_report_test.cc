// The HTML report of a trace comparison: every SVG block is well-formed XML
// (a minimal tag-balance check), the first divergent op is named, names from
// a trace are escaped, and nothing reaches the network.
#include "compare/html_report.h"

#include <gtest/gtest.h>

#include <limits>
#include <random>
#include <string>
#include <vector>

namespace ggufscope::compare {
namespace {

constexpr int kLayers = 3;
constexpr int64_t kTokens = 4;
constexpr const char* kHostile = "<script>alert(1)</script>-0";

TracePoint RandomPoint(const std::string& name, int64_t cols, std::mt19937_64& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  TracePoint p;
  p.name = name;
  p.rows = kTokens;
  p.cols = cols;
  p.data.resize(static_cast<size_t>(p.rows * p.cols));
  for (float& v : p.data) v = nd(rng);
  p.stats = ComputeStats(p.data);
  return p;
}

Trace MakeTrace() {
  std::mt19937_64 rng(1);
  Trace t;
  t.source = "synthetic \"A\" & <co>";
  t.header.backend = "cpu";
  t.header.tokens = std::vector<int32_t>{1, 2, 3, 4};
  t.points.push_back(RandomPoint("inp_embd", 8, rng));
  for (int l = 0; l < kLayers; ++l) {
    for (const char* op : {"attn_norm", "Qcur", "Kcur", "Vcur", "kqv_out", "attn_out", "ffn_inp",
                           "ffn_norm", "ffn_out", "l_out"}) {
      t.points.push_back(RandomPoint(PointName(op, l), 8, rng));
    }
  }
  t.points.push_back(
      RandomPoint(kHostile, 8, rng));  // an op outside the graph table, named by a hostile file
  t.points.push_back(RandomPoint("result_norm", 8, rng));
  t.points.push_back(RandomPoint("result_output", 16, rng));
  return t;
}

void Perturb(Trace& t, const std::string& name, double rel) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> nd(0.0, 1.0);
  for (TracePoint& p : t.points) {
    if (p.name != name) continue;
    for (float& v : p.data) v = static_cast<float>(v + rel * p.stats.rms * nd(rng));
    p.stats = ComputeStats(p.data);
  }
}

TraceComparison Compare(const Trace& a, const Trace& b) {
  gguf::Result<TraceComparison> r = CompareTraces(a, b, {});
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().Message());
  return r.ok() ? std::move(*r) : TraceComparison{};
}

std::vector<std::string> SvgBlocks(const std::string& html) {
  std::vector<std::string> out;
  for (size_t pos = html.find("<svg"); pos != std::string::npos; pos = html.find("<svg", pos + 1)) {
    const size_t end = html.find("</svg>", pos);
    if (end == std::string::npos) {
      out.push_back(html.substr(pos));  // unterminated: the check below fails on it
      break;
    }
    out.push_back(html.substr(pos, end + 6 - pos));
  }
  return out;
}

// A minimal XML well-formedness check: tags balance and nest, attributes are
// quoted, every '&' starts an entity, no raw '<' in text. Returns "" or why not.
std::string XmlProblem(const std::string& x) {
  std::vector<std::string> stack;
  for (size_t i = 0; i < x.size();) {
    if (x[i] == '&') {
      const size_t semi = x.find(';', i);
      if (semi == std::string::npos || semi - i > 10) return "bare & at " + std::to_string(i);
      const std::string ent = x.substr(i + 1, semi - i - 1);
      if (ent != "amp" && ent != "lt" && ent != "gt" && ent != "quot" && ent != "apos" &&
          ent[0] != '#') {
        return "unknown entity &" + ent + ";";
      }
      i = semi + 1;
      continue;
    }
    if (x[i] != '<') {
      if (x[i] == '>') return "raw > in text at " + std::to_string(i);
      ++i;
      continue;
    }
    const size_t close = x.find('>', i);
    if (close == std::string::npos) return "unterminated tag";
    std::string tag = x.substr(i + 1, close - i - 1);
    // Attribute values are quoted; no '<' inside a tag.
    if (tag.find('<') != std::string::npos) return "'<' inside tag: " + tag;
    size_t quotes = 0;
    for (char ch : tag) quotes += ch == '"';
    if (quotes % 2 != 0) return "unbalanced quotes: " + tag;
    if (tag.empty()) return "empty tag";
    if (tag[0] == '/') {
      const std::string name = tag.substr(1);
      if (stack.empty() || stack.back() != name) {
        return "</" + name + "> closes " +
               (stack.empty() ? std::string("nothing") : "<" + stack.back() + ">");
      }
      stack.pop_back();
    } else if (tag.back() != '/') {
      stack.push_back(tag.substr(0, tag.find_first_of(" \n\t")));
    }
    i = close + 1;
  }
  if (!stack.empty()) return "<" + stack.back() + "> not closed";
  return "";
}

std::string Render(const Trace& a, const Trace& b) {
  const TraceComparison c = Compare(a, b);
  return ComparisonHtml(c, a, b);
}

void CheckPage(const std::string& html) {
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("</html>"), std::string::npos);
  const std::vector<std::string> svgs = SvgBlocks(html);
  EXPECT_EQ(svgs.size(), 2u);  // the error plot and the range plot
  for (const std::string& svg : svgs) EXPECT_EQ(XmlProblem(svg), "") << svg.substr(0, 200);
  // No network: the only URL is the SVG namespace; no script at all.
  std::string rest = html;
  const std::string ns = "xmlns=\"http://www.w3.org/2000/svg\"";
  for (size_t p = rest.find(ns); p != std::string::npos; p = rest.find(ns))
    rest.erase(p, ns.size());
  EXPECT_EQ(rest.find("http://"), std::string::npos);
  EXPECT_EQ(rest.find("https://"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  EXPECT_EQ(html.find("@import"), std::string::npos);
}

TEST(HtmlReport, DivergingTraces) {
  const Trace a = MakeTrace();
  Trace b = a;
  Perturb(b, "Kcur-1", 0.05);
  Perturb(b, "kqv_out-1", 0.05);
  const std::string html = Render(a, b);
  CheckPage(html);
  EXPECT_NE(html.find("first divergent op <b class=\"mono\">Kcur</b> in layer 1"),
            std::string::npos);
  EXPECT_NE(html.find("first divergent: Kcur-1"), std::string::npos);  // the plot's mark
  EXPECT_NE(html.find("<tr class=\"bad first\" id=\"first\">"), std::string::npos);
  EXPECT_NE(html.find("class=\"tol\""), std::string::npos);  // the tolerance line
  // The hostile name is shown, escaped, in the table and the plot.
  EXPECT_EQ(html.find(kHostile), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;-0"), std::string::npos);
  EXPECT_NE(html.find("synthetic &quot;A&quot; &amp; &lt;co&gt;"), std::string::npos);
}

TEST(HtmlReport, ConsistentTraces) {
  const Trace a = MakeTrace();
  const std::string html = Render(a, a);
  CheckPage(html);
  EXPECT_NE(html.find("<b>Consistent</b>"), std::string::npos);
  EXPECT_EQ(html.find("<tr class=\"bad"), std::string::npos);
}

TEST(HtmlReport, NonFiniteAndNothingCompared) {
  const Trace a = MakeTrace();
  Trace b = a;
  b.points[5].data[3] = std::numeric_limits<float>::quiet_NaN();
  b.points[5].stats = ComputeStats(b.points[5].data);
  CheckPage(Render(a, b));
  // Nothing in common: a page without plots, still well-formed.
  Trace other;
  other.source = "empty";
  const TraceComparison c = Compare(a, other);
  const std::string html = ComparisonHtml(c, a, other);
  EXPECT_NE(html.find("Nothing compared"), std::string::npos);
  EXPECT_TRUE(SvgBlocks(html).empty());
}

TEST(HtmlReport, EscapeMakesValidText) {
  EXPECT_EQ(HtmlEscape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
  EXPECT_EQ(HtmlEscape("x\x01y"), "x\xEF\xBF\xBDy");  // control character
  EXPECT_EQ(HtmlEscape("\xC3\xA9"), "\xC3\xA9");      // valid UTF-8 kept
  EXPECT_EQ(HtmlEscape("\xC3("), "\xEF\xBF\xBD(");    // truncated sequence
  EXPECT_EQ(HtmlEscape("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // a surrogate
}

}  // namespace
}  // namespace ggufscope::compare
