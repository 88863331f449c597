#include "reference_cpu/whatif.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <vector>

#include "gguf/mapping.h"

namespace ggufscope::reference {
namespace {

float Apply(float v, const Repair& r) {
  switch (r.kind) {
    case Repair::Kind::kScale: return static_cast<float>(v * r.factor);
    case Repair::Kind::kNegate: return -v;
    case Repair::Kind::kClamp:
      if (std::isnan(v)) return 0.0f;
      return static_cast<float>(std::clamp<double>(v, -r.limit, r.limit));
  }
  return v;
}

void RepairMatrix(Weight& w, const Repair& r) {
  std::vector<uint8_t> bytes(static_cast<size_t>(w.rows() * w.cols()) * sizeof(float));
  auto* f = reinterpret_cast<float*>(bytes.data());
  w.DequantizeRows(0, w.rows(), f);
  for (size_t i = 0; i < static_cast<size_t>(w.rows() * w.cols()); ++i) f[i] = Apply(f[i], r);
  std::shared_ptr<const gguf::Mapping> owner = gguf::OwnBytes(std::move(bytes));
  w = Weight(gguf::GgmlType::kF32, w.rows(), w.cols(), owner->bytes(), owner);
}

}  // namespace

std::string Repair::Describe() const {
  switch (kind) {
    case Kind::kScale: return fmt::format("x {:.4g}", factor);
    case Kind::kNegate: return "sign flipped";
    case Kind::kClamp: return fmt::format("clamped to +-{:.4g}", limit);
  }
  return "";
}

gguf::Status ApplyRepair(Model& m, std::string_view tensor, const Repair& r) {
  auto vec = [&](Vector& v) -> gguf::Status {
    if (v.size() == 0) return gguf::Error{gguf::ErrorCode::kInvalidArgument, std::string(tensor), gguf::Error::kNoOffset, "a tensor of the model", "absent"};
    for (Eigen::Index i = 0; i < v.size(); ++i) v[i] = Apply(v[i], r);
    return {};
  };
  auto mat = [&](Weight& w) -> gguf::Status {
    if (w.empty()) return gguf::Error{gguf::ErrorCode::kInvalidArgument, std::string(tensor), gguf::Error::kNoOffset, "a tensor of the model", "absent"};
    RepairMatrix(w, r);
    return {};
  };
  if (tensor == "output_norm.weight") return vec(m.output_norm);
  if (tensor == "token_embd.weight") return mat(m.tok_embd);
  if (tensor == "output.weight") return mat(m.output);
  int layer = -1;
  std::string_view rest;
  if (tensor.starts_with("blk.")) {
    const std::string_view s = tensor.substr(4);
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), layer);
    if (ec == std::errc() && p < s.data() + s.size() && *p == '.') rest = s.substr(static_cast<size_t>(p - s.data()) + 1);
  }
  if (layer < 0 || layer >= static_cast<int>(m.layers.size()) || rest.empty()) {
    return gguf::Error{gguf::ErrorCode::kInvalidArgument, std::string(tensor), gguf::Error::kNoOffset, "a tensor of the model", "unknown name"};
  }
  Layer& L = m.layers[static_cast<size_t>(layer)];
  if (rest == "attn_norm.weight") return vec(L.attn_norm);
  if (rest == "ffn_norm.weight") return vec(L.ffn_norm);
  if (rest == "attn_q_norm.weight") return vec(L.q_norm);
  if (rest == "attn_k_norm.weight") return vec(L.k_norm);
  if (rest == "post_attention_norm.weight") return vec(L.post_attn_norm);
  if (rest == "post_ffw_norm.weight") return vec(L.post_ffn_norm);
  if (rest == "attn_q.bias") return vec(L.bq);
  if (rest == "attn_k.bias") return vec(L.bk);
  if (rest == "attn_v.bias") return vec(L.bv);
  if (rest == "attn_q.weight") return mat(L.wq);
  if (rest == "attn_k.weight") return mat(L.wk);
  if (rest == "attn_v.weight") return mat(L.wv);
  if (rest == "attn_output.weight") return mat(L.wo);
  if (rest == "ffn_gate.weight") return mat(L.w_gate);
  if (rest == "ffn_up.weight") return mat(L.w_up);
  if (rest == "ffn_down.weight") return mat(L.w_down);
  return gguf::Error{gguf::ErrorCode::kInvalidArgument, std::string(tensor), gguf::Error::kNoOffset, "a tensor of the model", "unknown name"};
}

}  // namespace ggufscope::reference
