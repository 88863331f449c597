#!/usr/bin/env python3
"""Benchmarks ggufscope's gguf/ library against gguf-py (the anchor).

  .venv/bin/python bench/run_bench.py [--ggufscope-bench build/ggufscope-bench]
                                      [--markdown docs/PERFORMANCE.md] [FILE...]

Runs ggufscope-bench (built separately; this script builds nothing) on the
files, then, in the same run and on the same files, times gguf-py:
  index:   gguf.GGUFReader(path)  vs  GgufFile::Open(path)
  dequant: gguf.quants.dequantize(tensor.data, tensor.tensor_type) over every
           tensor of a type  vs  Dequantize() over the same tensors.
Both sides run on one thread and use the same sampling rule (see measure()).
Prints a table; with --markdown, writes or updates the results section of
that file (text outside the markers is kept). See bench/README.md.

Targets (from the issue): indexing >= 50x faster than GGUFReader; dequantization
>= 10x gguf-py's numpy throughput for every type, single thread.
"""
from __future__ import annotations

import os

# One thread for numpy and anything it links, set before numpy is imported.
# (OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, if the environment sets them, are
# left alone.)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import datetime  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from importlib import metadata  # noqa: E402

import numpy as np  # noqa: E402
import gguf  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INDEX_TARGET = 50.0
DEQUANT_TARGET = 10.0
MIN_SAMPLE_S = 0.5e-3  # as kMinSampleS in gguf_bench.cc
MAX_BATCH = 4096       # as kMaxBatch
BEGIN_MARK = "<!-- run_bench.py results: begin (generated; edits between the markers are overwritten) -->"
END_MARK = "<!-- run_bench.py results: end -->"

# Why a type has no gguf-py ratio (filled in as the run finds out).
NO_RATIO_F32 = ("gguf-py's dequantize(F32) returns a zero-copy view of the mmap and converts "
                "nothing, so there is no work to compare; no target applies")


def measure(run, min_time_s: float, min_samples: int, max_samples: int) -> dict:
    """The sampling rule of gguf_bench.cc's Measure(), applied to gguf-py.

    `run(batch)` performs the operation `batch` times and returns the seconds
    of its timed region. One warm-up call (the first sample if it alone lasts
    >= min_time_s); batch = repetitions that make a sample last >= 0.5 ms;
    samples until min_samples and min_time_s are both reached; median per op.
    """
    warm = run(1)
    batch = 1
    if warm < MIN_SAMPLE_S:
        batch = int(min(MAX_BATCH, math.ceil(MIN_SAMPLE_S / max(warm, 1e-9))))
    per_op: list[float] = []
    total = 0.0
    if warm >= min_time_s:
        per_op.append(warm)
        total = warm
    while (len(per_op) < min_samples or total < min_time_s) and len(per_op) < max_samples:
        s = run(batch)
        per_op.append(s / batch)
        total += s
    srt = sorted(per_op)
    n = len(srt)
    median = srt[n // 2] if n % 2 else 0.5 * (srt[n // 2 - 1] + srt[n // 2])
    return {"median_s": median, "min_s": srt[0], "max_s": srt[-1], "samples": n,
            "batch": batch, "total_s": total}


def anchor_open(path: str, opt) -> dict:
    """Times gguf.GGUFReader(path); readers are dropped outside the timed region."""
    try:
        gguf.GGUFReader(path)
    except Exception as e:  # gguf-py refuses type ids it does not know (Q2_0)
        return {"error": f"{type(e).__name__}: {e}"}

    def run(batch: int) -> float:
        readers = []
        t0 = time.perf_counter()
        for _ in range(batch):
            readers.append(gguf.GGUFReader(path))
        t1 = time.perf_counter()
        del readers
        return t1 - t0

    return measure(run, opt.min_time, opt.anchor_min_samples, opt.max_samples)


def anchor_dequant(path: str, opt) -> dict:
    """{type name: result} for gguf.quants.dequantize over each type's tensors."""
    try:
        reader = gguf.GGUFReader(path)
    except Exception as e:
        return {"*": {"error": f"gguf-py cannot read the file ({type(e).__name__}: {e})"}}
    groups = defaultdict(list)
    for t in reader.tensors:
        if int(t.n_elements) > 0:
            groups[t.tensor_type].append(t)
    out = {}
    for qtype, tensors in groups.items():
        name = qtype.name
        print(f"  gguf-py {os.path.basename(path)} {name}", file=sys.stderr, flush=True)
        try:
            for t in tensors:
                gguf.quants.dequantize(t.data, qtype)
        except NotImplementedError as e:
            out[name] = {"error": f"gguf-py {metadata.version('gguf')} has no dequantizer ({e})"}
            continue

        def run(batch: int, tensors=tensors, qtype=qtype) -> float:
            t0 = time.perf_counter()
            for _ in range(batch):
                for t in tensors:
                    gguf.quants.dequantize(t.data, qtype)
            return time.perf_counter() - t0

        m = measure(run, opt.min_time, opt.anchor_min_samples, opt.max_samples)
        n = sum(int(t.n_elements) for t in tensors)
        m.update(type=name, n_tensors=len(tensors), n_elements=n,
                 elements_per_s=n / m["median_s"])
        if name == "F32":
            m["note"] = NO_RATIO_F32
        out[name] = m
    return out


def default_files() -> list[str]:
    models = os.path.normpath(os.path.join(REPO, "..", "shared", "models"))
    files = [os.path.join(models, "stories260K.gguf")]
    files += sorted(glob.glob(os.path.join(models, "synth", "*.gguf")))
    files += sorted(glob.glob(os.path.join(models, "vocab", "*.gguf")))
    gemma = os.path.join(REPO, ".cache", "models", "gemma-3-270m-q4_k_m.gguf")
    if os.path.exists(gemma):
        files.append(gemma)
    return [f for f in files if os.path.exists(f)]


def run_ggufscope(opt, files: list[str]) -> dict:
    cmd = [opt.ggufscope_bench, "--min-time", str(opt.min_time), "--min-samples",
           str(opt.min_samples), "--max-samples", str(opt.max_samples), *files]
    print("$ " + shlex.join(cmd), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, check=False)
    if not proc.stdout:
        sys.exit(f"ggufscope-bench failed (exit {proc.returncode}) and printed nothing")
    return json.loads(proc.stdout)


# ---------------------------------------------------------------- environment

def machine_info(opt) -> dict:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    os_name = platform.system()
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    os_name = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass

    def git(*args):
        r = subprocess.run(["git", "-C", REPO, *args], capture_output=True, text=True, check=False)
        return r.stdout.strip() if r.returncode == 0 else ""

    commit = git("rev-parse", "HEAD") or "unknown"
    # Uncommitted changes to the measured code (gguf/) make the commit alone
    # not enough to reproduce the numbers: name them.
    dirty = [line[3:] for line in git("status", "--porcelain", "--", "gguf").splitlines()]
    build = {}
    cache = os.path.join(os.path.dirname(os.path.abspath(opt.ggufscope_bench)), "CMakeCache.txt")
    if os.path.exists(cache):
        with open(cache) as f:
            for line in f:
                m = re.match(r"(CMAKE_BUILD_TYPE|CMAKE_CXX_COMPILER):\w+=(.*)", line)
                if m:
                    build[m.group(1)] = m.group(2).strip()
    compiler = build.get("CMAKE_CXX_COMPILER", "")
    if compiler:
        r = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=False)
        compiler = r.stdout.splitlines()[0] if r.returncode == 0 and r.stdout else compiler
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "os": f"{os_name}, Linux {platform.release()}" if platform.system() == "Linux" else os_name,
        "commit": commit,
        "dirty": dirty,
        "build_type": build.get("CMAKE_BUILD_TYPE", "unknown"),
        "compiler": compiler or "unknown",
        "python": platform.python_version(),
        "gguf_py": metadata.version("gguf"),
        "numpy": np.__version__,
        "pinned_cpu": opt.cpu,
    }


def command_line() -> str:
    exe = sys.executable
    rel = os.path.relpath(exe, REPO)
    if not rel.startswith(".."):
        exe = rel
    args = [os.path.relpath(a, REPO) if os.path.isabs(a) and a.startswith(REPO + os.sep) else a
            for a in sys.argv]
    return shlex.join([exe, *args])


# ---------------------------------------------------------------- reporting

def fmt_time(s: float | None) -> str:
    if s is None:
        return "—"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} µs"


def fmt_rate(r: float | None) -> str:
    return "—" if r is None else f"{r / 1e6:,.0f}"


def fmt_ratio(r: float | None) -> str:
    if r is None:
        return "—"
    return f"{r:,.0f}x" if r >= 100 else f"{r:.1f}x"


def build_rows(ours: dict, theirs: dict):
    """Index rows per file, per-(file, type) dequant rows, per-type pooled rows."""
    index_rows, detail_rows = [], []
    for f in ours["files"]:
        path = f["path"]
        name = os.path.basename(path)
        a = theirs.get(path, {})
        a_open, a_deq = a.get("open", {}), a.get("dequant", {})
        o = f.get("open", {})
        row = {"file": name, "size": f.get("file_size"), "n_kv": f.get("n_kv"),
               "n_tensors": f.get("n_tensors"), "ours_s": o.get("median_s"),
               "theirs_s": a_open.get("median_s"), "ratio": None,
               "note": f.get("error") or o.get("error") or a_open.get("error")}
        if row["ours_s"] and row["theirs_s"]:
            row["ratio"] = row["theirs_s"] / row["ours_s"]
        index_rows.append(row)
        for d in f.get("dequant", []):
            if "error" in d:
                detail_rows.append({"file": name, "type": d["type"], "note": "ggufscope: " + d["error"]})
                continue
            t = a_deq.get(d["type"]) or a_deq.get("*") or {"error": "not measured"}
            r = {"file": name, "type": d["type"], "type_id": d["type_id"], "n_elements": d["n_elements"],
                 "n_bytes": d["n_bytes"], "ours_s": d["median_s"],
                 "ours_eps": d["elements_per_s"], "ours_bps": d["bytes_per_s"],
                 "theirs_s": t.get("median_s"), "theirs_eps": t.get("elements_per_s"),
                 "ratio": None, "note": t.get("error") or t.get("note")}
            if r["theirs_s"] and not t.get("note"):
                r["ratio"] = r["theirs_s"] / r["ours_s"]
            detail_rows.append(r)

    by_type = defaultdict(list)
    for r in detail_rows:
        if "ours_s" in r:
            by_type[r["type"]].append(r)
    type_rows = []
    for name, rows in by_type.items():
        n = sum(r["n_elements"] for r in rows)
        nb = sum(r["n_bytes"] for r in rows)
        ours_s = sum(r["ours_s"] for r in rows)
        paired = [r for r in rows if r["ratio"] is not None]
        row = {"type": name, "type_id": rows[0]["type_id"], "files": len(rows), "n_elements": n, "ours_eps": n / ours_s,
               "ours_bps": nb / ours_s, "theirs_eps": None, "ratio": None, "min_ratio": None,
               "min_file": None, "status": "", "note": None}
        if paired:
            # Pooled over the files that both sides measured: total elements / total median time.
            pn = sum(r["n_elements"] for r in paired)
            row["theirs_eps"] = pn / sum(r["theirs_s"] for r in paired)
            row["ratio"] = sum(r["theirs_s"] for r in paired) / sum(r["ours_s"] for r in paired)
            worst = min(paired, key=lambda r: r["ratio"])
            row["min_ratio"], row["min_file"] = worst["ratio"], worst["file"]
            row["status"] = "pass" if row["ratio"] >= DEQUANT_TARGET else "**FAIL**"
        else:
            notes = {r["note"] for r in rows if r["note"]}
            row["note"] = "; ".join(sorted(notes)) if notes else "no gguf-py measurement"
            if name == "F32":
                row["note"] = NO_RATIO_F32
                theirs = [r for r in rows if r["theirs_s"]]
                if theirs:
                    row["theirs_eps"] = (sum(r["n_elements"] for r in theirs) /
                                         sum(r["theirs_s"] for r in theirs))
            row["status"] = "n/a"
        type_rows.append(row)
    type_rows.sort(key=lambda r: r["type_id"])
    return index_rows, detail_rows, type_rows


def md_table(header: list[str], rows: list[list[str]], align: str) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(":---" if a == "l" else "---:" if a == "r" else ":---:" for a in align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def render(info: dict, ours: dict, index_rows, detail_rows, type_rows, markdown: bool) -> str:
    def idx_status(r):
        if r["ratio"] is None:
            return "n/a"
        return "pass" if r["ratio"] >= INDEX_TARGET else "**FAIL**" if markdown else "FAIL"

    def strip(s):
        return s if markdown else s.replace("**", "")

    idx = md_table(
        ["file", "size", "KVs", "tensors", "ggufscope Open", "gguf-py GGUFReader", "ratio",
         f"≥{INDEX_TARGET:.0f}x"],
        [[r["file"], f"{(r['size'] or 0) / 1e6:.1f} MB", str(r["n_kv"]), str(r["n_tensors"]),
          fmt_time(r["ours_s"]), fmt_time(r["theirs_s"]) if r["theirs_s"] else (r["note"] or "—"),
          fmt_ratio(r["ratio"]), idx_status(r)] for r in index_rows],
        "lrrrrrrc")
    typ = md_table(
        ["type", "files", "elements", "ggufscope Melem/s", "ggufscope MB/s (in)",
         "gguf-py Melem/s", "ratio (pooled)", "worst file ratio", f"≥{DEQUANT_TARGET:.0f}x"],
        [[r["type"], str(r["files"]), f"{r['n_elements']:,}", fmt_rate(r["ours_eps"]),
          fmt_rate(r["ours_bps"]), fmt_rate(r["theirs_eps"]), fmt_ratio(r["ratio"]),
          f"{fmt_ratio(r['min_ratio'])} ({r['min_file']})" if r["min_ratio"] else "—",
          strip(r["status"])] for r in type_rows],
        "lrrrrrrlc")
    notes = [f"- **{r['type']}**: no ratio: {r['note']}." for r in type_rows if r["note"]]
    detail = md_table(
        ["file", "type", "elements", "ggufscope", "ggufscope Melem/s", "gguf-py", "gguf-py Melem/s",
         "ratio"],
        [[r["file"], r["type"], f"{r.get('n_elements', 0):,}", fmt_time(r.get("ours_s")),
          fmt_rate(r.get("ours_eps")), fmt_time(r.get("theirs_s")), fmt_rate(r.get("theirs_eps")),
          fmt_ratio(r.get("ratio")) if r.get("ratio") else ("n/a" if r.get("note") else "—")]
         for r in detail_rows],
        "llrrrrrr")
    s = ours["settings"]
    out = [
        f"### Run of {info['date']}",
        "",
        "Command (from the repository root):",
        "",
        "```sh",
        info["command"],
        "```",
        "",
        f"- Machine: {info['cpu']}, {info['cores']} cores"
        + (f" (pinned to CPU {info['pinned_cpu']})" if info["pinned_cpu"] is not None else "")
        + f"; {info['os']}",
        f"- ggufscope: commit `{info['commit'][:12]}`"
        + (f" plus uncommitted changes in {', '.join(info['dirty'][:5])}"
           + (" ..." if len(info["dirty"]) > 5 else "") if info["dirty"] else "")
        + f", {info['build_type']} build, {info['compiler']}",
        f"- Anchor: gguf-py {info['gguf_py']}, numpy {info['numpy']}, Python {info['python']}",
        f"- Sampling: median per operation; samples of ≥ {s['min_sample_s'] * 1e3:g} ms, until "
        f"≥ {s['min_time_s']:g} s in total and ≥ {s['min_samples']} samples (ggufscope) / "
        f"≥ {info['anchor_min_samples']} samples (gguf-py); one thread each.",
        f"- Wall time of this run: {info['wall_s']:.0f} s; 1-minute load average "
        f"{info['load'][0]:.2f} at the start, {info['load'][1]:.2f} at the end "
        f"(above ~1 the benchmark shared its cores with other work).",
        "",
        f"#### Open and index (target: ≥ {INDEX_TARGET:.0f}x faster than gguf-py's GGUFReader)",
        "",
        idx,
        "",
        f"#### Dequantization per type, one thread (target: ≥ {DEQUANT_TARGET:.0f}x gguf-py's numpy)",
        "",
        "Pooled over the files holding the type: total elements / total median time, on the "
        "files both sides measured. MB/s counts the quantized input bytes.",
        "",
        typ,
        "",
        *notes,
        "",
        "<details><summary>Every (file, type) measurement</summary>" if markdown else "Per (file, type):",
        "",
        detail,
        "",
        "</details>" if markdown else "",
    ]
    return "\n".join(out).rstrip() + "\n"


DOC_HEADER = """# Performance

How fast ggufscope's `gguf/` library opens and indexes GGUF files and
dequantizes their tensors, against gguf-py (llama.cpp's Python GGUF package),
on one thread. What is measured and how: `bench/README.md`. The section
between the markers below is rewritten by

```sh
.venv/bin/python bench/run_bench.py --ggufscope-bench build-bench/ggufscope-bench \\
    --markdown docs/PERFORMANCE.md
```

Absolute times are indicative only: they come from whatever machine ran the
command (see each run's header); the ratios, measured in the same run on the
same files, are the figures to compare.

"""


def write_markdown(path: str, section: str) -> None:
    block = f"{BEGIN_MARK}\n\n{section}\n{END_MARK}\n"
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
        if BEGIN_MARK in text and END_MARK in text:
            head, rest = text.split(BEGIN_MARK, 1)
            tail = rest.split(END_MARK, 1)[1]
            text = head + block + ("\n" + tail.lstrip("\n") if tail.strip() else "")
        else:
            text = text.rstrip("\n") + "\n\n## Results\n\n" + block
    else:
        text = DOC_HEADER + "## Results\n\n" + block
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", help="GGUF files (default: stories260K, synth/*, vocab/*, "
                    "and .cache/models/gemma-3-270m-q4_k_m.gguf if present)")
    ap.add_argument("--ggufscope-bench", default=os.path.join(REPO, "build", "ggufscope-bench"),
                    help="the ggufscope-bench binary (default: build/ggufscope-bench)")
    ap.add_argument("--markdown", metavar="FILE", help="write/update this file (docs/PERFORMANCE.md)")
    ap.add_argument("--json", metavar="FILE", help="also write every raw measurement as JSON")
    ap.add_argument("--min-time", type=float, default=0.2,
                    help="each measurement samples for at least this many seconds (default 0.2)")
    ap.add_argument("--min-samples", type=int, default=5, help="ggufscope's minimum samples (default 5)")
    ap.add_argument("--anchor-min-samples", type=int, default=3,
                    help="gguf-py's minimum samples (default 3: its parse of a 151k-token "
                    "vocabulary takes ~10 s)")
    ap.add_argument("--max-samples", type=int, default=1000)
    ap.add_argument("--cpu", type=int, help="pin both benchmarks to this CPU")
    opt = ap.parse_args()

    if not os.path.exists(opt.ggufscope_bench):
        sys.exit(f"{opt.ggufscope_bench} not found: build it first (see bench/README.md)")
    if opt.cpu is not None:
        os.sched_setaffinity(0, {opt.cpu})  # inherited by ggufscope-bench
    files = [os.path.abspath(f) for f in opt.files] or default_files()
    if not files:
        sys.exit("no GGUF files to benchmark")

    start = time.perf_counter()
    load_before = os.getloadavg()[0]
    # File by file, ggufscope then gguf-py, so that both sides of a ratio are
    # measured minutes apart at most, under the same load.
    ours = None
    theirs = {}
    for path in files:
        one = run_ggufscope(opt, [path])
        if ours is None:
            ours = one
        else:
            ours["files"] += one["files"]
        print(f"gguf-py {path}", file=sys.stderr, flush=True)
        theirs[path] = {"open": anchor_open(path, opt), "dequant": anchor_dequant(path, opt)}

    info = machine_info(opt)
    info["command"] = command_line()
    info["anchor_min_samples"] = opt.anchor_min_samples
    info["wall_s"] = time.perf_counter() - start
    info["load"] = (load_before, os.getloadavg()[0])
    index_rows, detail_rows, type_rows = build_rows(ours, theirs)
    print(render(info, ours, index_rows, detail_rows, type_rows, markdown=False))
    if opt.markdown:
        write_markdown(opt.markdown, render(info, ours, index_rows, detail_rows, type_rows, markdown=True))
        print(f"wrote {opt.markdown}", file=sys.stderr)
    if opt.json:
        with open(opt.json, "w") as f:
            json.dump({"info": info, "ggufscope": ours, "gguf_py": theirs}, f, indent=1)
    failed = [r for r in index_rows if r["ratio"] is not None and r["ratio"] < INDEX_TARGET]
    failed += [r for r in type_rows if r["ratio"] is not None and r["ratio"] < DEQUANT_TARGET]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
