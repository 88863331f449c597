"""The writer: rewriting any model reproduces it byte for byte, and a file
written with a different layout (alignment 64, edited metadata) loads in
gguf-py and in llama.cpp and computes exactly the same logits."""
from __future__ import annotations

import filecmp
import os
import subprocess

import gguf
import numpy as np
import pytest

from conftest import SHARED, all_models, model_id


@pytest.mark.parametrize("path", all_models(), ids=model_id)
def test_rewrite_is_byte_identical(path, ggufscope, tmp_path):
    out = tmp_path / "out.gguf"
    subprocess.run([ggufscope, "rewrite", path, str(out)], check=True, capture_output=True)
    assert filecmp.cmp(path, out, shallow=False)


def _logits(path, tokens):
    import llama_cpp
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=64, n_batch=64, logits_all=True, n_threads=1,
                          verbose=False, seed=0)
    llm.eval(tokens)
    return np.array(llm.scores[:len(tokens)], dtype=np.float32)


@pytest.mark.parametrize("name", ["stories260K.gguf", "synth/synth-qwen2-Q4_K_M.gguf"])
def test_relaid_file_loads_in_gguf_py_and_llama_cpp(name, ggufscope, tmp_path):
    src = os.path.join(SHARED, "models", name)
    out = tmp_path / "relaid.gguf"
    subprocess.run([ggufscope, "rewrite", src, str(out), "--alignment", "64",
                    "--set", "general.name=relaid by ggufscope", "--remove", "tokenizer.ggml.padding_token_id"],
                   check=True, capture_output=True)
    assert not filecmp.cmp(src, out, shallow=False)

    a, b = gguf.GGUFReader(src), gguf.GGUFReader(out)
    assert b.alignment == 64 and b.data_offset % 64 == 0
    assert bytes(b.fields["general.name"].parts[-1]).decode() == "relaid by ggufscope"
    assert "tokenizer.ggml.padding_token_id" not in b.fields
    assert [t.name for t in a.tensors] == [t.name for t in b.tensors]
    for ta, tb in zip(a.tensors, b.tensors):
        assert tb.data_offset % 64 == 0
        assert np.array_equal(np.asarray(ta.data).view(np.uint8), np.asarray(tb.data).view(np.uint8)), ta.name

    tokens = [1, 9038, 2501, 263, 931] if name.startswith("stories") else [1, 5, 17, 200, 300]
    tokens = [t % 512 for t in tokens]
    ref, got = _logits(src, tokens), _logits(out, tokens)
    assert np.isfinite(ref).all()
    np.testing.assert_array_equal(got, ref)
