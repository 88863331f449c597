#include "inspect/diff.h"

#include <fmt/format.h>

#include <atomic>
#include <cmath>
#include <map>
#include <thread>

#include "inspect/info.h"

namespace ggufscope::inspect {
namespace {

using gguf::GgufFile;
using gguf::TensorInfo;

std::string Printable(const gguf::Value& v) {
  InfoOptions opt;
  opt.array_head = 4;
  opt.max_string = 60;
  return ValueText(v, opt);
}

bool SameValue(const gguf::Value& x, const gguf::Value& y) {
  if (x.type != y.type) return false;
  if (x.type == gguf::ValueType::kArray) {
    return x.elem_type == y.elem_type && x.raw == y.raw && x.strings == y.strings && x.arrays.size() == y.arrays.size() &&
           std::equal(x.arrays.begin(), x.arrays.end(), y.arrays.begin(), SameValue);
  }
  if (x.type == gguf::ValueType::kFloat32 || x.type == gguf::ValueType::kFloat64) {
    return x.f == y.f || (std::isnan(x.f) && std::isnan(y.f));
  }
  return x.u == y.u && x.i == y.i && x.s == y.s;
}

}  // namespace

std::string_view DiffStatusName(DiffStatus s) {
  switch (s) {
    case DiffStatus::kIdentical: return "identical";
    case DiffStatus::kWithinNoise: return "within-noise";
    case DiffStatus::kFlagged: return "flagged";
    case DiffStatus::kOnlyInA: return "only-in-a";
    case DiffStatus::kOnlyInB: return "only-in-b";
    case DiffStatus::kShapeMismatch: return "shape-mismatch";
    case DiffStatus::kError: return "error";
  }
  return "?";
}

DiffReport DiffFiles(const GgufFile& a, const GgufFile& b, int threads) {
  DiffReport r;
  // Metadata: keys in either file whose values differ.
  for (const gguf::KeyValue& kv : a.metadata()) {
    const gguf::KeyValue* o = b.FindKey(kv.key);
    if (o == nullptr) {
      r.metadata.push_back({kv.key, Printable(kv.value), ""});
    } else if (!SameValue(kv.value, o->value)) {
      r.metadata.push_back({kv.key, Printable(kv.value), Printable(o->value)});
    }
  }
  for (const gguf::KeyValue& kv : b.metadata()) {
    if (a.FindKey(kv.key) == nullptr) r.metadata.push_back({kv.key, "", Printable(kv.value)});
  }
  // Tensors, in A's order, then those only in B.
  for (const TensorInfo& t : a.tensors()) {
    TensorDiffEntry e;
    e.name = t.name;
    e.type_a = t.type;
    e.offset_a = a.data_offset() + t.offset;
    const TensorInfo* o = b.FindTensor(t.name);
    if (o == nullptr) {
      e.status = DiffStatus::kOnlyInA;
    } else {
      e.type_b = o->type;
      bool same = t.n_dims == o->n_dims;
      for (uint32_t d = 0; d < gguf::kMaxDims; ++d) same = same && t.ne[d] == o->ne[d];
      if (!same) e.status = DiffStatus::kShapeMismatch;
    }
    r.tensors.push_back(std::move(e));
  }
  for (const TensorInfo& t : b.tensors()) {
    if (a.FindTensor(t.name) == nullptr) {
      TensorDiffEntry e;
      e.name = t.name;
      e.type_b = t.type;
      e.status = DiffStatus::kOnlyInB;
      r.tensors.push_back(std::move(e));
    }
  }
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i = next++; i < r.tensors.size(); i = next++) {
      TensorDiffEntry& e = r.tensors[i];
      if (e.status != DiffStatus::kIdentical) continue;  // missing or reshaped: nothing to compare
      gguf::Result<compare::TensorDiff> d = compare::DiffTensors(a, *a.FindTensor(e.name), b, *b.FindTensor(e.name));
      if (!d.ok()) {
        e.status = DiffStatus::kError;
        e.error = d.error().Message();
        continue;
      }
      e.d = *d;
      e.j = compare::Judge(e.d, e.type_a, e.type_b);
      e.status = !e.j.within ? DiffStatus::kFlagged : (e.d.bytes_identical ? DiffStatus::kIdentical : DiffStatus::kWithinNoise);
    }
  };
  const unsigned n = threads > 0 ? static_cast<unsigned>(threads) : std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < n; ++i) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();

  // A flagged tensor that matches another flagged tensor of B: swapped.
  std::vector<size_t> flagged;
  for (size_t i = 0; i < r.tensors.size(); ++i) {
    if (r.tensors[i].status == DiffStatus::kFlagged) flagged.push_back(i);
  }
  if (flagged.size() <= 16) {
    for (size_t i : flagged) {
      const TensorInfo& ta = *a.FindTensor(r.tensors[i].name);
      for (size_t k : flagged) {
        if (k == i) continue;
        const TensorInfo* tb = b.FindTensor(r.tensors[k].name);
        if (tb == nullptr || tb->type != ta.type || tb->n_elements != ta.n_elements) continue;
        gguf::Result<compare::TensorDiff> d = compare::DiffTensors(a, ta, b, *tb);
        if (d.ok() && compare::Judge(*d, ta.type, tb->type).within) {
          r.tensors[i].swapped_with = tb->name;
          r.tensors[i].j.reason += fmt::format("; its values are the reference's '{}': swapped", tb->name);
          break;
        }
      }
    }
  }
  for (const TensorDiffEntry& e : r.tensors) {
    r.flagged += e.status != DiffStatus::kIdentical && e.status != DiffStatus::kWithinNoise;
  }
  return r;
}

nlohmann::json DiffJson(const DiffReport& r, const std::string& pa, const std::string& pb) {
  auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(fmt::format("{}", v)); };
  nlohmann::json ts = nlohmann::json::array();
  for (const TensorDiffEntry& e : r.tensors) {
    nlohmann::json t = {{"name", e.name}, {"status", DiffStatusName(e.status)},
                        {"type_a", gguf::TypeName(e.type_a)}, {"type_b", gguf::TypeName(e.type_b)}};
    if (e.status == DiffStatus::kIdentical || e.status == DiffStatus::kWithinNoise || e.status == DiffStatus::kFlagged) {
      t.update({{"rel_l2", num(e.d.rel_l2)}, {"snr_db", num(e.d.snr_db)}, {"cosine", num(e.d.cosine)},
                {"max_abs", num(e.d.max_abs)}, {"argmax_abs", e.d.argmax_abs}, {"norm_ratio", num(e.d.norm_ratio)},
                {"expected_rel_l2", num(e.j.expected)}, {"worst_row", e.d.worst_row},
                {"worst_row_rel_l2", num(e.d.worst_row_rel_l2)}, {"bytes_identical", e.d.bytes_identical}});
    }
    if (!e.j.reason.empty()) t["reason"] = e.j.reason;
    if (!e.swapped_with.empty()) t["swapped_with"] = e.swapped_with;
    if (!e.error.empty()) t["error"] = e.error;
    if (!e.ref_name.empty()) t["reference_name"] = e.ref_name;
    if (!e.transform.empty()) t["transform"] = e.transform;
    ts.push_back(std::move(t));
  }
  nlohmann::json md = nlohmann::json::array();
  for (const MetaDiffEntry& m : r.metadata) md.push_back({{"key", m.key}, {"a", m.a}, {"b", m.b}});
  return {{"a", pa}, {"b", pb}, {"consistent", r.flagged == 0}, {"flagged", r.flagged}, {"tensors", ts}, {"metadata", md}};
}

std::string DiffTable(const std::vector<TensorDiffEntry>& tensors, bool all, std::string_view col_a,
                      std::string_view col_b) {
  std::string o;
  o += fmt::format("\n  {:<34} {:<7} {:<7} {:>10} {:>8} {:>8} {:>10} {:>10}  {}\n", "tensor", col_a, col_b,
                   "rel L2", "SNR dB", "cosine", "max |d|", "band", "status");
  size_t hidden = 0;
  for (const TensorDiffEntry& e : tensors) {
    const bool quiet = e.status == DiffStatus::kIdentical || e.status == DiffStatus::kWithinNoise;
    if (quiet && !all && tensors.size() > 40) {
      ++hidden;
      continue;
    }
    if (e.status == DiffStatus::kOnlyInA || e.status == DiffStatus::kOnlyInB || e.status == DiffStatus::kShapeMismatch ||
        e.status == DiffStatus::kError) {
      o += fmt::format("  {:<34} {:<7} {:<7} {}\n", e.name.substr(0, 34),
                       e.status == DiffStatus::kOnlyInB ? "-" : std::string(gguf::TypeName(e.type_a)),
                       e.status == DiffStatus::kOnlyInA ? "-" : std::string(gguf::TypeName(e.type_b)),
                       e.error.empty() ? std::string(DiffStatusName(e.status)) : e.error);
      continue;
    }
    o += fmt::format("  {:<34} {:<7} {:<7} {:>10.4g} {:>8.1f} {:>8.5f} {:>10.4g} {:>10.4g}  {}\n", e.name.substr(0, 34),
                     gguf::TypeName(e.type_a), gguf::TypeName(e.type_b), e.d.rel_l2, std::min(e.d.snr_db, 999.9),
                     e.d.cosine, e.d.max_abs, e.j.expected, DiffStatusName(e.status));
    if (e.status == DiffStatus::kFlagged) o += fmt::format("      {}\n", e.j.reason);
  }
  if (hidden > 0) o += fmt::format("  ({} tensors identical or within noise not shown; --all shows them)\n", hidden);
  return o;
}

std::string DiffText(const DiffReport& r, const std::string& pa, const std::string& pb, bool all) {
  std::string o = fmt::format("a: {}\nb: {} (reference)\n", pa, pb);
  if (!r.metadata.empty()) {
    o += fmt::format("\nmetadata differences ({})\n", r.metadata.size());
    for (const MetaDiffEntry& m : r.metadata) {
      o += fmt::format("  {:<40} a: {}\n  {:<40} b: {}\n", m.key, m.a.empty() ? "(absent)" : m.a, "",
                       m.b.empty() ? "(absent)" : m.b);
    }
  }
  o += DiffTable(r.tensors, all, "type a", "type b");
  o += fmt::format("\n{}: {} of {} tensors {}\n", r.flagged == 0 ? "consistent" : "DIFFERENT", r.flagged,
                   r.tensors.size(), r.flagged == 0 ? "differ beyond quantization noise" : "differ beyond quantization noise, are missing or reshaped");
  return o;
}

}  // namespace ggufscope::inspect
