"""`ggufscope trace` and `ggufscope compare` against independent readers and
writers: gguf-py reads our trace files (docs/TRACE-FORMAT.md), a trace that
gguf-py's GGUFWriter writes by the doc is accepted, a .npy directory with a
name map is accepted, a perturbed point is named as the first divergent op,
and the CPU reference's logits agree with llama.cpp's through `compare`."""
from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

from conftest import SHARED

STORIES = os.path.join(SHARED, "models", "stories260K.gguf")
QWEN = os.path.join(SHARED, "models", "synth", "synth-qwen2-Q4_K_M.gguf")
PROMPT = "Once upon a time, there was a little girl named Lily."
OPS = ["attn_norm", "Qcur", "Kcur", "Vcur", "kqv_out", "attn_out", "ffn_inp", "ffn_norm", "ffn_gate", "ffn_up",
       "ffn_out", "l_out"]


def _run(args, check=True):
    p = subprocess.run(args, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} exited {p.returncode}: {p.stderr}")
    return p


def _trace(ggufscope, model, out, *extra):
    _run([ggufscope, "trace", model, "-o", str(out), "-t", "2", *extra])
    return out


def _compare(ggufscope, *args):
    p = _run([ggufscope, "compare", *map(str, args), "--json"], check=False)
    return p.returncode, (json.loads(p.stdout) if p.stdout.strip() else None), p.stderr


# The Python writer of docs/TRACE-FORMAT.md, verbatim.
def write_trace(path, points, tokens, backend="my-engine"):
    """points: {name: array of shape (n_tokens, width)}, in graph order."""
    from gguf import GGUFWriter
    w = GGUFWriter(path, arch="trace")               # general.architecture = "trace"
    w.add_uint32("trace.version", 1)
    w.add_string("trace.producer", "my-engine 0.3")
    w.add_string("trace.backend", backend)
    w.add_array("trace.tokens", [int(t) for t in tokens])   # an int32 array
    w.add_array("trace.points", list(points))        # the graph order, for stats-only points too
    for name, x in points.items():
        w.add_tensor(name, np.ascontiguousarray(x, dtype=np.float32))  # ggml ne = [width, n_tokens]
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _read(path):
    """(metadata dict, {name: (n_tokens, width) array}) through gguf-py."""
    from gguf import GGUFReader
    r = GGUFReader(str(path))
    meta = {k: f.contents() for k, f in r.fields.items() if not k.startswith("GGUF.")}
    tensors = {}
    for t in r.tensors:
        assert t.tensor_type == 0, (t.name, t.tensor_type)  # F32
        assert list(t.shape) == [t.data.shape[1], t.data.shape[0]], (t.name, t.shape, t.data.shape)
        tensors[t.name] = np.array(t.data)
    return meta, tensors


@pytest.fixture(scope="module")
def stories_trace(ggufscope, tmp_path_factory):
    path = tmp_path_factory.mktemp("trace") / "stories.gguf"
    return _trace(ggufscope, STORIES, path, "-p", PROMPT)


# (a) gguf-py reads the trace: names, shapes, statistics, header; result_output is `run --logits-out`.
def test_trace_is_read_by_gguf_py(ggufscope, stories_trace, tmp_path):
    meta, tensors = _read(stories_trace)
    n_layers = 5
    expected = ["inp_embd"] + [f"{op}-{l}" for l in range(n_layers) for op in OPS] + ["result_norm", "result_output"]
    assert list(tensors) == expected
    assert meta["trace.points"] == expected
    assert meta["trace.version"] == 1
    assert meta["trace.backend"] == "cpu"
    assert meta["trace.precision"] == "f32"
    assert meta["trace.producer"].startswith("ggufscope ")
    assert meta["trace.model.size"] == os.path.getsize(STORIES)
    assert meta["trace.model.arch"] == "llama"
    assert meta["general.architecture"] == "trace"
    assert not meta["trace.stats_only"]
    import hashlib
    with open(STORIES, "rb") as f:
        assert meta["trace.model.sha256"] == hashlib.sha256(f.read()).hexdigest()
    tokens = list(meta["trace.tokens"])
    n = len(tokens)
    assert n > 5
    widths = {"inp_embd": 64, "attn_norm-0": 64, "Qcur-0": 64, "Kcur-0": 32, "Vcur-0": 32, "kqv_out-0": 64,
              "ffn_gate-4": 172, "ffn_up-4": 172, "result_norm": 64, "result_output": 512}
    for name, w in widths.items():
        assert tensors[name].shape == (n, w), name
    for name, x in tensors.items():
        assert meta[f"trace.point.{name}.n_tokens"] == n
        assert meta[f"trace.point.{name}.width"] == x.shape[1]
        assert meta[f"trace.point.{name}.min"] == float(x.min())
        assert meta[f"trace.point.{name}.max"] == float(x.max())
        assert meta[f"trace.point.{name}.mean"] == pytest.approx(float(x.astype(np.float64).mean()), rel=1e-9, abs=1e-12)
        assert meta[f"trace.point.{name}.rms"] == pytest.approx(float(np.sqrt((x.astype(np.float64) ** 2).mean())),
                                                              rel=1e-12)
        assert meta[f"trace.point.{name}.nan"] == 0 and meta[f"trace.point.{name}.inf"] == 0
    logits = tmp_path / "logits.npy"
    _run([ggufscope, "run", STORIES, "--tokens", ",".join(map(str, tokens)), "-n", "0", "--logits-out", str(logits),
          "-t", "2"])
    assert np.array_equal(np.load(logits), tensors["result_output"])
    # llama.cpp's own GGUF reader takes the file too.
    import llama_ggml
    table = llama_ggml.read_tensor_table(str(stories_trace))
    assert table is not None
    assert [t.name for t in table[0]] == expected and all(t.type_id == 0 for t in table[0])
    # The residual stream is consistent with itself: l_out = ffn_out + ffn_inp, ffn_inp = attn_out + l_out(prev).
    np.testing.assert_allclose(tensors["l_out-2"], tensors["ffn_out-2"] + tensors["ffn_inp-2"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(tensors["ffn_inp-2"], tensors["attn_out-2"] + tensors["l_out-1"], rtol=1e-6, atol=1e-6)


def test_stats_only_and_points_filter(ggufscope, stories_trace, tmp_path):
    out = _trace(ggufscope, STORIES, tmp_path / "s.gguf", "-p", PROMPT, "--stats-only", "--points", "^(l_out|result)")
    meta, tensors = _read(out)
    assert tensors == {}
    assert meta["trace.stats_only"]
    assert meta["trace.points"] == [f"l_out-{l}" for l in range(5)] + ["result_norm", "result_output"]
    full_meta, _ = _read(stories_trace)
    for key in ("min", "max", "mean", "rms", "n_tokens", "width"):
        assert meta[f"trace.point.l_out-3.{key}"] == full_meta[f"trace.point.l_out-3.{key}"]
    # A statistics-only side is never judged consistent element-wise, nor divergent without proof.
    rc, j, _ = _compare(ggufscope, stories_trace, out)
    assert rc == 0, j["summary"]
    assert {p["verdict"] for p in j["points"]} == {"unjudged"}


# (b) A trace written by gguf-py's GGUFWriter as docs/TRACE-FORMAT.md shows is accepted.
def test_python_written_trace_is_accepted(ggufscope, stories_trace, tmp_path):
    meta, tensors = _read(stories_trace)
    theirs = tmp_path / "theirs.gguf"
    write_trace(str(theirs), tensors, meta["trace.tokens"])
    rc, j, err = _compare(ggufscope, stories_trace, theirs)
    assert rc == 0, err
    assert j["verdict"] == "consistent"
    assert j["n_points"] == len(tensors)
    assert j["b"]["producer"] == "my-engine 0.3"
    assert j["argmax_agreement"] == 1.0
    # Other tokens: refused (exit 3), unless asked.
    write_trace(str(theirs), tensors, list(meta["trace.tokens"])[:-1] + [7])
    rc, _, err = _compare(ggufscope, stories_trace, theirs)
    assert rc == 3 and "different tokens" in err


# (c) A directory of .npy files under another engine's names, with a name map.
def test_npy_directory_with_a_name_map(ggufscope, stories_trace, tmp_path):
    _, tensors = _read(stories_trace)
    d = tmp_path / "npy"
    d.mkdir()
    for name, x in tensors.items():
        if "-" in name:
            op, layer = name.rsplit("-", 1)
            foreign = f"blk.{layer}.{op}"
            if op in ("Qcur", "Kcur"):  # (n_tokens, n_head, head_dim), as a PyTorch engine keeps them
                x = x.reshape(x.shape[0], -1, 8)
        else:
            foreign = {"inp_embd": "tok_embeddings", "result_norm": "norm", "result_output": "logits"}[name]
        np.save(d / f"{foreign}.npy", x)
    np.save(d / "scratch_buffer.npy", np.zeros(3, np.float32))
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({
        "names": {"tok_embeddings": "inp_embd", "norm": "result_norm", "logits": "result_output",
                  "scratch_buffer": ""},
        "rules": [{"match": r"^blk\.(\d+)\.(\w+)$", "name": "$2-$1"}],
    }))
    rc, j, err = _compare(ggufscope, stories_trace, d, "--map-b", mapping)
    assert rc == 0, err
    assert j["n_points"] == len(tensors) and j["only_in_a"] == [] and j["only_in_b"] == []
    # Without the map nothing but nothing lines up.
    rc, j, err = _compare(ggufscope, stories_trace, d)
    assert rc == 3 and "no trace point is in both" in err


# (d) Self-comparison is consistent; a perturbed Kcur-1 is named as the first divergent op.
def test_perturbed_point_is_the_first_divergent_op(ggufscope, stories_trace, tmp_path):
    rc, j, _ = _compare(ggufscope, stories_trace, stories_trace)
    assert rc == 0 and j["verdict"] == "consistent" and j["first_divergent"] is None
    assert all(p["rel_l2"] == 0 for p in j["points"])

    meta, tensors = _read(stories_trace)
    rng = np.random.default_rng(0)
    bad = dict(tensors)
    # The bug: Kcur-1 off by 5%; everything computed from it after it moves too.
    downstream = False
    for name in tensors:
        if name == "kqv_out-1":
            downstream = True
        if name == "Kcur-1" or downstream:
            x = tensors[name]
            bad[name] = x + 0.05 * np.sqrt((x.astype(np.float64) ** 2).mean()) * rng.standard_normal(x.shape)
    perturbed = tmp_path / "bad.gguf"
    write_trace(str(perturbed), bad, meta["trace.tokens"])
    rc, j, _ = _compare(ggufscope, stories_trace, perturbed)
    assert rc == 1
    assert j["verdict"] == "diverges"
    first = j["first_divergent"]
    assert (first["name"], first["op"], first["layer"]) == ("Kcur-1", "Kcur", 1)
    assert first["inputs"] == ["attn_norm-1"]
    assert j["origins"] == ["Kcur-1"]
    by_name = {p["name"]: p for p in j["points"]}
    assert by_name["Qcur-1"]["verdict"] == "ok" and by_name["Vcur-1"]["verdict"] == "ok"
    assert by_name["kqv_out-1"]["verdict"] == "diverges"
    assert 0.03 < by_name["Kcur-1"]["rel_l2"] < 0.07
    # Text: one line per point and a summary naming op and layer.
    p = _run([ggufscope, "compare", str(stories_trace), str(perturbed)], check=False)
    assert p.returncode == 1
    assert "DIVERGES: first divergent op Kcur in layer 1" in p.stdout
    line = next(l for l in p.stdout.splitlines() if l.startswith("Kcur-1 "))
    assert "DIVERGES" in line and "<- first divergent" in line
    # A looser tolerance for Kcur and what follows accepts it.
    rc, j, _ = _compare(ggufscope, stories_trace, perturbed, "--tol", "0.2")
    assert rc == 0


def test_model_mode_and_exit_codes(ggufscope, stories_trace, tmp_path):
    # Two engines on one model: the f64 reference vs the f32 one, within 1e-5 everywhere.
    rc, j, err = _compare(ggufscope, QWEN, "--a", "cpu-f64", "--b", "cpu", "-p", "Hello world", "-t", "2")
    assert rc == 0, err
    assert j["verdict"] == "consistent"
    assert max(p["rel_l2"] for p in j["points"]) < 1e-5
    # An engine against a trace: the tokens come from the trace.
    rc, j, err = _compare(ggufscope, STORIES, "--a", "cpu", "--b", stories_trace, "-t", "2")
    assert rc == 0, err
    assert j["n_points"] == 63
    # Unreadable input: 3; bad command line: 64.
    html = tmp_path / "page.gguf"
    html.write_text("<!DOCTYPE html><html></html>")
    rc, _, err = _compare(ggufscope, stories_trace, html)
    assert rc == 3 and "bad-magic" in err
    rc, _, err = _compare(ggufscope, stories_trace, STORIES)
    assert rc == 3 and "trace.version" in err
    assert _compare(ggufscope, stories_trace, stories_trace, "--tol", "abc")[0] == 64
    assert _compare(ggufscope, stories_trace, stories_trace, "--points", "(")[0] == 64
    assert _compare(ggufscope, stories_trace, stories_trace, "-p", "x")[0] == 64
    assert _run([ggufscope, "trace", STORIES, "--tokens", "1,x", "-o", str(tmp_path / "x.gguf")],
                check=False).returncode == 64
    assert _run([ggufscope, "trace", STORIES, "--tokens", "1,99999", "-o", str(tmp_path / "x.gguf")],
                check=False).returncode == 64


# (e) The CPU reference against llama.cpp: result_output from llama.cpp's logits.
def test_reference_logits_match_llama_cpp_through_compare(ggufscope, tmp_path):
    import llama_cpp
    llm = llama_cpp.Llama(model_path=STORIES, n_ctx=256, n_batch=256, logits_all=True, n_threads=2, verbose=False,
                          type_k=0, type_v=0)
    tokens = llm.tokenize(PROMPT.encode())
    llm.eval(tokens)
    d = tmp_path / "llama"
    d.mkdir()
    np.save(d / "result_output.npy", np.array(llm.scores[:len(tokens)], dtype=np.float32))
    np.save(d / "tokens.npy", np.array(tokens, dtype=np.int32))
    ours = _trace(ggufscope, STORIES, tmp_path / "ours.gguf", "--tokens", ",".join(map(str, tokens)))
    rc, j, err = _compare(ggufscope, d, ours)
    assert rc == 0, (err, j and j["summary"])
    assert j["n_points"] == 1
    out = j["points"][0]
    assert out["name"] == "result_output" and out["verdict"] == "ok"
    assert out["rel_l2"] < 1e-4 and out["argmax_agreement"] == 1.0


# (f) --inject on trace and compare: the engine under test with a known bug.
QWEN_Q8 = os.path.join(SHARED, "models", "synth", "synth-qwen2-Q8_0.gguf")


@pytest.mark.parametrize("model,bug,first", [
    (QWEN_Q8, "qkv-bias-dropped", "Qcur-0"),
    (QWEN_Q8, "transposed-gemm", "attn_out-0"),
    (STORIES, "kv-off-by-one", "kqv_out-0"),
    (STORIES, "rms-eps", "attn_norm-0"),
], ids=lambda v: os.path.basename(v) if isinstance(v, str) and v.endswith(".gguf") else v)
def test_injected_bug_is_named_by_compare_and_by_traces(ggufscope, model, bug, first, tmp_path):
    rc, j, err = _compare(ggufscope, model, "--a", "cpu", "--b", "cpu", "--inject", bug, "-p", PROMPT, "-t", "2")
    assert rc == 1, err
    assert j["first_divergent"]["name"] == first
    # The same through two trace files: the clean reference and the engine with the bug.
    clean = _trace(ggufscope, model, tmp_path / "clean.gguf", "-p", PROMPT)
    buggy = _trace(ggufscope, model, tmp_path / "bug.gguf", "-p", PROMPT, "--inject", bug)
    rc, j, err = _compare(ggufscope, clean, buggy)
    assert rc == 1, err
    assert j["first_divergent"]["name"] == first
    # --inject needs an engine on side B, and a known name.
    assert _compare(ggufscope, model, "--b", str(clean), "--inject", bug, "-p", PROMPT)[0] == 64
    assert _compare(ggufscope, clean, buggy, "--inject", bug)[0] == 64
    assert _run([ggufscope, "trace", model, "-p", "x", "--inject", "no-such-bug"], check=False).returncode != 0
