#include "gguf/hf_import.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "gguf/arch.h"
#include "gguf/dequant.h"
#include "gguf/file.h"
#include "gguf/hf_names.h"
#include "gguf/mapping.h"
#include "inspect/corrupt.h"

namespace ggufscope::gguf {
namespace {

std::string Fill(std::string_view pattern, int layer) {
  std::string s(pattern);
  if (const size_t at = s.find("{L}"); at != std::string::npos) s.replace(at, 3, std::to_string(layer));
  return s;
}

// Every name of every family maps both ways, onto a tensor of that family's
// GGUF description, and every required GGUF tensor has a checkpoint source.
TEST(HfNames, TableAgreesWithTheArchitectureDescriptions) {
  ASSERT_EQ(HfArchs().size(), 4u);
  for (const HfArch& arch : HfArchs()) {
    SCOPED_TRACE(std::string(arch.hf_class));
    const ArchDesc* desc = FindArch(arch.gguf_arch);
    ASSERT_NE(desc, nullptr);
    EXPECT_EQ(FindHfArch(arch.hf_class, ""), &arch);
    EXPECT_EQ(FindHfArch("", arch.model_type), &arch);
    for (const HfTensorName& t : arch.tensors) {
      for (int layer : {0, 7, 123}) {
        const std::string hf = Fill(t.hf, layer);
        const HfNameMatch m = MapHfName(arch, hf);
        ASSERT_EQ(m.kind, HfNameKind::kMapped) << hf;
        EXPECT_EQ(m.name, Fill(t.gguf, layer));
        EXPECT_EQ(m.transform, t.transform);
        const HfNameMatch back = MapGgufName(arch, m.name);
        EXPECT_EQ(back.name, hf);
        std::string spec_name = m.name;
        if (m.layer >= 0) spec_name.replace(spec_name.find(std::to_string(layer)), std::to_string(layer).size(), "%d");
        EXPECT_TRUE(std::any_of(desc->tensors.begin(), desc->tensors.end(),
                                [&](const TensorSpec& s) { return s.name == spec_name; }))
            << m.name << " is not in gguf/arch.cc's " << arch.gguf_arch;
        if (m.layer < 0) break;
      }
    }
    for (const TensorSpec& s : desc->tensors) {
      if (!s.required) continue;
      std::string name(s.name);
      if (s.per_layer) name.replace(name.find("%d"), 2, "3");
      EXPECT_EQ(MapGgufName(arch, name).kind, HfNameKind::kMapped) << name;
    }
  }
}

TEST(HfNames, ConventionsPerFamily) {
  const HfArch& llama = *FindHfArch("LlamaForCausalLM", "");
  const HfArch& qwen2 = *FindHfArch("Qwen2ForCausalLM", "");
  const HfArch& gemma3 = *FindHfArch("", "gemma3_text");
  EXPECT_EQ(MapHfName(llama, "model.layers.2.self_attn.q_proj.weight").transform, HfTransform::kPermuteQ);
  EXPECT_EQ(MapHfName(llama, "model.layers.2.self_attn.k_proj.weight").transform, HfTransform::kPermuteK);
  EXPECT_EQ(MapHfName(llama, "model.layers.2.post_attention_layernorm.weight").name, "blk.2.ffn_norm.weight");
  EXPECT_EQ(MapHfName(qwen2, "model.layers.2.self_attn.q_proj.weight").transform, HfTransform::kNone);
  EXPECT_EQ(MapHfName(qwen2, "model.layers.0.self_attn.v_proj.bias").name, "blk.0.attn_v.bias");
  EXPECT_EQ(MapHfName(gemma3, "model.layers.4.post_attention_layernorm.weight").name,
            "blk.4.post_attention_norm.weight");
  EXPECT_EQ(MapHfName(gemma3, "model.layers.4.pre_feedforward_layernorm.weight").name, "blk.4.ffn_norm.weight");
  for (const char* norm : {"model.norm.weight", "model.layers.1.input_layernorm.weight",
                           "model.layers.1.self_attn.q_norm.weight", "model.layers.1.self_attn.k_norm.weight",
                           "model.layers.1.post_attention_layernorm.weight",
                           "model.layers.1.pre_feedforward_layernorm.weight",
                           "model.layers.1.post_feedforward_layernorm.weight"}) {
    EXPECT_EQ(MapHfName(gemma3, norm).transform, HfTransform::kAddOne) << norm;
  }
  EXPECT_EQ(MapHfName(gemma3, "model.layers.1.mlp.up_proj.weight").transform, HfTransform::kNone);
  EXPECT_EQ(MapHfName(llama, "model.layers.5.self_attn.rotary_emb.inv_freq").kind, HfNameKind::kIgnored);
  // Not names: leading zeros, missing layer, qwen2 biases in llama, strays.
  for (const char* bad : {"model.layers.01.mlp.up_proj.weight", "model.layers..mlp.up_proj.weight",
                          "model.layers.x.mlp.up_proj.weight", "model.layers.1.self_attn.q_proj.bias",
                          "model.embed_tokens.weight.extra", "", "lm_head"}) {
    EXPECT_EQ(MapHfName(llama, bad).kind, HfNameKind::kUnknown) << bad;
  }
  EXPECT_EQ(FindHfArch("MambaForCausalLM", "mamba"), nullptr);
}

TEST(HfNames, RopePermutationIsLlamaCppsAndInvertible) {
  // 2 heads of head_dim 4, 3 columns: row r holds 10 * r + c.
  const int64_t rows = 8, cols = 3;
  std::vector<float> v(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) v[r * cols + c] = static_cast<float>(10 * r + c);
  }
  std::vector<float> p = v;
  ASSERT_TRUE(ApplyHfTransform(HfTransform::kPermuteQ, p, rows, cols, 2, 1).ok());
  // llama.cpp: reshape(n_head, 2, hd/2, cols).swapaxes(1, 2): rows 0,2,1,3 then 4,6,5,7.
  const int64_t want[] = {0, 2, 1, 3, 4, 6, 5, 7};
  for (int64_t r = 0; r < rows; ++r) EXPECT_EQ(p[r * cols], static_cast<float>(10 * want[r])) << r;
  ASSERT_TRUE(UndoHfTransform(HfTransform::kPermuteQ, p, rows, cols, 2, 1).ok());
  EXPECT_EQ(p, v);
  // K uses n_head_kv: one group of 8 rows.
  std::vector<float> k = v;
  ASSERT_TRUE(ApplyHfTransform(HfTransform::kPermuteK, k, rows, cols, 2, 1).ok());
  const int64_t want_k[] = {0, 4, 1, 5, 2, 6, 3, 7};
  for (int64_t r = 0; r < rows; ++r) EXPECT_EQ(k[r * cols], static_cast<float>(10 * want_k[r])) << r;
  // Rows that are not whole heads are refused, not read past.
  std::vector<float> odd(6);
  EXPECT_FALSE(ApplyHfTransform(HfTransform::kPermuteQ, odd, 6, 1, 4, 4).ok());
  EXPECT_FALSE(ApplyHfTransform(HfTransform::kPermuteQ, odd, 6, 2, 1, 1).ok());  // 12 != 6 elements
  EXPECT_FALSE(ApplyHfTransform(HfTransform::kPermuteK, odd, 6, 1, 3, 0).ok());
}

TEST(HfNames, AddOneRoundsToF16OnlyForF16Sources) {
  std::vector<float> a = {HalfToFloat(0x1400)};  // 2^-10: 1 + 2^-10 is an f16 (1 ulp of 1.0)
  std::vector<float> b = {std::ldexp(1.0f, -12)};  // 1 + 2^-12 rounds to 1 in f16
  std::vector<float> c = b;
  ASSERT_TRUE(ApplyHfTransform(HfTransform::kAddOne, a, 1, 1, 1, 1, true).ok());
  ASSERT_TRUE(ApplyHfTransform(HfTransform::kAddOne, b, 1, 1, 1, 1, true).ok());
  ASSERT_TRUE(ApplyHfTransform(HfTransform::kAddOne, c, 1, 1, 1, 1, false).ok());
  EXPECT_EQ(a[0], 1.0f + std::ldexp(1.0f, -10));
  EXPECT_EQ(b[0], 1.0f);
  EXPECT_EQ(c[0], 1.0f + std::ldexp(1.0f, -12));
}

// FloatToHalf rounds as inspect's DoubleToHalf (itself tested against
// numpy's rounding in corrupt_test) for every half and random floats.
TEST(HfNames, FloatToHalfRoundsToNearestEven) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = HalfToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(f))));
      continue;
    }
    ASSERT_EQ(FloatToHalf(f), h) << h;
    // Halfway to the next half up (in magnitude): ties to even.
    const uint16_t next = static_cast<uint16_t>(h + 1);
    if ((h & 0x7fff) < 0x7c00) {
      const double mid = (static_cast<double>(f) + HalfToFloat(next)) / 2;
      if (static_cast<double>(static_cast<float>(mid)) == mid) {
        EXPECT_EQ(FloatToHalf(static_cast<float>(mid)), inspect::DoubleToHalf(mid)) << h;
      }
    }
  }
  std::mt19937 rng(7);
  for (int i = 0; i < 200000; ++i) {
    uint32_t bits = static_cast<uint32_t>(rng());
    float f;
    std::memcpy(&f, &bits, 4);
    if (std::isnan(f)) continue;
    ASSERT_EQ(FloatToHalf(f), inspect::DoubleToHalf(f)) << f;
  }
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7bff);
  EXPECT_EQ(FloatToHalf(65519.99f), 0x7bff);
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7c00);
  EXPECT_EQ(FloatToHalf(-1e30f), 0xfc00);
}

// ---------------------------------------------------------------------------
// config.json

const char* kQwen2 = R"({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 64,
  "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
  "vocab_size": 300, "max_position_embeddings": 512, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
  "hidden_act": "silu", "rope_scaling": null, "tie_word_embeddings": false, "bos_token_id": 1,
  "eos_token_id": [2, 3], "use_sliding_window": false})";

std::string WithKey(const std::string& json, const std::string& kv) {
  return json.substr(0, json.size() - 1) + ", " + kv + "}";
}

TEST(HfConfig, ReadsTheHyperParameters) {
  Result<HfConfig> c = ParseHfConfig(kQwen2);
  ASSERT_TRUE(c.ok()) << c.error().Message();
  EXPECT_EQ(c->arch->gguf_arch, "qwen2");
  EXPECT_EQ(c->n_layers, 2u);
  EXPECT_EQ(c->n_embd, 64u);
  EXPECT_EQ(c->n_ff, 96u);
  EXPECT_EQ(c->n_head, 4u);
  EXPECT_EQ(c->n_head_kv, 2u);
  EXPECT_EQ(c->head_dim, 16u);
  EXPECT_FALSE(c->head_dim_written);
  EXPECT_EQ(c->n_vocab, 300u);
  EXPECT_EQ(c->n_ctx, 512u);
  EXPECT_EQ(c->rope_theta, 1e6);
  EXPECT_EQ(c->rms_eps, 1e-6);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_EQ(c->bos_id, 1u);
  EXPECT_EQ(c->eos_id, 2u);  // the first of a list
}

TEST(HfConfig, DefaultsOfTheTransformersClasses) {
  Result<HfConfig> q3 = ParseHfConfig(R"({"model_type": "qwen3", "hidden_size": 64, "intermediate_size": 96,
    "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 300})");
  ASSERT_TRUE(q3.ok()) << q3.error().Message();
  EXPECT_EQ(q3->head_dim, 128u);  // Qwen3Config's default, not hidden / heads
  EXPECT_TRUE(q3->head_dim_written);
  EXPECT_EQ(q3->n_head_kv, 4u);
  EXPECT_EQ(q3->n_ctx, 32768u);
  Result<HfConfig> g = ParseHfConfig(R"({"architectures": ["Gemma3ForCausalLM"], "hidden_size": 64,
    "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 300,
    "rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 500000.0},
                        "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}})");
  ASSERT_TRUE(g.ok()) << g.error().Message();
  EXPECT_EQ(g->head_dim, 256u);
  EXPECT_EQ(g->n_head_kv, 4u);
  EXPECT_TRUE(g->tie_word_embeddings);
  EXPECT_EQ(g->rope_theta, 500000.0);  // transformers 5's per-attention-type rope_parameters
  EXPECT_EQ(g->rope_theta_swa, 10000.0);
  EXPECT_EQ(g->sliding_window, 4096u);
  Result<HfConfig> l = ParseHfConfig(R"({"model_type": "llama", "hidden_size": 64, "intermediate_size": 96,
    "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 300,
    "rope_parameters": {"rope_type": "default", "rope_theta": 123.0}})");
  ASSERT_TRUE(l.ok()) << l.error().Message();
  EXPECT_EQ(l->rope_theta, 123.0);
  EXPECT_EQ(l->head_dim, 16u);
}

TEST(HfConfig, RefusesWhatTheGgufCannotExpress) {
  struct Case {
    std::string json;
    ErrorCode code;
    const char* in_message;
  };
  const std::string q = kQwen2;
  const std::string q_no_scaling = std::string(kQwen2).replace(std::string(kQwen2).find("\"rope_scaling\": null, "), 22, "");
  const Case cases[] = {
      {"", ErrorCode::kBadJson, "config.json"},
      {"[1]", ErrorCode::kBadJson, "config.json"},
      {"{\"model_type\": \"mamba\"}", ErrorCode::kUnsupported, "mamba"},
      {WithKey(q_no_scaling, R"("rope_scaling": {"rope_type": "llama3", "factor": 8.0})"), ErrorCode::kUnsupported,
       "llama3"},
      {WithKey(q_no_scaling, R"("rope_scaling": {"type": "linear", "factor": 2.0})"), ErrorCode::kUnsupported, "linear"},
      {WithKey(q, R"("partial_rotary_factor": 0.5)"), ErrorCode::kUnsupported, "partial_rotary_factor"},
      {std::string(kQwen2).replace(std::string(kQwen2).find("\"silu\""), 6, "\"gelu\""), ErrorCode::kUnsupported,
       "hidden_act"},
      {std::string(kQwen2).replace(std::string(kQwen2).find("\"hidden_size\": 64"), 17, "\"hidden_size\": \"64\""),
       ErrorCode::kBadJson, "hidden_size"},
      {std::string(kQwen2).replace(std::string(kQwen2).find("\"hidden_size\": 64,"), 18, ""), ErrorCode::kBadJson,
       "hidden_size"},
      {std::string(kQwen2).replace(std::string(kQwen2).find("\"num_key_value_heads\": 2"), 24,
                                   "\"num_key_value_heads\": 3"),
       ErrorCode::kUnsupported, "3 KV heads"},
      {std::string(kQwen2).replace(std::string(kQwen2).find("\"vocab_size\": 300"), 17, "\"vocab_size\": 0"),
       ErrorCode::kUnsupported, "vocab_size"},
      {std::string(kQwen2).replace(std::string(kQwen2).find("\"num_hidden_layers\": 2"), 22,
                                   "\"num_hidden_layers\": 99999999999"),
       ErrorCode::kUnsupported, "num_hidden_layers"},
      {std::string(kQwen2).replace(std::string(kQwen2).find("\"rms_norm_eps\": 1e-06"), 21, "\"rms_norm_eps\": -1"),
       ErrorCode::kUnsupported, "rms_norm_eps"},
      {R"({"model_type": "llama", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
          "num_attention_heads": 4, "vocab_size": 300, "attention_bias": true})",
       ErrorCode::kUnsupported, "attention_bias"},
      {R"({"model_type": "gemma3_text", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
          "num_attention_heads": 4, "vocab_size": 300, "sliding_window_pattern": 4})",
       ErrorCode::kUnsupported, "sliding_window_pattern"},
      {R"({"model_type": "gemma3_text", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
          "num_attention_heads": 4, "vocab_size": 300, "layer_types": ["full_attention", "sliding_attention"]})",
       ErrorCode::kUnsupported, "layer_types[0]"},
      {R"({"model_type": "gemma3_text", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
          "num_attention_heads": 4, "vocab_size": 300, "attn_logit_softcapping": 50.0})",
       ErrorCode::kUnsupported, "attn_logit_softcapping"},
  };
  for (const Case& c : cases) {
    Result<HfConfig> r = ParseHfConfig(c.json);
    ASSERT_FALSE(r.ok()) << c.json;
    EXPECT_EQ(r.error().code, c.code) << r.error().Message();
    EXPECT_NE(r.error().Message().find(c.in_message), std::string::npos) << r.error().Message();
  }
}

// Any byte of a config changed: a value or an error, never a crash or throw.
TEST(HfConfig, CorruptedConfigsNeverCrash) {
  std::mt19937 rng(3);
  const std::string base = kQwen2;
  for (int i = 0; i < 3000; ++i) {
    std::string s = base;
    for (int k = 0; k < 3; ++k) s[rng() % s.size()] = static_cast<char>(rng());
    (void)ParseHfConfig(s);
  }
}

// ---------------------------------------------------------------------------
// a whole import, in a temporary folder

class HfImportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ggufscope_hf_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A llama of 1 layer, hidden 8, 2 heads of 4, 1 KV head, ff 4, vocab 260, in BF16.
  void WriteLlama(bool with_lm_head, const std::string& extra_tensor = "") {
    struct T {
      std::string name;
      std::vector<int64_t> shape;
    };
    std::vector<T> ts = {{"model.embed_tokens.weight", {260, 8}}, {"model.norm.weight", {8}},
                         {"model.layers.0.input_layernorm.weight", {8}},
                         {"model.layers.0.post_attention_layernorm.weight", {8}},
                         {"model.layers.0.self_attn.q_proj.weight", {8, 8}},
                         {"model.layers.0.self_attn.k_proj.weight", {4, 8}},
                         {"model.layers.0.self_attn.v_proj.weight", {4, 8}},
                         {"model.layers.0.self_attn.o_proj.weight", {8, 8}},
                         {"model.layers.0.mlp.gate_proj.weight", {4, 8}}, {"model.layers.0.mlp.up_proj.weight", {4, 8}},
                         {"model.layers.0.mlp.down_proj.weight", {8, 4}},
                         {"model.layers.0.self_attn.rotary_emb.inv_freq", {2}}};
    if (with_lm_head) ts.push_back({"lm_head.weight", {260, 8}});
    if (!extra_tensor.empty()) ts.push_back({extra_tensor, {2}});
    std::string header = "{";
    std::vector<uint8_t> data;
    for (const T& t : ts) {
      int64_t n = 1;
      for (int64_t d : t.shape) n *= d;
      header += (header.size() > 1 ? ", " : "") + std::string("\"") + t.name + "\": {\"dtype\": \"BF16\", \"shape\": [";
      for (size_t i = 0; i < t.shape.size(); ++i) header += (i ? ", " : "") + std::to_string(t.shape[i]);
      header += "], \"data_offsets\": [" + std::to_string(data.size()) + ", " + std::to_string(data.size() + 2 * n) + "]}";
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t bf16 = static_cast<uint16_t>(0x3f80 + (i % 64));  // 1 + i/128, exact in BF16
        data.push_back(static_cast<uint8_t>(bf16));
        data.push_back(static_cast<uint8_t>(bf16 >> 8));
      }
    }
    header += "}";
    std::ofstream f(dir_ / "model.safetensors", std::ios::binary);
    const uint64_t n = header.size();
    f.write(reinterpret_cast<const char*>(&n), 8);
    f << header;
    f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
    std::ofstream(dir_ / "config.json") << R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
      "hidden_size": 8, "intermediate_size": 4, "num_hidden_layers": 1, "num_attention_heads": 2,
      "num_key_value_heads": 1, "vocab_size": 260, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
      "hidden_act": "silu", "tie_word_embeddings": false, "eos_token_id": 2})";
  }
  std::filesystem::path dir_;
};

TEST_F(HfImportTest, LlamaBf16ToF16) {
  WriteLlama(true);
  HfImportOptions opt;
  opt.matrix_type = GgmlType::kF16;
  Result<HfImport> imp = ImportHf(dir_.string(), opt);
  ASSERT_TRUE(imp.ok()) << imp.error().Message();
  EXPECT_EQ(imp->report.n_tensors, 12u);
  EXPECT_EQ(imp->report.n_ignored, 1u);  // rotary inv_freq
  EXPECT_FALSE(imp->report.tied_output);
  Result<std::vector<uint8_t>> bytes = imp->writer.Serialize();
  ASSERT_TRUE(bytes.ok());
  Result<GgufFile> f = GgufFile::Parse(OwnBytes(std::move(*bytes)));
  ASSERT_TRUE(f.ok()) << f.error().Message();
  EXPECT_EQ(f->GetString("general.architecture"), "llama");
  EXPECT_EQ(f->GetUint("llama.attention.head_count_kv"), 1u);
  EXPECT_EQ(f->GetUint("llama.rope.dimension_count"), 4u);
  EXPECT_EQ(f->GetUint("llama.vocab_size"), 260u);
  EXPECT_EQ(f->GetUint("general.file_type"), 1u);
  EXPECT_EQ(f->GetString("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(f->GetUint("tokenizer.ggml.eos_token_id"), 2u);
  EXPECT_EQ(f->tensors().front().name, "token_embd.weight");
  EXPECT_EQ(f->tensors().back().name, "output.weight");
  const TensorInfo* q = f->FindTensor("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->type, GgmlType::kF16);
  EXPECT_EQ(q->ne[0], 8);
  EXPECT_EQ(q->ne[1], 8);
  EXPECT_EQ(f->FindTensor("blk.0.attn_norm.weight")->type, GgmlType::kF32);
  // Q's rows are permuted per head (2 heads of 4): GGUF row 1 is HF row 2.
  std::vector<float> v(64);
  ASSERT_TRUE(Dequantize(q->type, f->TensorData(*q), 64, v).ok());
  EXPECT_EQ(v[1 * 8], 1.0f + (2 * 8 % 64) / 128.0f);
  EXPECT_EQ(v[2 * 8], 1.0f + (1 * 8 % 64) / 128.0f);
  // The placeholder vocabulary: 256 byte tokens, two spaces, then [PAD257].
  const KeyValue* tokens = f->FindKey("tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  ASSERT_EQ(tokens->value.strings.size(), 260u);
  EXPECT_EQ(tokens->value.strings[65], "A");
  EXPECT_EQ(tokens->value.strings[10], "\xc4\x8a");  // Ċ: the newline byte
  EXPECT_EQ(tokens->value.strings[256], "\xc4\xa0\xc4\xa0");  // ĠĠ
  EXPECT_EQ(tokens->value.strings[257], "[PAD257]");
  const KeyValue* merges = f->FindKey("tokenizer.ggml.merges");
  ASSERT_NE(merges, nullptr);
  EXPECT_EQ(merges->value.strings, std::vector<std::string>{"\xc4\xa0 \xc4\xa0"});
}

TEST_F(HfImportTest, TiedAndRefusals) {
  WriteLlama(false);
  Result<HfImport> tied = ImportHf(dir_.string(), {});
  ASSERT_TRUE(tied.ok()) << tied.error().Message();
  EXPECT_TRUE(tied->report.tied_output);
  EXPECT_FALSE(tied->report.notes.empty());  // no lm_head although tie_word_embeddings is false

  WriteLlama(true, "model.layers.0.mystery");
  Result<HfImport> unknown = ImportHf(dir_.string(), {});
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().Message().find("model.layers.0.mystery"), std::string::npos);

  WriteLlama(true, "model.layers.3.input_layernorm.weight");
  Result<HfImport> layer = ImportHf(dir_.string(), {});
  ASSERT_FALSE(layer.ok());
  EXPECT_EQ(layer.error().code, ErrorCode::kBadDims);  // layer 3 of 1, and a wrong shape anyway

  std::filesystem::remove(dir_ / "config.json");
  WriteLlama(true);
  std::filesystem::remove(dir_ / "config.json");
  Result<HfImport> no_config = ImportHf(dir_.string(), {});
  ASSERT_FALSE(no_config.ok());
  EXPECT_EQ(no_config.error().code, ErrorCode::kIo);

  HfImportOptions q4;
  q4.matrix_type = GgmlType::kQ4_0;
  EXPECT_EQ(ImportHf(dir_.string(), q4).error().code, ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace ggufscope::gguf
