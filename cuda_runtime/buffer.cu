#include <string>
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

HostReadback::~HostReadback() { Release(); }

void HostReadback::Release() {
  if (!events_.empty() || host_ != nullptr) cudaSetDevice(device_);
  for (void* e : events_) cudaEventDestroy(static_cast<cudaEvent_t>(e));  // waits for nothing: pending records finish on their own
  events_.clear();
  if (host_ != nullptr) cudaFreeHost(host_);  // synchronizes the device: no copy still writes it
  host_ = nullptr;
}

// All slots or none: a failure part way leaves it empty (slots() == 0).
Status HostReadback::Create(const Context& ctx, int slots) {
  Release();
  if (slots <= 0 || slots > 64) return Status::Error("HostReadback: 1 to 64 slots");
  device_ = ctx.device();
  const auto fail = [this](cudaError_t err, const char* call) {
    Release();
    return internal::CudaFailure(call, err, __FILE__, __LINE__);
  };
  if (const cudaError_t err = cudaSetDevice(device_); err != cudaSuccess) return fail(err, "cudaSetDevice");
  void* host = nullptr;
  if (const cudaError_t err = cudaMallocHost(&host, static_cast<size_t>(slots) * sizeof(int32_t)); err != cudaSuccess) {
    return fail(err, "cudaMallocHost");
  }
  host_ = static_cast<int32_t*>(host);
  for (int i = 0; i < slots; ++i) {
    cudaEvent_t e = nullptr;
    if (const cudaError_t err = cudaEventCreateWithFlags(&e, cudaEventDisableTiming); err != cudaSuccess) {
      return fail(err, "cudaEventCreateWithFlags");
    }
    events_.push_back(e);
  }
  return {};
}

Status HostReadback::Queue(Context& ctx, int slot, const int32_t* device_src) {
  if (slot < 0 || slot >= slots()) return Status::Error("HostReadback::Queue: no slot " + std::to_string(slot));
  if (device_src == nullptr) return Status::Error("HostReadback::Queue: null source");
  GGUFSCOPE_CUDA_TRY(cudaSetDevice(ctx.device()));
  GGUFSCOPE_CUDA_TRY(cudaMemcpyAsync(host_ + slot, device_src, sizeof(int32_t), cudaMemcpyDeviceToHost,
                                     internal::StreamOf(ctx)));
  GGUFSCOPE_CUDA_TRY(cudaEventRecord(static_cast<cudaEvent_t>(events_[static_cast<size_t>(slot)]),
                                     internal::StreamOf(ctx)));
  return {};
}

Status HostReadback::Wait(int slot, int32_t* value) {
  if (slot < 0 || slot >= slots()) return Status::Error("HostReadback::Wait: no slot " + std::to_string(slot));
  GGUFSCOPE_CUDA_TRY(cudaEventSynchronize(static_cast<cudaEvent_t>(events_[static_cast<size_t>(slot)])));
  *value = host_[slot];
  return {};
}

}  // namespace ggufscope::cuda
