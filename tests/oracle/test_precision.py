"""`--precision f64` against an independent float64 forward pass written here
in numpy on gguf-py's dequantized tensors (llama and qwen2 semantics, GGUF
layout), and the default f32 pass against the same oracle.

What it proves: in f64 mode every activation and accumulation really is
double (agreement to ~1e-10, far below f32's ~1e-6 rounding), and the f32
pass differs from exact arithmetic only by f32 rounding."""
from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest

from conftest import SHARED

FILES = [os.path.join(SHARED, "models", "stories260K.gguf"),
         os.path.join(SHARED, "models", "synth", "synth-qwen2-Q4_K_M.gguf"),
         os.path.join(SHARED, "models", "synth", "synth-llama-Q8_0.gguf")]
TOKENS = [1, 400, 32, 11, 290, 7, 88, 301, 5, 64, 128, 3, 250, 17, 99, 42, 420, 8, 300, 2]


def _forward_f64(path, tokens):
    import gguf
    r = gguf.GGUFReader(path)
    kv = {f.name: f for f in r.fields.values()}

    def val(key, default=None):
        f = kv.get(key)
        if f is None:
            return default
        return f.parts[f.data[0]][0].item()

    arch = bytes(kv["general.architecture"].parts[-1]).decode()
    t = {x.name: x for x in r.tensors}

    def w(name):
        x = t.get(name)
        if x is None:
            return None
        a = gguf.quants.dequantize(x.data, x.tensor_type).astype(np.float64)
        return a.reshape([int(d) for d in reversed(x.shape)])  # (ne1, ne0)

    n_layer = val(f"{arch}.block_count")
    n_head, n_kv = val(f"{arch}.attention.head_count"), val(f"{arch}.attention.head_count_kv")
    eps = val(f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)
    base = val(f"{arch}.rope.freq_base", 10000.0)
    emb = w("token_embd.weight")
    n_embd = emb.shape[1]
    hd = n_embd // n_head
    n_rot = val(f"{arch}.rope.dimension_count", hd)
    neox = arch == "qwen2"

    def rms(x, g):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * g

    def rope(x, nh):  # x (T, nh*hd)
        x = x.reshape(len(tokens), nh, hd).copy()
        pos = np.arange(len(tokens), dtype=np.float64)[:, None]
        theta = pos * base ** (-2.0 * np.arange(n_rot // 2) / n_rot)
        c, s = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]
        if neox:
            a, b = x[..., :n_rot // 2].copy(), x[..., n_rot // 2:n_rot].copy()
            x[..., :n_rot // 2], x[..., n_rot // 2:n_rot] = a * c - b * s, a * s + b * c
        else:
            a, b = x[..., 0:n_rot:2].copy(), x[..., 1:n_rot:2].copy()
            x[..., 0:n_rot:2], x[..., 1:n_rot:2] = a * c - b * s, a * s + b * c
        return x

    T = len(tokens)
    x = emb[tokens]
    for l in range(n_layer):
        p = f"blk.{l}."
        h = rms(x, w(p + "attn_norm.weight"))
        q, k, v = (h @ w(p + f"attn_{n}.weight").T for n in "qkv")
        if w(p + "attn_q.bias") is not None:
            q, k, v = q + w(p + "attn_q.bias"), k + w(p + "attn_k.bias"), v + w(p + "attn_v.bias")
        q, k = rope(q, n_head), rope(k, n_kv)
        v = v.reshape(T, n_kv, hd)
        out = np.zeros((T, n_head, hd))
        mask = np.triu(np.full((T, T), -np.inf), 1)
        for hh in range(n_head):
            kv_h = hh // (n_head // n_kv)
            s = q[:, hh] @ k[:, kv_h].T / np.sqrt(hd) + mask
            s = np.exp(s - s.max(1, keepdims=True))
            out[:, hh] = (s / s.sum(1, keepdims=True)) @ v[:, kv_h]
        x = x + out.reshape(T, -1) @ w(p + "attn_output.weight").T
        h = rms(x, w(p + "ffn_norm.weight"))
        g = h @ w(p + "ffn_gate.weight").T
        x = x + ((g / (1 + np.exp(-g))) * (h @ w(p + "ffn_up.weight").T)) @ w(p + "ffn_down.weight").T
    out_w = w("output.weight")
    return rms(x, w("output_norm.weight")) @ (out_w if out_w is not None else emb).T


def _ours(ggufscope, path, precision, tmp_path):
    out = tmp_path / f"logits-{precision}.npy"
    subprocess.run([ggufscope, "run", path, "--tokens", ",".join(map(str, TOKENS)), "-n", "0", "--logits-out",
                    str(out), "--precision", precision], check=True, capture_output=True)
    return np.load(out).astype(np.float64)


@pytest.mark.parametrize("path", FILES, ids=os.path.basename)
def test_f64_mode_is_double_and_f32_mode_is_f32_rounding(ggufscope, path, tmp_path):
    ref = _forward_f64(path, TOKENS)
    scale = np.abs(ref).max()
    f64 = _ours(ggufscope, path, "f64", tmp_path)
    f32 = _ours(ggufscope, path, "f32", tmp_path)
    e64 = np.abs(f64 - ref).max() / scale
    e32 = np.abs(f32 - ref).max() / scale
    # f64 mode: only the final rounding of the logits to f32 remains (measured 3e-8 .. 5e-8).
    assert e64 <= 1e-7, f"f64 mode vs float64 oracle: {e64:.3g}"
    # f32 mode: f32 rounding through the layers, measured 6e-7 .. 9e-7.
    assert e32 <= 1e-5, f"f32 mode vs float64 oracle: {e32:.3g}"
    assert e64 < e32, "f64 mode should be closer to exact arithmetic than f32 mode"


def test_prefill_math_is_the_cuda_passes_option(ggufscope):
    """`run --prefill-math` picks the CUDA prefill's GEMM precision: with the
    CPU reference it is a usage error (exit 64, naming the option), an unknown
    value too; f32 (the default) is accepted on either backend."""
    stories = FILES[0]
    base = [ggufscope, "run", stories, "--tokens", "1,400,32", "-n", "2", "--json"]
    r = subprocess.run(base + ["--prefill-math", "f16"], capture_output=True, text=True, check=False)
    assert r.returncode == 64 and "--prefill-math" in r.stderr and "--backend cuda" in r.stderr, r.stderr
    r = subprocess.run(base + ["--prefill-math", "bf16"], capture_output=True, text=True, check=False)
    assert r.returncode == 64 and "--prefill-math" in r.stderr, r.stderr
    r = subprocess.run(base + ["--prefill-math", "f32"], capture_output=True, text=True, check=True)
    assert '"prefill_math": "f32"' in r.stdout
