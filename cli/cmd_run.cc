#include "cli/cmd_run.h"

#include <fmt/format.h>

#include <chrono>
#include <functional>
#include <memory>

#include "cli/exit_codes.h"
#include "cuda_runtime/device.h"
#include "cuda_runtime/forward.h"
#include "gguf/file.h"
#include "inspect/info.h"
#include "inspect/npy.h"
#include "reference_cpu/chat.h"
#include "reference_cpu/forward.h"
#include "reference_cpu/tokenizer.h"

namespace ggufscope::cli {
namespace {

// The text of a token for display: SentencePiece's U+2581 as a space and
// <0xNN> byte tokens as their byte (the full detokenizer comes with the
// tokenizers, issue 4).
std::string Piece(const gguf::GgufFile& f, int32_t id) {
  const gguf::KeyValue* tokens = f.FindKey("tokenizer.ggml.tokens");
  if (tokens == nullptr || tokens->value.type != gguf::ValueType::kArray || id < 0 ||
      static_cast<size_t>(id) >= tokens->value.strings.size()) {
    return fmt::format("<{}>", id);
  }
  std::string s = tokens->value.strings[static_cast<size_t>(id)];
  if (s.size() == 6 && s.rfind("<0x", 0) == 0 && s.back() == '>') {
    return std::string(1, static_cast<char>(std::stoi(s.substr(3, 2), nullptr, 16)));
  }
  std::string out;
  for (size_t i = 0; i < s.size();) {
    if (s.compare(i, 3, "\xe2\x96\x81") == 0) {
      out += ' ';
      i += 3;
    } else {
      out += s[i++];
    }
  }
  return out;
}

// Eval of a fresh session of the chosen backend (reference::Session::Eval's contract).
using EvalFn = std::function<gguf::Result<reference::RowMatrix>(std::span<const int32_t>, bool all_logits)>;

gguf::Result<EvalFn> OpenSession(const reference::Model& cpu, const cuda::Model* gpu, int n_ctx,
                                 reference::Precision precision, const cuda::SessionOptions& cuda_options) {
  if (gpu == nullptr) {
    auto s = std::make_shared<reference::Session>(cpu, n_ctx, precision);
    return EvalFn([s](std::span<const int32_t> t, bool all) { return s->Eval(t, all); });
  }
  gguf::Result<std::unique_ptr<cuda::Session>> s = cuda::Session::Create(*gpu, n_ctx, cuda_options);
  if (!s.ok()) return s.error();
  std::shared_ptr<cuda::Session> shared = std::move(s).value();
  return EvalFn([shared](std::span<const int32_t> t, bool all) { return shared->Eval(t, all); });
}

// A failed forward pass: bad input (exit 64) or the device failing (69).
int ForwardFailure(const gguf::Error& e) {
  fmt::print(stderr, "ggufscope: {}\n", e.Message());
  return cuda::IsDeviceError(e) ? kExitUnavailable : kExitUsage;
}

}  // namespace

CLI::App* AddRunCommand(CLI::App& app, RunCliOptions* opt) {
  CLI::App* run = app.add_subcommand(
      "run", "Generate with the CPU reference or CUDA forward pass (llama, qwen2, qwen3, gemma3)");
  run->add_option("model", opt->model, "GGUF file")->required();
  CLI::Option* p = run->add_option("-p,--prompt", opt->prompt, "Prompt text");
  CLI::Option* t = run->add_option("--tokens", opt->tokens, "Prompt as comma-separated token ids");
  p->excludes(t);
  t->excludes(p);
  run->add_option("-n,--n-predict", opt->n_predict, "Tokens to generate (default 32)");
  run->add_option("--temp", opt->temp, "Temperature (default 0: greedy)");
  run->add_option("--top-k", opt->top_k, "Keep the K most likely tokens (default 40; 0: all)");
  run->add_option("--top-p", opt->top_p, "Keep the smallest set of probability mass P (default 0.95)");
  run->add_option("--seed", opt->seed, "Random seed of the sampler (default 0)");
  run->add_flag("--chat", opt->chat, "Wrap the prompt in the model's chat format (ChatML, Gemma turns, Llama-3 headers)");
  run->add_option("--logits-out", opt->logits_out, "Write the prompt's logits (n_tokens x n_vocab) as .npy");
  run->add_flag("--json", opt->json, "Print the generated ids and text as JSON");
  run->add_option("--backend", opt->backend, "Forward pass: cpu (the reference, default) or cuda (f32 on a GPU)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  run->add_option("--device", opt->device, "CUDA device index for --backend cuda (default 0; see `ggufscope devices`)")
      ->check(CLI::Range(0, 1023));
  run->add_option("--prefill-math", opt->prefill_math,
                  "--backend cuda: the prompt's matrix products in f32 (default: within the reference's trace "
                  "tolerance), tf32 or f16 (tensor cores: faster, fewer digits)")
      ->check(CLI::IsMember({"f32", "tf32", "f16"}));
  AddComputeOptions(run, &opt->compute);
  return run;
}

int RunRun(const RunCliOptions& opt) {
  if (opt.backend != "cuda" && opt.prefill_math != "f32") {
    fmt::print(stderr, "ggufscope: --prefill-math is the CUDA pass's (--backend cuda); the CPU reference is f32 or f64\n");
    return kExitUsage;
  }
  cuda::SessionOptions cuda_options;
  cuda_options.prefill_math = cuda::GemmMathFromName(opt.prefill_math);
  gguf::Result<gguf::GgufFile> f = gguf::GgufFile::Open(opt.model);
  if (!f.ok()) {
    fmt::print(stderr, "ggufscope: {}: {}\n", opt.model, f.error().Message());
    return kExitUnreadable;
  }
  gguf::Result<std::unique_ptr<reference::Tokenizer>> tok = reference::Tokenizer::FromGguf(*f);
  reference::ChatFormat chat = reference::ChatFormat::kNone;
  std::vector<int32_t> prompt;
  if (!opt.prompt.empty()) {
    if (!tok.ok()) {
      fmt::print(stderr, "ggufscope: {}: {}\n", opt.model, tok.error().Message());
      return kExitUnreadable;
    }
    std::string text = opt.prompt;
    if (opt.chat) {
      chat = reference::DetectChatFormat(*f, **tok);
      if (chat == reference::ChatFormat::kNone) {
        fmt::print(stderr, "ggufscope: --chat: no chat format found in {} (template or turn tokens)\n", opt.model);
        return kExitUsage;
      }
      text = reference::ApplyChat(chat, opt.prompt, reference::DefaultSystem(*f));
    }
    prompt = (*tok)->Encode(text, (*tok)->add_bos(), true);
  }
  if (opt.prompt.empty()) try {
    size_t pos = 0;
    while (pos < opt.tokens.size()) {
      const size_t comma = opt.tokens.find(',', pos);
      prompt.push_back(static_cast<int32_t>(std::stol(opt.tokens.substr(pos, comma - pos))));
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
  } catch (const std::exception&) {
    fmt::print(stderr, "ggufscope: --tokens expects ids like 1,9038,2501\n");
    return kExitUsage;
  }
  if (prompt.empty() || opt.n_predict < 0 || opt.n_predict > 1 << 20) {
    fmt::print(stderr, "ggufscope: --tokens needs at least one id and -n 0..1048576\n");
    return kExitUsage;
  }
  ApplyComputeOptions(opt.compute);
  gguf::Result<std::unique_ptr<reference::Model>> model = reference::LoadModel(*f);
  if (!model.ok()) {
    fmt::print(stderr, "ggufscope: {}: {}\n", opt.model, model.error().Message());
    return kExitUnreadable;
  }
  // --backend cuda: the model goes to the GPU once; each session below is a
  // KV cache on it. The context outlives the model, which outlives the sessions.
  std::unique_ptr<cuda::Context> cuda_ctx;
  std::unique_ptr<cuda::Model> cuda_model;
  std::string backend_label = "CPU reference";
  if (opt.backend == "cuda") {
    if (opt.compute.precision == "f64") {
      fmt::print(stderr, "ggufscope: --precision f64 is the CPU reference's; the CUDA pass computes in f32\n");
      return kExitUsage;
    }
    std::string why;
    const std::vector<cuda::DeviceInfo> devices = cuda::ListDevices(&why);
    if (devices.empty()) {
      fmt::print(stderr, "ggufscope: --backend cuda: {}\n", why);
      return kExitUnavailable;
    }
    if (static_cast<size_t>(opt.device) >= devices.size()) {
      fmt::print(stderr, "ggufscope: --device {}: {} CUDA device(s) visible\n", opt.device, devices.size());
      return kExitUnavailable;
    }
    cuda_ctx = cuda::Context::Create(opt.device, &why);
    if (cuda_ctx == nullptr) {
      fmt::print(stderr, "ggufscope: --backend cuda: {}\n", why);
      return kExitUnavailable;
    }
    gguf::Result<std::unique_ptr<cuda::Model>> up = cuda::Model::Upload(*cuda_ctx, **model);
    if (!up.ok()) {
      fmt::print(stderr, "ggufscope: {}: {}\n", opt.model, up.error().Message());
      return cuda::IsDeviceError(up.error()) ? kExitUnavailable : kExitUnreadable;
    }
    cuda_model = std::move(up).value();
    backend_label = fmt::format("CUDA on cuda:{} {}{}", opt.device, devices[static_cast<size_t>(opt.device)].name,
                                opt.prefill_math == "f32" ? "" : ", prefill " + opt.prefill_math);
  }
  if (!opt.logits_out.empty()) {
    gguf::Result<EvalFn> eval =
        OpenSession(**model, cuda_model.get(), static_cast<int>(prompt.size()), opt.compute.Precision(), cuda_options);
    if (!eval.ok()) return ForwardFailure(eval.error());
    gguf::Result<reference::RowMatrix> logits = (*eval)(prompt, true);
    if (!logits.ok()) return ForwardFailure(logits.error());
    const gguf::Status w = inspect::WriteNpyF32(opt.logits_out, std::span<const float>(logits->data(), logits->size()),
                                                {logits->rows(), logits->cols()});
    if (!w.ok()) {
      fmt::print(stderr, "ggufscope: {}\n", w.error().Message());
      return kExitIo;
    }
  }
  std::vector<int32_t> stop;
  if (tok.ok()) {
    stop = reference::StopTokens(chat, **tok);
  } else if (const auto eos = f->GetUint("tokenizer.ggml.eos_token_id"); eos && *eos < INT32_MAX) {
    stop.push_back(static_cast<int32_t>(*eos));
  }
  auto piece = [&](int32_t id) { return tok.ok() ? (*tok)->Piece(id) : Piece(*f, id); };
  if (!opt.json && !opt.chat) {
    std::string prompt_text = opt.prompt;
    if (prompt_text.empty()) {
      for (int32_t id : prompt) prompt_text += piece(id);
    }
    fmt::print("{}", prompt_text);
  }
  std::fflush(stdout);
  reference::SamplerOptions so;
  so.temp = opt.temp;
  so.top_k = opt.top_k;
  so.top_p = opt.top_p;
  so.seed = opt.seed;
  const int n_ctx = static_cast<int>(prompt.size()) + opt.n_predict + 1;
  // Greedy on the GPU picks each token on the device (Session::EvalArgmax,
  // then DecodeGreedy): the same first maximum, without copying the logits
  // back every step.
  std::unique_ptr<cuda::Session> greedy_gpu;
  gguf::Result<EvalFn> eval = EvalFn();
  if (cuda_model != nullptr && opt.temp <= 0) {
    gguf::Result<std::unique_ptr<cuda::Session>> s = cuda::Session::Create(*cuda_model, n_ctx, cuda_options);
    if (!s.ok()) return ForwardFailure(s.error());
    greedy_gpu = std::move(s).value();
  } else {
    eval = OpenSession(**model, cuda_model.get(), n_ctx, opt.compute.Precision(), cuda_options);
    if (!eval.ok()) return ForwardFailure(eval.error());
  }
  const auto on_token = [&](int32_t id) {
    if (opt.json || std::find(stop.begin(), stop.end(), id) != stop.end()) return;
    fmt::print("{}", piece(id));  // streamed as produced
    std::fflush(stdout);
  };
  // The prompt's step (prefill, and on the GPU the graph's recording on the
  // first decode step after it) and the decode steps are timed apart, as
  // llama.cpp reports prompt and eval times: the decode rate is the
  // engine's generation speed, the total also holds the prompt.
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  auto t_prompt = t0;
  int steps = 0;
  const auto timed = [&](auto&& step) {
    return [&, step](std::span<const int32_t> t) {
      auto r = step(t);
      if (steps++ == 0) t_prompt = Clock::now();
      return r;
    };
  };
  // Greedy on the GPU: the prompt's step, then the decode steps in a loop
  // on the device (Session::DecodeGreedy: each step's id feeds the next
  // without a round trip through the host; the same ids as EvalArgmax).
  const auto greedy_on_gpu = [&]() -> gguf::Result<std::vector<int32_t>> {
    std::vector<int32_t> ids;
    if (opt.n_predict <= 0) return ids;
    gguf::Result<int32_t> first = timed([&](std::span<const int32_t> t) { return greedy_gpu->EvalArgmax(t); })(prompt);
    if (!first.ok()) return first.error();
    ids.push_back(*first);
    on_token(*first);
    if (opt.n_predict == 1 || std::find(stop.begin(), stop.end(), *first) != stop.end()) return ids;
    gguf::Result<std::vector<int32_t>> rest = greedy_gpu->DecodeGreedy(*first, opt.n_predict - 1, stop, on_token);
    if (!rest.ok()) return rest.error();
    steps += static_cast<int>(rest->size());
    ids.insert(ids.end(), rest->begin(), rest->end());
    return ids;
  };
  gguf::Result<std::vector<int32_t>> out =
      greedy_gpu != nullptr
          ? greedy_on_gpu()
          : reference::GenerateWith(timed([&eval](std::span<const int32_t> t) { return (*eval)(t, false); }), prompt,
                                    opt.n_predict, so, stop, on_token);
  if (!out.ok()) return ForwardFailure(out.error());
  const auto t1 = Clock::now();
  const double secs = std::chrono::duration<double>(t1 - t0).count();
  const double prompt_secs = std::chrono::duration<double>(t_prompt - t0).count();
  const double decode_secs = std::chrono::duration<double>(t1 - t_prompt).count();
  const int decode_steps = std::max(steps - 1, 0);
  if (opt.json) {
    std::string text;
    for (int32_t id : *out) text += piece(id);
    fmt::print("{}\n", inspect::DumpJson({{"prompt", prompt}, {"tokens", *out}, {"text", text}, {"seconds", secs},
                                          {"prompt_seconds", prompt_secs}, {"decode_steps", decode_steps},
                                          {"decode_seconds", decode_secs},
                                          {"chat_format", reference::ChatFormatName(chat)}, {"backend", opt.backend},
                                          {"prefill_math", opt.prefill_math}}));
  } else {
    fmt::print("\n");
    std::fflush(stdout);
    const std::string timing =
        steps == 0 ? fmt::format("{} tokens in {:.2f} s", out->size(), secs)
                   : fmt::format("{} tokens in {:.2f} s: prompt {} tokens in {:.3f} s, {} decode steps at {:.1f} tokens/s",
                                 out->size(), secs, prompt.size(), prompt_secs, decode_steps,
                                 decode_steps / std::max(decode_secs, 1e-9));
    fmt::print(stderr, "[{}; {}, {}]\n", timing,
               opt.temp <= 0 ? std::string("greedy") : fmt::format("temp {} top-k {} top-p {} seed {}", opt.temp, opt.top_k, opt.top_p, opt.seed),
               backend_label);
  }
  return kExitOk;
}

}  // namespace ggufscope::cli
