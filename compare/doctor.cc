#include "compare/doctor.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include "compare/capture.h"
#include "compare/trace_io.h"
#include "compare/trace_report.h"
#include "reference_cpu/faults.h"
#include "reference_cpu/forward.h"
#include "reference_cpu/perplexity.h"
#include "reference_cpu/tokenizer.h"
#include "reference_cpu/whatif.h"

namespace ggufscope::compare {
namespace {

// "blk.12.attn_norm.weight" -> "attn_norm.weight"; other names unchanged.
std::string Role(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return name;
  const size_t dot = name.find('.', 4);
  return dot == std::string::npos ? name : name.substr(dot + 1);
}

bool IsNorm(const std::string& name) { return name.find("norm") != std::string::npos; }

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

constexpr int kEvalTokens = 32;          // tokens of the shipped text the engines are compared on
constexpr int kPerplexityCtx = 128;      // llama-perplexity's chunking, on the shipped text
constexpr int kPerplexityChunks = 4;
constexpr double kMarkedlyBetter = 0.9;  // what-if: perplexity at most 90% of before
constexpr double kWorse = 1.05;          // what-if: 5% worse

}  // namespace

std::string_view DoctorVerdictName(DoctorVerdict v) {
  switch (v) {
    case DoctorVerdict::kConsistent: return "CONSISTENT";
    case DoctorVerdict::kKernelDiverges: return "FILE INTACT, KERNEL DIVERGES";
    case DoctorVerdict::kFileCorrupt: return "FILE CORRUPT";
    case DoctorVerdict::kUnreadable: return "FILE UNREADABLE";
  }
  return "";
}

int DoctorExitCode(DoctorVerdict v) {
  switch (v) {
    case DoctorVerdict::kConsistent: return 0;
    case DoctorVerdict::kKernelDiverges: return 1;
    case DoctorVerdict::kFileCorrupt: return 2;
    case DoctorVerdict::kUnreadable: return 3;
  }
  return 3;
}

std::optional<Suspect> PeerComparison(const std::vector<inspect::TensorStats>& stats, const std::string& tensor) {
  // Peers: the same role in the other layers; for norms, every other norm
  // of the same width (a model with two layers has one attn_norm peer).
  const auto t = std::find_if(stats.begin(), stats.end(), [&](const auto& s) { return s.name == tensor; });
  if (t == stats.end() || !t->values_checked || t->n == 0) return std::nullopt;
  const std::string role = Role(t->name);
  std::vector<double> peer;
  for (const inspect::TensorStats& o : stats) {
    if (&o != &*t && o.values_checked && Role(o.name) == role) peer.push_back(o.rms);
  }
  std::string peers = fmt::format("{} in the other layers", role);
  if (IsNorm(t->name) && peer.size() < 3) {
    peer.clear();
    for (const inspect::TensorStats& o : stats) {
      if (&o != &*t && o.values_checked && IsNorm(o.name) && o.n == t->n) peer.push_back(o.rms);
    }
    peers = fmt::format("the other norm weights of {} elements", t->n);
  }
  const double med = Median(peer);
  if (peer.size() < 2 || !(med > 0)) return std::nullopt;
  return Suspect{t->name, peers, t->rms, med, t->rms / med, "", std::nullopt, "", std::nullopt};
}

std::vector<Suspect> FindSuspects(const std::vector<inspect::TensorStats>& stats, double factor) {
  std::vector<Suspect> out;
  for (const inspect::TensorStats& t : stats) {
    std::optional<Suspect> s = PeerComparison(stats, t.name);
    if (s && (s->ratio > factor || s->ratio < 1.0 / factor)) out.push_back(std::move(*s));
  }
  std::sort(out.begin(), out.end(), [](const Suspect& a, const Suspect& b) {
    return std::fabs(std::log(std::max(a.ratio, 1e-30))) > std::fabs(std::log(std::max(b.ratio, 1e-30)));
  });
  return out;
}

std::string LikelyCause(std::string_view op) {
  static const std::map<std::string_view, std::string_view> kCauses = {
      {"inp_embd", "the embedding lookup: wrong row layout, dequantization of the token table, or a missing "
                   "embedding scale (Gemma multiplies by sqrt(n_embd))"},
      {"attn_norm", "RMSNorm: the epsilon, the mean (over the wrong axis or without the square), or the weight "
                    "multiply (Gemma-style 1 + w applied twice)"},
      {"Qcur", "the Q/K/V projections: missing biases (Qwen2 has large q/k/v biases), a transposed or "
               "mis-dequantized weight, or RoPE rotating the wrong pairs (NORM vs NEOX) or positions"},
      {"Kcur", "the K projection or its RoPE (see Qcur)"},
      {"Vcur", "the V projection: bias or weight layout"},
      {"kq", "the attention scores: scale, mask or positions"},
      {"kqv_out", "attention over the KV cache: the cache position/indexing, the GQA head mapping, the causal "
                  "or sliding-window mask, or softmax precision (f16 overflow)"},
      {"attn_out", "the attention output projection: a transposed operand or wrong weight layout"},
      {"ffn_inp", "the residual add after attention"},
      {"ffn_norm", "RMSNorm before the feed-forward (see attn_norm)"},
      {"ffn_gate", "the gate projection (weight layout or dequantization)"},
      {"ffn_up", "the up projection (weight layout or dequantization)"},
      {"ffn_out", "the feed-forward: the activation (SiLU vs GELU), gate and up swapped, or the down projection"},
      {"l_out", "the residual add after the feed-forward"},
      {"result_norm", "the final RMSNorm"},
      {"result_output", "the output projection (tied embeddings, vocabulary size) or logit soft-capping"},
  };
  const auto it = kCauses.find(op);
  return it == kCauses.end() ? "an op outside ggufscope's graph table" : std::string(it->second);
}

DoctorReport RunDoctor(const DoctorOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  DoctorReport r;
  r.model = opt.model;
  auto progress = [&](std::string_view what) {
    if (opt.progress) fmt::print(stderr, "[doctor] {}\n", what);
  };

  // 1. The audit: structure, values, provenance.
  progress("audit");
  inspect::AuditOptions ao;
  ao.expect_sha256 = opt.expect_sha256;
  ao.against = opt.against;
  ao.fingerprint = opt.fingerprint;
  ao.threads = opt.threads;
  ao.progress = opt.progress;
  r.audit = inspect::Audit(opt.model, ao);
  if (r.audit.verdict == inspect::Verdict::kUnreadable) {
    r.verdict = DoctorVerdict::kUnreadable;
    for (const inspect::Finding& f : r.audit.findings) {
      if (f.severity == inspect::Severity::kProof) r.evidence.push_back(f.message);
    }
    r.headline = "the file cannot be parsed; nothing else can be checked";
    return r;
  }
  std::vector<std::string> proof;
  for (const inspect::Finding& f : r.audit.findings) {
    if (f.severity == inspect::Severity::kProof) {
      proof.push_back(fmt::format("{}: {}", f.tensor.empty() ? f.key : f.tensor, f.message));
    }
  }
  r.suspects = FindSuspects(r.audit.tensors);
  // With published statistics that fit the file: a suspect that matches
  // them is trained; a tensor that departs is a suspect even when its peers
  // would not single it out (x30 on a norm of 0.03).
  if (!r.audit.fingerprint_model.empty()) {
    for (const inspect::FingerprintMatch& m : r.audit.fingerprint) {
      if (!m.compared) continue;
      auto it = std::find_if(r.suspects.begin(), r.suspects.end(), [&](const Suspect& s) { return s.tensor == m.tensor; });
      if (it == r.suspects.end()) {
        if (m.matches) continue;
        const std::optional<Suspect> s = PeerComparison(r.audit.tensors, m.tensor);
        it = r.suspects.insert(r.suspects.begin(), s.value_or(Suspect{m.tensor, "no peers", 0, 0, 1, "", std::nullopt, "", std::nullopt}));
      }
      it->fingerprint = m.message + " of " + r.audit.fingerprint_model;
      it->matches_fingerprint = m.matches;
    }
  }

  // The checkpoint the file claims to come from: the strongest evidence
  // either way. A tensor within its type's noise of its source is what
  // training produced, however odd it looks among its peers.
  if (!opt.checkpoint.empty()) {
    progress("checkpoint diff");
    gguf::Result<gguf::GgufFile> f = gguf::GgufFile::Open(opt.model);
    inspect::CheckpointDiffOptions co;
    co.threads = opt.threads;
    co.progress = opt.progress;
    gguf::Result<inspect::CheckpointDiffReport> cd =
        f.ok() ? inspect::DiffCheckpoint(*f, opt.checkpoint, co) : gguf::Result<inspect::CheckpointDiffReport>(f.error());
    if (!cd.ok()) {
      r.checkpoint_error = cd.error().Message();
      r.evidence.push_back("the checkpoint could not be compared: " + r.checkpoint_error);
    } else {
      for (const inspect::ConfigContradiction& c : cd->config) {
        proof.push_back(fmt::format("{}: {} here, but the checkpoint's config.json has {} = {}", c.key, c.gguf,
                                    c.config_key, c.config));
      }
      for (const inspect::TensorDiffEntry& e : cd->tensors) {
        const bool matched = e.status == inspect::DiffStatus::kIdentical || e.status == inspect::DiffStatus::kWithinNoise;
        if (e.status == inspect::DiffStatus::kFlagged) {
          proof.push_back(fmt::format("{}: differs from the checkpoint's {}: {}", e.name, e.ref_name, e.j.reason));
        } else if (!matched) {
          proof.push_back(fmt::format("{}: {}", e.name, e.error.empty() ? inspect::DiffStatusName(e.status) : e.error));
        }
        auto it = std::find_if(r.suspects.begin(), r.suspects.end(), [&](const Suspect& s) { return s.tensor == e.name; });
        if (it == r.suspects.end()) continue;
        it->matches_checkpoint = matched;
        it->checkpoint = matched ? fmt::format("matches the checkpoint's {} (relative error {:.3g}, {} band {:.3g})",
                                               e.ref_name, e.d.rel_l2, gguf::TypeName(e.type_a), e.j.expected)
                                 : fmt::format("does not match the checkpoint's {}", e.ref_name);
      }
      r.checkpoint = std::move(*cd);
    }
  }

  // 2. The functional check with the reference.
  gguf::Result<gguf::GgufFile> file = gguf::GgufFile::Open(opt.model);
  std::unique_ptr<reference::Model> model;
  std::vector<int32_t> text_tokens;
  if (file.ok()) {
    gguf::Result<std::unique_ptr<reference::Model>> m = reference::LoadModel(*file);
    gguf::Result<std::unique_ptr<reference::Tokenizer>> tok = reference::Tokenizer::FromGguf(*file);
    if (!m.ok()) {
      r.functional.skipped = "the reference cannot run this file: " + m.error().Message();
    } else if (!tok.ok()) {
      r.functional.skipped = "no usable tokenizer: " + tok.error().Message();
      model = std::move(m).value();
    } else {
      model = std::move(m).value();
      text_tokens = (*tok)->Encode(ShippedText(), (*tok)->add_bos(), false);
      progress("functional check: perplexity on the shipped text");
      reference::PerplexityOptions po;
      po.n_ctx = std::min<int>(kPerplexityCtx, static_cast<int>(text_tokens.size()) / 2 * 2);
      po.max_chunks = kPerplexityChunks;
      po.bos = (*tok)->add_bos() ? (*tok)->bos_id() : -1;
      gguf::Result<reference::PerplexityResult> ppl = reference::Perplexity(*model, text_tokens, po, nullptr);
      if (ppl.ok()) {
        r.functional.ran = true;
        r.functional.ppl = ppl->ppl;
        r.functional.n_scored = ppl->n_scored;
        // NaN/Inf logits (not merely an infinite perplexity: a random model
        // can be confidently wrong enough to overflow exp(mean NLL)).
        if (ppl->first_nonfinite >= 0) {
          r.functional.nonfinite = true;
          r.functional.nonfinite_where = fmt::format("logits at token {} of the shipped text", ppl->first_nonfinite);
        }
        const std::vector<int32_t> prompt = (*tok)->Encode("Once upon a time", (*tok)->add_bos(), false);
        gguf::Result<std::vector<int32_t>> gen = reference::GenerateGreedy(*model, prompt, 24, (*tok)->eos_id());
        if (gen.ok()) {
          std::vector<int32_t> all(prompt.begin() + ((*tok)->add_bos() ? 1 : 0), prompt.end());
          all.insert(all.end(), gen->begin(), gen->end());
          r.functional.generation = (*tok)->Decode(all);
        }
      } else {
        r.functional.skipped = ppl.error().Message();
      }
    }
  } else {
    r.functional.skipped = file.error().Message();
  }
  if (r.functional.nonfinite) {
    proof.push_back(fmt::format("the reference forward pass produces NaN/Inf on the file itself ({})",
                                r.functional.nonfinite_where));
  }

  // 3. Counterfactual repairs of the suspects: only meaningful when the model
  // models English (a random-weight model's perplexity cannot judge a repair).
  const bool trained = r.functional.ran && model && std::isfinite(r.functional.ppl) &&
                       r.functional.ppl < model->hp.n_vocab / 10.0;
  if (opt.what_if && model && !r.suspects.empty()) {
    if (!trained) {
      r.evidence.push_back(fmt::format(
          "--what-if skipped: the model does not model the shipped English text (perplexity {:.1f} with a "
          "vocabulary of {}), so its perplexity cannot judge a repair",
          r.functional.ppl, model->hp.n_vocab));
    } else {
      for (size_t i = 0; i < r.suspects.size() && i < 3; ++i) {
        const Suspect& s = r.suspects[i];
        progress("what-if: " + s.tensor);
        gguf::Result<std::unique_ptr<reference::Model>> m = reference::LoadModel(*file);
        if (!m.ok()) break;
        reference::Repair rep{reference::Repair::Kind::kScale, s.peer_rms / std::max(s.rms, 1e-30)};
        if (!reference::ApplyRepair(**m, s.tensor, rep).ok()) continue;
        reference::PerplexityOptions po;
        po.n_ctx = std::min<int>(kPerplexityCtx, static_cast<int>(text_tokens.size()) / 2 * 2);
        po.max_chunks = kPerplexityChunks;
        gguf::Result<reference::PerplexityResult> ppl = reference::Perplexity(**m, text_tokens, po, nullptr);
        if (!ppl.ok()) continue;
        WhatIfResult w{s.tensor, "rescaled to its peers (" + rep.Describe() + ")", r.functional.ppl, ppl->ppl, ""};
        if (ppl->ppl <= kMarkedlyBetter * r.functional.ppl) {
          w.reading = "markedly better: the file performs worse than the same file with this tensor at its peers' "
                      "scale, which is what damage looks like";
          proof.push_back(fmt::format("{}: repairing it lowers the reference's perplexity from {:.3f} to {:.3f}",
                                      s.tensor, w.ppl_before, w.ppl_after));
        } else if (ppl->ppl >= kWorse * r.functional.ppl) {
          w.reading = "worse: the oddity looks trained; leave it alone";
        } else {
          w.reading = "no clear change";
        }
        r.what_if.push_back(std::move(w));
      }
    }
  }

  // 4. The engine under test against the reference.
  if (model && (!opt.inject.empty() || !opt.engine_trace.empty() || !opt.backend.empty())) {
    std::vector<int32_t> tokens(text_tokens.begin(),
                                text_tokens.begin() + std::min<ptrdiff_t>(kEvalTokens, std::ssize(text_tokens)));
    gguf::Result<Trace> engine = gguf::Error{gguf::ErrorCode::kInvalidArgument, "engine", gguf::Error::kNoOffset, "", ""};
    CaptureOptions co;
    co.hash_model = false;
    if (!opt.engine_trace.empty()) {
      r.engine = "trace " + opt.engine_trace;
      NameMap map;
      bool map_ok = true;
      if (!opt.trace_map.empty()) {
        gguf::Result<NameMap> nm = NameMap::Load(opt.trace_map);
        if (nm.ok()) {
          map = std::move(nm).value();
        } else {
          map_ok = false;
          engine = nm.error();
        }
      }
      if (map_ok) engine = ReadTrace(opt.engine_trace, opt.trace_map.empty() ? nullptr : &map);
      if (engine.ok() && engine->header.tokens) tokens = *engine->header.tokens;
    } else if (!opt.inject.empty()) {
      const std::optional<reference::Fault> f = reference::FaultFromName(opt.inject);
      const std::optional<Backend> b = BackendFromName(opt.backend.empty() ? "cpu" : opt.backend);
      r.engine = (opt.backend.empty() ? std::string("the CPU reference") : "the " + opt.backend + " backend") +
                 " with the injected bug '" + opt.inject + "'";
      co.inject = f.value_or(reference::Fault::kNone);
      if (b) co.backend = *b;
      if (f && b) engine = CaptureTrace(*file, opt.model, *model, tokens, co);
    } else {
      r.engine = "the " + opt.backend + " backend";
      const std::optional<Backend> b = BackendFromName(opt.backend);
      if (b) {
        co.backend = *b;
        engine = CaptureTrace(*file, opt.model, *model, tokens, co);
      }
    }
    progress("reference trace");
    CaptureOptions ro;
    ro.hash_model = false;
    gguf::Result<Trace> ref = tokens.empty() ? gguf::Result<Trace>(gguf::Error{gguf::ErrorCode::kInvalidArgument,
                                                                                "tokens", 0, "some", "none"})
                                             : CaptureTrace(*file, opt.model, *model, tokens, ro);
    if (!engine.ok()) {
      r.engine_error = engine.error().Message();
      r.evidence.push_back("the engine could not be compared: " + engine.error().Message());
    } else if (!ref.ok()) {
      r.evidence.push_back("the reference trace failed: " + ref.error().Message());
    } else {
      gguf::Result<TraceComparison> c = CompareTraces(*ref, *engine, CompareOptions{});
      if (c.ok()) {
        r.comparison = std::move(c).value();
      } else {
        r.evidence.push_back("the traces could not be compared: " + c.error().Message());
      }
    }
  }

  // 5. The verdict.
  if (!proof.empty()) {
    r.verdict = DoctorVerdict::kFileCorrupt;
    r.headline = proof.front();
    r.evidence.insert(r.evidence.begin(), proof.begin(), proof.end());
  } else if (r.comparison && r.comparison->first_divergent) {
    const PointComparison& p = r.comparison->points[*r.comparison->first_divergent];
    r.verdict = DoctorVerdict::kKernelDiverges;
    r.likely_cause = LikelyCause(p.parsed.op);
    r.headline = fmt::format("the engine first leaves the reference at {}{} (relative L2 {:.3g}, tolerance {:.3g}) "
                             "while all of its inputs agree",
                             p.name, p.parsed.layer >= 0 ? fmt::format(", layer {}", p.parsed.layer) : "",
                             p.d.rel_l2, p.tol);
    r.evidence.insert(r.evidence.begin(), "no proof against the file: " + std::string(inspect::VerdictName(r.audit.verdict)) +
                                              " audit" + (r.functional.ran ? ", the reference runs it" : ""));
  } else {
    r.verdict = DoctorVerdict::kConsistent;
    r.headline = r.comparison ? "no proof against the file, and the engine agrees with the reference"
                 : r.engine_error.empty() ? "no proof against the file"
                                          : "no proof against the file; the engine under test could not be run "
                                            "(exit 69): " + r.engine_error;
  }
  int n_source = 0;
  for (const Suspect& s : r.suspects) {
    if (!s.matches_checkpoint || !*s.matches_checkpoint) continue;
    if (++n_source > 3) continue;
    r.evidence.push_back(fmt::format("{} stands out among its peers ({:.3g}x) but {}: that is what training produced, "
                                     "not damage",
                                     s.tensor, s.ratio, s.checkpoint));
  }
  if (n_source > 3) {
    r.evidence.push_back(fmt::format("{} more suspects match the checkpoint (listed below)", n_source - 3));
  }
  if (r.checkpoint && r.checkpoint->flagged == 0) {
    r.evidence.push_back(fmt::format("all {} tensors match the checkpoint {} within their types' noise, and config.json "
                                     "agrees with the metadata",
                                     r.checkpoint->tensors.size(), r.checkpoint->checkpoint));
  }
  int n_trained = 0;
  for (const Suspect& s : r.suspects) {
    if (s.matches_checkpoint) continue;  // the checkpoint said it: the stronger evidence
    if (!s.matches_fingerprint) continue;
    if (*s.matches_fingerprint && ++n_trained > 3) continue;  // the rest: see the suspects list
    if (*s.matches_fingerprint) {
      r.evidence.push_back(fmt::format("{} stands out among its peers ({:.3g}x) but matches the published statistics "
                                       "of the trained checkpoint: that is what training produced, not damage",
                                       s.tensor, s.ratio));
    } else {
      r.evidence.push_back(fmt::format("{} {}: a real suspect", s.tensor, s.fingerprint));
    }
  }
  if (n_trained > 3) {
    r.evidence.push_back(fmt::format("{} more suspects match the published statistics (listed below)", n_trained - 3));
  }
  if (!r.suspects.empty() && r.verdict != DoctorVerdict::kFileCorrupt && !r.suspects.front().matches_fingerprint &&
      !r.suspects.front().matches_checkpoint) {
    const Suspect& s = r.suspects.front();
    r.evidence.push_back(fmt::format(
        "prime suspect if anything is wrong with the file: {} (rms {:.3g}, {:.3g}x the median of {}). This is a "
        "statistic, not proof: trained models have such outliers (Qwen2.5's layer-0 and output norms look exactly "
        "like this); use --against, --expect-sha256 or --what-if to decide",
        s.tensor, s.rms, s.ratio, s.peers));
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

std::string DoctorText(const DoctorReport& r) {
  std::string out = fmt::format("ggufscope doctor: {}\n\n{}\n  {}\n", r.model, DoctorVerdictName(r.verdict), r.headline);
  if (!r.likely_cause.empty()) out += fmt::format("  likely cause: {}\n", r.likely_cause);
  for (size_t i = 0; i < r.evidence.size(); ++i) {
    if (i == 0 && r.evidence[i] == r.headline) continue;
    out += fmt::format("  - {}\n", r.evidence[i]);
  }
  const int proofs = static_cast<int>(std::count_if(r.audit.findings.begin(), r.audit.findings.end(), [](const auto& f) {
    return f.severity == inspect::Severity::kProof;
  }));
  const int evid = static_cast<int>(std::count_if(r.audit.findings.begin(), r.audit.findings.end(), [](const auto& f) {
    return f.severity == inspect::Severity::kEvidence;
  }));
  out += fmt::format("\n1. audit: {} ({} proof, {} evidence)\n", inspect::VerdictName(r.audit.verdict), proofs, evid);
  for (const inspect::Finding& f : r.audit.findings) {
    if (f.severity == inspect::Severity::kNote) continue;
    out += fmt::format("   {:8} {} {}\n", inspect::SeverityName(f.severity), f.tensor.empty() ? f.key : f.tensor,
                       f.message);
  }
  out += "2. suspects (statistics: evidence to look at, never proof)\n";
  if (r.suspects.empty()) out += "   none: every tensor is within 4x of its peers' rms\n";
  for (const Suspect& s : r.suspects) {
    out += fmt::format("   {:32} rms {:<10.4g} {:8.3g}x the median of {}\n", s.tensor, s.rms, s.ratio, s.peers);
    if (!s.fingerprint.empty()) out += fmt::format("   {:32} {}\n", "", s.fingerprint);
    if (!s.checkpoint.empty()) out += fmt::format("   {:32} {}\n", "", s.checkpoint);
  }
  if (r.checkpoint) {
    out += fmt::format("   checkpoint {}: {} of {} tensors differ, are missing, extra or reshaped; {} hyper-parameters "
                       "contradict config.json\n",
                       r.checkpoint->checkpoint, r.checkpoint->flagged - r.checkpoint->config.size(),
                       r.checkpoint->tensors.size(), r.checkpoint->config.size());
  } else if (!r.checkpoint_error.empty()) {
    out += fmt::format("   checkpoint: not compared: {}\n", r.checkpoint_error);
  }
  out += "3. functional check (CPU reference)\n";
  if (r.functional.ran) {
    if (std::isfinite(r.functional.ppl)) {
      out += fmt::format("   perplexity {:.4f} on the shipped text ({} tokens scored)\n", r.functional.ppl,
                         r.functional.n_scored);
    } else {
      out += fmt::format("   perplexity overflows on the shipped text ({} tokens scored; the logits are finite, the "
                         "model is confidently wrong about English: random weights?)\n",
                         r.functional.n_scored);
    }
    if (!r.functional.generation.empty()) out += fmt::format("   greedy: \"{}\"\n", r.functional.generation);
  } else {
    out += fmt::format("   skipped: {}\n", r.functional.skipped);
  }
  if (!r.what_if.empty()) {
    out += "   what-if (the repair a worried user would try, measured):\n";
    for (const WhatIfResult& w : r.what_if) {
      out += fmt::format("   {:32} {}: perplexity {:.4f} -> {:.4f}: {}\n", w.tensor, w.repair, w.ppl_before,
                         w.ppl_after, w.reading);
    }
  }
  out += "4. engine under test\n";
  if (r.engine.empty()) {
    out += "   none given (--backend cuda, --engine-trace T or --inject BUG)\n";
  } else if (r.comparison) {
    out += fmt::format("   {} vs the CPU reference: {}\n", r.engine, SummaryLine(*r.comparison));
  } else {
    out += fmt::format("   {}: not compared\n", r.engine);
  }
  out += fmt::format("\n({:.1f} s)\n", r.seconds);
  return out;
}

nlohmann::json DoctorJson(const DoctorReport& r) {
  nlohmann::json j;
  j["model"] = r.model;
  j["verdict"] = DoctorVerdictName(r.verdict);
  j["exit_code"] = DoctorExitCode(r.verdict);
  j["headline"] = r.headline;
  j["evidence"] = r.evidence;
  j["likely_cause"] = r.likely_cause;
  j["audit"] = inspect::AuditJson(r.audit);
  j["suspects"] = nlohmann::json::array();
  for (const Suspect& s : r.suspects) {
    j["suspects"].push_back({{"tensor", s.tensor}, {"rms", s.rms}, {"peer_rms", s.peer_rms}, {"ratio", s.ratio},
                             {"peers", s.peers}, {"fingerprint", s.fingerprint}, {"checkpoint", s.checkpoint}});
  }
  if (r.checkpoint) j["checkpoint"] = inspect::CheckpointDiffJson(*r.checkpoint, r.model);
  if (!r.checkpoint_error.empty()) j["checkpoint_error"] = r.checkpoint_error;
  j["functional"] = {{"ran", r.functional.ran},
                     {"skipped", r.functional.skipped},
                     {"perplexity", JsonNumber(r.functional.ppl)},
                     {"n_scored", r.functional.n_scored},
                     {"generation", r.functional.generation},
                     {"nonfinite", r.functional.nonfinite}};
  j["what_if"] = nlohmann::json::array();
  for (const WhatIfResult& w : r.what_if) {
    j["what_if"].push_back({{"tensor", w.tensor}, {"repair", w.repair}, {"ppl_before", JsonNumber(w.ppl_before)},
                            {"ppl_after", JsonNumber(w.ppl_after)}, {"reading", w.reading}});
  }
  j["engine"] = r.engine;
  j["engine_error"] = r.engine_error;
  if (r.comparison) {
    j["first_divergent"] = r.comparison->first_divergent
                               ? nlohmann::json(r.comparison->points[*r.comparison->first_divergent].name)
                               : nlohmann::json(nullptr);
    j["comparison_summary"] = SummaryLine(*r.comparison);
  }
  j["seconds"] = r.seconds;
  return j;
}

}  // namespace ggufscope::compare
