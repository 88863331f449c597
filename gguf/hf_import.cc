#include "gguf/hf_import.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <tuple>

#include "gguf/arch.h"
#include "gguf/hf_tokenizer.h"
#include "gguf/safetensors.h"
#include "gguf/writer.h"

namespace ggufscope::gguf {
namespace {

using Json = nlohmann::json;

// The bounds the reference loader enforces: every real model sits far inside.
constexpr uint64_t kMaxDim = uint64_t{1} << 20, kMaxLayers = 4096, kMaxVocab = uint64_t{1} << 24;

// Typed reads of config.json that never throw: absent and null read as
// nullopt, a value of the wrong type is an error (the first one is kept).
class ConfigReader {
 public:
  explicit ConfigReader(const Json& j) : j_(j) {}

  std::optional<uint64_t> Uint(const char* key) { return Uint(j_, key, key); }
  std::optional<uint64_t> Uint(const Json& o, const char* key, const std::string& field) {
    const Json* v = Get(o, key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_number_unsigned()) return Fail<uint64_t>(field, "a non-negative integer", *v);
    return v->get<uint64_t>();
  }
  std::optional<double> Number(const char* key) { return Number(j_, key, key); }
  std::optional<double> Number(const Json& o, const char* key, const std::string& field) {
    const Json* v = Get(o, key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_number()) return Fail<double>(field, "a number", *v);
    return v->get<double>();
  }
  std::optional<std::string> Str(const Json& o, const char* key, const std::string& field) {
    const Json* v = Get(o, key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_string()) return Fail<std::string>(field, "a string", *v);
    return v->get<std::string>();
  }
  std::optional<bool> Bool(const char* key) {
    const Json* v = Get(j_, key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_boolean()) return Fail<bool>(key, "true or false", *v);
    return v->get<bool>();
  }
  // A token id: an integer, or a list whose first element is one.
  std::optional<uint64_t> TokenId(const char* key) {
    const Json* v = Get(j_, key);
    if (v != nullptr && v->is_array()) return v->empty() ? std::nullopt : Element(*v, 0, key);
    return Uint(key);
  }
  const Json* Get(const Json& o, const char* key) const {
    if (!o.is_object() || !o.contains(key) || o[key].is_null()) return nullptr;
    return &o[key];
  }
  std::optional<Error>& error() { return error_; }

 private:
  std::optional<uint64_t> Element(const Json& arr, size_t i, const std::string& field) {
    if (!arr[i].is_number_unsigned()) return Fail<uint64_t>(field, "a non-negative integer", arr[i]);
    return arr[i].get<uint64_t>();
  }
  template <typename V>
  std::optional<V> Fail(const std::string& field, const char* expected, const Json& v) {
    if (!error_) {
      error_ = Error{ErrorCode::kBadJson, "config.json: " + field, Error::kNoOffset, expected,
                     v.dump(-1, ' ', false, Json::error_handler_t::replace).substr(0, 60)};
    }
    return std::nullopt;
  }
  const Json& j_;
  std::optional<Error> error_;
};

Error Unsupported(const std::string& field, std::string expected, std::string actual) {
  return Error{ErrorCode::kUnsupported, "config.json: " + field, Error::kNoOffset, std::move(expected), std::move(actual)};
}

// The rope settings: a rope_parameters (transformers 5) or rope_scaling
// object, per attention type for Gemma 3, else top-level keys.
Status ReadRope(ConfigReader& r, const Json& j, const HfArch& arch, HfConfig& c) {
  const Json* params = r.Get(j, "rope_parameters");
  if (params == nullptr) params = r.Get(j, "rope_scaling");
  const Json empty = Json::object();
  const Json& p = params != nullptr && params->is_object() ? *params : empty;
  const Json* full = r.Get(p, "full_attention");
  const Json* local = r.Get(p, "sliding_attention");
  const Json& global = full != nullptr ? *full : p;
  for (const auto& [o, field] : {std::pair{&global, std::string("rope_parameters")},
                                 std::pair{local, std::string("rope_parameters.sliding_attention")}}) {
    if (o == nullptr) continue;
    std::optional<std::string> type = r.Str(*o, "rope_type", field + ".rope_type");
    if (!type) type = r.Str(*o, "type", field + ".type");
    if (type && *type != "default") {
      return Unsupported(field + ".rope_type", "default (no rope scaling)", *type);
    }
    if (const std::optional<double> f = r.Number(*o, "partial_rotary_factor", field); f && *f != 1.0) {
      return Unsupported(field + ".partial_rotary_factor", "1", fmt::format("{}", *f));
    }
  }
  if (const std::optional<double> f = r.Number("partial_rotary_factor"); f && *f != 1.0) {
    return Unsupported("partial_rotary_factor", "1", fmt::format("{}", *f));
  }
  c.rope_theta = r.Number(global, "rope_theta", "rope_parameters.rope_theta")
                     .value_or(r.Number("rope_theta").value_or(arch.default_rope_theta));
  if (arch.gemma3_attention) {
    std::optional<double> swa;
    if (local != nullptr) swa = r.Number(*local, "rope_theta", "rope_parameters.sliding_attention.rope_theta");
    c.rope_theta_swa = swa.value_or(r.Number("rope_local_base_freq").value_or(10000.0));
  }
  return {};
}

Status ReadGemma3(ConfigReader& r, const Json& j, HfConfig& c) {
  c.sliding_window = r.Uint("sliding_window");
  if (!r.Get(j, "sliding_window")) c.sliding_window = 4096;  // Gemma3TextConfig's default
  // llama.cpp's gemma3 has no key for the layer pattern: five sliding-window
  // layers then a global one, always.
  if (const std::optional<uint64_t> pat = r.Uint("sliding_window_pattern"); pat && *pat != 6) {
    return Unsupported("sliding_window_pattern", "6 (the only pattern a gemma3 GGUF can express)", std::to_string(*pat));
  }
  if (const Json* types = r.Get(j, "layer_types")) {
    if (!types->is_array() || types->size() != c.n_layers) {
      return Unsupported("layer_types", fmt::format("{} entries", c.n_layers), "another shape");
    }
    for (size_t l = 0; l < types->size(); ++l) {
      const std::string want = (l + 1) % 6 == 0 ? "full_attention" : "sliding_attention";
      if (!(*types)[l].is_string() || (*types)[l].get<std::string>() != want) {
        return Unsupported(fmt::format("layer_types[{}]", l), want + " (every 6th layer global)",
                           (*types)[l].dump(-1, ' ', false, Json::error_handler_t::replace).substr(0, 40));
      }
    }
  }
  if (r.Get(j, "attn_logit_softcapping") != nullptr) {
    return Unsupported("attn_logit_softcapping", "null (removed in Gemma 3)", "a value");
  }
  c.final_logit_softcap = r.Number("final_logit_softcapping");
  if (c.final_logit_softcap) c.notes.push_back("final_logit_softcapping is written; the CPU reference does not apply it");
  // Gemma3TextConfig's default is 256.
  if (const double q = r.Number("query_pre_attn_scalar").value_or(256.0); q != static_cast<double>(c.head_dim)) {
    c.notes.push_back(fmt::format(
        "query_pre_attn_scalar {} differs from head_dim {}: GGUF has no key for it and llama.cpp scales queries "
        "by 1/sqrt(head_dim) (n_embd/n_head for the 27B)", q, c.head_dim));
  }
  if (c.rope_theta_swa && *c.rope_theta_swa != 10000.0) {
    c.notes.push_back("rope_local_base_freq is not 10000: the CPU reference assumes 10000 for local layers");
  }
  return {};
}

std::string ShapeText(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

std::string SpecName(const TensorSpec& spec, int layer) {
  std::string s(spec.name);
  if (spec.per_layer) s.replace(s.find("%d"), 2, std::to_string(layer));
  return s;
}

}  // namespace

Result<HfConfig> ParseHfConfig(std::string_view text) {
  const Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Error{ErrorCode::kBadJson, "config.json", Error::kNoOffset, "a JSON object", j.is_discarded() ? "invalid JSON" : "another value"};
  }
  ConfigReader r(j);
  HfConfig c;
  std::string hf_class;
  if (const Json* a = r.Get(j, "architectures"); a != nullptr && a->is_array() && !a->empty() && (*a)[0].is_string()) {
    hf_class = (*a)[0].get<std::string>();
  }
  const std::string model_type = r.Str(j, "model_type", "model_type").value_or("");
  c.arch = FindHfArch(hf_class, model_type);
  if (c.arch == nullptr) {
    return Unsupported("architectures", "LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM or Gemma3ForCausalLM",
                       hf_class.empty() ? "model_type " + (model_type.empty() ? std::string("absent") : model_type)
                                        : hf_class);
  }
  const HfArch& arch = *c.arch;

  const std::optional<uint64_t> n_layers = r.Uint("num_hidden_layers"), n_embd = r.Uint("hidden_size"),
                                n_ff = r.Uint("intermediate_size"), n_head = r.Uint("num_attention_heads"),
                                n_vocab = r.Uint("vocab_size");
  const std::optional<uint64_t> n_head_kv = r.Uint("num_key_value_heads"), head_dim = r.Uint("head_dim"),
                                n_ctx = r.Uint("max_position_embeddings");
  const std::optional<double> eps = r.Number("rms_norm_eps");
  const std::optional<bool> tie = r.Bool("tie_word_embeddings");
  c.bos_id = r.TokenId("bos_token_id");
  c.eos_id = r.TokenId("eos_token_id");
  c.pad_id = r.TokenId("pad_token_id");
  if (r.error()) return *r.error();
  for (const auto& [v, key] : {std::pair{n_layers, "num_hidden_layers"}, std::pair{n_embd, "hidden_size"},
                               std::pair{n_ff, "intermediate_size"}, std::pair{n_head, "num_attention_heads"},
                               std::pair{n_vocab, "vocab_size"}}) {
    if (!v) return Error{ErrorCode::kBadJson, std::string("config.json: ") + key, Error::kNoOffset, "a non-negative integer", "absent"};
  }
  c.n_layers = *n_layers;
  c.n_embd = *n_embd;
  c.n_ff = *n_ff;
  c.n_head = *n_head;
  c.n_vocab = *n_vocab;
  c.n_head_kv = n_head_kv.value_or(arch.default_n_head_kv.value_or(c.n_head));
  c.head_dim_written = head_dim.has_value() || arch.default_head_dim.has_value();
  c.head_dim = head_dim.value_or(arch.default_head_dim.value_or(c.n_head > 0 ? c.n_embd / c.n_head : 0));
  c.n_ctx = n_ctx.value_or(arch.default_context);
  c.rms_eps = eps.value_or(arch.default_rms_eps);
  c.tie_word_embeddings = tie.value_or(arch.default_tie);
  for (const auto& [v, limit, key] :
       {std::tuple{c.n_layers, kMaxLayers, "num_hidden_layers"}, std::tuple{c.n_embd, kMaxDim, "hidden_size"},
        std::tuple{c.n_ff, kMaxDim, "intermediate_size"}, std::tuple{c.n_head, kMaxDim, "num_attention_heads"},
        std::tuple{c.n_head_kv, kMaxDim, "num_key_value_heads"}, std::tuple{c.head_dim, kMaxDim, "head_dim"},
        std::tuple{c.n_vocab, kMaxVocab, "vocab_size"}, std::tuple{c.n_ctx, uint64_t{UINT32_MAX}, "max_position_embeddings"}}) {
    if (v == 0 || v > limit) return Unsupported(key, fmt::format("1..{}", limit), std::to_string(v));
  }
  if (c.n_head % c.n_head_kv != 0 || c.head_dim % 2 != 0 || c.n_head * c.head_dim > kMaxDim) {
    return Unsupported("num_attention_heads", "a multiple of num_key_value_heads, an even head_dim, heads x head_dim <= 2^20",
                       fmt::format("{} heads, {} KV heads, head_dim {}", c.n_head, c.n_head_kv, c.head_dim));
  }
  if (!(c.rms_eps > 0.0 && c.rms_eps < 1.0)) return Unsupported("rms_norm_eps", "a number in (0, 1)", fmt::format("{}", c.rms_eps));

  // Settings the GGUF of this architecture cannot express: refused, not dropped.
  std::optional<std::string> act = r.Str(j, std::string(arch.act_key).c_str(), std::string(arch.act_key));
  if (!act && arch.gemma3_attention) act = r.Str(j, "hidden_act", "hidden_act");
  if (act && *act != arch.act) return Unsupported(std::string(arch.act_key), std::string(arch.act), *act);
  for (const char* key : {"attention_bias", "mlp_bias"}) {
    if (arch.gguf_arch != "qwen2" && r.Bool(key).value_or(false)) {
      return Unsupported(key, "false (no such biases in a " + std::string(arch.gguf_arch) + " GGUF)", "true");
    }
  }
  if (r.Bool("use_sliding_window").value_or(false)) {
    c.notes.push_back("use_sliding_window is true; llama.cpp's qwen2 ignores it, and so does this import");
  }
  if (Status s = ReadRope(r, j, arch, c); !s.ok()) return s.error();
  if (arch.gemma3_attention) {
    if (Status s = ReadGemma3(r, j, c); !s.ok()) return s.error();
  }
  if (r.error()) return *r.error();
  if (!(c.rope_theta > 0.0)) return Unsupported("rope_theta", "a positive number", fmt::format("{}", c.rope_theta));
  return c;
}

Result<HfImport> ImportHf(const std::string& checkpoint, const HfImportOptions& opt) {
  if (opt.matrix_type != GgmlType::kF32 && opt.matrix_type != GgmlType::kF16) {
    return Error{ErrorCode::kInvalidArgument, "--type", Error::kNoOffset, "f32 or f16", std::string(TypeName(opt.matrix_type))};
  }
  Result<Checkpoint> ck = Checkpoint::Open(checkpoint);
  if (!ck.ok()) return ck.error();
  if (ck->config_json().empty()) {
    return Error{ErrorCode::kIo, ck->dir() + "/config.json", Error::kNoOffset, "the model's config.json beside the weights", "none"};
  }
  Result<HfConfig> cfg_r = ParseHfConfig(ck->config_json());
  if (!cfg_r.ok()) return cfg_r.error();
  const HfConfig& cfg = *cfg_r;
  const HfArch& arch = *cfg.arch;
  const ArchDesc* desc = FindArch(arch.gguf_arch);
  if (desc == nullptr) {
    return Error{ErrorCode::kUnsupported, "general.architecture", Error::kNoOffset, "an architecture of gguf/arch.cc", std::string(arch.gguf_arch)};
  }
  HParams hp;
  hp.arch = arch.gguf_arch;
  hp.n_layers = cfg.n_layers;
  hp.n_embd = cfg.n_embd;
  hp.n_ff = cfg.n_ff;
  hp.n_head = cfg.n_head;
  hp.n_head_kv = cfg.n_head_kv;
  hp.head_dim_k = hp.head_dim_v = cfg.head_dim;
  hp.n_vocab = cfg.n_vocab;

  HfImport out{std::move(*ck), {}, Writer(), {}};
  HfImportReport& rep = out.report;
  rep.hf_class = arch.hf_class;
  rep.gguf_arch = arch.gguf_arch;
  rep.notes = cfg.notes;

  // Plan: every checkpoint tensor mapped, shape-checked and placed in the
  // GGUF order (token_embd, the layers in table order, then the rest).
  struct Planned {
    std::tuple<int, int, size_t> order;
    std::string name;
    const StTensor* src;
    HfTransform transform;
    std::vector<int64_t> ne;
    GgmlType type;
  };
  std::vector<Planned> plan;
  bool has_output = false;
  for (const StTensor* t : out.checkpoint.Tensors()) {
    const HfNameMatch m = MapHfName(arch, t->name);
    if (m.kind == HfNameKind::kIgnored) {
      ++rep.n_ignored;
      continue;
    }
    if (m.kind == HfNameKind::kUnknown) {
      return Error{ErrorCode::kUnsupported, "tensor '" + t->name + "'", t->offset,
                   fmt::format("a tensor of {} (gguf/hf_names.cc)", arch.hf_class), "a name the table does not know"};
    }
    if (m.layer >= 0 && static_cast<uint64_t>(m.layer) >= cfg.n_layers) {
      return Error{ErrorCode::kBadDims, "tensor '" + t->name + "'", t->offset,
                   fmt::format("a layer below num_hidden_layers {}", cfg.n_layers), std::to_string(m.layer)};
    }
    if (m.name == "output.weight" && cfg.tie_word_embeddings) {
      ++rep.n_ignored;
      rep.notes.push_back("lm_head.weight dropped: tie_word_embeddings is true, so the output is embed_tokens");
      continue;
    }
    size_t spec_i = desc->tensors.size();
    for (size_t i = 0; i < desc->tensors.size(); ++i) {
      if (desc->tensors[i].per_layer == (m.layer >= 0) && SpecName(desc->tensors[i], m.layer) == m.name) spec_i = i;
    }
    if (spec_i == desc->tensors.size()) {
      return Error{ErrorCode::kUnsupported, "tensor '" + m.name + "'", Error::kNoOffset,
                   fmt::format("a tensor of the {} description (gguf/arch.cc)", arch.gguf_arch), "not described"};
    }
    const TensorSpec& spec = desc->tensors[spec_i];
    const uint64_t ne0 = *Resolve(spec.shape[0], hp), ne1 = *Resolve(spec.shape[1], hp);
    const bool vector = spec.shape[1] == Dim::kOne;
    const std::vector<int64_t> want = vector ? std::vector<int64_t>{static_cast<int64_t>(ne0)}
                                             : std::vector<int64_t>{static_cast<int64_t>(ne1), static_cast<int64_t>(ne0)};
    if (t->shape != want) {
      return Error{ErrorCode::kBadDims, "tensor '" + t->name + "'", t->offset,
                   fmt::format("shape {} ({} x {} for these hyper-parameters)", ShapeText(want), DimName(spec.shape[1]),
                               DimName(spec.shape[0])),
                   ShapeText(t->shape)};
    }
    has_output = has_output || m.name == "output.weight";
    const int group = m.name == "token_embd.weight" ? 0 : m.layer >= 0 ? 1 : 2;
    plan.push_back({{group, m.layer, spec_i}, m.name, t, m.transform,
                    vector ? std::vector<int64_t>{want[0]} : std::vector<int64_t>{want[1], want[0]},
                    vector || m.name.ends_with("_norm.weight") ? GgmlType::kF32 : opt.matrix_type});
  }
  std::sort(plan.begin(), plan.end(), [](const Planned& a, const Planned& b) { return a.order < b.order; });
  for (const TensorSpec& spec : desc->tensors) {
    if (!spec.required) continue;
    for (int l = 0; l < (spec.per_layer ? static_cast<int>(cfg.n_layers) : 1); ++l) {
      const std::string name = SpecName(spec, l);
      if (std::none_of(plan.begin(), plan.end(), [&](const Planned& p) { return p.name == name; })) {
        return Error{ErrorCode::kUnsupported, "tensor '" + MapGgufName(arch, name).name + "'", Error::kNoOffset,
                     "present (it becomes " + name + ")", "absent from the checkpoint"};
      }
    }
  }
  rep.tied_output = !has_output;
  if (!has_output && !cfg.tie_word_embeddings) {
    rep.notes.push_back("no lm_head.weight although tie_word_embeddings is false: the output uses embed_tokens");
  }

  // Metadata, as llama.cpp's converter writes it.
  namespace fs = std::filesystem;
  Writer& w = out.writer;
  const std::string a(arch.gguf_arch);
  auto u32 = [](uint64_t v) { return Value::U(ValueType::kUint32, v); };
  auto f32 = [](double v) { return Value::F32(static_cast<float>(v)); };
  std::string name = opt.name;
  if (name.empty()) {
    fs::path p = fs::path(out.checkpoint.dir()).lexically_normal();
    name = p.filename().empty() ? p.parent_path().filename().string() : p.filename().string();
  }
  std::vector<std::pair<std::string, Value>> kv = {
      {"general.architecture", Value::Str(a)},
      {"general.name", Value::Str(name)},
      {a + ".block_count", u32(cfg.n_layers)},
      {a + ".context_length", u32(cfg.n_ctx)},
      {a + ".embedding_length", u32(cfg.n_embd)},
      {a + ".feed_forward_length", u32(cfg.n_ff)},
      {a + ".attention.head_count", u32(cfg.n_head)},
      {a + ".attention.head_count_kv", u32(cfg.n_head_kv)},
      {a + ".rope.freq_base", f32(cfg.rope_theta)},
      {a + ".attention.layer_norm_rms_epsilon", f32(cfg.rms_eps)},
  };
  if (cfg.head_dim_written) {
    kv.emplace_back(a + ".attention.key_length", u32(cfg.head_dim));
    kv.emplace_back(a + ".attention.value_length", u32(cfg.head_dim));
  }
  kv.emplace_back("general.file_type", u32(opt.matrix_type == GgmlType::kF16 ? 1 : 0));  // ALL_F32 / MOSTLY_F16
  if (arch.write_vocab_size) {
    kv.emplace_back(a + ".vocab_size", u32(cfg.n_vocab));
    kv.emplace_back(a + ".rope.dimension_count", u32(cfg.head_dim));
  }
  if (cfg.sliding_window) kv.emplace_back(a + ".attention.sliding_window", u32(*cfg.sliding_window));
  if (cfg.rope_theta_swa) kv.emplace_back(a + ".rope.freq_base_swa", f32(*cfg.rope_theta_swa));
  if (cfg.final_logit_softcap) kv.emplace_back(a + ".final_logit_softcapping", f32(*cfg.final_logit_softcap));
  for (auto& [k, v] : kv) {
    if (Status s = w.AddKv(k, std::move(v)); !s.ok()) return s.error();
  }
  std::string why;
  const HfSpecialIds ids{cfg.bos_id, cfg.eos_id, cfg.pad_id};
  Result<std::optional<HfVocab>> vocab = ReadHfVocab(out.checkpoint.dir(), cfg.n_vocab, ids, &why);
  if (!vocab.ok()) return vocab.error();
  const HfVocab v = vocab->has_value() ? std::move(**vocab) : PlaceholderVocab(cfg.n_vocab, ids);
  if (!vocab->has_value()) rep.notes.push_back(why + ": wrote a placeholder vocabulary");
  rep.vocab = v.source;
  if (Status s = AddVocab(w, v); !s.ok()) return s.error();

  // Tensors: referenced in place when nothing changes, else converted here.
  auto& owned = out.converted;
  std::vector<float> f;
  for (const Planned& p : plan) {
    const StTensor& t = *p.src;
    const bool same = (p.type == GgmlType::kF32 && t.dtype == StDtype::kF32) ||
                      (p.type == GgmlType::kF16 && t.dtype == StDtype::kF16);
    std::span<const uint8_t> bytes = t.data;
    if (!same || p.transform != HfTransform::kNone) {
      f.resize(t.n_elements);
      Status s = ToF32(t, f);
      const int64_t rows = t.shape[0], cols = t.shape.size() == 2 ? t.shape[1] : 1;
      if (s.ok()) {
        s = ApplyHfTransform(p.transform, f, rows, cols, static_cast<int>(cfg.n_head), static_cast<int>(cfg.n_head_kv),
                             t.dtype == StDtype::kF16);
      }
      if (!s.ok()) return s.error();
      std::vector<uint8_t>& buf =
          *owned.emplace_back(std::make_unique<std::vector<uint8_t>>(t.n_elements * (p.type == GgmlType::kF16 ? 2 : 4)));
      if (p.type == GgmlType::kF16) {
        for (size_t i = 0; i < f.size(); ++i) {
          const uint16_t h = FloatToHalf(f[i]);
          std::memcpy(buf.data() + 2 * i, &h, 2);
        }
      } else if (!f.empty()) {
        std::memcpy(buf.data(), f.data(), f.size() * 4);
      }
      bytes = buf;
    }
    if (Status s = w.AddTensor(p.name, p.type, p.ne, bytes); !s.ok()) return s.error();
    ++rep.n_tensors;
  }
  return out;
}

}  // namespace ggufscope::gguf
