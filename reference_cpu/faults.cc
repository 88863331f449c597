#include "reference_cpu/faults.h"

namespace ggufscope::reference {

const std::vector<FaultInfo>& AllFaults() {
  static const std::vector<FaultInfo> kAll = {
      {Fault::kDropQkvBias, "qkv-bias-dropped", "the q/k/v projection biases are not added", "Qcur"},
      {Fault::kNormRopeForNeox, "rope-pairing", "RoPE rotates the wrong element pairs (NORM for NEOX or the reverse)",
       "Qcur"},
      {Fault::kWrongRmsEps, "rms-eps", "RMSNorm uses eps 1e-2 instead of the model's", "attn_norm"},
      {Fault::kTransposedGemm, "transposed-gemm", "the attention output projection uses W instead of W^T",
       "attn_out"},
      {Fault::kF16Softmax, "f16-softmax", "attention scores exponentiated in f16 without subtracting the max (overflows once a score passes 11.09)",
       "kqv_out"},
      {Fault::kKvOffByOne, "kv-off-by-one", "keys and values are written one position late in the KV cache",
       "kqv_out"},
      {Fault::kWrongGqaMap, "gqa-map", "query head h reads KV head h % n_kv instead of h / group", "kqv_out"},
  };
  return kAll;
}

std::optional<Fault> FaultFromName(std::string_view name) {
  for (const FaultInfo& f : AllFaults()) {
    if (f.name == name) return f.fault;
  }
  return std::nullopt;
}

const FaultInfo& Describe(Fault f) {
  static const FaultInfo kNoneInfo{Fault::kNone, "none", "no injected fault", ""};
  for (const FaultInfo& i : AllFaults()) {
    if (i.fault == f) return i;
  }
  return kNoneInfo;
}

}  // namespace ggufscope::reference
