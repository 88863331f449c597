#include <utility>

#include "cuda_runtime/buffer.h"
#include "cuda_runtime/check.cuh"

namespace ggufscope::cuda {

DeviceBuffer::~DeviceBuffer() { Release(); }

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

// cudaFree waits for the device, so no queued op still reads the block.
void DeviceBuffer::Release() {
  if (data_ != nullptr) cudaFree(data_);
  data_ = nullptr;
  bytes_ = 0;
}

Status DeviceBuffer::Allocate(const Context& ctx, size_t bytes) {
  Release();
  if (bytes == 0) return {};
  GGUFSCOPE_CUDA_TRY(cudaSetDevice(ctx.device()));
  GGUFSCOPE_CUDA_TRY(cudaMalloc(&data_, bytes));
  bytes_ = bytes;
  return {};
}

Status CopyToDevice(Context& ctx, void* device_dst, const void* host_src, size_t bytes) {
  if (bytes == 0) return {};
  if (device_dst == nullptr || host_src == nullptr)
    return Status::Error("CopyToDevice: null pointer");
  GGUFSCOPE_CUDA_TRY(cudaSetDevice(ctx.device()));
  GGUFSCOPE_CUDA_TRY(cudaMemcpyAsync(device_dst, host_src, bytes, cudaMemcpyHostToDevice,
                                     internal::StreamOf(ctx)));
  GGUFSCOPE_CUDA_TRY(cudaStreamSynchronize(internal::StreamOf(ctx)));
  return {};
}

Status CopyToHost(Context& ctx, void* host_dst, const void* device_src, size_t bytes) {
  if (bytes == 0) return {};
  if (host_dst == nullptr || device_src == nullptr)
    return Status::Error("CopyToHost: null pointer");
  GGUFSCOPE_CUDA_TRY(cudaSetDevice(ctx.device()));
  GGUFSCOPE_CUDA_TRY(cudaMemcpyAsync(host_dst, device_src, bytes, cudaMemcpyDeviceToHost,
                                     internal::StreamOf(ctx)));
  GGUFSCOPE_CUDA_TRY(cudaStreamSynchronize(internal::StreamOf(ctx)));
  return {};
}

}  // namespace ggufscope::cuda
