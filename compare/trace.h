// A trace: the intermediate activations of one forward pass over a fixed
// list of tokens, one matrix per trace point, named as llama.cpp names its
// graph tensors ("inp_embd", "attn_norm-3", "result_output"). Any engine can
// produce one (docs/TRACE-FORMAT.md); `compare` lines two of them up.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ggufscope::compare {

// Statistics of a point over all its elements; min/max/mean/rms over the
// finite ones (0 when there are none, see n_finite()).
struct PointStats {
  uint64_t n = 0;
  uint64_t nan = 0, inf = 0;
  double min = 0, max = 0, mean = 0, rms = 0;

  uint64_t n_finite() const { return n - nan - inf; }
};

PointStats ComputeStats(std::span<const float> x);

struct TracePoint {
  std::string name;         // "attn_norm-3": op, '-', layer; whole-model points have no suffix
  int64_t rows = 0;         // n_tokens (positions)
  int64_t cols = 0;         // width: n_embd, n_head * head_dim, n_ff, n_vocab, ...
  std::vector<float> data;  // (rows, cols) row-major; empty for a stats-only point
  PointStats stats;

  bool has_data() const { return !data.empty() || rows * cols == 0; }
  std::span<const float> Row(int64_t r) const {
    return std::span<const float>(data).subspan(static_cast<size_t>(r * cols), static_cast<size_t>(cols));
  }
};

// Where the trace came from (the GGUF header keys of docs/TRACE-FORMAT.md).
// Fields a foreign trace does not give stay empty.
struct TraceHeader {
  uint32_t version = 0;      // trace.version (kTraceVersion for ours)
  std::string producer;      // trace.producer: "ggufscope 0.1.0", "my-engine 2.3"
  std::string backend;       // trace.backend: "cpu", "cuda", "llama.cpp", ...
  std::string precision;     // trace.precision: "f32", "f64", "f16", ...
  std::string model_path;    // trace.model.path
  std::optional<uint64_t> model_size;  // trace.model.size (bytes)
  std::string model_sha256;  // trace.model.sha256 (hex, of the whole file)
  std::string model_arch;    // trace.model.arch
  std::optional<std::vector<int32_t>> tokens;  // trace.tokens
  bool stats_only = false;   // trace.stats_only
};

struct Trace {
  std::string source;  // the path it was read from, for reports
  TraceHeader header;
  std::vector<TracePoint> points;  // in the order produced (graph order for ours)

  const TracePoint* Find(std::string_view name) const;
};

// --- point names ----------------------------------------------------------

// "attn_norm" + 3 -> "attn_norm-3"; layer < 0 -> "attn_norm".
std::string PointName(std::string_view op, int layer);

struct ParsedName {
  std::string op;  // "attn_norm"
  int layer = -1;  // -1 for whole-model points
};
// Splits a trailing "-<digits>" off as the layer ("ffn_up-12" -> ffn_up, 12).
ParsedName ParsePointName(std::string_view name);

}  // namespace ggufscope::compare
