// inspect/checkpoint_diff.h: the conventions applied chunk by chunk equal
// the whole-tensor transform (and undo to the source), a file imported from
// a checkpoint is consistent with it, and hostile checkpoints are clear
// errors or flagged entries, never a crash. The oracle tests
// (tests/oracle/test_provenance.py) check the same against files made by
// gguf-py and llama.cpp's quantizer.
#include "inspect/checkpoint_diff.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "gguf/hf_import.h"
#include "gguf/hf_names.h"
#include "gguf/safetensors.h"

namespace ggufscope::inspect {
namespace {

namespace fs = std::filesystem;
using gguf::HfTransform;

struct StIn {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

void WriteSt(const std::string& path, const std::map<std::string, StIn>& tensors) {
  nlohmann::json h = nlohmann::json::object();
  uint64_t at = 0;
  for (const auto& [name, t] : tensors) {
    h[name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {at, at + 4 * t.values.size()}}};
    at += 4 * t.values.size();
  }
  const std::string text = h.dump();
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = text.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << text;
  for (const auto& [name, t] : tensors) out.write(reinterpret_cast<const char*>(t.values.data()), 4 * t.values.size());
}

std::vector<float> Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// A one-layer llama (8 wide, 2 heads of 4, 1 KV head, ffn 16, vocab 16).
std::map<std::string, StIn> LlamaWeights() {
  std::map<std::string, StIn> w;
  uint32_t seed = 1;
  auto add = [&](const std::string& n, std::vector<int64_t> shape) {
    size_t count = 1;
    for (int64_t d : shape) count *= static_cast<size_t>(d);
    w[n] = {shape, Random(count, seed++)};
  };
  add("model.embed_tokens.weight", {16, 8});
  add("lm_head.weight", {16, 8});
  add("model.norm.weight", {8});
  add("model.layers.0.input_layernorm.weight", {8});
  add("model.layers.0.post_attention_layernorm.weight", {8});
  add("model.layers.0.self_attn.q_proj.weight", {8, 8});
  add("model.layers.0.self_attn.k_proj.weight", {4, 8});
  add("model.layers.0.self_attn.v_proj.weight", {4, 8});
  add("model.layers.0.self_attn.o_proj.weight", {8, 8});
  add("model.layers.0.mlp.gate_proj.weight", {16, 8});
  add("model.layers.0.mlp.up_proj.weight", {16, 8});
  add("model.layers.0.mlp.down_proj.weight", {8, 16});
  return w;
}

nlohmann::json LlamaConfig() {
  return {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"hidden_size", 8},
          {"intermediate_size", 16}, {"num_hidden_layers", 1}, {"num_attention_heads", 2},
          {"num_key_value_heads", 1}, {"vocab_size", 16}, {"rms_norm_eps", 1e-5}, {"hidden_act", "silu"}};
}

class CheckpointDiffTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ckdiff-" + std::to_string(getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_ / "ckpt");
    WriteConfig(LlamaConfig());
    WriteSt((dir_ / "ckpt" / "model.safetensors").string(), LlamaWeights());
  }
  void TearDown() override { fs::remove_all(dir_); }
  void WriteConfig(const nlohmann::json& j) { std::ofstream(dir_ / "ckpt" / "config.json") << j.dump(); }
  std::string Ckpt() const { return (dir_ / "ckpt").string(); }
  // The checkpoint imported by our importer (F32), written and opened.
  gguf::GgufFile Imported() {
    gguf::Result<gguf::HfImport> imp = gguf::ImportHf(Ckpt(), {});
    EXPECT_TRUE(imp.ok()) << (imp.ok() ? "" : imp.error().Message());
    const std::string path = (dir_ / "model.gguf").string();
    EXPECT_TRUE(imp->writer.WriteFile(path).ok());
    return std::move(gguf::GgufFile::Open(path).value());
  }
  fs::path dir_;
};

TEST(CheckpointRows, ChunksOfWholeHeadsEqualTheWholeTensorTransform) {
  // 4 heads of 8 rows, 3 columns.
  const int64_t rows = 32, cols = 3;
  gguf::HfConfig cfg;
  cfg.n_head = 4;
  cfg.n_head_kv = 2;
  const std::vector<float> v = Random(rows * cols, 7);
  gguf::StTensor t;
  t.name = "q";
  t.shape = {rows, cols};
  t.n_elements = rows * cols;
  t.data = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(v.data()), v.size() * 4);
  for (HfTransform tr : {HfTransform::kPermuteQ, HfTransform::kPermuteK, HfTransform::kNone}) {
    SCOPED_TRACE(std::string(gguf::HfTransformName(tr)));
    std::vector<float> whole = v;
    ASSERT_TRUE(gguf::ApplyHfTransform(tr, whole, rows, cols, 4, 2).ok());
    const uint64_t head = tr == HfTransform::kPermuteQ ? 8 : tr == HfTransform::kPermuteK ? 16 : 1;
    std::vector<float> chunked(v.size());
    for (uint64_t r0 = 0; r0 < rows; r0 += head) {
      ASSERT_TRUE(CheckpointRows(t, tr, cfg, r0, head, std::span<float>(chunked).subspan(r0 * cols, head * cols)).ok());
    }
    EXPECT_EQ(chunked, whole);
    // Undone, the source comes back bit for bit.
    ASSERT_TRUE(gguf::UndoHfTransform(tr, chunked, rows, cols, 4, 2).ok());
    EXPECT_EQ(chunked, v);
  }
  // A chunk that splits a head, or reaches past the tensor, is refused.
  std::vector<float> out(4 * cols);
  EXPECT_FALSE(CheckpointRows(t, HfTransform::kPermuteQ, cfg, 4, 4, out).ok());
  EXPECT_FALSE(CheckpointRows(t, HfTransform::kNone, cfg, 30, 4, out).ok());
  std::vector<float> wrong(5);
  EXPECT_FALSE(CheckpointRows(t, HfTransform::kNone, cfg, 0, 1, wrong).ok());
  // Heads that do not divide the rows: an error naming the tensor.
  cfg.n_head = 3;
  std::vector<float> all(v.size());
  const gguf::Status s = CheckpointRows(t, HfTransform::kPermuteQ, cfg, 0, rows, all);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().Message().find("tensor 'q'"), std::string::npos);
}

TEST_F(CheckpointDiffTest, ImportedFileIsIdenticalToItsCheckpoint) {
  const gguf::GgufFile f = Imported();
  gguf::Result<CheckpointDiffReport> r = DiffCheckpoint(f, Ckpt(), {});
  ASSERT_TRUE(r.ok()) << r.error().Message();
  EXPECT_EQ(r->flagged, 0u);
  EXPECT_EQ(r->tensors.size(), 12u);
  for (const TensorDiffEntry& e : r->tensors) EXPECT_EQ(e.status, DiffStatus::kIdentical) << e.name;
  // Its fingerprint equals the file's values' statistics: q's mean is the checkpoint's.
  gguf::Result<Fingerprint> fp = CheckpointFingerprint(Ckpt(), false, 1);
  ASSERT_TRUE(fp.ok());
  EXPECT_EQ(fp->conventions, "gguf");
  EXPECT_EQ(fp->tensors.size(), 12u);
}

TEST_F(CheckpointDiffTest, ConfigThatContradictsTheFileAndItsShapes) {
  const gguf::GgufFile f = Imported();
  // 8 heads of head_dim 2 on 8 q rows: the rope permutation needs 16 rows.
  nlohmann::json c = LlamaConfig();
  c["num_attention_heads"] = 8;
  c["head_dim"] = 2;
  c["rope_theta"] = 500000.0;
  WriteConfig(c);
  gguf::Result<CheckpointDiffReport> r = DiffCheckpoint(f, Ckpt(), {});
  ASSERT_TRUE(r.ok()) << r.error().Message();
  std::map<std::string, std::string> contradicted;
  for (const ConfigContradiction& x : r->config) contradicted[x.config_key] = x.gguf + " vs " + x.config;
  EXPECT_EQ(contradicted.count("num_attention_heads"), 1u);
  EXPECT_EQ(contradicted.count("rope_theta"), 1u);
  EXPECT_EQ(contradicted.count("head_dim"), 1u);
  const auto q = std::find_if(r->tensors.begin(), r->tensors.end(),
                              [](const TensorDiffEntry& e) { return e.name == "blk.0.attn_q.weight"; });
  ASSERT_NE(q, r->tensors.end());
  EXPECT_EQ(q->status, DiffStatus::kError);
  EXPECT_NE(q->error.find("2 x 8 heads"), std::string::npos) << q->error;
}

TEST_F(CheckpointDiffTest, ReshapedAndMissingTensorsAreEntries) {
  const gguf::GgufFile f = Imported();
  std::map<std::string, StIn> w = LlamaWeights();
  w["model.layers.0.mlp.up_proj.weight"].shape = {8, 16};  // same bytes, another shape
  w.erase("model.layers.0.mlp.gate_proj.weight");
  w["model.layers.0.self_attn.extra.weight"] = {{2}, {1, 2}};
  WriteSt((dir_ / "ckpt" / "model.safetensors").string(), w);
  gguf::Result<CheckpointDiffReport> r = DiffCheckpoint(f, Ckpt(), {});
  ASSERT_TRUE(r.ok()) << r.error().Message();
  std::map<std::string, DiffStatus> st;
  for (const TensorDiffEntry& e : r->tensors) st[e.name] = e.status;
  EXPECT_EQ(st["blk.0.ffn_up.weight"], DiffStatus::kShapeMismatch);
  EXPECT_EQ(st["blk.0.ffn_gate.weight"], DiffStatus::kOnlyInA);
  EXPECT_EQ(st["model.layers.0.self_attn.extra.weight"], DiffStatus::kOnlyInB);
  EXPECT_EQ(r->flagged, 3u);
}

TEST_F(CheckpointDiffTest, HostileCheckpointsAreClearErrors) {
  const gguf::GgufFile f = Imported();
  auto expect_error = [&](const std::string& what, const std::string& named) {
    SCOPED_TRACE(what);
    gguf::Result<CheckpointDiffReport> r = DiffCheckpoint(f, Ckpt(), {});
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().Message().find(named), std::string::npos) << r.error().Message();
    EXPECT_FALSE(CheckpointFingerprint(Ckpt(), true, 1).ok());
  };
  std::ofstream(dir_ / "ckpt" / "config.json") << R"({"architectures": ["LlamaForCausalLM"], "hidden_size": )";
  expect_error("malformed config.json", "config.json");
  WriteConfig({{"architectures", {"LlamaForCausalLM"}}, {"hidden_size", "wide"}});
  expect_error("a string where a number belongs", "config.json: hidden_size");
  WriteConfig(LlamaConfig());

  // Sharded: an index naming a missing shard, then one outside the folder.
  fs::remove(dir_ / "ckpt" / "model.safetensors");
  std::map<std::string, StIn> w = LlamaWeights(), a, b;
  for (auto& [n, t] : w) (a.size() < 6 ? a : b)[n] = t;
  WriteSt((dir_ / "ckpt" / "model-1.safetensors").string(), a);
  nlohmann::json index = {{"weight_map", nlohmann::json::object()}};
  for (auto& [n, t] : a) index["weight_map"][n] = "model-1.safetensors";
  for (auto& [n, t] : b) index["weight_map"][n] = "model-2.safetensors";
  std::ofstream(dir_ / "ckpt" / "model.safetensors.index.json") << index.dump();
  expect_error("missing shard", "model-2.safetensors");
  index["weight_map"][b.begin()->first] = "../model-2.safetensors";
  std::ofstream(dir_ / "ckpt" / "model.safetensors.index.json") << index.dump();
  expect_error("index naming a file outside the folder", "../model-2.safetensors");

  // A truncated shard.
  for (auto& [n, t] : b) index["weight_map"][n] = "model-2.safetensors";
  std::ofstream(dir_ / "ckpt" / "model.safetensors.index.json") << index.dump();
  WriteSt((dir_ / "ckpt" / "model-2.safetensors").string(), b);
  ASSERT_TRUE(DiffCheckpoint(f, Ckpt(), {}).ok());
  fs::resize_file(dir_ / "ckpt" / "model-2.safetensors", fs::file_size(dir_ / "ckpt" / "model-2.safetensors") - 3);
  expect_error("truncated shard", "model-2.safetensors");

  // No config.json at all.
  fs::remove(dir_ / "ckpt" / "config.json");
  fs::remove(dir_ / "ckpt" / "model.safetensors.index.json");
  fs::remove(dir_ / "ckpt" / "model-2.safetensors");
  expect_error("no config.json", "config.json");
}

TEST_F(CheckpointDiffTest, ChangedValueIsFlaggedWithItsName) {
  std::map<std::string, StIn> w = LlamaWeights();
  const gguf::GgufFile f = Imported();
  w["model.layers.0.self_attn.k_proj.weight"].values[5] *= 2.0f;
  WriteSt((dir_ / "ckpt" / "model.safetensors").string(), w);
  gguf::Result<CheckpointDiffReport> r = DiffCheckpoint(f, Ckpt(), {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->flagged, 1u);
  for (const TensorDiffEntry& e : r->tensors) {
    EXPECT_EQ(e.status == DiffStatus::kFlagged, e.name == "blk.0.attn_k.weight") << e.name;
  }
}

}  // namespace
}  // namespace ggufscope::inspect
