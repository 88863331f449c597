#!/usr/bin/env python3
"""Registers and spills of every kernel in a CUDA source, main against patched trees.

Before a kernel variant goes to the GPU machine, its cost in registers says
whether it keeps main's resident blocks and whether anything spills. This
compiles one translation unit (default cuda_runtime/matvec.cu) with ptxas's
report (-Xptxas -v, sm_90, the project's flags) for the committed tree and
for each patch applied to a copy of it, all in parallel, and prints one line
per kernel whose registers or spills differ (or every kernel with --all).
Needs nvcc and the Eigen headers, not a GPU.

    python3 bench/ptxas_diff.py bench/variants/copy-only-bound.patch [more.patch ...]
        [--file cuda_runtime/attention.cu] [--match TensorCore] [--all]

Exit codes: 0 compiled and compared; 1 a patch did not apply or a compile
failed (its log is printed); 2 bad arguments.
"""
import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile


def nvcc_path():
    for c in (shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc"):
        if c and os.path.exists(c):
            return c
    raise SystemExit("ptxas_diff: nvcc not found (PATH or /usr/local/cuda/bin)")


def compile_report(tree, source, out_dir, name):
    """ptxas's report for `source` in `tree`: (log text, return code)."""
    cmd = [nvcc_path(), "-DFMT_SHARED", "-I" + tree, "-isystem=/usr/include/eigen3", "-O2", "-DNDEBUG",
           "--generate-code=arch=compute_90,code=sm_90", "--fmad=false", "-std=c++17", "-x", "cu", "-cubin",
           "-Xptxas", "-v", os.path.join(tree, source), "-o", os.path.join(out_dir, name + ".cubin")]
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.stdout + p.stderr, p.returncode


def parse(log):
    """{kernel, demangled: (registers, spill stores, spill loads)}, in order."""
    kernels, cur = {}, None
    for line in log.splitlines():
        m = re.search(r"Compiling entry function '(\S+)'", line)
        if m:
            cur = m.group(1)
            kernels[cur] = [None, 0, 0]
            continue
        if cur is None:
            continue
        m = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m:
            kernels[cur][1:] = [int(m.group(1)), int(m.group(2))]
        m = re.search(r"Used (\d+) registers", line)
        if m:
            kernels[cur][0] = int(m.group(1))
    short = demangle(list(kernels))  # the anonymous namespace's hash differs between trees
    return {short[k]: tuple(v) for k, v in kernels.items()}


def demangle(names):
    filt = shutil.which("c++filt")
    if not filt:
        return {n: n for n in names}
    out = subprocess.run([filt], input="\n".join(names), capture_output=True, text=True).stdout.splitlines()
    short = {}
    for n, d in zip(names, out):
        d = d.replace("ggufscope::cuda::", "").replace("(anonymous namespace)::", "")
        short[n] = re.sub(r"^void ", "", re.sub(r"\(.*\)$", "", d))  # the template, not the parameter list
    return short


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("patches", nargs="+", help="patches against the committed tree (git apply)")
    ap.add_argument("--file", default="cuda_runtime/matvec.cu", help="the translation unit to compile")
    ap.add_argument("--match", default="", help="only kernels whose demangled name contains this")
    ap.add_argument("--all", action="store_true", help="every kernel, not only those that differ")
    a = ap.parse_args()
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True).stdout.strip()
    if not top:
        print("ptxas_diff: not inside the git checkout", file=sys.stderr)
        return 2
    for p in a.patches:
        if not os.path.isfile(p):
            print(f"ptxas_diff: no patch file {p}", file=sys.stderr)
            return 2
    work = tempfile.mkdtemp(prefix="ptxas_diff.")
    try:
        trees = {"main": os.path.join(work, "main")}
        for i, p in enumerate(a.patches):
            trees[os.path.basename(p)] = os.path.join(work, f"v{i}")
        # The committed tree (HEAD), not the working tree, as `git apply` in bench_cuda.sh sees it.
        archive = subprocess.run(["git", "-C", top, "archive", "HEAD"], capture_output=True, check=True).stdout
        for tree in trees.values():
            os.makedirs(tree)
            subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
        for p, (name, tree) in zip(a.patches, list(trees.items())[1:]):
            r = subprocess.run(["git", "apply", os.path.abspath(p)], cwd=tree, capture_output=True, text=True)
            if r.returncode != 0:
                print(f"ptxas_diff: {p} does not apply to HEAD:\n{r.stderr}", file=sys.stderr)
                return 1
        print(f"compiling {a.file} in {len(trees)} trees (about a minute each, in parallel)...", file=sys.stderr)
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(trees)) as ex:
            futures = {name: ex.submit(compile_report, tree, a.file, work, f"k{i}")
                       for i, (name, tree) in enumerate(trees.items())}
            reports = {name: f.result() for name, f in futures.items()}
        for name, (log, rc) in reports.items():
            if rc != 0:
                print(f"ptxas_diff: {a.file} does not compile in {name}:\n{log[-3000:]}", file=sys.stderr)
                return 1
        parsed = {name: parse(log) for name, (log, _) in reports.items()}
        names = list(parsed["main"])
        for extra in parsed.values():
            names += [k for k in extra if k not in names]
        short = {n: n for n in names}
        cols = list(trees)
        width = max([len(short[n]) for n in names if a.match in short[n]] + [6])
        print(f"{'kernel':{width}s}  " + "  ".join(f"{c[:18]:>18s}" for c in cols) + "   (registers, spill stores/loads bytes)")
        shown = 0
        for n in names:
            if a.match not in short[n]:
                continue
            vals = [parsed[c].get(n) for c in cols]
            if not a.all and len(set(vals)) == 1:
                continue
            cells = ["-" if v is None else f"{v[0]}" + (f" s{v[1]}/{v[2]}" if v[1] or v[2] else "") for v in vals]
            print(f"{short[n]:{width}s}  " + "  ".join(f"{c:>18s}" for c in cells))
            shown += 1
        print(f"{shown} of {sum(1 for n in names if a.match in short[n])} kernels listed"
              + ("" if a.all else " (those that differ)"), file=sys.stderr)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
