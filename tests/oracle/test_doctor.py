"""`ggufscope doctor` end to end: every injected kernel bug gives FILE INTACT,
KERNEL DIVERGES at the right op and layer; every planted file fault gives
FILE CORRUPT naming the tensor (with --against where only a reference can see
it); clean files give CONSISTENT; and the seed case (../shared/docs/SEED-CASE.md)
both ways. The oracle for "right op" is where each bug is planted in the code
(reference_cpu/faults.h); for "right tensor", the tensor `corrupt` damaged."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from conftest import SHARED

QWEN = os.path.join(SHARED, "models", "synth", "synth-qwen2-Q8_0.gguf")
STORIES = os.path.join(SHARED, "models", "stories260K.gguf")


def doctor(ggufscope, *args):
    p = subprocess.run([ggufscope, "doctor", *args, "--json"], capture_output=True, text=True, timeout=600)
    assert p.returncode in (0, 1, 2, 3), p.stderr
    j = json.loads(p.stdout)
    assert j["exit_code"] == p.returncode
    return p.returncode, j


def corrupt(ggufscope, src, dst, *args):
    subprocess.run([ggufscope, "corrupt", src, str(dst), *args], check=True, capture_output=True)
    return str(dst)


@pytest.mark.parametrize("model,bug,first", [
    (QWEN, "qkv-bias-dropped", "Qcur-0"),
    (QWEN, "rope-pairing", "Qcur-0"),
    (QWEN, "transposed-gemm", "attn_out-0"),
    (QWEN, "gqa-map", "kqv_out-0"),
    (QWEN, "rms-eps", "attn_norm-0"),
    (STORIES, "rms-eps", "attn_norm-0"),
    (STORIES, "f16-softmax", "kqv_out-0"),
    (STORIES, "kv-off-by-one", "kqv_out-0"),
    (STORIES, "rope-pairing", "Qcur-0"),
], ids=lambda x: os.path.basename(x) if isinstance(x, str) and x.endswith(".gguf") else x)
def test_injected_bug_is_a_kernel_divergence_at_its_op(ggufscope, model, bug, first):
    code, j = doctor(ggufscope, model, "--inject", bug)
    assert code == 1, j["headline"]
    assert j["verdict"] == "FILE INTACT, KERNEL DIVERGES"
    assert j["first_divergent"] == first
    assert j["likely_cause"]


@pytest.mark.parametrize("model", [QWEN, STORIES], ids=os.path.basename)
def test_clean_file_is_consistent(ggufscope, model):
    code, j = doctor(ggufscope, model)
    assert code == 0 and j["verdict"] == "CONSISTENT"
    assert j["functional"]["ran"]


@pytest.mark.parametrize("args,tensor,needs_ref", [
    (["-t", "blk.1.ffn_up.weight", "--nan", "--index", "3"], "blk.1.ffn_up.weight", False),
    (["-t", "blk.0.attn_q.weight", "--inf"], "blk.0.attn_q.weight", False),
    (["-t", "blk.1.attn_k.bias", "--scale", "1e9"], "blk.1.attn_k.bias", False),
    (["-t", "blk.0.ffn_gate.weight", "--swap", "blk.1.ffn_gate.weight"], "blk.0.ffn_gate.weight", True),
    (["-t", "blk.1.ffn_down.weight", "--scale", "-1"], "blk.1.ffn_down.weight", True),
    (["-t", "blk.0.attn_v.weight", "--bitflip", "3", "--index", "5"], "blk.0.attn_v.weight", True),
    (["-t", "blk.1.ffn_norm.weight", "--noise", "0.05"], "blk.1.ffn_norm.weight", True),
    (["-t", "blk.0.ffn_up.weight", "--zero-rows", "5"], "blk.0.ffn_up.weight", True),
    (["-t", "blk.1.ffn_down.weight", "--truncate", "100"], "blk.1.ffn_down.weight", False),
    (["--set-key", "qwen2.attention.head_count=6"], "qwen2.attention.head_count", False),
])
def test_planted_file_fault_is_file_corrupt_naming_the_tensor(ggufscope, tmp_path, args, tensor, needs_ref):
    bad = corrupt(ggufscope, QWEN, tmp_path / "bad.gguf", *args)
    code, j = doctor(ggufscope, bad, *(["--against", QWEN] if needs_ref else []))
    assert code == 2, j["headline"]
    assert j["verdict"] == "FILE CORRUPT"
    assert tensor in j["headline"] or any(tensor in e for e in j["evidence"])


def test_seed_case_end_to_end(ggufscope, tmp_path):
    # 1. The genuine file (Qwen-like outlier norms) with the q/k/v-bias bug.
    code, j = doctor(ggufscope, QWEN, "--inject", "qkv-bias-dropped")
    assert (code, j["first_divergent"]) == (1, "Qcur-0")
    # The clean file's own statistics already single out blk.0.attn_norm: by design.
    clean_suspects = [s["tensor"] for s in doctor(ggufscope, QWEN)[1]["suspects"]]
    assert "blk.0.attn_norm.weight" in clean_suspects
    # 2. The same file with blk.0.attn_norm scaled by 1/30, no engine bug.
    bad = corrupt(ggufscope, QWEN, tmp_path / "seed.gguf", "-t", "blk.0.attn_norm.weight", "--scale", "0.0333333")
    code, j = doctor(ggufscope, bad, "--against", QWEN)
    assert code == 2 and "blk.0.attn_norm.weight" in j["headline"]
    # Without a reference: the prime suspect, but not a verdict of corruption.
    code, j = doctor(ggufscope, bad)
    assert code == 0 and j["verdict"] == "CONSISTENT"
    assert j["suspects"][0]["tensor"] == "blk.0.attn_norm.weight"
    assert any("not proof" in e and "blk.0.attn_norm.weight" in e for e in j["evidence"])


def test_what_if_on_a_trained_model(ggufscope, tmp_path):
    # stories260K is trained: rescaling a damaged norm back to its peers helps markedly.
    bad = corrupt(ggufscope, STORIES, tmp_path / "s.gguf", "-t", "blk.2.attn_norm.weight", "--scale", "0.0333333")
    code, j = doctor(ggufscope, bad, "--what-if")
    assert code == 2, j["headline"]
    w = j["what_if"][0]
    assert w["tensor"] == "blk.2.attn_norm.weight" and w["ppl_after"] < 0.9 * w["ppl_before"]
    # Without --what-if the same file is only a suspect.
    code, j = doctor(ggufscope, bad)
    assert code == 0 and j["suspects"][0]["tensor"] == "blk.2.attn_norm.weight"
    # On the random-weight synth model the functional check cannot judge a repair, and says so.
    code, j = doctor(ggufscope, QWEN, "--what-if")
    assert code == 0 and not j["what_if"]
    assert any("--what-if skipped" in e for e in j["evidence"])


def test_engine_that_cannot_run_is_not_called_consistent(ggufscope):
    devices = subprocess.run([ggufscope, "devices", "--json"], capture_output=True, text=True)
    if devices.returncode == 0 and json.loads(devices.stdout).get("devices"):
        pytest.skip("a GPU is present (the device-machine run covers --backend cuda)")
    p = subprocess.run([ggufscope, "doctor", STORIES, "--backend", "cuda", "--json"], capture_output=True, text=True)
    assert p.returncode == 69, p.stdout[-400:]
    j = json.loads(p.stdout)
    assert j["engine_error"] and "could not be run" in j["headline"]


def test_nan_weights_make_the_reference_itself_fail(ggufscope, tmp_path):
    # Besides the audit's proof, the functional check sees the NaN reach the logits.
    bad = corrupt(ggufscope, STORIES, tmp_path / "nan.gguf", "-t", "blk.1.ffn_up.weight", "--nan")
    code, j = doctor(ggufscope, bad)
    assert code == 2 and j["functional"]["nonfinite"]
    assert any("NaN/Inf on the file itself" in e for e in j["evidence"])
    assert not doctor(ggufscope, STORIES)[1]["functional"]["nonfinite"]
