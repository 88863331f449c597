// cuda_runtime/rope_rows.h: the order in which a RopeFold's rotated parts
// are read and emitted (the tensor-core kernels hold two adjacent virtual
// rows per emitting thread, so each such pair must be one rotation pair).
// Checked on the CPU (the header is shared with the device) against ggml's
// pairing, written out here as llama.cpp's ggml_rope defines it: NEOX
// rotates (i, i + n_rot/2), NORM (2i, 2i + 1), for i < n_rot/2 of every
// head; dimensions n_rot.. are not rotated.
#include "cuda_runtime/rope_rows.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ggufscope::cuda {
namespace {

struct Shape {
  int head_dim, n_rot;
};

TEST(RopeRows, EachHeadIsPermutedIntoRotationPairs) {
  constexpr int kHeads = 3;
  for (const bool neox : {true, false}) {
    for (const Shape s : {Shape{128, 128}, Shape{128, 64}, Shape{64, 32}, Shape{80, 80}, Shape{80, 16}, Shape{2, 2},
                          Shape{256, 2}}) {
      SCOPED_TRACE(std::string(neox ? "NEOX" : "NORM") + " head_dim " + std::to_string(s.head_dim) + " n_rot " +
                   std::to_string(s.n_rot));
      const int64_t rows = int64_t{kHeads} * s.head_dim;
      std::vector<int> hits(static_cast<size_t>(rows), 0);
      for (int64_t v = 0; v < rows; ++v) {
        const int64_t r = RopeRowOf(v, s.head_dim, s.n_rot, neox);
        ASSERT_GE(r, 0);
        ASSERT_LT(r, rows);
        EXPECT_EQ(r / s.head_dim, v / s.head_dim) << "virtual row " << v << " left its head";
        ++hits[static_cast<size_t>(r)];
      }
      for (int64_t r = 0; r < rows; ++r) EXPECT_EQ(hits[static_cast<size_t>(r)], 1) << "row " << r;
      for (int h = 0; h < kHeads; ++h) {
        const int64_t base = int64_t{h} * s.head_dim;
        for (int m = 0; m < s.n_rot / 2; ++m) {
          const int64_t a = base + (neox ? m : 2 * m), b = base + (neox ? m + s.n_rot / 2 : 2 * m + 1);
          EXPECT_EQ(RopeRowOf(base + 2 * m, s.head_dim, s.n_rot, neox), a) << "pair " << m << " of head " << h;
          EXPECT_EQ(RopeRowOf(base + 2 * m + 1, s.head_dim, s.n_rot, neox), b) << "pair " << m << " of head " << h;
        }
        for (int j = s.n_rot; j < s.head_dim; ++j) {
          EXPECT_EQ(RopeRowOf(base + j, s.head_dim, s.n_rot, neox), base + j) << "unrotated row " << j;
        }
      }
    }
  }
}

}  // namespace
}  // namespace ggufscope::cuda
