// The CUDA runtime in a build without nvcc: it exists and says so.
#include "cuda_runtime/buffer.h"
#include "cuda_runtime/device.h"
#include "cuda_runtime/graph.h"

namespace ggufscope::cuda {
namespace {
constexpr const char* kNoCuda = "this ggufscope was built without CUDA";
}  // namespace

bool Built() { return false; }

std::vector<DeviceInfo> ListDevices(std::string* why) {
  if (why)
    *why =
        "this ggufscope was built without CUDA (configure with nvcc on PATH or "
        "-DGGUFSCOPE_CUDA=ON)";
  return {};
}

std::unique_ptr<Context> Context::Create(int, std::string* why) {
  if (why) *why = kNoCuda;
  return nullptr;
}

Context::~Context() = default;

Status Context::Workspace(size_t, void** ptr) {
  *ptr = nullptr;
  return Status::Error(kNoCuda);
}

Status Context::Synchronize() { return Status::Error(kNoCuda); }

DeviceBuffer::~DeviceBuffer() = default;
DeviceBuffer::DeviceBuffer(DeviceBuffer&&) noexcept = default;
DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&&) noexcept = default;
void DeviceBuffer::Release() {}
Status DeviceBuffer::Allocate(const Context&, size_t) { return Status::Error(kNoCuda); }

Status CopyToDevice(Context&, void*, const void*, size_t) { return Status::Error(kNoCuda); }
Status CopyToHost(Context&, void*, const void*, size_t) { return Status::Error(kNoCuda); }

HostReadback::~HostReadback() = default;
void HostReadback::Release() {}
Status HostReadback::Create(const Context&, int) { return Status::Error(kNoCuda); }
Status HostReadback::Queue(Context&, int, const int32_t*) { return Status::Error(kNoCuda); }
Status HostReadback::Wait(int, int32_t*) { return Status::Error(kNoCuda); }

StreamGraph::~StreamGraph() = default;
void StreamGraph::Reset() {}
Status StreamGraph::BeginCapture(Context&) { return Status::Error(kNoCuda); }
Status StreamGraph::EndCapture(Context&, bool) { return Status::Error(kNoCuda); }
Status StreamGraph::Launch(Context&) { return Status::Error(kNoCuda); }

}  // namespace ggufscope::cuda
