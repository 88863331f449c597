// ggufscope-bench: times the gguf/ library on real files and prints JSON.
//
//   ggufscope-bench [--min-time S] [--min-samples N] [--max-samples N]
//                   [--only open|dequant] [--type NAME] FILE...
//
// For each file it measures
//   open:    GgufFile::Open(path), i.e. mmap + parse + index (the metadata,
//            the tensor infos and the layout checks); the file is destroyed
//            (munmap, frees) outside the timed region;
//   dequant: for each tensor type in the file, Dequantize() of every tensor of
//            that type, one after the other, on this thread, into one output
//            buffer allocated (and faulted in) before timing starts.
// Each is reported as the median over samples; see Measure() for how samples
// are formed. bench/run_bench.py runs this next to gguf-py and compares.
//
// Why a plain timing loop and not Google Benchmark (which is installed): the
// cases are data-driven (files x the types each one holds), the comparison
// partner is a Python script that must apply the very same sampling rule to
// gguf-py, and the result has to be one JSON document that script can read.
// Google Benchmark would need runtime registration per (file, type), its own
// repetition flags to get a median, and its JSON schema (one entry per
// repetition plus aggregates) to be unpicked in Python; the loop below is 40
// lines whose rule is stated once and mirrored exactly in run_bench.py.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "gguf/dequant.h"
#include "gguf/file.h"
#include "gguf/types.h"

namespace ggufscope::bench {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// A measurement keeps sampling until it has run this long in total...
constexpr double kDefaultMinTimeS = 0.2;
// ...and has at least this many samples (the median of 5 ignores 2 outliers).
constexpr int kDefaultMinSamples = 5;
// Upper bound on samples, so a very fast case cannot take forever.
constexpr int kDefaultMaxSamples = 1000;
// One sample repeats the operation until it lasts at least this long, so that
// the clock's resolution and the cost of reading it (~20-50 ns) stay below
// 0.01% of what is measured.
constexpr double kMinSampleS = 0.5e-3;
// Cap on repetitions in one sample (each open keeps its GgufFile until the
// sample ends, so this also bounds memory).
constexpr int kMaxBatch = 4096;

struct Options {
  double min_time_s = kDefaultMinTimeS;
  int min_samples = kDefaultMinSamples;
  int max_samples = kDefaultMaxSamples;
  bool run_open = true;
  bool run_dequant = true;
  std::optional<gguf::GgmlType> only_type;
  std::vector<std::string> files;
};

struct Measurement {
  double median_s = 0;  // per operation
  double min_s = 0;
  double max_s = 0;
  int samples = 0;
  int batch = 0;        // operations per sample
  double total_s = 0;   // time spent in timed regions, warm-up excluded
};

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Keeps the compiler from proving a store or a value unused.
template <typename T>
inline void DoNotOptimize(const T* p) {
  asm volatile("" : : "g"(p) : "memory");
}

// Samples `run`, which performs the operation `batch` times and returns the
// seconds its timed region took (so set-up and tear-down stay outside it).
//
// Rule (run_bench.py applies the same one to gguf-py): one warm-up call,
// untimed unless it alone lasts >= min_time_s (then it is the first sample:
// a call that long is not distorted by cold caches, and repeating a
// 10-second gguf-py parse only to discard it would double the run time);
// batch = the repetitions that make a sample last >= kMinSampleS; then
// samples until both min_samples and min_time_s are reached (or max_samples).
// The result is the median per-operation time: unlike the mean it is not
// pulled up by the occasional sample that a page fault, an interrupt or the
// other process on a 2-core machine landed in, and unlike the minimum it is
// reproducible from run to run.
Measurement Measure(const std::function<double(int)>& run, const Options& opt) {
  const double warm = run(1);
  int batch = 1;
  if (warm < kMinSampleS) {
    batch = static_cast<int>(std::min<double>(kMaxBatch, std::ceil(kMinSampleS / std::max(warm, 1e-9))));
  }
  std::vector<double> per_op;
  double total = 0;
  if (warm >= opt.min_time_s) {
    per_op.push_back(warm);
    total = warm;
  }
  while ((static_cast<int>(per_op.size()) < opt.min_samples || total < opt.min_time_s) &&
         static_cast<int>(per_op.size()) < opt.max_samples) {
    const double s = run(batch);
    per_op.push_back(s / batch);
    total += s;
  }
  std::vector<double> sorted = per_op;
  std::sort(sorted.begin(), sorted.end());
  const size_t n = sorted.size();
  Measurement m;
  m.median_s = n % 2 == 1 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
  m.min_s = sorted.front();
  m.max_s = sorted.back();
  m.samples = static_cast<int>(n);
  m.batch = batch;
  m.total_s = total;
  return m;
}

json ToJson(const Measurement& m) {
  return json{{"median_s", m.median_s}, {"min_s", m.min_s},     {"max_s", m.max_s},
              {"samples", m.samples},   {"batch", m.batch},     {"total_s", m.total_s}};
}

// Times GgufFile::Open. Fills "error" instead when the file does not open.
json BenchOpen(const std::string& path, const Options& opt) {
  std::vector<gguf::Result<gguf::GgufFile>> opened;
  opened.reserve(kMaxBatch);
  std::optional<gguf::Error> error;
  uint64_t sink = 0;
  const auto run = [&](int batch) {
    opened.clear();  // destroys the previous sample's files, untimed
    const Clock::time_point t0 = Clock::now();
    for (int i = 0; i < batch; ++i) opened.push_back(gguf::GgufFile::Open(path));
    const Clock::time_point t1 = Clock::now();
    for (const auto& r : opened) {
      if (!r.ok()) {
        error = r.error();
      } else {
        sink += r->tensors().size() + r->metadata().size();
      }
    }
    DoNotOptimize(&sink);
    return Seconds(t1 - t0);
  };
  // A file that does not parse is reported once, not timed.
  run(1);
  if (error) return json{{"error", error->Message()}};
  json out = ToJson(Measure(run, opt));
  opened.clear();
  if (error) return json{{"error", error->Message()}};
  return out;
}

struct TypeGroup {
  std::vector<const gguf::TensorInfo*> tensors;
  uint64_t n_elements = 0;
  uint64_t n_bytes = 0;
  uint64_t max_elements = 0;
};

// Times Dequantize over every tensor of one type. `dst` is allocated and
// written once before timing, so neither malloc nor first-touch page faults
// are measured.
json BenchDequant(const gguf::GgufFile& file, gguf::GgmlType type, const TypeGroup& group,
                  const Options& opt) {
  std::vector<float> dst(group.max_elements, 1.0f);
  std::optional<gguf::Error> error;
  uint32_t sink = 0;
  const auto run = [&](int batch) {
    const Clock::time_point t0 = Clock::now();
    for (int rep = 0; rep < batch; ++rep) {
      for (const gguf::TensorInfo* t : group.tensors) {
        const gguf::Status s = gguf::Dequantize(type, file.TensorData(*t), t->n_elements, dst);
        if (!s.ok()) error = s.error();
        DoNotOptimize(dst.data());
        uint32_t bits;
        std::memcpy(&bits, &dst[t->n_elements - 1], sizeof bits);
        sink ^= bits;  // the last element depends on the whole call
      }
    }
    const Clock::time_point t1 = Clock::now();
    return Seconds(t1 - t0);
  };
  run(1);
  if (error) return json{{"type", gguf::TypeName(type)}, {"error", error->Message()}};
  const Measurement m = Measure(run, opt);
  // A checksum of one full pass (untimed): the same bits every run, so a
  // reader can see the kernel produced the same output as last time.
  double sum = 0;
  for (const gguf::TensorInfo* t : group.tensors) {
    (void)gguf::Dequantize(type, file.TensorData(*t), t->n_elements, dst);
    for (uint64_t i = 0; i < t->n_elements; ++i) {
      if (std::isfinite(dst[i])) sum += dst[i];
    }
  }
  json out = ToJson(m);
  out["type"] = gguf::TypeName(type);
  out["type_id"] = static_cast<uint32_t>(type);
  out["n_tensors"] = group.tensors.size();
  out["n_elements"] = group.n_elements;
  out["n_bytes"] = group.n_bytes;
  out["elements_per_s"] = static_cast<double>(group.n_elements) / m.median_s;
  out["bytes_per_s"] = static_cast<double>(group.n_bytes) / m.median_s;  // quantized input bytes
  out["output_bytes_per_s"] = 4.0 * static_cast<double>(group.n_elements) / m.median_s;
  out["checksum"] = sum;
  out["sink"] = sink;
  return out;
}

json BenchFile(const std::string& path, const Options& opt) {
  json out{{"path", path}};
  gguf::Result<gguf::GgufFile> file = gguf::GgufFile::Open(path);
  if (!file.ok()) {
    out["error"] = file.error().Message();
    return out;
  }
  out["file_size"] = file->file_size();
  out["n_kv"] = file->metadata().size();
  out["n_tensors"] = file->tensors().size();
  if (opt.run_open) out["open"] = BenchOpen(path, opt);
  if (!opt.run_dequant) return out;

  std::map<uint32_t, TypeGroup> groups;  // by type id, so the order is stable
  for (const gguf::TensorInfo& t : file->tensors()) {
    if (opt.only_type && t.type != *opt.only_type) continue;
    if (t.n_elements == 0) continue;
    TypeGroup& g = groups[static_cast<uint32_t>(t.type)];
    g.tensors.push_back(&t);
    g.n_elements += t.n_elements;
    g.n_bytes += t.n_bytes;
    g.max_elements = std::max(g.max_elements, t.n_elements);
  }
  json types = json::array();
  for (const auto& [id, group] : groups) {
    const auto type = static_cast<gguf::GgmlType>(id);
    fmt::print(stderr, "  {} {}: {} tensors, {} elements\n", path, gguf::TypeName(type),
               group.tensors.size(), group.n_elements);
    types.push_back(BenchDequant(*file, type, group, opt));
  }
  out["dequant"] = std::move(types);
  return out;
}

[[noreturn]] void Usage(const char* error) {
  if (error != nullptr) fmt::print(stderr, "ggufscope-bench: {}\n", error);
  fmt::print(stderr,
             "usage: ggufscope-bench [--min-time S] [--min-samples N] [--max-samples N]\n"
             "                       [--only open|dequant] [--type NAME] FILE...\n"
             "Times GgufFile::Open and single-threaded Dequantize per tensor type;\n"
             "prints JSON on stdout (see bench/README.md).\n");
  std::exit(error != nullptr ? 2 : 0);
}

Options ParseArgs(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) Usage(fmt::format("{} needs a value", a).c_str());
      return argv[++i];
    };
    try {
      if (a == "-h" || a == "--help") {
        Usage(nullptr);
      } else if (a == "--min-time") {
        opt.min_time_s = std::stod(value());
      } else if (a == "--min-samples") {
        opt.min_samples = std::max(1, std::stoi(value()));
      } else if (a == "--max-samples") {
        opt.max_samples = std::max(1, std::stoi(value()));
      } else if (a == "--only") {
        const std::string v = value();
        if (v != "open" && v != "dequant") Usage("--only takes open or dequant");
        opt.run_open = v == "open";
        opt.run_dequant = v == "dequant";
      } else if (a == "--type") {
        const std::string v = value();
        opt.only_type = gguf::TypeFromName(v);
        if (!opt.only_type) Usage(fmt::format("unknown type '{}'", v).c_str());
      } else if (a.starts_with("-")) {
        Usage(fmt::format("unknown option '{}'", a).c_str());
      } else {
        opt.files.emplace_back(a);
      }
    } catch (const std::exception&) {
      Usage(fmt::format("bad value for {}", a).c_str());
    }
  }
  if (opt.files.empty()) Usage("no files given");
  opt.max_samples = std::max(opt.max_samples, opt.min_samples);
  return opt;
}

int Main(int argc, char** argv) {
  const Options opt = ParseArgs(argc, argv);
  json files = json::array();
  bool all_ok = true;
  for (const std::string& path : opt.files) {
    fmt::print(stderr, "{}\n", path);
    json f = BenchFile(path, opt);
    all_ok = all_ok && !f.contains("error");
    files.push_back(std::move(f));
  }
  const json out{{"tool", "ggufscope-bench"},
                 {"clock", "std::chrono::steady_clock"},
                 {"threads", 1},
                 {"settings",
                  {{"min_time_s", opt.min_time_s},
                   {"min_samples", opt.min_samples},
                   {"max_samples", opt.max_samples},
                   {"min_sample_s", kMinSampleS},
                   {"max_batch", kMaxBatch}}},
                 {"files", std::move(files)}};
  fmt::print("{}\n", out.dump(1));
  return all_ok ? 0 : 1;
}

}  // namespace
}  // namespace ggufscope::bench

int main(int argc, char** argv) { return ggufscope::bench::Main(argc, argv); }
