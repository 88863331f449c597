#include "inspect/checkpoint_diff.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>

#include "compare/tensor_diff.h"
#include "gguf/dequant.h"
#include "gguf/hf_names.h"
#include "gguf/safetensors.h"

namespace ggufscope::inspect {
namespace {

using gguf::Error;
using gguf::ErrorCode;
using gguf::GgmlType;
using gguf::HfTransform;
using gguf::StDtype;
using gguf::StTensor;

// Elements per chunk (both sides: 2 x 4 MiB of f32 per worker).
constexpr uint64_t kChunk = uint64_t{1} << 20;

GgmlType RefType(StDtype d) {
  switch (d) {
    case StDtype::kF32: return GgmlType::kF32;
    case StDtype::kF16: return GgmlType::kF16;
    case StDtype::kBF16: return GgmlType::kBF16;
  }
  return GgmlType::kF32;
}

// The (rows, cols) view of a checkpoint tensor: rows = the outermost
// dimension, cols = the rest; a vector is (n, 1), a scalar (1, 1).
std::pair<uint64_t, uint64_t> RowsCols(const StTensor& t) {
  if (t.shape.empty()) return {1, 1};
  const uint64_t rows = static_cast<uint64_t>(t.shape[0]);
  return {rows, rows == 0 ? 0 : t.n_elements / rows};
}

// Rows per head for a permuted tensor (the unit a chunk must respect), 1
// otherwise; an error when the rows cannot be split into 2 x heads.
gguf::Result<uint64_t> HeadRows(const StTensor& t, HfTransform tr, const gguf::HfConfig& cfg) {
  if (tr != HfTransform::kPermuteQ && tr != HfTransform::kPermuteK) return uint64_t{1};
  const uint64_t groups = tr == HfTransform::kPermuteQ ? cfg.n_head : cfg.n_head_kv;
  const uint64_t rows = RowsCols(t).first;
  if (groups == 0 || rows % (2 * groups) != 0) {
    return Error{ErrorCode::kBadDims, "tensor '" + t.name + "'", t.offset,
                 fmt::format("rows a multiple of 2 x {} heads (config.json) for the rope permutation", groups),
                 std::to_string(rows)};
  }
  return rows / groups;
}

std::string ShapeText(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

std::vector<int64_t> GgufShape(const gguf::TensorInfo& t) {
  std::vector<int64_t> s;
  for (int d = static_cast<int>(t.n_dims) - 1; d >= 0; --d) s.push_back(t.ne[d]);
  return s;
}

// Chunk size in rows: whole heads, about kChunk elements.
uint64_t ChunkRows(uint64_t rows, uint64_t cols, uint64_t head) {
  const uint64_t per = std::max<uint64_t>(1, kChunk / std::max<uint64_t>(cols, 1));
  return std::min(rows, std::max(head, per / head * head));
}

// One GGUF tensor against its checkpoint tensor (shapes already equal).
gguf::Status CompareOne(const gguf::GgufFile& f, const gguf::TensorInfo& ti, const StTensor& st, HfTransform tr,
                        const gguf::HfConfig& cfg, TensorDiffEntry& e) {
  gguf::Result<uint64_t> head = HeadRows(st, tr, cfg);
  if (!head.ok()) return head.error();
  const auto [rows, cols] = RowsCols(st);
  const auto& traits = gguf::Traits(ti.type);
  const std::span<const uint8_t> data = f.TensorData(ti);
  const bool same_type = ti.type == RefType(st.dtype);
  const uint64_t step = ChunkRows(rows, cols, *head);
  std::vector<float> xa(step * cols), xb(step * cols);
  compare::DiffAccumulator acc(static_cast<uint64_t>(ti.ne[0]));
  bool identical = same_type;
  uint64_t first_diff = 0;
  for (uint64_t r0 = 0; r0 < rows; r0 += step) {
    const uint64_t nr = std::min(step, rows - r0), e0 = r0 * cols, n = nr * cols;
    // Chunks start at whole rows (2-D: ne0 = cols, a multiple of the block
    // size in a parsed file) or at 0 (vectors are one GGUF row).
    if (e0 % traits.block_size != 0 || n % traits.block_size != 0) {
      return Error{ErrorCode::kBadBlockMultiple, "tensor '" + ti.name + "'", ti.info_offset,
                   fmt::format("chunks of whole {}-element blocks", traits.block_size), std::to_string(n)};
    }
    const std::span<float> a(xa.data(), n), b(xb.data(), n);
    gguf::Status s = gguf::Dequantize(
        ti.type, data.subspan(e0 / traits.block_size * traits.type_size, n / traits.block_size * traits.type_size), n, a);
    if (!s.ok()) return s;
    if (s = CheckpointRows(st, tr, cfg, r0, nr, b); !s.ok()) return s;
    if (identical) {
      for (uint64_t i = 0; i < n; ++i) {
        if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) {
          identical = false;
          first_diff = (e0 + i) * traits.type_size;  // F32/F16/BF16: one element per block
          break;
        }
      }
    }
    acc.Add(a, b, e0);
  }
  e.d = acc.Finish();
  e.d.bytes_identical = identical;
  e.d.first_diff_byte = first_diff;
  e.j = compare::Judge(e.d, ti.type, RefType(st.dtype));
  e.status = !e.j.within ? DiffStatus::kFlagged : (identical ? DiffStatus::kIdentical : DiffStatus::kWithinNoise);
  return {};
}

std::string Num(double v) { return fmt::format("{:g}", v); }

// config.json against the GGUF's hyper-parameters, as llama.cpp reads them
// (an absent head_count_kv means head_count, an absent freq_base 10000).
std::vector<ConfigContradiction> CheckConfig(const gguf::GgufFile& f, const gguf::HfConfig& cfg) {
  std::vector<ConfigContradiction> out;
  const std::string arch = f.GetString("general.architecture").value_or("");
  if (arch != cfg.arch->gguf_arch) {
    out.push_back({"general.architecture", "architectures", arch.empty() ? "(absent)" : arch,
                   fmt::format("{} (a {} GGUF)", cfg.arch->hf_class, cfg.arch->gguf_arch)});
  }
  const std::string a(cfg.arch->gguf_arch);
  auto uint_key = [&](const std::string& suffix, const char* config_key, uint64_t want, std::optional<uint64_t> dflt) {
    const std::string key = a + "." + suffix;
    const std::optional<uint64_t> v = f.GetUint(key);
    if (!v && !dflt) {
      out.push_back({key, config_key, "(absent)", std::to_string(want)});
    } else if (v.value_or(dflt.value_or(0)) != want) {
      out.push_back({key, config_key, v ? std::to_string(*v) : "(absent: " + std::to_string(*dflt) + ")",
                     std::to_string(want)});
    }
  };
  // GGUF stores these as f32: equal within f32 rounding.
  auto float_key = [&](const std::string& suffix, const char* config_key, double want, std::optional<double> dflt) {
    const std::string key = a + "." + suffix;
    const std::optional<double> v = f.GetDouble(key);
    if (!v && !dflt) {
      out.push_back({key, config_key, "(absent)", Num(want)});
      return;
    }
    const double got = v.value_or(dflt.value_or(0));
    if (!(std::fabs(got - want) <= 1e-6 * std::fabs(want))) {
      out.push_back({key, config_key, v ? Num(*v) : "(absent: " + Num(*dflt) + ")", Num(want)});
    }
  };
  uint_key("block_count", "num_hidden_layers", cfg.n_layers, std::nullopt);
  uint_key("embedding_length", "hidden_size", cfg.n_embd, std::nullopt);
  uint_key("feed_forward_length", "intermediate_size", cfg.n_ff, std::nullopt);
  uint_key("attention.head_count", "num_attention_heads", cfg.n_head, std::nullopt);
  const std::optional<uint64_t> n_head = f.GetUint(a + ".attention.head_count");
  uint_key("attention.head_count_kv", "num_key_value_heads", cfg.n_head_kv, n_head);
  float_key("rope.freq_base", "rope_theta", cfg.rope_theta, 10000.0);
  float_key("attention.layer_norm_rms_epsilon", "rms_norm_eps", cfg.rms_eps, std::nullopt);
  const std::optional<uint64_t> n_embd = f.GetUint(a + ".embedding_length");
  uint_key("attention.key_length", "head_dim", cfg.head_dim,
           n_head && n_embd && *n_head > 0 ? std::optional<uint64_t>(*n_embd / *n_head) : std::nullopt);
  if (f.FindKey(a + ".vocab_size") != nullptr) uint_key("vocab_size", "vocab_size", cfg.n_vocab, std::nullopt);
  if (const gguf::KeyValue* tokens = f.FindKey("tokenizer.ggml.tokens");
      tokens != nullptr && tokens->value.type == gguf::ValueType::kArray && tokens->value.array_size() != cfg.n_vocab) {
    out.push_back({"tokenizer.ggml.tokens (count)", "vocab_size", std::to_string(tokens->value.array_size()),
                   std::to_string(cfg.n_vocab)});
  }
  if (cfg.sliding_window && f.FindKey(a + ".attention.sliding_window") != nullptr) {
    uint_key("attention.sliding_window", "sliding_window", *cfg.sliding_window, std::nullopt);
  }
  if (cfg.rope_theta_swa && f.FindKey(a + ".rope.freq_base_swa") != nullptr) {
    float_key("rope.freq_base_swa", "rope_local_base_freq", *cfg.rope_theta_swa, std::nullopt);
  }
  return out;
}

// The checkpoint and its parsed config.json, or an error naming the file.
struct OpenedCheckpoint {
  gguf::Checkpoint ck;
  gguf::HfConfig cfg;
};

gguf::Result<OpenedCheckpoint> OpenCheckpoint(const std::string& path) {
  gguf::Result<gguf::Checkpoint> ck = gguf::Checkpoint::Open(path);
  if (!ck.ok()) return ck.error();
  const std::string config = (std::filesystem::path(ck->dir()) / "config.json").string();
  if (ck->config_json().empty()) {
    return Error{ErrorCode::kIo, config, Error::kNoOffset, "the model's config.json beside the weights", "none"};
  }
  gguf::Result<gguf::HfConfig> cfg = gguf::ParseHfConfig(ck->config_json());
  if (!cfg.ok()) {
    Error e = cfg.error();
    if (e.field.rfind("config.json", 0) == 0) e.field = config + e.field.substr(11);
    return e;
  }
  return OpenedCheckpoint{std::move(*ck), std::move(*cfg)};
}

}  // namespace

bool IsCheckpointPath(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_directory(path, ec) || path.ends_with(".safetensors");
}

gguf::Status CheckpointRows(const StTensor& t, HfTransform tr, const gguf::HfConfig& cfg, uint64_t row0,
                            uint64_t n_rows, std::span<float> out) {
  const auto [rows, cols] = RowsCols(t);
  gguf::Result<uint64_t> head = HeadRows(t, tr, cfg);
  if (!head.ok()) return head.error();
  if (row0 > rows || n_rows > rows - row0 || out.size() != n_rows * cols || row0 % *head != 0 || n_rows % *head != 0) {
    return Error{ErrorCode::kInvalidArgument, "tensor '" + t.name + "'", t.offset,
                 fmt::format("rows within {} in whole heads of {}, {} x {} floats", rows, *head, n_rows, cols),
                 fmt::format("rows {}..{}, {} floats", row0, row0 + n_rows, out.size())};
  }
  StTensor part = t;
  const uint64_t esize = gguf::StDtypeSize(t.dtype);
  part.shape = {static_cast<int64_t>(n_rows), static_cast<int64_t>(cols)};
  part.n_elements = n_rows * cols;
  part.data = t.data.subspan(row0 * cols * esize, n_rows * cols * esize);
  if (gguf::Status s = gguf::ToF32(part, out); !s.ok()) return s;
  // Permutations act within each head: a chunk of whole heads is permuted as
  // a tensor of (n_rows / head) heads.
  const int groups = static_cast<int>(n_rows / *head);
  const bool permuted = tr == HfTransform::kPermuteQ || tr == HfTransform::kPermuteK;
  return gguf::ApplyHfTransform(tr, out, static_cast<int64_t>(n_rows), static_cast<int64_t>(cols),
                                permuted ? groups : static_cast<int>(cfg.n_head),
                                permuted ? groups : static_cast<int>(cfg.n_head_kv), t.dtype == StDtype::kF16);
}

gguf::Result<CheckpointDiffReport> DiffCheckpoint(const gguf::GgufFile& f, const std::string& checkpoint,
                                                  const CheckpointDiffOptions& opt) {
  gguf::Result<OpenedCheckpoint> opened = OpenCheckpoint(checkpoint);
  if (!opened.ok()) return opened.error();
  const gguf::Checkpoint& ck = opened->ck;
  const gguf::HfConfig& cfg = opened->cfg;
  const gguf::HfArch& arch = *cfg.arch;
  CheckpointDiffReport r;
  r.checkpoint = checkpoint;
  r.hf_class = arch.hf_class;
  r.gguf_arch = arch.gguf_arch;
  r.config = CheckConfig(f, cfg);

  // Pair every GGUF tensor with its checkpoint tensor.
  struct Pair {
    size_t entry;
    const gguf::TensorInfo* ti;
    const StTensor* st;
    HfTransform tr;
  };
  std::vector<Pair> work;
  for (const gguf::TensorInfo& ti : f.tensors()) {
    TensorDiffEntry e;
    e.name = ti.name;
    e.type_a = ti.type;
    e.offset_a = f.data_offset() + ti.offset;
    const gguf::HfNameMatch m = gguf::MapGgufName(arch, ti.name);
    const StTensor* st = m.kind == gguf::HfNameKind::kMapped ? ck.Find(m.name) : nullptr;
    std::string hf = m.name;
    if (st == nullptr && ti.name == "output.weight" && m.kind == gguf::HfNameKind::kMapped) {
      // A file may carry the tied output explicitly: its source is the embedding.
      st = ck.Find("model.embed_tokens.weight");
      hf = "model.embed_tokens.weight";
      if (st != nullptr) r.notes.push_back("output.weight compared with model.embed_tokens.weight: the checkpoint has no lm_head (tied)");
    }
    if (m.kind != gguf::HfNameKind::kMapped) {
      e.status = DiffStatus::kOnlyInA;
      e.error = fmt::format("extra: no {} tensor becomes this (gguf/hf_names.cc)", arch.hf_class);
    } else if (st == nullptr) {
      e.status = DiffStatus::kOnlyInA;
      e.error = "extra: its source " + m.name + " is not in the checkpoint";
      e.ref_name = m.name;
    } else {
      e.ref_name = hf;
      e.type_b = RefType(st->dtype);
      if (m.transform != HfTransform::kNone) e.transform = gguf::HfTransformName(m.transform);
      const std::vector<int64_t> shape = GgufShape(ti);
      if (shape != st->shape) {
        e.status = DiffStatus::kShapeMismatch;
        e.error = fmt::format("reshaped: {} here, {} in the checkpoint ({})", ShapeText(shape), ShapeText(st->shape), hf);
      } else {
        work.push_back({r.tensors.size(), &ti, st, m.transform});
      }
    }
    r.tensors.push_back(std::move(e));
  }
  // Checkpoint tensors the file lacks.
  size_t ignored = 0;
  for (const StTensor* st : ck.Tensors()) {
    const gguf::HfNameMatch m = gguf::MapHfName(arch, st->name);
    if (m.kind == gguf::HfNameKind::kIgnored) {
      ++ignored;
      continue;
    }
    if (m.kind == gguf::HfNameKind::kMapped && f.FindTensor(m.name) != nullptr) continue;
    if (m.kind == gguf::HfNameKind::kMapped && m.name == "output.weight" && cfg.tie_word_embeddings) {
      r.notes.push_back("lm_head.weight is not in the file: tie_word_embeddings is true, the output is token_embd");
      continue;
    }
    TensorDiffEntry e;
    e.name = m.kind == gguf::HfNameKind::kMapped ? m.name : st->name;
    e.ref_name = st->name;
    e.type_b = RefType(st->dtype);
    e.status = DiffStatus::kOnlyInB;
    e.error = m.kind == gguf::HfNameKind::kMapped
                  ? "missing: the checkpoint's " + st->name + " is not in the file"
                  : fmt::format("missing: checkpoint tensor {} has no GGUF name in the {} table", st->name, arch.hf_class);
    r.tensors.push_back(std::move(e));
  }
  if (ignored > 0) r.notes.push_back(fmt::format("{} checkpoint buffers the converter drops were skipped", ignored));

  // Compare, one chunk per worker at a time.
  uint64_t total_bytes = 0;
  for (const Pair& p : work) total_bytes += p.st->data.size();
  const bool show = opt.progress && total_bytes >= (uint64_t{256} << 20);
  std::atomic<size_t> next{0};
  std::mutex mu;
  uint64_t done_bytes = 0;
  int last_pct = -1;
  auto worker = [&] {
    for (size_t i = next++; i < work.size(); i = next++) {
      const Pair& p = work[i];
      TensorDiffEntry& e = r.tensors[p.entry];
      if (gguf::Status s = CompareOne(f, *p.ti, *p.st, p.tr, cfg, e); !s.ok()) {
        e.status = DiffStatus::kError;
        e.error = s.error().Message();
      }
      if (show) {
        std::lock_guard lock(mu);
        done_bytes += p.st->data.size();
        const int pct = static_cast<int>(100 * done_bytes / total_bytes);
        if (pct / 5 != last_pct / 5) {
          last_pct = pct;
          fmt::print(stderr, "[diff] {:3d}% of {:.1f} MiB of checkpoint tensors\n", pct,
                     static_cast<double>(total_bytes) / (1 << 20));
        }
      }
    }
  };
  const unsigned n = opt.threads > 0 ? static_cast<unsigned>(opt.threads) : std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < std::min<size_t>(n, work.size()); ++i) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();

  for (const TensorDiffEntry& e : r.tensors) {
    r.flagged += e.status != DiffStatus::kIdentical && e.status != DiffStatus::kWithinNoise;
  }
  r.flagged += r.config.size();
  return r;
}

nlohmann::json CheckpointDiffJson(const CheckpointDiffReport& r, const std::string& gguf_path) {
  DiffReport d;
  d.tensors = r.tensors;
  d.flagged = r.flagged;
  nlohmann::json j = DiffJson(d, gguf_path, r.checkpoint);
  j.erase("metadata");
  nlohmann::json cfg = nlohmann::json::array();
  for (const ConfigContradiction& c : r.config) {
    cfg.push_back({{"key", c.key}, {"config_key", c.config_key}, {"gguf", c.gguf}, {"config", c.config}});
  }
  j["checkpoint"] = r.checkpoint;
  j["hf_class"] = r.hf_class;
  j["architecture"] = r.gguf_arch;
  j["config_contradictions"] = cfg;
  j["notes"] = r.notes;
  return j;
}

std::string CheckpointDiffText(const CheckpointDiffReport& r, const std::string& gguf_path, bool all) {
  std::string o = fmt::format("gguf:       {}\ncheckpoint: {} ({} -> {}, the reference)\n", gguf_path, r.checkpoint,
                              r.hf_class, r.gguf_arch);
  if (!r.config.empty()) {
    o += fmt::format("\nmetadata contradicting config.json ({})\n", r.config.size());
    for (const ConfigContradiction& c : r.config) {
      o += fmt::format("  {:<40} {}   config.json {}: {}\n", c.key, c.gguf, c.config_key, c.config);
    }
  }
  o += DiffTable(r.tensors, all, "type", "source");
  for (const std::string& n : r.notes) o += fmt::format("  note: {}\n", n);
  size_t tensors_flagged = r.flagged - r.config.size();
  o += fmt::format("\n{}: {} of {} tensors differ from the checkpoint beyond quantization noise, are missing, extra or "
                   "reshaped; {} hyper-parameters contradict config.json\n",
                   r.flagged == 0 ? "consistent" : "DIFFERENT", tensors_flagged, r.tensors.size(), r.config.size());
  return o;
}

gguf::Result<Fingerprint> CheckpointFingerprint(const std::string& checkpoint, bool round, int threads) {
  gguf::Result<OpenedCheckpoint> opened = OpenCheckpoint(checkpoint);
  if (!opened.ok()) return opened.error();
  const gguf::Checkpoint& ck = opened->ck;
  const gguf::HfConfig& cfg = opened->cfg;
  Fingerprint fp;
  fp.model = std::filesystem::path(ck.dir()).lexically_normal().filename().string();
  fp.architecture = cfg.arch->gguf_arch;
  fp.source = "ggufscope fingerprint of a checkpoint (" + std::string(cfg.arch->hf_class) + ")";
  fp.precision = round ? "mean and std rounded to 3 decimals" : "exact";
  fp.conventions = "gguf";
  struct Item {
    const StTensor* st;
    HfTransform tr;
    FingerprintEntry e;
    std::string error;
  };
  std::vector<Item> items;
  for (const StTensor* st : ck.Tensors()) {
    const gguf::HfNameMatch m = gguf::MapHfName(*cfg.arch, st->name);
    if (m.kind != gguf::HfNameKind::kMapped) {
      if (m.kind == gguf::HfNameKind::kIgnored) continue;
      return Error{ErrorCode::kUnsupported, "tensor '" + st->name + "'", st->offset,
                   fmt::format("a tensor of {} (gguf/hf_names.cc)", cfg.arch->hf_class), "a name the table does not know"};
    }
    if (m.name == "output.weight" && cfg.tie_word_embeddings) continue;
    items.push_back({st, m.transform, {m.name, st->name, st->shape, 0, 0}, ""});
  }
  std::atomic<size_t> next{0};
  auto worker = [&] {
    std::vector<float> buf;
    for (size_t i = next++; i < items.size(); i = next++) {
      Item& it = items[i];
      gguf::Result<uint64_t> head = HeadRows(*it.st, it.tr, cfg);
      if (!head.ok()) {
        it.error = head.error().Message();
        continue;
      }
      const auto [rows, cols] = RowsCols(*it.st);
      const uint64_t step = ChunkRows(rows, cols, *head);
      double sum = 0, sum_sq = 0;
      uint64_t finite = 0;
      for (uint64_t r0 = 0; r0 < rows && it.error.empty(); r0 += step) {
        const uint64_t nr = std::min(step, rows - r0);
        buf.resize(nr * cols);
        if (gguf::Status s = CheckpointRows(*it.st, it.tr, cfg, r0, nr, buf); !s.ok()) {
          it.error = s.error().Message();
          break;
        }
        for (float v : buf) {
          if (!std::isfinite(v)) continue;
          sum += v;
          sum_sq += static_cast<double>(v) * v;
          ++finite;
        }
      }
      if (finite > 0) {
        // As inspect/tensor_stats.cc computes them for a GGUF tensor.
        const double nf = static_cast<double>(finite), mean = sum / nf;
        const double sd = std::sqrt(std::max(0.0, sum_sq / nf - mean * mean));
        it.e.mean = round ? std::round(mean * 1000.0) / 1000.0 : mean;
        it.e.std = round ? std::round(sd * 1000.0) / 1000.0 : sd;
      }
    }
  };
  const unsigned n = threads > 0 ? static_cast<unsigned>(threads) : std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < std::min<size_t>(n, items.size()); ++i) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  for (Item& it : items) {
    if (!it.error.empty()) return Error{ErrorCode::kBadDims, "tensor '" + it.st->name + "'", it.st->offset, "convertible", it.error};
    fp.tensors.push_back(std::move(it.e));
  }
  return fp;
}

}  // namespace ggufscope::inspect
