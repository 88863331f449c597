// CUDA device discovery and the context object every CUDA op will take: it
// owns the stream and the cuBLAS handle (no globals, so two models can live
// in one process for comparison). Without a GPU, ListDevices() says why.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace ggufscope::cuda {

struct DeviceInfo {
  int index = 0;
  std::string name;
  int cc_major = 0, cc_minor = 0;
  size_t total_memory = 0;
  int sm_count = 0;
};

// True if this build includes the CUDA runtime.
bool Built();

// The visible devices; empty with a reason in *why when there are none
// (no driver, no GPU, or a build without CUDA).
std::vector<DeviceInfo> ListDevices(std::string* why);

// Owns a CUDA stream and a cuBLAS handle on one device.
class Context {
 public:
  // nullptr with *why set if the device cannot be used.
  static std::unique_ptr<Context> Create(int device, std::string* why);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  int device() const { return device_; }
  void* stream() const { return stream_; }        // cudaStream_t
  void* cublas() const { return cublas_; }        // cublasHandle_t

 private:
  Context() = default;
  int device_ = 0;
  void* stream_ = nullptr;
  void* cublas_ = nullptr;
};

}  // namespace ggufscope::cuda
