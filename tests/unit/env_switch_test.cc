// The benchmarking switches' parser (cuda_runtime/env_switch.h): an unset
// variable gives the default, "0" is the only off value, and a malformed or
// out-of-range integer falls back instead of selecting a path.
#include "cuda_runtime/env_switch.h"

#include <gtest/gtest.h>
#include <stdlib.h>

namespace ggufscope::cuda {
namespace {

constexpr const char* kName = "GGUFSCOPE_ENV_SWITCH_TEST";

class EnvSwitch : public ::testing::Test {
 protected:
  void SetUp() override { unsetenv(kName); }
  void TearDown() override { unsetenv(kName); }
  static void Set(const char* v) { ASSERT_EQ(setenv(kName, v, 1), 0); }
};

TEST_F(EnvSwitch, OnUnlessExactlyZero) {
  EXPECT_TRUE(EnvSwitchOn(kName));  // unset
  for (const char* on : {"", "1", "00", " 0", "0 ", "no", "false"}) {
    Set(on);
    EXPECT_TRUE(EnvSwitchOn(kName)) << '"' << on << '"';
  }
  Set("0");
  EXPECT_FALSE(EnvSwitchOn(kName));
}

TEST_F(EnvSwitch, StringOrFallback) {
  EXPECT_EQ(EnvSwitchString(kName), "");
  EXPECT_EQ(EnvSwitchString(kName, "both"), "both");
  Set("q6k");
  EXPECT_EQ(EnvSwitchString(kName, "both"), "q6k");
  Set("");
  EXPECT_EQ(EnvSwitchString(kName, "both"), "");  // set, though empty
}

TEST_F(EnvSwitch, IntInRangeOrFallback) {
  EXPECT_EQ(EnvSwitchInt(kName, 32, 1, 1000), 32);  // unset
  Set("14");
  EXPECT_EQ(EnvSwitchInt(kName, 32, 1, 1000), 14);
  Set("  7 ");
  EXPECT_EQ(EnvSwitchInt(kName, 32, 1, 1000), 7);
  Set("1000");
  EXPECT_EQ(EnvSwitchInt(kName, 32, 1, 1000), 1000);  // bounds are inclusive
  Set("-5");
  EXPECT_EQ(EnvSwitchInt(kName, 32, -5, 5), -5);
  // Out of range, malformed, empty or overflowing: the default, never 0 or a prefix.
  for (const char* bad : {"0", "1001", "", " ", "abc", "3x", "1.5", "0x10", "99999999999999999999999"}) {
    Set(bad);
    EXPECT_EQ(EnvSwitchInt(kName, 32, 1, 1000), 32) << '"' << bad << '"';
  }
}

}  // namespace
}  // namespace ggufscope::cuda
