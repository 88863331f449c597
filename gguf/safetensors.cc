#include "gguf/safetensors.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <system_error>
#include <unordered_set>

#include "gguf/dequant.h"
#include "gguf/mapping.h"

namespace ggufscope::gguf {
namespace {

using Json = nlohmann::json;

// Nesting allowed inside values we skip (__metadata__, unknown entry fields).
constexpr int kMaxSkipDepth = 16;

std::optional<StDtype> ParseDtype(std::string_view s) {
  if (s == "F32") return StDtype::kF32;
  if (s == "F16") return StDtype::kF16;
  if (s == "BF16") return StDtype::kBF16;
  return std::nullopt;
}

std::string Quoted(std::string_view s, size_t max = 64) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < max; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    out += (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? std::string(1, static_cast<char>(c))
                                                              : fmt::format("\\x{:02x}", c);
  }
  return out + (s.size() > max ? "...\"" : "\"");
}

// One header entry as the JSON states it, before any check of its values.
struct RawEntry {
  std::string name;
  std::optional<std::string> dtype;
  std::optional<std::vector<int64_t>> shape;
  std::optional<std::vector<uint64_t>> offsets;
};

// Walks the header JSON, accepting only the safetensors schema. Every
// container and value is seen once; nothing is kept but the entries, so
// memory is bounded by a small multiple of the header size.
class HeaderSax final : public nlohmann::json_sax<Json> {
 public:
  bool null() override { return Scalar("null"); }
  bool boolean(bool) override { return Scalar("a boolean"); }
  bool number_integer(number_integer_t v) override {
    if (v < 0 && depth_ == 3) return Fail(EntryField(field_), "non-negative integers", fmt::format("{}", v));
    return v < 0 ? Scalar("a negative integer") : Integer(static_cast<uint64_t>(v));
  }
  bool number_unsigned(number_unsigned_t v) override { return Integer(v); }
  bool number_float(number_float_t, const string_t& s) override {
    return Scalar(fmt::format("the number {}", s.substr(0, 32)));
  }
  bool string(string_t& s) override {
    if (skip_ == 0 && depth_ == 2 && field_ == "dtype") {
      cur_.dtype = s;
      return true;
    }
    return Scalar("a string");
  }
  bool binary(binary_t&) override { return Scalar("binary data"); }

  bool start_object(std::size_t) override {
    if (skip_ > 0) return Deeper();
    if (depth_ == 0) {
      depth_ = 1;
      return true;
    }
    if (depth_ == 1) {
      if (key_ == "__metadata__") return StartSkip();
      cur_ = RawEntry{key_, {}, {}, {}};
      depth_ = 2;
      return true;
    }
    if (depth_ == 2 && !Known(field_)) return StartSkip();
    return Scalar("an object");
  }
  bool end_object() override {
    if (skip_ > 0) {
      --skip_;
      return true;
    }
    if (depth_ == 2) {
      entries_.push_back(std::move(cur_));
      depth_ = 1;
    } else {
      depth_ = 0;
    }
    return true;
  }
  bool start_array(std::size_t) override {
    if (skip_ > 0) return Deeper();
    if (depth_ == 2 && field_ == "shape") {
      cur_.shape.emplace();
      depth_ = 3;
      return true;
    }
    if (depth_ == 2 && field_ == "data_offsets") {
      cur_.offsets.emplace();
      depth_ = 3;
      return true;
    }
    if ((depth_ == 1 && key_ == "__metadata__") || (depth_ == 2 && !Known(field_))) return StartSkip();
    return Scalar("an array");
  }
  bool end_array() override {
    if (skip_ > 0) {
      --skip_;
      return true;
    }
    depth_ = 2;
    return true;
  }
  bool key(string_t& k) override {
    if (skip_ > 0) return true;
    if (depth_ == 1) {
      if (!seen_.insert(k).second) {
        return Fail(fmt::format("tensor {}", Quoted(k)), "each name once", "a second entry",
                    ErrorCode::kDuplicateTensor);
      }
      key_ = k;
    } else {
      if (Known(k) && ((k == "dtype" && cur_.dtype) || (k == "shape" && cur_.shape) ||
                       (k == "data_offsets" && cur_.offsets))) {
        return Fail(EntryField(k), "the key once", "a second one");
      }
      field_ = k;
    }
    return true;
  }
  bool parse_error(std::size_t position, const std::string& last_token, const nlohmann::detail::exception& ex) override {
    if (!error_) {
      // position counts bytes read, 1-based at the offending one.
      error_ = Error{ErrorCode::kBadJson, "header", 8 + (position > 0 ? position - 1 : 0), "valid JSON",
                     fmt::format("{} (near {})", ex.what(), Quoted(last_token, 24))};
    }
    return false;
  }

  std::optional<Error>& error() { return error_; }
  std::vector<RawEntry>& entries() { return entries_; }
  bool complete() const { return depth_ == 0 && skip_ == 0; }

 private:
  static bool Known(std::string_view k) { return k == "dtype" || k == "shape" || k == "data_offsets"; }
  std::string EntryField(std::string_view k) const { return fmt::format("tensor {}.{}", Quoted(cur_.name), k); }

  bool Integer(uint64_t v) {
    if (skip_ > 0) return true;
    if (depth_ == 3 && field_ == "shape") {
      if (cur_.shape->size() >= kMaxSafetensorsDims) {
        return Fail(EntryField("shape"), fmt::format("at most {} dimensions", kMaxSafetensorsDims), "more",
                    ErrorCode::kBadDims);
      }
      if (v > static_cast<uint64_t>(INT64_MAX)) {
        return Fail(EntryField("shape"), "dimensions below 2^63", std::to_string(v), ErrorCode::kBadDims);
      }
      cur_.shape->push_back(static_cast<int64_t>(v));
      return true;
    }
    if (depth_ == 3 && field_ == "data_offsets") {
      if (cur_.offsets->size() >= 2) return Fail(EntryField("data_offsets"), "[begin, end]", "more than two numbers");
      cur_.offsets->push_back(v);
      return true;
    }
    return Scalar("a number");
  }
  // A scalar where the schema has none (or of the wrong kind): an error,
  // except inside skipped values, __metadata__ and unknown entry fields.
  bool Scalar(const std::string& what) {
    if (skip_ > 0) return true;
    if (depth_ == 0) return Fail("header", "a JSON object", what);
    if (depth_ == 1) {
      if (key_ == "__metadata__") return true;
      return Fail(fmt::format("tensor {}", Quoted(key_)), "an object {dtype, shape, data_offsets}", what);
    }
    if (depth_ == 2) {
      if (!Known(field_)) return true;
      return Fail(EntryField(field_), field_ == "dtype" ? "a string" : "an array of non-negative integers", what);
    }
    return Fail(EntryField(field_), "non-negative integers", what);
  }
  bool StartSkip() {
    skip_ = 1;
    return true;
  }
  bool Deeper() {
    if (++skip_ > kMaxSkipDepth) {
      return Fail(depth_ == 1 ? "header.__metadata__" : EntryField(field_),
                  fmt::format("nesting of at most {}", kMaxSkipDepth), "deeper", ErrorCode::kNestingTooDeep);
    }
    return true;
  }
  bool Fail(std::string field, std::string expected, std::string actual, ErrorCode code = ErrorCode::kBadJson) {
    if (!error_) error_ = Error{code, std::move(field), 8, std::move(expected), std::move(actual)};
    return false;
  }

  int depth_ = 0;  // 1: in the top object, 2: in an entry, 3: in its shape/data_offsets
  int skip_ = 0;   // > 0: nesting inside a value being skipped
  std::string key_, field_;
  RawEntry cur_;
  std::vector<RawEntry> entries_;
  std::unordered_set<std::string> seen_;  // top-level keys
  std::optional<Error> error_;
};

Error WithPath(Error e, const std::string& path) {
  if (!path.empty()) e.field = path + ": " + e.field;
  return e;
}

}  // namespace

std::string_view StDtypeName(StDtype d) {
  switch (d) {
    case StDtype::kF32: return "F32";
    case StDtype::kF16: return "F16";
    case StDtype::kBF16: return "BF16";
  }
  return "?";
}

uint32_t StDtypeSize(StDtype d) { return d == StDtype::kF32 ? 4 : 2; }

Result<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  Result<std::shared_ptr<const Mapping>> m = MapFile(path);
  if (!m.ok()) return m.error();
  return Parse(std::move(*m), path);
}

Result<SafetensorsFile> SafetensorsFile::Parse(std::shared_ptr<const Mapping> mapping, std::string path) {
  SafetensorsFile f;
  f.mapping_ = std::move(mapping);
  f.bytes_ = f.mapping_->bytes();
  f.path_ = std::move(path);
  const uint64_t size = f.bytes_.size();
  if (size < 8) {
    return WithPath(Error{ErrorCode::kTruncated, "header.length", 0, "an 8-byte header length",
                          fmt::format("a file of {} bytes", size)},
                    f.path_);
  }
  uint64_t n;
  std::memcpy(&n, f.bytes_.data(), 8);
  if (n > kMaxSafetensorsHeader) {
    return WithPath(Error{ErrorCode::kTooLarge, "header.length", 0,
                          fmt::format("at most {} bytes", kMaxSafetensorsHeader), std::to_string(n)},
                    f.path_);
  }
  if (n > size - 8) {
    return WithPath(Error{ErrorCode::kTruncated, "header.length", 0,
                          fmt::format("a header of at most the {} bytes after the length", size - 8),
                          std::to_string(n)},
                    f.path_);
  }
  f.data_offset_ = 8 + n;
  const uint64_t data_size = size - f.data_offset_;

  HeaderSax sax;
  const char* begin = reinterpret_cast<const char*>(f.bytes_.data() + 8);
  const bool parsed = Json::sax_parse(begin, begin + n, &sax);
  if (!parsed || !sax.complete()) {
    Error e = sax.error().value_or(Error{ErrorCode::kBadJson, "header", 8, "a complete JSON object", "its end"});
    return WithPath(std::move(e), f.path_);
  }

  std::vector<RawEntry>& raw = sax.entries();
  f.tensors_.reserve(raw.size());
  for (RawEntry& r : raw) {
    const std::string field = fmt::format("tensor {}", Quoted(r.name));
    auto bad = [&](ErrorCode code, std::string_view what, uint64_t at, std::string expected, std::string actual) {
      return WithPath(Error{code, field + std::string(what), at, std::move(expected), std::move(actual)}, f.path_);
    };
    if (!r.dtype || !r.shape || !r.offsets) {
      return bad(ErrorCode::kBadJson, "", 8, "dtype, shape and data_offsets",
                 fmt::format("no {}", !r.dtype ? "dtype" : !r.shape ? "shape" : "data_offsets"));
    }
    const std::optional<StDtype> dtype = ParseDtype(*r.dtype);
    if (!dtype) {
      return bad(ErrorCode::kUnsupported, ".dtype", 8, "F32, F16 or BF16",
                 fmt::format("unsupported dtype {}", Quoted(*r.dtype, 16)));
    }
    if (r.offsets->size() != 2) {
      return bad(ErrorCode::kBadJson, ".data_offsets", 8, "[begin, end]",
                 fmt::format("a list of length {}", r.offsets->size()));
    }
    const uint64_t b = (*r.offsets)[0], e = (*r.offsets)[1];
    if (b > e) return bad(ErrorCode::kBadDims, ".data_offsets", 8, "begin <= end", fmt::format("[{}, {}]", b, e));
    if (e > data_size) {
      return bad(ErrorCode::kTruncated, ".data_offsets", f.data_offset_ + std::min(b, data_size),
                 fmt::format("an end within the {}-byte data section", data_size), fmt::format("[{}, {}]", b, e));
    }
    uint64_t count = 1;
    for (int64_t d : *r.shape) {
      if (__builtin_mul_overflow(count, static_cast<uint64_t>(d), &count)) {
        return bad(ErrorCode::kBadDims, ".shape", 8, "an element count below 2^64", "an overflow");
      }
    }
    uint64_t n_bytes;
    if (__builtin_mul_overflow(count, uint64_t{StDtypeSize(*dtype)}, &n_bytes) || n_bytes != e - b) {
      std::string shape = "[";
      for (size_t i = 0; i < r.shape->size(); ++i) shape += (i ? ", " : "") + std::to_string((*r.shape)[i]);
      return bad(ErrorCode::kBadDims, ".data_offsets", f.data_offset_ + b,
                 fmt::format("{} bytes for shape {}] of {}", count * StDtypeSize(*dtype), shape, *r.dtype),
                 fmt::format("{} bytes ([{}, {}])", e - b, b, e));
    }
    StTensor t;
    t.name = std::move(r.name);
    t.dtype = *dtype;
    t.shape = std::move(*r.shape);
    t.n_elements = count;
    t.offset = f.data_offset_ + b;
    t.data = f.bytes_.subspan(t.offset, n_bytes);
    f.index_.emplace(t.name, f.tensors_.size());
    f.tensors_.push_back(std::move(t));
  }

  // No two tensors may share a byte (empty tensors share none).
  std::vector<const StTensor*> by_offset;
  for (const StTensor& t : f.tensors_) {
    if (!t.data.empty()) by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](const StTensor* a, const StTensor* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const StTensor& prev = *by_offset[i - 1];
    const StTensor& cur = *by_offset[i];
    if (cur.offset < prev.offset + prev.data.size()) {
      return WithPath(Error{ErrorCode::kOverlap, fmt::format("tensor {}.data_offsets", Quoted(cur.name)), cur.offset,
                            fmt::format("data from byte {} (after tensor {})", prev.offset + prev.data.size(),
                                        Quoted(prev.name)),
                            fmt::format("data from byte {}", cur.offset)},
                      f.path_);
    }
  }
  return f;
}

const StTensor* SafetensorsFile::Find(std::string_view name) const {
  const auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Status ToF32(const StTensor& t, std::span<float> out) {
  if (out.size() < t.n_elements || t.data.size() != t.n_elements * StDtypeSize(t.dtype)) {
    return Error{ErrorCode::kInvalidArgument, "tensor '" + t.name + "'", t.offset,
                 fmt::format("room for {} floats", t.n_elements), fmt::format("{}", out.size())};
  }
  const uint8_t* p = t.data.data();
  switch (t.dtype) {
    case StDtype::kF32:
      if (t.n_elements > 0) std::memcpy(out.data(), p, t.n_elements * 4);
      break;
    case StDtype::kF16:
    case StDtype::kBF16:
      for (uint64_t i = 0; i < t.n_elements; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = t.dtype == StDtype::kF16 ? HalfToFloat(h) : Bf16ToFloat(h);
      }
      break;
  }
  return {};
}

Result<std::string> ReadSideFile(const std::string& path, uint64_t max_bytes) {
  Result<std::shared_ptr<const Mapping>> m = MapFile(path);
  if (!m.ok()) return m.error();
  const std::span<const uint8_t> b = (*m)->bytes();
  if (b.size() > max_bytes) {
    return Error{ErrorCode::kTooLarge, path, Error::kNoOffset, fmt::format("at most {} bytes", max_bytes), std::to_string(b.size())};
  }
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

namespace {

bool IsPlainFileName(const std::string& s) {
  return !s.empty() && s != "." && s != ".." && s.find('/') == std::string::npos &&
         s.find('\\') == std::string::npos && s.find('\0') == std::string::npos;
}

// The shard of each tensor from model.safetensors.index.json.
Result<std::map<std::string, std::string>> ReadWeightMap(const std::string& path) {
  Result<std::string> text = ReadSideFile(path);
  if (!text.ok()) return text.error();
  const Json j = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object()) {
    return Error{ErrorCode::kBadJson, path, Error::kNoOffset, "a JSON object with a weight_map object",
                 j.is_discarded() ? "invalid JSON" : "another shape"};
  }
  std::map<std::string, std::string> out;
  for (const auto& [name, shard] : j["weight_map"].items()) {
    if (!shard.is_string() || !IsPlainFileName(shard.get<std::string>())) {
      return Error{ErrorCode::kBadJson, path + ": weight_map." + name, Error::kNoOffset, "a file name in the same folder",
                   shard.is_string() ? Quoted(shard.get<std::string>()) : std::string(shard.type_name())};
    }
    out.emplace(name, shard.get<std::string>());
  }
  return out;
}

}  // namespace

Result<Checkpoint> Checkpoint::Open(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) return Error{ErrorCode::kIo, path, Error::kNoOffset, "a .safetensors file or a folder", "nothing there"};
  Checkpoint c;
  std::vector<std::string> shards;
  std::optional<std::map<std::string, std::string>> weight_map;
  if (fs::is_directory(st)) {
    c.dir_ = path;
    const std::string index = (fs::path(path) / "model.safetensors.index.json").string();
    if (fs::exists(index, ec)) {
      Result<std::map<std::string, std::string>> wm = ReadWeightMap(index);
      if (!wm.ok()) return wm.error();
      for (const auto& [name, shard] : *wm) shards.push_back(shard);
      std::sort(shards.begin(), shards.end());
      shards.erase(std::unique(shards.begin(), shards.end()), shards.end());
      weight_map = std::move(*wm);
    } else {
      for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (name.size() > 12 && name.ends_with(".safetensors") && it->is_regular_file(ec)) shards.push_back(name);
      }
      if (ec) return Error{ErrorCode::kIo, path, Error::kNoOffset, "a readable folder", ec.message()};
      std::sort(shards.begin(), shards.end());
    }
    if (shards.empty()) return Error{ErrorCode::kIo, path, Error::kNoOffset, "*.safetensors files", "none"};
    for (std::string& s : shards) s = (fs::path(path) / s).string();
  } else {
    c.dir_ = fs::path(path).parent_path().string();
    if (c.dir_.empty()) c.dir_ = ".";
    shards.push_back(path);
  }
  const std::string config = (fs::path(c.dir_) / "config.json").string();
  if (fs::exists(config, ec)) {
    Result<std::string> text = ReadSideFile(config);
    if (!text.ok()) return text.error();
    c.config_json_ = std::move(*text);
  }

  for (const std::string& shard : shards) {
    Result<SafetensorsFile> f = SafetensorsFile::Open(shard);
    if (!f.ok()) return f.error();
    const size_t fi = c.files_.size();
    const std::string base = fs::path(shard).filename().string();
    for (size_t ti = 0; ti < f->tensors().size(); ++ti) {
      const StTensor& t = f->tensors()[ti];
      if (weight_map) {
        const auto it = weight_map->find(t.name);
        if (it == weight_map->end() || it->second != base) continue;  // the index names another shard
      }
      if (!c.index_.emplace(t.name, std::pair{fi, ti}).second) {
        return Error{ErrorCode::kDuplicateTensor, shard + ": tensor " + Quoted(t.name), t.offset,
                     "each name in one shard", "a second copy"};
      }
    }
    c.files_.push_back(std::move(*f));
  }
  if (weight_map) {
    for (const auto& [name, shard] : *weight_map) {
      if (!c.index_.contains(name)) {
        return Error{ErrorCode::kTruncated, shard + ": tensor " + Quoted(name), Error::kNoOffset,
                     "the tensor model.safetensors.index.json places there", "absent"};
      }
    }
  }
  return c;
}

const StTensor* Checkpoint::Find(std::string_view name) const {
  const auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &files_[it->second.first].tensors()[it->second.second];
}

std::vector<const StTensor*> Checkpoint::Tensors() const {
  std::vector<const StTensor*> out;
  out.reserve(index_.size());
  for (const auto& [name, at] : index_) out.push_back(&files_[at.first].tensors()[at.second]);
  std::sort(out.begin(), out.end(), [](const StTensor* a, const StTensor* b) { return a->name < b->name; });
  return out;
}

}  // namespace ggufscope::gguf
