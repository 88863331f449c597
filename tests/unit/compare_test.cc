// The trace compare engine on synthetic traces: graph order and inputs, the
// first divergent op (the perturbed op, not its downstream), NaN/Inf,
// missing points, row alignment, shapes, tolerances, statistics-only sides.
#include "compare/trace_compare.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>

#include "compare/trace_report.h"

namespace ggufscope::compare {
namespace {

constexpr int kLayers = 3;
constexpr int64_t kTokens = 5;

// Widths of a toy model: n_embd 8, 2 query heads and 1 KV head of 4, n_ff 12, vocab 16.
int64_t Width(const std::string& op) {
  if (op == "Kcur" || op == "Vcur") return 4;
  if (op == "ffn_gate" || op == "ffn_up") return 12;
  if (op == "result_output") return 16;
  return 8;
}

TracePoint RandomPoint(const std::string& name, int64_t rows, std::mt19937_64& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  TracePoint p;
  p.name = name;
  p.rows = rows;
  p.cols = Width(ParsePointName(name).op);
  p.data.resize(static_cast<size_t>(p.rows * p.cols));
  for (float& v : p.data) v = nd(rng);
  p.stats = ComputeStats(p.data);
  return p;
}

// Every point of a kLayers-layer model, in capture order.
Trace MakeTrace(uint64_t seed = 1) {
  std::mt19937_64 rng(seed);
  Trace t;
  t.source = "synthetic";
  t.header.tokens = std::vector<int32_t>{1, 2, 3, 4, 5};
  t.points.push_back(RandomPoint("inp_embd", kTokens, rng));
  for (int l = 0; l < kLayers; ++l) {
    for (const char* op : {"attn_norm", "Qcur", "Kcur", "Vcur", "kqv_out", "attn_out", "ffn_inp", "ffn_norm",
                           "ffn_gate", "ffn_up", "ffn_out", "l_out"}) {
      t.points.push_back(RandomPoint(PointName(op, l), kTokens, rng));
    }
  }
  t.points.push_back(RandomPoint("result_norm", kTokens, rng));
  t.points.push_back(RandomPoint("result_output", kTokens, rng));
  return t;
}

TracePoint* Mutable(Trace& t, const std::string& name) {
  for (TracePoint& p : t.points) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

// Adds noise of relative L2 size ~rel to one point.
void Perturb(TracePoint& p, double rel, uint64_t seed = 7) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  for (float& v : p.data) v = static_cast<float>(v + rel * p.stats.rms * nd(rng));
  p.stats = ComputeStats(p.data);
}

// Perturbs `origin` and everything computed from it (through the graph
// table), as a real bug propagates; returns the names touched.
std::set<std::string> PerturbDownstream(Trace& t, const std::string& origin, double rel) {
  std::set<std::string> hit = {origin};
  for (TracePoint& p : t.points) {
    bool affected = p.name == origin;
    for (const std::string& in : GraphInputs(p.name, kLayers)) affected = affected || hit.count(in) > 0;
    if (!affected) continue;
    hit.insert(p.name);
    Perturb(p, rel);
  }
  return hit;
}

TraceComparison Compare(const Trace& a, const Trace& b, CompareOptions opt = {}) {
  gguf::Result<TraceComparison> r = CompareTraces(a, b, opt);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().Message());
  return r.ok() ? std::move(*r) : TraceComparison{};
}

TEST(TraceGraph, NamesAndOrder) {
  EXPECT_EQ(PointName("attn_norm", 3), "attn_norm-3");
  EXPECT_EQ(PointName("result_output", -1), "result_output");
  const ParsedName p = ParsePointName("ffn_up-12");
  EXPECT_EQ(p.op, "ffn_up");
  EXPECT_EQ(p.layer, 12);
  EXPECT_EQ(ParsePointName("result_output").layer, -1);
  EXPECT_EQ(ParsePointName("foo-bar").op, "foo-bar");
  EXPECT_EQ(ParsePointName("x-").layer, -1);
  EXPECT_LT(RankOf("inp_embd"), RankOf("attn_norm-0"));
  EXPECT_LT(RankOf("Kcur-0"), RankOf("Vcur-0"));
  EXPECT_LT(RankOf("l_out-0"), RankOf("attn_norm-1"));
  EXPECT_LT(RankOf("l_out-9"), RankOf("attn_norm-10"));  // numeric, not lexical
  EXPECT_LT(RankOf("l_out-30"), RankOf("result_norm"));
  EXPECT_LT(RankOf("result_norm"), RankOf("result_output"));
  EXPECT_FALSE(RankOf("my_op-2").known);
  EXPECT_LT(RankOf("l_out-2"), RankOf("my_op-2"));
  EXPECT_LT(RankOf("my_op-2"), RankOf("attn_norm-3"));
}

TEST(TraceGraph, Inputs) {
  using V = std::vector<std::string>;
  EXPECT_EQ(GraphInputs("inp_embd", 4), V{});
  EXPECT_EQ(GraphInputs("attn_norm-0", 4), V{"inp_embd"});
  EXPECT_EQ(GraphInputs("attn_norm-2", 4), V{"l_out-1"});
  EXPECT_EQ(GraphInputs("Qcur-2", 4), V{"attn_norm-2"});
  EXPECT_EQ(GraphInputs("kqv_out-1", 4), (V{"Qcur-1", "Kcur-1", "Vcur-1"}));
  EXPECT_EQ(GraphInputs("ffn_inp-0", 4), (V{"attn_out-0", "inp_embd"}));
  EXPECT_EQ(GraphInputs("ffn_inp-3", 4), (V{"attn_out-3", "l_out-2"}));
  EXPECT_EQ(GraphInputs("ffn_out-1", 4), (V{"ffn_gate-1", "ffn_up-1"}));
  EXPECT_EQ(GraphInputs("l_out-1", 4), (V{"ffn_out-1", "ffn_inp-1"}));
  EXPECT_EQ(GraphInputs("result_norm", 4), V{"l_out-3"});
  EXPECT_EQ(GraphInputs("result_output", 4), V{"result_norm"});
  EXPECT_EQ(GraphInputs("my_op-1", 4), V{});
}

TEST(TraceCompare, IdenticalTracesAreConsistent) {
  const Trace a = MakeTrace();
  const TraceComparison c = Compare(a, a);
  EXPECT_EQ(c.points.size(), a.points.size());
  EXPECT_TRUE(c.consistent());
  EXPECT_FALSE(c.first_divergent.has_value());
  EXPECT_EQ(c.n_layers, kLayers);
  for (const PointComparison& p : c.points) {
    EXPECT_EQ(p.verdict, Verdict::kOk) << p.name;
    EXPECT_EQ(p.d.rel_l2, 0.0);
    EXPECT_EQ(p.d.bit_identical, p.d.n);
  }
  ASSERT_NE(c.Find("result_output"), nullptr);
  EXPECT_EQ(c.Find("result_output")->argmax_agreement, 1.0);
  EXPECT_EQ(c.layers.size(), static_cast<size_t>(kLayers));
  EXPECT_NE(SummaryLine(c).find("consistent"), std::string::npos);
}

TEST(TraceCompare, FirstDivergentIsThePerturbedOpNotItsDownstream) {
  const Trace a = MakeTrace();
  Trace b = a;
  const std::set<std::string> hit = PerturbDownstream(b, "Kcur-1", 0.05);
  EXPECT_TRUE(hit.count("kqv_out-1") && hit.count("l_out-2") && hit.count("result_output"));
  EXPECT_FALSE(hit.count("Qcur-1") || hit.count("Vcur-1") || hit.count("attn_norm-1"));
  const TraceComparison c = Compare(a, b);
  ASSERT_TRUE(c.first_divergent.has_value());
  const PointComparison& f = c.points[*c.first_divergent];
  EXPECT_EQ(f.name, "Kcur-1");
  EXPECT_EQ(f.parsed.op, "Kcur");
  EXPECT_EQ(f.parsed.layer, 1);
  EXPECT_EQ(f.verdict, Verdict::kDiverges);
  EXPECT_NEAR(f.d.rel_l2, 0.05, 0.02);
  EXPECT_EQ(f.inputs, std::vector<std::string>{"attn_norm-1"});
  ASSERT_EQ(c.origins.size(), 1u);  // everything else that diverges has a divergent input
  for (const PointComparison& p : c.points) {
    EXPECT_EQ(IsBad(p.verdict), hit.count(p.name) > 0) << p.name;
  }
  EXPECT_EQ(c.Find("Qcur-1")->verdict, Verdict::kOk);
  EXPECT_EQ(c.Find("Vcur-1")->verdict, Verdict::kOk);
  EXPECT_EQ(c.n_bad(), hit.size());
  const std::string summary = SummaryLine(c);
  EXPECT_NE(summary.find("Kcur in layer 1"), std::string::npos) << summary;
  EXPECT_NE(summary.find("attn_norm-1"), std::string::npos) << summary;
  // Layer 1 is where the error starts: its input (l_out-0) is exact.
  ASSERT_EQ(c.layers.size(), 3u);
  EXPECT_EQ(c.layers[0].rel_out, 0.0);
  EXPECT_FALSE(c.layers[1].gain.has_value());
  EXPECT_GT(c.layers[1].rel_out, 0.0);
  ASSERT_TRUE(c.layers[2].gain.has_value());
}

TEST(TraceCompare, TwoIndependentBugsAreBothOrigins) {
  const Trace a = MakeTrace();
  Trace b = a;
  Perturb(*Mutable(b, "Vcur-0"), 0.1);
  Perturb(*Mutable(b, "ffn_up-2"), 0.1);
  const TraceComparison c = Compare(a, b);
  ASSERT_EQ(c.origins.size(), 2u);
  EXPECT_EQ(c.points[c.origins[0]].name, "Vcur-0");
  EXPECT_EQ(c.points[c.origins[1]].name, "ffn_up-2");
  EXPECT_EQ(c.points[*c.first_divergent].name, "Vcur-0");
}

TEST(TraceCompare, ErrorsBelowToleranceAreConsistent) {
  const Trace a = MakeTrace();
  Trace b = a;
  PerturbDownstream(b, "Qcur-0", 1e-5);  // f32 rounding noise
  const TraceComparison c = Compare(a, b);
  EXPECT_TRUE(c.consistent());
  EXPECT_GT(c.Find("Qcur-0")->d.rel_l2, 0.0);
}

TEST(TraceCompare, ToleranceOverrides) {
  const Trace a = MakeTrace();
  Trace b = a;
  Perturb(*Mutable(b, "Kcur-1"), 5e-3);
  EXPECT_FALSE(Compare(a, b).consistent());  // default 1e-3
  CompareOptions by_op;
  by_op.tol.by_name["Kcur"] = 1e-2;
  EXPECT_TRUE(Compare(a, b, by_op).consistent());
  CompareOptions by_point;
  by_point.tol.by_name["Kcur-1"] = 1e-2;
  by_point.tol.all = 1e-9;  // a point's own entry wins over --tol X
  const TraceComparison c = Compare(a, b, by_point);
  EXPECT_EQ(c.Find("Kcur-1")->verdict, Verdict::kOk);
  EXPECT_EQ(c.Find("Kcur-1")->tol, 1e-2);
  EXPECT_EQ(c.Find("Qcur-1")->tol, 1e-9);
  CompareOptions loose;
  loose.tol.all = 1e-2;
  EXPECT_TRUE(Compare(a, b, loose).consistent());
  EXPECT_EQ(Tolerance{}.For("l_out-3"), kDefaultRelL2);
}

TEST(TraceCompare, NanWhereTheReferenceHasANumberDiverges) {
  const Trace a = MakeTrace();
  Trace b = a;
  TracePoint& up = *Mutable(b, "ffn_up-0");
  up.data[7] = NAN;
  up.stats = ComputeStats(up.data);
  const TraceComparison c = Compare(a, b);
  const PointComparison& p = *c.Find("ffn_up-0");
  EXPECT_EQ(p.verdict, Verdict::kNonFinite);
  EXPECT_EQ(p.nonfinite_mismatch, 1u);
  EXPECT_EQ(p.b.stats.nan, 1u);
  EXPECT_EQ(p.d.rel_l2, 0.0);  // the finite pairs agree: the NaN alone decides
  ASSERT_TRUE(c.first_divergent.has_value());
  EXPECT_EQ(c.points[*c.first_divergent].name, "ffn_up-0");
  EXPECT_NE(p.note.find("NaN"), std::string::npos);
}

TEST(TraceCompare, MatchingNonFiniteValuesAgree) {
  Trace a = MakeTrace();
  for (Trace* t : {&a}) {
    TracePoint& g = *Mutable(*t, "ffn_gate-1");
    g.data[0] = NAN;
    g.data[1] = INFINITY;
    g.stats = ComputeStats(g.data);
  }
  Trace b = a;
  EXPECT_TRUE(Compare(a, b).consistent());
  TracePoint& g = *Mutable(b, "ffn_gate-1");
  g.data[1] = -INFINITY;  // +Inf in the reference, -Inf here
  EXPECT_EQ(Compare(a, b).Find("ffn_gate-1")->verdict, Verdict::kNonFinite);
}

TEST(TraceCompare, MissingPointsAreListedAndSkippedOver) {
  const Trace a = MakeTrace();
  Trace b = a;
  std::erase_if(b.points, [](const TracePoint& p) { return p.name == "attn_norm-1" || p.name == "Qcur-2"; });
  b.points.push_back(a.points[0]);
  b.points.back().name = "extra_op-1";
  Perturb(*Mutable(b, "Qcur-1"), 0.1);
  const TraceComparison c = Compare(a, b);
  EXPECT_EQ(c.only_a, (std::vector<std::string>{"attn_norm-1", "Qcur-2"}));
  EXPECT_EQ(c.only_b, std::vector<std::string>{"extra_op-1"});
  EXPECT_EQ(c.Find("attn_norm-1"), nullptr);
  const PointComparison& q = c.points[*c.first_divergent];
  EXPECT_EQ(q.name, "Qcur-1");
  // attn_norm-1 is missing: Qcur-1 is judged against what attn_norm-1 reads.
  EXPECT_EQ(q.inputs, std::vector<std::string>{"l_out-0"});
  // kqv_out-2 reads the missing Qcur-2, i.e. attn_norm-2.
  EXPECT_EQ(c.Find("kqv_out-2")->inputs, (std::vector<std::string>{"attn_norm-2", "Kcur-2", "Vcur-2"}));
}

TEST(TraceCompare, OnlyTheOutputTraced) {
  const Trace a = MakeTrace();
  Trace b;
  b.source = "logits";
  b.points.push_back(*a.Find("result_output"));
  Perturb(b.points[0], 0.2);
  const TraceComparison c = Compare(a, b);
  ASSERT_EQ(c.points.size(), 1u);
  EXPECT_EQ(c.only_a.size(), a.points.size() - 1);
  ASSERT_TRUE(c.first_divergent.has_value());
  EXPECT_TRUE(c.points[0].inputs.empty());
  EXPECT_NE(SummaryLine(c).find("no input of it is in both traces"), std::string::npos);
}

TEST(TraceCompare, FewerRowsCompareTheLastPositions) {
  const Trace a = MakeTrace();
  Trace b = a;
  TracePoint& out = *Mutable(b, "result_output");
  const TracePoint& full = *a.Find("result_output");
  out.rows = 1;  // an engine that computes logits for the last token only
  out.data.assign(full.data.end() - full.cols, full.data.end());
  out.stats = ComputeStats(out.data);
  const TraceComparison c = Compare(a, b);
  const PointComparison& p = *c.Find("result_output");
  EXPECT_EQ(p.rows, 1);
  EXPECT_EQ(p.verdict, Verdict::kOk);
  EXPECT_EQ(p.argmax_agreement, 1.0);
}

TEST(TraceCompare, WorstRowAndArgmax) {
  const Trace a = MakeTrace();
  Trace b = a;
  TracePoint& out = *Mutable(b, "result_output");
  // Position 3: swap its top logit with another one.
  float* row = out.data.data() + 3 * out.cols;
  const auto top = std::max_element(row, row + out.cols) - row;
  std::swap(row[top], row[(top + 1) % out.cols]);
  out.stats = ComputeStats(out.data);
  const TraceComparison c = Compare(a, b);
  const PointComparison& p = *c.Find("result_output");
  EXPECT_EQ(p.worst_row, 3);
  EXPECT_DOUBLE_EQ(*p.argmax_agreement, 4.0 / 5.0);
}

TEST(TraceCompare, WidthMismatchIsAShapeVerdict) {
  const Trace a = MakeTrace();
  Trace b = a;
  TracePoint& v = *Mutable(b, "Vcur-0");
  v.cols = 2;
  v.rows = 10;
  const TraceComparison c = Compare(a, b);
  const PointComparison& p = *c.Find("Vcur-0");
  EXPECT_EQ(p.verdict, Verdict::kShape);
  EXPECT_FALSE(p.element_wise);
  EXPECT_NE(p.note.find("widths differ"), std::string::npos);
}

TEST(TraceCompare, StatisticsOnlySides) {
  const Trace a = MakeTrace();
  Trace b = a;
  for (TracePoint& p : b.points) p.data.clear();
  b.header.stats_only = true;
  TraceComparison c = Compare(a, b);
  for (const PointComparison& p : c.points) EXPECT_EQ(p.verdict, Verdict::kUnjudged) << p.name;
  EXPECT_TRUE(c.consistent());
  // An rms 10% off proves a relative L2 error of at least 0.1.
  Mutable(b, "ffn_out-1")->stats.rms *= 1.1;
  c = Compare(a, b);
  const PointComparison& p = *c.Find("ffn_out-1");
  EXPECT_EQ(p.verdict, Verdict::kDiverges);
  EXPECT_NEAR(*p.rel_l2_lower_bound, 0.1, 1e-9);
  EXPECT_EQ(c.points[*c.first_divergent].name, "ffn_out-1");
  // Its inputs are unjudged: it is judged against nothing traced element-wise.
  EXPECT_TRUE(p.inputs.empty());
}

TEST(TraceCompare, DifferentTokensAreAnError) {
  const Trace a = MakeTrace();
  Trace b = a;
  b.header.tokens = std::vector<int32_t>{1, 2, 3, 4, 6};
  gguf::Result<TraceComparison> r = CompareTraces(a, b, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().field, "trace.tokens");
  CompareOptions anyway;
  anyway.ignore_tokens = true;
  EXPECT_TRUE(CompareTraces(a, b, anyway).ok());
  b.header.tokens.reset();  // a side that does not say: no check
  EXPECT_TRUE(CompareTraces(a, b, {}).ok());
}

TEST(TraceCompare, PointsFilter) {
  const Trace a = MakeTrace();
  CompareOptions opt;
  opt.points_regex = "^(Kcur|l_out)-";
  const TraceComparison c = Compare(a, a, opt);
  EXPECT_EQ(c.points.size(), 2u * kLayers);
  EXPECT_TRUE(c.only_a.empty());
  opt.points_regex = "(";
  EXPECT_FALSE(CompareTraces(a, a, opt).ok());
}

TEST(TraceCompare, ReportsNameTheFirstDivergentOp) {
  const Trace a = MakeTrace();
  Trace b = a;
  PerturbDownstream(b, "ffn_gate-0", 0.3);
  const TraceComparison c = Compare(a, b);
  const std::string text = ComparisonText(c, a, b);
  EXPECT_NE(text.find("ffn_gate-0"), std::string::npos);
  EXPECT_NE(text.find("<- first divergent"), std::string::npos);
  EXPECT_NE(text.find("DIVERGES: first divergent op ffn_gate in layer 0"), std::string::npos) << text;
  const nlohmann::json j = ComparisonJson(c, a, b);
  EXPECT_EQ(j["verdict"], "diverges");
  EXPECT_EQ(j["first_divergent"]["name"], "ffn_gate-0");
  EXPECT_EQ(j["first_divergent"]["layer"], 0);
  EXPECT_EQ(j["points"].size(), a.points.size());
  EXPECT_EQ(j["origins"], nlohmann::json::array({"ffn_gate-0"}));
  const std::string only_bad = ComparisonText(c, a, b, true);
  EXPECT_EQ(only_bad.find("attn_norm-0 "), std::string::npos);
}

}  // namespace
}  // namespace ggufscope::compare
