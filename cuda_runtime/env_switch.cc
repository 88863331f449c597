#include "cuda_runtime/env_switch.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace ggufscope::cuda {

bool EnvSwitchOn(const char* name) {
  const char* e = std::getenv(name);
  return e == nullptr || std::strcmp(e, "0") != 0;
}

std::string EnvSwitchString(const char* name, const char* fallback) {
  const char* e = std::getenv(name);
  return e != nullptr ? std::string(e) : std::string(fallback);
}

int64_t EnvSwitchInt(const char* name, int64_t fallback, int64_t lo, int64_t hi) {
  const char* e = std::getenv(name);
  if (e == nullptr) return fallback;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(e, &end, 10);  // skips leading blanks
  if (end == e || errno == ERANGE) return fallback;
  while (*end == ' ' || *end == '\t') ++end;
  if (*end != '\0') return fallback;
  return v >= lo && v <= hi ? static_cast<int64_t>(v) : fallback;
}

}  // namespace ggufscope::cuda
