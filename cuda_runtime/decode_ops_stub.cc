// The fused ops (decode_ops.h) in a build without nvcc: every one reports it.
#include "cuda_runtime/decode_ops.h"

namespace ggufscope::cuda {

Status QkvPost(Context&, float*, float*, const float*, const int32_t*, const int32_t*, int64_t, int,
               int, int, int, float, RopeMode, const float*, const float*, float, float*, float*,
               int64_t) {
  return Status::Error("this ggufscope was built without CUDA");
}

}  // namespace ggufscope::cuda
