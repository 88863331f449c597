// The faulty ops (fault_ops.h) in a build without nvcc: every one reports it.
#include "cuda_runtime/fault_ops.h"

namespace ggufscope::cuda {
namespace {
Status NoCuda() { return Status::Error("this ggufscope was built without CUDA"); }
}  // namespace

Status FaultyAttention(Context&, const float*, const float*, const float*, int64_t, const int32_t*, int64_t, int,
                       int, int, float, int, AttentionFaults, float*) {
  return NoCuda();
}
Status MatMulUntransposed(Context&, const float*, int64_t, const float*, int64_t, float*) { return NoCuda(); }
Status ZeroFill(Context&, float*, int64_t) { return NoCuda(); }

}  // namespace ggufscope::cuda
