#include "inspect/npy.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace ggufscope::inspect {

gguf::Status WriteNpyF32(const std::string& path, std::span<const float> data,
                         const std::vector<int64_t>& shape) {
  std::string dims;
  for (int64_t d : shape) dims += fmt::format("{},", d);
  if (shape.size() > 1) dims.pop_back();  // "(5,)" for 1-D, "(2, 3)" style otherwise
  std::string header =
      fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}), }}", dims);
  // Magic (6) + version (2) + header length (2) + header, padded with spaces
  // and ended by '\n' to a multiple of 64 bytes.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return gguf::Error{gguf::ErrorCode::kIo, path, gguf::Error::kNoOffset, "a writable file", std::strerror(errno)};
  const uint8_t magic[8] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
  const uint16_t len = static_cast<uint16_t>(header.size());
  bool ok = std::fwrite(magic, 1, 8, f) == 8 && std::fwrite(&len, 2, 1, f) == 1 &&
            std::fwrite(header.data(), 1, header.size(), f) == header.size() &&
            std::fwrite(data.data(), sizeof(float), data.size(), f) == data.size();
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) return gguf::Error{gguf::ErrorCode::kIo, path, gguf::Error::kNoOffset, "a complete write", std::strerror(errno)};
  return {};
}

}  // namespace ggufscope::inspect
