#!/usr/bin/env python3
"""What a full `compare` costs against a plain forward pass of the same engine
(issue 6's budget: at most 3x), same file, same tokens, same run.

  .venv/bin/python bench/bench_compare.py [--ggufscope build/ggufscope] [-n TOKENS] [-r REPS] [FILE...]

For each file: `ggufscope run MODEL --tokens IDS -n 0 --logits-out F` (one
prefill with every position's logits: the forward pass a trace needs) against
`ggufscope compare MODEL --a cpu --b cpu --tokens IDS` (two traced forward
passes, every intermediate captured and compared). Whole processes are timed
(file open, model load, tokenizer), median of REPS, CPU backend. The figure
of merit is compare / (2 x forward): what capturing and comparing every
point adds to running the two engines.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("GGUFSCOPE_SHARED", ROOT.parent / "shared"))


def timed(cmd: list[str], reps: int) -> float:
    out = []
    for _ in range(reps + 1):  # first: warm-up (page cache)
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True)
        out.append(time.perf_counter() - t0)
        if p.returncode not in (0, 1):
            raise RuntimeError(f"{cmd}: exit {p.returncode}: {p.stderr.decode()[-400:]}")
    return statistics.median(out[1:])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--ggufscope", default=str(ROOT / "build/ggufscope"))
    ap.add_argument("-n", type=int, default=64, help="prompt tokens")
    ap.add_argument("-r", type=int, default=3)
    a = ap.parse_args()
    files = a.files or [SHARED / "models/stories260K.gguf", SHARED / "models/synth/synth-qwen2-Q8_0.gguf",
                        ROOT / ".cache/models/gemma-3-270m-q4_k_m.gguf"]
    print("| file | tokens | forward (s) | compare (s) | compare / forward | compare / (2 x forward) |")
    print("|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as d:
        for f in files:
            if not f.exists():
                continue
            ids = ",".join(str(1 + (7 * i) % 250) for i in range(a.n))
            fwd = timed([a.ggufscope, "run", str(f), "--tokens", ids, "-n", "0", "--logits-out", f"{d}/l.npy"], a.r)
            cmp = timed([a.ggufscope, "compare", str(f), "--a", "cpu", "--b", "cpu", "--tokens", ids], a.r)
            print(f"| {f.name} | {a.n} | {fwd:.3f} | {cmp:.3f} | {cmp / fwd:.2f} | {cmp / (2 * fwd):.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
