// The CPU reference model: hyper-parameters and weights of one GGUF file,
// read through the architecture description (gguf/arch.h) and a small set of
// per-family switches. Weights are dequantized once to f32 (a 270M-parameter
// model takes ~1.1 GB; the per-call on-the-fly path is future work, see
// README.md), so the reference's arithmetic is plain f32 Eigen.
#pragma once

#include <Eigen/Core>
#include <memory>
#include <string>
#include <vector>

#include "gguf/error.h"
#include "gguf/file.h"

namespace ggufscope::reference {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Vector = Eigen::VectorXf;

enum class RopeType { kNorm, kNeox };  // adjacent pairs (Llama) / halves (Qwen2, Gemma)

// What differs between families, read from the architecture name once.
struct Family {
  RopeType rope = RopeType::kNorm;
  bool qkv_bias = false;  // qwen2
};

struct HParams {
  int n_layers = 0, n_embd = 0, n_ff = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_vocab = 0, n_rot = 0;
  float rms_eps = 1e-5f, rope_base = 10000.0f;
  int n_ctx_train = 0;
};

struct Layer {
  Vector attn_norm;                 // (n_embd)
  RowMatrix wq, wk, wv, wo;         // (n_head*hd, n_embd), (n_kv*hd, n_embd) x2, (n_embd, n_head*hd)
  Vector bq, bk, bv;                // (n_head*hd), (n_kv*hd) x2; empty without biases
  Vector ffn_norm;                  // (n_embd)
  RowMatrix w_gate, w_up, w_down;   // (n_ff, n_embd) x2, (n_embd, n_ff)
};

struct Model {
  std::string arch;
  Family family;
  HParams hp;
  RowMatrix tok_embd;   // (n_vocab, n_embd): row t is token t's embedding
  Vector output_norm;   // (n_embd)
  RowMatrix output;     // (n_vocab, n_embd); empty when tied to tok_embd
  std::vector<Layer> layers;

  const RowMatrix& OutputMatrix() const { return output.size() > 0 ? output : tok_embd; }
};

// Loads llama and qwen2 files (other families: an kUnsupported error naming
// the architecture). Every tensor is checked against the description's shape.
gguf::Result<std::unique_ptr<Model>> LoadModel(const gguf::GgufFile& file);

}  // namespace ggufscope::reference
