// The CUDA ops in a build without nvcc: every one reports it.
#include "cuda_runtime/ops.h"

namespace ggufscope::cuda {
namespace {
Status NoCuda() { return Status::Error("this ggufscope was built without CUDA"); }
}  // namespace

bool CanDequantize(gguf::GgmlType) { return false; }
bool MatVecHasDirect(gguf::GgmlType) { return false; }

Status Dequantize(Context&, gguf::GgmlType, const void*, int64_t, float*) { return NoCuda(); }
Status DequantizeToF16(Context&, gguf::GgmlType, const void*, int64_t, uint16_t*) {
  return NoCuda();
}
Status GetRows(Context&, gguf::GgmlType, const void*, int64_t, int64_t, const int32_t*, int64_t,
               float*) {
  return NoCuda();
}
Status MatVec(Context&, gguf::GgmlType, const void*, int64_t, int64_t, const float*, float*,
              MatVecPath) {
  return NoCuda();
}
Status Gemm(Context&, gguf::GgmlType, const void*, int64_t, int64_t, const float*, int64_t, float*,
            GemmMath) {
  return NoCuda();
}
Status RmsNorm(Context&, const float*, const float*, int64_t, int64_t, float, float*) {
  return NoCuda();
}
Status RmsNormResidual(Context&, const float*, const float*, int64_t, int64_t, float, float*, float*) {
  return NoCuda();
}
Status RmsNormResidualNorm(Context&, const float*, const float*, int64_t, int64_t, float, float*, float*,
                           const float*, float*) {
  return NoCuda();
}
Status Rope(Context&, const float*, const int32_t*, int64_t, int, int, int, float, RopeMode,
            float*) {
  return NoCuda();
}
Status RopeTable(Context&, const int32_t*, int, float, float*) { return NoCuda(); }
Status Glu(Context&, GluKind, const float*, const float*, int64_t, float*) { return NoCuda(); }
Status Add(Context&, const float*, const float*, int64_t, int64_t, int64_t, float*) {
  return NoCuda();
}
size_t ArgMaxScratchBytes() { return 0; }
Status ArgMax(Context&, const float*, int64_t, void*, int32_t*, int32_t*, int32_t*) { return NoCuda(); }
Status Scale(Context&, const float*, int64_t, float, float*) { return NoCuda(); }
Status Softcap(Context&, const float*, int64_t, float, float*) { return NoCuda(); }
bool MatVecFoldsNorm(const Context&, gguf::GgmlType, int64_t, const void* const*, int, int64_t) { return false; }
bool MatVecFoldsRope(const Context&, gguf::GgmlType, int64_t, const void* const*, int, int64_t, bool) {
  return false;
}
Status MatVecParts(Context&, gguf::GgmlType, int64_t, const float*, const MatVecPart*, int, const NormFold*,
                   const RopeFold*) {
  return NoCuda();
}
Status MatVecResidual(Context&, gguf::GgmlType, const void*, int64_t, int64_t, const float*, const float*, float*,
                      float*) {
  return NoCuda();
}
Status MatVecGlu(Context&, gguf::GgmlType, const void*, const void*, int64_t, int64_t, const float*, GluKind, float*,
                 float*, float*, const NormFold*) {
  return NoCuda();
}
Status StoreRows(Context&, const float*, const int32_t*, int64_t, int64_t, float*, int64_t) {
  return NoCuda();
}
Status Attention(Context&, const float*, const float*, const float*, int64_t, const int32_t*,
                 int64_t, int, int, int, float, int, float*) {
  return NoCuda();
}

}  // namespace ggufscope::cuda
