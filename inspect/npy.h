// Writes NumPy .npy files (format 1.0, little-endian f32, C order), the
// exchange format the oracle tests and other engines read without ggufscope.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "gguf/error.h"

namespace ggufscope::inspect {

// `shape` in NumPy order (outermost first), i.e. a GGUF tensor's ne reversed.
gguf::Status WriteNpyF32(const std::string& path, std::span<const float> data,
                         const std::vector<int64_t>& shape);

}  // namespace ggufscope::inspect
