// Paths of the shared test models (../shared/models beside the checkout).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace ggufscope::testing {

inline std::string SharedDir() { return GGUFSCOPE_SHARED_DIR; }

// Every .gguf file under shared/models (synth/, vocab/ and stories260K).
inline std::vector<std::string> SharedModels() {
  std::vector<std::string> out;
  const std::filesystem::path root = SharedDir() + "/models";
  if (!std::filesystem::exists(root)) return out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    if (e.is_regular_file() && e.path().extension() == ".gguf") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace ggufscope::testing
