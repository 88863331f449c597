// Safetensors checkpoints (Hugging Face), read by memory map.
//
// Layout of one file (all little-endian):
//   u64 n | n bytes of UTF-8 JSON | data section (the rest of the file)
//   JSON: { "__metadata__": {string: string} (optional, ignored),
//           NAME: {"dtype": "F32"|"F16"|"BF16"|..., "shape": [d0, d1, ...],
//                  "data_offsets": [begin, end]}, ... }
//   begin/end are relative to the data section; shape is outermost first
//   (PyTorch order), so a (rows, cols) matrix has shape [rows, cols].
//
// Parse() treats the file as hostile, like the GGUF parser: the header length
// is checked against kMaxSafetensorsHeader and the file size before anything
// is read, the JSON is walked by a SAX handler that only accepts the schema
// above (so memory stays proportional to the header and nesting is bounded),
// and every tensor's dtype, shape, offsets and byte count are checked, as is
// the absence of overlaps, before a span is handed out.
//
// A checkpoint folder is every shard named by model.safetensors.index.json's
// weight_map, or else every *.safetensors file in it, plus config.json.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "gguf/error.h"
#include "gguf/file.h"

namespace ggufscope::gguf {

// The safetensors reference implementation's cap on the header.
inline constexpr uint64_t kMaxSafetensorsHeader = 100u << 20;
// More dimensions than any checkpoint uses; bounds the per-tensor shape.
inline constexpr size_t kMaxSafetensorsDims = 8;
// Side files (config.json, the shard index, tokenizer files).
inline constexpr uint64_t kMaxJsonSideFile = 64u << 20;

enum class StDtype : uint8_t { kF32, kF16, kBF16 };

std::string_view StDtypeName(StDtype d);  // "F32", "F16", "BF16"
uint32_t StDtypeSize(StDtype d);          // bytes per element

struct StTensor {
  std::string name;
  StDtype dtype = StDtype::kF32;
  std::vector<int64_t> shape;      // outermost first; empty for a scalar
  uint64_t n_elements = 0;
  uint64_t offset = 0;             // absolute byte offset of the data in its file
  std::span<const uint8_t> data;   // exactly n_elements * StDtypeSize(dtype) bytes
};

class SafetensorsFile {
 public:
  static Result<SafetensorsFile> Open(const std::string& path);
  // `path` only names the file in errors.
  static Result<SafetensorsFile> Parse(std::shared_ptr<const Mapping> mapping, std::string path = "");

  const std::string& path() const { return path_; }
  uint64_t data_offset() const { return data_offset_; }  // 8 + header length
  uint64_t file_size() const { return bytes_.size(); }
  const std::vector<StTensor>& tensors() const { return tensors_; }  // in header order
  const StTensor* Find(std::string_view name) const;

 private:
  std::shared_ptr<const Mapping> mapping_;
  std::span<const uint8_t> bytes_;
  std::string path_;
  uint64_t data_offset_ = 0;
  std::vector<StTensor> tensors_;
  std::unordered_map<std::string, size_t> index_;
};

// The tensor's values as f32, exactly (F16 and BF16 are subsets of F32).
// `out` must hold n_elements floats.
Status ToF32(const StTensor& t, std::span<float> out);

// Every tensor of a checkpoint file or folder, and its config.json.
class Checkpoint {
 public:
  // `path`: a .safetensors file (config.json is looked for beside it) or a
  // folder. A tensor name found in two shards is an error.
  static Result<Checkpoint> Open(const std::string& path);

  const std::string& dir() const { return dir_; }  // the folder holding config.json
  // config.json's text, or "" when there is none.
  const std::string& config_json() const { return config_json_; }
  const std::vector<SafetensorsFile>& files() const { return files_; }
  const StTensor* Find(std::string_view name) const;
  // Every tensor, sorted by name.
  std::vector<const StTensor*> Tensors() const;

 private:
  std::string dir_;
  std::string config_json_;
  std::vector<SafetensorsFile> files_;
  std::unordered_map<std::string, std::pair<size_t, size_t>> index_;  // name -> (file, tensor)
};

// The whole of a small side file (config.json, tokenizer.json) as text;
// kTooLarge past `max_bytes`.
Result<std::string> ReadSideFile(const std::string& path, uint64_t max_bytes = kMaxJsonSideFile);

}  // namespace ggufscope::gguf
