// Reads NumPy .npy files (format 1.0-3.0) as f32, for traces that other
// engines dump with np.save: little-endian floats (f2, f4, f8) and integers,
// C or (for 1-D and 2-D arrays) Fortran order. The file is untrusted: the
// header, the shape and the data size are checked before anything is
// allocated, and every problem is an Error naming what was expected.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "gguf/error.h"

namespace ggufscope::compare {

struct NpyArray {
  std::vector<int64_t> shape;  // NumPy order (outermost first)
  std::vector<float> data;     // C order, converted to f32
};

// Files larger than this are refused (a trace point of a 150k-vocab model
// over 4k positions is 2.4 GB in f32).
inline constexpr uint64_t kMaxNpyBytes = uint64_t{8} << 30;

gguf::Result<NpyArray> ParseNpy(std::span<const uint8_t> bytes, const std::string& what);
gguf::Result<NpyArray> ReadNpy(const std::string& path);

}  // namespace ggufscope::compare
