#!/usr/bin/env python3
"""CPU reference speed against llama.cpp (the anchor), same files, same thread
count, same run.

  .venv/bin/python bench/bench_cpu.py [--bin build/ggufscope-bench-forward]
        [-t THREADS] [-p 64] [-n 32] [-r 3] [--markdown docs/PERFORMANCE.md] [FILE...]

For each file, ggufscope-bench-forward times the reference (pp: one batch of
P tokens into an empty cache; tg: N tokens decoded one at a time; median of R
repetitions after a warm-up), then llama.cpp (llama-cpp-python 0.3.36, built
from source for this CPU by scripts/setup.sh) is timed the same way with its
C API (llama_decode on a batch, greedy argmax over a zero-copy view of the
logits, timed around the calls: a few microseconds of Python per token are
counted against it, which only shows on the tiniest models). Both get the same thread count and
random prompt ids. The ratio ours/llama.cpp is the figure of merit
(target from issue 4: tg >= 0.5).

The two sides alternate round by round (ours -r 1, then one llama.cpp
round, R times, each timed round right after an untimed warm-up round of
the same side), so a build or another job that
loads the machine for a while slows both alike; each ratio in the table is
the median of the R per-round ratios, the tok/s columns the medians of each
side. The load average at the start is printed with the table.

Default files: stories260K, Gemma 3 270M Q4_K_M and every synth file.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("GGUFSCOPE_SHARED", ROOT.parent / "shared"))


def default_files() -> list[Path]:
    files = [SHARED / "models/stories260K.gguf", ROOT / ".cache/models/gemma-3-270m-q4_k_m.gguf"]
    files += sorted((SHARED / "models/synth").glob("*.gguf"))
    return [f for f in files if f.exists()]


def ours(binary: str, path: Path, t: int, p: int, n: int, r: int) -> dict:
    out = subprocess.run([binary, str(path), "-t", str(t), "-p", str(p), "-n", str(n), "-r", str(r)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def llama(path: Path, t: int, p: int, n: int):
    """llama.cpp through llama-cpp-python's C API: llama_decode timed with
    perf_counter, greedy argmax over a zero-copy view of the logits (our side
    does the same), f32 KV cache as ours. Returns a function that runs one
    timed round; a first, untimed round has warmed it up."""
    import ctypes  # noqa: PLC0415
    import time  # noqa: PLC0415

    import llama_cpp  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    m = llama_cpp.Llama(str(path), n_threads=t, n_threads_batch=t, n_ctx=p + n + 8, n_batch=max(p, 8),
                        type_k=0, type_v=0, verbose=False)
    ctx, n_vocab = m.ctx, m.n_vocab()
    mem = llama_cpp.llama_get_memory(ctx)
    rng = random.Random(1)
    prompt = [rng.randrange(n_vocab) for _ in range(p)]

    def decode(ids: list[int]) -> None:
        arr = (llama_cpp.llama_token * len(ids))(*ids)
        if llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(arr, len(ids))) != 0:
            raise RuntimeError("llama_decode failed")

    def argmax() -> int:
        ptr = llama_cpp.llama_get_logits_ith(ctx, -1)
        return int(np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), (n_vocab,)).argmax())

    def one_round() -> dict:
        llama_cpp.llama_memory_clear(mem, True)
        t0 = time.perf_counter()
        decode(prompt)
        argmax()
        t_pp = time.perf_counter() - t0
        llama_cpp.llama_memory_clear(mem, True)
        tok = prompt[0]
        t0 = time.perf_counter()
        for _ in range(n):
            decode([tok])
            tok = argmax()
        t_tg = time.perf_counter() - t0
        return {"pp_tok_s": p / t_pp, "tg_tok_s": n / t_tg}

    one_round.model = m  # keeps the context alive as long as the function
    one_round()  # warm-up
    return one_round


def paired(binary: str, path: Path, t: int, p: int, n: int, r: int) -> tuple[dict, dict, dict]:
    """R alternating rounds of ours and llama.cpp; medians of each side and
    of the per-round ratios."""
    llama_round = llama(path, t, p, n)
    o_rounds, l_rounds = [], []
    for _ in range(r):
        o_rounds.append(ours(binary, path, t, p, n, 1))  # warms up, then one timed round
        llama_round()  # likewise: our process has just taken the caches and cores
        l_rounds.append(llama_round())
    med = statistics.median
    o = {k: med(x[k] for x in o_rounds) for k in ("pp_tok_s", "tg_tok_s")}
    ll = {k: med(x[k] for x in l_rounds) for k in ("pp_tok_s", "tg_tok_s")}
    ratio = {k: med(a[k] / b[k] for a, b in zip(o_rounds, l_rounds)) for k in ("pp_tok_s", "tg_tok_s")}
    return o, ll, ratio


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


BEGIN, END = "<!-- bench_cpu:begin -->", "<!-- bench_cpu:end -->"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--bin", default=str(ROOT / "build/ggufscope-bench-forward"))
    ap.add_argument("-t", type=int, default=os.cpu_count() or 1)
    ap.add_argument("-p", type=int, default=64)
    ap.add_argument("-n", type=int, default=32)
    ap.add_argument("-r", type=int, default=3)
    ap.add_argument("--markdown", type=Path)
    a = ap.parse_args()
    files = a.files or default_files()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = []
    for f in files:
        print(f"[bench_cpu] {f.name} ...", file=sys.stderr, flush=True)
        o, ll, ratio = paired(a.bin, f, a.t, a.p, a.n, a.r)
        rows.append((f.name, o, ll, ratio))
        print(f"  pp {o['pp_tok_s']:.1f} vs {ll['pp_tok_s']:.1f} tok/s ({ratio['pp_tok_s']:.2f}x)   "
              f"tg {o['tg_tok_s']:.1f} vs {ll['tg_tok_s']:.1f} tok/s ({ratio['tg_tok_s']:.2f}x)",
              file=sys.stderr, flush=True)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    bin_arg = "" if a.bin == ap.get_default("bin") else f" --bin {os.path.relpath(a.bin, ROOT)}"
    lines = [BEGIN, "",
             f"{when}, {cpu_name()}, {os.cpu_count()} cores (load average {load:.1f} at the start), "
             f"{a.t} threads on both sides; pp = {a.p}-token prompt in one batch, tg = {a.n} tokens one at a "
             f"time; {a.r} alternating rounds per file, medians (ratio: median of the per-round ratios).",
             f"Command: `.venv/bin/python bench/bench_cpu.py{bin_arg} -t {a.t} -p {a.p} -n {a.n} -r {a.r}`", "",
             "| file | pp ggufscope | pp llama.cpp | ratio | tg ggufscope | tg llama.cpp | ratio |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, o, ll, ratio in rows:
        lines.append(f"| {name} | {o['pp_tok_s']:.1f} | {ll['pp_tok_s']:.1f} | {ratio['pp_tok_s']:.2f} | "
                     f"{o['tg_tok_s']:.1f} | {ll['tg_tok_s']:.1f} | {ratio['tg_tok_s']:.2f} |")
    lines += ["", END]
    table = "\n".join(lines)
    print(table)
    if a.markdown:
        text = a.markdown.read_text() if a.markdown.exists() else ""
        if BEGIN in text and END in text:
            text = text[:text.index(BEGIN)] + table + text[text.index(END) + len(END):]
        else:
            text += "\n## CPU reference vs llama.cpp (issue 4)\n\n" + table + "\n"
        a.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
