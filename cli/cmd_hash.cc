#include "cli/cmd_hash.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/exit_codes.h"
#include "gguf/file.h"
#include "inspect/hash.h"
#include "inspect/info.h"

namespace ggufscope::cli {
namespace {

using inspect::ManifestReport;
using inspect::ManifestResult;
using inspect::HashLine;
using inspect::HashType;
using inspect::Manifest;

constexpr size_t kMaxNotes = 10;  // stderr notes of one kind; the lines themselves list everything

// Writes everything or reports failure (a closed pipe, a full disk), so a
// truncated listing is never mistaken for a complete one.
bool WriteStdout(const std::string& text) {
  const bool ok = std::fwrite(text.data(), 1, text.size(), stdout) == text.size();
  return std::fflush(stdout) == 0 && ok;
}

int Finish(const std::string& text, int rc) {
  if (!WriteStdout(text)) {
    std::fprintf(stderr, "ggufscope: cannot write to stdout\n");
    return kExitIo;
  }
  return rc;
}

int Unreadable(const gguf::Error& e, const std::string& path, bool json) {
  if (json) (void)WriteStdout(inspect::DumpJson(inspect::ErrorJson(e, path)) + "\n");
  fmt::print(stderr, "ggufscope: {}: {}\n", path, e.Message());
  return kExitUnreadable;
}

int ManifestUnusable(const gguf::Error& e, const std::string& path, bool json) {
  if (json) (void)WriteStdout(inspect::DumpJson(inspect::ErrorJson(e, path)) + "\n");
  fmt::print(stderr, "ggufscope: manifest {}: {}\n", path, e.actual);
  return kExitUnreadable;
}

// Manifest text is untrusted too: show it escaped, but leave names that are
// already in manifest form (the usual case) as they are.
std::string Shown(std::string_view s) { return inspect::ManifestName(s) == s ? std::string(s) : inspect::ManifestName(s); }

int ExitFor(inspect::ManifestVerdict v) {
  switch (v) {
    case inspect::ManifestVerdict::kSuccess: return kExitOk;
    case inspect::ManifestVerdict::kFailure: return kExitCorrupt;
    case inspect::ManifestVerdict::kMissingEntry: return kExitUnreadable;
  }
  return kExitUnreadable;
}

nlohmann::json LineJson(const HashLine& l, const gguf::GgufFile& f) {
  nlohmann::json j = {{"type", inspect::HashTypeName(l.type)}, {"hash", l.hash}, {"name", l.name}};
  j["tensor"] = l.tensor ? nlohmann::json(f.tensors()[*l.tensor].name) : nlohmann::json(nullptr);
  return j;
}

}  // namespace

CLI::App* AddHashCommand(CLI::App& app, HashCliOptions* opt) {
  CLI::App* cmd = app.add_subcommand(
      "hash", "Per-tensor and whole-model digests of the tensor data, as llama-gguf-hash prints them");
  cmd->add_option("model", opt->model, "GGUF file")->required();
  cmd->add_flag("--xxh64", opt->xxh64, "xxh64 (the default when no digest is chosen)");
  cmd->add_flag("--sha1", opt->sha1, "sha1");
  cmd->add_flag("--sha256", opt->sha256, "sha256");
  cmd->add_flag("--uuid", opt->uuid, "UUIDv5 of the tensor data in llama.cpp's namespace");
  cmd->add_flag("--all", opt->all, "xxh64, sha1 and sha256");
  cmd->add_flag("--no-layer", opt->no_layer, "Whole-model lines only, no per-tensor lines");
  cmd->add_option("-c,--check", opt->check,
                  "Verify against a manifest (llama-gguf-hash output); without a digest flag, its strongest type");
  cmd->add_flag("--json", opt->json, "Machine-readable output");
  cmd->add_option("--threads", opt->threads, "Worker threads (0 = automatic: one per digest pass)")
      ->check(CLI::Range(0u, 1024u));
  return cmd;
}

int RunHash(const HashCliOptions& cli) {
  inspect::HashOptions opt;
  if (cli.xxh64 || cli.all) opt.Enable(HashType::kXxh64);
  if (cli.sha1 || cli.all) opt.Enable(HashType::kSha1);
  if (cli.sha256 || cli.all) opt.Enable(HashType::kSha256);
  if (cli.uuid) opt.Enable(HashType::kUuid);
  opt.per_tensor = !cli.no_layer;
  opt.threads = cli.threads;

  // The manifest is read first, as llama-gguf-hash does: a check against a
  // manifest that cannot be used fails before any hashing.
  const bool checking = !cli.check.empty();
  Manifest manifest;
  if (checking) {
    gguf::Result<Manifest> m = inspect::ReadManifest(cli.check);
    if (!m.ok()) return ManifestUnusable(m.error(), cli.check, cli.json);
    manifest = std::move(m).value();
    if (!manifest.AnyType()) {
      gguf::Error e{gguf::ErrorCode::kUnsupported, "manifest", gguf::Error::kNoOffset, "lines starting with xxh64, sha1, sha256 or uuid",
                    "no known hash type on any line"};
      return ManifestUnusable(e, cli.check, cli.json);
    }
    opt = inspect::SelectForManifest(manifest, opt);
  }
  opt = opt.Resolved();

  gguf::Result<gguf::GgufFile> file = gguf::GgufFile::Open(cli.model);
  if (!file.ok()) return Unreadable(file.error(), cli.model, cli.json);
  gguf::Result<inspect::ModelHashes> hashes = inspect::HashModel(*file, opt);
  if (!hashes.ok()) {
    fmt::print(stderr, "ggufscope: {}: {}\n", cli.model, hashes.error().Message());
    return kExitIo;
  }
  const std::vector<HashLine> lines = inspect::LlamaLines(*file, cli.model, opt, *hashes);

  if (!checking) {
    if (!cli.json) return Finish(inspect::FormatLlamaManifest(lines), kExitOk);
    nlohmann::json j = {{"file", cli.model}, {"threads", hashes->threads_used}};
    j["lines"] = nlohmann::json::array();
    for (const HashLine& l : lines) j["lines"].push_back(LineJson(l, *file));
    j["model"] = nlohmann::json::object();
    for (const HashLine& l : lines) {
      if (!l.tensor) j["model"][std::string(inspect::HashTypeName(l.type))] = l.hash;
    }
    return Finish(inspect::DumpJson(j) + "\n", kExitOk);
  }

  const ManifestReport report = inspect::CheckManifest(manifest, *file, cli.model, opt, lines);
  const std::string self = inspect::ManifestName(cli.model);
  if (!report.manifest_model.empty() && report.manifest_model != self) {
    fmt::print(stderr, "ggufscope: the manifest names this file '{}'; its lines are checked as '{}'\n",
               Shown(report.manifest_model), self);
  }
  if (report.verdict == inspect::ManifestVerdict::kMissingEntry) {
    std::string names;
    for (size_t i = 0; i < report.manifest_models.size() && i < kMaxNotes; ++i) {
      names += fmt::format("{}'{}'", i == 0 ? "" : ", ", Shown(report.manifest_models[i]));
    }
    if (report.manifest_models.size() > kMaxNotes) names += fmt::format(", ... ({} in all)", report.manifest_models.size());
    fmt::print(stderr, "ggufscope: {} has no {} entry for {}{}\n", cli.check, inspect::HashTypeName(lines.back().type),
               self, names.empty() ? "" : "; it names " + names);
  }
  for (size_t i = 0; i < report.absent.size() && i < kMaxNotes; ++i) {
    const inspect::ManifestEntry& e = report.absent[i];
    fmt::print(stderr, "ggufscope: manifest line {} names tensor '{}', which {} does not have\n", e.line,
               Shown(std::string_view(e.name).substr(report.manifest_model.size() + 1)), self);
  }
  if (report.absent.size() > kMaxNotes) {
    fmt::print(stderr, "ggufscope: ... {} manifest lines in all name tensors the file does not have\n",
               report.absent.size());
  }
  // A tensor the file lacks: our name for it, "-" where this file's hash would be.
  auto absent_line = [&](const inspect::ManifestEntry& e) {
    return HashLine{e.type, "-", self + ":" + Shown(std::string_view(e.name).substr(report.manifest_model.size() + 1)),
                    std::nullopt};
  };

  if (cli.json) {
    nlohmann::json j = {{"file", cli.model}, {"threads", hashes->threads_used}};
    j["lines"] = nlohmann::json::array();
    for (size_t i = 0; i < lines.size(); ++i) {
      nlohmann::json l = LineJson(lines[i], *file);
      l["result"] = inspect::ManifestResultName(report.results[i]);
      j["lines"].push_back(std::move(l));
    }
    nlohmann::json absent = nlohmann::json::array();
    for (const auto& e : report.absent) {
      absent.push_back({{"type", inspect::HashTypeName(e.type)}, {"expected", e.hash}, {"name", e.name},
                        {"manifest_line", e.line}, {"result", "Mismatch"}});
    }
    nlohmann::json types = nlohmann::json::array();
    for (HashType t : {HashType::kSha256, HashType::kSha1, HashType::kXxh64, HashType::kUuid}) {
      if (manifest.types_present[static_cast<size_t>(t)]) types.push_back(inspect::HashTypeName(t));
    }
    j["check"] = {{"manifest", cli.check},     {"manifest_model", report.manifest_model},
                  {"manifest_types", types},   {"ignored_lines", manifest.ignored_lines},
                  {"absent", std::move(absent)}, {"verdict", inspect::ManifestVerdictName(report.verdict)}};
    return Finish(inspect::DumpJson(j) + "\n", ExitFor(report.verdict));
  }

  // llama-gguf-hash's layout: a header naming the manifest's hash types
  // (strongest first), each line with its result, then the verdict.
  std::string out = "manifest  " + inspect::ManifestName(cli.check);
  for (HashType t : {HashType::kSha256, HashType::kSha1, HashType::kXxh64, HashType::kUuid}) {
    if (manifest.types_present[static_cast<size_t>(t)]) out += fmt::format("  {}", inspect::HashTypeName(t));
  }
  out += '\n';
  bool absent_done = report.absent.empty();
  for (size_t i = 0; i < lines.size(); ++i) {
    if (!absent_done && !lines[i].tensor) {  // after the per-tensor lines, before the whole-model ones
      for (const auto& e : report.absent) out += inspect::FormatLine(absent_line(e)) + "  -  Mismatch\n";
      absent_done = true;
    }
    out += fmt::format("{}  -  {}\n", inspect::FormatLine(lines[i]), inspect::ManifestResultName(report.results[i]));
  }
  out += fmt::format("\nVerification results for {} - {}\n", inspect::ManifestName(cli.check),
                     inspect::ManifestVerdictName(report.verdict));
  return Finish(out, ExitFor(report.verdict));
}

}  // namespace ggufscope::cli
