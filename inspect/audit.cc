// `audit`: runs the checks, the provenance checks and renders the report.
#include "inspect/audit.h"

#include <algorithm>
#include <filesystem>

#include "inspect/fingerprint.h"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <mutex>
#include <thread>

#include "inspect/diff.h"
#include "inspect/hash.h"
#include "inspect/info.h"

namespace ggufscope::inspect {
namespace {

using gguf::ErrorCode;
using gguf::GgufFile;

// The tensor named in a parser error's field ("tensor 'x'.offset"), if any.
std::string TensorOfField(const std::string& field) {
  const size_t a = field.find("tensor '");
  if (a == std::string::npos) return "";
  const size_t b = field.find('\'', a + 8);
  return b == std::string::npos ? "" : field.substr(a + 8, b - a - 8);
}

std::string KeyOfField(const std::string& field) {
  const size_t a = field.find("] '");
  if (field.rfind("kv[", 0) != 0 || a == std::string::npos) return "";
  const size_t b = field.find('\'', a + 3);
  return b == std::string::npos ? "" : field.substr(a + 3, b - a - 3);
}

std::string Sha256(std::span<const uint8_t> bytes) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  constexpr size_t kStep = size_t{64} << 20;
  for (size_t off = 0; off < bytes.size(); off += kStep) {
    EVP_DigestUpdate(ctx, bytes.data() + off, std::min(kStep, bytes.size() - off));
  }
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  std::string hex;
  for (unsigned i = 0; i < len; ++i) hex += fmt::format("{:02x}", md[i]);
  return hex;
}

class Progress {
 public:
  explicit Progress(bool on) : on_(on) {}
  ~Progress() {
    if (on_ && shown_) fmt::print(stderr, "\r{:<60}\r", "");
  }
  void Update(uint64_t done, uint64_t total) {
    if (!on_ || total == 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    const int pct = static_cast<int>(100.0 * static_cast<double>(done) / static_cast<double>(total));
    if (pct == last_) return;
    last_ = pct;
    shown_ = true;
    fmt::print(stderr, "\raudit: {:3d}% of {:.1f} MB of tensors", pct, static_cast<double>(total) / 1e6);
  }

 private:
  bool on_;
  bool shown_ = false;
  int last_ = -1;
  std::mutex mu_;
};

// Tensor by tensor against a reference file of the same model: a tensor
// outside its types' noise band, missing or reshaped is proof; differing
// metadata is evidence (names and descriptions differ between publishers).
void CheckAgainst(const GgufFile& f, const std::string& ref_path, int threads, std::vector<Finding>& out) {
  gguf::Result<GgufFile> ref = GgufFile::Open(ref_path);
  if (!ref.ok()) {
    out.push_back({Severity::kEvidence, "provenance.against", "", "", 0,
                   fmt::format("the reference {} cannot be read: {}", ref_path, ref.error().Message())});
    return;
  }
  const DiffReport d = DiffFiles(f, *ref, threads);
  for (const TensorDiffEntry& e : d.tensors) {
    switch (e.status) {
      case DiffStatus::kIdentical:
      case DiffStatus::kWithinNoise: break;
      case DiffStatus::kOnlyInA:
        out.push_back({Severity::kProof, "provenance.against", e.name, "", e.offset_a, "not in the reference"});
        break;
      case DiffStatus::kOnlyInB:
        out.push_back({Severity::kProof, "provenance.against", e.name, "", 0, "in the reference, missing here"});
        break;
      case DiffStatus::kShapeMismatch:
        out.push_back({Severity::kProof, "provenance.against", e.name, "", e.offset_a, "shape differs from the reference"});
        break;
      case DiffStatus::kFlagged: {
        uint64_t offset = e.offset_a;
        if (e.type_a == e.type_b && !e.d.bytes_identical) offset += e.d.first_diff_byte;
        out.push_back({Severity::kProof, "provenance.against", e.name, "", offset,
                       fmt::format("differs from the reference: {}", e.j.reason)});
        break;
      }
      case DiffStatus::kError:
        out.push_back({Severity::kEvidence, "provenance.against", e.name, "", e.offset_a, e.error});
        break;
    }
  }
  for (const MetaDiffEntry& m : d.metadata) {
    const bool cosmetic = m.key.rfind("general.", 0) == 0 && m.key != "general.architecture" && m.key != "general.alignment";
    out.push_back({cosmetic ? Severity::kNote : Severity::kEvidence, "provenance.against-metadata", "", m.key,
                   f.FindKey(m.key) ? f.FindKey(m.key)->offset : 0,
                   fmt::format("here {}, in the reference {}", m.a.empty() ? "(absent)" : m.a, m.b.empty() ? "(absent)" : m.b)});
  }
  if (d.flagged == 0) {
    out.push_back({Severity::kNote, "provenance.against", "", "", 0,
                   fmt::format("all {} tensors match the reference within their types' noise", d.tensors.size())});
  }
}

// Per-tensor and whole-model hashes against a llama-gguf-hash manifest.
void CheckManifestFile(const GgufFile& f, const std::string& path, const std::string& manifest_path, int threads,
                       std::vector<Finding>& out) {
  gguf::Result<Manifest> m = ReadManifest(manifest_path);
  if (!m.ok() || !m->AnyType()) {
    out.push_back({Severity::kEvidence, "provenance.manifest", "", "", 0,
                   fmt::format("the manifest {} cannot be used: {}", manifest_path,
                               m.ok() ? "it holds no known hash type" : m.error().Message())});
    return;
  }
  HashOptions ho;
  ho.threads = threads > 0 ? static_cast<unsigned>(threads) : 0;
  ho = SelectForManifest(*m, ho);
  gguf::Result<ModelHashes> hashes = HashModel(f, ho);
  if (!hashes.ok()) {
    out.push_back({Severity::kEvidence, "provenance.manifest", "", "", 0, hashes.error().Message()});
    return;
  }
  const std::vector<HashLine> lines = LlamaLines(f, path, ho, *hashes);
  const ManifestReport rep = CheckManifest(*m, f, path, ho, lines);
  if (rep.verdict == ManifestVerdict::kMissingEntry) {
    out.push_back({Severity::kEvidence, "provenance.manifest", "", "", 0,
                   fmt::format("the manifest has no entry for this file{}",
                               rep.manifest_models.empty() ? "" : " (it names " + rep.manifest_models.front() + ")")});
    return;
  }
  size_t ok = 0;
  for (size_t i = 0; i < lines.size() && i < rep.results.size(); ++i) {
    if (rep.results[i] == ManifestResult::kOk) ++ok;
    if (rep.results[i] != ManifestResult::kMismatch) continue;
    const HashLine& l = lines[i];
    std::string tensor;
    uint64_t offset = 0;
    if (l.tensor) {
      const gguf::TensorInfo& t = f.tensors()[*l.tensor];
      tensor = t.name;
      offset = f.data_offset() + t.offset;
    }
    out.push_back({Severity::kProof, "provenance.manifest", tensor, "", offset,
                   fmt::format("{} {} differs from the manifest", HashTypeName(l.type), l.hash)});
  }
  for (const ManifestEntry& e : rep.absent) {
    out.push_back({Severity::kProof, "provenance.manifest", e.name, "", 0,
                   fmt::format("the manifest (line {}) lists a tensor this file lacks", e.line)});
  }
  if (rep.verdict == ManifestVerdict::kSuccess) {
    out.push_back({Severity::kNote, "provenance.manifest", "", "", 0,
                   fmt::format("{} hashes match the manifest", ok)});
  }
}

}  // namespace

std::string_view SeverityName(Severity s) {
  switch (s) {
    case Severity::kNote: return "note";
    case Severity::kEvidence: return "evidence";
    case Severity::kProof: return "proof";
  }
  return "?";
}

std::string_view VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kIntact: return "intact";
    case Verdict::kSuspicious: return "suspicious";
    case Verdict::kCorrupt: return "corrupt";
    case Verdict::kUnreadable: return "unreadable";
  }
  return "?";
}

int ExitCodeOf(Verdict v) {
  switch (v) {
    case Verdict::kIntact: return 0;
    case Verdict::kSuspicious: return 1;
    case Verdict::kCorrupt: return 2;
    case Verdict::kUnreadable: return 3;
  }
  return 3;
}

namespace {

// Published statistics of trained checkpoints (a file or a folder of them):
// the fingerprint whose shapes fit this file best is used; a tensor that
// matches is noted as trained, one that departs is evidence (statistics are
// never proof, but departing from the model's own published statistics is
// what a damaged tensor does).
void CheckFingerprint(const gguf::GgufFile& f, const std::vector<TensorStats>& stats, const std::string& where,
                      std::vector<Finding>& out, AuditReport& r) {
  std::vector<std::string> paths;
  std::error_code ec;
  if (std::filesystem::is_directory(where, ec)) {
    for (const auto& e : std::filesystem::directory_iterator(where, ec)) {
      if (e.path().extension() == ".json") paths.push_back(e.path().string());
    }
    std::sort(paths.begin(), paths.end());
  } else {
    paths.push_back(where);
  }
  const Fingerprint* best = nullptr;
  std::vector<FingerprintMatch> best_m;
  size_t best_n = 0;
  std::vector<Fingerprint> fps;
  fps.reserve(paths.size());
  for (const std::string& p : paths) {
    gguf::Result<Fingerprint> fp = ReadFingerprint(p);
    if (!fp.ok()) {
      if (paths.size() == 1) {
        out.push_back({Severity::kNote, "provenance.fingerprint", "", "", 0,
                       "fingerprint not read: " + fp.error().Message()});
        return;
      }
      continue;
    }
    fps.push_back(std::move(fp).value());
  }
  for (const Fingerprint& fp : fps) {
    std::vector<FingerprintMatch> m = CompareFingerprint(f, stats, fp);
    const size_t n = static_cast<size_t>(std::count_if(m.begin(), m.end(), [](const auto& x) { return x.compared; }));
    if (n > best_n) {
      best_n = n;
      best = &fp;
      best_m = std::move(m);
    }
  }
  // A fingerprint of another model shares a few names and shapes by chance
  // (a bias of the same width): it fits only if most of the file's tensors
  // are found in it with their shapes.
  const size_t n_file = static_cast<size_t>(
      std::count_if(stats.begin(), stats.end(), [](const TensorStats& s) { return s.values_checked; }));
  if (best == nullptr || 2 * best_n < n_file) {
    out.push_back({Severity::kNote, "provenance.fingerprint", "", "", 0,
                   fmt::format("no fingerprint given fits this file ({} of its {} tensors at most have a published "
                               "counterpart of the same name and shape)",
                               best_n, n_file)});
    return;
  }
  r.fingerprint_model = best->model;
  size_t matched = 0;
  for (const FingerprintMatch& m : best_m) {
    if (!m.compared) continue;
    const gguf::TensorInfo* t = f.FindTensor(m.tensor);
    const uint64_t off = t != nullptr ? f.data_offset() + t->offset : 0;
    if (m.matches) {
      ++matched;
    } else {
      out.push_back({Severity::kEvidence, "provenance.fingerprint", m.tensor, "", off,
                     m.message + " of " + best->model});
    }
  }
  out.push_back({Severity::kNote, "provenance.fingerprint", "", "", 0,
                 fmt::format("{} of {} tensors compared match the published statistics of {} (a tensor that matches "
                             "is what training produced, however odd it looks)",
                             matched, best_n, best->model)});
  r.fingerprint = std::move(best_m);
}

}  // namespace

AuditReport Audit(const std::string& path, const AuditOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  AuditReport r;
  r.file = path;
  gguf::Result<GgufFile> parsed = GgufFile::Open(path);
  if (!parsed.ok()) {
    const gguf::Error& e = parsed.error();
    // Not a GGUF file at all (or not ours to read): unreadable. A GGUF file
    // whose structure is broken (truncated, overlapping, impossible sizes):
    // corrupt, and the parser's error is the proof.
    const bool unreadable = e.code == ErrorCode::kIo || e.code == ErrorCode::kBadMagic ||
                            e.code == ErrorCode::kBigEndian || e.code == ErrorCode::kUnsupportedVersion;
    r.verdict = unreadable ? Verdict::kUnreadable : Verdict::kCorrupt;
    r.findings.push_back({Severity::kProof,
                          std::string("structure.") + std::string(gguf::ErrorCodeName(e.code)), TensorOfField(e.field),
                          KeyOfField(e.field), e.offset, e.Message()});
    return r;
  }
  const GgufFile& f = *parsed;
  r.file_size = f.file_size();
  std::thread hasher;
  if (!opt.expect_sha256.empty()) {
    hasher = std::thread([&] { r.sha256 = Sha256(f.bytes()); });
  }
  CheckStructure(f, r.findings);
  CheckMetadata(f, r.findings);
  {
    Progress progress(opt.progress && isatty(STDERR_FILENO));
    StatsOptions so;
    so.threads = opt.threads;
    so.progress = [&](uint64_t d, uint64_t t) { progress.Update(d, t); };
    r.tensors = ComputeStats(f, so);
  }
  CheckValues(f, r.tensors, r.findings);
  CheckConsistency(f, r.tensors, r.findings);
  if (hasher.joinable()) hasher.join();
  if (!opt.expect_sha256.empty()) {
    std::string want = opt.expect_sha256;
    for (char& c : want) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (*r.sha256 != want) {
      r.findings.push_back({Severity::kProof, "provenance.sha256", "", "", 0,
                            fmt::format("sha256 {} differs from the expected {}", *r.sha256, want)});
    } else {
      r.findings.push_back({Severity::kNote, "provenance.sha256", "", "", 0,
                            fmt::format("sha256 {} matches the expected hash", *r.sha256)});
    }
  }
  if (!opt.against.empty()) CheckAgainst(f, opt.against, opt.threads, r.findings);
  if (!opt.manifest.empty()) CheckManifestFile(f, path, opt.manifest, opt.threads, r.findings);
  if (!opt.fingerprint.empty()) CheckFingerprint(f, r.tensors, opt.fingerprint, r.findings, r);
  if (opt.hashes) {
    HashOptions ho;
    ho.Enable(HashType::kXxh64);
    ho.Enable(HashType::kSha256);
    ho.threads = opt.threads > 0 ? static_cast<unsigned>(opt.threads) : 0;
    gguf::Result<ModelHashes> h = HashModel(f, ho);
    if (h.ok()) {
      for (const auto& t : h->tensors) {
        r.tensor_hashes.push_back({t[static_cast<size_t>(HashType::kXxh64)], t[static_cast<size_t>(HashType::kSha256)]});
      }
      r.model_hashes = {h->model[static_cast<size_t>(HashType::kXxh64)], h->model[static_cast<size_t>(HashType::kSha256)]};
    }
  }
  r.verdict = VerdictOf(r.findings);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

nlohmann::json AuditJson(const AuditReport& r) {
  nlohmann::json j;
  j["file"] = r.file;
  j["file_size"] = r.file_size;
  j["verdict"] = VerdictName(r.verdict);
  j["exit_code"] = ExitCodeOf(r.verdict);
  if (r.sha256) j["sha256"] = *r.sha256;
  j["seconds"] = r.seconds;
  nlohmann::json fs = nlohmann::json::array();
  for (const Finding& x : r.findings) {
    fs.push_back({{"severity", SeverityName(x.severity)}, {"check", x.check}, {"tensor", x.tensor},
                  {"key", x.key},
                  {"offset", x.has_offset() ? nlohmann::json(x.offset) : nlohmann::json(nullptr)},
                  {"message", x.message}});
  }
  j["findings"] = std::move(fs);
  auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(fmt::format("{}", v)); };
  if (!r.tensor_hashes.empty()) {
    j["model_xxh64"] = r.model_hashes[0];
    j["model_sha256"] = r.model_hashes[1];
  }
  nlohmann::json ts = nlohmann::json::array();
  for (size_t i = 0; i < r.tensors.size(); ++i) {
    const TensorStats& s = r.tensors[i];
    nlohmann::json t = {{"name", s.name}, {"type", gguf::TypeName(s.type)}, {"n", s.n}};
    if (i < r.tensor_hashes.size()) {
      t["xxh64"] = r.tensor_hashes[i][0];
      t["sha256"] = r.tensor_hashes[i][1];
    }
    if (s.values_checked) {
      t.update({{"min", num(s.min)}, {"max", num(s.max)}, {"mean", num(s.mean)}, {"std", num(s.std)},
                {"rms", num(s.rms)}, {"abs_mean", num(s.abs_mean)}, {"max_abs", num(s.max_abs)},
                {"zero_fraction", s.n ? static_cast<double>(s.zeros) / static_cast<double>(s.n) : 0.0},
                {"nan", s.nan}, {"inf", s.inf}, {"scale_nan", s.scale_nan}, {"scale_inf", s.scale_inf},
                {"zero_rows", s.zero_rows}, {"impossible", s.impossible},
                {"block_max_median", num(s.piece_max_median)}, {"worst_block_ratio", num(s.worst_piece_ratio)}});
    }
    ts.push_back(std::move(t));
  }
  j["tensors"] = std::move(ts);
  return j;
}

std::string AuditText(const AuditReport& r, bool all_tensors) {
  std::string o = fmt::format("{}\n", r.file);
  // Tensors named by a finding are flagged in the table.
  std::map<std::string, Severity> flagged;
  for (const Finding& x : r.findings) {
    if (x.tensor.empty()) continue;
    auto it = flagged.find(x.tensor);
    if (it == flagged.end() || it->second < x.severity) flagged[x.tensor] = x.severity;
  }
  if (!r.tensors.empty()) {
    o += fmt::format("\n  {:<34} {:<7} {:>11} {:>11} {:>11} {:>10} {:>8} {:>6}  {}\n", "tensor", "type", "min", "max",
                     "mean", "std", "zero%", "nan+inf", "");
    size_t hidden = 0;
    for (const TensorStats& s : r.tensors) {
      auto it = flagged.find(s.name);
      const char* mark = it == flagged.end() ? "" : (it->second == Severity::kProof ? "<< proof" : it->second == Severity::kEvidence ? "<< evidence" : "< note");
      if (!all_tensors && it == flagged.end() && r.tensors.size() > 40) {
        ++hidden;
        continue;
      }
      if (!s.values_checked) {
        o += fmt::format("  {:<34} {:<7} (integer tensor: values not judged)\n", s.name.substr(0, 34), gguf::TypeName(s.type));
        continue;
      }
      o += fmt::format("  {:<34} {:<7} {:>11.4g} {:>11.4g} {:>11.4g} {:>10.4g} {:>7.2f}% {:>6}  {}\n", s.name.substr(0, 34),
                       gguf::TypeName(s.type), s.min, s.max, s.mean, s.std,
                       s.n ? 100.0 * static_cast<double>(s.zeros) / static_cast<double>(s.n) : 0.0, s.nan + s.inf, mark);
    }
    if (hidden > 0) o += fmt::format("  ({} unflagged tensors not shown; --all-tensors shows them)\n", hidden);
  }
  size_t counts[3] = {0, 0, 0};
  for (const Finding& x : r.findings) ++counts[static_cast<int>(x.severity)];
  o += fmt::format("\nfindings: {} proof, {} evidence, {} notes\n", counts[2], counts[1], counts[0]);
  for (int sev = 2; sev >= 0; --sev) {
    for (const Finding& x : r.findings) {
      if (static_cast<int>(x.severity) != sev) continue;
      const std::string where = !x.tensor.empty() ? fmt::format("tensor '{}'", x.tensor)
                                : !x.key.empty()  ? fmt::format("key '{}'", x.key)
                                                  : std::string("file");
      const std::string at = x.has_offset() ? fmt::format(", byte {}", x.offset) : std::string();
      o += fmt::format("  [{}] {} ({}{}): {}\n", SeverityName(x.severity), x.check, where, at, x.message);
    }
  }
  o += fmt::format("\nverdict: {}", VerdictName(r.verdict));
  switch (r.verdict) {
    case Verdict::kIntact: o += " (no evidence of damage; statistics cannot see swapped, sign-flipped or moderately rescaled tensors: use --against, --manifest or --expect-sha256 for that)"; break;
    case Verdict::kSuspicious: o += " (evidence worth a look, but no proof of damage)"; break;
    case Verdict::kCorrupt: o += " (proof of damage: see the [proof] findings)"; break;
    case Verdict::kUnreadable: o += " (not a GGUF file this tool can read)"; break;
  }
  o += "\n";
  return o;
}

}  // namespace ggufscope::inspect
