"""Hugging Face checkpoints without torch: safetensors written and read by
hand, small random llama / qwen2 / qwen3 / gemma3 checkpoints with a
config.json as transformers' save_pretrained writes it, a float64 numpy
forward pass with the transformers modeling semantics (rotate_half RoPE on
the HF-layout weights, GQA, SwiGLU / GeGLU, RMSNorm, Gemma 3's (1 + w) norms,
sandwich norms, q/k norms and sliding window), and the GGUF side of the
conversion conventions written independently of gguf/hf_names.cc.

Shared by tests/oracle/test_import_hf.py and scripts/hf_crosscheck.py; needs
only numpy (gguf-py for read_gguf_as_hf).
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
from typing import Callable

import numpy as np

# ----------------------------------------------------------------------------
# safetensors

_DTYPES = {"F32": (np.float32, 4), "F16": (np.float16, 2), "BF16": (np.uint16, 2)}


def f32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """bfloat16 bits of float32 values, rounding to nearest even (as torch)."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    nan = np.isnan(x)
    out = rounded.astype(np.uint16)
    out[nan] = 0x7FC0
    return out


def bf16_bits_to_f32(b: np.ndarray) -> np.ndarray:
    return (np.asarray(b, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def round_to(x: np.ndarray, dtype: str) -> np.ndarray:
    """float32 values exactly representable in dtype ("F32", "F16", "BF16")."""
    x = np.asarray(x, dtype=np.float32)
    if dtype == "F16":
        return x.astype(np.float16).astype(np.float32)
    if dtype == "BF16":
        return bf16_bits_to_f32(f32_to_bf16_bits(x))
    return x


def write_safetensors(path: str, tensors: dict[str, np.ndarray], dtype: str = "F32",
                      metadata: dict[str, str] | None = None) -> None:
    """u64 header length, JSON header, then the tensors packed in name order."""
    header: dict = {"__metadata__": metadata or {"format": "pt"}}
    blobs, offset = [], 0
    for name in sorted(tensors):
        a = np.asarray(tensors[name], dtype=np.float32)
        if dtype == "F32":
            raw = a.astype("<f4").tobytes()
        elif dtype == "F16":
            raw = a.astype("<f2").tobytes()
        elif dtype == "BF16":
            raw = f32_to_bf16_bits(a).astype("<u2").tobytes()
        else:
            raise ValueError(dtype)
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)  # padded with spaces, as the reference writer does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    """Every tensor as float32 (F32, F16 and BF16 only)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        np_dtype, _ = _DTYPES[info["dtype"]]
        b, e = info["data_offsets"]
        a = np.frombuffer(data[8 + n + b:8 + n + e], dtype=np.dtype(np_dtype).newbyteorder("<"))
        a = bf16_bits_to_f32(a) if info["dtype"] == "BF16" else a.astype(np.float32)
        out[name] = a.reshape(info["shape"])
    return out


def read_checkpoint(folder: str) -> dict[str, np.ndarray]:
    out = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".safetensors"):
            out.update(read_safetensors(os.path.join(folder, name)))
    return out


# ----------------------------------------------------------------------------
# configs and random checkpoints

ARCHS = ("llama", "qwen2", "qwen3", "gemma3")


def make_config(arch: str, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                head_dim: int | None = None, vocab: int = 300, ff: int = 96, tie: bool | None = None,
                sliding_window: int = 4, rope_theta: float | None = None, eps: float = 1e-6) -> dict:
    """config.json as save_pretrained writes it for the transformers class."""
    hd = head_dim or hidden // heads
    common = {"hidden_size": hidden, "intermediate_size": ff, "num_hidden_layers": layers,
              "num_attention_heads": heads, "num_key_value_heads": kv_heads, "vocab_size": vocab,
              "max_position_embeddings": 512, "rms_norm_eps": eps, "torch_dtype": "float32",
              "bos_token_id": 1, "eos_token_id": 2, "initializer_range": 0.02, "use_cache": True}
    if arch == "llama":
        return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", **common, "head_dim": hd,
                "hidden_act": "silu", "attention_bias": False, "mlp_bias": False, "rope_scaling": None,
                "rope_theta": rope_theta or 10000.0, "tie_word_embeddings": bool(tie), "pretraining_tp": 1}
    if arch == "qwen2":
        return {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", **common, "hidden_act": "silu",
                "rope_theta": rope_theta or 1000000.0, "rope_scaling": None, "use_sliding_window": False,
                "sliding_window": None, "max_window_layers": layers, "attention_dropout": 0.0,
                "tie_word_embeddings": bool(tie)}
    if arch == "qwen3":
        return {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", **common, "head_dim": hd,
                "hidden_act": "silu", "attention_bias": False, "rope_theta": rope_theta or 1000000.0,
                "rope_scaling": None, "use_sliding_window": False, "sliding_window": None,
                "max_window_layers": layers, "tie_word_embeddings": bool(tie)}
    if arch == "gemma3":
        return {"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", **common, "head_dim": hd,
                "hidden_activation": "gelu_pytorch_tanh", "query_pre_attn_scalar": hd,
                "sliding_window": sliding_window, "sliding_window_pattern": 6,
                "layer_types": ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(layers)],
                "rope_theta": rope_theta or 1000000.0, "rope_local_base_freq": 10000.0, "rope_scaling": None,
                "final_logit_softcapping": None, "attn_logit_softcapping": None, "attention_bias": False,
                "pad_token_id": 0, "tie_word_embeddings": True if tie is None else tie}
    raise ValueError(arch)


def normalize_config(cfg: dict) -> dict:
    """A config.json as any transformers version writes it, with the keys
    hf_forward reads at top level: rope_theta and rope_local_base_freq from
    transformers 5's rope_parameters (per attention type for Gemma 3)."""
    cfg = dict(cfg)
    rp = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    full = rp.get("full_attention", rp)
    if "rope_theta" in full:
        cfg["rope_theta"] = full["rope_theta"]
    if "rope_theta" in rp.get("sliding_attention", {}):
        cfg["rope_local_base_freq"] = rp["sliding_attention"]["rope_theta"]
    return cfg


def _sliding(cfg: dict, layer: int) -> bool:
    if _arch(cfg) != "gemma3":
        return False
    if cfg.get("layer_types"):
        return cfg["layer_types"][layer] == "sliding_attention"
    return (layer + 1) % cfg.get("sliding_window_pattern", 6) != 0


def _head_dim(cfg: dict) -> int:
    return cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]


def _arch(cfg: dict) -> str:
    return {"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "gemma3_text": "gemma3"}[cfg["model_type"]]


def random_weights(cfg: dict, seed: int = 0, dtype: str = "F32") -> dict[str, np.ndarray]:
    """HF-named float32 weights, exactly representable in dtype, scaled so that
    activations and logits stay O(1) (a meaningful 1e-3 comparison)."""
    arch = _arch(cfg)
    rng = np.random.default_rng(seed)
    E, F, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    H, KV, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], _head_dim(cfg)
    gemma = arch == "gemma3"

    def mat(rows, cols):
        return rng.normal(0.0, 1.0 / np.sqrt(cols), (rows, cols))

    def norm(n):  # Gemma stores w for x * (1 + w)
        return rng.normal(0.0, 0.1, n) + (0.0 if gemma else 1.0)

    w = {"model.embed_tokens.weight": rng.normal(0.0, 1.0 if not gemma else 1.0 / np.sqrt(E), (V, E)),
         "model.norm.weight": norm(E)}
    tie = cfg.get("tie_word_embeddings", gemma)
    if not tie:
        w["lm_head.weight"] = mat(V, E)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = norm(E)
        w[p + "post_attention_layernorm.weight"] = norm(E)
        w[p + "self_attn.q_proj.weight"] = mat(H * D, E)
        w[p + "self_attn.k_proj.weight"] = mat(KV * D, E)
        w[p + "self_attn.v_proj.weight"] = mat(KV * D, E)
        w[p + "self_attn.o_proj.weight"] = mat(E, H * D)
        w[p + "mlp.gate_proj.weight"] = mat(F, E)
        w[p + "mlp.up_proj.weight"] = mat(F, E)
        w[p + "mlp.down_proj.weight"] = mat(E, F)
        if arch == "qwen2":
            w[p + "self_attn.q_proj.bias"] = rng.normal(0.0, 0.5, H * D)
            w[p + "self_attn.k_proj.bias"] = rng.normal(0.0, 0.5, KV * D)
            w[p + "self_attn.v_proj.bias"] = rng.normal(0.0, 0.5, KV * D)
        if arch in ("qwen3", "gemma3"):
            w[p + "self_attn.q_norm.weight"] = norm(D)
            w[p + "self_attn.k_norm.weight"] = norm(D)
        if gemma:
            w[p + "pre_feedforward_layernorm.weight"] = norm(E)
            w[p + "post_feedforward_layernorm.weight"] = norm(E)
    return {k: round_to(v, dtype) for k, v in w.items()}


def write_checkpoint(folder: str, cfg: dict, weights: dict[str, np.ndarray], dtype: str = "F32",
                     shards: int = 1) -> None:
    """config.json plus model.safetensors, or `shards` files and an index."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    if shards == 1:
        write_safetensors(os.path.join(folder, "model.safetensors"), weights, dtype)
        return
    names = sorted(weights)
    weight_map = {}
    for s in range(shards):
        part = names[s::shards]
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        write_safetensors(os.path.join(folder, fname), {n: weights[n] for n in part}, dtype)
        weight_map.update({n: fname for n in part})
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f, indent=2)


# ----------------------------------------------------------------------------
# the transformers forward pass, in float64


def _rms_norm(x, w, eps, gemma):
    y = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    return y * ((1.0 + w) if gemma else w)


def _rope(x, theta):
    """transformers' apply_rotary_pos_emb: x (T, heads, D), positions 0..T-1."""
    T, _, D = x.shape
    inv_freq = 1.0 / theta ** (np.arange(0, D, 2, dtype=np.float64) / D)
    freqs = np.arange(T, dtype=np.float64)[:, None] * inv_freq[None, :]
    emb = np.concatenate([freqs, freqs], axis=-1)[:, None, :]
    rotated = np.concatenate([-x[..., D // 2:], x[..., :D // 2]], axis=-1)  # rotate_half
    return x * np.cos(emb) + rotated * np.sin(emb)


def _gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def _silu(x):
    return x / (1.0 + np.exp(-x))


def hf_forward(cfg: dict, weights: dict[str, np.ndarray], ids: list[int]) -> np.ndarray:
    """Logits (n_tokens, vocab) of LlamaForCausalLM / Qwen2ForCausalLM /
    Qwen3ForCausalLM / Gemma3ForCausalLM semantics, float64."""
    arch = _arch(cfg)
    gemma = arch == "gemma3"
    w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    E, H, KV, D = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], _head_dim(cfg)
    eps = cfg.get("rms_norm_eps", 1e-6)
    T = len(ids)
    x = w["model.embed_tokens.weight"][ids]
    if gemma:
        x = x * np.sqrt(E)
    scale = cfg["query_pre_attn_scalar"] ** -0.5 if gemma else D ** -0.5
    causal = np.tril(np.ones((T, T), dtype=bool))
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = _rms_norm(x, w[p + "input_layernorm.weight"], eps, gemma)
        q = h @ w[p + "self_attn.q_proj.weight"].T
        k = h @ w[p + "self_attn.k_proj.weight"].T
        v = h @ w[p + "self_attn.v_proj.weight"].T
        if p + "self_attn.q_proj.bias" in w:
            q, k, v = q + w[p + "self_attn.q_proj.bias"], k + w[p + "self_attn.k_proj.bias"], v + w[p + "self_attn.v_proj.bias"]
        q, k, v = q.reshape(T, H, D), k.reshape(T, KV, D), v.reshape(T, KV, D)
        if p + "self_attn.q_norm.weight" in w:
            q = _rms_norm(q, w[p + "self_attn.q_norm.weight"], eps, gemma)
            k = _rms_norm(k, w[p + "self_attn.k_norm.weight"], eps, gemma)
        sliding = _sliding(cfg, l)
        theta = cfg.get("rope_local_base_freq", 10000.0) if sliding else cfg.get("rope_theta", 10000.0)
        q, k = _rope(q, theta), _rope(k, theta)
        mask = causal.copy()
        if sliding:
            i, j = np.indices((T, T))
            mask &= j > i - cfg["sliding_window"]
        out = np.empty((T, H, D))
        for head in range(H):
            kvh = head // (H // KV)  # repeat_kv
            s = (q[:, head] @ k[:, kvh].T) * scale
            s = np.where(mask, s, -np.inf)
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            out[:, head] = (s / s.sum(axis=-1, keepdims=True)) @ v[:, kvh]
        a = out.reshape(T, H * D) @ w[p + "self_attn.o_proj.weight"].T
        if gemma:
            a = _rms_norm(a, w[p + "post_attention_layernorm.weight"], eps, True)
        x = x + a
        ffn_norm = "pre_feedforward_layernorm.weight" if gemma else "post_attention_layernorm.weight"
        h = _rms_norm(x, w[p + ffn_norm], eps, gemma)
        act = _gelu_tanh if gemma else _silu
        f = (act(h @ w[p + "mlp.gate_proj.weight"].T) * (h @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
        if gemma:
            f = _rms_norm(f, w[p + "post_feedforward_layernorm.weight"], eps, True)
        x = x + f
    x = _rms_norm(x, w["model.norm.weight"], eps, gemma)
    head = w.get("lm_head.weight") if not cfg.get("tie_word_embeddings", gemma) else None
    return x @ (head if head is not None else w["model.embed_tokens.weight"]).T


# ----------------------------------------------------------------------------
# the GGUF side, written independently of gguf/hf_names.cc

_LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.q_norm.weight": "attn_q_norm.weight", "self_attn.k_norm.weight": "attn_k_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
    "pre_feedforward_layernorm.weight": "ffn_norm.weight",
    "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
}
_GLOBAL_NAMES = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
                 "lm_head.weight": "output.weight"}


def gguf_name(arch: str, hf: str) -> str:
    if hf in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[hf]
    _, _, layer, rest = hf.split(".", 3)
    if rest == "post_attention_layernorm.weight":
        return f"blk.{layer}." + ("post_attention_norm.weight" if arch == "gemma3" else "ffn_norm.weight")
    return f"blk.{layer}.{_LAYER_NAMES[rest]}"


def llama_unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """GGUF row order back to HF's: GGUF row h*hd + 2i + s is HF row h*hd + s*hd/2 + i."""
    rows = w.shape[0]
    hd = rows // n_head
    return w.reshape(n_head, hd // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_to_hf(cfg: dict, gguf_tensors: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The checkpoint a GGUF file came from, as far as the conventions are
    invertible: (HF name -> values, HF name -> what was undone). Gemma's +1 is
    left in place (w + 1 - 1 is not w in float32): compare with
    float32(w) + float32(1) instead."""
    arch = _arch(cfg)
    by_gguf = {}
    for l in range(cfg["num_hidden_layers"]):
        for hf_rest in list(_LAYER_NAMES) + ["post_attention_layernorm.weight"]:
            hf = f"model.layers.{l}.{hf_rest}"
            by_gguf[gguf_name(arch, hf)] = hf
    by_gguf.update({v: k for k, v in _GLOBAL_NAMES.items()})
    out, undone = {}, {}
    for name, values in gguf_tensors.items():
        hf = by_gguf[name]
        a = np.asarray(values, dtype=np.float32)
        if arch == "llama" and name.endswith(("attn_q.weight", "attn_q.bias")):
            a, undone[hf] = llama_unpermute(a, cfg["num_attention_heads"]), "rope permutation"
        elif arch == "llama" and name.endswith(("attn_k.weight", "attn_k.bias")):
            a, undone[hf] = llama_unpermute(a, cfg["num_key_value_heads"]), "rope permutation"
        elif arch == "gemma3" and name.endswith("norm.weight"):
            undone[hf] = "+1 (kept)"
        out[hf] = a
    return out, undone


def read_gguf(path: str) -> tuple[dict[str, np.ndarray], dict[str, int], object]:
    """Tensors (numpy shape = reversed ne, so HF's (out, in)) and types, via gguf-py."""
    import gguf
    r = gguf.GGUFReader(path)
    tensors = {t.name: np.asarray(t.data).astype(np.float32).reshape([int(d) for d in reversed(t.shape)])
               for t in r.tensors}
    types = {t.name: int(t.tensor_type) for t in r.tensors}
    return tensors, types, r


# ----------------------------------------------------------------------------
# ggufscope


def run_ggufscope(binary: str, checkpoint: str, out_gguf: str, ids: list[int], workdir: str,
                  weight_type: str = "f32", log: Callable[[str], None] | None = None) -> np.ndarray:
    """import-hf then run --logits-out; the logits (n_tokens, vocab) as float64."""
    imp = subprocess.run([binary, "import-hf", checkpoint, "-o", out_gguf, "--type", weight_type],
                         capture_output=True, text=True)
    if log:
        log(imp.stderr.strip())
    if imp.returncode != 0:
        raise RuntimeError(f"import-hf failed ({imp.returncode}): {imp.stderr.strip()}")
    logits_path = os.path.join(workdir, os.path.basename(out_gguf) + ".logits.npy")
    run = subprocess.run([binary, "run", out_gguf, "--tokens", ",".join(map(str, ids)), "-n", "1",
                          "--logits-out", logits_path], capture_output=True, text=True, errors="replace")
    if run.returncode != 0:
        raise RuntimeError(f"run failed ({run.returncode}): {run.stderr.strip()}")
    return np.load(logits_path).astype(np.float64)


def compare(ref: np.ndarray, got: np.ndarray) -> dict[str, float]:
    """The divergence metrics the C++ side reports (compare/): max abs, max rel,
    relative L2, cosine, argmax agreement."""
    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    diff = got - ref
    return {"max_abs": float(np.max(np.abs(diff))),
            "max_rel": float(np.max(np.abs(diff) / np.maximum(np.abs(ref), 1e-6))),
            "rel_l2": float(np.linalg.norm(diff) / max(np.linalg.norm(ref), 1e-30)),
            "cosine": float(np.sum(ref * got) / max(np.linalg.norm(ref) * np.linalg.norm(got), 1e-30)),
            "argmax_agree": float(np.mean(np.argmax(ref, -1) == np.argmax(got, -1)))}
