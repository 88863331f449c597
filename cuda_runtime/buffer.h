// Device memory owned by RAII, and blocking copies through a context's
// stream. Host-facing: no CUDA types.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "cuda_runtime/device.h"
#include "cuda_runtime/status.h"

namespace ggufscope::cuda {

// A cudaMalloc'ed block freed by the destructor. Empty until Allocate.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  // Frees what it held, then allocates `bytes` (256-byte aligned) on ctx's
  // device. Zero bytes leaves it empty.
  Status Allocate(const Context& ctx, size_t bytes);

  void* data() const { return data_; }
  size_t size() const { return bytes_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }

 private:
  void Release();
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// Copies `bytes` host -> device or device -> host on ctx's stream (after the
// ops already queued there) and waits for it.
Status CopyToDevice(Context& ctx, void* device_dst, const void* host_src, size_t bytes);
Status CopyToHost(Context& ctx, void* host_dst, const void* device_src, size_t bytes);

// Pinned host slots for one int32 each, with an event apiece: Queue copies
// a device int32 into a slot after the work queued so far on ctx's stream
// and returns at once; Wait blocks until that copy is done and gives the
// value. A decode loop reads step i's token this way while step i + 1
// already runs (Session::DecodeGreedy). Empty until Create.
class HostReadback {
 public:
  HostReadback() = default;
  ~HostReadback();
  HostReadback(const HostReadback&) = delete;
  HostReadback& operator=(const HostReadback&) = delete;

  Status Create(const Context& ctx, int slots);
  int slots() const { return static_cast<int>(events_.size()); }
  Status Queue(Context& ctx, int slot, const int32_t* device_src);
  Status Wait(int slot, int32_t* value);

 private:
  void Release();
  int32_t* host_ = nullptr;
  std::vector<void*> events_;  // cudaEvent_t
  int device_ = 0;
};

}  // namespace ggufscope::cuda
