// ggufscope: is it the model file, or is it my kernel?
// A thin executable over the libraries: parse arguments, call, print.
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <vector>

#include "cli/cmd_compare.h"
#include "cli/cmd_corrupt.h"
#include "cli/cmd_doctor.h"
#include "cli/cmd_fingerprint.h"
#include "cli/cmd_hash.h"
#include "cli/cmd_import.h"
#include "cli/cmd_perplexity.h"
#include "cli/cmd_run.h"
#include "cli/cmd_tokenize.h"
#include "cli/cmd_trace.h"
#include "cli/exit_codes.h"
#include "cuda_runtime/device.h"
#include "gguf/dequant.h"
#include "gguf/file.h"
#include "gguf/writer.h"
#include "inspect/audit.h"
#include "inspect/checkpoint_diff.h"
#include "inspect/diff.h"
#include "inspect/info.h"
#include "inspect/npy.h"

namespace ggufscope::cli {
namespace {

using gguf::GgufFile;

int ReportOpenError(const gguf::Error& e, const std::string& path, bool json) {
  if (json) fmt::print("{}\n", inspect::DumpJson(inspect::ErrorJson(e, path)));
  fmt::print(stderr, "ggufscope: {}: {}\n", path, e.Message());
  return kExitUnreadable;
}

int RunInfo(const std::string& path, bool json, bool full, bool no_tensors, bool no_metadata) {
  gguf::Result<GgufFile> f = GgufFile::Open(path);
  if (!f.ok()) return ReportOpenError(f.error(), path, json);
  inspect::InfoOptions opt;
  opt.full_arrays = full;
  opt.show_tensors = !no_tensors;
  opt.show_metadata = !no_metadata;
  if (json) {
    fmt::print("{}\n", inspect::DumpJson(inspect::InfoJson(*f, path, opt)));
  } else {
    fmt::print("{}", inspect::InfoText(*f, path, opt));
  }
  return kExitOk;
}

int RunTypes(bool json) {
  nlohmann::json arr = nlohmann::json::array();
  if (!json) fmt::print("{:>3}  {:<11} {:<8} {:>6} {:>6} {:>8}  {}\n", "id", "name", "status", "block", "bytes", "bits/w", "dequantize");
  for (uint32_t id = 0; id < gguf::kGgmlTypeCount; ++id) {
    const gguf::TypeTraits t = *gguf::LookupType(id);
    const bool active = t.status == gguf::TypeStatus::kActive;
    const bool dq = active && gguf::CanDequantize(static_cast<gguf::GgmlType>(id));
    const double bpw = active ? 8.0 * t.type_size / t.block_size : 0.0;
    if (json) {
      arr.push_back({{"id", id}, {"name", t.name}, {"status", active ? "active" : "removed"},
                     {"block_size", t.block_size}, {"type_size", t.type_size},
                     {"bits_per_weight", bpw}, {"dequantize", dq}});
    } else if (active) {
      fmt::print("{:>3}  {:<11} {:<8} {:>6} {:>6} {:>8.4f}  {}\n", id, t.name, "active", t.block_size, t.type_size, bpw,
                 dq ? "yes" : "no");
    } else {
      fmt::print("{:>3}  {:<11} {:<8}\n", id, t.name, "removed");
    }
  }
  if (json) fmt::print("{}\n", inspect::DumpJson(arr));
  return kExitOk;
}

// A file name for tensor i that cannot escape the output folder.
std::string NpyName(size_t i) { return fmt::format("{:05}.npy", i); }

int RunDequant(const std::string& path, const std::string& out_dir, const std::vector<std::string>& only,
               bool json) {
  gguf::Result<GgufFile> f = GgufFile::Open(path);
  if (!f.ok()) return ReportOpenError(f.error(), path, json);
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) {
    fmt::print(stderr, "ggufscope: cannot create {}: {}\n", out_dir, ec.message());
    return kExitIo;
  }
  const bool progress = isatty(STDERR_FILENO) != 0;
  nlohmann::json index = {{"file", path}, {"tensors", nlohmann::json::array()}};
  std::vector<float> buf;
  int rc = kExitOk;
  const auto& tensors = f->tensors();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const gguf::TensorInfo& t = tensors[i];
    if (!only.empty() && std::find(only.begin(), only.end(), t.name) == only.end()) continue;
    if (progress) fmt::print(stderr, "\r[{}/{}] {:<48}", i + 1, tensors.size(), t.name.substr(0, 48));
    buf.resize(t.n_elements);
    const gguf::Status s = gguf::Dequantize(t.type, f->TensorData(t), t.n_elements, buf);
    nlohmann::json e = {{"name", t.name}, {"type", gguf::TypeName(t.type)},
                        {"shape", std::vector<int64_t>(t.ne.begin(), t.ne.begin() + t.n_dims)}};
    if (!s.ok()) {
      e["error"] = s.error().Message();
      rc = kExitUnreadable;
      fmt::print(stderr, "ggufscope: tensor '{}': {}\n", t.name, s.error().Message());
    } else {
      std::vector<int64_t> shape(t.ne.rbegin() + (gguf::kMaxDims - t.n_dims), t.ne.rend());
      const std::string file = NpyName(i);
      const gguf::Status w = inspect::WriteNpyF32(out_dir + "/" + file, buf, shape);
      if (!w.ok()) {
        fmt::print(stderr, "ggufscope: {}\n", w.error().Message());
        return kExitIo;
      }
      double sum = 0, lo = std::numeric_limits<double>::infinity(), hi = -lo;
      uint64_t nan = 0, inf = 0;
      for (float v : buf) {
        if (std::isnan(v)) { ++nan; continue; }
        if (std::isinf(v)) { ++inf; continue; }
        sum += v;
        lo = std::min<double>(lo, v);
        hi = std::max<double>(hi, v);
      }
      const uint64_t finite = t.n_elements - nan - inf;
      e["file"] = file;
      e["nan"] = nan;
      e["inf"] = inf;
      if (finite > 0) {
        e["min"] = lo;
        e["max"] = hi;
        e["mean"] = sum / static_cast<double>(finite);
      }
    }
    index["tensors"].push_back(std::move(e));
  }
  if (progress) fmt::print(stderr, "\r{:<60}\r", "");
  const std::string index_path = out_dir + "/index.json";
  std::FILE* fp = std::fopen(index_path.c_str(), "wb");
  if (fp == nullptr) {
    fmt::print(stderr, "ggufscope: cannot write {}\n", index_path);
    return kExitIo;
  }
  const std::string text = inspect::DumpJson(index);
  const bool ok = std::fwrite(text.data(), 1, text.size(), fp) == text.size();
  if (std::fclose(fp) != 0 || !ok) return kExitIo;
  if (json) {
    fmt::print("{}\n", text);
  } else {
    fmt::print("{:<40} {:<8} {:>12} {:>12} {:>12} {:>6}\n", "tensor", "type", "min", "max", "mean", "nan+inf");
    for (const auto& e : index["tensors"]) {
      if (e.contains("error")) {
        fmt::print("{:<40} {:<8} ERROR {}\n", e["name"].get<std::string>(), e["type"].get<std::string>(),
                   e["error"].get<std::string>());
      } else if (e.contains("min")) {
        fmt::print("{:<40} {:<8} {:>12.6g} {:>12.6g} {:>12.6g} {:>6}\n", e["name"].get<std::string>(),
                   e["type"].get<std::string>(), e["min"].get<double>(), e["max"].get<double>(),
                   e["mean"].get<double>(), e["nan"].get<uint64_t>() + e["inf"].get<uint64_t>());
      }
    }
    fmt::print("wrote {} tensors as .npy (f32) and index.json to {}\n", index["tensors"].size(), out_dir);
  }
  return rc;
}

int RunRewrite(const std::string& in, const std::string& out, uint32_t alignment,
               const std::vector<std::string>& set_str, const std::vector<std::string>& remove, bool to_f32) {
  gguf::Result<GgufFile> f = GgufFile::Open(in);
  if (!f.ok()) return ReportOpenError(f.error(), in, false);
  gguf::Writer w = gguf::Writer::FromFile(*f);
  std::vector<std::vector<uint8_t>> owned;  // dequantized tensors the writer points into
  if (to_f32) {
    // Every tensor as F32 (exactly its dequantized values): a reference copy
    // that any engine runs without quantized arithmetic.
    w = gguf::Writer(f->version());
    for (const gguf::KeyValue& kv : f->metadata()) {
      if (kv.key != "general.file_type") (void)w.AddKv(kv.key, kv.value);
    }
    for (const gguf::TensorInfo& t : f->tensors()) {
      owned.emplace_back(t.n_elements * 4);
      const gguf::Status s = gguf::Dequantize(
          t.type, f->TensorData(t), t.n_elements,
          std::span<float>(reinterpret_cast<float*>(owned.back().data()), t.n_elements));
      const gguf::Status a = s.ok() ? w.AddTensor(t.name, gguf::GgmlType::kF32,
                                                  std::vector<int64_t>(t.ne.begin(), t.ne.begin() + t.n_dims), owned.back())
                                    : s;
      if (!a.ok()) {
        fmt::print(stderr, "ggufscope: {}\n", a.error().Message());
        return kExitUnreadable;
      }
    }
  }
  for (const std::string& key : remove) w.RemoveKv(key);
  for (const std::string& kv : set_str) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      fmt::print(stderr, "ggufscope: --set expects KEY=VALUE, got '{}'\n", kv);
      return kExitUsage;
    }
    (void)w.SetKv(kv.substr(0, eq), gguf::Value::Str(kv.substr(eq + 1)));
  }
  if (alignment != 0) {
    const gguf::Status s = w.SetKv("general.alignment", gguf::Value::U(gguf::ValueType::kUint32, alignment));
    if (!s.ok()) {
      fmt::print(stderr, "ggufscope: --alignment: {}\n", s.error().Message());
      return kExitUsage;
    }
  }
  const gguf::Status s = w.WriteFile(out);
  if (!s.ok()) {
    fmt::print(stderr, "ggufscope: {}\n", s.error().Message());
    return kExitIo;
  }
  fmt::print(stderr, "wrote {}\n", out);
  return kExitOk;
}

int RunAudit(const std::string& path, const inspect::AuditOptions& opt, bool json, bool all_tensors) {
  const inspect::AuditReport r = inspect::Audit(path, opt);
  if (json) {
    fmt::print("{}\n", inspect::DumpJson(inspect::AuditJson(r)));
  } else {
    fmt::print("{}", inspect::AuditText(r, all_tensors));
  }
  return inspect::ExitCodeOf(r.verdict);
}

int RunDiff(const std::string& pa, const std::string& pb, int threads, bool json, bool all) {
  gguf::Result<GgufFile> a = GgufFile::Open(pa);
  if (!a.ok()) return ReportOpenError(a.error(), pa, json);
  if (inspect::IsCheckpointPath(pb)) {
    inspect::CheckpointDiffOptions co;
    co.threads = threads;
    co.progress = true;
    gguf::Result<inspect::CheckpointDiffReport> r = inspect::DiffCheckpoint(*a, pb, co);
    if (!r.ok()) return ReportOpenError(r.error(), pb, json);
    fmt::print("{}", json ? inspect::DumpJson(inspect::CheckpointDiffJson(*r, pa)) + "\n"
                          : inspect::CheckpointDiffText(*r, pa, all));
    return r->flagged == 0 ? kExitOk : kExitSuspicious;
  }
  gguf::Result<GgufFile> b = GgufFile::Open(pb);
  if (!b.ok()) return ReportOpenError(b.error(), pb, json);
  const inspect::DiffReport r = inspect::DiffFiles(*a, *b, threads);
  if (json) {
    fmt::print("{}\n", inspect::DumpJson(inspect::DiffJson(r, pa, pb)));
  } else {
    fmt::print("{}", inspect::DiffText(r, pa, pb, all));
  }
  return r.flagged == 0 ? kExitOk : kExitSuspicious;
}

int RunDevices(bool json) {
  std::string why;
  const std::vector<cuda::DeviceInfo> devices = cuda::ListDevices(&why);
  if (json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& d : devices) {
      arr.push_back({{"index", d.index}, {"name", d.name}, {"compute_capability", fmt::format("{}.{}", d.cc_major, d.cc_minor)},
                     {"memory_bytes", d.total_memory}, {"sm_count", d.sm_count}});
    }
    fmt::print("{}\n", inspect::DumpJson({{"cuda_built", cuda::Built()}, {"devices", arr}, {"note", why}}));
  } else if (devices.empty()) {
    fmt::print("{}\n", why);
  } else {
    for (const auto& d : devices) {
      fmt::print("cuda:{}  {}  sm_{}{}  {} SMs  {:.1f} GiB\n", d.index, d.name, d.cc_major, d.cc_minor, d.sm_count,
                 static_cast<double>(d.total_memory) / (1u << 30));
    }
  }
  return kExitOk;
}

}  // namespace

int Main(int argc, char** argv) {
  CLI::App app{"ggufscope: is it the model file, or is it my kernel?"};
  app.set_version_flag("--version", "ggufscope 0.1.0");
  app.require_subcommand(1);

  std::string model, out, out_dir;
  bool json = false, full = false, no_tensors = false, no_metadata = false;
  std::vector<std::string> only, set_str, remove;
  uint32_t alignment = 0;
  bool to_f32 = false;

  CLI::App* info = app.add_subcommand("info", "Header, metadata, tensor table and architecture summary");
  info->add_option("model", model, "GGUF file")->required();
  info->add_flag("--json", json, "Machine-readable output (arrays summarised)");
  info->add_flag("--full", full, "With --json: every array element");
  info->add_flag("--no-tensors", no_tensors, "Leave out the tensor table");
  info->add_flag("--no-metadata", no_metadata, "Leave out the metadata listing");

  CLI::App* types = app.add_subcommand("types", "The ggml tensor type table (ids 0-42)");
  types->add_flag("--json", json, "Machine-readable output");

  CLI::App* dequant = app.add_subcommand("dequant", "Dequantize tensors to f32 .npy files with an index.json");
  dequant->add_option("model", model, "GGUF file")->required();
  dequant->add_option("-o,--out", out_dir, "Output folder")->required();
  dequant->add_option("-t,--tensor", only, "Only these tensors (repeatable)");
  dequant->add_flag("--json", json, "Print the index as JSON");

  CLI::App* rewrite = app.add_subcommand("rewrite", "Re-serialize a GGUF file, optionally editing metadata");
  rewrite->add_option("model", model, "Input GGUF file")->required();
  rewrite->add_option("output", out, "Output GGUF file")->required();
  rewrite->add_option("--alignment", alignment, "Set general.alignment (a power of two)");
  rewrite->add_option("--set", set_str, "KEY=VALUE: set a string key (repeatable)");
  rewrite->add_option("--remove", remove, "Remove a key (repeatable)");
  rewrite->add_flag("--to-f32", to_f32, "Store every tensor as F32 (its exact dequantized values)");

  inspect::AuditOptions audit_opt;
  bool all_tensors = false;
  CLI::App* audit = app.add_subcommand(
      "audit", "Is the file intact? Structure, metadata, values, consistency and provenance; exit 0 intact, "
               "1 suspicious, 2 corrupt, 3 unreadable");
  audit->add_option("model", model, "GGUF file")->required();
  audit->add_option("--expect-sha256", audit_opt.expect_sha256, "The file's published sha256 (hex)");
  audit->add_option("--threads", audit_opt.threads, "Worker threads (default: all cores)");
  audit->add_flag("--hashes", audit_opt.hashes, "Per-tensor and whole-model xxh64 and sha256 in the JSON report");
  audit->add_option("--manifest", audit_opt.manifest, "A llama-gguf-hash manifest (per-tensor hashes) to check against");
  audit->add_option("--fingerprint", audit_opt.fingerprint,
                    "Published per-tensor statistics of the trained checkpoint (a JSON file or a folder of them): "
                    "which tensors match, which depart");
  audit->add_option("--against", audit_opt.against, "A reference GGUF of the same model: every tensor must match it within its types' noise");
  audit->add_flag("--all-tensors", all_tensors, "Show every tensor's statistics, not only flagged ones");
  audit->add_flag("--json", json, "Machine-readable report");

  std::string model_b;
  int diff_threads = 0;
  CLI::App* diff = app.add_subcommand(
      "diff", "Two files of the same model, or a file and the Hugging Face checkpoint it comes from, tensor by "
              "tensor, judged against their quant types' noise (exit 0 consistent, 1 differences, 3 unreadable)");
  diff->add_option("a", model, "GGUF file under test")->required();
  diff->add_option("b", model_b,
                  "Reference: a GGUF file (e.g. the F16 or the publisher's), or a checkpoint (a folder of "
                  "*.safetensors with config.json, or one .safetensors file)")
      ->required();
  diff->add_option("--threads", diff_threads, "Worker threads (default: all cores)");
  diff->add_flag("--all", all_tensors, "List every tensor, not only the flagged ones");
  diff->add_flag("--json", json, "Machine-readable report");

  TokenizeCliOptions tokenize_opt;
  CLI::App* tokenize_cmd = AddTokenizeCommand(app, &tokenize_opt);
  PerplexityCliOptions ppl_opt;
  CLI::App* ppl_cmd = AddPerplexityCommand(app, &ppl_opt);

  RunCliOptions run_opt;
  CLI::App* run_cmd = AddRunCommand(app, &run_opt);

  ImportCliOptions import_opt;
  CLI::App* import_cmd = AddImportCommand(app, &import_opt);

  HashCliOptions hash_opt;
  CLI::App* hash = AddHashCommand(app, &hash_opt);

  CorruptCliOptions corrupt_opt;
  CLI::App* corrupt_cmd = AddCorruptCommand(app, &corrupt_opt);

  TraceCliOptions trace_opt;
  CLI::App* trace_cmd = AddTraceCommand(app, &trace_opt);
  CompareCliOptions compare_opt;
  CLI::App* compare_cmd = AddCompareCommand(app, &compare_opt);
  DoctorCliOptions doctor_opt;
  CLI::App* doctor_cmd = AddDoctorCommand(app, &doctor_opt);
  FingerprintCliOptions fingerprint_opt;
  CLI::App* fingerprint_cmd = AddFingerprintCommand(app, &fingerprint_opt);

  CLI::App* devices = app.add_subcommand("devices", "List CUDA devices");
  devices->add_flag("--json", json, "Machine-readable output");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }
  if (*info) return RunInfo(model, json, full, no_tensors, no_metadata);
  if (*types) return RunTypes(json);
  if (*dequant) return RunDequant(model, out_dir, only, json);
  if (*rewrite) return RunRewrite(model, out, alignment, set_str, remove, to_f32);
  if (*devices) return RunDevices(json);
  if (*corrupt_cmd) return RunCorrupt(corrupt_opt);
  if (*hash) return RunHash(hash_opt);
  if (*run_cmd) return RunRun(run_opt);
  if (*trace_cmd) return RunTrace(trace_opt);
  if (*compare_cmd) return RunCompare(compare_opt, *compare_cmd);
  if (*doctor_cmd) return RunDoctor(doctor_opt);
  if (*fingerprint_cmd) return RunFingerprint(fingerprint_opt);
  if (*import_cmd) return RunImport(import_opt);
  if (*tokenize_cmd) return RunTokenize(tokenize_opt);
  if (*ppl_cmd) return RunPerplexity(ppl_opt);
  if (*diff) return RunDiff(model, model_b, diff_threads, json, all_tensors);
  if (*audit) {
    audit_opt.progress = !json;
    return RunAudit(model, audit_opt, json, all_tensors);
  }
  return kExitUsage;
}

}  // namespace ggufscope::cli

int main(int argc, char** argv) { return ggufscope::cli::Main(argc, argv); }
