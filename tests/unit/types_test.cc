#include "gguf/types.h"

#include <gtest/gtest.h>

#include <set>

namespace ggufscope::gguf {
namespace {

TEST(Types, TableCoversEveryIdWithRemovedOnesMarked) {
  const std::set<uint32_t> removed = {4, 5, 31, 32, 33, 36, 37, 38};
  for (uint32_t id = 0; id < kGgmlTypeCount; ++id) {
    const auto t = LookupType(id);
    ASSERT_TRUE(t.has_value()) << id;
    EXPECT_EQ(t->id, id);
    EXPECT_EQ(t->status == TypeStatus::kRemoved, removed.count(id) == 1) << id;
    if (t->status == TypeStatus::kActive) {
      EXPECT_GT(t->block_size, 0u) << t->name;
      EXPECT_GT(t->type_size, 0u) << t->name;
    }
  }
  EXPECT_FALSE(LookupType(kGgmlTypeCount).has_value());
  EXPECT_FALSE(LookupType(0xffffffffu).has_value());
}

TEST(Types, BytesForChecksBlocksAndOverflow) {
  EXPECT_EQ(BytesFor(GgmlType::kQ4_K, 512), 288u);
  EXPECT_EQ(BytesFor(GgmlType::kF32, 3), 12u);
  EXPECT_FALSE(BytesFor(GgmlType::kQ4_0, 33).has_value());
  EXPECT_FALSE(BytesFor(GgmlType::kF64, uint64_t{1} << 62).has_value());
}

TEST(Types, NamesRoundTrip) {
  for (uint32_t id = 0; id < kGgmlTypeCount; ++id) {
    const auto t = LookupType(id);
    if (t->status != TypeStatus::kActive) {
      EXPECT_FALSE(TypeFromName(t->name).has_value()) << t->name;
      continue;
    }
    ASSERT_EQ(TypeFromName(t->name), static_cast<GgmlType>(id)) << t->name;
  }
  EXPECT_EQ(TypeFromName("q4_k"), GgmlType::kQ4_K);
  EXPECT_FALSE(TypeFromName("Q4_K_M").has_value());  // a file type (mix), not a tensor type
}

}  // namespace
}  // namespace ggufscope::gguf
