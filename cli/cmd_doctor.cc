#include "cli/cmd_doctor.h"

#include <fmt/format.h>
#include <omp.h>

#include "cli/exit_codes.h"
#include "reference_cpu/faults.h"

namespace ggufscope::cli {

CLI::App* AddDoctorCommand(CLI::App& app, DoctorCliOptions* opt) {
  std::string faults;
  for (const reference::FaultInfo& f : reference::AllFaults()) faults += (faults.empty() ? "" : ", ") + std::string(f.name);
  CLI::App* d = app.add_subcommand(
      "doctor",
      "Is it the file or the kernel? Audit + a functional check with the CPU reference + (optionally) the "
      "comparison of an engine with the reference; one verdict: FILE CORRUPT (exit 2), FILE INTACT, KERNEL "
      "DIVERGES (exit 1) or CONSISTENT (exit 0); 3: unreadable; 69: the engine asked for could not be run");
  compare::DoctorOptions& o = opt->doctor;
  d->add_option("model", o.model, "GGUF file")->required();
  CLI::Option* b = d->add_option("--backend", o.backend, "Compare this engine with the reference: cuda")
                       ->check(CLI::IsMember({"cuda", "cpu"}));
  CLI::Option* t = d->add_option("--engine-trace", o.engine_trace,
                                 "A trace of the engine under test (docs/TRACE-FORMAT.md: .gguf or a .npy folder)");
  d->add_option("--map", o.trace_map, "Name map for --engine-trace (JSON, docs/TRACE-FORMAT.md)");
  CLI::Option* i = d->add_option("--inject", o.inject, "Engine under test = the CPU reference with a known bug: " + faults)
                       ->check([](const std::string& s) {
                         return reference::FaultFromName(s) ? std::string() : "unknown bug '" + s + "'";
                       });
  b->excludes(t);
  t->excludes(i);  // --backend cuda --inject BUG: the CUDA pass with the bug (any of them)
  d->add_option("--expect-sha256", o.expect_sha256, "The file's published SHA-256 (proof either way)");
  d->add_option("--against", o.against, "A trusted copy of the file: every tensor compared (proof either way)");
  d->add_option("--fingerprint", o.fingerprint,
                "Published per-tensor statistics of the trained checkpoint (JSON file or folder): a suspect that "
                "matches them is trained, one that departs is a real suspect");
  d->add_option("--checkpoint", o.checkpoint,
                "The Hugging Face checkpoint the file comes from (a folder of *.safetensors with config.json, or one "
                ".safetensors file): a tensor within its type's noise of its source is trained, however odd it looks; "
                "one outside it is proof (FILE CORRUPT)");
  d->add_flag("--what-if", o.what_if,
              "Rescale each suspect to its peers in memory and measure the reference's perplexity: a repair that "
              "helps markedly is evidence of damage; one that hurts says the oddity was trained");
  d->add_option("--threads", o.threads, "CPU threads (default: all)");
  d->add_flag("--json", opt->json, "Machine-readable report");
  return d;
}

int RunDoctor(const DoctorCliOptions& opt) {
  compare::DoctorOptions o = opt.doctor;
  o.progress = true;
  if (o.threads > 0) omp_set_num_threads(o.threads);
  if (o.backend == "cpu") o.backend.clear();  // the CPU engine is the reference (with --inject: with a bug)
  const compare::DoctorReport r = compare::RunDoctor(o);
  if (opt.json) {
    fmt::print("{}\n", compare::DoctorJson(r).dump(2));
  } else {
    fmt::print("{}", compare::DoctorText(r));
  }
  // The engine comparison asked for could not run (no GPU, a bug CUDA cannot
  // inject, an unreadable trace): without proof against the file that is
  // not a verdict of consistency.
  if (!r.engine_error.empty() && r.verdict == compare::DoctorVerdict::kConsistent) return kExitUnavailable;
  // Likewise a --checkpoint that cannot be read (as compare/trace: an input that cannot be read is 3).
  if (!r.checkpoint_error.empty() && r.verdict == compare::DoctorVerdict::kConsistent) return kExitUnreadable;
  return compare::DoctorExitCode(r.verdict);
}

}  // namespace ggufscope::cli
