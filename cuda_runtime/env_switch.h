// Benchmarking switches: environment variables that select another kernel
// path or launch shape for an A/B run (GGUFSCOPE_MATVEC_TC=0 and the like;
// each is documented where it is read). Every caller reads its switch once
// into a function-local static, so a switch is fixed for the process and
// costs nothing per launch.
//
// One parser for all of them, so that an unset variable always gives the
// documented default and a malformed one never selects a path by accident
// (tests/unit/env_switch_test.cc). Plain C++: forward.cc uses it in the
// build without CUDA too.
#pragma once

#include <cstdint>
#include <string>

namespace ggufscope::cuda {

// On unless `name` is set to exactly "0" (every on/off switch's off value;
// unset, empty or any other value: on).
bool EnvSwitchOn(const char* name);

// `name`'s value; `fallback` where unset.
std::string EnvSwitchString(const char* name, const char* fallback = "");

// `name` as a decimal integer in [lo, hi]; `fallback` where unset, empty,
// not wholly a decimal integer (leading and trailing blanks allowed), or
// outside the range.
int64_t EnvSwitchInt(const char* name, int64_t fallback, int64_t lo, int64_t hi);

}  // namespace ggufscope::cuda
