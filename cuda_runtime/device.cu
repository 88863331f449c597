#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "cuda_runtime/device.h"

namespace ggufscope::cuda {

bool Built() { return true; }

std::vector<DeviceInfo> ListDevices(std::string* why) {
  std::vector<DeviceInfo> out;
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    if (why) *why = std::string("no usable CUDA device: ") + cudaGetErrorString(err);
    return out;
  }
  if (n == 0 && why) *why = "no CUDA device visible";
  for (int i = 0; i < n; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    out.push_back({i, p.name, p.major, p.minor, p.totalGlobalMem, p.multiProcessorCount});
  }
  return out;
}

std::unique_ptr<Context> Context::Create(int device, std::string* why) {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err == cudaSuccess && (device < 0 || device >= n)) {
    if (why) *why = "no CUDA device " + std::to_string(device) + " (" + std::to_string(n) + " visible)";
    return nullptr;
  }
  std::unique_ptr<Context> ctx(new Context());
  ctx->device_ = device;
  if (err == cudaSuccess) err = cudaSetDevice(device);
  if (err == cudaSuccess) {
    cudaStream_t s = nullptr;
    err = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    ctx->stream_ = s;
  }
  if (err != cudaSuccess) {
    if (why) *why = std::string("CUDA: ") + cudaGetErrorString(err);
    return nullptr;
  }
  cublasHandle_t h = nullptr;
  const cublasStatus_t st = cublasCreate(&h);
  if (st != CUBLAS_STATUS_SUCCESS) {
    if (why) *why = std::string("cuBLAS: ") + cublasGetStatusString(st);
    return nullptr;
  }
  ctx->cublas_ = h;
  if (cublasSetStream(h, static_cast<cudaStream_t>(ctx->stream_)) != CUBLAS_STATUS_SUCCESS) {
    if (why) *why = "cuBLAS: cannot bind the stream";
    return nullptr;
  }
  return ctx;
}

Context::~Context() {
  if (cublas_ != nullptr) cublasDestroy(static_cast<cublasHandle_t>(cublas_));
  if (stream_ != nullptr) cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
}

}  // namespace ggufscope::cuda
