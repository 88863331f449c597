// The GGUF parser. Nothing in the file is trusted: every read is bounds
// checked, every count is checked against the bytes that remain before
// anything is reserved, and the total memory the metadata may take is capped.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>
#include <optional>

#include "gguf/file.h"
#include "gguf/mapping.h"

namespace ggufscope::gguf {

// Metadata beyond this (in our in-memory form) is refused: no real model
// comes near it (Qwen's 151k-token vocabulary costs ~10 MB), while a hostile
// file could otherwise make us allocate many times its own size.
inline constexpr uint64_t kMaxMetadataMemory = uint64_t{1} << 30;

// A length or count that needs more bytes than remain is a truncated file if
// the need is plausible for some real file, and a corrupt or hostile value
// (2^62 elements, say) beyond this.
inline constexpr uint64_t kImplausibleBytes = uint64_t{1} << 40;

// n * size, saturated at UINT64_MAX.
uint64_t SatMul(uint64_t n, uint64_t size) {
  uint64_t r;
  return __builtin_mul_overflow(n, size, &r) ? UINT64_MAX : r;
}

class Parser {
 public:
  explicit Parser(std::span<const uint8_t> bytes) : b_(bytes) {}

  Result<GgufFile> Run(std::shared_ptr<const Mapping> mapping) {
    GgufFile f;
    f.mapping_ = std::move(mapping);
    f.bytes_ = b_;
    if (!ParseHeader(f) || !ParseMetadata(f) || !ParseTensorInfos(f) || !CheckLayout(f)) {
      return *err_;
    }
    return f;
  }

 private:
  uint64_t remaining() const { return b_.size() - pos_; }

  bool Fail(ErrorCode code, std::string field, uint64_t offset, std::string expected,
            std::string actual) {
    err_ = Error{code, std::move(field), offset, std::move(expected), std::move(actual)};
    return false;
  }

  bool Need(uint64_t n, const std::string& field) {
    if (n > remaining()) {
      return Fail(ErrorCode::kTruncated, field, pos_, fmt::format("{} more bytes", n),
                  fmt::format("{} bytes left in a {}-byte file", remaining(), b_.size()));
    }
    return true;
  }

  template <typename T>
  bool Read(T* out, const std::string& field) {
    if (!Need(sizeof(T), field)) return false;
    std::memcpy(out, b_.data() + pos_, sizeof(T));  // host is little-endian (checked in CMake)
    pos_ += sizeof(T);
    return true;
  }

  bool Charge(uint64_t bytes, const std::string& field) {
    if (bytes > kMaxMetadataMemory - std::min(charged_, kMaxMetadataMemory)) {
      return Fail(ErrorCode::kTooLarge, field, pos_,
                  fmt::format("metadata under {} bytes in memory", kMaxMetadataMemory),
                  "more (refused to allocate)");
    }
    charged_ += bytes;
    return true;
  }

  // ReadString's success path without building any field name: false (and
  // nothing consumed or charged) whenever the slow path might report an error.
  bool TryReadString(std::string* out) {
    if (remaining() < sizeof(uint64_t)) return false;
    uint64_t len = 0;
    std::memcpy(&len, b_.data() + pos_, sizeof len);
    if (len > remaining() - sizeof(uint64_t)) return false;
    const uint64_t cost = len + sizeof(std::string);
    if (cost > kMaxMetadataMemory - std::min(charged_, kMaxMetadataMemory)) return false;
    charged_ += cost;
    pos_ += sizeof(uint64_t);
    out->assign(reinterpret_cast<const char*>(b_.data() + pos_), len);
    pos_ += len;
    return true;
  }

  bool ReadString(std::string* out, const std::string& field) {
    const uint64_t at = pos_;
    uint64_t len = 0;
    if (!Read(&len, field + ".length")) return false;
    if (len > remaining()) {
      return Fail(len > kImplausibleBytes ? ErrorCode::kTooLarge : ErrorCode::kTruncated,
                  field + ".length", at,
                  fmt::format("a length that fits the {} bytes left", remaining()), std::to_string(len));
    }
    if (!Charge(len + sizeof(std::string), field)) return false;
    out->assign(reinterpret_cast<const char*>(b_.data() + pos_), len);
    pos_ += len;
    return true;
  }

  bool ParseHeader(GgufFile& f) {
    uint32_t magic = 0;
    if (!Read(&magic, "header.magic")) return false;
    if (magic != kGgufMagic) {
      const auto* m = b_.data();
      std::string shown;
      for (int i = 0; i < 4; ++i) {
        shown += (m[i] >= 0x20 && m[i] < 0x7f) ? static_cast<char>(m[i]) : '.';
      }
      std::string actual = fmt::format("\"{}\" (0x{:08x})", shown, magic);
      if (std::memcmp(m, "FUGG", 4) == 0) {
        return Fail(ErrorCode::kBigEndian, "header.magic", 0, "\"GGUF\"",
                    actual + ": a big-endian GGUF file; convert it to little-endian");
      }
      const std::string_view head(reinterpret_cast<const char*>(m), std::min<size_t>(b_.size(), 512));
      if (head.find("<html") != std::string_view::npos || head.find("<!DOCTYPE") != std::string_view::npos ||
          head.find("<!doctype") != std::string_view::npos || head.find("<HTML") != std::string_view::npos) {
        actual += ": this is an HTML page, not a model (a failed download?)";
      } else if (head.rfind("version https://git-lfs", 0) == 0) {
        actual += ": a Git LFS pointer file, not the model itself";
      }
      return Fail(ErrorCode::kBadMagic, "header.magic", 0, "\"GGUF\"", actual);
    }
    uint32_t version = 0;
    if (!Read(&version, "header.version")) return false;
    if ((version & 0xffffu) == 0 && (version >> 24) != 0) {
      return Fail(ErrorCode::kBigEndian, "header.version", 4, "2 or 3 (little-endian)",
                  fmt::format("0x{:08x}, i.e. version {} stored big-endian", version,
                              __builtin_bswap32(version)));
    }
    if (version == 1) {
      return Fail(ErrorCode::kUnsupportedVersion, "header.version", 4, "2 or 3",
                  "1 (the obsolete GGUF v1 with 32-bit counts)");
    }
    if (version != 2 && version != 3) {
      return Fail(ErrorCode::kUnsupportedVersion, "header.version", 4, "2 or 3",
                  std::to_string(version));
    }
    f.version_ = version;
    const uint64_t at_counts = pos_;
    if (!Read(&n_tensors_, "header.n_tensors") || !Read(&n_kv_, "header.n_kv")) return false;
    // A key/value needs at least 8 (key length) + 4 (type) + 1 (value) bytes;
    // a tensor info at least 8 (name length) + 4 + 8 (one dim) + 4 + 8.
    constexpr uint64_t kMinKv = 13, kMinTensor = 32;
    const uint64_t need_kv = SatMul(n_kv_, kMinKv), need_t = SatMul(n_tensors_, kMinTensor);
    const uint64_t need = need_kv > UINT64_MAX - need_t ? UINT64_MAX : need_kv + need_t;
    if (need > remaining()) {
      const ErrorCode code = need > kImplausibleBytes ? ErrorCode::kTooLarge : ErrorCode::kTruncated;
      const bool kv_alone = need_kv > remaining();
      const bool t_alone = need_t > remaining();
      const std::string field = kv_alone ? "header.n_kv" : (t_alone ? "header.n_tensors" : "header.n_kv + header.n_tensors");
      return Fail(code, field, kv_alone ? at_counts + 8 : at_counts,
                  fmt::format("records that fit the {} bytes left ({} bytes at least)", remaining(), need),
                  fmt::format("{} tensors and {} keys", n_tensors_, n_kv_));
    }
    return true;
  }

  bool ParseValue(ValueType type, Value* out, const std::string& field, int depth) {
    out->type = type;
    switch (type) {
      case ValueType::kString: return ReadString(&out->s, field);
      case ValueType::kArray: return ParseArray(out, field, depth + 1);
      default: break;
    }
    const uint32_t size = ScalarSize(type);
    if (!Need(size, field)) return false;
    uint64_t bits = 0;
    for (uint32_t i = 0; i < size; ++i) bits |= uint64_t{b_[pos_ + i]} << (8 * i);
    if (type == ValueType::kBool && bits > 1) {
      warnings_.push_back({field, pos_, fmt::format("bool stored as {}, not 0 or 1", bits)});
    }
    pos_ += size;
    *out = Value::FromBits(type, bits);
    return true;
  }

  bool ReadValueType(ValueType* out, const std::string& field) {
    const uint64_t at = pos_;
    uint32_t raw = 0;
    if (!Read(&raw, field)) return false;
    if (raw >= kValueTypeCount) {
      return Fail(ErrorCode::kBadValueType, field, at, "a value type 0..12", std::to_string(raw));
    }
    *out = static_cast<ValueType>(raw);
    return true;
  }

  bool ParseArray(Value* out, const std::string& field, int depth) {
    if (depth > kMaxArrayDepth) {
      return Fail(ErrorCode::kNestingTooDeep, field, pos_,
                  fmt::format("arrays nested at most {} deep", kMaxArrayDepth), "deeper");
    }
    if (!ReadValueType(&out->elem_type, field + ".elem_type")) return false;
    const uint64_t at_count = pos_;
    uint64_t count = 0;
    if (!Read(&count, field + ".count")) return false;
    const uint32_t scalar = ScalarSize(out->elem_type);
    const uint64_t min_elem = scalar != 0 ? scalar : (out->elem_type == ValueType::kString ? 8 : 12);
    if (count > remaining() / min_elem) {
      const uint64_t need = SatMul(count, min_elem);
      return Fail(need > kImplausibleBytes ? ErrorCode::kTooLarge : ErrorCode::kTruncated, field + ".count", at_count,
                  fmt::format("at most {} {} elements for the {} bytes left", remaining() / min_elem,
                              ValueTypeName(out->elem_type), remaining()),
                  std::to_string(count));
    }
    if (scalar != 0) {
      const uint64_t n = count * scalar;
      if (!Charge(n, field)) return false;
      if (out->elem_type == ValueType::kBool) {
        for (uint64_t i = 0; i < count; ++i) {
          if (b_[pos_ + i] > 1) {
            warnings_.push_back({field, pos_ + i, fmt::format("bool element {} stored as {}", i, b_[pos_ + i])});
            break;
          }
        }
      }
      out->raw.assign(b_.data() + pos_, b_.data() + pos_ + n);
      pos_ += n;
      return true;
    }
    if (out->elem_type == ValueType::kString) {
      if (!Charge(count * sizeof(std::string), field)) return false;
      out->strings.resize(count);
      for (uint64_t i = 0; i < count; ++i) {
        if (TryReadString(&out->strings[i])) continue;
        if (!ReadString(&out->strings[i], fmt::format("{}[{}]", field, i))) return false;
      }
      return true;
    }
    if (!Charge(count * sizeof(Value), field)) return false;
    out->arrays.resize(count);
    for (uint64_t i = 0; i < count; ++i) {
      out->arrays[i].type = ValueType::kArray;
      if (!ParseArray(&out->arrays[i], fmt::format("{}[{}]", field, i), depth + 1)) return false;
    }
    return true;
  }

  bool ParseMetadata(GgufFile& f) {
    // Reserve only what the counts make certain; every record is charged
    // against the metadata cap as it is parsed.
    f.kv_.reserve(std::min<uint64_t>(n_kv_, 4096));
    for (uint64_t k = 0; k < n_kv_; ++k) {
      if (!Charge(sizeof(KeyValue), fmt::format("kv[{}]", k))) return false;
      KeyValue kv;
      kv.offset = pos_;
      const std::string field = fmt::format("kv[{}]", k);
      if (!ReadString(&kv.key, field + ".key")) return false;
      const std::string named = fmt::format("kv[{}] '{}'", k, kv.key);
      if (f.kv_index_.count(kv.key) != 0) {
        return Fail(ErrorCode::kDuplicateKey, named, kv.offset, "unique keys",
                    fmt::format("'{}' also at kv[{}]", kv.key, f.kv_index_[kv.key]));
      }
      ValueType type = ValueType::kUint8;
      if (!ReadValueType(&type, named + ".type")) return false;
      if (!ParseValue(type, &kv.value, named + ".value", 0)) return false;
      if (kv.key == "general.alignment") {
        if (type != ValueType::kUint32) {
          return Fail(ErrorCode::kBadAlignment, named, kv.offset, "type uint32",
                      std::string(ValueTypeName(type)));
        }
        const uint64_t a = kv.value.u;
        if (a == 0 || (a & (a - 1)) != 0) {
          return Fail(ErrorCode::kBadAlignment, named, kv.offset, "a non-zero power of two",
                      std::to_string(a));
        }
        f.alignment_ = static_cast<uint32_t>(a);
      }
      f.kv_index_.emplace(kv.key, f.kv_.size());
      f.kv_.push_back(std::move(kv));
    }
    return true;
  }

  bool ParseTensorInfos(GgufFile& f) {
    f.tensors_.reserve(std::min<uint64_t>(n_tensors_, 4096));
    for (uint64_t t = 0; t < n_tensors_; ++t) {
      if (!Charge(sizeof(TensorInfo) + 64, fmt::format("tensor[{}]", t))) return false;  // + index entry
      TensorInfo ti;
      ti.info_offset = pos_;
      if (!ReadString(&ti.name, fmt::format("tensor[{}].name", t))) return false;
      const std::string named = fmt::format("tensor '{}'", ti.name);
      if (f.tensor_index_.count(ti.name) != 0) {
        return Fail(ErrorCode::kDuplicateTensor, named, ti.info_offset, "unique tensor names",
                    fmt::format("also tensor[{}]", f.tensor_index_[ti.name]));
      }
      if (ti.name.size() > kLlamaMaxNameLength) {
        f.warnings_.push_back({named, ti.info_offset,
                               fmt::format("name is {} bytes; llama.cpp refuses names over {}",
                                           ti.name.size(), kLlamaMaxNameLength)});
      }
      const uint64_t at_dims = pos_;
      if (!Read(&ti.n_dims, named + ".n_dims")) return false;
      if (ti.n_dims == 0 || ti.n_dims > kMaxDims) {
        return Fail(ErrorCode::kBadDims, named + ".n_dims", at_dims, "1..4", std::to_string(ti.n_dims));
      }
      uint64_t n = 1;
      for (uint32_t d = 0; d < ti.n_dims; ++d) {
        const uint64_t at = pos_;
        if (!Read(&ti.ne[d], fmt::format("{}.ne[{}]", named, d))) return false;
        if (ti.ne[d] < 0) {
          return Fail(ErrorCode::kBadDims, fmt::format("{}.ne[{}]", named, d), at, "a dimension >= 0",
                      std::to_string(ti.ne[d]));
        }
        if (__builtin_mul_overflow(n, static_cast<uint64_t>(ti.ne[d]), &n) ||
            n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
          return Fail(ErrorCode::kBadDims, fmt::format("{}.ne", named), at_dims + 4,
                      "an element count below 2^63", "a product of dimensions that overflows");
        }
      }
      ti.n_elements = n;
      const uint64_t at_type = pos_;
      uint32_t type_id = 0;
      if (!Read(&type_id, named + ".type")) return false;
      const std::optional<TypeTraits> traits = LookupType(type_id);
      if (!traits) {
        return Fail(ErrorCode::kUnknownType, named + ".type", at_type,
                    fmt::format("a ggml type id 0..{}", kGgmlTypeCount - 1), std::to_string(type_id));
      }
      if (traits->status == TypeStatus::kRemoved) {
        return Fail(ErrorCode::kRemovedType, named + ".type", at_type, "a type ggml still supports",
                    fmt::format("{} ({}, removed from ggml)", type_id, traits->name));
      }
      ti.type = static_cast<GgmlType>(type_id);
      if (static_cast<uint64_t>(ti.ne[0]) % traits->block_size != 0) {
        return Fail(ErrorCode::kBadBlockMultiple, named + ".ne[0]", at_dims + 4,
                    fmt::format("a multiple of {} (the {} block size)", traits->block_size, traits->name),
                    std::to_string(ti.ne[0]));
      }
      const std::optional<uint64_t> bytes = BytesFor(ti.type, ti.n_elements);
      if (!bytes) {
        return Fail(ErrorCode::kBadDims, named, at_dims, "a byte size below 2^64", "an overflow");
      }
      ti.n_bytes = *bytes;
      const uint64_t at_offset = pos_;
      ti.offset_field = at_offset;
      if (!Read(&ti.offset, named + ".offset")) return false;
      if (ti.offset % f.alignment_ != 0) {
        return Fail(ErrorCode::kMisalignedOffset, named + ".offset", at_offset,
                    fmt::format("a multiple of the alignment {}", f.alignment_), std::to_string(ti.offset));
      }
      f.tensor_index_.emplace(ti.name, f.tensors_.size());
      f.tensors_.push_back(std::move(ti));
    }
    f.header_end_ = pos_;
    return true;
  }

  bool CheckLayout(GgufFile& f) {
    const uint64_t a = f.alignment_;
    if (f.header_end_ > std::numeric_limits<uint64_t>::max() - a) {
      return Fail(ErrorCode::kTooLarge, "data section", f.header_end_, "an offset below 2^64", "overflow");
    }
    f.data_offset_ = (f.header_end_ + a - 1) / a * a;
    if (f.tensors_.empty()) return true;
    if (f.data_offset_ > b_.size()) {
      return Fail(ErrorCode::kTruncated, "data section", f.header_end_,
                  fmt::format("a data section starting at byte {}", f.data_offset_),
                  fmt::format("a {}-byte file", b_.size()));
    }
    const uint64_t data_size = b_.size() - f.data_offset_;
    for (const TensorInfo& t : f.tensors_) {
      if (t.offset > data_size) {
        return Fail(ErrorCode::kTruncated, fmt::format("tensor '{}'.offset", t.name), t.offset_field,
                    fmt::format("an offset within the {}-byte data section", data_size),
                    fmt::format("{} (past the end of the file: is the download complete?)", t.offset));
      }
      if (t.n_bytes > data_size - t.offset) {
        return Fail(ErrorCode::kTruncated, fmt::format("tensor '{}' data", t.name), f.data_offset_ + t.offset,
                    fmt::format("{} bytes ending by byte {}", t.n_bytes, b_.size()),
                    fmt::format("only {} bytes before the end of the file (is the download complete?)",
                                data_size - t.offset));
      }
    }
    std::vector<size_t> order(f.tensors_.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::sort(order.begin(), order.end(), [&](size_t x, size_t y) {
      return f.tensors_[x].offset < f.tensors_[y].offset;
    });
    uint64_t expected = 0;  // where llama.cpp expects the next tensor: tightly packed, padded
    bool gap_reported = false;
    const TensorInfo* furthest = nullptr;  // the tensor reaching furthest so far
    for (size_t k = 0; k < order.size(); ++k) {
      const TensorInfo& t = f.tensors_[order[k]];
      if (t.n_bytes == 0) continue;  // owns no bytes, overlaps nothing
      if (furthest != nullptr && t.offset < furthest->offset + furthest->n_bytes) {
        return Fail(ErrorCode::kOverlap, fmt::format("tensor '{}' data", t.name), f.data_offset_ + t.offset,
                    fmt::format("no byte shared with tensor '{}' (bytes {}..{})", furthest->name,
                                f.data_offset_ + furthest->offset,
                                f.data_offset_ + furthest->offset + furthest->n_bytes),
                    fmt::format("data starting at byte {}", f.data_offset_ + t.offset));
      }
      if (furthest == nullptr || t.offset + t.n_bytes > furthest->offset + furthest->n_bytes) furthest = &t;
      if (t.offset != expected && !gap_reported) {
        f.warnings_.push_back({fmt::format("tensor '{}'.offset", t.name), t.offset_field,
                               fmt::format("offset {} where a packed layout puts it at {} "
                                           "(llama.cpp refuses such files)",
                                           t.offset, expected)});
        gap_reported = true;
      }
      expected = (t.offset + t.n_bytes + a - 1) / a * a;
    }
    return true;
  }

  std::span<const uint8_t> b_;
  uint64_t pos_ = 0;
  uint64_t n_tensors_ = 0;
  uint64_t n_kv_ = 0;
  uint64_t charged_ = 0;
  std::vector<Warning> warnings_;
  std::optional<Error> err_;

 public:
  std::vector<Warning> TakeWarnings() { return std::move(warnings_); }
};

Result<GgufFile> GgufFile::Parse(std::shared_ptr<const Mapping> mapping) {
  const std::span<const uint8_t> bytes = mapping->bytes();
  Parser p(bytes);
  Result<GgufFile> r = p.Run(std::move(mapping));
  if (r.ok()) {
    std::vector<Warning> w = p.TakeWarnings();
    r->warnings_.insert(r->warnings_.begin(), w.begin(), w.end());
  }
  return r;
}

Result<GgufFile> GgufFile::Parse(std::span<const uint8_t> bytes) {
  Parser p(bytes);
  Result<GgufFile> r = p.Run(nullptr);
  if (r.ok()) {
    std::vector<Warning> w = p.TakeWarnings();
    r->warnings_.insert(r->warnings_.begin(), w.begin(), w.end());
  }
  return r;
}

Result<GgufFile> GgufFile::Open(const std::string& path) {
  Result<std::shared_ptr<const Mapping>> m = MapFile(path);
  if (!m.ok()) return m.error();
  return Parse(std::move(m.value()));
}

const KeyValue* GgufFile::FindKey(std::string_view key) const {
  auto it = kv_index_.find(std::string(key));
  return it == kv_index_.end() ? nullptr : &kv_[it->second];
}

const TensorInfo* GgufFile::FindTensor(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::optional<std::string> GgufFile::GetString(std::string_view key) const {
  const KeyValue* kv = FindKey(key);
  if (kv == nullptr || kv->value.type != ValueType::kString) return std::nullopt;
  return kv->value.s;
}

std::optional<uint64_t> GgufFile::GetUint(std::string_view key) const {
  const KeyValue* kv = FindKey(key);
  return kv == nullptr ? std::nullopt : kv->value.AsUint();
}

std::optional<double> GgufFile::GetDouble(std::string_view key) const {
  const KeyValue* kv = FindKey(key);
  return kv == nullptr ? std::nullopt : kv->value.AsDouble();
}

std::span<const uint8_t> GgufFile::TensorData(const TensorInfo& t) const {
  return bytes_.subspan(data_offset_ + t.offset, t.n_bytes);
}

}  // namespace ggufscope::gguf
