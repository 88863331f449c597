#include "gguf/writer.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace ggufscope::gguf {
namespace {

class Out {
 public:
  explicit Out(const std::function<bool(const void*, size_t)>& sink) : sink_(sink) {}
  template <typename T>
  void Pod(T v) {
    Bytes(&v, sizeof(T));
  }
  void Bytes(const void* p, size_t n) {
    if (ok_ && n > 0) ok_ = sink_(p, n);
    pos_ += n;
  }
  void Str(const std::string& s) {
    Pod<uint64_t>(s.size());
    Bytes(s.data(), s.size());
  }
  void Zeros(size_t n) {
    static const uint8_t kZeros[256] = {};
    while (n > 0) {
      const size_t k = n < sizeof(kZeros) ? n : sizeof(kZeros);
      Bytes(kZeros, k);
      n -= k;
    }
  }
  uint64_t pos() const { return pos_; }
  bool ok() const { return ok_; }

 private:
  const std::function<bool(const void*, size_t)>& sink_;
  uint64_t pos_ = 0;
  bool ok_ = true;
};

void WriteArrayBody(Out& out, const Value& v);

void WriteValueBody(Out& out, const Value& v) {
  switch (v.type) {
    case ValueType::kString: out.Str(v.s); return;
    case ValueType::kArray: WriteArrayBody(out, v); return;
    case ValueType::kFloat32: out.Pod<uint32_t>(static_cast<uint32_t>(v.u)); return;  // exact bits
    case ValueType::kFloat64: out.Pod<uint64_t>(v.u); return;
    case ValueType::kInt8: out.Pod<int8_t>(static_cast<int8_t>(v.i)); return;
    case ValueType::kInt16: out.Pod<int16_t>(static_cast<int16_t>(v.i)); return;
    case ValueType::kInt32: out.Pod<int32_t>(static_cast<int32_t>(v.i)); return;
    case ValueType::kInt64: out.Pod<int64_t>(v.i); return;
    case ValueType::kUint8:
    case ValueType::kBool: out.Pod<uint8_t>(static_cast<uint8_t>(v.u)); return;
    case ValueType::kUint16: out.Pod<uint16_t>(static_cast<uint16_t>(v.u)); return;
    case ValueType::kUint32: out.Pod<uint32_t>(static_cast<uint32_t>(v.u)); return;
    case ValueType::kUint64: out.Pod<uint64_t>(v.u); return;
  }
}

void WriteArrayBody(Out& out, const Value& v) {
  out.Pod<uint32_t>(static_cast<uint32_t>(v.elem_type));
  out.Pod<uint64_t>(v.array_size());
  if (v.elem_type == ValueType::kString) {
    for (const std::string& s : v.strings) out.Str(s);
  } else if (v.elem_type == ValueType::kArray) {
    for (const Value& a : v.arrays) WriteArrayBody(out, a);
  } else {
    out.Bytes(v.raw.data(), v.raw.size());
  }
}

uint64_t PadTo(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace

Writer Writer::FromFile(const GgufFile& file) {
  Writer w(file.version());
  for (const KeyValue& kv : file.metadata()) w.kv_.push_back({kv.key, kv.value, 0});
  for (const TensorInfo& t : file.tensors()) {
    w.tensors_.push_back({t.name, t.type, std::vector<int64_t>(t.ne.begin(), t.ne.begin() + t.n_dims),
                          file.TensorData(t)});
    w.tensor_names_.insert(t.name);
  }
  return w;
}

Status Writer::AddKv(std::string key, Value value) {
  for (const KeyValue& kv : kv_) {
    if (kv.key == key) {
      return Error{ErrorCode::kDuplicateKey, "writer key '" + key + "'", Error::kNoOffset, "unique keys", "a second one"};
    }
  }
  if (key == "general.alignment") {
    if (value.type != ValueType::kUint32 || value.u == 0 || (value.u & (value.u - 1)) != 0) {
      return Error{ErrorCode::kBadAlignment, "writer general.alignment", Error::kNoOffset,
                   "a uint32 power of two", fmt::format("{} {}", ValueTypeName(value.type), value.u)};
    }
  }
  kv_.push_back({std::move(key), std::move(value), 0});
  return {};
}

Status Writer::SetKv(const std::string& key, Value value) {
  for (KeyValue& kv : kv_) {
    if (kv.key == key) {
      if (key == "general.alignment") {
        RemoveKv(key);
        return AddKv(key, std::move(value));
      }
      kv.value = std::move(value);
      return {};
    }
  }
  return AddKv(key, std::move(value));
}

bool Writer::RemoveKv(const std::string& key) {
  for (auto it = kv_.begin(); it != kv_.end(); ++it) {
    if (it->key == key) {
      kv_.erase(it);
      return true;
    }
  }
  return false;
}

Status Writer::AddTensor(std::string name, GgmlType type, std::vector<int64_t> ne,
                         std::span<const uint8_t> data) {
  const std::string field = "writer tensor '" + name + "'";
  if (tensor_names_.count(name) != 0) {
    return Error{ErrorCode::kDuplicateTensor, field, Error::kNoOffset, "unique tensor names", "a second one"};
  }
  if (ne.empty() || ne.size() > kMaxDims) {
    return Error{ErrorCode::kBadDims, field, Error::kNoOffset, "1..4 dims", std::to_string(ne.size())};
  }
  uint64_t n = 1;
  for (int64_t d : ne) {
    if (d < 0 || __builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) {
      return Error{ErrorCode::kBadDims, field, Error::kNoOffset, "non-negative dims without overflow", "otherwise"};
    }
  }
  const std::optional<TypeTraits> traits = LookupType(static_cast<uint32_t>(type));
  if (!traits || traits->status != TypeStatus::kActive) {
    return Error{ErrorCode::kUnknownType, field, Error::kNoOffset, "an active ggml type",
                 std::to_string(static_cast<uint32_t>(type))};
  }
  if (static_cast<uint64_t>(ne[0]) % traits->block_size != 0) {
    return Error{ErrorCode::kBadBlockMultiple, field, Error::kNoOffset,
                 fmt::format("ne[0] a multiple of {}", traits->block_size), std::to_string(ne[0])};
  }
  const std::optional<uint64_t> bytes = BytesFor(type, n);
  if (!bytes || *bytes != data.size()) {
    return Error{ErrorCode::kInvalidArgument, field + " data", Error::kNoOffset,
                 fmt::format("{} bytes", bytes.value_or(0)), fmt::format("{} bytes", data.size())};
  }
  tensor_names_.insert(name);
  tensors_.push_back({std::move(name), type, std::move(ne), data});
  return {};
}

uint32_t Writer::Alignment() const {
  for (const KeyValue& kv : kv_) {
    if (kv.key == "general.alignment") return static_cast<uint32_t>(kv.value.u);
  }
  return kDefaultAlignment;
}

Status Writer::WriteTo(const std::function<bool(const void*, size_t)>& sink) const {
  const uint64_t align = Alignment();
  Out out(sink);
  out.Pod<uint32_t>(kGgufMagic);
  out.Pod<uint32_t>(version_);
  out.Pod<uint64_t>(tensors_.size());
  out.Pod<uint64_t>(kv_.size());
  for (const KeyValue& kv : kv_) {
    out.Str(kv.key);
    out.Pod<uint32_t>(static_cast<uint32_t>(kv.value.type));
    WriteValueBody(out, kv.value);
  }
  uint64_t offset = 0;
  for (const PendingTensor& t : tensors_) {
    out.Str(t.name);
    out.Pod<uint32_t>(static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) out.Pod<int64_t>(d);
    out.Pod<uint32_t>(static_cast<uint32_t>(t.type));
    out.Pod<uint64_t>(offset);
    offset = PadTo(offset + t.data.size(), align);
  }
  // A file without tensors ends right after its metadata (as llama.cpp's
  // vocab-only files do); otherwise the data section starts aligned.
  if (!tensors_.empty()) out.Zeros(PadTo(out.pos(), align) - out.pos());
  for (const PendingTensor& t : tensors_) {
    out.Bytes(t.data.data(), t.data.size());
    out.Zeros(PadTo(t.data.size(), align) - t.data.size());
  }
  if (!out.ok()) return Error{ErrorCode::kIo, "writer output", out.pos(), "a successful write", "a failed write"};
  return {};
}

Result<std::vector<uint8_t>> Writer::Serialize() const {
  std::vector<uint8_t> bytes;
  Status s = WriteTo([&](const void* p, size_t n) {
    const auto* c = static_cast<const uint8_t*>(p);
    bytes.insert(bytes.end(), c, c + n);
    return true;
  });
  if (!s.ok()) return s.error();
  return bytes;
}

Status Writer::WriteFile(const std::string& path) const {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) {
    return Error{ErrorCode::kIo, tmp, Error::kNoOffset, "a writable file", std::strerror(errno)};
  }
  Status s = WriteTo([&](const void* p, size_t n) { return std::fwrite(p, 1, n, f) == n; });
  if (std::fclose(f) != 0 && s.ok()) {
    s = Error{ErrorCode::kIo, tmp, Error::kNoOffset, "a successful close", std::strerror(errno)};
  }
  if (!s.ok()) {
    std::remove(tmp.c_str());
    return s;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return Error{ErrorCode::kIo, path, Error::kNoOffset, "a successful rename", std::strerror(errno)};
  }
  return {};
}

}  // namespace ggufscope::gguf
