// ggufscope-synth: writes a synthetic model of a given architecture, shape
// and tensor type with ggufscope's own writer, for benchmarks (audit and hash
// throughput on multi-GB files; CUDA decode speed in the shapes of real
// models). Weights are random but valid: quantized blocks get random codes
// and sane scales, so every tool reads finite values of a realistic range.
//
//   ggufscope-synth -o qwen7b-q4km.gguf --arch qwen2 --hidden 3584 --layers 28
//       --ffn 18944 --heads 28 --kv-heads 4 --vocab 152064 --type Q4_K_M
//   ggufscope-synth -o gemma-like.gguf --like gemma-info.json
//
// --type Q4_K_M is llama.cpp's mix (llama-quant.cpp, non-MoE): Q4_K, except
// the output matrix (the token embedding when tied) in Q6_K and attn_v /
// ffn_down in Q6_K on the layers its use_more_bits rule picks.
// --like takes the `ggufscope info --json` of a real file and writes a file
// with the same metadata (tokenizer arrays replaced by placeholder tokens of
// the same count) and the same tensors, names, shapes and types, filled with
// random blocks: the real file's decode cost without the real file (the CUDA
// bench uses it for Gemma 3, which is too large to carry to the GPU machine).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "gguf/arch.h"
#include "gguf/block_scales.h"
#include "gguf/writer.h"
#include "inspect/corrupt.h"

namespace ggufscope::bench {
namespace {

using gguf::GgmlType;
using gguf::Value;
using gguf::ValueType;

// One buffer per (type, elements), shared by every tensor of that shape:
// a 7B model needs ~10 distinct buffers, not 300.
std::vector<uint8_t> MakeData(GgmlType type, uint64_t n, std::mt19937_64& rng, double std) {
  const auto& tr = gguf::Traits(type);
  const uint64_t bytes = *gguf::BytesFor(type, n);
  std::vector<uint8_t> out(bytes);
  std::normal_distribution<double> normal(0.0, std);
  if (type == GgmlType::kF32) {
    for (uint64_t i = 0; i < n; ++i) {
      const float v = static_cast<float>(normal(rng));
      std::memcpy(out.data() + 4 * i, &v, 4);
    }
    return out;
  }
  if (type == GgmlType::kF16 || type == GgmlType::kBF16) {
    for (uint64_t i = 0; i < n; ++i) {
      const uint16_t h = type == GgmlType::kF16 ? inspect::DoubleToHalf(normal(rng)) : inspect::DoubleToBf16(normal(rng));
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
    return out;
  }
  for (uint64_t i = 0; i + 8 <= bytes; i += 8) {
    const uint64_t r = rng();
    std::memcpy(out.data() + i, &r, 8);
  }
  const gguf::BlockScales sc = gguf::ScalesOf(type);
  std::uniform_real_distribution<double> scale(0.5 * std / 8, 1.5 * std / 8);
  for (uint64_t b = 0; b < bytes / tr.type_size; ++b) {
    uint8_t* blk = out.data() + b * tr.type_size;
    for (uint8_t k = 0; k < sc.count; ++k) {
      if (sc.kind == gguf::ScaleKind::kF16) {
        const uint16_t h = inspect::DoubleToHalf(scale(rng));
        std::memcpy(blk + sc.offsets[k], &h, 2);
      } else if (sc.kind == gguf::ScaleKind::kF32) {
        const float f = static_cast<float>(scale(rng));
        std::memcpy(blk + sc.offsets[k], &f, 4);
      } else if (sc.kind == gguf::ScaleKind::kE8M0) {
        blk[sc.offsets[k]] = 120;  // 2^-7
      } else if (sc.kind == gguf::ScaleKind::kUE4M3) {
        blk[sc.offsets[k]] = 0x20;  // 2^-3 (times 1/2)
      }
    }
  }
  return out;
}

// llama.cpp's use_more_bits: the layers Q4_K_M gives Q6_K attn_v / ffn_down.
bool UseMoreBits(uint64_t i, uint64_t n) {
  return i < n / 8 || i >= 7 * n / 8 || (static_cast<int64_t>(i) - static_cast<int64_t>(n / 8)) % 3 == 2;
}

// The placeholder tokenizer: n tokens "<tI>", all normal, no merges.
void AddTokenizer(gguf::Writer& w, uint64_t vocab) {
  std::vector<std::string> tokens(vocab);
  for (uint64_t i = 0; i < vocab; ++i) tokens[i] = fmt::format("<t{}>", i);
  (void)w.AddKv("tokenizer.ggml.model", Value::Str("llama"));
  (void)w.AddKv("tokenizer.ggml.tokens", Value::StrArray(std::move(tokens)));
  Value sc;
  sc.type = ValueType::kArray;
  sc.elem_type = ValueType::kFloat32;
  sc.raw.assign(vocab * 4, 0);
  (void)w.AddKv("tokenizer.ggml.scores", sc);
  Value tt;
  tt.type = ValueType::kArray;
  tt.elem_type = ValueType::kInt32;
  tt.raw.assign(vocab * 4, 0);
  for (uint64_t i = 0; i < vocab; ++i) tt.raw[4 * i] = 1;  // normal tokens
  (void)w.AddKv("tokenizer.ggml.token_type", tt);
  (void)w.AddKv("tokenizer.ggml.bos_token_id", Value::U(ValueType::kUint32, 1));
  (void)w.AddKv("tokenizer.ggml.eos_token_id", Value::U(ValueType::kUint32, 2));
}

std::optional<ValueType> ValueTypeFromName(std::string_view name) {
  for (uint32_t t = 0; t < gguf::kValueTypeCount; ++t) {
    if (gguf::ValueTypeName(static_cast<ValueType>(t)) == name) return static_cast<ValueType>(t);
  }
  return std::nullopt;
}

// A scalar metadata value from `info --json`'s {"type", "value"}.
std::optional<Value> ScalarFromJson(ValueType t, const nlohmann::json& v) {
  switch (t) {
    case ValueType::kString: return v.is_string() ? std::optional(Value::Str(v.get<std::string>())) : std::nullopt;
    case ValueType::kBool: return v.is_boolean() ? std::optional(Value::Bool(v.get<bool>())) : std::nullopt;
    case ValueType::kFloat32: return v.is_number() ? std::optional(Value::F32(v.get<float>())) : std::nullopt;
    case ValueType::kFloat64: return v.is_number() ? std::optional(Value::F64(v.get<double>())) : std::nullopt;
    case ValueType::kInt8:
    case ValueType::kInt16:
    case ValueType::kInt32:
    case ValueType::kInt64: return v.is_number_integer() ? std::optional(Value::I(t, v.get<int64_t>())) : std::nullopt;
    case ValueType::kUint8:
    case ValueType::kUint16:
    case ValueType::kUint32:
    case ValueType::kUint64:
      return v.is_number_unsigned() ? std::optional(Value::U(t, v.get<uint64_t>())) : std::nullopt;
    default: return std::nullopt;
  }
}

}  // namespace

// --like: the metadata and tensor table of `info --json` (see the header).
int WriteLike(const std::string& info_path, const std::string& out, uint64_t seed) {
  std::ifstream in(info_path);
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.contains("metadata") || !j.contains("tensors")) {
    fmt::print(stderr, "ggufscope-synth: {} is not the output of `ggufscope info --json`\n", info_path);
    return 65;
  }
  gguf::Writer w;
  uint64_t vocab = 0;
  for (const auto& kv : j["metadata"]) {
    const std::string key = kv.value("key", "");
    const std::optional<ValueType> t = ValueTypeFromName(kv.value("type", ""));
    if (key == "tokenizer.ggml.tokens") vocab = kv.value("length", uint64_t{0});
    if (key.rfind("tokenizer.", 0) == 0 || !t) continue;  // the tokenizer is replaced below
    if (*t == ValueType::kArray) {
      const std::optional<ValueType> et = ValueTypeFromName(kv.value("element_type", ""));
      if (!et || kv.value("truncated", true) || !kv["value"].is_array()) continue;
      std::vector<Value> items;
      for (const auto& e : kv["value"]) {
        if (std::optional<Value> v = ScalarFromJson(*et, e)) items.push_back(*v);
      }
      if (items.size() == kv["value"].size()) (void)w.AddKv(key, Value::Array(*et, items));
      continue;
    }
    if (std::optional<Value> v = ScalarFromJson(*t, kv["value"])) (void)w.AddKv(key, *v);
  }
  if (vocab == 0) {
    fmt::print(stderr, "ggufscope-synth: {} has no tokenizer.ggml.tokens length\n", info_path);
    return 65;
  }
  AddTokenizer(w, vocab);
  std::mt19937_64 rng(seed);
  std::map<std::pair<int, uint64_t>, std::vector<uint8_t>> buffers;
  for (const auto& tj : j["tensors"]) {
    const std::optional<GgmlType> t = gguf::TypeFromName(tj.value("type", ""));
    std::vector<int64_t> ne = tj.value("shape", std::vector<int64_t>{});
    uint64_t n = 1;
    for (int64_t d : ne) n *= static_cast<uint64_t>(d);
    if (!t || ne.empty() || !gguf::BytesFor(*t, n)) {
      fmt::print(stderr, "ggufscope-synth: tensor {}: bad type or shape\n", tj.value("name", "?"));
      return 65;
    }
    const bool norm = ne.size() == 1 && tj.value("name", "").find("norm") != std::string::npos;
    auto key = std::make_pair(static_cast<int>(*t) * 2 + (norm ? 1 : 0), n);
    auto it = buffers.find(key);
    if (it == buffers.end()) {
      std::vector<uint8_t> data = MakeData(*t, n, rng, ne.size() == 1 ? 0.1 : 0.02);
      if (norm && *t == GgmlType::kF32) {
        for (uint64_t i = 0; i < n; ++i) {
          const float v = 1.0f + 0.1f * static_cast<float>(static_cast<double>(rng() % 2001) / 1000.0 - 1.0);
          std::memcpy(data.data() + 4 * i, &v, 4);
        }
      }
      it = buffers.emplace(key, std::move(data)).first;
    }
    const gguf::Status s = w.AddTensor(tj.value("name", ""), *t, ne, it->second);
    if (!s.ok()) {
      fmt::print(stderr, "ggufscope-synth: {}\n", s.error().Message());
      return 65;
    }
  }
  const gguf::Status s = w.WriteFile(out);
  if (!s.ok()) {
    fmt::print(stderr, "ggufscope-synth: {}\n", s.error().Message());
    return 74;
  }
  fmt::print(stderr, "wrote {} (like {})\n", out, info_path);
  return 0;
}

int Main(int argc, char** argv) {
  CLI::App app{"Write a synthetic GGUF model with ggufscope's writer (benchmarks only)"};
  std::string out, arch = "qwen2", type_name = "Q4_K";
  uint64_t hidden = 896, layers = 24, ffn = 4864, heads = 14, kv_heads = 2, vocab = 151936, seed = 0;
  app.add_option("-o,--out", out, "Output file")->required();
  app.add_option("--arch", arch, "llama, qwen2, qwen3 or gemma3");
  app.add_option("--hidden", hidden);
  app.add_option("--layers", layers);
  app.add_option("--ffn", ffn);
  app.add_option("--heads", heads);
  app.add_option("--kv-heads", kv_heads);
  app.add_option("--vocab", vocab);
  app.add_option("--type", type_name, "Type of the 2-D weights (norms and biases stay F32), or Q4_K_M (llama.cpp's mix)");
  app.add_option("--seed", seed);
  std::string like;
  app.add_option("--like", like, "`ggufscope info --json` of a real file: copy its metadata and tensor table");
  CLI11_PARSE(app, argc, argv);
  if (!like.empty()) return WriteLike(like, out, seed);
  const bool q4_k_m = type_name == "Q4_K_M";
  const gguf::ArchDesc* desc = gguf::FindArch(arch);
  const std::optional<GgmlType> type = gguf::TypeFromName(q4_k_m ? "Q4_K" : type_name);
  if (desc == nullptr || !type || heads == 0 || hidden % heads != 0) {
    fmt::print(stderr, "ggufscope-synth: unknown --arch or --type, or hidden not a multiple of heads\n");
    return 64;
  }
  const uint64_t head_dim = hidden / heads;
  gguf::Writer w;
  auto u32 = [](uint64_t v) { return Value::U(ValueType::kUint32, v); };
  const std::string a = arch + ".";
  (void)w.AddKv("general.architecture", Value::Str(arch));
  (void)w.AddKv("general.name", Value::Str(fmt::format("ggufscope-synth {} {}x{} {}", arch, layers, hidden, type_name)));
  (void)w.AddKv(a + "block_count", u32(layers));
  (void)w.AddKv(a + "context_length", u32(4096));
  (void)w.AddKv(a + "embedding_length", u32(hidden));
  (void)w.AddKv(a + "feed_forward_length", u32(ffn));
  (void)w.AddKv(a + "attention.head_count", u32(heads));
  (void)w.AddKv(a + "attention.head_count_kv", u32(kv_heads));
  (void)w.AddKv(a + "rope.freq_base", Value::F32(1e6f));
  (void)w.AddKv(a + "attention.layer_norm_rms_epsilon", Value::F32(1e-6f));
  AddTokenizer(w, vocab);

  gguf::HParams hp;
  hp.arch = arch;
  hp.n_layers = layers;
  hp.n_embd = hidden;
  hp.n_ff = ffn;
  hp.n_head = heads;
  hp.n_head_kv = kv_heads;
  hp.head_dim_k = hp.head_dim_v = head_dim;
  hp.n_vocab = vocab;
  std::mt19937_64 rng(seed);
  std::map<std::pair<int, uint64_t>, std::vector<uint8_t>> buffers;
  auto data_for = [&](GgmlType t, uint64_t n, double std) -> std::span<const uint8_t> {
    auto key = std::make_pair(static_cast<int>(t) * 1000 + static_cast<int>(std * 100), n);
    auto it = buffers.find(key);
    if (it == buffers.end()) it = buffers.emplace(key, MakeData(t, n, rng, std)).first;
    return it->second;
  };
  for (uint64_t l = 0; l < layers; ++l) {
    for (const gguf::TensorSpec& spec : desc->tensors) {
      if (!spec.per_layer && l > 0) continue;
      if (spec.name == "output.weight") continue;  // tied, as Qwen2.5's small models
      std::string name(spec.name);
      if (spec.per_layer) name.replace(name.find("%d"), 2, std::to_string(l));
      const uint64_t d0 = *gguf::Resolve(spec.shape[0], hp), d1 = *gguf::Resolve(spec.shape[1], hp);
      const bool vec = spec.shape[1] == gguf::Dim::kOne;
      // Rows that don't divide into the type's blocks fall back as llama.cpp's
      // quantizer does: to Q8_0 (32-element blocks), else F16.
      GgmlType t = *type;
      if (q4_k_m && (name == "token_embd.weight" ||  // tied: quantized as the output matrix
                     ((spec.name.find("attn_v") != std::string_view::npos ||
                       spec.name.find("ffn_down") != std::string_view::npos) &&
                      UseMoreBits(l, layers)))) {
        t = GgmlType::kQ6_K;
      }
      if (vec) {
        t = GgmlType::kF32;
      } else if (d0 % gguf::Traits(t).block_size != 0) {
        t = d0 % 32 == 0 ? GgmlType::kQ8_0 : GgmlType::kF16;
      }
      std::span<const uint8_t> bytes = data_for(t, d0 * d1, vec ? 0.1 : 0.02);
      if (vec && name.find("norm") != std::string::npos) {
        // norms around 1
        static std::map<uint64_t, std::vector<uint8_t>> norms;
        auto& buf = norms[d0];
        if (buf.empty()) {
          buf.resize(d0 * 4);
          for (uint64_t i = 0; i < d0; ++i) {
            const float v = 1.0f + 0.1f * static_cast<float>(static_cast<double>(rng() % 2001) / 1000.0 - 1.0);
            std::memcpy(buf.data() + 4 * i, &v, 4);
          }
        }
        bytes = buf;
      }
      std::vector<int64_t> ne = {static_cast<int64_t>(d0)};
      if (!vec) ne.push_back(static_cast<int64_t>(d1));
      const gguf::Status s = w.AddTensor(name, t, ne, bytes);
      if (!s.ok()) {
        fmt::print(stderr, "ggufscope-synth: {}\n", s.error().Message());
        return 64;
      }
    }
  }
  const gguf::Status s = w.WriteFile(out);
  if (!s.ok()) {
    fmt::print(stderr, "ggufscope-synth: {}\n", s.error().Message());
    return 74;
  }
  fmt::print(stderr, "wrote {}\n", out);
  return 0;
}

}  // namespace ggufscope::bench

int main(int argc, char** argv) { return ggufscope::bench::Main(argc, argv); }
