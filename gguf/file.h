// A parsed GGUF file.
//
// Layout (all little-endian; v2 and v3 share it, v1 used 32-bit counts):
//   u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
//   n_kv x { string key | u32 value_type | value }
//     string = u64 length + bytes; array = u32 elem_type + u64 count + elements
//   n_tensors x { string name | u32 n_dims | n_dims x i64 ne | u32 ggml_type | u64 offset }
//   padding to general.alignment (default 32)
//   data section: tensor bytes at data_offset + offset, each offset aligned
//
// Parse() checks every count, length, dimension and offset against the bytes
// that remain and against overflow before it allocates or reads anything.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "gguf/error.h"
#include "gguf/types.h"
#include "gguf/value.h"

namespace ggufscope::gguf {

inline constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as little-endian u32
inline constexpr uint32_t kDefaultAlignment = 32;
inline constexpr uint32_t kMaxDims = 4;
inline constexpr int kMaxArrayDepth = 8;
inline constexpr size_t kLlamaMaxNameLength = 63;  // llama.cpp rejects names of 64+ bytes

struct TensorInfo {
  std::string name;
  uint32_t n_dims = 0;
  std::array<int64_t, kMaxDims> ne = {1, 1, 1, 1};  // ne[0] is the row length (innermost)
  GgmlType type = GgmlType::kF32;
  uint64_t offset = 0;       // relative to the data section, as stored
  uint64_t n_elements = 0;
  uint64_t n_bytes = 0;      // exact bytes the type needs (no padding)
  uint64_t info_offset = 0;  // where this tensor's info record starts in the file
  uint64_t offset_field = 0; // where its offset field sits in the file

  uint64_t n_rows() const { return ne[0] == 0 ? 0 : n_elements / static_cast<uint64_t>(ne[0]); }
};

// Owns a read-only memory map (or an in-memory copy) of a file.
class Mapping {
 public:
  virtual ~Mapping() = default;
  virtual std::span<const uint8_t> bytes() const = 0;
};

// Things a valid file may do that llama.cpp would refuse or that deserve a
// look; reported, never fatal.
struct Warning {
  std::string field;
  uint64_t offset = 0;
  std::string message;
};

class GgufFile {
 public:
  // Memory-maps `path` and parses it.
  static Result<GgufFile> Open(const std::string& path);
  // Parses bytes owned by the caller; they must outlive the GgufFile.
  static Result<GgufFile> Parse(std::span<const uint8_t> bytes);
  // Parses bytes and takes ownership of the mapping.
  static Result<GgufFile> Parse(std::shared_ptr<const Mapping> mapping);

  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_size() const { return bytes_.size(); }
  // End of the tensor info records (before padding).
  uint64_t header_end() const { return header_end_; }

  const std::vector<KeyValue>& metadata() const { return kv_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::vector<Warning>& warnings() const { return warnings_; }

  const KeyValue* FindKey(std::string_view key) const;
  const TensorInfo* FindTensor(std::string_view name) const;

  // Convenience lookups; nullopt if absent or of another type.
  std::optional<std::string> GetString(std::string_view key) const;
  std::optional<uint64_t> GetUint(std::string_view key) const;
  std::optional<double> GetDouble(std::string_view key) const;

  // Zero-copy view of a tensor's bytes (exactly n_bytes).
  std::span<const uint8_t> TensorData(const TensorInfo& t) const;
  std::span<const uint8_t> bytes() const { return bytes_; }
  // The owner of bytes() (null when the caller owns them: Parse(span)).
  const std::shared_ptr<const Mapping>& mapping() const { return mapping_; }

 private:
  friend class Parser;
  std::shared_ptr<const Mapping> mapping_;
  std::span<const uint8_t> bytes_;
  uint32_t version_ = 0;
  uint32_t alignment_ = kDefaultAlignment;
  uint64_t header_end_ = 0;
  uint64_t data_offset_ = 0;
  std::vector<KeyValue> kv_;
  std::vector<TensorInfo> tensors_;
  std::vector<Warning> warnings_;
  std::unordered_map<std::string, size_t> kv_index_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace ggufscope::gguf
