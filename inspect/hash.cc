#include "inspect/hash.h"

#include "inspect/info.h"

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <set>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <unordered_set>

namespace ggufscope::inspect {
namespace {

using gguf::Error;
using gguf::ErrorCode;

constexpr std::array<std::string_view, kHashTypeCount> kHashTypeNames = {"xxh64", "sha1", "sha256", "uuid"};

// Bytes fed to every lane of a thread before moving on: small enough to stay
// in L2 while the thread's other lanes read the same bytes again.
constexpr size_t kChunkBytes = size_t{256} << 10;

// Relative cost per byte of one pass, for spreading lanes over threads
// (SHA-NI makes sha1 and sha256 about equal; xxh64 is several times faster).
double LaneCost(HashType type) { return type == HashType::kXxh64 ? 0.15 : 1.0; }

size_t Index(HashType t) { return static_cast<size_t>(t); }

std::string Hex(const uint8_t* p, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[p[i] >> 4];
    out[2 * i + 1] = kDigits[p[i] & 15];
  }
  return out;
}

// "8-4-4-4-12" from the first 16 bytes of a SHA-1 digest, with the version
// and variant bits of RFC 9562 section 5.5 set.
std::string UuidFromSha1(const uint8_t* sha1) {
  uint8_t u[16];
  std::memcpy(u, sha1, 16);
  u[6] = static_cast<uint8_t>((u[6] & 0x0f) | 0x50);  // version 5
  u[8] = static_cast<uint8_t>((u[8] & 0x3f) | 0x80);  // variant 0b10
  const std::string h = Hex(u, 16);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" + h.substr(20);
}

Error OpensslError(HashType type, const char* call) {
  const unsigned long code = ERR_get_error();  // NOLINT(runtime/int): OpenSSL's type
  char buf[256] = "no OpenSSL error queued";
  if (code != 0) ERR_error_string_n(code, buf, sizeof buf);
  return Error{ErrorCode::kUnsupported, std::string(HashTypeName(type)), Error::kNoOffset, std::string(call) + " to succeed", buf};
}

// One streaming digest. kUuid is SHA-1 primed with llama.cpp's namespace.
class Hasher {
 public:
  static gguf::Result<Hasher> Create(HashType type) {
    Hasher h(type);
    if (type == HashType::kXxh64) {
      h.xxh_.reset(XXH64_createState());
      if (!h.xxh_) return Error{ErrorCode::kUnsupported, "xxh64", Error::kNoOffset, "XXH64_createState to succeed", "out of memory"};
    } else {
      h.evp_.reset(EVP_MD_CTX_new());
      if (!h.evp_) return OpensslError(type, "EVP_MD_CTX_new");
    }
    if (!h.Reset()) return OpensslError(type, "EVP_DigestInit_ex");
    return h;
  }

  bool Reset() {
    if (type_ == HashType::kXxh64) return XXH64_reset(xxh_.get(), 0) != XXH_ERROR;
    const EVP_MD* md = type_ == HashType::kSha256 ? EVP_sha256() : EVP_sha1();
    if (EVP_DigestInit_ex(evp_.get(), md, nullptr) != 1) return false;
    if (type_ == HashType::kUuid) Update(kLlamaUuidNamespace);
    return !failed_;
  }

  void Update(std::span<const uint8_t> bytes) {
    if (bytes.empty()) return;  // empty spans may carry a null pointer
    if (type_ == HashType::kXxh64) {
      if (XXH64_update(xxh_.get(), bytes.data(), bytes.size()) == XXH_ERROR) failed_ = true;
    } else if (EVP_DigestUpdate(evp_.get(), bytes.data(), bytes.size()) != 1) {
      failed_ = true;
    }
  }

  // The digest as printed; the hasher must be Reset() before reuse.
  gguf::Result<std::string> Finish() {
    if (type_ == HashType::kXxh64) {
      if (failed_) return Error{ErrorCode::kUnsupported, "xxh64", Error::kNoOffset, "XXH64_update to succeed", "it failed"};
      return fmt::format("{:016x}", XXH64_digest(xxh_.get()));
    }
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!FinishRaw(md, &len)) return OpensslError(type_, "EVP_DigestUpdate/EVP_DigestFinal_ex");
    if (type_ == HashType::kUuid) return UuidFromSha1(md);
    return Hex(md, len);
  }

  // The raw EVP digest (not for xxh64); md holds EVP_MAX_MD_SIZE bytes.
  bool FinishRaw(uint8_t* md, unsigned int* len) {
    return !failed_ && evp_ && EVP_DigestFinal_ex(evp_.get(), md, len) == 1;
  }

 private:
  explicit Hasher(HashType type) : type_(type) {}
  struct EvpFree {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  };
  struct XxhFree {
    void operator()(XXH64_state_t* s) const { XXH64_freeState(s); }
  };
  HashType type_;
  std::unique_ptr<EVP_MD_CTX, EvpFree> evp_;
  std::unique_ptr<XXH64_state_t, XxhFree> xxh_;
  bool failed_ = false;
};

// One in-order pass over the tensor data: a per-tensor digest (restarted at
// every tensor) or a whole-model digest.
struct Lane {
  HashType type;
  bool per_tensor;
};

// Runs some lanes in one thread, chunk by chunk, so each chunk is read from
// memory (or disk) once for all of them.
gguf::Status RunLanes(const gguf::GgufFile& file, const std::vector<Lane>& lanes, ModelHashes& out) {
  std::vector<Hasher> hashers;
  hashers.reserve(lanes.size());
  for (const Lane& lane : lanes) {
    gguf::Result<Hasher> h = Hasher::Create(lane.type);
    if (!h.ok()) return h.error();
    hashers.push_back(std::move(h).value());
  }
  const auto& tensors = file.tensors();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const std::span<const uint8_t> data = file.TensorData(tensors[i]);
    for (size_t off = 0; off < data.size(); off += kChunkBytes) {
      const std::span<const uint8_t> chunk = data.subspan(off, std::min(kChunkBytes, data.size() - off));
      for (Hasher& h : hashers) h.Update(chunk);
    }
    for (size_t k = 0; k < lanes.size(); ++k) {
      if (!lanes[k].per_tensor) continue;
      gguf::Result<std::string> hex = hashers[k].Finish();
      if (!hex.ok()) return hex.error();
      out.tensors[i][Index(lanes[k].type)] = std::move(hex).value();
      if (!hashers[k].Reset()) return OpensslError(lanes[k].type, "EVP_DigestInit_ex");
    }
  }
  for (size_t k = 0; k < lanes.size(); ++k) {
    if (lanes[k].per_tensor) continue;
    gguf::Result<std::string> hex = hashers[k].Finish();
    if (!hex.ok()) return hex.error();
    out.model[Index(lanes[k].type)] = std::move(hex).value();
  }
  return {};
}

// Longest-processing-time-first: each lane, costliest first, goes to the
// least loaded thread.
std::vector<std::vector<Lane>> SpreadLanes(const std::vector<Lane>& lanes, size_t n_threads) {
  std::vector<Lane> sorted = lanes;
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const Lane& a, const Lane& b) { return LaneCost(a.type) > LaneCost(b.type); });
  std::vector<std::vector<Lane>> bins(n_threads);
  std::vector<double> load(n_threads, 0.0);
  for (const Lane& lane : sorted) {
    const size_t b = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    bins[b].push_back(lane);
    load[b] += LaneCost(lane.type);
  }
  return bins;
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

// Splits like `istream >> std::string` in the C locale.
std::vector<std::string_view> Tokens(std::string_view line, size_t max_tokens) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (out.size() < max_tokens) {
    while (i < line.size() && IsSpace(line[i])) ++i;
    if (i >= line.size()) break;
    const size_t start = i;
    while (i < line.size() && !IsSpace(line[i])) ++i;
    out.push_back(line.substr(start, i - start));
  }
  return out;
}

bool EqualHex(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'F') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'F') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string_view BaseName(std::string_view s) {
  const size_t slash = s.rfind('/');
  return slash == std::string_view::npos ? s : s.substr(slash + 1);
}


}  // namespace

std::string_view HashTypeName(HashType type) { return kHashTypeNames[Index(type)]; }

std::optional<HashType> ParseHashType(std::string_view name) {
  for (HashType t : kAllHashTypes) {
    if (HashTypeName(t) == name) return t;
  }
  return std::nullopt;
}

gguf::Result<std::string> DigestHex(HashType type, std::span<const uint8_t> bytes) {
  gguf::Result<Hasher> h = Hasher::Create(type);
  if (!h.ok()) return h.error();
  h->Update(bytes);
  return h->Finish();
}

gguf::Result<std::string> UuidV5(std::span<const uint8_t, 16> name_space, std::span<const uint8_t> name) {
  gguf::Result<Hasher> h = Hasher::Create(HashType::kSha1);
  if (!h.ok()) return h.error();
  h->Update(name_space);
  h->Update(name);
  uint8_t md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!h->FinishRaw(md, &len) || len != 20) return OpensslError(HashType::kSha1, "EVP_DigestFinal_ex");
  return UuidFromSha1(md);
}

HashOptions HashOptions::Resolved() const {
  HashOptions o = *this;
  if (!o.AnyEnabled()) o.Enable(HashType::kXxh64);
  return o;
}

gguf::Result<ModelHashes> HashModel(const gguf::GgufFile& file, const HashOptions& options) {
  const HashOptions opt = options.Resolved();
  std::vector<Lane> lanes;
  for (HashType t : kAllHashTypes) {
    if (!opt.Has(t)) continue;
    if (opt.per_tensor && t != HashType::kUuid) lanes.push_back({t, true});
    lanes.push_back({t, false});
  }
  ModelHashes out;
  if (opt.per_tensor) out.tensors.resize(file.tensors().size());

  // More threads than lanes cannot help: a whole-model digest is one
  // sequential pass, and that pass bounds the wall time.
  size_t n_threads = opt.threads;
  if (n_threads == 0) n_threads = std::max(1u, std::thread::hardware_concurrency());
  n_threads = std::clamp<size_t>(n_threads, 1, lanes.size());
  const std::vector<std::vector<Lane>> bins = SpreadLanes(lanes, n_threads);

  // Each thread takes whole bins; the calling thread works too, so a thread
  // that cannot be started only makes the run slower, never incomplete.
  std::vector<gguf::Status> status(bins.size());
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t b; (b = next.fetch_add(1)) < bins.size();) status[b] = RunLanes(file, bins[b], out);
  };
  std::vector<std::thread> threads;
  for (size_t i = 1; i < bins.size(); ++i) {
    try {
      threads.emplace_back(work);
    } catch (const std::system_error&) {
      break;
    }
  }
  work();
  for (std::thread& t : threads) t.join();
  out.threads_used = static_cast<unsigned>(threads.size() + 1);
  for (const gguf::Status& s : status) {
    if (!s.ok()) return s.error();
  }
  return out;
}

std::string ManifestName(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  auto escape = [&out](unsigned char c) { out += fmt::format("\\x{:02x}", c); };
  for (size_t i = 0; i < raw.size();) {
    const auto c = static_cast<unsigned char>(raw[i]);
    if (c <= 0x20 || c == 0x7f || c == '\\') {
      escape(c);
      ++i;
    } else if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
    } else {
      uint32_t cp = 0;
      const size_t len = Utf8At(raw, i, &cp);
      if (len == 0) {
        escape(c);
        ++i;
      } else if (cp < 0xa0) {  // C1 controls, e.g. U+009B (CSI)
        for (size_t k = 0; k < len; ++k) escape(static_cast<unsigned char>(raw[i + k]));
        i += len;
      } else {
        out.append(raw.substr(i, len));
        i += len;
      }
    }
  }
  return out;
}

std::vector<HashLine> LlamaLines(const gguf::GgufFile& file, const std::string& path, const HashOptions& options,
                                 const ModelHashes& hashes) {
  const HashOptions opt = options.Resolved();
  const std::string pname = ManifestName(path);
  std::vector<HashLine> lines;
  const auto& tensors = file.tensors();
  if (opt.per_tensor && hashes.tensors.size() == tensors.size()) {
    for (size_t i = 0; i < tensors.size(); ++i) {
      const std::string name = pname + ":" + ManifestName(tensors[i].name);
      for (HashType t : {HashType::kXxh64, HashType::kSha1, HashType::kSha256}) {
        if (opt.Has(t)) lines.push_back({t, hashes.tensors[i][Index(t)], name, i});
      }
    }
  }
  for (HashType t : kAllHashTypes) {
    if (opt.Has(t)) lines.push_back({t, hashes.model[Index(t)], pname, std::nullopt});
  }
  return lines;
}

std::string FormatLine(const HashLine& line) {
  return fmt::format("{:<8}  {}  {}", HashTypeName(line.type), line.hash, line.name);
}

std::string FormatLlamaManifest(const std::vector<HashLine>& lines) {
  std::string out;
  for (const HashLine& l : lines) {
    out += FormatLine(l);
    out += '\n';
  }
  return out;
}

Manifest ParseManifest(std::string_view text) {
  Manifest m;
  size_t line_no = 0;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++line_no;
    const std::vector<std::string_view> tok = Tokens(line, 3);
    if (tok.empty()) continue;
    const std::optional<HashType> type = ParseHashType(tok[0]);
    if (type) m.types_present[Index(*type)] = true;
    if (!type || tok.size() < 3) {
      ++m.ignored_lines;
      continue;
    }
    m.entries.push_back({*type, std::string(tok[1]), std::string(tok[2]), line_no});
  }
  return m;
}

gguf::Result<Manifest> ReadManifest(const std::string& path) {
  std::FILE* fp = std::fopen(path.c_str(), "rb");
  if (fp == nullptr) {
    return Error{ErrorCode::kIo, "manifest", Error::kNoOffset, "a readable manifest", std::string("cannot open: ") + std::strerror(errno)};
  }
  std::string text;
  char buf[1 << 16];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, fp)) > 0 && text.size() <= kMaxManifestBytes) text.append(buf, n);
  const bool failed = std::ferror(fp) != 0;
  const int err = errno;
  std::fclose(fp);
  if (failed) return Error{ErrorCode::kIo, "manifest", Error::kNoOffset, "a readable manifest", std::string("cannot read: ") + std::strerror(err)};
  if (text.size() > kMaxManifestBytes) {
    return Error{ErrorCode::kTooLarge, "manifest", Error::kNoOffset, fmt::format("at most {} bytes", kMaxManifestBytes),
                 "a larger file (not a hash manifest?)"};
  }
  return ParseManifest(text);
}

HashOptions SelectForManifest(const Manifest& manifest, HashOptions options) {
  if (options.AnyEnabled()) return options;
  for (HashType t : {HashType::kSha256, HashType::kSha1, HashType::kXxh64, HashType::kUuid}) {
    if (manifest.types_present[Index(t)]) {
      options.Enable(t);
      break;
    }
  }
  return options;
}

std::string_view ManifestResultName(ManifestResult result) {
  switch (result) {
    case ManifestResult::kNotFound: return "Not Found";
    case ManifestResult::kMismatch: return "Mismatch";
    case ManifestResult::kOk: return "Ok";
  }
  return "?";
}

std::string_view ManifestVerdictName(ManifestVerdict verdict) {
  switch (verdict) {
    case ManifestVerdict::kSuccess: return "Success";
    case ManifestVerdict::kFailure: return "Failure";
    case ManifestVerdict::kMissingEntry: return "Manifest Missing Entry";
  }
  return "?";
}

ManifestReport CheckManifest(const Manifest& manifest, const gguf::GgufFile& file, const std::string& path,
                          const HashOptions& options, const std::vector<HashLine>& lines) {
  const HashOptions opt = options.Resolved();
  const std::string self = ManifestName(path);
  ManifestReport report;

  std::vector<std::string> tensor_names;
  tensor_names.reserve(file.tensors().size());
  size_t max_tensor_name = 0;
  for (const gguf::TensorInfo& t : file.tensors()) {
    tensor_names.push_back(ManifestName(t.name));
    max_tensor_name = std::max(max_tensor_name, tensor_names.back().size());
  }
  const std::unordered_set<std::string_view> tensor_set(tensor_names.begin(), tensor_names.end());

  // The first entry per (type, name) decides, as in llama-gguf-hash.
  std::array<std::unordered_map<std::string_view, size_t>, kHashTypeCount> index;
  for (size_t i = 0; i < manifest.entries.size(); ++i) {
    const ManifestEntry& e = manifest.entries[i];
    index[Index(e.type)].emplace(e.name, i);
  }

  // Which name does the manifest use for this file? llama-gguf-hash only
  // knows the path exactly as given; a manifest published by someone else
  // names the file by their path, so fall back to the manifest's only model
  // with our base name.
  const std::string self_prefix = self + ":";
  bool exact = false;
  for (const ManifestEntry& e : manifest.entries) {
    if (e.name == self || e.name.starts_with(self_prefix)) {
      exact = true;
      break;
    }
  }
  if (exact) {
    report.manifest_model = self;
  } else {
    // "<model>:<tensor>" for one of our tensors gives <model>; names with no
    // such suffix are models themselves, unless they extend a known model
    // (then they name a tensor we lack). Every probe is bounded (at most
    // kMaxColonProbes suffixes no longer than our longest tensor name, two
    // prefixes), so a hostile line costs linear time.
    constexpr int kMaxColonProbes = 16;
    auto tensor_prefix = [&](std::string_view n) -> std::optional<std::string_view> {
      std::optional<std::string_view> found;
      size_t p = n.rfind(':');
      for (int probes = 0; p != std::string_view::npos && probes < kMaxColonProbes; ++probes) {
        if (n.size() - p - 1 > max_tensor_name) break;
        if (tensor_set.count(n.substr(p + 1)) != 0) found = n.substr(0, p);  // keep the longest tensor name
        p = p == 0 ? std::string_view::npos : n.rfind(':', p - 1);
      }
      return found;
    };
    std::unordered_set<std::string> derived;
    for (const ManifestEntry& e : manifest.entries) {
      if (auto p = tensor_prefix(e.name)) derived.emplace(*p);
    }
    std::set<std::string> candidates(derived.begin(), derived.end());
    for (const ManifestEntry& e : manifest.entries) {
      const std::string_view n = e.name;
      const size_t first = n.find(':'), last = n.rfind(':');
      const bool extends = first != std::string_view::npos &&
                           (derived.count(std::string(n.substr(0, first))) != 0 ||
                            derived.count(std::string(n.substr(0, last))) != 0);
      if (!extends && !tensor_prefix(n)) candidates.emplace(n);
    }
    // Only a file of the same name: a manifest for another model must not
    // make this one look corrupt.
    std::vector<std::string> same_base;
    for (const std::string& c : candidates) {
      if (BaseName(c) == BaseName(self)) same_base.push_back(c);
    }
    if (same_base.size() == 1) report.manifest_model = same_base.front();
    report.manifest_models.assign(candidates.begin(), candidates.end());
  }

  const std::string& model = report.manifest_model;
  bool model_in = false, tensor_in = false, mismatch = false;
  report.results.reserve(lines.size());
  for (const HashLine& line : lines) {
    ManifestResult r = ManifestResult::kNotFound;
    if (!model.empty()) {
      // Our line names use `self`; look them up under the manifest's name.
      const std::string key = model + line.name.substr(std::min(self.size(), line.name.size()));
      const auto& idx = index[Index(line.type)];
      if (auto it = idx.find(key); it != idx.end()) {
        r = EqualHex(manifest.entries[it->second].hash, line.hash) ? ManifestResult::kOk : ManifestResult::kMismatch;
      }
    }
    if (r != ManifestResult::kNotFound) (line.tensor ? tensor_in : model_in) = true;
    if (r == ManifestResult::kMismatch) mismatch = true;
    report.results.push_back(r);
  }

  if (!model.empty() && opt.per_tensor) {
    const std::string prefix = model + ":";
    for (size_t i = 0; i < manifest.entries.size(); ++i) {
      const ManifestEntry& e = manifest.entries[i];
      if (e.type == HashType::kUuid || !opt.Has(e.type) || !e.name.starts_with(prefix)) continue;
      if (tensor_set.count(std::string_view(e.name).substr(prefix.size())) != 0) continue;
      if (index[Index(e.type)].at(e.name) != i) continue;  // a repeated entry: the first one counts
      report.absent.push_back(e);
    }
  }
  if (!report.absent.empty()) tensor_in = mismatch = true;

  if (!model_in && !tensor_in) {
    report.verdict = ManifestVerdict::kMissingEntry;
  } else {
    report.verdict = mismatch ? ManifestVerdict::kFailure : ManifestVerdict::kSuccess;
  }
  return report;
}

}  // namespace ggufscope::inspect
