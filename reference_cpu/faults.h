// Kernel bugs that can be switched on in the CPU reference, so it can play
// "an engine under test" with a known defect: for ggufscope's self-tests,
// for demos of `compare` and `doctor`, and on CI (which has no GPU). Each is
// a bug real engines have shipped; docs/CHECKS.md lists where each one first
// shows in a trace.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ggufscope::reference {

enum class Fault {
  kNone,
  kDropQkvBias,      // q/k/v biases not added (Qwen2's biases are large: the seed case)
  kNormRopeForNeox,  // rotating adjacent pairs where the model pairs halves (or the reverse)
  kWrongRmsEps,      // RMSNorm with eps 1e-2 instead of the file's (a constant copied from elsewhere)
  kTransposedGemm,   // the attention output projection multiplied by W instead of W^T
  kF16Softmax,       // attention scores exponentiated in f16 without subtracting the max: overflows
  kKvOffByOne,       // new keys/values written one slot past their position in the KV cache
  kWrongGqaMap,      // query head h reads KV head h % n_kv instead of h / (n_head / n_kv)
};

struct FaultInfo {
  Fault fault;
  std::string_view name;         // as --inject takes it
  std::string_view description;  // one line, for reports
  std::string_view first_op;     // where it first shows (llama.cpp trace name, layer 0)
};

const std::vector<FaultInfo>& AllFaults();
std::optional<Fault> FaultFromName(std::string_view name);
const FaultInfo& Describe(Fault f);

}  // namespace ggufscope::reference
