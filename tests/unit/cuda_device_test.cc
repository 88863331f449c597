// Runs on the GPU machine; elsewhere (CI has no GPU) it skips and says why.
#include <gtest/gtest.h>

#include "cuda_runtime/device.h"

namespace ggufscope::cuda {
namespace {

TEST(Cuda, ContextOwnsStreamAndCublasHandle) {
  std::string why;
  const std::vector<DeviceInfo> devices = ListDevices(&why);
  if (devices.empty()) GTEST_SKIP() << "no GPU: " << why;
  for (const DeviceInfo& d : devices) {
    EXPECT_FALSE(d.name.empty());
    EXPECT_GT(d.total_memory, 0u);
    EXPECT_GE(d.cc_major, 7);
  }
  std::unique_ptr<Context> ctx = Context::Create(0, &why);
  ASSERT_NE(ctx, nullptr) << why;
  EXPECT_NE(ctx->stream(), nullptr);
  EXPECT_NE(ctx->cublas(), nullptr);
}

TEST(Cuda, BadDeviceIndexIsAnErrorNotACrash) {
  std::string why;
  if (ListDevices(&why).empty()) GTEST_SKIP() << "no GPU: " << why;
  EXPECT_EQ(Context::Create(1000, &why), nullptr);
  EXPECT_FALSE(why.empty());
}

}  // namespace
}  // namespace ggufscope::cuda
