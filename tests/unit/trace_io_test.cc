// Trace files: GGUF round trip (values, statistics, header), statistics-only
// traces, .npy directories, name maps, and hostile .npy input.
#include "compare/trace_io.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "compare/npy_reader.h"
#include "gguf/writer.h"
#include "inspect/npy.h"

namespace ggufscope::compare {
namespace {

namespace fs = std::filesystem;

TracePoint Point(const std::string& name, int64_t rows, int64_t cols, float scale) {
  TracePoint p;
  p.name = name;
  p.rows = rows;
  p.cols = cols;
  for (int64_t i = 0; i < rows * cols; ++i) p.data.push_back(scale * static_cast<float>(i % 7) - 1.0f);
  p.stats = ComputeStats(p.data);
  return p;
}

Trace Sample() {
  Trace t;
  t.header.version = kTraceVersion;
  t.header.producer = "ggufscope test";
  t.header.backend = "cpu";
  t.header.precision = "f32";
  t.header.model_path = "/models/m.gguf";
  t.header.model_size = 1234;
  t.header.model_sha256 = std::string(64, 'a');
  t.header.model_arch = "llama";
  t.header.tokens = std::vector<int32_t>{1, 403, 407};
  t.points.push_back(Point("inp_embd", 3, 8, 0.5f));
  t.points.push_back(Point("attn_norm-0", 3, 8, 2.0f));
  t.points.push_back(Point("result_output", 3, 16, 1.0f));
  t.points[1].data[2] = NAN;
  t.points[1].stats = ComputeStats(t.points[1].data);
  return t;
}

std::string TempPath(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / "trace_io_test";
  fs::create_directories(dir);
  return (dir / name).string();
}

TEST(TraceIo, StatsOfFiniteValues) {
  const std::vector<float> x = {1.f, -3.f, NAN, INFINITY, 2.f};
  const PointStats s = ComputeStats(x);
  EXPECT_EQ(s.n, 5u);
  EXPECT_EQ(s.nan, 1u);
  EXPECT_EQ(s.inf, 1u);
  EXPECT_EQ(s.min, -3.0);
  EXPECT_EQ(s.max, 2.0);
  EXPECT_DOUBLE_EQ(s.mean, 0.0);
  EXPECT_DOUBLE_EQ(s.rms, std::sqrt(14.0 / 3.0));
}

TEST(TraceIo, GgufRoundTrip) {
  const Trace t = Sample();
  const std::string path = TempPath("roundtrip.gguf");
  ASSERT_TRUE(WriteTraceGguf(t, path).ok());
  gguf::Result<Trace> r = ReadTrace(path, nullptr);
  ASSERT_TRUE(r.ok()) << r.error().Message();
  EXPECT_EQ(r->header.producer, "ggufscope test");
  EXPECT_EQ(r->header.backend, "cpu");
  EXPECT_EQ(r->header.model_size, 1234u);
  EXPECT_EQ(r->header.model_arch, "llama");
  EXPECT_EQ(r->header.tokens, t.header.tokens);
  EXPECT_FALSE(r->header.stats_only);
  ASSERT_EQ(r->points.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const TracePoint &a = t.points[i], &b = r->points[i];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.rows, b.rows);
    EXPECT_EQ(a.cols, b.cols);
    ASSERT_EQ(a.data.size(), b.data.size());
    EXPECT_EQ(std::memcmp(a.data.data(), b.data.data(), a.data.size() * 4), 0);
    EXPECT_EQ(b.stats.nan, a.stats.nan);
  }
  // ne = [width, n_tokens], f32, as llama.cpp's graph tensors.
  gguf::Result<gguf::GgufFile> f = gguf::GgufFile::Open(path);
  ASSERT_TRUE(f.ok());
  const gguf::TensorInfo* ti = f->FindTensor("result_output");
  ASSERT_NE(ti, nullptr);
  EXPECT_EQ(ti->n_dims, 2u);
  EXPECT_EQ(ti->ne[0], 16);
  EXPECT_EQ(ti->ne[1], 3);
  EXPECT_EQ(ti->type, gguf::GgmlType::kF32);
  EXPECT_EQ(f->GetUint("trace.version"), kTraceVersion);
  EXPECT_EQ(f->GetDouble("trace.point.attn_norm-0.max"), t.points[1].stats.max);
  EXPECT_EQ(f->GetUint("trace.point.attn_norm-0.nan"), 1u);
  EXPECT_EQ(f->GetUint("trace.point.result_output.width"), 16u);
}

TEST(TraceIo, StatsOnlyRoundTrip) {
  Trace t = Sample();
  t.header.stats_only = true;
  const std::string path = TempPath("stats.gguf");
  ASSERT_TRUE(WriteTraceGguf(t, path).ok());
  gguf::Result<gguf::GgufFile> f = gguf::GgufFile::Open(path);
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->tensors().empty());
  gguf::Result<Trace> r = ReadTrace(path, nullptr);
  ASSERT_TRUE(r.ok()) << r.error().Message();
  EXPECT_TRUE(r->header.stats_only);
  ASSERT_EQ(r->points.size(), 3u);
  const TracePoint& p = r->points[1];
  EXPECT_EQ(p.name, "attn_norm-0");
  EXPECT_FALSE(p.has_data());
  EXPECT_EQ(p.rows, 3);
  EXPECT_EQ(p.cols, 8);
  EXPECT_EQ(p.stats.rms, t.points[1].stats.rms);
  EXPECT_EQ(p.stats.nan, 1u);
}

TEST(TraceIo, AModelFileIsNotATrace) {
  gguf::Writer w;
  ASSERT_TRUE(w.AddKv("general.architecture", gguf::Value::Str("llama")).ok());
  const std::string path = TempPath("model.gguf");
  ASSERT_TRUE(w.WriteFile(path).ok());
  gguf::Result<Trace> r = ReadTrace(path, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().Message().find("trace.version"), std::string::npos);
  EXPECT_NE(r.error().Message().find("model file"), std::string::npos);
  EXPECT_FALSE(ReadTrace(TempPath("does-not-exist.gguf"), nullptr).ok());
}

TEST(TraceIo, QuantizedTracePointsAreRefused) {
  // A Q8_0 "activation" would let a small file ask for ~4x its size in f32
  // (and 1-bit types far more): only float types are activations.
  gguf::Writer w;
  ASSERT_TRUE(w.AddKv(std::string(kKeyVersion), gguf::Value::U(gguf::ValueType::kUint32, kTraceVersion)).ok());
  std::vector<uint8_t> block(34, 0);
  ASSERT_TRUE(w.AddTensor("inp_embd", gguf::GgmlType::kQ8_0, {32, 1}, block).ok());
  const std::string path = TempPath("q8.gguf");
  ASSERT_TRUE(w.WriteFile(path).ok());
  gguf::Result<Trace> r = ReadTrace(path, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().Message().find("inp_embd"), std::string::npos) << r.error().Message();
  EXPECT_NE(r.error().Message().find("Q8_0"), std::string::npos) << r.error().Message();
}

TEST(TraceIo, NameMaps) {
  gguf::Result<NameMap> m = NameMap::Parse(R"({
      "names": {"tok_embeddings": "inp_embd", "debug_tensor": ""},
      "rules": [{"match": "^blk\\.(\\d+)\\.attn_norm$", "name": "attn_norm-$1"},
                {"match": "^layers\\.(\\d+)\\.(\\w+)$", "name": "$2-$1"}]})",
                                           "map.json");
  ASSERT_TRUE(m.ok()) << m.error().Message();
  EXPECT_EQ(m->Apply("tok_embeddings"), "inp_embd");
  EXPECT_EQ(m->Apply("blk.12.attn_norm"), "attn_norm-12");
  EXPECT_EQ(m->Apply("layers.3.Kcur"), "Kcur-3");
  EXPECT_EQ(m->Apply("debug_tensor"), "");
  EXPECT_EQ(m->Apply("result_output"), "result_output");
  gguf::Result<NameMap> flat = NameMap::Parse(R"({"logits": "result_output"})", "flat.json");
  ASSERT_TRUE(flat.ok());
  EXPECT_EQ(flat->Apply("logits"), "result_output");
  EXPECT_FALSE(NameMap::Parse("[1, 2]", "x").ok());
  EXPECT_FALSE(NameMap::Parse(R"({"names": {"a": 3}})", "x").ok());
  EXPECT_FALSE(NameMap::Parse(R"({"rules": [{"match": "(", "name": "x"}]})", "x").ok());
  EXPECT_FALSE(NameMap::Parse("{not json", "x").ok());
}

TEST(TraceIo, NpyDirectoryWithAMap) {
  const fs::path dir = TempPath("npydir");
  fs::remove_all(dir);
  fs::create_directories(dir);
  const Trace t = Sample();
  // (3, 8) as is; attn_norm as (1, 3, 2, 4): a batch axis and heads.
  ASSERT_TRUE(inspect::WriteNpyF32((dir / "tok_embeddings.npy").string(), t.points[0].data, {3, 8}).ok());
  ASSERT_TRUE(inspect::WriteNpyF32((dir / "blk.0.attn_norm.npy").string(), t.points[1].data, {1, 3, 2, 4}).ok());
  ASSERT_TRUE(inspect::WriteNpyF32((dir / "debug_tensor.npy").string(), t.points[0].data, {24}).ok());
  const std::vector<float> ids = {1, 403, 407};
  ASSERT_TRUE(inspect::WriteNpyF32((dir / "tokens.npy").string(), ids, {3}).ok());
  {
    std::ofstream(dir / "notes.txt") << "not a trace point";
  }
  gguf::Result<NameMap> m = NameMap::Parse(
      R"({"names": {"tok_embeddings": "inp_embd", "debug_tensor": ""},
          "rules": [{"match": "^blk\\.(\\d+)\\.attn_norm$", "name": "attn_norm-$1"}]})",
      "map");
  ASSERT_TRUE(m.ok());
  gguf::Result<Trace> r = ReadTrace(dir.string(), &*m);
  ASSERT_TRUE(r.ok()) << r.error().Message();
  EXPECT_EQ(r->header.tokens, t.header.tokens);
  ASSERT_EQ(r->points.size(), 2u);
  const TracePoint* e = r->Find("inp_embd");
  const TracePoint* n = r->Find("attn_norm-0");
  ASSERT_TRUE(e != nullptr && n != nullptr);
  EXPECT_EQ(n->rows, 3);
  EXPECT_EQ(n->cols, 8);
  EXPECT_EQ(n->stats.nan, 1u);
  EXPECT_EQ(std::memcmp(e->data.data(), t.points[0].data.data(), 24 * 4), 0);
  // Two files mapped to one name are refused.
  gguf::Result<NameMap> clash = NameMap::Parse(R"({"tok_embeddings": "x", "debug_tensor": "x"})", "clash");
  ASSERT_TRUE(clash.ok());
  EXPECT_FALSE(ReadTrace(dir.string(), &*clash).ok());
}

TEST(TraceIo, RowsAndColsFromShapes) {
  using S = std::vector<int64_t>;
  EXPECT_EQ(AsRowsCols(S{5, 64}), std::make_pair(int64_t{5}, int64_t{64}));
  EXPECT_EQ(AsRowsCols(S{64}), std::make_pair(int64_t{1}, int64_t{64}));
  EXPECT_EQ(AsRowsCols(S{1, 5, 64}), std::make_pair(int64_t{5}, int64_t{64}));
  EXPECT_EQ(AsRowsCols(S{5, 14, 64}), std::make_pair(int64_t{5}, int64_t{896}));
  EXPECT_EQ(AsRowsCols(S{1, 64}), std::make_pair(int64_t{1}, int64_t{64}));
  EXPECT_EQ(AsRowsCols(S{}), std::make_pair(int64_t{1}, int64_t{1}));
}

std::vector<uint8_t> Npy(const std::string& dict, size_t data_bytes, uint8_t major = 1) {
  std::vector<uint8_t> b = {0x93, 'N', 'U', 'M', 'P', 'Y', major, 0};
  const uint32_t len = static_cast<uint32_t>(dict.size());
  b.push_back(static_cast<uint8_t>(len));
  b.push_back(static_cast<uint8_t>(len >> 8));
  if (major > 1) {
    b.push_back(static_cast<uint8_t>(len >> 16));
    b.push_back(static_cast<uint8_t>(len >> 24));
  }
  b.insert(b.end(), dict.begin(), dict.end());
  b.resize(b.size() + data_bytes);
  return b;
}

TEST(NpyReader, Types) {
  std::vector<uint8_t> f8 = Npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", 16);
  const double two[2] = {1.5, -2.25};
  std::memcpy(f8.data() + f8.size() - 16, two, 16);
  gguf::Result<NpyArray> a = ParseNpy(f8, "f8");
  ASSERT_TRUE(a.ok()) << a.error().Message();
  EXPECT_EQ(a->data, (std::vector<float>{1.5f, -2.25f}));
  std::vector<uint8_t> f2 = Npy("{'descr': '<f2', 'fortran_order': False, 'shape': (1,), }", 2, 2);
  f2[f2.size() - 2] = 0x00;
  f2[f2.size() - 1] = 0x3c;  // 1.0
  ASSERT_TRUE(ParseNpy(f2, "f2").ok());
  EXPECT_EQ(ParseNpy(f2, "f2")->data[0], 1.0f);
  std::vector<uint8_t> i4 = Npy("{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }", 4);
  const int32_t minus = -7;
  std::memcpy(i4.data() + i4.size() - 4, &minus, 4);
  EXPECT_EQ(ParseNpy(i4, "i4")->data[0], -7.0f);
  // Fortran order (2, 3): memory holds the columns.
  std::vector<uint8_t> ft = Npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24);
  const float cols[6] = {0, 3, 1, 4, 2, 5};
  std::memcpy(ft.data() + ft.size() - 24, cols, 24);
  gguf::Result<NpyArray> f = ParseNpy(ft, "fortran");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->data, (std::vector<float>{0, 1, 2, 3, 4, 5}));
}

TEST(NpyReader, HostileFilesAreErrors) {
  const std::vector<uint8_t> html = {'<', '!', 'D', 'O', 'C', 'T', 'Y', 'P', 'E', ' ', 'h'};
  EXPECT_EQ(ParseNpy(html, "x").error().code, gguf::ErrorCode::kBadMagic);
  EXPECT_FALSE(ParseNpy(std::vector<uint8_t>(3, 0x93), "x").ok());
  // Shape bigger than the data.
  EXPECT_EQ(ParseNpy(Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }", 8), "x")
                .error()
                .code,
            gguf::ErrorCode::kTruncated);
  // Element count overflow.
  EXPECT_FALSE(
      ParseNpy(Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (281474976710655, 281474976710655), }", 8), "x")
          .ok());
  // Header length past the end.
  std::vector<uint8_t> cut = Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", 4);
  cut.resize(20);
  EXPECT_FALSE(ParseNpy(cut, "x").ok());
  EXPECT_FALSE(ParseNpy(Npy("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", 4), "x").ok());
  EXPECT_FALSE(ParseNpy(Npy("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", 8), "x").ok());
  EXPECT_FALSE(ParseNpy(Npy("{'descr': '<f4', 'shape': (1,), }", 4), "x").ok());
  EXPECT_FALSE(ParseNpy(Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (a,), }", 4), "x").ok());
  EXPECT_FALSE(ParseNpy(Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", 4, 9), "x").ok());
}

}  // namespace
}  // namespace ggufscope::compare
