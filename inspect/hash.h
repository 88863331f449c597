// `ggufscope hash`: per-tensor and whole-model digests of a GGUF file's tensor
// data, printed exactly as llama.cpp's `llama-gguf-hash` prints them, so that
// manifests written by either tool can be checked by the other.
//
// What llama-gguf-hash covers (and so what we cover): only tensor data, each
// tensor's exact ggml byte size, in tensor-info order. Metadata, the header,
// alignment padding and gaps are NOT hashed: two files that differ only in
// metadata have the same digests. The whole-model digests are the digest of
// the concatenated tensor bytes; the UUID is the RFC 9562 UUIDv5 whose name is
// those same concatenated bytes and whose namespace is llama.cpp's
// (uuid5(NAMESPACE_URL, "en.wikipedia.org/wiki/Llama.cpp")).
//
// Line format, one per digest: "%-8s  %s  %s" = type padded to 8, two spaces,
// lowercase hex (UUID in 8-4-4-4-12 form), two spaces, then "<path>:<tensor>"
// for a tensor or "<path>" for the whole model. Order: for each tensor in file
// order its xxh64, sha1, sha256 lines; then the whole-model xxh64, sha1,
// sha256 and uuid lines.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/error.h"
#include "gguf/file.h"

namespace ggufscope::inspect {

// In llama-gguf-hash's output order.
enum class HashType { kXxh64 = 0, kSha1 = 1, kSha256 = 2, kUuid = 3 };
inline constexpr size_t kHashTypeCount = 4;
inline constexpr std::array<HashType, kHashTypeCount> kAllHashTypes = {HashType::kXxh64, HashType::kSha1,
                                                                      HashType::kSha256, HashType::kUuid};

// llama.cpp's UUIDv5 namespace: uuid5(NAMESPACE_URL, "en.wikipedia.org/wiki/Llama.cpp")
// = ef001206-dadc-5f6d-a15f-3359e577d4e5.
inline constexpr std::array<uint8_t, 16> kLlamaUuidNamespace = {0xef, 0x00, 0x12, 0x06, 0xda, 0xdc, 0x5f, 0x6d,
                                                                0xa1, 0x5f, 0x33, 0x59, 0xe5, 0x77, 0xd4, 0xe5};

// "xxh64", "sha1", "sha256", "uuid": the manifest's first column.
std::string_view HashTypeName(HashType type);
std::optional<HashType> ParseHashType(std::string_view name);

// One digest of `bytes` as printed: lowercase hex (xxh64 with seed 0 as the
// big-endian u64, as llama-gguf-hash prints it), or for kUuid the UUIDv5 of
// `bytes` in llama.cpp's namespace. Fails only if OpenSSL does.
gguf::Result<std::string> DigestHex(HashType type, std::span<const uint8_t> bytes);
// RFC 9562 UUIDv5: SHA-1 of namespace || name, first 16 bytes, version 5,
// variant 0b10. Python: str(uuid.uuid5(ns, name)).
gguf::Result<std::string> UuidV5(std::span<const uint8_t, 16> name_space, std::span<const uint8_t> name);

struct HashOptions {
  // Which digests. All false means llama-gguf-hash's default: xxh64 only
  // (Resolved() applies it). --all is xxh64+sha1+sha256, not uuid, as in llama.cpp.
  std::array<bool, kHashTypeCount> enabled = {false, false, false, false};
  bool per_tensor = true;  // false = --no-layer: whole-model lines only
  // Worker threads; 0 = one per digest pass, up to the hardware threads.
  unsigned threads = 0;

  bool Has(HashType t) const { return enabled[static_cast<size_t>(t)]; }
  void Enable(HashType t) { enabled[static_cast<size_t>(t)] = true; }
  bool AnyEnabled() const { return enabled[0] || enabled[1] || enabled[2] || enabled[3]; }
  // With no digest chosen, xxh64 (llama-gguf-hash's default).
  HashOptions Resolved() const;
};

struct ModelHashes {
  // Per tensor (file order), indexed by HashType (kUuid unused); empty
  // strings for digests not asked for; empty vector with per_tensor off.
  std::vector<std::array<std::string, kHashTypeCount>> tensors;
  // Whole model, indexed by HashType; empty if not asked for.
  std::array<std::string, kHashTypeCount> model;
  unsigned threads_used = 1;
};

// Streams every tensor's bytes (zero-copy spans into the mapping) through the
// enabled digests. Each digest, per-tensor or whole-model, is one in-order
// pass ("lane"); lanes are spread over threads, never split, so the
// whole-model digests see the tensors in file order whatever the thread count.
gguf::Result<ModelHashes> HashModel(const gguf::GgufFile& file, const HashOptions& options);

// A name as printed in a line. Bytes that would break the whitespace-separated
// manifest format or garble a terminal (ASCII controls, space, DEL, backslash,
// invalid UTF-8, UTF-8-encoded C1 controls) become \xNN; everything else,
// including all ordinary tensor names and paths, is unchanged, so the output is
// byte-identical to llama-gguf-hash's (which prints names raw).
std::string ManifestName(std::string_view raw);

struct HashLine {
  HashType type;
  std::string hash;
  std::string name;              // ManifestName(path) [+ ":" + ManifestName(tensor)]
  std::optional<size_t> tensor;  // index in file.tensors(); nullopt for a whole-model line
};

// The lines llama-gguf-hash prints for `path`, in its order.
std::vector<HashLine> LlamaLines(const gguf::GgufFile& file, const std::string& path, const HashOptions& options,
                                 const ModelHashes& hashes);
// "%-8s  %s  %s" (no newline).
std::string FormatLine(const HashLine& line);
// Every line, each ending in '\n': a manifest as llama-gguf-hash writes it.
std::string FormatLlamaManifest(const std::vector<HashLine>& lines);

// --- manifests -----------------------------------------------------------------

struct ManifestEntry {
  HashType type;
  std::string hash;
  std::string name;
  size_t line = 0;  // 1-based
};

struct Manifest {
  // Lines of >= 3 whitespace-separated tokens whose first is a known hash
  // type; further tokens are ignored, so `--check` output is itself a
  // manifest (as with llama-gguf-hash, which reads lines the same way).
  std::vector<ManifestEntry> entries;
  // Hash types named as the first token of any line (llama.cpp's
  // manifest_type(): the header line and the auto-selection use these).
  std::array<bool, kHashTypeCount> types_present = {false, false, false, false};
  size_t ignored_lines = 0;  // non-empty lines that are not entries
  bool AnyType() const { return types_present[0] || types_present[1] || types_present[2] || types_present[3]; }
};

inline constexpr size_t kMaxManifestBytes = size_t{64} << 20;  // a 10k-tensor --all manifest is ~6 MB

// Never fails: any bytes give a (possibly empty) Manifest.
Manifest ParseManifest(std::string_view text);
// Reads at most kMaxManifestBytes (pipes and process substitution work).
gguf::Result<Manifest> ReadManifest(const std::string& path);

// llama-gguf-hash's choice when --check is given without a digest flag: the
// strongest type the manifest has (sha256 > sha1 > xxh64 > uuid).
HashOptions SelectForManifest(const Manifest& manifest, HashOptions options);

enum class ManifestResult { kNotFound, kMismatch, kOk };
std::string_view ManifestResultName(ManifestResult result);  // "Not Found", "Mismatch", "Ok"

// llama-gguf-hash's overall outcomes (its exit codes 0, 1 and 3).
enum class ManifestVerdict { kSuccess, kFailure, kMissingEntry };
std::string_view ManifestVerdictName(ManifestVerdict verdict);  // "Success", "Failure", "Manifest Missing Entry"

struct ManifestReport {
  // The name the manifest uses for this file: the path as given when the
  // manifest has it (llama-gguf-hash's only rule), else the manifest's only
  // model with the same base name (a published manifest names the file by its
  // publisher's path); empty if none.
  std::string manifest_model;
  // When the path as given is not in the manifest: the models it does name.
  std::vector<std::string> manifest_models;
  std::vector<ManifestResult> results;  // one per line, same order
  // Per-tensor entries (of a checked type) naming a tensor the file lacks:
  // each is a mismatch. llama-gguf-hash never looks at these.
  std::vector<ManifestEntry> absent;
  ManifestVerdict verdict = ManifestVerdict::kMissingEntry;
};

// Checks `lines` (from LlamaLines) against the manifest. As llama-gguf-hash:
// the first entry with the same type and name decides (hex compared
// case-insensitively); a line with no entry is Not Found and fails nothing;
// nothing found at all is kMissingEntry; any mismatch is kFailure. Unlike it:
// uuid lines are looked up under "uuid" (llama-gguf-hash looks them up under
// "sha256" and so never finds them), absent tensors fail, and a manifest made
// under another directory for the same file name is still used (see
// manifest_model).
ManifestReport CheckManifest(const Manifest& manifest, const gguf::GgufFile& file, const std::string& path,
                          const HashOptions& options, const std::vector<HashLine>& lines);

}  // namespace ggufscope::inspect
