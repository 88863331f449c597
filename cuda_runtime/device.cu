#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "cuda_runtime/check.cuh"
#include "cuda_runtime/device.h"
#include "cuda_runtime/env_switch.h"
#include "cuda_runtime/iq_grids.cuh"
#include "cuda_runtime/op_common.cuh"

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
  int cluster = 0, major = 0;
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&ctx->multiprocessors_, cudaDevAttrMultiProcessorCount, device);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&cluster, cudaDevAttrClusterLaunch, device);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  ctx->cluster_launch_ = cluster != 0;
  ctx->dependent_launch_supported_ = major >= 9;
  ctx->dependent_launch_ = ctx->dependent_launch_supported_ && EnvSwitchOn("GGUFSCOPE_PDL");
  // The kernels' per-device settings, before any op can be recorded into a
  // graph (mat-vec: the shared-memory opt-in, matvec.cu; attention: the
  // carveout, attention.cu).
  if (err == cudaSuccess) err = internal::PrepareKernels();
  if (err == cudaSuccess) err = internal::PrepareAttention();
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
  // The IQ codebooks, once per context (about 33 KiB).
  std::vector<uint8_t> grids(internal::IqGridBytes());
  internal::PackIqGrids(grids.data());
  err = cudaMalloc(&ctx->iq_grids_, grids.size());
  if (err == cudaSuccess) {
    err = cudaMemcpy(ctx->iq_grids_, grids.data(), grids.size(), cudaMemcpyHostToDevice);
  }
  if (err != cudaSuccess) {
    if (why) *why = std::string("CUDA: uploading the IQ grids: ") + cudaGetErrorString(err);
    return nullptr;
  }
  // Zeroed once: the table-fed launches copy whole entries, whose padding
  // (each digit plane's 32 bytes, the scale's 28) no launch writes or
  // reads for a value; zeroed, no copy ever moves uninitialized bytes
  // (compute-sanitizer initcheck flagged them, session 30).
  err = cudaMalloc(&ctx->x_table_, kXTableBytes);
  const auto stream = static_cast<cudaStream_t>(ctx->stream_);
  if (err == cudaSuccess) err = cudaMemsetAsync(ctx->x_table_, 0, kXTableBytes, stream);
  if (err == cudaSuccess) err = cudaStreamSynchronize(stream);
  if (err != cudaSuccess) {
    if (why) *why = std::string("CUDA: the mat-vec's x table: ") + cudaGetErrorString(err);
    return nullptr;
  }
  return ctx;
}

Status Context::Workspace(size_t bytes, void** ptr) {
  if (bytes > workspace_bytes_) {
    GGUFSCOPE_CUDA_TRY(cudaSetDevice(device_));
    // Ops queued earlier may still read the old buffer.
    GGUFSCOPE_CUDA_TRY(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_)));
    if (workspace_ != nullptr) {
      GGUFSCOPE_CUDA_TRY(cudaFree(workspace_));
      workspace_ = nullptr;
      workspace_bytes_ = 0;
    }
    // Round up to 1 MiB so a slowly growing request does not reallocate each time.
    const size_t rounded = (bytes + (size_t{1} << 20) - 1) & ~((size_t{1} << 20) - 1);
    GGUFSCOPE_CUDA_TRY(cudaMalloc(&workspace_, rounded));
    workspace_bytes_ = rounded;
  }
  *ptr = workspace_;
  return {};
}

Status Context::Synchronize() {
  GGUFSCOPE_CUDA_TRY(cudaSetDevice(device_));
  GGUFSCOPE_CUDA_TRY(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_)));
  return {};
}

// Destructors cannot report: a failure here is ignored (the process is
// tearing the context down anyway).
Context::~Context() {
  if (stream_ != nullptr) cudaStreamSynchronize(static_cast<cudaStream_t>(stream_));
  if (workspace_ != nullptr) cudaFree(workspace_);
  if (iq_grids_ != nullptr) cudaFree(iq_grids_);
  if (x_table_ != nullptr) cudaFree(x_table_);
  if (cublas_ != nullptr) cublasDestroy(static_cast<cublasHandle_t>(cublas_));
  if (stream_ != nullptr) cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
}

}  // namespace ggufscope::cuda
