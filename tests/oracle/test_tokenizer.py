"""The CPU reference's tokenizers (`ggufscope tokenize`) against llama.cpp
(llama-cpp-python, vocab_only) on a corpus of unicode, whitespace runs,
digits, emoji, code and special-token strings, with and without BOS and
special-token parsing."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from conftest import GEMMA, SHARED

llama_cpp = pytest.importorskip("llama_cpp")

MODELS = [
    os.path.join(SHARED, "models", "stories260K.gguf"),
    os.path.join(SHARED, "models", "vocab", "ggml-vocab-llama-spm.gguf"),
    os.path.join(SHARED, "models", "vocab", "ggml-vocab-qwen2.gguf"),
    os.path.join(SHARED, "models", "vocab", "ggml-vocab-gpt-2.gguf"),
    GEMMA,
]

CORPUS = [
    "Once upon a time",
    " leading space",
    "trailing space ",
    "   three leading",
    "a  b   c    d\t\te\n\nf\r\ng",
    "\n",
    " \n \n",
    "1 12 123 1234 12345 3.14159 1,000,000 ٣٤٥ ½",
    "I'm you'RE they'll we'VE it's 'd",
    "Ünïcödé façade naïve Привет мир 你好，世界 こんにちは 안녕하세요 مرحبا שלום",
    "emoji 🦙🔥👍🏽 👨‍👩‍👧 ❤️ flags 🇫🇷",
    "def f(x):\n    return x**2  # square\n\tif x != 0: print(f'{x=}')",
    "int main() { std::vector<int> v{1, 2, 3}; return v[0] >> 1; }",
    "<s> </s> <|im_start|>user\nhi<|im_end|> <start_of_turn>model<end_of_turn> <|endoftext|>",
    "tabs\t\t\tand\u3000ideographic\u00a0nbsp\u2009thin",
    "!!!??? ... --- ___ *** ((( )))",
    "ǅungla Ⅻ ⅓ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟘𝟙𝟚",
    "A" * 300 + " " + "ab" * 100,
]


@pytest.fixture(scope="module", params=[m for m in MODELS], ids=os.path.basename)
def model(request):
    if not os.path.exists(request.param):
        pytest.skip(f"{request.param} absent")
    return request.param, llama_cpp.Llama(model_path=request.param, vocab_only=True, verbose=False)


def ours(ggufscope, path, text, add_bos, special):
    cmd = [ggufscope, "tokenize", path, text, "--json"]
    if not add_bos:
        cmd.append("--no-bos")
    if special:
        cmd.append("--special")
    out = subprocess.run(cmd, check=True, capture_output=True, timeout=120).stdout
    return json.loads(out)


@pytest.mark.parametrize("add_bos,special", [(False, False), (True, False), (True, True)])
def test_tokenize_matches_llama_cpp(ggufscope, model, add_bos, special):
    path, llm = model
    mismatches = []
    for text in CORPUS:
        want = llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special)
        got = ours(ggufscope, path, text, add_bos, special)
        if got["ids"] != want:
            mismatches.append((text, got["ids"], want))
        # Pieces concatenate to llama.cpp's detokenization of the same ids.
        ours_bytes = b"".join(bytes(p) for p in got["piece_bytes"])
        theirs = b"".join(llm.detokenize([t], special=True) for t in want)
        if got["ids"] == want and ours_bytes != theirs:
            mismatches.append((text, ours_bytes, theirs))
    assert not mismatches, mismatches[:3]


def test_vocab_files_reproduce_out(ggufscope):
    """Spot check through the CLI (the unit test covers every line)."""
    base = os.path.join(SHARED, "models", "vocab", "ggml-vocab-qwen2.gguf")
    inputs = open(base + ".inp", encoding="utf-8").read().split("\n__ggml_vocab_test__\n")
    outputs = open(base + ".out", encoding="utf-8").read().splitlines()
    for text, line in list(zip(inputs, outputs))[:12]:
        if not text or "\x00" in text:
            continue
        got = ours(ggufscope, base, text, False, False)["ids"]
        assert got == [int(x) for x in line.split()], text
