// Writes GGUF v3 (or v2) files: metadata in the order given, tensors packed in
// the order given, each at the next multiple of the alignment, zero padding,
// exactly the layout llama.cpp and gguf-py write. Rewriting a file read by
// GgufFile therefore reproduces it byte for byte.
#pragma once

#include <functional>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

#include "gguf/error.h"
#include "gguf/file.h"
#include "gguf/value.h"

namespace ggufscope::gguf {

class Writer {
 public:
  explicit Writer(uint32_t version = 3) : version_(version) {}

  // Copies every key/value and tensor of `file` (tensor bytes are referenced,
  // not copied: `file` must outlive the writer).
  static Writer FromFile(const GgufFile& file);

  // general.alignment is taken from the metadata (uint32, power of two).
  Status AddKv(std::string key, Value value);
  Status SetKv(const std::string& key, Value value);  // replace or add
  bool RemoveKv(const std::string& key);
  // `ne` has 1..4 dims (ne[0] innermost); `data` must be exactly the type's
  // byte size for ne and outlive the writer.
  Status AddTensor(std::string name, GgmlType type, std::vector<int64_t> ne,
                   std::span<const uint8_t> data);

  // Streams the file to `sink` (called with successive chunks).
  Status WriteTo(const std::function<bool(const void*, size_t)>& sink) const;
  Result<std::vector<uint8_t>> Serialize() const;
  // Writes to path + ".tmp" and renames, so a failed write never leaves a
  // half file under the final name.
  Status WriteFile(const std::string& path) const;

 private:
  struct PendingTensor {
    std::string name;
    GgmlType type;
    std::vector<int64_t> ne;
    std::span<const uint8_t> data;
  };
  uint32_t Alignment() const;

  uint32_t version_;
  std::vector<KeyValue> kv_;
  std::vector<PendingTensor> tensors_;
  std::unordered_set<std::string> tensor_names_;
};

}  // namespace ggufscope::gguf
