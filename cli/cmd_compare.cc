#include "cli/cmd_compare.h"

#include <fmt/format.h>

#include <fstream>
#include <memory>
#include <optional>

#include "cli/cmd_trace.h"
#include "cli/exit_codes.h"
#include "compare/capture.h"
#include "compare/html_report.h"
#include "compare/trace_compare.h"
#include "compare/trace_io.h"
#include "compare/trace_report.h"
#include "cuda_runtime/forward.h"
#include "inspect/info.h"
#include "reference_cpu/faults.h"
#include "reference_cpu/model.h"

namespace ggufscope::cli {
namespace {

struct Failure {
  int code;
  std::string message;
};

// Parses "X", "OP=X" or "POINT=X" into `tol`.
std::optional<Failure> ParseTolerances(const std::vector<std::string>& items, compare::Tolerance* tol) {
  for (const std::string& item : items) {
    const size_t eq = item.find('=');
    const std::string name = eq == std::string::npos ? "" : item.substr(0, eq);
    const std::string num = eq == std::string::npos ? item : item.substr(eq + 1);
    size_t used = 0;
    double v = -1;
    try {
      v = std::stod(num, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != num.size() || !(v >= 0) || (eq != std::string::npos && name.empty())) {
      return Failure{kExitUsage, fmt::format("--tol expects X, OP=X or POINT=X with X >= 0 (e.g. 1e-3, Kcur=1e-2), "
                                             "got '{}'", item)};
    }
    if (name.empty()) {
      tol->all = v;
    } else {
      tol->by_name[name] = v;
    }
  }
  return std::nullopt;
}

std::optional<Failure> LoadMap(const std::string& path, std::optional<compare::NameMap>* out) {
  if (path.empty()) return std::nullopt;
  gguf::Result<compare::NameMap> m = compare::NameMap::Load(path);
  if (!m.ok()) return Failure{kExitUnreadable, m.error().Message()};
  *out = std::move(*m);
  return std::nullopt;
}

struct Engine {
  compare::Backend backend;
  reference::Precision precision;
};

// "cpu" (the reference at --precision), "cpu-f64", "cuda"; nullopt: a trace path.
std::optional<Engine> EngineFromName(const std::string& side, reference::Precision cpu_precision) {
  if (side == "cpu-f64") return Engine{compare::Backend::kCpu, reference::Precision::kF64};
  if (side == "cpu-f32") return Engine{compare::Backend::kCpu, reference::Precision::kF32};
  const std::optional<compare::Backend> b = compare::BackendFromName(side);
  if (!b) return std::nullopt;
  return Engine{*b, *b == compare::Backend::kCpu ? cpu_precision : reference::Precision::kF32};
}

// A side of `compare MODEL`: an engine run on the model, or a trace file.
class ModelSides {
 public:
  explicit ModelSides(const CompareCliOptions& opt) : opt_(opt) {}

  std::optional<Failure> Open() {
    gguf::Result<gguf::GgufFile> f = gguf::GgufFile::Open(opt_.inputs[0]);
    if (!f.ok()) return Failure{kExitUnreadable, fmt::format("{}: {}", opt_.inputs[0], f.error().Message())};
    if (f->FindKey(compare::kKeyVersion) != nullptr) {
      return Failure{kExitUsage, fmt::format("{} is a trace, not a model: give two traces (compare A B) or a model "
                                             "and its engines (compare MODEL --a cpu --b cuda)", opt_.inputs[0])};
    }
    file_ = std::make_unique<gguf::GgufFile>(std::move(*f));
    return std::nullopt;
  }

  // Reads the trace sides first (an engine side may take its tokens from them).
  std::optional<Failure> ReadTraceSide(const std::string& side, const compare::NameMap* map,
                                       std::optional<compare::Trace>* out) {
    if (EngineFromName(side, opt_.compute.Precision())) return std::nullopt;
    gguf::Result<compare::Trace> t = compare::ReadTrace(side, map);
    if (!t.ok()) return Failure{kExitUnreadable, t.error().Message()};
    *out = std::move(*t);
    return std::nullopt;
  }

  std::optional<Failure> RunEngineSide(const std::string& side, const std::vector<int32_t>& tokens,
                                       reference::Fault inject, std::optional<compare::Trace>* out) {
    const std::optional<Engine> engine = EngineFromName(side, opt_.compute.Precision());
    if (!engine || out->has_value()) return std::nullopt;
    if (model_ == nullptr) {
      gguf::Result<std::unique_ptr<reference::Model>> m = reference::LoadModel(*file_);
      if (!m.ok()) return Failure{kExitUnreadable, fmt::format("{}: {}", opt_.inputs[0], m.error().Message())};
      model_ = std::move(*m);
    }
    compare::CaptureOptions co;
    co.backend = engine->backend;
    co.precision = engine->precision;
    co.device = opt_.device;
    co.points_regex = opt_.points;
    co.hash_model = false;  // both sides run this file: no provenance to prove
    co.inject = inject;
    co.producer = ProducerString();
    gguf::Result<compare::Trace> t = compare::CaptureTrace(*file_, opt_.inputs[0], *model_, tokens, co);
    if (!t.ok()) {
      const gguf::Error& e = t.error();
      const std::string what =
          cuda::IsDeviceError(e) ? fmt::format("cuda backend not available: {}", e.actual) : e.Message();
      return Failure{ExitCodeFor(e), what};
    }
    *out = std::move(*t);
    return std::nullopt;
  }

  const gguf::GgufFile& file() const { return *file_; }

 private:
  const CompareCliOptions& opt_;
  std::unique_ptr<gguf::GgufFile> file_;
  std::unique_ptr<reference::Model> model_;
};

// Writes the HTML report; false (and a message) when the file cannot be written.
bool WriteHtml(const std::string& path, const std::string& page) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (out) out.write(page.data(), static_cast<std::streamsize>(page.size()));
  if (out) out.close();
  if (!out) {
    fmt::print(stderr, "ggufscope compare: cannot write the HTML report {}\n", path);
    return false;
  }
  return true;
}

int Fail(const Failure& f) {
  fmt::print(stderr, "ggufscope compare: {}\n", f.message);
  return f.code;
}

}  // namespace

CLI::App* AddCompareCommand(CLI::App& app, CompareCliOptions* opt) {
  CLI::App* cmd = app.add_subcommand(
      "compare",
      "Two traces (A the reference, B under test), or MODEL run by two engines: per-point errors and the first "
      "divergent op; exit 0 consistent, 1 diverges, 3 unreadable input");
  cmd->add_option("inputs", opt->inputs, "A B (trace .gguf files or .npy directories), or MODEL")
      ->required()
      ->expected(1, 2);
  cmd->add_option("--a", opt->a, "With MODEL: side A (the reference): an engine (cpu, cpu-f64, cuda) or a trace (default cpu)");
  cmd->add_option("--b", opt->b, "With MODEL: side B (under test): an engine (cpu, cpu-f64, cuda) or a trace (default cuda)");
  CLI::Option* p = cmd->add_option("-p,--prompt", opt->prompt, "With MODEL: prompt text for the engines");
  CLI::Option* t = cmd->add_option("--tokens", opt->tokens, "With MODEL: prompt token ids (default: a trace side's)");
  p->excludes(t);
  t->excludes(p);
  cmd->add_option("--device", opt->device, "CUDA device index for a cuda side (default 0)")->check(CLI::Range(0, 1023));
  cmd->add_option("--map", opt->map, "Name map (JSON) for both sides' tensor names");
  cmd->add_option("--map-a", opt->map_a, "Name map for side A only");
  cmd->add_option("--map-b", opt->map_b, "Name map for side B only");
  cmd->add_option("--tol", opt->tol,
                  "Relative L2 tolerance: X for every point, OP=X or POINT=X for some (repeatable; default 1e-3)");
  cmd->add_option("--points", opt->points, "Only points whose name matches this regex");
  cmd->add_flag("--diverging", opt->diverging, "List only the points that diverge");
  cmd->add_flag("--ignore-tokens", opt->ignore_tokens, "Compare traces made from different token ids anyway");
  cmd->add_flag("--json", opt->json, "Machine-readable report");
  cmd->add_option("--html", opt->html,
                  "Also write the report as a self-contained HTML page (plots, tables) to FILE")
      ->type_name("FILE");
  AddInjectOption(cmd, &opt->inject, "With MODEL: side B's engine runs with a known kernel bug (self-tests, demos)");
  AddComputeOptions(cmd, &opt->compute);
  return cmd;
}

int RunCompare(const CompareCliOptions& opt, const CLI::App& cmd) {
  compare::CompareOptions co;
  if (auto f = ParseTolerances(opt.tol, &co.tol)) return Fail(*f);
  co.points_regex = opt.points;
  co.ignore_tokens = opt.ignore_tokens;
  if (!opt.map.empty() && (!opt.map_a.empty() || !opt.map_b.empty())) {
    return Fail({kExitUsage, "give --map (both sides) or --map-a/--map-b, not both"});
  }
  std::optional<compare::NameMap> map_a, map_b;
  if (auto f = LoadMap(opt.map.empty() ? opt.map_a : opt.map, &map_a)) return Fail(*f);
  if (auto f = LoadMap(opt.map.empty() ? opt.map_b : opt.map, &map_b)) return Fail(*f);
  const compare::NameMap* ma = map_a ? &*map_a : nullptr;
  const compare::NameMap* mb = map_b ? &*map_b : nullptr;

  std::optional<compare::Trace> a, b;
  if (opt.inputs.size() == 2) {
    if (cmd.count("--a") + cmd.count("--b") + cmd.count("--prompt") + cmd.count("--tokens") + cmd.count("--inject") > 0) {
      return Fail({kExitUsage, "--a, --b, -p, --tokens and --inject go with `compare MODEL`, not with two traces"});
    }
    for (size_t i = 0; i < 2; ++i) {
      gguf::Result<compare::Trace> t = compare::ReadTrace(opt.inputs[i], i == 0 ? ma : mb);
      if (!t.ok()) return Fail({kExitUnreadable, t.error().Message()});
      (i == 0 ? a : b) = std::move(*t);
    }
  } else {
    const reference::Fault inject =
        opt.inject.empty() ? reference::Fault::kNone : *reference::FaultFromName(opt.inject);  // parser-checked
    if (inject != reference::Fault::kNone && !EngineFromName(opt.b, opt.compute.Precision())) {
      return Fail({kExitUsage, "--inject needs an engine as side B (--b cpu or cuda), not a trace"});
    }
    ModelSides sides(opt);
    if (auto f = sides.Open()) return Fail(*f);
    if (auto f = sides.ReadTraceSide(opt.a, ma, &a)) return Fail(*f);
    if (auto f = sides.ReadTraceSide(opt.b, mb, &b)) return Fail(*f);
    std::vector<int32_t> tokens;
    if (!opt.prompt.empty() || !opt.tokens.empty()) {
      gguf::Result<std::vector<int32_t>> t = PromptTokens(sides.file(), opt.prompt, opt.tokens);
      if (!t.ok()) return Fail({ExitCodeFor(t.error()), t.error().Message()});
      tokens = std::move(*t);
    } else if (a && a->header.tokens) {
      tokens = *a->header.tokens;
    } else if (b && b->header.tokens) {
      tokens = *b->header.tokens;
    } else if (!a || !b) {
      return Fail({kExitUsage, "give the engines' input as -p PROMPT or --tokens IDS (no trace side names its tokens)"});
    }
    if (auto f = sides.RunEngineSide(opt.a, tokens, reference::Fault::kNone, &a)) return Fail(*f);
    if (auto f = sides.RunEngineSide(opt.b, tokens, inject, &b)) return Fail(*f);
  }

  gguf::Result<compare::TraceComparison> c = compare::CompareTraces(*a, *b, co);
  if (!c.ok()) {
    const gguf::Error& e = c.error();
    return Fail({e.field == "--points" ? kExitUsage : kExitUnreadable,
                 e.field == "trace.tokens"
                     ? fmt::format("the traces were made from different tokens: expected {}, found {} "
                                   "(--ignore-tokens compares them anyway)", e.expected, e.actual)
                     : e.Message()});
  }
  if (opt.json) {
    fmt::print("{}\n", inspect::DumpJson(compare::ComparisonJson(*c, *a, *b)));
  } else {
    fmt::print("{}", compare::ComparisonText(*c, *a, *b, opt.diverging));
  }
  if (!opt.html.empty() && !WriteHtml(opt.html, compare::ComparisonHtml(*c, *a, *b))) return kExitIo;
  if (c->points.empty()) {
    fmt::print(stderr, "ggufscope compare: no trace point is in both traces{}\n",
               ma == nullptr && mb == nullptr ? " (other names? see --map)" : "");
    return kExitUnreadable;
  }
  return c->consistent() ? kExitOk : kExitDiverges;
}

}  // namespace ggufscope::cli
