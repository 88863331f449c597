#include "cli/cmd_trace.h"

#include <fmt/format.h>

#include <filesystem>

#include "cli/exit_codes.h"
#include "compare/capture.h"
#include "compare/trace_io.h"
#include "compare/trace_report.h"
#include "cuda_runtime/forward.h"
#include "inspect/info.h"
#include "reference_cpu/faults.h"
#include "reference_cpu/model.h"

namespace ggufscope::cli {
namespace {

}  // namespace

int ExitCodeFor(const gguf::Error& e) {
  if (cuda::IsDeviceError(e)) return kExitUnavailable;
  return e.code == gguf::ErrorCode::kInvalidArgument ? kExitUsage : kExitUnreadable;
}

namespace {

nlohmann::json PointJson(const compare::TracePoint& p) {
  nlohmann::json j = {{"name", p.name}, {"shape", {p.rows, p.cols}}, {"nan", p.stats.nan}, {"inf", p.stats.inf}};
  if (p.stats.n_finite() > 0) {
    j["min"] = compare::JsonNumber(p.stats.min);
    j["max"] = compare::JsonNumber(p.stats.max);
    j["mean"] = compare::JsonNumber(p.stats.mean);
    j["rms"] = compare::JsonNumber(p.stats.rms);
  }
  return j;
}

}  // namespace

std::string ProducerString() { return "ggufscope " GGUFSCOPE_VERSION; }

gguf::Result<std::vector<int32_t>> PromptTokens(const gguf::GgufFile& f, const std::string& prompt,
                                                const std::string& ids) {
  if (!prompt.empty()) return compare::EncodePrompt(f, prompt);
  std::vector<int32_t> out;
  size_t pos = 0;
  while (pos <= ids.size()) {
    const size_t comma = std::min(ids.find(',', pos), ids.size());
    const std::string item = ids.substr(pos, comma - pos);
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size() || v < 0 || v > INT32_MAX) {
      return gguf::Error{gguf::ErrorCode::kInvalidArgument, "--tokens", gguf::Error::kNoOffset, "token ids like 1,9038,2501",
                         fmt::format("'{}'", ids)};
    }
    out.push_back(static_cast<int32_t>(v));
    pos = comma + 1;
  }
  return out;
}

void AddInjectOption(CLI::App* cmd, std::string* inject, const std::string& what) {
  std::string names;
  for (const reference::FaultInfo& f : reference::AllFaults()) names += (names.empty() ? "" : ", ") + std::string(f.name);
  cmd->add_option("--inject", *inject, what + ": " + names)->check([](const std::string& s) {
    return reference::FaultFromName(s) ? std::string() : "unknown bug '" + s + "'";
  });
}

CLI::App* AddTraceCommand(CLI::App& app, TraceCliOptions* opt) {
  CLI::App* cmd = app.add_subcommand(
      "trace", "Run an engine over a prompt and write every intermediate (llama.cpp's names) to a GGUF trace file");
  cmd->add_option("model", opt->model, "GGUF model file")->required();
  CLI::Option* p = cmd->add_option("-p,--prompt", opt->prompt, "Prompt text (the model's tokenizer)");
  CLI::Option* t = cmd->add_option("--tokens", opt->tokens, "Prompt as comma-separated token ids");
  p->excludes(t);
  t->excludes(p);
  cmd->add_option("--backend", opt->backend, "Engine: cpu (the reference, default) or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--device", opt->device, "CUDA device index for --backend cuda (default 0)")
      ->check(CLI::Range(0, 1023));
  cmd->add_option("-o,--out", opt->out, "Trace file to write (.gguf); without it only the statistics are printed");
  cmd->add_option("--points", opt->points, "Keep only points whose name matches this regex (e.g. '^(Kcur|l_out)-')");
  cmd->add_flag("--stats-only", opt->stats_only, "Write statistics (min, max, mean, rms, NaN/Inf), not the values");
  cmd->add_flag("--json", opt->json, "Print the header and per-point statistics as JSON");
  AddInjectOption(cmd, &opt->inject, "The engine runs with a known kernel bug (self-tests, demos)");
  AddComputeOptions(cmd, &opt->compute);
  return cmd;
}

int RunTrace(const TraceCliOptions& opt) {
  if (opt.prompt.empty() && opt.tokens.empty()) {
    fmt::print(stderr, "ggufscope trace: give the input as -p PROMPT or --tokens IDS\n");
    return kExitUsage;
  }
  gguf::Result<gguf::GgufFile> f = gguf::GgufFile::Open(opt.model);
  if (!f.ok()) {
    fmt::print(stderr, "ggufscope: {}: {}\n", opt.model, f.error().Message());
    return kExitUnreadable;
  }
  gguf::Result<std::vector<int32_t>> tokens = PromptTokens(*f, opt.prompt, opt.tokens);
  if (!tokens.ok()) {
    fmt::print(stderr, "ggufscope trace: {}\n", tokens.error().Message());
    return ExitCodeFor(tokens.error());
  }
  ApplyComputeOptions(opt.compute);
  gguf::Result<std::unique_ptr<reference::Model>> model = reference::LoadModel(*f);
  if (!model.ok()) {
    fmt::print(stderr, "ggufscope: {}: {}\n", opt.model, model.error().Message());
    return kExitUnreadable;
  }
  compare::CaptureOptions co;
  co.backend = *compare::BackendFromName(opt.backend);
  co.precision = opt.compute.Precision();
  co.device = opt.device;
  co.points_regex = opt.points;
  co.stats_only = opt.stats_only;
  if (!opt.inject.empty()) co.inject = *reference::FaultFromName(opt.inject);  // checked by the parser
  co.producer = ProducerString();
  gguf::Result<compare::Trace> trace = compare::CaptureTrace(*f, opt.model, **model, *tokens, co);
  if (!trace.ok()) {
    fmt::print(stderr, "ggufscope trace: {}\n", trace.error().Message());
    return ExitCodeFor(trace.error());
  }
  if (!opt.out.empty()) {
    const gguf::Status w = compare::WriteTraceGguf(*trace, opt.out);
    if (!w.ok()) {
      fmt::print(stderr, "ggufscope trace: {}\n", w.error().Message());
      return kExitIo;
    }
  }
  if (opt.json) {
    nlohmann::json points = nlohmann::json::array();
    for (const compare::TracePoint& p : trace->points) points.push_back(PointJson(p));
    nlohmann::json j = {{"trace", compare::TraceHeaderJson(*trace)}, {"points", points}};
    if (!opt.out.empty()) j["out"] = opt.out;
    fmt::print("{}\n", inspect::DumpJson(j));
    return kExitOk;
  }
  fmt::print("{:<16} {:>13} {:>12} {:>12} {:>12} {:>12} {:>5} {:>5}\n", "point", "shape", "min", "max", "mean", "rms",
             "nan", "inf");
  for (const compare::TracePoint& p : trace->points) {
    const compare::PointStats& s = p.stats;
    fmt::print("{:<16} {:>13} {:>12.5g} {:>12.5g} {:>12.5g} {:>12.5g} {:>5} {:>5}\n", p.name,
               fmt::format("{} x {}", p.rows, p.cols), s.min, s.max, s.mean, s.rms, s.nan, s.inf);
  }
  const std::string what = fmt::format("{} points ({} {}, {} tokens{})", trace->points.size(), trace->header.backend,
                                       trace->header.precision, tokens->size(),
                                       opt.stats_only ? ", statistics only" : "");
  if (opt.out.empty()) {
    fmt::print("{}; not written (no -o)\n", what);
  } else {
    std::error_code ec;
    const auto size = std::filesystem::file_size(opt.out, ec);
    fmt::print("wrote {} to {}{}\n", what, opt.out, ec ? "" : fmt::format(" ({} bytes)", size));
  }
  return kExitOk;
}

}  // namespace ggufscope::cli
