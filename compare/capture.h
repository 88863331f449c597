// Runs an engine over a list of tokens and records its trace: the CPU
// reference (reference_cpu/) or the CUDA forward pass (cuda_runtime/), both
// through the reference's TraceSink contract. A separate library
// (ggufscope_capture) so that ggufscope_compare stays free of the engines.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "compare/trace.h"
#include "gguf/error.h"
#include "gguf/file.h"
#include "reference_cpu/forward.h"
#include "reference_cpu/model.h"

namespace ggufscope::compare {

enum class Backend { kCpu, kCuda };
std::optional<Backend> BackendFromName(std::string_view name);  // "cpu", "cuda"
std::string_view BackendName(Backend b);

struct CaptureOptions {
  Backend backend = Backend::kCpu;
  reference::Precision precision = reference::Precision::kF32;  // the CPU reference's arithmetic
  int device = 0;            // CUDA device index
  std::string points_regex;  // keep only points whose name matches (search); empty: all
  bool stats_only = false;   // keep statistics, drop the values
  bool hash_model = true;    // sha256 of the whole model file in the header
  std::string producer;      // "ggufscope 0.1.0"
  // Run the engine with a known bug (reference_cpu/faults.h), as an "engine
  // under test" for self-tests and demos: every fault, on the CPU and on
  // CUDA (cuda::CanInject).
  reference::Fault inject = reference::Fault::kNone;
};

// One prefill of `tokens` at positions 0.. with logits for every position
// (so result_norm and result_output have a row per token). `file` is the
// file `model` was loaded from and `model_path` its path, for the header.
// Errors: kInvalidArgument for token ids out of range, an invalid
// points_regex or f64 on CUDA; cuda::IsDeviceError ones when the CUDA
// backend cannot run (no device, out of memory, a build without CUDA).
gguf::Result<Trace> CaptureTrace(const gguf::GgufFile& file, const std::string& model_path,
                                 const reference::Model& model, std::span<const int32_t> tokens,
                                 const CaptureOptions& opt);

// The model's own tokenization of `text` (BOS as the model asks, special
// tokens parsed), as `run -p` does.
gguf::Result<std::vector<int32_t>> EncodePrompt(const gguf::GgufFile& file, const std::string& text);

}  // namespace ggufscope::compare
