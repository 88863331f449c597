"""Provenance (issue 7), CPU only: `diff MODEL.gguf CHECKPOINT`,
`fingerprint CHECKPOINT` and `doctor --checkpoint`.

Small random qwen2, llama and gemma3 checkpoints are written as safetensors
with numpy (scripts/hf_numpy.py). Their GGUF files are made *without our
importer*: gguf-py's GGUFWriter, the conversion conventions applied here in
numpy as llama.cpp's convert_hf_to_gguf.py writes them (LlamaModel.permute
for q/k, Gemma norms + 1), quantized by gguf-py (Q8_0) or by llama.cpp's own
reference quantizer through ctypes (Q4_K, tests/oracle/llama_ggml.py).
scripts/provenance_e2e.sh runs the same checks on files made by
convert_hf_to_gguf.py and llama-quantize themselves (GPU machine: torch).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import gguf
import numpy as np
import pytest

import hf_numpy as hn

Q = gguf.GGMLQuantizationType

# (id, arch, checkpoint dtype, GGUF type of the matrices)
CASES = [
    ("qwen2-f32", "qwen2", "F32", "F32"),
    ("llama-f16", "llama", "F32", "F16"),
    ("gemma3-bf16-f16", "gemma3", "BF16", "F16"),
    ("qwen2-q8_0", "qwen2", "F32", "Q8_0"),
    ("llama-q8_0", "llama", "BF16", "Q8_0"),
    ("gemma3-q4_k", "gemma3", "F32", "Q4_K"),
]
TARGET, OTHER = "blk.1.attn_q.weight", "blk.1.attn_output.weight"  # attn_q is permuted for llama


def llama_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf.py's LlamaModel.permute, written out in numpy."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def quantize(values: np.ndarray, qtype: str) -> tuple[np.ndarray, Q]:
    if qtype == "F32":
        return values.astype(np.float32), Q.F32
    if qtype == "F16":
        return values.astype(np.float16), Q.F16
    if qtype == "Q8_0":
        return gguf.quants.quantize(values.astype(np.float32), Q.Q8_0), Q.Q8_0
    if qtype == "Q4_K":
        import llama_ggml  # llama.cpp's quantize_row_q4_K_ref
        raw = llama_ggml.from_float(int(Q.Q4_K), values)
        assert raw is not None
        return np.frombuffer(raw, dtype=np.uint8).reshape(values.shape[0], -1), Q.Q4_K
    raise ValueError(qtype)


def write_gguf(path: str, arch: str, cfg: dict, weights: dict[str, np.ndarray], qtype: str,
               drop: str | None = None, unconverted: str | None = None) -> None:
    """The GGUF convert_hf_to_gguf.py would write, metadata as it names it
    (`drop`: leave that GGUF tensor out; `unconverted`: write that HF tensor
    without its convention)."""
    w = gguf.GGUFWriter(path, arch)
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    if "head_dim" in cfg:
        w.add_key_length(cfg["head_dim"])
        w.add_value_length(cfg["head_dim"])
    if arch == "llama":
        w.add_vocab_size(cfg["vocab_size"])
    if arch == "gemma3":
        w.add_sliding_window(cfg["sliding_window"])
    tie = cfg.get("tie_word_embeddings", False)
    for hf in sorted(weights):
        if hf == "lm_head.weight" and tie:
            continue
        name = hn.gguf_name(arch, hf)
        if name == drop:
            continue
        v = weights[hf].astype(np.float32)
        if hf == unconverted:
            pass
        elif arch == "llama" and hf.endswith("self_attn.q_proj.weight"):
            v = llama_permute(v, cfg["num_attention_heads"])
        elif arch == "llama" and hf.endswith("self_attn.k_proj.weight"):
            v = llama_permute(v, cfg["num_key_value_heads"])
        elif arch == "gemma3" and hf.endswith("norm.weight"):
            v = v + np.float32(1)  # llama.cpp adds in f32 for F32/BF16 checkpoints
        data, t = quantize(v, "F32" if v.ndim == 1 else qtype)
        w.add_tensor(name, data, raw_dtype=t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make_case(tmp, arch: str, dtype: str, qtype: str, seed: int = 3, tweak=None, drop: str | None = None):
    cfg = hn.make_config(arch, hidden=256, ff=512, layers=2, heads=4, kv_heads=2, vocab=320)
    weights = hn.random_weights(cfg, seed=seed, dtype=dtype)
    if tweak:
        tweak(weights)
    ckpt = os.path.join(tmp, "ckpt")
    hn.write_checkpoint(ckpt, cfg, weights, dtype, shards=2 if arch == "qwen2" else 1)
    path = os.path.join(tmp, f"model-{qtype}.gguf")
    write_gguf(path, arch, cfg, weights, qtype, drop)
    return {"ckpt": ckpt, "gguf": path, "cfg": cfg, "weights": weights, "arch": arch, "qtype": qtype, "tmp": tmp}


def run(binary, *args):
    return subprocess.run([binary, *args], capture_output=True, text=True)


def diff_json(binary, gguf_path, ckpt):
    p = run(binary, "diff", gguf_path, ckpt, "--json")
    assert p.returncode in (0, 1), p.stderr
    return p.returncode, json.loads(p.stdout)


def flagged(report) -> dict[str, dict]:
    return {t["name"]: t for t in report["tensors"] if t["status"] not in ("identical", "within-noise")}


@pytest.fixture(scope="module", params=CASES, ids=[c[0] for c in CASES])
def case(request, tmp_path_factory):
    name, arch, dtype, qtype = request.param
    return make_case(str(tmp_path_factory.mktemp(name)), arch, dtype, qtype)


def test_every_tensor_consistent(ggufscope, case):
    rc, r = diff_json(ggufscope, case["gguf"], case["ckpt"])
    assert rc == 0 and r["consistent"] and r["flagged"] == 0, flagged(r)
    assert r["config_contradictions"] == []
    names = {t["name"] for t in r["tensors"]}
    expected = {hn.gguf_name(case["arch"], hf) for hf in case["weights"]}
    if case["cfg"].get("tie_word_embeddings", False):
        expected.discard("output.weight")
    assert names == expected
    for t in r["tensors"]:
        if t["type_a"] == t["type_b"]:  # F32 from F32, or F32 vectors: the converter's exact values
            assert t["status"] == "identical", t
        assert t["rel_l2"] <= t["expected_rel_l2"], t
        if case["arch"] == "llama" and t["name"].endswith(("attn_q.weight", "attn_k.weight")):
            assert t["transform"].startswith("rope permutation"), t
        if case["arch"] == "gemma3" and t["name"].endswith("norm.weight"):
            assert t["transform"] == "+1", t


def test_conventions_matter(ggufscope, case, tmp_path):
    """A file holding a tensor without its convention (llama q rows not
    permuted, a Gemma norm without + 1) differs: the transform is applied,
    not ignored."""
    if case["arch"] == "qwen2":
        pytest.skip("qwen2 has no conventions")
    hf = "model.layers.1.self_attn.q_proj.weight" if case["arch"] == "llama" else "model.layers.1.input_layernorm.weight"
    path = str(tmp_path / "unconverted.gguf")
    write_gguf(path, case["arch"], case["cfg"], case["weights"], case["qtype"], unconverted=hf)
    rc, r = diff_json(ggufscope, path, case["ckpt"])
    assert rc == 1 and set(flagged(r)) == {hn.gguf_name(case["arch"], hf)}


CORRUPTIONS = [
    ("scale", ["--scale", "1.5"]),
    ("bitflip", None),  # bit chosen by type below
    ("nan", ["--nan", "--index", "3"]),
    ("inf", ["--inf", "--index", "5"]),
    ("zero-rows", ["--zero-rows", "64"]),  # a quarter of the rows: beyond even Q4_K's band
    ("noise", ["--noise", "0.5", "--seed", "7"]),
    ("swap", ["--swap", OTHER]),
]


@pytest.mark.parametrize("mode,args", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_corrupt_mode_found_with_the_right_tensor(ggufscope, case, mode, args, tmp_path):
    if mode == "bitflip":
        # The top exponent bit of an element (F32: 30, F16: 14) or of a block's f16 scale.
        args = ["--bitflip", "30" if case["qtype"] == "F32" else "14", "--index", "2"]
    out = str(tmp_path / f"{mode}.gguf")
    p = run(ggufscope, "corrupt", case["gguf"], out, "--tensor", TARGET, *args)
    assert p.returncode == 0, p.stderr
    rc, r = diff_json(ggufscope, out, case["ckpt"])
    assert rc == 1 and not r["consistent"]
    want = {TARGET, OTHER} if mode == "swap" else {TARGET}
    assert set(flagged(r)) == want, flagged(r)
    if mode == "scale" and case["qtype"] in ("F32", "F16"):
        assert "scaled x1.5" in flagged(r)[TARGET]["reason"]


def test_truncated_file_is_unreadable(ggufscope, case, tmp_path):
    out = str(tmp_path / "trunc.gguf")
    assert run(ggufscope, "corrupt", case["gguf"], out, "--tensor", TARGET, "--truncate", "100").returncode == 0
    p = run(ggufscope, "diff", out, case["ckpt"])
    assert p.returncode == 3 and "trunc.gguf" in p.stderr


def test_metadata_key_contradicts_config(ggufscope, case, tmp_path):
    arch = case["arch"]
    out = str(tmp_path / "kv.gguf")
    key = f"{arch}.attention.head_count_kv"
    assert run(ggufscope, "corrupt", case["gguf"], out, "--set-key", f"{key}=4").returncode == 0
    rc, r = diff_json(ggufscope, out, case["ckpt"])
    assert rc == 1
    assert [(c["key"], c["config_key"], c["gguf"], c["config"]) for c in r["config_contradictions"]] == \
        [(key, "num_key_value_heads", "4", "2")]
    assert flagged(r) == {}


def test_config_json_contradicts_metadata(ggufscope, case, tmp_path):
    ckpt = str(tmp_path / "ckpt")
    shutil.copytree(case["ckpt"], ckpt)
    cfg = dict(case["cfg"], rope_theta=12345.0, rms_norm_eps=1e-5, num_hidden_layers=2)
    with open(os.path.join(ckpt, "config.json"), "w") as f:
        json.dump(cfg, f)
    rc, r = diff_json(ggufscope, case["gguf"], ckpt)
    assert rc == 1
    got = {c["config_key"]: (c["gguf"], c["config"]) for c in r["config_contradictions"]}
    assert set(got) == {"rope_theta", "rms_norm_eps"}
    assert float(got["rope_theta"][1]) == 12345.0
    assert float(got["rms_norm_eps"][0]) == pytest.approx(case["cfg"]["rms_norm_eps"], rel=1e-6)


def test_missing_and_extra_tensors(ggufscope, tmp_path):
    # A GGUF that lacks a checkpoint tensor.
    c = make_case(str(tmp_path / "a"), "llama", "F32", "F16", drop="blk.0.ffn_up.weight")
    rc, r = diff_json(ggufscope, c["gguf"], c["ckpt"])
    assert rc == 1
    f = flagged(r)
    assert set(f) == {"blk.0.ffn_up.weight"} and f["blk.0.ffn_up.weight"]["status"] == "only-in-b"
    assert f["blk.0.ffn_up.weight"]["reference_name"] == "model.layers.0.mlp.up_proj.weight"
    # A checkpoint that lacks a GGUF tensor: the GGUF's is extra.
    ckpt = str(tmp_path / "ckpt-short")
    weights = dict(c["weights"])
    del weights["model.layers.1.mlp.gate_proj.weight"]
    hn.write_checkpoint(ckpt, c["cfg"], weights, "F32")
    full = make_case(str(tmp_path / "b"), "llama", "F32", "F16")
    rc, r = diff_json(ggufscope, full["gguf"], ckpt)
    f = flagged(r)
    assert rc == 1 and set(f) == {"blk.1.ffn_gate.weight"} and f["blk.1.ffn_gate.weight"]["status"] == "only-in-a"


def test_reshaped_tensor(ggufscope, tmp_path):
    c = make_case(str(tmp_path / "a"), "qwen2", "F32", "F32")
    weights = dict(c["weights"])
    weights["model.layers.0.mlp.up_proj.weight"] = weights["model.layers.0.mlp.up_proj.weight"].reshape(256, 512)
    ckpt = str(tmp_path / "ckpt-reshaped")
    hn.write_checkpoint(ckpt, c["cfg"], weights, "F32")
    rc, r = diff_json(ggufscope, c["gguf"], ckpt)
    f = flagged(r)
    assert rc == 1 and set(f) == {"blk.0.ffn_up.weight"} and f["blk.0.ffn_up.weight"]["status"] == "shape-mismatch"


@pytest.mark.parametrize("problem", ["bad-config", "missing-shard", "index-outside", "bad-dtype", "no-config"])
def test_hostile_checkpoint_is_a_clear_error(ggufscope, tmp_path, problem):
    c = make_case(str(tmp_path / "a"), "qwen2", "F32", "F32")  # two shards + index
    ckpt = c["ckpt"]
    index = os.path.join(ckpt, "model.safetensors.index.json")
    named = "config.json"
    if problem == "bad-config":
        with open(os.path.join(ckpt, "config.json"), "w") as f:
            f.write('{"architectures": ["Qwen2ForCausalLM"], "hidden_size": "wide"')
    elif problem == "missing-shard":
        os.remove(os.path.join(ckpt, "model-00002-of-00002.safetensors"))
        named = "model-00002-of-00002.safetensors"
    elif problem == "index-outside":
        j = json.load(open(index))
        j["weight_map"][next(iter(j["weight_map"]))] = "../elsewhere.safetensors"
        json.dump(j, open(index, "w"))
        named = "elsewhere.safetensors"
    elif problem == "bad-dtype":
        path = os.path.join(ckpt, "model-00001-of-00002.safetensors")
        raw = open(path, "rb").read()
        raw = raw.replace(b'"dtype":"F32"', b'"dtype":"I64"', 1).replace(b'"dtype": "F32"', b'"dtype": "I64"', 1)
        open(path, "wb").write(raw)
        named = "I64"
    elif problem == "no-config":
        os.remove(os.path.join(ckpt, "config.json"))
    for args in (["diff", c["gguf"], ckpt], ["fingerprint", ckpt], ["doctor", c["gguf"], "--checkpoint", ckpt]):
        p = run(ggufscope, *args)
        assert p.returncode == 3, (args, p.stdout[-500:], p.stderr[-500:])
        assert named in p.stderr + p.stdout, (args, p.stderr)
        assert "Traceback" not in p.stderr and "Sanitizer" not in p.stderr


def test_checkpoint_fingerprint_equals_gguf_fingerprint(ggufscope, case, tmp_path):
    fp_ck, fp_gg = str(tmp_path / "ck.json"), str(tmp_path / "gg.json")
    assert run(ggufscope, "fingerprint", case["ckpt"], "--exact", "-o", fp_ck).returncode == 0
    assert run(ggufscope, "fingerprint", case["gguf"], "--exact", "-o", fp_gg).returncode == 0
    a, b = json.load(open(fp_ck)), json.load(open(fp_gg))
    assert a["conventions"] == b["conventions"] == "gguf"
    ta = {t["gguf"]: t for t in a["tensors"]}
    tb = {t["gguf"]: t for t in b["tensors"]}
    assert set(ta) == set(tb)
    # The checkpoint's statistics, in float64 from numpy with the conventions:
    # the fingerprint of the source as the file stores it.
    for hf, v in case["weights"].items():
        name = hn.gguf_name(case["arch"], hf)
        if name not in ta:
            continue
        v = v.astype(np.float64) + (1.0 if case["arch"] == "gemma3" and hf.endswith("norm.weight") else 0.0)
        assert ta[name]["mean"] == pytest.approx(v.mean(), abs=1e-6), name
        assert ta[name]["std"] == pytest.approx(v.std(), rel=1e-6, abs=1e-7), name
        assert ta[name]["hf_shape"] == list(v.shape)
    # F32: the file-side statistics accumulate in f32 lanes (inspect/tensor_stats.cc): ~1e-5 relative.
    noise = {"F32": 1e-4, "F16": 1e-3, "Q8_0": 0.02, "Q4_K": 0.12}[case["qtype"]]
    for name, t in ta.items():
        u = tb[name]
        assert u["hf_shape"] == t["hf_shape"], name
        assert abs(u["mean"] - t["mean"]) <= noise * t["std"] + 1e-6, name
        assert abs(u["std"] - t["std"]) <= noise * t["std"] + 1e-6, name
    # audit reads it as published statistics of this model: everything matches.
    p = run(ggufscope, "audit", case["gguf"], "--fingerprint", fp_ck, "--json")
    audit = json.loads(p.stdout)
    assert p.returncode == 0, audit.get("findings")
    assert not [f for f in audit["findings"] if f["check"].startswith("provenance.fingerprint") and f["severity"] != "note"]


def doctor(binary, gguf_path, ckpt):
    p = run(binary, "doctor", gguf_path, "--checkpoint", ckpt, "--json")
    return p.returncode, json.loads(p.stdout)


def test_doctor_clean_file_is_consistent(ggufscope, case):
    rc, r = doctor(ggufscope, case["gguf"], case["ckpt"])
    assert rc == 0 and r["verdict"] == "CONSISTENT", r["evidence"]
    assert r["checkpoint"]["consistent"]
    assert any("match the checkpoint" in e for e in r["evidence"])


def test_doctor_corrupt_tensor_is_file_corrupt(ggufscope, case, tmp_path):
    out = str(tmp_path / "scaled.gguf")
    assert run(ggufscope, "corrupt", case["gguf"], out, "--tensor", TARGET, "--scale", "1.5").returncode == 0
    rc, r = doctor(ggufscope, out, case["ckpt"])
    assert rc == 2 and r["verdict"] == "FILE CORRUPT"
    assert r["headline"].startswith(TARGET + ": differs from the checkpoint"), r["headline"]


def test_doctor_trained_outlier_is_trained(ggufscope, tmp_path):
    """A norm 30x its peers in the checkpoint itself (Qwen2.5's layer-0 norm
    is like this): a suspect by statistics, trained by the checkpoint."""
    def tweak(w):
        w["model.layers.0.input_layernorm.weight"] = (w["model.layers.0.input_layernorm.weight"] * 30).astype(np.float32)
    c = make_case(str(tmp_path), "qwen2", "F32", "Q8_0", tweak=tweak)
    p = run(ggufscope, "doctor", c["gguf"], "--json")
    plain = json.loads(p.stdout)
    assert plain["suspects"] and plain["suspects"][0]["tensor"] == "blk.0.attn_norm.weight"
    rc, r = doctor(ggufscope, c["gguf"], c["ckpt"])
    assert rc == 0 and r["verdict"] == "CONSISTENT"
    s = next(s for s in r["suspects"] if s["tensor"] == "blk.0.attn_norm.weight")
    assert s["checkpoint"].startswith("matches the checkpoint's model.layers.0.input_layernorm.weight")
    assert any(e.startswith("blk.0.attn_norm.weight stands out") and "training produced" in e for e in r["evidence"])
    assert not any(e.startswith("prime suspect") for e in r["evidence"])
    # The same file with that norm rescaled is corrupt, by the checkpoint.
    out = str(tmp_path / "fixed.gguf")
    assert run(ggufscope, "corrupt", c["gguf"], out, "--tensor", "blk.0.attn_norm.weight", "--scale",
               str(1 / 30)).returncode == 0
    rc, r = doctor(ggufscope, out, c["ckpt"])
    assert rc == 2 and r["headline"].startswith("blk.0.attn_norm.weight: differs from the checkpoint")
