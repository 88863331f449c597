#!/usr/bin/env python3
"""Issue 7 end to end (GPU machine: torch + transformers, no network).

For qwen2, llama and gemma3: a small random checkpoint made by transformers
(AutoModelForCausalLM.from_config + save_pretrained(safe_serialization=True)),
converted by llama.cpp's own convert_hf_to_gguf.py to F16 and quantized by
llama-quantize to Q8_0 and Q4_K_M; then `ggufscope diff GGUF CHECKPOINT` must
say consistent for every file, and must name the tensor of every planted
fault (`ggufscope corrupt`). Prints one line per check and a summary; exits 1
on any unexpected result.

Usage: provenance_e2e.py --ggufscope BIN --quantize BIN --llama LLAMA_CPP_DIR --work DIR
(scripts/provenance_e2e.sh builds both binaries and calls this.)

The converter's vocabulary step: convert_hf_to_gguf.py identifies a BPE
tokenizer by hashing its output on a fixed text and refuses any it does not
know, and a sentencepiece model would need the sentencepiece package. The
converter is therefore imported as a module and the model class's set_vocab
replaced by a placeholder gpt2 vocabulary of exactly vocab_size tokens (the
tensors, which are what diff compares, go through the converter untouched).
A tokenizer.json with vocab_size entries is written beside the weights
because Gemma3Model.modify_tensors trims token_embd to the tokenizer's size.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import types

FAULTS = [  # (mode, args); TARGET is blk.1.attn_q.weight (rope-permuted for llama)
    ("scale x1.5", ["--scale", "1.5"]),
    ("bitflip", ["--bitflip", "14", "--index", "2"]),  # f16 exponent MSB of an element / a block's scale
    ("nan", ["--nan", "--index", "3"]),
    ("zero-rows", ["--zero-rows", "64"]),
    ("noise 0.5", ["--noise", "0.5", "--seed", "7"]),
    ("swap", ["--swap", "blk.1.attn_output.weight"]),
]
TARGET = "blk.1.attn_q.weight"
HIDDEN, FF, HEADS, KV, VOCAB, LAYERS = 256, 512, 4, 2, 512, 2


def make_checkpoint(arch: str, out: str) -> None:
    import torch
    import transformers as tf

    common = dict(hidden_size=HIDDEN, intermediate_size=FF, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                  num_key_value_heads=KV, vocab_size=VOCAB, max_position_embeddings=512)
    if arch == "qwen2":
        cfg = tf.Qwen2Config(**common, tie_word_embeddings=False)
        dtype = torch.float32
    elif arch == "llama":
        cfg = tf.LlamaConfig(**common, tie_word_embeddings=False)
        dtype = torch.bfloat16  # real checkpoints are bf16: the converter widens them to f32
    else:
        cfg = tf.Gemma3TextConfig(**common, head_dim=HIDDEN // HEADS, sliding_window=16)
        cfg.architectures = ["Gemma3ForCausalLM"]
        dtype = torch.float32
    torch.manual_seed({"qwen2": 1, "llama": 2, "gemma3": 3}[arch])
    model = tf.AutoModelForCausalLM.from_config(cfg)
    with torch.no_grad():  # norms (ones / zeros) and biases (zeros) made distinct, so each tensor is checked
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    model = model.to(dtype)
    model.save_pretrained(out, safe_serialization=True)
    with open(os.path.join(out, "tokenizer.json"), "w") as f:
        json.dump({"version": "1.0", "added_tokens": [],
                   "model": {"type": "BPE", "vocab": {f"<t{i}>": i for i in range(VOCAB)}, "merges": []}}, f)
    names = sorted(n for n in os.listdir(out))
    print(f"  checkpoint {arch}: {type(model).__name__}, {dtype}, files {names}", flush=True)


def convert_one(llama_dir: str, ckpt: str, out: str) -> None:
    """Runs in a child process: convert_hf_to_gguf.main() with set_vocab patched."""
    sys.path.insert(0, llama_dir)
    sys.path.insert(1, os.path.join(llama_dir, "gguf-py"))
    try:
        import yaml  # noqa: F401  (gguf-py's metadata reads model cards with it)
    except ImportError:
        stub = types.ModuleType("yaml")
        stub.safe_load = lambda *_a, **_k: {}
        sys.modules["yaml"] = stub
        print("  note: no pyyaml; gguf-py's model-card reader gets an empty stub (no README.md here)")
    import convert_hf_to_gguf as conv

    def placeholder_vocab(self) -> None:
        n = self.hparams["vocab_size"]
        self.gguf_writer.add_tokenizer_model("gpt2")
        self.gguf_writer.add_tokenizer_pre("default")
        self.gguf_writer.add_token_list([f"<t{i}>" for i in range(n)])
        self.gguf_writer.add_token_types([1] * n)
        self.gguf_writer.add_token_merges([])

    original = conv.get_model_class

    def patched(*a, **k):
        cls = original(*a, **k)
        print(f"  converter class {cls.__name__}: set_vocab replaced by a placeholder gpt2 vocabulary "
              f"(the pre-tokenizer hash check refuses unknown tokenizers; diff reads no vocabulary)", flush=True)
        # Patched on the class itself (this child process converts one model): a subclass would
        # trip the converter's registration check (__init_subclass__ wants its own model_arch).
        cls.set_vocab = placeholder_vocab
        return cls

    conv.get_model_class = patched
    sys.argv = ["convert_hf_to_gguf.py", ckpt, "--outtype", "f16", "--outfile", out]
    conv.main()


def run(cmd: list[str], log: str | None = None) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, capture_output=True, text=True)
    if log:
        with open(log, "a") as f:
            f.write(f"$ {' '.join(cmd)}\n{p.stdout[-20000:]}\n{p.stderr[-20000:]}\nexit {p.returncode}\n")
    return p


def flagged(report: dict) -> set[str]:
    return {t["name"] for t in report["tensors"] if t["status"] not in ("identical", "within-noise")}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ggufscope", required=True)
    ap.add_argument("--quantize", required=True)
    ap.add_argument("--llama", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--convert-one", nargs=2, metavar=("CKPT", "OUT"))
    args = ap.parse_args()
    if args.convert_one:
        convert_one(args.llama, *args.convert_one)
        return 0

    os.makedirs(args.work, exist_ok=True)
    log = os.path.join(args.work, "commands.log")
    bad: list[str] = []
    n_ok = 0

    def check(ok: bool, line: str) -> None:
        nonlocal n_ok
        print(("  ok    " if ok else "  FAIL  ") + line, flush=True)
        if ok:
            n_ok += 1
        else:
            bad.append(line)

    for arch in ("qwen2", "llama", "gemma3"):
        print(f"== {arch}", flush=True)
        ckpt = os.path.join(args.work, f"{arch}-ckpt")
        try:
            make_checkpoint(arch, ckpt)
        except Exception as e:  # a transformers version without this class or argument
            check(False, f"{arch}: checkpoint not made: {type(e).__name__}: {e}")
            continue
        f16 = os.path.join(args.work, f"{arch}-F16.gguf")
        p = run([sys.executable, __file__, "--ggufscope", args.ggufscope, "--quantize", args.quantize,
                 "--llama", args.llama, "--work", args.work, "--convert-one", ckpt, f16], log)
        for line in p.stdout.splitlines():
            if line.startswith("  "):
                print(line)
        if p.returncode != 0 or not os.path.exists(f16):
            check(False, f"{arch}: convert_hf_to_gguf.py failed: {p.stderr.strip().splitlines()[-3:]}")
            continue
        files = {"F16": f16}
        for q in ("Q8_0", "Q4_K_M"):
            out = os.path.join(args.work, f"{arch}-{q}.gguf")
            p = run([args.quantize, f16, out, q], log)
            if p.returncode != 0:
                check(False, f"{arch}: llama-quantize {q} failed: {p.stderr.strip().splitlines()[-3:]}")
            else:
                files[q] = out
        for q, path in files.items():
            p = run([args.ggufscope, "diff", path, ckpt, "--json"], log)
            try:
                r = json.loads(p.stdout)
            except json.JSONDecodeError:
                check(False, f"{arch} {q}: diff gave no JSON (exit {p.returncode}): {p.stderr.strip()[-300:]}")
                continue
            types_ = sorted({t["type_a"] for t in r["tensors"]})
            worst = max((t["rel_l2"] / t["expected_rel_l2"] for t in r["tensors"]
                         if isinstance(t.get("rel_l2"), float) and t.get("expected_rel_l2")), default=0.0)
            check(p.returncode == 0 and r["consistent"],
                  f"{arch} {q}: diff exit {p.returncode}, {len(r['tensors'])} tensors ({'/'.join(types_)}), "
                  f"flagged {sorted(flagged(r))}, contradictions {[c['key'] for c in r['config_contradictions']]}, "
                  f"worst error {worst:.2f} of its band")
            if p.returncode != 0:
                continue
            for mode, fargs in FAULTS:
                out = os.path.join(args.work, f"{arch}-{q}-{mode.split()[0]}.gguf")
                c = run([args.ggufscope, "corrupt", path, out, "--tensor", TARGET, *fargs], log)
                if c.returncode != 0:  # e.g. swap of tensors of different types in a mix
                    print(f"  skip  {arch} {q} {mode}: corrupt refused: {c.stderr.strip()[-160:]}")
                    continue
                d = run([args.ggufscope, "diff", out, ckpt, "--json"], log)
                try:
                    got = flagged(json.loads(d.stdout))
                except json.JSONDecodeError:
                    got = {"(no JSON)"}
                want = {TARGET, "blk.1.attn_output.weight"} if mode == "swap" else {TARGET}
                check(d.returncode == 1 and got == want, f"{arch} {q} {mode}: diff exit {d.returncode}, names {sorted(got)}")
                os.remove(out)
            # A hyper-parameter that contradicts config.json.
            out = os.path.join(args.work, f"{arch}-{q}-kv.gguf")
            key = f"{arch}.attention.head_count_kv"
            if run([args.ggufscope, "corrupt", path, out, "--set-key", f"{key}=4"], log).returncode == 0:
                d = run([args.ggufscope, "diff", out, ckpt, "--json"], log)
                keys = [c["key"] for c in json.loads(d.stdout)["config_contradictions"]] if d.stdout else []
                check(d.returncode == 1 and keys == [key], f"{arch} {q} {key}=4: diff exit {d.returncode}, contradicts {keys}")
                os.remove(out)
        # The checkpoint's fingerprint against the F16 file's.
        a, b = os.path.join(args.work, f"{arch}-ckpt.fp.json"), os.path.join(args.work, f"{arch}-F16.fp.json")
        if run([args.ggufscope, "fingerprint", ckpt, "--exact", "-o", a], log).returncode == 0 and \
                run([args.ggufscope, "fingerprint", f16, "--exact", "-o", b], log).returncode == 0:
            ta = {t["gguf"]: t for t in json.load(open(a))["tensors"]}
            tb = {t["gguf"]: t for t in json.load(open(b))["tensors"]}
            worst = max((abs(ta[n]["std"] - tb[n]["std"]) / max(ta[n]["std"], 1e-12) for n in ta if n in tb), default=1.0)
            check(set(ta) == set(tb) and worst < 2e-3,
                  f"{arch}: fingerprint of the checkpoint vs of the F16 file: {len(ta)} vs {len(tb)} tensors, "
                  f"largest std difference {worst:.2e} (relative)")
        else:
            check(False, f"{arch}: fingerprint failed")

    print(f"\nprovenance e2e: {n_ok} checks passed, {len(bad)} failed")
    for b in bad:
        print("  FAILED: " + b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
