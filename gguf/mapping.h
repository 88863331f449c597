// RAII owners of file bytes.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "gguf/error.h"
#include "gguf/file.h"

namespace ggufscope::gguf {

// Maps `path` read-only (an empty file maps to an empty span).
Result<std::shared_ptr<const Mapping>> MapFile(const std::string& path);

// Owns a copy of bytes in memory (tests, the fuzzer, files built in code).
std::shared_ptr<const Mapping> OwnBytes(std::vector<uint8_t> bytes);

}  // namespace ggufscope::gguf
