#!/usr/bin/env python3
"""Dequantizes every tensor of GGUF files with ggufscope and compares the f32
bits with two independent oracles: gguf-py (llama.cpp's Python package) and
llama.cpp's own C dequantizers (libggml-base from llama-cpp-python).

  .venv/bin/python scripts/check_dequant.py [--ggufscope build/ggufscope] [--json] FILE...

Exit 0 when every tensor that an oracle can dequantize is bit-identical to it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "oracle"))
import llama_ggml  # noqa: E402


def _gguf_py_tensors(path: str):
    """gguf-py's view: {name: (type_name, shape, f32 values)}; None if it cannot read the file."""
    import gguf
    try:
        reader = gguf.GGUFReader(path)
    except Exception as e:  # gguf-py raises on type ids it does not know (e.g. Q2_0)
        return None, f"{type(e).__name__}: {e}"
    out = {}
    for t in reader.tensors:
        qtype = t.tensor_type
        if qtype.name in ("F64", "I8", "I16", "I32", "I64"):
            values = np.asarray(t.data).astype(np.float32)
        else:
            try:
                values = gguf.quants.dequantize(t.data, qtype)
            except NotImplementedError:
                values = None
        shape = [int(x) for x in t.shape.tolist()]  # gguf-py keeps ggml order (ne0 first)
        out[t.name] = (qtype.name, shape, None if values is None else np.asarray(values, np.float32).ravel())
    return out, None


def _same_bits(a: np.ndarray, b: np.ndarray) -> tuple[bool, int]:
    """Bit equality, except that any NaN equals any NaN: a NaN's sign and
    payload are not meaningful, and C compilers (llama.cpp) may negate a NaN
    by flipping its sign bit where numpy multiplies it by -1 (no flip). NaN
    only comes out of a NaN scale, which is corruption in its own right."""
    if a.size != b.size:
        return False, max(a.size, b.size)
    diff = (a.view(np.uint32) != b.view(np.uint32)) & ~(np.isnan(a) & np.isnan(b))
    return not diff.any(), int(diff.sum())


def check_file(path: str, ggufscope: str) -> dict:
    """Per tensor: our type, and 'identical' / 'DIFFERS (n)' / 'n/a' against each oracle."""
    result = {"file": path, "tensors": [], "gguf_py_note": None}
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([ggufscope, "dequant", path, "-o", tmp, "--json"], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"ggufscope dequant failed on {path}: {proc.stderr}")
        index = json.loads(proc.stdout)
        py, note = _gguf_py_tensors(path)
        result["gguf_py_note"] = note
        table = llama_ggml.read_tensor_table(path)
        ll = {t.name: t for t in table[0]} if table else {}
        with open(path, "rb") as f:
            blob = f.read()
        for e in index["tensors"]:
            ours = np.load(os.path.join(tmp, e["file"])).ravel()
            row = {"name": e["name"], "type": e["type"], "n": int(ours.size)}
            if py is not None and e["name"] in py:
                ptype, pshape, pvals = py[e["name"]]
                if ptype != e["type"] or pshape != e["shape"]:
                    row["gguf_py"] = f"MISMATCH table: {ptype} {pshape}"
                elif pvals is None:
                    row["gguf_py"] = "n/a"
                else:
                    ok, n = _same_bits(ours, pvals)
                    row["gguf_py"] = "identical" if ok else f"DIFFERS ({n})"
            else:
                row["gguf_py"] = "n/a"
            t = ll.get(e["name"])
            if t is None:
                row["llama_cpp"] = "n/a"
            else:
                ref = llama_ggml.to_float(t.type_id, blob[t.file_offset:t.file_offset + t.n_bytes], ours.size)
                if ref is None:
                    row["llama_cpp"] = "n/a"
                else:
                    ok, n = _same_bits(ours, ref)
                    row["llama_cpp"] = "identical" if ok else f"DIFFERS ({n})"
            result["tensors"].append(row)
    return result


def summarize(result: dict) -> dict:
    by_type = defaultdict(lambda: {"tensors": 0, "elements": 0, "gguf_py": set(), "llama_cpp": set()})
    for r in result["tensors"]:
        s = by_type[r["type"]]
        s["tensors"] += 1
        s["elements"] += r["n"]
        s["gguf_py"].add(r["gguf_py"].split(" (")[0])
        s["llama_cpp"].add(r["llama_cpp"].split(" (")[0])
    return by_type


def failures(result: dict) -> list[str]:
    return [f'{r["name"]} ({r["type"]}): gguf-py {r["gguf_py"]}, llama.cpp {r["llama_cpp"]}'
            for r in result["tensors"]
            if "DIFFERS" in r["gguf_py"] or "DIFFERS" in r["llama_cpp"] or "MISMATCH" in r["gguf_py"]]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--ggufscope", default="build/ggufscope")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    bad = 0
    report = []
    for path in args.files:
        res = check_file(path, args.ggufscope)
        report.append(res)
        fails = failures(res)
        bad += len(fails)
        if args.json:
            continue
        print(f"dequantization check: {path}")
        if res["gguf_py_note"]:
            print(f"  gguf-py cannot read this file ({res['gguf_py_note']}); llama.cpp is the oracle")
        print(f"  {'type':<8} {'tensors':>7} {'elements':>10}  {'vs gguf-py':<14} {'vs llama.cpp':<14}")
        for typ, s in sorted(summarize(res).items()):
            fmt = lambda v: "/".join(sorted(v))  # noqa: E731
            print(f"  {typ:<8} {s['tensors']:>7} {s['elements']:>10}  {fmt(s['gguf_py']):<14} {fmt(s['llama_cpp']):<14}")
        for f in fails:
            print(f"  FAIL {f}")
        n = len(res["tensors"])
        print(f"  {n - len(fails)}/{n} tensors bit-identical to every oracle that covers their type\n")
    if args.json:
        print(json.dumps(report, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
