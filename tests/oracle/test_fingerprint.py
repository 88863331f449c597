"""`audit --fingerprint` against the published statistics of trained Qwen
checkpoints in ../shared/fingerprints (read by path, never copied), and
`ggufscope fingerprint` round-tripping its own format.

The oracle is the published statistics themselves: a qwen2 file whose norm
weights and biases are drawn from them (written here with gguf-py's
GGUFWriter) must match; the same file with blk.0.attn_norm.weight x30 (the
seed team's "fix") must be named as departing."""
from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

from conftest import SHARED

FP = os.path.join(SHARED, "fingerprints", "Qwen2.5-0.5B.json")


def _qwen_like(path, fp):
    import gguf
    w = gguf.GGUFWriter(str(path), "qwen2")
    rng = np.random.default_rng(7)
    for t in fp["tensors"]:
        if not (t["gguf"].endswith("norm.weight") or t["gguf"].endswith(".bias")):
            continue
        a = rng.normal(0, 1, size=t["hf_shape"])
        a = ((a - a.mean()) / a.std() * t["std"] + t["mean"]).astype(np.float32)  # exactly the published mean/std
        w.add_tensor(t["gguf"], a)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return str(path)


def _fp_findings(ggufscope, path, fingerprint):
    p = subprocess.run([ggufscope, "audit", path, "--fingerprint", fingerprint, "--json"], capture_output=True, text=True)
    assert p.returncode in (0, 1, 2), p.stderr
    return [f for f in json.loads(p.stdout)["findings"] if f["check"] == "provenance.fingerprint"]


@pytest.fixture(scope="module")
def fp():
    if not os.path.exists(FP):
        pytest.skip("no ../shared/fingerprints")
    return json.load(open(FP))


def test_norms_that_follow_the_published_statistics_match(ggufscope, tmp_path, fp):
    f = _qwen_like(tmp_path / "q.gguf", fp)
    found = _fp_findings(ggufscope, f, FP)
    assert not [x for x in found if x["severity"] != "note"], found
    summary = [x for x in found if "match the published statistics" in x["message"]]
    n = sum(1 for t in fp["tensors"] if t["gguf"].endswith("norm.weight") or t["gguf"].endswith(".bias"))
    assert n == 121  # 24 layers x (2 norms + 3 biases) + output_norm
    assert summary and summary[0]["message"].startswith(f"{n} of {n}"), summary
    # given the whole folder, the fingerprint that fits is picked
    assert _fp_findings(ggufscope, f, os.path.dirname(FP))[-1]["message"].startswith(f"{n} of {n}")


def test_the_seed_teams_fix_is_named_as_departing(ggufscope, tmp_path, fp):
    f = _qwen_like(tmp_path / "q.gguf", fp)
    bad = str(tmp_path / "x30.gguf")
    subprocess.run([ggufscope, "corrupt", f, bad, "-t", "blk.0.attn_norm.weight", "--scale", "30"], check=True,
                   capture_output=True)
    found = _fp_findings(ggufscope, bad, FP)
    departing = [x for x in found if x["severity"] == "evidence"]
    assert [x["tensor"] for x in departing] == ["blk.0.attn_norm.weight"], found
    assert "departs from the published statistics" in departing[0]["message"]


def test_fingerprint_round_trip_and_a_fingerprint_of_another_model_does_not_fit(ggufscope, tmp_path):
    model = os.path.join(SHARED, "models", "synth", "synth-qwen2-Q8_0.gguf")
    out = tmp_path / "fp.json"
    subprocess.run([ggufscope, "fingerprint", model, "-o", str(out)], check=True, capture_output=True)
    own = json.loads(out.read_text())
    assert own["architecture"] == "qwen2" and len(own["tensors"]) == 26
    found = _fp_findings(ggufscope, model, str(out))
    assert found[-1]["message"].startswith("26 of 26"), found
    # Qwen2.5-0.5B's statistics share only a few bias shapes with this 256-wide model by chance
    if os.path.exists(FP):
        found = _fp_findings(ggufscope, model, FP)
        assert len(found) == 1 and "no fingerprint given fits" in found[0]["message"], found


def test_hostile_fingerprints_are_clear_errors(ggufscope, tmp_path):
    model = os.path.join(SHARED, "models", "stories260K.gguf")
    for i, text in enumerate(["not json", "[]", '{"tensors": 3}', '{"tensors": [{"gguf": 1}]}',
                              '{"tensors": [{"gguf": "x", "mean": "a", "std": 1}]}',
                              '{"tensors": [{"gguf": "x", "mean": 0, "std": -1}]}']):
        p = tmp_path / f"bad{i}.json"
        p.write_text(text)
        found = _fp_findings(ggufscope, model, str(p))
        assert len(found) == 1 and found[0]["message"].startswith("fingerprint not read"), (text, found)


def test_doctor_reports_a_matching_outlier_as_trained_and_a_departing_one_as_a_real_suspect(ggufscope, tmp_path, fp):
    f = _qwen_like(tmp_path / "q.gguf", fp)
    bad = str(tmp_path / "x30.gguf")
    subprocess.run([ggufscope, "corrupt", f, bad, "-t", "blk.0.attn_norm.weight", "--scale", "30"], check=True,
                   capture_output=True)

    def suspect(path):
        p = subprocess.run([ggufscope, "doctor", path, "--fingerprint", FP, "--json"], capture_output=True, text=True)
        j = json.loads(p.stdout)
        return {s["tensor"]: s["fingerprint"] for s in j["suspects"]}, j

    clean, _ = suspect(f)
    # Qwen2.5's layer-0 attn_norm is an outlier among its peers by training: doctor says so
    assert clean["blk.0.attn_norm.weight"].startswith("matches")
    damaged, j = suspect(bad)
    assert damaged.get("blk.0.attn_norm.weight", "").startswith("departs"), damaged
    assert any("blk.0.attn_norm.weight departs" in e for e in j["evidence"])
