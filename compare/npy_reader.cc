#include "compare/npy_reader.h"

#include <fmt/format.h>

#include <cstring>
#include <limits>
#include <string_view>

#include "gguf/dequant.h"
#include "gguf/mapping.h"

namespace ggufscope::compare {
namespace {

using gguf::Error;
using gguf::ErrorCode;

Error Bad(const std::string& what, std::string field, uint64_t offset, std::string expected, std::string actual) {
  return Error{ErrorCode::kBadJson, what + ": " + field, offset, std::move(expected), std::move(actual)};
}

// The value of 'key' in the header dict, as raw text up to the next ',' at
// depth 0 or the closing '}' (a tuple keeps its parentheses).
std::optional<std::string_view> DictValue(std::string_view dict, std::string_view key) {
  for (const char q : {'\'', '"'}) {
    const std::string quoted = std::string(1, q) + std::string(key) + std::string(1, q);
    size_t pos = dict.find(quoted);
    if (pos == std::string_view::npos) continue;
    pos = dict.find(':', pos + quoted.size());
    if (pos == std::string_view::npos) return std::nullopt;
    ++pos;
    while (pos < dict.size() && dict[pos] == ' ') ++pos;
    int depth = 0;
    size_t end = pos;
    for (; end < dict.size(); ++end) {
      const char c = dict[end];
      if (c == '(') ++depth;
      if (c == ')') --depth;
      if (depth == 0 && (c == ',' || c == '}')) break;
    }
    std::string_view v = dict.substr(pos, end - pos);
    while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
    return v;
  }
  return std::nullopt;
}

struct Dtype {
  char kind = 'f';  // f, i, u, b
  uint32_t size = 4;
};

}  // namespace

gguf::Result<NpyArray> ParseNpy(std::span<const uint8_t> bytes, const std::string& what) {
  static constexpr uint8_t kMagic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (bytes.size() < 10 || std::memcmp(bytes.data(), kMagic, 6) != 0) {
    return Error{ErrorCode::kBadMagic, what, 0, "a NumPy .npy file (\\x93NUMPY)",
                 fmt::format("{} bytes without that magic", bytes.size())};
  }
  const uint8_t major = bytes[6];
  uint64_t header_len = 0, header_start = 0;
  if (major == 1) {
    header_len = static_cast<uint64_t>(bytes[8]) | static_cast<uint64_t>(bytes[9]) << 8;
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return Bad(what, "header length", 8, "4 bytes", "end of file");
    uint32_t len = 0;
    std::memcpy(&len, bytes.data() + 8, 4);
    header_len = len;
    header_start = 12;
  } else {
    return Error{ErrorCode::kUnsupportedVersion, what + ": version", 6, "1, 2 or 3", std::to_string(major)};
  }
  if (header_len > bytes.size() - header_start) {
    return Error{ErrorCode::kTruncated, what + ": header", header_start, fmt::format("{} bytes", header_len),
                 fmt::format("{} bytes before the end of the file", bytes.size() - header_start)};
  }
  const std::string_view dict(reinterpret_cast<const char*>(bytes.data() + header_start), header_len);
  const auto descr = DictValue(dict, "descr");
  const auto fortran = DictValue(dict, "fortran_order");
  const auto shape_text = DictValue(dict, "shape");
  if (!descr || !fortran || !shape_text) {
    return Bad(what, "header", header_start, "a dict with 'descr', 'fortran_order' and 'shape'",
               std::string(dict.substr(0, 120)));
  }
  // descr: '<f4' (also "<f4"); '|' and '=' are little-endian on the hosts we build for.
  std::string_view d = *descr;
  if (d.size() >= 2 && (d.front() == '\'' || d.front() == '"')) d = d.substr(1, d.size() - 2);
  Dtype dt;
  if (d.size() < 3 || (d[0] != '<' && d[0] != '|' && d[0] != '=') ||
      std::string_view("fiub").find(d[1]) == std::string_view::npos) {
    return Error{ErrorCode::kUnsupported, what + ": descr", header_start,
                 "a little-endian number type (<f4, <f2, <f8, <i4, ...)", std::string(d)};
  }
  dt.kind = d[1];
  dt.size = static_cast<uint32_t>(std::atoi(std::string(d.substr(2)).c_str()));
  const bool size_ok = dt.kind == 'f' ? (dt.size == 2 || dt.size == 4 || dt.size == 8)
                                      : (dt.size == 1 || dt.size == 2 || dt.size == 4 || dt.size == 8);
  if (!size_ok) {
    return Error{ErrorCode::kUnsupported, what + ": descr", header_start, "f2, f4, f8 or 1-8 byte integers",
                 std::string(d)};
  }
  const bool is_fortran = *fortran == "True";
  if (!is_fortran && *fortran != "False") {
    return Bad(what, "fortran_order", header_start, "True or False", std::string(*fortran));
  }
  NpyArray out;
  uint64_t n = 1, nonzero = 1;
  {
    std::string_view s = *shape_text;
    if (s.size() < 2 || s.front() != '(' || s.back() != ')') {
      return Bad(what, "shape", header_start, "a tuple of integers", std::string(s));
    }
    s = s.substr(1, s.size() - 2);
    size_t i = 0;
    while (i < s.size()) {
      while (i < s.size() && (s[i] == ' ' || s[i] == ',')) ++i;
      if (i == s.size()) break;
      uint64_t dim = 0;
      size_t j = i;
      for (; j < s.size() && s[j] >= '0' && s[j] <= '9'; ++j) {
        if (dim > (uint64_t{1} << 48)) return Error{ErrorCode::kTooLarge, what + ": shape", header_start, "a dimension below 2^48", std::string(s)};
        dim = dim * 10 + static_cast<uint64_t>(s[j] - '0');
      }
      if (j == i) return Bad(what, "shape", header_start, "a tuple of integers", std::string(s));
      if (out.shape.size() >= 8) return Error{ErrorCode::kBadDims, what + ": shape", header_start, "at most 8 dimensions", std::string(s)};
      // The product of the non-zero dims is bounded too, so that no product
      // of some of them (a width) can overflow, even when another dim is 0.
      if (dim != 0 && nonzero > (uint64_t{1} << 62) / dim) {
        return Error{ErrorCode::kTooLarge, what + ": shape", header_start, "at most 2^62 elements", std::string(s)};
      }
      if (dim != 0) nonzero *= dim;
      n *= dim;
      out.shape.push_back(static_cast<int64_t>(dim));
      i = j;
    }
  }
  const uint64_t data_start = header_start + header_len;
  const uint64_t avail = bytes.size() - data_start;
  if (n > avail / dt.size) {
    return Error{ErrorCode::kTruncated, what + ": data", data_start, fmt::format("{} elements of {} bytes", n, dt.size),
                 fmt::format("{} bytes before the end of the file", avail)};
  }
  if (is_fortran && out.shape.size() > 2) {
    return Error{ErrorCode::kUnsupported, what + ": fortran_order", header_start,
                 "C order for arrays of 3+ dimensions (save np.ascontiguousarray(x))", "True"};
  }
  out.data.resize(n);
  const uint8_t* p = bytes.data() + data_start;
  for (uint64_t i = 0; i < n; ++i, p += dt.size) {
    float v = 0;
    if (dt.kind == 'f') {
      if (dt.size == 2) {
        uint16_t h;
        std::memcpy(&h, p, 2);
        v = gguf::HalfToFloat(h);
      } else if (dt.size == 4) {
        std::memcpy(&v, p, 4);
      } else {
        double x;
        std::memcpy(&x, p, 8);
        v = static_cast<float>(x);
      }
    } else {
      uint64_t raw = 0;
      std::memcpy(&raw, p, dt.size);
      if (dt.kind == 'i' && dt.size < 8 && (raw >> (8 * dt.size - 1) & 1)) raw |= ~uint64_t{0} << (8 * dt.size);
      v = dt.kind == 'i' ? static_cast<float>(static_cast<int64_t>(raw)) : static_cast<float>(raw);
    }
    out.data[i] = v;
  }
  if (is_fortran && out.shape.size() == 2) {
    // Column-major (rows, cols): element (r, c) sits at c * rows + r.
    const size_t rows = static_cast<size_t>(out.shape[0]), cols = static_cast<size_t>(out.shape[1]);
    std::vector<float> c_order(out.data.size());
    for (size_t r = 0; r < rows; ++r) {
      for (size_t c = 0; c < cols; ++c) c_order[r * cols + c] = out.data[c * rows + r];
    }
    out.data = std::move(c_order);
  }
  return out;
}

gguf::Result<NpyArray> ReadNpy(const std::string& path) {
  gguf::Result<std::shared_ptr<const gguf::Mapping>> m = gguf::MapFile(path);
  if (!m.ok()) return m.error();
  const std::span<const uint8_t> bytes = (*m)->bytes();
  if (bytes.size() > kMaxNpyBytes) {
    return Error{ErrorCode::kTooLarge, path, Error::kNoOffset, fmt::format("at most {} bytes", kMaxNpyBytes),
                 std::to_string(bytes.size())};
  }
  return ParseNpy(bytes, path);
}

}  // namespace ggufscope::compare
