"""`ggufscope import-hf` against two independent oracles, CPU only:

1. gguf-py reads every tensor of the imported file and, after undoing the
   conversion conventions as written in scripts/hf_numpy.py (not the C++
   table), finds exactly the checkpoint's values.
2. `ggufscope run --logits-out` on the imported file matches a float64 numpy
   implementation of the transformers modeling code applied to the
   HF-layout weights (rotate_half RoPE, GQA, SwiGLU / GeGLU, RMSNorm, Gemma's
   1 + w norms and sliding window) within 1e-3: this checks the import
   conventions and the reference forward pass together. llama.cpp, loading
   the same file, must agree too.

The checkpoints are small random models written by hand as safetensors
(scripts/hf_numpy.py), so no torch is needed. scripts/hf_crosscheck.py runs
the same flow against transformers itself on the GPU machine.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import hf_numpy as hn
from conftest import ROOT

TOKENS = [1, 17, 200, 5, 299, 42, 3, 128, 64, 250]
TOL = 1e-3  # f32 reference vs float64 numpy on O(1) logits: errors are ~1e-5

# (id, arch, config overrides, checkpoint dtype, shards, --type)
CASES = [
    ("qwen2-f32-sharded", "qwen2", {}, "F32", 2, "f32"),
    ("qwen3-headdim32-tied", "qwen3", {"head_dim": 32, "tie": True}, "F32", 1, "f32"),
    ("llama-gqa-bf16", "llama", {"heads": 4, "kv_heads": 2}, "BF16", 1, "f32"),
    ("llama-kv1-f16-to-f16", "llama", {"heads": 8, "kv_heads": 1}, "F16", 1, "f16"),
    ("gemma3-swa-f32", "gemma3", {"layers": 6, "sliding_window": 4}, "F32", 1, "f32"),
    ("gemma3-bf16-to-f16", "gemma3", {"layers": 6, "sliding_window": 3, "heads": 2, "kv_heads": 1,
                                      "head_dim": 32}, "BF16", 1, "f16"),
]


@pytest.fixture(scope="module", params=CASES, ids=[c[0] for c in CASES])
def imported(request, ggufscope, tmp_path_factory):
    name, arch, overrides, dtype, shards, wtype = request.param
    tmp = tmp_path_factory.mktemp(name)
    cfg = hn.make_config(arch, **overrides)
    weights = hn.random_weights(cfg, seed=len(name), dtype=dtype)
    ckpt = str(tmp / "ckpt")
    hn.write_checkpoint(ckpt, cfg, weights, dtype, shards)
    out = str(tmp / "model.gguf")
    logits = hn.run_ggufscope(ggufscope, ckpt, out, TOKENS, str(tmp), wtype)
    return {"cfg": cfg, "weights": weights, "gguf": out, "logits": logits, "type": wtype, "arch": arch}


def test_every_tensor_equals_the_checkpoint(imported):
    cfg, weights = imported["cfg"], imported["weights"]
    tensors, types, _ = hn.read_gguf(imported["gguf"])
    as_hf, undone = hn.gguf_to_hf(cfg, tensors)
    expected = dict(weights)
    if cfg.get("tie_word_embeddings", False):
        expected.pop("lm_head.weight", None)
    assert sorted(as_hf) == sorted(expected)
    for hf, want in expected.items():
        got = as_hf[hf]
        gname = hn.gguf_name(imported["arch"], hf)
        vector = want.ndim == 1
        assert types[gname] == (0 if vector or gname.endswith("_norm.weight") or imported["type"] == "f32" else 1), gname
        if undone.get(hf) == "+1 (kept)":
            want = np.float32(want) + np.float32(1)
        if types[gname] == 1:
            want = want.astype(np.float16).astype(np.float32)  # numpy rounds to nearest even
        assert got.shape == want.shape, hf
        assert np.array_equal(got, want), f"{hf} ({undone.get(hf, 'as is')})"


def test_metadata(imported):
    cfg = imported["cfg"]
    _, _, r = hn.read_gguf(imported["gguf"])

    def val(key):
        f = r.fields[key]
        v = f.parts[f.data[0]]
        return bytes(v).decode() if f.types[0].name == "STRING" else v[0]

    arch = imported["arch"]
    assert val("general.architecture") == arch
    assert val(f"{arch}.block_count") == cfg["num_hidden_layers"]
    assert val(f"{arch}.embedding_length") == cfg["hidden_size"]
    assert val(f"{arch}.feed_forward_length") == cfg["intermediate_size"]
    assert val(f"{arch}.attention.head_count") == cfg["num_attention_heads"]
    assert val(f"{arch}.attention.head_count_kv") == cfg["num_key_value_heads"]
    assert val(f"{arch}.context_length") == cfg["max_position_embeddings"]
    assert np.float32(val(f"{arch}.rope.freq_base")) == np.float32(cfg["rope_theta"])
    assert np.float32(val(f"{arch}.attention.layer_norm_rms_epsilon")) == np.float32(cfg["rms_norm_eps"])
    if "head_dim" in cfg:
        assert val(f"{arch}.attention.key_length") == cfg["head_dim"]
    if arch == "gemma3":
        assert val("gemma3.attention.sliding_window") == cfg["sliding_window"]
    assert val("general.file_type") == (1 if imported["type"] == "f16" else 0)
    assert len(r.fields["tokenizer.ggml.tokens"].data) == cfg["vocab_size"]
    assert val("tokenizer.ggml.eos_token_id") == cfg["eos_token_id"]


def test_logits_match_the_transformers_semantics(imported):
    cfg, weights = imported["cfg"], imported["weights"]
    if imported["type"] == "f16":  # the file holds f16-rounded matrices: so does the oracle
        weights = {k: (v if v.ndim == 1 or k.endswith("norm.weight") else hn.round_to(v, "F16"))
                   for k, v in weights.items()}
    ref = hn.hf_forward(cfg, weights, TOKENS)
    got = imported["logits"]
    assert got.shape == ref.shape == (len(TOKENS), cfg["vocab_size"])
    m = hn.compare(ref, got)
    assert np.abs(ref).max() > 1.0, "logits too small for a meaningful tolerance"
    assert m["max_abs"] <= TOL, m
    assert m["argmax_agree"] == 1.0, m


def test_llama_cpp_loads_the_file_and_agrees(imported):
    llama_cpp = pytest.importorskip("llama_cpp")
    llm = llama_cpp.Llama(model_path=imported["gguf"], n_ctx=64, n_batch=64, logits_all=True, n_threads=2,
                          verbose=False, seed=0, type_k=0, type_v=0)  # F32 KV cache
    llm.eval(TOKENS)
    got = np.array(llm.scores[:len(TOKENS)], dtype=np.float64)
    # llama.cpp's CPU kernels round activations to f16/q8 in places; its own
    # noise, not ours: a looser bound, and the argmax.
    m = hn.compare(imported["logits"], got)
    assert m["max_abs"] <= 2e-2 and m["argmax_agree"] >= 0.9, m


# ----------------------------------------------------------------------------
# refusals: each a clear message and exit code 3, nothing written


def _import(ggufscope, ckpt, out):
    return subprocess.run([ggufscope, "import-hf", ckpt, "-o", out], capture_output=True, text=True)


@pytest.mark.parametrize("what", ["rope_scaling", "unknown_tensor", "bad_shape", "missing_tensor", "no_config",
                                  "bad_header", "activation", "arch"])
def test_refusals(what, ggufscope, tmp_path):
    cfg = hn.make_config("llama")
    weights = hn.random_weights(cfg)
    expect = ""
    if what == "rope_scaling":
        cfg["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0}
        expect = "rope_scaling"
    elif what == "unknown_tensor":
        weights["model.layers.0.self_attn.mystery.weight"] = np.zeros(4, np.float32)
        expect = "model.layers.0.self_attn.mystery.weight"
    elif what == "bad_shape":
        weights["model.layers.1.mlp.up_proj.weight"] = np.zeros((95, 64), np.float32)
        expect = "model.layers.1.mlp.up_proj.weight"
    elif what == "missing_tensor":
        del weights["model.layers.1.self_attn.k_proj.weight"]
        expect = "model.layers.1.self_attn.k_proj.weight"
    elif what == "activation":
        cfg["hidden_act"] = "gelu"
        expect = "hidden_act"
    elif what == "arch":
        cfg["architectures"], cfg["model_type"] = ["MambaForCausalLM"], "mamba"
        expect = "MambaForCausalLM"
    ckpt = str(tmp_path / "ckpt")
    hn.write_checkpoint(ckpt, cfg, weights)
    if what == "no_config":
        os.remove(os.path.join(ckpt, "config.json"))
        expect = "config.json"
    elif what == "bad_header":
        with open(os.path.join(ckpt, "model.safetensors"), "r+b") as f:
            f.write((1 << 40).to_bytes(8, "little"))
        expect = "header.length"
    out = str(tmp_path / "out.gguf")
    p = _import(ggufscope, ckpt, out)
    assert p.returncode == 3, p.stderr
    assert expect in p.stderr, p.stderr
    assert not os.path.exists(out)


def test_single_file_and_tied_lm_head_dropped(ggufscope, tmp_path):
    cfg = hn.make_config("qwen2", tie=True)
    weights = hn.random_weights(cfg)
    weights["lm_head.weight"] = weights["model.embed_tokens.weight"].copy()  # stored although tied
    ckpt = tmp_path / "ckpt"
    hn.write_checkpoint(str(ckpt), cfg, weights)
    out = str(tmp_path / "out.gguf")
    p = subprocess.run([ggufscope, "import-hf", str(ckpt / "model.safetensors"), "-o", out, "--json"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    assert rep["tied_output"] and rep["ignored"] == 1 and rep["architecture"] == "qwen2"
    tensors, _, _ = hn.read_gguf(out)
    assert "output.weight" not in tensors


def test_tokenizer_json_byte_level_bpe(ggufscope, tmp_path):
    """A tiny Qwen2-style tokenizer.json becomes a gpt2 vocabulary with the
    qwen2 pre-tokenizer, and llama.cpp tokenizes like ggufscope with it."""
    cfg = hn.make_config("qwen2")
    ckpt = tmp_path / "ckpt"
    hn.write_checkpoint(str(ckpt), cfg, hn.random_weights(cfg))
    byte_tokens = [_byte_token(b) for b in range(256)]
    vocab = {t: i for i, t in enumerate(byte_tokens)}
    merges = [("h", "e"), ("l", "l"), ("he", "ll"), ("Ġ", "w"), ("o", "r"), ("Ġw", "or")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    tok = {"version": "1.0", "added_tokens": [{"id": 290, "content": "<|endoftext|>", "special": True},
                                              {"id": 291, "content": "<tool>", "special": False}],
           "normalizer": {"type": "NFC"},
           "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
               {"type": "Split", "pattern": {"Regex": QWEN2_REGEX}, "behavior": "Isolated", "invert": False},
               {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
           "decoder": {"type": "ByteLevel"},
           "model": {"type": "BPE", "byte_fallback": False, "vocab": vocab, "merges": [list(m) for m in merges]}}
    (ckpt / "tokenizer.json").write_text(json.dumps(tok))
    (ckpt / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|endoftext|>", "bos_token": None}))
    out = str(tmp_path / "out.gguf")
    p = _import(ggufscope, str(ckpt), out)
    assert p.returncode == 0, p.stderr
    assert "pre-tokenizer qwen2" in p.stderr
    _, _, r = hn.read_gguf(out)
    assert bytes(r.fields["tokenizer.ggml.pre"].parts[-1]).decode() == "qwen2"
    types = r.fields["tokenizer.ggml.token_type"]
    assert [int(types.parts[types.data[i]][0]) for i in (0, 261, 262, 290, 291, 299)] == [1, 1, 5, 3, 4, 5]
    assert r.fields["tokenizer.ggml.eos_token_id"].parts[-1][0] == 290
    text = "hello world<|endoftext|>"
    ours = json.loads(subprocess.run([ggufscope, "tokenize", out, text, "--json", "--special"], capture_output=True,
                                     text=True, check=True).stdout)
    llama_cpp = pytest.importorskip("llama_cpp")
    llm = llama_cpp.Llama(model_path=out, vocab_only=True, verbose=False)
    theirs = llm.tokenize(text.encode(), add_bos=False, special=True)
    ids = ours["ids"]
    assert ids == theirs
    assert vocab["hell"] in ids and vocab["Ġwor"] in ids and 290 in ids


QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
               r"\s*[\r\n]+|\s+(?!\S)|\s+")


def _byte_token(b: int) -> str:
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    if b in printable:
        return chr(b)
    return chr(256 + sorted(set(range(256)) - set(printable)).index(b))


def test_crosscheck_script_runs_without_torch(ggufscope):
    """scripts/hf_crosscheck.py is run on the GPU machine against transformers;
    here its numpy backend runs the whole flow, and the transformers backend
    stops cleanly (exit 2) where torch is missing."""
    script = os.path.join(ROOT, "scripts", "hf_crosscheck.py")
    p = subprocess.run([sys.executable, script, ggufscope, "--backend", "numpy", "--models", "qwen3,gemma3",
                        "--tokens", "8"], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count(" PASS ") == 2, p.stdout
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        p = subprocess.run([sys.executable, script, ggufscope], capture_output=True, text=True)
        assert p.returncode == 2 and "needs torch and transformers" in p.stderr, p.stderr
