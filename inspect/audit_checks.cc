// The checks of `audit` on a parsed file: structure beyond the parser's,
// metadata against tensors, per-tensor values, and layer-to-layer consistency.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "gguf/arch.h"
#include "inspect/audit.h"

namespace ggufscope::inspect {
namespace {

using gguf::GgufFile;
using gguf::TensorInfo;

// Piece maxima this far above the tensor's median piece maximum: evidence
// (trained weights have "super weights" ~30-200x their typical block, and
// real files reach ~100x; see docs/CHECKS.md), and proof beyond 1e4x (a
// flipped exponent bit of an f16 scale multiplies a block by 2^k, k >= 1..15).
constexpr double kOutlierEvidence = 500.0;
constexpr double kOutlierProof = 1e4;
// Layer-to-layer: a member this many robust sigmas from its peers' median and
// this many times larger or smaller is noted; only far beyond what trained
// models show (Qwen2.5's layer-0 k bias is 30x its peers) is it evidence.
constexpr double kLayerZ = 6.0;
constexpr double kLayerNoteRatio = 3.0;
constexpr double kLayerEvidenceRatio = 1000.0;

Finding Make(Severity s, std::string check, std::string tensor, std::string key, uint64_t offset, std::string msg) {
  return Finding{s, std::move(check), std::move(tensor), std::move(key), offset, std::move(msg)};
}

std::string ShapeOf(const TensorInfo& t) {
  std::string s;
  for (uint32_t d = 0; d < t.n_dims; ++d) s += (d ? " x " : "") + std::to_string(t.ne[d]);
  return s;
}

// "blk.<N>.<rest>": N and "blk.*.<rest>". Hand-written, not std::regex:
// libstdc++'s regex recurses per character and a hostile name can be megabytes.
bool SplitLayer(const std::string& name, uint64_t* layer, std::string* role) {
  if (name.rfind("blk.", 0) != 0) return false;
  size_t i = 4;
  uint64_t n = 0;
  while (i < name.size() && i < 13 && name[i] >= '0' && name[i] <= '9') n = n * 10 + static_cast<uint64_t>(name[i++] - '0');
  if (i == 4 || i >= name.size() || name[i] != '.') return false;
  if (layer) *layer = n;
  if (role) *role = "blk.*." + name.substr(i + 1);
  return true;
}

uint64_t KeyOffset(const GgufFile& f, const std::string& key) {
  const gguf::KeyValue* kv = f.FindKey(key);
  return kv ? kv->offset : 0;
}

uint64_t ElementOffset(const GgufFile& f, const TensorInfo& t, uint64_t element) {
  const auto& tr = gguf::Traits(t.type);
  return f.data_offset() + t.offset + element / tr.block_size * tr.type_size;
}

}  // namespace

void CheckStructure(const GgufFile& f, std::vector<Finding>& out) {
  const uint64_t a = f.alignment();
  std::vector<const TensorInfo*> order;
  for (const TensorInfo& t : f.tensors()) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](auto* x, auto* y) { return x->offset < y->offset; });
  uint64_t expected = 0, end = 0;
  for (const TensorInfo* t : order) {
    if (t->offset > expected) {
      out.push_back(Make(Severity::kEvidence, "structure.gap", t->name, "", f.data_offset() + expected,
                         fmt::format("{} unused bytes before this tensor (data at {}, a packed writer puts it at {}); "
                                     "llama.cpp refuses such files, and the gap may hide data of a "
                                     "tensor that was written with a different size",
                                     t->offset - expected, t->offset, expected)));
    }
    expected = std::max(expected, (t->offset + t->n_bytes + a - 1) / a * a);
    end = std::max(end, t->offset + t->n_bytes);
  }
  if (!order.empty()) {
    const uint64_t data_end = f.data_offset() + expected;
    if (f.file_size() > data_end) {
      out.push_back(Make(Severity::kEvidence, "structure.tail", "", "", data_end,
                         fmt::format("{} bytes after the last tensor's padded end (byte {} of {}): "
                                     "appended data, or tensors smaller than the writer meant",
                                     f.file_size() - data_end, data_end, f.file_size())));
    } else if (f.data_offset() + end < f.file_size() && f.data_offset() + expected > f.file_size()) {
      // The last tensor's padding is cut short: harmless (padding holds nothing).
    }
  }
  for (const gguf::Warning& w : f.warnings()) {
    out.push_back(Make(Severity::kNote, "structure.warning", "", "", w.offset, w.field + ": " + w.message));
  }

  // The architecture's tensor table.
  const gguf::HParams hp = gguf::ReadHParams(f);
  const gguf::ArchDesc* arch = gguf::FindArch(hp.arch);
  if (hp.arch.empty()) {
    out.push_back(Make(Severity::kEvidence, "metadata.architecture", "", "general.architecture", 0,
                       "general.architecture is missing: no loader knows what this file is"));
    return;
  }
  if (f.tensors().empty()) {
    out.push_back(Make(Severity::kNote, "structure.no-tensors", "", "", f.header_end(),
                       "no tensors: a vocabulary-only file, not a model"));
    return;
  }
  if (f.GetString("general.type").value_or("model") != "model") {
    out.push_back(Make(Severity::kNote, "structure.architecture", "", "general.type", KeyOffset(f, "general.type"),
                       fmt::format("general.type is '{}', not 'model': the model tensor table is not checked",
                                   f.GetString("general.type").value_or(""))));
    return;
  }
  if (arch == nullptr) {
    out.push_back(Make(Severity::kNote, "structure.architecture", "", "general.architecture",
                       KeyOffset(f, "general.architecture"),
                       fmt::format("architecture '{}' has no description here: its tensor table is not checked", hp.arch)));
    return;
  }
  if (!hp.n_layers) {
    out.push_back(Make(Severity::kProof, "metadata.missing", "", hp.arch + ".block_count", 0,
                       hp.arch + ".block_count is missing"));
    return;
  }
  // A hostile block_count must not turn into millions of findings: past
  // kMaxMissing, missing tensors are only counted.
  constexpr size_t kMaxMissing = 32;
  size_t missing = 0;
  const uint64_t layers_checked = std::min<uint64_t>(*hp.n_layers, f.tensors().size() + 1);
  for (const gguf::TensorSpec& spec : arch->tensors) {
    const uint64_t layers = spec.per_layer ? layers_checked : 1;
    for (uint64_t l = 0; l < layers; ++l) {
      std::string name(spec.name);
      if (spec.per_layer) name.replace(name.find("%d"), 2, std::to_string(l));
      const TensorInfo* t = f.FindTensor(name);
      if (t == nullptr) {
        if (spec.required && missing++ < kMaxMissing) {
          out.push_back(Make(Severity::kProof, "structure.missing-tensor", name, "", 0,
                             fmt::format("required by the {} architecture and absent", hp.arch)));
        }
        continue;
      }
      std::optional<uint64_t> want[2] = {gguf::Resolve(spec.shape[0], hp), gguf::Resolve(spec.shape[1], hp)};
      const bool vector = spec.shape[1] == gguf::Dim::kOne;
      const uint64_t have0 = static_cast<uint64_t>(t->ne[0]), have1 = t->n_dims >= 2 ? static_cast<uint64_t>(t->ne[1]) : 1;
      const bool dims_ok = vector ? (t->n_dims == 1 || (t->n_dims >= 2 && have1 == 1)) : t->n_dims >= 2;
      const bool ne0_bad = want[0] && have0 != *want[0];
      const bool ne1_bad = !vector && want[1] && have1 != *want[1];
      if (!dims_ok || ne0_bad || ne1_bad) {
        out.push_back(Make(Severity::kProof, "structure.shape", name, "", t->info_offset,
                           fmt::format("shape {} where the metadata implies {} x {} ({} x {})", ShapeOf(*t),
                                       want[0] ? std::to_string(*want[0]) : "?",
                                       vector ? "1" : (want[1] ? std::to_string(*want[1]) : "?"),
                                       gguf::DimName(spec.shape[0]), gguf::DimName(spec.shape[1]))));
      }
    }
  }
  if (missing > kMaxMissing) {
    out.push_back(Make(Severity::kProof, "structure.missing-tensor", "", hp.arch + ".block_count", 0,
                       fmt::format("{} more required tensors are absent", missing - kMaxMissing)));
  }
}

void CheckMetadata(const GgufFile& f, std::vector<Finding>& out) {
  const gguf::HParams hp = gguf::ReadHParams(f);
  const std::string a = hp.arch + ".";
  if (hp.n_layers) {
    // blk.N tensors beyond block_count, or layers with no tensor at all.
    uint64_t max_layer = 0, layer = 0;
    bool any = false;
    for (const TensorInfo& t : f.tensors()) {
      if (SplitLayer(t.name, &layer, nullptr)) {
        max_layer = std::max(max_layer, layer);
        any = true;
      }
    }
    if (any && max_layer + 1 != *hp.n_layers) {
      out.push_back(Make(Severity::kProof, "metadata.block-count", "", a + "block_count", KeyOffset(f, a + "block_count"),
                         fmt::format("block_count is {} but the tensors go up to blk.{}", *hp.n_layers, max_layer)));
    }
  }
  if (hp.n_head && hp.n_head_kv && *hp.n_head_kv > 0 && *hp.n_head % *hp.n_head_kv != 0) {
    out.push_back(Make(Severity::kProof, "metadata.heads", "", a + "attention.head_count_kv",
                       KeyOffset(f, a + "attention.head_count_kv"),
                       fmt::format("{} query heads cannot share {} KV heads evenly", *hp.n_head, *hp.n_head_kv)));
  }
  if (hp.n_head && *hp.n_head == 0) {
    out.push_back(Make(Severity::kProof, "metadata.heads", "", a + "attention.head_count",
                       KeyOffset(f, a + "attention.head_count"), "head_count is 0"));
  }
  if (hp.rope_dims && hp.head_dim_k && *hp.rope_dims > *hp.head_dim_k) {
    out.push_back(Make(Severity::kProof, "metadata.rope-dims", "", a + "rope.dimension_count",
                       KeyOffset(f, a + "rope.dimension_count"),
                       fmt::format("rope rotates {} dims of a {}-dim head", *hp.rope_dims, *hp.head_dim_k)));
  }
  if (hp.rope_dims && *hp.rope_dims % 2 != 0) {
    out.push_back(Make(Severity::kProof, "metadata.rope-dims", "", a + "rope.dimension_count",
                       KeyOffset(f, a + "rope.dimension_count"), "rope rotates pairs: an odd dimension count is impossible"));
  }
  // Vocabulary: token_embd rows, tokenizer arrays, special ids.
  const gguf::KeyValue* tokens = f.FindKey("tokenizer.ggml.tokens");
  const uint64_t n_tokens = tokens && tokens->value.type == gguf::ValueType::kArray ? tokens->value.array_size() : 0;
  if (const TensorInfo* emb = f.FindTensor("token_embd.weight"); emb && n_tokens > 0 && emb->n_dims >= 2 &&
                                                                  static_cast<uint64_t>(emb->ne[1]) != n_tokens) {
    // llama.cpp accepts an embedding larger than the vocabulary (padded rows); smaller cannot work.
    const bool smaller = static_cast<uint64_t>(emb->ne[1]) < n_tokens;
    out.push_back(Make(smaller ? Severity::kProof : Severity::kNote, "metadata.vocab", "token_embd.weight", "tokenizer.ggml.tokens",
                       emb->info_offset,
                       fmt::format("token_embd has {} rows for {} tokens{}", emb->ne[1], n_tokens,
                                   smaller ? ": tokens past the last row have no embedding" : " (padded; llama.cpp accepts it)")));
  }
  for (const char* key : {"tokenizer.ggml.scores", "tokenizer.ggml.token_type"}) {
    const gguf::KeyValue* kv = f.FindKey(key);
    if (kv && n_tokens > 0 && kv->value.type == gguf::ValueType::kArray && kv->value.array_size() != n_tokens) {
      out.push_back(Make(Severity::kProof, "metadata.tokenizer-arrays", "", key, kv->offset,
                         fmt::format("{} has {} entries for {} tokens", key, kv->value.array_size(), n_tokens)));
    }
  }
  for (const gguf::KeyValue& kv : f.metadata()) {
    if (kv.key.rfind("tokenizer.ggml.", 0) != 0 || kv.key.size() < 9 || kv.key.substr(kv.key.size() - 9) != "_token_id") continue;
    const std::optional<uint64_t> id = kv.value.AsUint();
    // llama.cpp uses -1 / UINT32_MAX for "none".
    if (!id || *id == 0xffffffffu || *id == UINT64_MAX || n_tokens == 0) continue;
    if (*id >= n_tokens) {
      out.push_back(Make(Severity::kProof, "metadata.special-token", "", kv.key, kv.offset,
                         fmt::format("{} is {} but the vocabulary has {} tokens", kv.key, *id, n_tokens)));
    }
  }
  const std::string model = f.GetString("tokenizer.ggml.model").value_or("");
  if (model == "gpt2" && !f.FindKey("tokenizer.ggml.pre")) {
    out.push_back(Make(Severity::kEvidence, "metadata.tokenizer-pre", "", "tokenizer.ggml.pre", 0,
                       "a BPE (gpt2) vocabulary without tokenizer.ggml.pre: llama.cpp falls back to the default "
                       "pre-tokenizer and generation degrades without an error (a known fault of older Llama-3 conversions)"));
  }
  if (model == "gpt2") {
    const gguf::KeyValue* merges = f.FindKey("tokenizer.ggml.merges");
    if (merges == nullptr || merges->value.type != gguf::ValueType::kArray || merges->value.array_size() == 0) {
      out.push_back(Make(Severity::kProof, "metadata.tokenizer", "", "tokenizer.ggml.merges", 0,
                         "a BPE vocabulary without merges cannot tokenize"));
    }
  }
}

void CheckValues(const GgufFile& f, const std::vector<TensorStats>& stats, std::vector<Finding>& out) {
  for (size_t i = 0; i < stats.size(); ++i) {
    const TensorStats& s = stats[i];
    const TensorInfo& t = f.tensors()[i];
    if (!s.error.empty()) {
      out.push_back(Make(Severity::kProof, "values.unreadable", s.name, "", f.data_offset() + t.offset, s.error));
      continue;
    }
    if (!s.values_checked) continue;
    if (s.scale_nan + s.scale_inf > 0) {
      const auto& tr = gguf::Traits(t.type);
      out.push_back(Make(Severity::kProof, "values.scale-nonfinite", s.name, "",
                         f.data_offset() + t.offset + s.first_bad_scale_block * tr.type_size,
                         fmt::format("{} NaN and {} Inf block scales (first in block {}): no quantizer writes them",
                                     s.scale_nan, s.scale_inf, s.first_bad_scale_block)));
    }
    if (s.nan + s.inf > 0) {
      out.push_back(Make(Severity::kProof, "values.nonfinite", s.name, "", ElementOffset(f, t, s.first_nonfinite),
                         fmt::format("{} NaN and {} Inf values (first at element {}, row {})", s.nan, s.inf,
                                     s.first_nonfinite, s.first_nonfinite / static_cast<uint64_t>(t.ne[0]))));
    }
    if (s.impossible > 0) {
      out.push_back(Make(Severity::kProof, "values.impossible", s.name, "", ElementOffset(f, t, s.first_impossible),
                         fmt::format("{} values with |w| >= {:g} (first at element {}; max |w| {:.4g}): no training produces them "
                                     "(a flipped exponent bit does)",
                                     s.impossible, kImpossibleMagnitude, s.first_impossible, s.max_abs)));
    } else if (s.worst_piece_ratio >= kOutlierEvidence && std::isfinite(s.worst_piece_ratio) && s.nan + s.inf == 0) {
      const bool proof = s.worst_piece_ratio >= kOutlierProof;
      out.push_back(Make(proof ? Severity::kProof : Severity::kEvidence, "values.outlier-block", s.name, "",
                         ElementOffset(f, t, s.worst_piece_element),
                         fmt::format("elements {}..{} reach |w| {:.4g}, {:.0f}x the tensor's typical block maximum {:.4g}{}",
                                     s.worst_piece_element, s.worst_piece_element + kPiece - 1,
                                     s.worst_piece_ratio * s.piece_max_median, s.worst_piece_ratio, s.piece_max_median,
                                     proof ? ": beyond anything training produces (a corrupted scale or exponent)"
                                           : "")));
    }
    if (s.n > 0 && s.zeros == s.n) {
      out.push_back(Make(Severity::kEvidence, "values.all-zero", s.name, "", f.data_offset() + t.offset,
                         "every value is zero"));
    } else if (s.zero_rows > 0 && s.rows > 1) {
      out.push_back(Make(Severity::kEvidence, "values.zero-rows", s.name, "",
                         f.data_offset() + t.offset + s.first_zero_row * (t.n_bytes / s.rows),
                         fmt::format("{} of {} rows are entirely zero (first: row {})", s.zero_rows, s.rows, s.first_zero_row)));
    } else if (s.n > 1 && s.finite == s.n && s.min == s.max && s.rows > 1) {
      out.push_back(Make(Severity::kNote, "values.constant", s.name, "", f.data_offset() + t.offset,
                         fmt::format("every value is {:g}", s.min)));
    }
  }
}

void CheckConsistency(const GgufFile& f, const std::vector<TensorStats>& stats, std::vector<Finding>& out) {
  std::map<std::string, std::vector<size_t>> groups;
  std::string role;
  for (size_t i = 0; i < stats.size(); ++i) {
    if (!stats[i].values_checked || stats[i].finite == 0) continue;
    if (SplitLayer(stats[i].name, nullptr, &role)) groups[role].push_back(i);
  }
  for (const auto& group : groups) {
    const std::vector<size_t>& members = group.second;  // (clang 14 can't capture structured bindings)
    if (members.size() < 4) continue;
    auto robust = [&](auto metric, const char* what) {
      std::vector<double> v;
      for (size_t i : members) v.push_back(metric(stats[i]));
      std::vector<double> sorted = v;
      std::sort(sorted.begin(), sorted.end());
      const double med = sorted[sorted.size() / 2];
      std::vector<double> dev;
      for (double x : v) dev.push_back(std::fabs(x - med));
      std::sort(dev.begin(), dev.end());
      const double sigma = std::max(1.4826 * dev[dev.size() / 2], 1e-6 * std::fabs(med) + 1e-12);
      for (size_t k = 0; k < members.size(); ++k) {
        const double z = (v[k] - med) / sigma;
        const double lo = std::min(std::fabs(v[k]), std::fabs(med)), hi = std::max(std::fabs(v[k]), std::fabs(med));
        const double ratio = lo > 0 ? hi / lo : INFINITY;
        const bool sign_flip = med != 0 && v[k] != 0 && (v[k] > 0) != (med > 0) && std::fabs(z) > kLayerZ;
        if (std::fabs(z) <= kLayerZ || (ratio < kLayerNoteRatio && !sign_flip)) continue;
        const TensorStats& s = stats[members[k]];
        const TensorInfo& t = f.tensors()[members[k]];
        const Severity sev = ratio >= kLayerEvidenceRatio ? Severity::kEvidence : Severity::kNote;
        out.push_back(Make(sev, "consistency.layer", s.name, "", f.data_offset() + t.offset,
                           fmt::format("{} {:.4g} vs {:.4g} for the median of its {} peers ({}{:.1f} robust sigmas, {:.1f}x){}",
                                       what, v[k], med, members.size(), z > 0 ? "+" : "", z, ratio,
                                       sev == Severity::kNote
                                           ? ": trained models differ this much between layers (Qwen2.5's layer-0 k "
                                             "bias is 30x its peers); compare with --against or a fingerprint before "
                                             "suspecting the file"
                                           : "")));
      }
    };
    robust([](const TensorStats& s) { return s.rms; }, "rms");
    if (f.tensors()[members[0]].n_dims == 1) robust([](const TensorStats& s) { return s.mean; }, "mean");
  }
}

Verdict VerdictOf(const std::vector<Finding>& findings) {
  Verdict v = Verdict::kIntact;
  for (const Finding& x : findings) {
    if (x.severity == Severity::kProof) return Verdict::kCorrupt;
    if (x.severity == Severity::kEvidence) v = Verdict::kSuspicious;
  }
  return v;
}

}  // namespace ggufscope::inspect
