#include "compare/capture.h"

#include <fmt/format.h>

#include <memory>
#include <regex>

#include "compare/trace_io.h"
#include "cuda_runtime/device.h"
#include "cuda_runtime/forward.h"
#include "inspect/hash.h"
#include "reference_cpu/tokenizer.h"

namespace ggufscope::compare {
namespace {

// Records every captured intermediate as a trace point.
class Recorder final : public reference::TraceSink {
 public:
  Recorder(Trace* out, const std::optional<std::regex>* filter, bool stats_only)
      : out_(out), filter_(filter), stats_only_(stats_only) {}

  void Capture(std::string_view name, int layer, const reference::RowMatrix& x) override {
    std::string point = PointName(name, layer);
    if (filter_->has_value() && !std::regex_search(point, **filter_)) return;
    TracePoint p;
    p.name = std::move(point);
    p.rows = x.rows();
    p.cols = x.cols();
    const std::span<const float> values(x.data(), static_cast<size_t>(x.size()));
    p.stats = ComputeStats(values);
    if (!stats_only_) p.data.assign(values.begin(), values.end());
    out_->points.push_back(std::move(p));
  }

 private:
  Trace* out_;
  const std::optional<std::regex>* filter_;
  bool stats_only_;
};

}  // namespace

std::optional<Backend> BackendFromName(std::string_view name) {
  if (name == "cpu") return Backend::kCpu;
  if (name == "cuda") return Backend::kCuda;
  return std::nullopt;
}

std::string_view BackendName(Backend b) { return b == Backend::kCpu ? "cpu" : "cuda"; }

gguf::Result<Trace> CaptureTrace(const gguf::GgufFile& file, const std::string& model_path,
                                 const reference::Model& model, std::span<const int32_t> tokens,
                                 const CaptureOptions& opt) {
  std::optional<std::regex> filter;
  if (!opt.points_regex.empty()) {
    try {
      filter.emplace(opt.points_regex, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      return gguf::Error{gguf::ErrorCode::kInvalidArgument, "--points", gguf::Error::kNoOffset, "an ECMAScript regular expression",
                         fmt::format("'{}' ({})", opt.points_regex, e.what())};
    }
  }
  Trace t;
  t.source = fmt::format("{} on {}", BackendName(opt.backend), model_path);
  TraceHeader& h = t.header;
  h.version = kTraceVersion;
  h.producer = opt.producer;
  h.backend = std::string(BackendName(opt.backend));
  if (opt.backend == Backend::kCuda && opt.precision == reference::Precision::kF64) {
    return gguf::Error{gguf::ErrorCode::kInvalidArgument, "precision", gguf::Error::kNoOffset,
                       "f32 with the cuda backend (f64 is the CPU reference's)", "f64"};
  }
  h.precision = opt.backend == Backend::kCpu && opt.precision == reference::Precision::kF64 ? "f64" : "f32";
  h.model_path = model_path;
  h.model_size = file.file_size();
  h.model_arch = model.arch;
  h.tokens = std::vector<int32_t>(tokens.begin(), tokens.end());
  h.stats_only = opt.stats_only;
  if (opt.hash_model) {
    gguf::Result<std::string> sha = inspect::DigestHex(inspect::HashType::kSha256, file.bytes());
    if (!sha.ok()) return sha.error();
    h.model_sha256 = *sha;
  }
  if (tokens.empty()) {
    return gguf::Error{gguf::ErrorCode::kInvalidArgument, "tokens", gguf::Error::kNoOffset, "at least one token id", "none"};
  }
  Recorder rec(&t, &filter, opt.stats_only);
  const int n = static_cast<int>(tokens.size());
  if (opt.backend == Backend::kCpu) {
    reference::Session s(model, n, opt.precision);
    s.InjectFault(opt.inject);
    gguf::Result<reference::RowMatrix> logits = s.Eval(tokens, true, &rec);
    if (!logits.ok()) return logits.error();
    return t;
  }
  std::string why;
  const std::vector<cuda::DeviceInfo> devices = cuda::ListDevices(&why);
  if (devices.empty()) return cuda::DeviceError(cuda::Status::Error(why));
  if (opt.device < 0 || static_cast<size_t>(opt.device) >= devices.size()) {
    return cuda::DeviceError(
        cuda::Status::Error(fmt::format("device {}: {} CUDA device(s) visible", opt.device, devices.size())));
  }
  std::unique_ptr<cuda::Context> ctx = cuda::Context::Create(opt.device, &why);
  if (ctx == nullptr) return cuda::DeviceError(cuda::Status::Error(why));
  gguf::Result<std::unique_ptr<cuda::Model>> dm = cuda::Model::Upload(*ctx, model);
  if (!dm.ok()) return dm.error();
  cuda::SessionOptions so;
  so.inject = opt.inject;
  gguf::Result<std::unique_ptr<cuda::Session>> s = cuda::Session::Create(**dm, n, so);
  if (!s.ok()) return s.error();
  gguf::Result<reference::RowMatrix> logits = (*s)->Eval(tokens, true, &rec);
  if (!logits.ok()) return logits.error();
  return t;
}

gguf::Result<std::vector<int32_t>> EncodePrompt(const gguf::GgufFile& file, const std::string& text) {
  gguf::Result<std::unique_ptr<reference::Tokenizer>> tok = reference::Tokenizer::FromGguf(file);
  if (!tok.ok()) return tok.error();
  return (*tok)->Encode(text, (*tok)->add_bos(), true);
}

}  // namespace ggufscope::compare
