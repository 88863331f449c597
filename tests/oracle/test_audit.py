"""End to end: every `ggufscope corrupt` mode planted in the shared models is
caught and localized, by `audit` alone where statistics can show it, and by
`audit --against` (a reference file) for the modes that keep every statistic
(swaps, sign flips, mild rescales and noise). And no clean file is ever
called corrupt."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from conftest import GEMMA, SHARED, all_models, model_id

STORIES = os.path.join(SHARED, "models", "stories260K.gguf")
QWEN = os.path.join(SHARED, "models", "synth", "synth-qwen2-Q4_K_M.gguf")
Q8 = os.path.join(SHARED, "models", "synth", "synth-llama-Q8_0.gguf")
IQ4 = os.path.join(SHARED, "models", "synth", "synth-llama-IQ4_XS.gguf")
MXFP4 = os.path.join(SHARED, "models", "synth", "synth-llama-MXFP4_MOE.gguf")


def audit(ggufscope, path, *extra):
    p = subprocess.run([ggufscope, "audit", path, "--json", *extra], capture_output=True, text=True)
    report = json.loads(p.stdout)
    assert p.returncode == report["exit_code"] == {"intact": 0, "suspicious": 1, "corrupt": 2, "unreadable": 3}[report["verdict"]]
    return report


@pytest.mark.parametrize("path", all_models(), ids=model_id)
def test_clean_files_are_never_corrupt(path, ggufscope):
    r = audit(ggufscope, path)
    assert r["verdict"] in ("intact", "suspicious"), [f for f in r["findings"] if f["severity"] == "proof"]
    # The real models and the Qwen-shaped norms are not even suspicious.
    assert r["verdict"] == "intact", [f for f in r["findings"] if f["severity"] != "note"]


# (model, tensor, corrupt arguments, checks audit alone must report for that tensor, or None when only a
# reference can tell)
CASES = [
    (STORIES, "blk.2.ffn_up.weight", ["--nan", "--index", "77"], {"values.nonfinite"}),
    (STORIES, "blk.2.ffn_up.weight", ["--inf"], {"values.nonfinite"}),
    (STORIES, "blk.1.attn_q.weight", ["--bitflip", "30", "--index", "5"], {"values.impossible"}),
    (STORIES, "blk.3.ffn_down.weight", ["--zero-rows", "4"], {"values.zero-rows"}),
    (STORIES, "blk.0.attn_norm.weight", ["--scale", "30"], {"consistency.layer"}),  # a note: trained-like
    (STORIES, "blk.0.attn_norm.weight", ["--scale", "-1"], None),  # sign flip
    (STORIES, "blk.4.ffn_gate.weight", ["--noise", "0.5"], None),
    (STORIES, "blk.1.ffn_up.weight", ["--swap", "blk.3.ffn_up.weight"], None),
    (STORIES, "blk.4.ffn_up.weight", ["--truncate", "1000"], {"structure.truncated"}),
    (QWEN, "blk.0.attn_k.weight", ["--bitflip", "14"], {"values.outlier-block"}),
    (QWEN, "blk.1.ffn_down.weight", ["--nan", "--index", "3"], {"values.scale-nonfinite", "values.nonfinite"}),
    (QWEN, "blk.0.attn_norm.weight", ["--scale", "30"], None),  # the seed team's "fix"; 2 layers: no peers
    (QWEN, "output_norm.weight", ["--scale", "0.14"], None),
    (QWEN, "blk.0.attn_k.bias", ["--scale", "0"], None),  # the dropped bias
    (QWEN, "token_embd.weight", ["--zero-rows", "7"], {"values.zero-rows"}),
    (Q8, "blk.1.attn_v.weight", ["--inf", "--index", "9"], {"values.scale-nonfinite", "values.nonfinite"}),
    (Q8, "blk.0.ffn_up.weight", ["--swap", "blk.1.ffn_up.weight"], None),
    (IQ4, "blk.1.ffn_gate.weight", ["--bitflip", "14", "--index", "2"], {"values.outlier-block"}),
    (IQ4, "blk.0.attn_q.weight", ["--scale", "2"], None),
    (MXFP4, "blk.0.ffn_down.weight", ["--bitflip", "7"], {"values.impossible", "values.nonfinite", "values.outlier-block"}),
]


@pytest.mark.parametrize("model,tensor,args,alone", CASES,
                         ids=[f"{os.path.basename(c[0])}:{c[1]}:{' '.join(c[2])}" for c in CASES])
def test_planted_fault_is_caught_and_localized(model, tensor, args, alone, ggufscope, tmp_path):
    bad = str(tmp_path / "bad.gguf")
    p = subprocess.run([ggufscope, "corrupt", model, bad, "--tensor", tensor, *args], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    r = audit(ggufscope, bad)
    mine = [f for f in r["findings"] if f["tensor"] == tensor]
    if alone is not None:
        assert {f["check"] for f in mine} & alone, r["findings"]
        if not any(f["check"] == "consistency.layer" for f in mine):
            assert r["verdict"] in ("corrupt", "suspicious")
    else:
        assert r["verdict"] != "corrupt" or any(f["tensor"] == tensor for f in r["findings"])
    # With the original as reference the fault is proof, and names the tensor (and for a
    # swap the other tensor too).
    ra = audit(ggufscope, bad, "--against", model)
    if "--truncate" in args:
        assert ra["verdict"] == "corrupt"
        return
    assert ra["verdict"] == "corrupt"
    proofs = [f for f in ra["findings"] if f["severity"] == "proof" and f["tensor"] == tensor]
    assert proofs, ra["findings"]
    if "--swap" in args:
        other = args[args.index("--swap") + 1]
        assert any(other in f["message"] for f in proofs), proofs


def test_set_key_contradiction_is_proof(ggufscope, tmp_path):
    bad = str(tmp_path / "bad.gguf")
    subprocess.run([ggufscope, "corrupt", STORIES, bad, "--set-key", "llama.attention.head_count=6"], check=True,
                   capture_output=True)
    r = audit(ggufscope, bad)
    assert r["verdict"] == "corrupt"
    assert any(f["check"] in ("structure.shape", "metadata.heads") for f in r["findings"])


def test_missing_tokenizer_pre_is_evidence(ggufscope, tmp_path):
    vocab = os.path.join(SHARED, "models", "vocab", "ggml-vocab-qwen2.gguf")
    out = str(tmp_path / "nopre.gguf")
    subprocess.run([ggufscope, "rewrite", vocab, out, "--remove", "tokenizer.ggml.pre"], check=True, capture_output=True)
    r = audit(ggufscope, out)
    assert r["verdict"] == "suspicious"
    assert any(f["check"] == "metadata.tokenizer-pre" and f["key"] == "tokenizer.ggml.pre" for f in r["findings"])


def test_gemma3_bitflip_in_a_real_model(ggufscope, tmp_path):
    if not os.path.exists(GEMMA):
        pytest.skip("run scripts/setup.sh")
    bad = str(tmp_path / "gemma-bad.gguf")
    subprocess.run([ggufscope, "corrupt", GEMMA, bad, "--tensor", "blk.5.ffn_down.weight", "--bitflip", "14",
                    "--index", "1000"], check=True, capture_output=True)
    r = audit(ggufscope, bad)
    assert r["verdict"] == "corrupt"
    assert any(f["tensor"] == "blk.5.ffn_down.weight" and f["severity"] == "proof" for f in r["findings"])


def test_audit_hashes_equal_llama_gguf_hash_format(ggufscope):
    # `hash` is proven line for line against llama-gguf-hash (test_hash.py); audit --hashes must agree with it.
    r = audit(ggufscope, QWEN, "--hashes")
    lines = subprocess.run([ggufscope, "hash", "--xxh64", "--sha256", QWEN], check=True, capture_output=True,
                           text=True).stdout.splitlines()
    want = {}
    for line in lines:
        kind, digest, name = line.split()[:3]
        want[(kind, name.split(":", 1)[1] if ":" in name else "")] = digest
    for t in r["tensors"]:
        assert t["xxh64"] == want[("xxh64", t["name"])]
        assert t["sha256"] == want[("sha256", t["name"])]
    assert r["model_xxh64"] == want[("xxh64", "")] and r["model_sha256"] == want[("sha256", "")]
