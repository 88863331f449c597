#include "reference_cpu/forward.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <type_traits>

namespace ggufscope::reference {
namespace {

// x * rsqrt(mean(x^2) + eps) * w, row by row; the mean in double (ggml_float).
template <typename T>
void RmsNorm(Mat<T>& x, const Vector& w, float eps) {
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    double sum = 0;
    for (Eigen::Index c = 0; c < x.cols(); ++c) sum += static_cast<double>(x(r, c)) * x(r, c);
    const T scale = T(1) / std::sqrt(static_cast<T>(sum / static_cast<double>(x.cols())) + static_cast<T>(eps));
    x.row(r) = (x.row(r) * scale).cwiseProduct(w.transpose().template cast<T>());
  }
}

// Rotates each head of x (n_tokens, n_heads * head_dim) by its position.
template <typename T>
void Rope(Mat<T>& x, int n_heads, int head_dim, int n_rot, float base, RopeType type, int pos0) {
  for (Eigen::Index t = 0; t < x.rows(); ++t) {
    const double pos = pos0 + static_cast<double>(t);
    for (int h = 0; h < n_heads; ++h) {
      T* v = x.row(t).data() + static_cast<size_t>(h) * head_dim;
      for (int i = 0; i < n_rot / 2; ++i) {
        const double theta = pos * std::pow(static_cast<double>(base), -2.0 * i / n_rot);
        const T c = static_cast<T>(std::cos(theta)), s = static_cast<T>(std::sin(theta));
        const int a = type == RopeType::kNorm ? 2 * i : i;
        const int b = type == RopeType::kNorm ? 2 * i + 1 : i + n_rot / 2;
        const T x0 = v[a], x1 = v[b];
        v[a] = x0 * c - x1 * s;
        v[b] = x0 * s + x1 * c;
      }
    }
  }
}

// RMSNorm of each head_dim slice of x (n_tokens, n_heads * head_dim).
template <typename T>
void HeadNorm(Mat<T>& x, const Vector& w, int n_heads, int head_dim, float eps) {
  for (Eigen::Index t = 0; t < x.rows(); ++t) {
    for (int h = 0; h < n_heads; ++h) {
      T* v = x.row(t).data() + static_cast<size_t>(h) * head_dim;
      double sum = 0;
      for (int d = 0; d < head_dim; ++d) sum += static_cast<double>(v[d]) * v[d];
      const T scale = T(1) / std::sqrt(static_cast<T>(sum / head_dim) + static_cast<T>(eps));
      for (int d = 0; d < head_dim; ++d) v[d] = v[d] * scale * static_cast<T>(w[d]);
    }
  }
}

// GELU, tanh approximation (ggml_gelu).
template <typename T>
T GeluTanh(T x) {
  const T kSqrt2OverPi = static_cast<T>(0.79788456080286535587989211986876);
  return T(0.5) * x * (T(1) + std::tanh(kSqrt2OverPi * x * (T(1) + T(0.044715) * x * x)));
}

// f32 -> IEEE half (round to nearest even, overflow to inf) -> f32, for
// the f16-softmax fault.
float ToF16AndBack(float f) {
  if (!(std::fabs(f) < 65520.0f)) return std::isnan(f) ? f : std::copysign(INFINITY, f);
  if (std::fabs(f) < 6.103515625e-05f) return std::nearbyint(f * 16777216.0f) / 16777216.0f;  // subnormal step 2^-24
  int e = 0;
  std::frexp(f, &e);
  const float step = std::ldexp(1.0f, e - 11);  // 11 significant bits
  return std::nearbyint(f / step) * step;
}

template <typename T>
void AddBias(Mat<T>& x, const Vector& b) {
  if (b.size() > 0) x.rowwise() += b.transpose().template cast<T>();
}

}  // namespace

Session::Session(const Model& model, int n_ctx, Precision precision)
    : m_(model), n_ctx_(n_ctx), precision_(precision) {
  const int kv_dim = m_.hp.n_head_kv * m_.hp.head_dim;
  const size_t n_layers = static_cast<size_t>(m_.hp.n_layers);
  if (precision_ == Precision::kF64) {
    k_cache64_.assign(n_layers, Mat<double>::Zero(n_ctx, kv_dim));
    v_cache64_.assign(n_layers, Mat<double>::Zero(n_ctx, kv_dim));
  } else {
    k_cache_.assign(n_layers, Mat<float>::Zero(n_ctx, kv_dim));
    v_cache_.assign(n_layers, Mat<float>::Zero(n_ctx, kv_dim));
  }
}

template <>
std::vector<Mat<float>>& Session::Cache<float>(bool v) {
  return v ? v_cache_ : k_cache_;
}
template <>
std::vector<Mat<double>>& Session::Cache<double>(bool v) {
  return v ? v_cache64_ : k_cache64_;
}

gguf::Result<RowMatrix> Session::Eval(std::span<const int32_t> tokens, bool all_logits, TraceSink* trace) {
  return precision_ == Precision::kF64 ? EvalT<double>(tokens, all_logits, trace)
                                       : EvalT<float>(tokens, all_logits, trace);
}

template <typename T>
gguf::Result<RowMatrix> Session::EvalT(std::span<const int32_t> tokens, bool all_logits, TraceSink* trace) {
  const HParams& hp = m_.hp;
  const int n = static_cast<int>(tokens.size());
  if (n == 0 || n_past_ + n > n_ctx_) {
    return gguf::Error{gguf::ErrorCode::kInvalidArgument, "tokens", gguf::Error::kNoOffset,
                       fmt::format("1..{} tokens", n_ctx_ - n_past_), std::to_string(n)};
  }
  Mat<T> x(n, hp.n_embd);  // (n_tokens, n_embd): the residual stream
  std::vector<float> row(static_cast<size_t>(hp.n_embd));
  for (int i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= hp.n_vocab) {
      return gguf::Error{gguf::ErrorCode::kInvalidArgument, fmt::format("token[{}]", i), gguf::Error::kNoOffset,
                         fmt::format("an id below {}", hp.n_vocab), std::to_string(tokens[i])};
    }
    m_.tok_embd.DequantizeRows(tokens[i], 1, row.data());
    x.row(i) = Eigen::Map<const Eigen::RowVectorXf>(row.data(), hp.n_embd).template cast<T>();
  }
  if (m_.family.embed_scale) x *= std::sqrt(static_cast<T>(hp.n_embd));
  auto cap = [&](std::string_view name, int layer, const Mat<T>& t) {
    if (trace == nullptr) return;
    if constexpr (std::is_same_v<T, float>) {
      trace->Capture(name, layer, t);
    } else {
      trace->Capture(name, layer, t.template cast<float>());
    }
  };
  cap("inp_embd", -1, x);
  std::vector<Mat<T>>& k_cache = Cache<T>(false);
  std::vector<Mat<T>>& v_cache = Cache<T>(true);
  const int hd = hp.head_dim, group = hp.n_head / hp.n_head_kv;
  // Injected faults (faults.h) that change constants.
  const float eps = fault_ == Fault::kWrongRmsEps ? 1e-2f : hp.rms_eps;
  RopeType rope = m_.family.rope;
  if (fault_ == Fault::kNormRopeForNeox) rope = rope == RopeType::kNorm ? RopeType::kNeox : RopeType::kNorm;
  const T kq_scale = hp.attn_scale > 0 ? static_cast<T>(hp.attn_scale) : T(1) / std::sqrt(static_cast<T>(hd));
  Mat<T> q, k, v, attn_out, g, u, ffn_out;
  for (int l = 0; l < hp.n_layers; ++l) {
    const Layer& L = m_.layers[static_cast<size_t>(l)];
    Mat<T> cur = x;
    RmsNorm(cur, L.attn_norm, eps);
    cap("attn_norm", l, cur);
    MatMul(cur, L.wq, q);
    MatMul(cur, L.wk, k);
    MatMul(cur, L.wv, v);
    if (fault_ != Fault::kDropQkvBias) {
      AddBias(q, L.bq);
      AddBias(k, L.bk);
      AddBias(v, L.bv);
    }
    if (m_.family.qk_norm) {
      HeadNorm(q, L.q_norm, hp.n_head, hd, eps);
      HeadNorm(k, L.k_norm, hp.n_head_kv, hd, eps);
    }
    // Sliding-window layers (all but every swa_pattern-th) see only the last
    // n_swa positions and rotate with their own base.
    const bool swa = IsSlidingWindowLayer(m_.family, hp, l);
    const float base = swa ? m_.family.rope_base_swa : hp.rope_base;
    Rope(q, hp.n_head, hd, hp.n_rot, base, rope, n_past_);
    Rope(k, hp.n_head_kv, hd, hp.n_rot, base, rope, n_past_);
    cap("Qcur", l, q);
    cap("Kcur", l, k);
    cap("Vcur", l, v);
    // kKvOffByOne: slot p+1 gets position p's entry (the last one is
    // dropped at the end of the cache); slot p keeps what was there.
    const int slot = fault_ == Fault::kKvOffByOne ? n_past_ + 1 : n_past_;
    const int n_store = std::min(n, n_ctx_ - slot);
    if (n_store > 0) {
      k_cache[static_cast<size_t>(l)].middleRows(slot, n_store) = k.topRows(n_store);
      v_cache[static_cast<size_t>(l)].middleRows(slot, n_store) = v.topRows(n_store);
    }
    const Mat<T>& kc = k_cache[static_cast<size_t>(l)];
    const Mat<T>& vc = v_cache[static_cast<size_t>(l)];
    Mat<T> attn(n, hp.n_head * hd);  // (n_tokens, n_head * hd): kqv_out
    // Each (token, head) pair is independent: spread them over the threads,
    // when there is enough work to pay for waking them (decode of a small
    // model is faster on one).
    const bool parallel = static_cast<int64_t>(n) * hp.n_head * (n_past_ + n) * hd > (int64_t{1} << 20);
#pragma omp parallel for collapse(2) schedule(static) if (parallel)
    for (int i = 0; i < n; ++i) {
      for (int h = 0; h < hp.n_head; ++h) {
        const int n_keys = n_past_ + i + 1;  // causal: this token and all before it
        const int first = swa ? std::max(0, n_keys - hp.n_swa) : 0;
        std::vector<T> p(static_cast<size_t>(n_keys));
        const int kvh = fault_ == Fault::kWrongGqaMap ? h % hp.n_head_kv : h / group;
        const T* qi = q.row(i).data() + h * hd;
        T mx = -std::numeric_limits<T>::infinity();
        for (int j = 0; j < n_keys; ++j) {
          if (j < first) {
            p[static_cast<size_t>(j)] = -std::numeric_limits<T>::infinity();
            continue;
          }
          const T* kj = kc.row(j).data() + kvh * hd;
          T dot = 0;
          for (int d = 0; d < hd; ++d) dot += qi[d] * kj[d];
          p[static_cast<size_t>(j)] = dot * kq_scale;
          mx = std::max(mx, p[static_cast<size_t>(j)]);
        }
        double sum = 0;
        if (fault_ == Fault::kF16Softmax) {
          // exp(score) rounded to f16 with no max subtracted: inf past 11.09
          for (T& e : p) {
            e = static_cast<T>(ToF16AndBack(std::exp(static_cast<float>(e))));
            sum += e;
          }
          sum = static_cast<double>(ToF16AndBack(static_cast<float>(sum)));
        } else {
          for (T& e : p) {
            e = std::exp(e - mx);  // exp(-inf) = 0 for masked keys
            sum += e;
          }
        }
        T* out = attn.row(i).data() + h * hd;
        std::fill(out, out + hd, T(0));
        const T inv = static_cast<T>(1.0 / sum);
        for (int j = first; j < n_keys; ++j) {
          const T* vj = vc.row(j).data() + kvh * hd;
          const T w = p[static_cast<size_t>(j)] * inv;
          for (int d = 0; d < hd; ++d) out[d] += w * vj[d];
        }
      }
    }
    cap("kqv_out", l, attn);
    if (fault_ == Fault::kTransposedGemm && L.wo.rows() == L.wo.cols()) {
      // attn * W instead of attn * W^T (a square W makes the shapes fit)
      Mat<T> wd(L.wo.rows(), L.wo.cols());
      std::vector<float> wrow(static_cast<size_t>(L.wo.cols()));
      for (int64_t r = 0; r < L.wo.rows(); ++r) {
        L.wo.DequantizeRows(r, 1, wrow.data());
        for (int64_t c = 0; c < L.wo.cols(); ++c) wd(r, c) = static_cast<T>(wrow[static_cast<size_t>(c)]);
      }
      attn_out = attn * wd;
    } else {
      MatMul(attn, L.wo, attn_out);
    }
    if (m_.family.post_norms) RmsNorm(attn_out, L.post_attn_norm, eps);
    cap("attn_out", l, attn_out);
    x += attn_out;
    cap("ffn_inp", l, x);
    cur = x;
    RmsNorm(cur, L.ffn_norm, eps);
    cap("ffn_norm", l, cur);
    MatMul(cur, L.w_gate, g);
    MatMul(cur, L.w_up, u);
    cap("ffn_gate", l, g);
    cap("ffn_up", l, u);
    if (m_.family.act == Activation::kSilu) {
      g = g.unaryExpr([](T z) { return z / (T(1) + std::exp(-z)); }).cwiseProduct(u);  // SwiGLU
    } else {
      g = g.unaryExpr([](T z) { return GeluTanh(z); }).cwiseProduct(u);  // GeGLU
    }
    MatMul(g, L.w_down, ffn_out);
    if (m_.family.post_norms) RmsNorm(ffn_out, L.post_ffn_norm, eps);
    cap("ffn_out", l, ffn_out);
    x += ffn_out;
    cap("l_out", l, x);
  }
  n_past_ += n;
  Mat<T> last = all_logits ? x : Mat<T>(x.bottomRows(1));
  RmsNorm(last, m_.output_norm, eps);
  cap("result_norm", -1, last);
  Mat<T> logits;
  MatMul(last, m_.OutputMatrix(), logits);
  if (hp.final_softcap > 0) {
    const T c = static_cast<T>(hp.final_softcap);
    logits = logits.unaryExpr([c](T z) { return c * std::tanh(z / c); });
  }
  cap("result_output", -1, logits);
  if constexpr (std::is_same_v<T, float>) {
    return logits;
  } else {
    return RowMatrix(logits.template cast<float>());
  }
}

gguf::Result<std::vector<int32_t>> GenerateGreedy(const Model& model, std::span<const int32_t> prompt, int n,
                                                  int32_t eos, Precision precision) {
  Session s(model, static_cast<int>(prompt.size()) + n + 1, precision);
  const int32_t stop[1] = {eos};  // -1: no token stops
  SamplerOptions greedy;
  greedy.temp = 0.0f;
  return GenerateWith([&s](std::span<const int32_t> tokens) { return s.Eval(tokens, false); }, prompt, n, greedy,
                      stop, nullptr);
}

}  // namespace ggufscope::reference

namespace ggufscope::reference {

gguf::Result<std::vector<int32_t>> Generate(const Model& model, std::span<const int32_t> prompt, int n,
                                            const SamplerOptions& so, std::span<const int32_t> stop,
                                            const std::function<void(int32_t)>& on_token) {
  Session s(model, static_cast<int>(prompt.size()) + n + 1, so.precision);
  return GenerateWith([&s](std::span<const int32_t> tokens) { return s.Eval(tokens, false); }, prompt, n, so, stop,
                      on_token);
}

namespace {

// Llama.cpp's default chain on one row of logits: top-k, top-p on the
// softmax of the top-k (temperature 1), then a draw at `temp`. `cand` is
// scratch kept across calls.
int32_t SampleToken(const float* row, int V, const SamplerOptions& so, std::mt19937_64& rng,
                    std::vector<std::pair<float, int32_t>>& cand) {
  cand.resize(static_cast<size_t>(V));
  for (int v = 0; v < V; ++v) cand[static_cast<size_t>(v)] = {row[v], v};
  const size_t k = so.top_k > 0 ? std::min<size_t>(static_cast<size_t>(so.top_k), cand.size()) : cand.size();
  std::partial_sort(cand.begin(), cand.begin() + static_cast<ptrdiff_t>(k), cand.end(),
                    [](const auto& a, const auto& b) { return a.first > b.first; });
  cand.resize(k);
  std::vector<double> p(k);
  double z = 0;
  for (size_t j = 0; j < k; ++j) z += p[j] = std::exp(static_cast<double>(cand[j].first - cand[0].first));
  double acc = 0;
  size_t keep = k;
  for (size_t j = 0; j < k; ++j) {
    acc += p[j] / z;
    if (acc >= so.top_p) {
      keep = j + 1;
      break;
    }
  }
  cand.resize(keep);
  std::vector<double> w(keep);
  for (size_t j = 0; j < keep; ++j) w[j] = std::exp(static_cast<double>(cand[j].first - cand[0].first) / so.temp);
  std::discrete_distribution<size_t> dist(w.begin(), w.end());
  return cand[dist(rng)].second;
}

}  // namespace

gguf::Result<std::vector<int32_t>> GenerateWith(const StepFn& step, std::span<const int32_t> prompt, int n,
                                                const SamplerOptions& so, std::span<const int32_t> stop,
                                                const std::function<void(int32_t)>& on_token) {
  std::mt19937_64 rng(so.seed);
  std::vector<std::pair<float, int32_t>> cand;
  return GenerateTokensWith(
      [&](std::span<const int32_t> tokens) -> gguf::Result<int32_t> {
        gguf::Result<RowMatrix> logits = step(tokens);
        if (!logits.ok()) return logits.error();
        const float* row = logits->row(0).data();
        const int V = static_cast<int>(logits->cols());
        if (so.temp <= 0.0f) return static_cast<int32_t>(std::max_element(row, row + V) - row);
        return SampleToken(row, V, so, rng, cand);
      },
      prompt, n, stop, on_token);
}

gguf::Result<std::vector<int32_t>> GenerateTokensWith(const TokenStepFn& step, std::span<const int32_t> prompt, int n,
                                                      std::span<const int32_t> stop,
                                                      const std::function<void(int32_t)>& on_token) {
  std::vector<int32_t> out;
  if (n <= 0) return out;
  gguf::Result<int32_t> tok = step(prompt);
  for (int i = 0;; ++i) {
    if (!tok.ok()) return tok.error();
    out.push_back(*tok);
    if (on_token) on_token(*tok);
    // Stop at a stop token or at n tokens, before a step whose result
    // nobody would read.
    if (i + 1 == n || std::find(stop.begin(), stop.end(), *tok) != stop.end()) break;
    const int32_t one[1] = {*tok};
    tok = step(one);
  }
  return out;
}

}  // namespace ggufscope::reference
