#!/usr/bin/env python3
"""Measures the noise band of every quant type: the relative L2 error of each
2-D tensor of synth-llama-<TYPE>.gguf against synth-llama-f32.gguf (the f32
original it was quantized from), and its norm ratio. The max per type is the
TypicalRelL2 table in compare/tensor_diff.cc and docs/CHECKS.md.

  .venv/bin/python scripts/measure_bands.py [--ggufscope build/ggufscope]
"""
from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import subprocess
import tempfile

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def dequantized(gg: str, path: str) -> dict[str, tuple[str, np.ndarray]]:
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([gg, "dequant", path, "-o", d, "--json"], check=True, capture_output=True)
        index = json.load(open(os.path.join(d, "index.json")))
        return {e["name"]: (e["type"], np.load(os.path.join(d, e["file"])).astype(np.float64).ravel())
                for e in index["tensors"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ggufscope", default=os.path.join(ROOT, "build", "ggufscope"))
    ap.add_argument("--synth", default=os.path.join(ROOT, "..", "shared", "models", "synth"))
    args = ap.parse_args()
    ref = dequantized(args.ggufscope, os.path.join(args.synth, "synth-llama-f32.gguf"))
    rel, ratio = collections.defaultdict(list), collections.defaultdict(list)
    for path in sorted(glob.glob(os.path.join(args.synth, "synth-llama-*.gguf"))):
        if path.endswith("-f32.gguf"):
            continue
        for name, (typ, v) in dequantized(args.ggufscope, path).items():
            if typ == "F32":
                continue
            r = ref[name][1]
            rel[typ].append(np.linalg.norm(v - r) / np.linalg.norm(r))
            ratio[typ].append(np.linalg.norm(v) / np.linalg.norm(r))
    print(f"{'type':<8} {'tensors':>7} {'rel L2 median':>14} {'rel L2 max':>11} {'norm ratio range':>20}")
    for typ in sorted(rel, key=lambda t: max(rel[t])):
        a, q = np.array(rel[typ]), np.array(ratio[typ])
        print(f"{typ:<8} {len(a):>7} {np.median(a):>14.4f} {a.max():>11.4f} {q.min():>9.4f}..{q.max():.4f}")


if __name__ == "__main__":
    main()
