"""`ggufscope info --json --full` agrees with gguf-py's GGUFReader and with
llama.cpp's gguf_init_from_file on every field of every shared model."""
from __future__ import annotations

import json
import math
import subprocess

import gguf
import numpy as np
import pytest

import llama_ggml
from conftest import all_models, model_id

VT = gguf.GGUFValueType


def _info(ggufscope, path):
    out = subprocess.run([ggufscope, "info", path, "--json", "--full"], check=True, capture_output=True).stdout
    return json.loads(out)


def _py_value(field):
    """A GGUFReader field as the plain JSON value ggufscope prints."""
    types = field.types
    if types[0] == VT.ARRAY:
        if len(types) > 2:  # arrays of arrays: compared on length only (gguf-py flattens them)
            return None
        sub = types[1]
        if sub == VT.STRING:
            return [bytes(field.parts[i]).decode("utf-8", "replace") for i in field.data]
        return [_scalar(sub, field.parts[i][0]) for i in field.data]
    if types[0] == VT.STRING:
        return bytes(field.parts[field.data[0]]).decode("utf-8", "replace")
    return _scalar(types[0], field.parts[field.data[0]][0])


def _scalar(vt, x):
    if vt == VT.BOOL:
        return bool(x)
    if vt in (VT.FLOAT32, VT.FLOAT64):
        v = float(x)
        return v if math.isfinite(v) else str(v)
    return int(x)


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return np.float32(a) == np.float32(b) or a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("path", all_models(), ids=model_id)
def test_info_matches_gguf_py_and_llama_cpp(path, ggufscope):
    ours = _info(ggufscope, path)
    try:
        reader = gguf.GGUFReader(path)
    except ValueError:
        reader = None  # gguf-py does not know type 42 (Q2_0): llama.cpp alone below
    if reader is not None:
        fields = [f for f in reader.fields.values() if not f.name.startswith("GGUF.")]
        assert [m["key"] for m in ours["metadata"]] == [f.name for f in fields]
        for m, f in zip(ours["metadata"], fields):
            want = _py_value(f)
            assert m["type"] == f.types[0].name.lower(), m["key"]
            if want is not None:
                assert _same(m["value"], want), m["key"]
        assert ours["header"]["version"] == int(reader.fields["GGUF.version"].parts[0][0])
        assert ours["header"]["alignment"] == reader.alignment
        assert ours["header"]["data_offset"] == reader.data_offset
        assert len(ours["tensors"]) == len(reader.tensors)
        for t, r in zip(ours["tensors"], reader.tensors):
            assert t["name"] == r.name
            assert t["type"] == r.tensor_type.name
            assert t["shape"] == [int(x) for x in r.shape]
            assert t["n_elements"] == int(r.n_elements)
            assert t["file_offset"] == int(r.data_offset)
            assert t["n_bytes"] == int(r.n_bytes)
    table = llama_ggml.read_tensor_table(path)
    assert table is not None, "llama.cpp refuses a file we accept"
    tensors, n_kv = table
    # llama.cpp counts general.alignment etc. like any key
    assert n_kv == ours["header"]["n_kv"]
    assert [(t.name, t.type_id, t.file_offset, t.n_bytes) for t in tensors] == [
        (t["name"], t["type_id"], t["file_offset"], t["n_bytes"]) for t in ours["tensors"]]


def test_json_arrays_are_summarised_without_full(ggufscope, tmp_path):
    path = [p for p in all_models() if p.endswith("stories260K.gguf")][0]
    out = json.loads(subprocess.run([ggufscope, "info", path, "--json"], check=True, capture_output=True).stdout)
    tokens = next(m for m in out["metadata"] if m["key"] == "tokenizer.ggml.tokens")
    assert tokens["length"] == 512 and tokens["truncated"] and len(tokens["value"]) == 8
