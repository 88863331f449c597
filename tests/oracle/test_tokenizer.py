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


# llama.cpp's `default` BPE pre-tokenizer (LLAMA_VOCAB_PRE_TYPE_DEFAULT),
# chosen by tokenizer.ggml.pre = "default" or by a gpt2 vocabulary without the
# key. Real vocabularies with the key rewritten (or removed) by our own CLI.
DEFAULT_PRE = [
    ("ggml-vocab-gpt-2.gguf", "default"),
    ("ggml-vocab-qwen2.gguf", "default"),
    ("ggml-vocab-gpt-2.gguf", None),  # key absent: llama.cpp falls back to default
]


# Where the default pre-tokenizer's first regex ([\p{P}\$\+<=>\^~\|]+, as
# llama.cpp's std::regex fallback sees classes) and its digit rules bite.
DEFAULT_PRE_CORPUS = [
    "«Bonjour» — “quotes” ‘single’ ¡Hola! ¿Qué? … · § ¶ 、。「」〜 ‰ † ‡ ※ ‼ ⁇",
    "symbols € £ ¥ © ® ™ ° ± × ÷ → ⇒ ∀ ∑ √ ∞ ≤ ≠ ☃ ♥ 🦙",
    "`code` $HOME a+b<c>=d^e~f|g a-b_c.d,e;f:g!h?i@j#k%l&m*n(o)p[q]r{s}t\\u/v\"w'x",
    "don't won't I'd we'll they're it's ''s 's",
    "1234567 x1234567y 12,345.678 1٣23 ١٢٣٤٥ ½⅓ 00000 0x1F 3rd 2nd  42  ",
    "a\u3000\u3000b\u00a0\u00a0\u00a0c\u2028d \u0085 e\u200bf\ufeffg cafe\u0301 مُحَمَّد",
    "tail punct!!!   \n\n   ...",
]


def vocab_inputs(base):
    return open(base + ".inp", encoding="utf-8").read().split("\n__ggml_vocab_test__\n")


@pytest.fixture(scope="module", params=DEFAULT_PRE, ids=lambda p: f"{p[0]}-pre={p[1] or 'absent'}")
def default_pre_model(request, ggufscope, tmp_path_factory):
    name, pre = request.param
    base = os.path.join(SHARED, "models", "vocab", name)
    if not os.path.exists(base):
        pytest.skip(f"{base} absent")
    path = str(tmp_path_factory.mktemp("default-pre") / name)
    edit = ["--set", f"tokenizer.ggml.pre={pre}"] if pre else ["--remove", "tokenizer.ggml.pre"]
    subprocess.run([ggufscope, "rewrite", base, path, *edit], check=True, capture_output=True, timeout=120)
    llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
    # llama.cpp logs nothing but the key for "default", so check that the
    # split really changed: default cuts punctuation out first, so "I'm" is
    # three words; the file's own pre-tokenizer (gpt-2, qwen2) keeps "'m".
    original = llama_cpp.Llama(model_path=base, vocab_only=True, verbose=False)
    want = sum((llm.tokenize(w, add_bos=False, special=False) for w in (b"I", b"'", b"m")), [])
    assert llm.tokenize(b"I'm", add_bos=False, special=False) == want
    assert original.tokenize(b"I'm", add_bos=False, special=False) != want
    return base, path, llm


@pytest.mark.parametrize("add_bos,special", [(False, False), (True, True)])
def test_default_pre_tokenizer_matches_llama_cpp(ggufscope, default_pre_model, add_bos, special):
    base, path, llm = default_pre_model
    texts = CORPUS + DEFAULT_PRE_CORPUS + [t for t in vocab_inputs(base) if t and "\x00" not in t]
    mismatches = []
    for text in texts:
        want = llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special)
        got = ours(ggufscope, path, text, add_bos, special)["ids"]
        if got != want:
            mismatches.append((text, got, want))
    assert not mismatches, f"{len(mismatches)}/{len(texts)} differ; first: {mismatches[:3]}"
