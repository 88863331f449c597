// The CPU reference model: hyper-parameters and weights of one GGUF file,
// read through the architecture description (gguf/arch.h) and a small set of
// per-family switches. Matrices stay in their GGUF type in the file's mapping
// and are dequantized on the fly (weight.h); norm weights and biases, small,
// are dequantized once.
#pragma once

#include <Eigen/Core>
#include <memory>
#include <string>
#include <vector>

#include "gguf/error.h"
#include "gguf/file.h"
#include "reference_cpu/weight.h"

namespace ggufscope::reference {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Vector = Eigen::VectorXf;

enum class RopeType { kNorm, kNeox };  // adjacent pairs (Llama) / halves (Qwen2, Gemma)
enum class Activation { kSilu, kGeluTanh };  // SwiGLU (llama, qwen) / GeGLU (gemma)

// What differs between families, read from the architecture name once; the
// forward pass reads only these switches, never the name.
struct Family {
  RopeType rope = RopeType::kNorm;
  Activation act = Activation::kSilu;
  bool qkv_bias = false;     // qwen2: q/k/v biases
  bool qk_norm = false;      // qwen3, gemma3: RMSNorm of each q/k head
  bool post_norms = false;   // gemma3: post_attention_norm and post_ffw_norm
  bool embed_scale = false;  // gemma3: embeddings times sqrt(n_embd)
  int swa_pattern = 0;       // gemma3: 6 = five sliding-window layers, then a global one
  float rope_base_swa = 10000.0f;  // gemma3's local layers
};

struct HParams {
  int n_layers = 0, n_embd = 0, n_ff = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_vocab = 0, n_rot = 0;
  float rms_eps = 1e-5f, rope_base = 10000.0f;
  float attn_scale = 0;  // 0: 1/sqrt(head_dim)
  int n_swa = 0;         // sliding window (keys within the last n_swa positions)
  float final_softcap = 0;  // gemma3 (when the file says): logits = c * tanh(logits / c)
  int n_ctx_train = 0;
};

// Whether layer l attends over a sliding window (and rotates with
// family.rope_base_swa): all but every swa_pattern-th layer, when the model
// has a window. One rule for every engine (the CPU and CUDA passes).
inline bool IsSlidingWindowLayer(const Family& family, const HParams& hp, int l) {
  return family.swa_pattern > 0 && hp.n_swa > 0 && (l + 1) % family.swa_pattern != 0;
}

struct Layer {
  Vector attn_norm;                 // (n_embd)
  Weight wq, wk, wv, wo;            // (n_head*hd, n_embd), (n_kv*hd, n_embd) x2, (n_embd, n_head*hd)
  Vector bq, bk, bv;                // (n_head*hd), (n_kv*hd) x2; empty without biases
  Vector q_norm, k_norm;            // (head_dim) each, with qk_norm
  Vector post_attn_norm, post_ffn_norm;  // (n_embd), with post_norms
  Vector ffn_norm;                  // (n_embd)
  Weight w_gate, w_up, w_down;      // (n_ff, n_embd) x2, (n_embd, n_ff)
};

struct Model {
  std::string arch;
  Family family;
  HParams hp;
  Weight tok_embd;      // (n_vocab, n_embd): row t is token t's embedding
  Vector output_norm;   // (n_embd)
  Weight output;        // (n_vocab, n_embd); empty when tied to tok_embd
  std::vector<Layer> layers;

  const Weight& OutputMatrix() const { return output.empty() ? tok_embd : output; }

};

// Loads llama, qwen2, qwen3 and gemma3 files (other families: a kUnsupported
// error naming the architecture). Every tensor is checked against the description's shape.
gguf::Result<std::unique_ptr<Model>> LoadModel(const gguf::GgufFile& file);

}  // namespace ggufscope::reference
