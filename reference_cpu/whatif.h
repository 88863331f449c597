// Counterfactual repair: change one tensor of a loaded model in memory (the
// file is never touched) the way a worried user would "fix" it, so its
// effect on the reference's perplexity can be measured. A repair that makes
// the model markedly better is strong evidence the tensor was damaged; one
// that makes it worse says the oddity was trained (the seed team's rescaled
// Qwen2.5 norms made its output worse).
#pragma once

#include <string>
#include <string_view>

#include "gguf/error.h"
#include "reference_cpu/model.h"

namespace ggufscope::reference {

struct Repair {
  enum class Kind { kScale, kNegate, kClamp } kind = Kind::kScale;
  double factor = 1.0;  // kScale: multiply every value
  double limit = 0.0;   // kClamp: clamp to [-limit, limit] (NaN -> 0)

  std::string Describe() const;
};

// Applies `r` to the tensor with GGUF name `tensor` ("blk.0.attn_norm.weight",
// "output_norm.weight", "token_embd.weight", ...). Quantized matrices become
// f32 copies owned by the model. kInvalidArgument for a name the model does not hold.
gguf::Status ApplyRepair(Model& m, std::string_view tensor, const Repair& r);

}  // namespace ggufscope::reference
