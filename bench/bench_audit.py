#!/usr/bin/env python3
"""Audit throughput against the tools people already run on downloads:
`sha256sum` and llama.cpp's `llama-gguf-hash --xxh64`, on the same files in
the same run, warm page cache. `ggufscope audit` computes every statistic
(all tensors dequantized, min/max/mean/std/rms, zero rows, NaN/Inf in data
and scales, outlier blocks, layer consistency); `ggufscope hash --xxh64`
is shown for reference.

  .venv/bin/python bench/bench_audit.py [--runs 5] [--markdown docs/PERFORMANCE.md]

Files: Gemma 3 270M Q4_K_M (real) and a synthetic qwen2 model in
Qwen2.5-7B's shape at Q4_K (4.4 GB), written by ggufscope's own writer
(build/ggufscope-synth) into .cache/bench/ on first use.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BEGIN, END = "<!-- bench_audit.py: begin -->", "<!-- bench_audit.py: end -->"


def cpu_model() -> str:
    with open("/proc/cpuinfo") as f:
        m = re.search(r"model name\s*:\s*(.*)", f.read())
    return f"{m.group(1) if m else platform.processor()}, {os.cpu_count()} cores"


def timed(cmd: list[str], runs: int) -> float:
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # warm-up (and page cache)
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append(time.perf_counter() - t0)
        if p.returncode not in (0, 1):
            raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}")
    return statistics.median(samples)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--markdown")
    args = ap.parse_args()
    gg = os.path.join(args.build, "ggufscope")
    llama_hash = os.path.join(ROOT, ".cache", "llama-tools", "bin", "llama-gguf-hash")
    files = [os.path.join(ROOT, ".cache", "models", "gemma-3-270m-q4_k_m.gguf")]
    synth = os.path.join(ROOT, ".cache", "bench", "synth-qwen2-7b-shape-Q4_K.gguf")
    if not os.path.exists(synth):
        os.makedirs(os.path.dirname(synth), exist_ok=True)
        print(f"writing {synth} ...", file=sys.stderr)
        subprocess.run([os.path.join(args.build, "ggufscope-synth"), "-o", synth, "--arch", "qwen2", "--hidden", "3584",
                        "--layers", "28", "--ffn", "18944", "--heads", "28", "--kv-heads", "4", "--vocab", "152064",
                        "--type", "Q4_K"], check=True)
    files.append(synth)
    tools = [("sha256sum", lambda f: ["sha256sum", f]),
             ("llama-gguf-hash --xxh64", lambda f: [llama_hash, "--xxh64", f]),
             ("ggufscope hash --xxh64", lambda f: [gg, "hash", "--xxh64", f]),
             ("ggufscope audit", lambda f: [gg, "audit", "--json", f])]
    rows = []
    for f in files:
        size = os.path.getsize(f)
        times = {name: timed(make(f), args.runs) for name, make in tools}
        rows.append((os.path.basename(f), size, times))
        print(f"{os.path.basename(f)} ({size / 1e9:.2f} GB)")
        for name, t in times.items():
            print(f"  {name:<26} {t:8.3f} s  {size / t / 1e9:6.2f} GB/s")
        a = times["ggufscope audit"]
        print(f"  audit vs sha256sum: {times['sha256sum'] / a:.2f}x, vs llama-gguf-hash --xxh64: "
              f"{times['llama-gguf-hash --xxh64'] / a:.2f}x faster")
    if args.markdown:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
        lines = [BEGIN, "",
                 f"### Audit throughput, run of {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC", "",
                 "Command: `.venv/bin/python bench/bench_audit.py --markdown docs/PERFORMANCE.md`", "",
                 f"- Machine: {cpu_model()}; {platform.platform()}",
                 f"- ggufscope commit `{commit}`; warm page cache (one untimed run first); median of {args.runs} runs "
                 "of each whole command",
                 "- `ggufscope audit` dequantizes every tensor and computes every statistic on all cores; "
                 "sha256sum and llama-gguf-hash are single-threaded by design (one sequential digest).", "",
                 "| file | size | sha256sum | llama-gguf-hash --xxh64 | ggufscope hash --xxh64 | ggufscope audit "
                 "| audit vs sha256sum | audit vs llama-gguf-hash |",
                 "|:---|---:|---:|---:|---:|---:|---:|---:|"]
        for name, size, t in rows:
            a = t["ggufscope audit"]
            cell = lambda k: f"{t[k]:.3f} s ({size / t[k] / 1e9:.2f} GB/s)"  # noqa: E731
            lines.append(f"| {name} | {size / 1e9:.2f} GB | {cell('sha256sum')} | {cell('llama-gguf-hash --xxh64')} | "
                         f"{cell('ggufscope hash --xxh64')} | {cell('ggufscope audit')} | "
                         f"{t['sha256sum'] / a:.2f}x faster | {t['llama-gguf-hash --xxh64'] / a:.2f}x faster |")
        lines += ["", END]
        text = open(args.markdown).read() if os.path.exists(args.markdown) else "# Performance\n"
        block = "\n".join(lines)
        if BEGIN in text:
            text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
        else:
            text = text.rstrip() + "\n\n## Audit throughput (issue 3)\n\n" + block + "\n"
        open(args.markdown, "w").write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
