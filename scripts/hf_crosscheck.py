#!/usr/bin/env python3
"""Cross-check the CPU reference against Hugging Face transformers.

For each family (qwen2, qwen3, llama, gemma3) this builds a small random
model, saves it with save_pretrained(safe_serialization=True), converts it
with `ggufscope import-hf`, runs `ggufscope run --logits-out` on a fixed
token sequence, runs transformers (float32, eager attention, CPU) on the same
ids, and prints the max abs logits difference. It also runs the float64
numpy implementation of scripts/hf_numpy.py on the saved checkpoint, so a
disagreement can be placed: numpy-vs-transformers checks the oracle of
tests/oracle/test_import_hf.py, ggufscope-vs-transformers is the verdict.

Weights are drawn with scales that keep activations and logits O(1) (HF's
0.02 init would make every logit ~0 and the comparison vacuous) and loaded
into the transformers model by name, so torch, numpy and ggufscope all see
the same checkpoint.

    python3 scripts/hf_crosscheck.py build/ggufscope             # transformers (needs torch)
    python3 scripts/hf_crosscheck.py build/ggufscope --backend numpy   # no torch: numpy oracle only

With the transformers backend it then trains three tiny byte-level BPE
tokenizers with the `tokenizers` library (Qwen2 and Llama 3 Split regexes,
GPT-2 ByteLevel), imports each tokenizer.json, and checks that `ggufscope
tokenize` gives the library's ids.

Exit status: 0 every model within --tol (and every tokenization equal), 1
some model beyond it (or a tokenization differs), 2 the
backend cannot run (torch / transformers missing) or ggufscope failed.
Needs no network: configs are built in code.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_numpy as hn  # noqa: E402

# The sizes of the brief; gemma3 needs 6 layers to have one global layer,
# and a short window so the sliding mask matters over the prompt.
SIZES = {
    "qwen2": dict(hidden=256, layers=4, heads=8, kv_heads=2, vocab=512, ff=688),
    "qwen3": dict(hidden=256, layers=4, heads=8, kv_heads=2, vocab=512, ff=688, head_dim=64),
    "llama": dict(hidden=256, layers=4, heads=8, kv_heads=2, vocab=512, ff=688),
    "gemma3": dict(hidden=256, layers=6, heads=8, kv_heads=2, vocab=512, ff=688, head_dim=64, sliding_window=5),
}
CLASSES = {"qwen2": ("Qwen2Config", "Qwen2ForCausalLM"), "qwen3": ("Qwen3Config", "Qwen3ForCausalLM"),
           "llama": ("LlamaConfig", "LlamaForCausalLM"), "gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM")}


def config_kwargs(arch: str, cfg: dict) -> dict:
    """The few constructor arguments that define the model; transformers fills
    in the rest, and save_pretrained's config.json is what import-hf reads."""
    keys = ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "tie_word_embeddings",
            "bos_token_id", "eos_token_id", "rope_theta"]
    if arch in ("qwen3", "gemma3", "llama"):
        keys.append("head_dim")
    if arch == "gemma3":
        keys += ["query_pre_attn_scalar", "sliding_window", "rope_local_base_freq"]
    return {k: cfg[k] for k in keys if k in cfg}


def transformers_model(arch: str, cfg: dict, weights: dict[str, np.ndarray]):
    import torch
    import transformers
    conf_name, model_name = CLASSES[arch]
    conf_cls, model_cls = getattr(transformers, conf_name, None), getattr(transformers, model_name, None)
    if conf_cls is None or model_cls is None:
        return None, f"transformers {transformers.__version__} has no {model_name}"
    kwargs = config_kwargs(arch, cfg)
    try:
        config = conf_cls(**kwargs)
    except (TypeError, ValueError):  # a version that takes the rope settings only as rope_parameters
        rope = {"rope_type": "default", "rope_theta": kwargs.pop("rope_theta")}
        local = kwargs.pop("rope_local_base_freq", None)
        kwargs["rope_parameters"] = ({"full_attention": rope, "sliding_attention": {"rope_type": "default",
                                                                                   "rope_theta": local}}
                                     if local is not None else rope)
        config = conf_cls(**kwargs)
    config._attn_implementation = "eager"
    if arch == "gemma3" and getattr(config, "sliding_window", None) != cfg["sliding_window"]:
        return None, f"Gemma3TextConfig changed sliding_window to {config.sliding_window}"
    torch.manual_seed(0)
    model = model_cls(config).to(torch.float32).eval()
    state = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in weights.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        return None, f"state dict mismatch: missing {missing}, unexpected {unexpected}"
    if config.tie_word_embeddings:
        model.tie_weights()
    return model, ""


def check_one(arch: str, binary: str, backend: str, ids: list[int], workdir: str, seed: int,
              weight_type: str, verbose: bool = False) -> tuple[dict, str]:
    cfg = hn.make_config(arch, **SIZES[arch])
    weights = hn.random_weights(cfg, seed=seed)
    ckpt = os.path.join(workdir, arch)
    result: dict = {}
    if backend == "transformers":
        import torch
        model, why = transformers_model(arch, cfg, weights)
        if model is None:
            return {}, why
        with torch.no_grad():
            ref = model(torch.tensor([ids])).logits[0].double().numpy()
        try:
            model.save_pretrained(ckpt, safe_serialization=True)
        except TypeError:  # a version where safetensors is the only format
            model.save_pretrained(ckpt)
        # The oracle of the CPU test, run on what transformers saved.
        import json
        with open(os.path.join(ckpt, "config.json")) as f:
            saved_cfg = hn.normalize_config(json.load(f))
        if verbose:
            print(f"--- {arch}: config.json as saved\n{json.dumps(saved_cfg, indent=1, sort_keys=True)}")
        saved_cfg.setdefault("tie_word_embeddings", cfg["tie_word_embeddings"])
        for k in ("query_pre_attn_scalar", "sliding_window", "rope_local_base_freq", "rope_theta"):
            saved_cfg.setdefault(k, cfg.get(k))
        saved = hn.read_checkpoint(ckpt)
        result["numpy_vs_transformers"] = hn.compare(ref, hn.hf_forward(saved_cfg, saved, ids))["max_abs"]
    else:
        hn.write_checkpoint(ckpt, cfg, weights)
        ref = hn.hf_forward(cfg, weights, ids)
    got = hn.run_ggufscope(binary, ckpt, os.path.join(workdir, arch + ".gguf"), ids, workdir, weight_type,
                           log=print if verbose else None)
    if weight_type == "f16":  # the oracle of an f16 file is the f16-rounded checkpoint (numpy backend only)
        result["note"] = "f16 matrices: expect ~1e-2, not 1e-3"
    m = hn.compare(ref, got)
    result.update({"ggufscope_vs_" + backend: m["max_abs"], "argmax_agree": m["argmax_agree"],
                   "cosine": m["cosine"], "max_abs_logit": float(np.abs(ref).max())})
    return result, ""


# The Split regexes llama.cpp implements (as tokenizer.json writes them).
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
               r"\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_REGEX = QWEN2_REGEX.replace(r"\p{N}|", r"\p{N}{1,3}|")


def check_tokenizers(binary: str, workdir: str) -> int:
    """Tiny byte-level BPEs trained and saved by the `tokenizers` library
    (Qwen2 and Llama 3 Split regexes, GPT-2 ByteLevel) must import into GGUF
    vocabularies that `ggufscope tokenize` runs to the library's ids. Returns
    the number of mismatching strings."""
    import json
    import subprocess
    import tokenizers
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    corpus = ["Once upon a time, there was a little girl named Lily. She played in the park 123 4567.",
              "The quick brown fox jumps over the lazy dog! It's 2026; we'll see, don't you?\n\nNew   lines.",
              "Ünïcödé tëxt, 日本語 and emoji 🙂🙂 too."] * 20
    texts = ["Hello world, 123 4567 🙂", "It's a test\n\n  with   spaces", "日本語のテキスト",
             "lily played in the park<|endoftext|>x"]
    bad = 0
    for pre_name, regex in (("qwen2", QWEN2_REGEX), ("llama-bpe", LLAMA3_REGEX), ("gpt-2", None)):
        folder = os.path.join(workdir, "tok-" + pre_name)
        cfg = hn.make_config("qwen2", vocab=512)
        hn.write_checkpoint(folder, cfg, hn.random_weights(cfg))
        tok = Tokenizer(models.BPE())
        byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=regex is None)
        tok.pre_tokenizer = byte_level if regex is None else pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(regex), behavior="isolated"), byte_level])
        tok.decoder = decoders.ByteLevel()
        tok.train_from_iterator(corpus, trainers.BpeTrainer(
            vocab_size=480, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            special_tokens=["<|endoftext|>"], show_progress=False))
        tok.save(os.path.join(folder, "tokenizer.json"))
        out = os.path.join(workdir, f"tok-{pre_name}.gguf")
        imp = subprocess.run([binary, "import-hf", folder, "-o", out], capture_output=True, text=True)
        if imp.returncode != 0 or f"pre-tokenizer {pre_name}" not in imp.stderr:
            print(f"tokenizer {pre_name:9s} FAIL import: {imp.stderr.strip()}")
            bad += len(texts)
            continue
        for t in texts:
            got = json.loads(subprocess.run([binary, "tokenize", out, t, "--json", "--special", "--no-bos"],
                                            capture_output=True, text=True, check=True).stdout)["ids"]
            want = tok.encode(t).ids
            bad += got != want
            print(f"tokenizer {pre_name:9s} {'PASS' if got == want else 'FAIL'}  {t!r}"
                  + ("" if got == want else f"\n  tokenizers {want}\n  ggufscope  {got}"))
    print(f"tokenizers {tokenizers.__version__}: {bad} mismatching strings")
    return bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ggufscope", help="path of the ggufscope binary")
    ap.add_argument("--models", default="qwen2,qwen3,llama,gemma3", help="comma-separated: qwen2,qwen3,llama,gemma3")
    ap.add_argument("--backend", choices=["transformers", "numpy"], default="transformers")
    ap.add_argument("--tol", type=float, default=1e-3, help="max abs logits difference allowed (default 1e-3)")
    ap.add_argument("--tokens", type=int, default=16, help="prompt length (default 16)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--type", choices=["f32", "f16"], default="f32", help="import-hf --type (default f32)")
    ap.add_argument("--keep", help="keep checkpoints and GGUF files in this folder")
    ap.add_argument("--no-tokenizers", action="store_true",
                    help="skip the tokenizer.json import check (transformers backend; needs `tokenizers`)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each saved config.json and import notes")
    args = ap.parse_args()

    binary = os.path.abspath(args.ggufscope)
    if not os.access(binary, os.X_OK):
        print(f"hf_crosscheck: {binary} is not an executable", file=sys.stderr)
        return 2
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in SIZES]
    if unknown:
        print(f"hf_crosscheck: unknown models {unknown}; choose from {list(SIZES)}", file=sys.stderr)
        return 2
    if args.backend == "transformers":
        try:
            import torch
            import transformers
        except ImportError as e:
            print(f"hf_crosscheck: the transformers backend needs torch and transformers ({e}); "
                  "--backend numpy runs without them", file=sys.stderr)
            return 2
        torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))
        print(f"torch {torch.__version__}, transformers {transformers.__version__}, float32, eager attention, CPU")
    rng = np.random.default_rng(args.seed)
    vocab = min(SIZES[m]["vocab"] for m in models) if models else 512
    ids = [1] + [int(t) for t in rng.integers(3, vocab, args.tokens - 1)]
    print(f"tokens: {ids}")

    tmp = None if args.keep else tempfile.TemporaryDirectory(prefix="hf_crosscheck_")
    workdir = args.keep or tmp.name
    os.makedirs(workdir, exist_ok=True)
    worst, failed, broken = 0.0, [], []
    for arch in models:
        try:
            r, why = check_one(arch, binary, args.backend, ids, workdir, args.seed, args.type, args.verbose)
        except RuntimeError as e:  # ggufscope failed
            print(f"{arch:7s} ERROR {e}")
            broken.append(arch)
            continue
        if not r:
            print(f"{arch:7s} SKIP  {why}")
            continue
        d = r["ggufscope_vs_" + args.backend]
        ok = d <= args.tol and r["argmax_agree"] == 1.0
        worst = max(worst, d)
        if not ok:
            failed.append(arch)
        extra = "".join(f"  {k} {v:.3g}" if isinstance(v, float) else f"  {k}: {v}"
                        for k, v in r.items() if k != "ggufscope_vs_" + args.backend)
        print(f"{arch:7s} {'PASS' if ok else 'FAIL'}  max abs logits diff ggufscope vs {args.backend} {d:.3g}{extra}")
    print(f"worst {worst:.3g} (tolerance {args.tol:g}); files in {workdir}" if args.keep else
          f"worst {worst:.3g} (tolerance {args.tol:g})")
    tok_bad = 0
    if args.backend == "transformers" and not args.no_tokenizers:
        tok_bad = check_tokenizers(binary, workdir)
    if broken:
        return 2
    return 1 if failed or tok_bad else 0


if __name__ == "__main__":
    sys.exit(main())
