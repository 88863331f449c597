#!/usr/bin/env python3
"""The CUDA decode table of docs/PERFORMANCE.md from one bench_cuda.sh run's output folder.

usage: cuda_table.py OUT_DIR [--json]

Reads OUT_DIR/bw.txt (the measured device-to-device copy bandwidth, `d2d_copy_GBps G`),
OUT_DIR/ours.txt (bench_cuda.sh's `ours NAME size BYTES {json}` lines and their `ours[pp f16]`
repeats) and, when present, OUT_DIR/llama.txt (`llama NAME pp512, tg128 [pp, tg]`), and prints
one row per model: our tg128 and host-loop tokens/s, llama.cpp's tg128, the ratio, the bandwidth
each achieves (tokens/s x file size) and its share of the copy bandwidth, the tokens/s that 70%
of it would need (issue 5's target), and pp512 (f32 / f16 prefill against llama.cpp's).
Lines under a setting (`ours[ENV]`, `ours[skip N]`, `ours[variant ...]`) are left out: the table
is the plain run's. Exit codes: 0 printed, 1 no `ours` line or no bandwidth, 2 bad arguments.
"""
import argparse
import json
import os
import re
import sys


def read(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except OSError:
        return []


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if not os.path.isdir(a.out_dir):
        print(f"{a.out_dir}: not a folder", file=sys.stderr)
        return 2
    bw = None
    for line in read(os.path.join(a.out_dir, "bw.txt")):
        m = re.search(r"d2d_copy_GBps\s+([0-9.]+)", line)
        if m:
            bw = float(m.group(1))
    rows = {}
    for line in read(os.path.join(a.out_dir, "ours.txt")):
        m = re.match(r"ours (\S+) size (\d+) (\{.*\})", line)
        if m:
            try:
                j = json.loads(m.group(3))
            except json.JSONDecodeError:
                print(f"ours.txt: unreadable line left out: {line[:80]}", file=sys.stderr)
                continue
            rows[m.group(1)] = {"model": m.group(1), "bytes": int(m.group(2)), "tg": j.get("tg_tok_s"),
                                "tg_host": j.get("tg_host_loop_tok_s"), "pp_f32": j.get("pp_tok_s")}
            continue
        m = re.match(r"ours\[pp (\w+)\] (\S+) \"pp_tok_s\": ([0-9.]+)", line)
        if m and m.group(2) in rows:
            rows[m.group(2)]["pp_" + m.group(1)] = float(m.group(3))
    for line in read(os.path.join(a.out_dir, "llama.txt")):
        m = re.match(r"llama (\S+) pp512, tg128 \[([0-9.]+), ([0-9.]+)\]", line)
        if m and m.group(1) in rows:
            rows[m.group(1)]["llama_pp"] = float(m.group(2))
            rows[m.group(1)]["llama_tg"] = float(m.group(3))
    if not rows or bw is None:
        print(f"{a.out_dir}: {'no ours lines' if not rows else 'no bw.txt'}", file=sys.stderr)
        return 1
    out = []
    for r in rows.values():
        gb = r["bytes"] / 1e9
        d = dict(r)
        d["copy_GBps"] = bw
        if r["tg"]:
            d["GBps"] = r["tg"] * gb
            d["share"] = d["GBps"] / bw
        if r.get("llama_tg"):
            d["llama_GBps"] = r["llama_tg"] * gb
            d["llama_share"] = d["llama_GBps"] / bw
            d["ratio"] = r["tg"] / r["llama_tg"] if r["tg"] else None
            d["ratio_host"] = r["tg_host"] / r["llama_tg"] if r["tg_host"] else None
        d["tg_for_70"] = 0.7 * bw / gb if gb > 0 else None
        out.append(d)
    if a.json:
        print(json.dumps({"copy_GBps": bw, "models": out}, indent=1))
        return 0

    def f(v, fmt):
        return format(v, fmt) if v is not None else "-"

    print(f"copy bandwidth {bw} GB/s")
    print("| file | bytes | ours tg128 | host loop | llama.cpp tg128 | ratio (host loop) | ours GB/s (share) | "
          "llama.cpp GB/s (share) | 70% needs | ours pp512 f32 / f16 | llama.cpp pp512 | pp ratio f32 / f16 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for d in out:
        lpp = d.get("llama_pp")
        ppr = (f"{d['pp_f32'] / lpp:.2f} / {f(d.get('pp_f16') and d['pp_f16'] / lpp, '.2f')}"
               if lpp and d.get("pp_f32") else "-")
        share = f"{f(d.get('GBps'), '.0f')} ({f(d.get('share') and 100 * d['share'], '.1f')}%)"
        lshare = (f"{d['llama_GBps']:.0f} ({100 * d['llama_share']:.1f}%)" if d.get("llama_GBps") else "-")
        ratio = (f"{d['ratio']:.2f} ({f(d.get('ratio_host'), '.2f')})" if d.get("ratio") else "-")
        print(f"| {d['model']} | {d['bytes']} | {f(d['tg'], '.1f')} | {f(d['tg_host'], '.1f')} | "
              f"{f(d.get('llama_tg'), '.1f')} | {ratio} | {share} | {lshare} | {f(d['tg_for_70'], '.1f')} | "
              f"{f(d.get('pp_f32'), '.0f')} / {f(d.get('pp_f16'), '.0f')} | {f(lpp, '.0f')} | {ppr} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
