// Internal to cuda_runtime's .cu files: every CUDA and cuBLAS call goes
// through one of these macros, and every kernel launch is followed by
// GGUFSCOPE_CHECK_LAUNCH, so a failure becomes a Status naming the call,
// its error string and file:line.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "cuda_runtime/device.h"
#include "cuda_runtime/status.h"

namespace ggufscope::cuda::internal {

inline Status CudaFailure(const char* what, cudaError_t err, const char* file, int line) {
  return Status::Error(std::string(what) + " failed: " + cudaGetErrorName(err) + " (" +
                       cudaGetErrorString(err) + ") at " + file + ":" + std::to_string(line));
}

inline Status CublasFailure(const char* what, cublasStatus_t st, const char* file, int line) {
  return Status::Error(std::string(what) + " failed: " + cublasGetStatusName(st) + " (" +
                       cublasGetStatusString(st) + ") at " + file + ":" + std::to_string(line));
}

inline cudaStream_t StreamOf(const Context& ctx) { return static_cast<cudaStream_t>(ctx.stream()); }
inline cublasHandle_t CublasOf(const Context& ctx) {
  return static_cast<cublasHandle_t>(ctx.cublas());
}

}  // namespace ggufscope::cuda::internal

#define GGUFSCOPE_CUDA_TRY(expr)                                                                  \
  do {                                                                                            \
    const cudaError_t ggufscope_err_ = (expr);                                                    \
    if (ggufscope_err_ != cudaSuccess)                                                            \
      return ::ggufscope::cuda::internal::CudaFailure(#expr, ggufscope_err_, __FILE__, __LINE__); \
  } while (0)

#define GGUFSCOPE_CUBLAS_TRY(expr)                                                                 \
  do {                                                                                             \
    const cublasStatus_t ggufscope_st_ = (expr);                                                   \
    if (ggufscope_st_ != CUBLAS_STATUS_SUCCESS)                                                    \
      return ::ggufscope::cuda::internal::CublasFailure(#expr, ggufscope_st_, __FILE__, __LINE__); \
  } while (0)

// After every <<<>>>: a bad launch configuration is reported here; a fault
// inside the kernel surfaces at the next synchronizing call.
#define GGUFSCOPE_CHECK_LAUNCH(kernel_name)                                                     \
  do {                                                                                          \
    const cudaError_t ggufscope_err_ = cudaGetLastError();                                      \
    if (ggufscope_err_ != cudaSuccess)                                                          \
      return ::ggufscope::cuda::internal::CudaFailure("launch of " kernel_name, ggufscope_err_, \
                                                      __FILE__, __LINE__);                      \
  } while (0)

#define GGUFSCOPE_RETURN_IF_ERROR(expr)              \
  do {                                               \
    ::ggufscope::cuda::Status ggufscope_s_ = (expr); \
    if (!ggufscope_s_.ok()) return ggufscope_s_;     \
  } while (0)
