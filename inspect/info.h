// `ggufscope info`: the header, metadata, tensor table and architecture
// summary of a GGUF file, as text for people and JSON for programs.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "gguf/error.h"
#include "gguf/file.h"

namespace ggufscope::inspect {

struct InfoOptions {
  size_t array_head = 8;       // array items shown when summarising
  size_t max_string = 120;     // string bytes shown in text before eliding
  bool full_arrays = false;    // JSON: every array element (--full)
  bool show_tensors = true;
  bool show_metadata = true;
};

std::string InfoText(const gguf::GgufFile& file, const std::string& path, const InfoOptions& opt);
nlohmann::json InfoJson(const gguf::GgufFile& file, const std::string& path, const InfoOptions& opt);

// A parse error in the same shapes, for a file that could not be read.
nlohmann::json ErrorJson(const gguf::Error& error, const std::string& path);

// One metadata value in JSON (arrays summarised unless full).
nlohmann::json ValueJson(const gguf::Value& v, const InfoOptions& opt);
// One metadata value for people: strings quoted and escaped, long ones elided.
std::string ValueText(const gguf::Value& v, const InfoOptions& opt);

// Dumps JSON that may hold arbitrary bytes from a hostile file: invalid UTF-8
// is replaced, never thrown on.
std::string DumpJson(const nlohmann::json& j, int indent = 2);

// Length of the valid UTF-8 sequence at s[i] (and its code point in
// *cp_out when given); 0 if the bytes there are not valid UTF-8.
size_t Utf8At(std::string_view s, size_t i, uint32_t* cp_out);

// "1,234,567".
std::string Grouped(uint64_t n);

}  // namespace ggufscope::inspect
