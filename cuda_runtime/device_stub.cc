// The CUDA runtime in a build without nvcc: it exists and says so.
#include "cuda_runtime/device.h"

namespace ggufscope::cuda {

bool Built() { return false; }

std::vector<DeviceInfo> ListDevices(std::string* why) {
  if (why) *why = "this ggufscope was built without CUDA (configure with nvcc on PATH or -DGGUFSCOPE_CUDA=ON)";
  return {};
}

std::unique_ptr<Context> Context::Create(int, std::string* why) {
  if (why) *why = "this ggufscope was built without CUDA";
  return nullptr;
}

Context::~Context() = default;

}  // namespace ggufscope::cuda
