#!/usr/bin/env python3
"""Instruction counts of a CUDA kernel's loops, from `cuobjdump -sass` text.

Reads the SASS dump of a cubin, picks the kernels whose mangled names contain
PATTERN, and prints each backward branch's loop body: its size and its
instruction mix. This is how docs/PERFORMANCE.md counts the tensor-core
mat-vec's stage loop (scripts/sass_loops.sh builds the cubin and the dump).
A loop's static count includes both sides of any branch inside it; say which
path runs when you quote a count.

  python3 scripts/sass_loops.py matvec.sass TcQ4KELi2ELi4ELb1ELb0E
"""
import collections
import re
import sys


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    text = open(sys.argv[1], encoding="utf-8").read()
    pattern = sys.argv[2]
    found = False
    for func in re.split(r"\n\s*Function : ", text):
        name = func.split("\n", 1)[0].strip()
        if pattern not in name:
            continue
        found = True
        ins = []
        for line in func.split("\n"):
            m = re.match(r"\s*/\*([0-9a-f]{4,})\*/\s*(.*?);", line)
            if m:
                ins.append((int(m.group(1), 16), m.group(2).strip()))
        index = {a: i for i, (a, _) in enumerate(ins)}
        print(f"{name}: {len(ins)} instructions")
        for i, (a, s) in enumerate(ins):
            m = re.search(r"BRA\b.*?0x([0-9a-f]+)", s)
            if not m or int(m.group(1), 16) >= a or int(m.group(1), 16) not in index:
                continue
            body = ins[index[int(m.group(1), 16)]: i + 1]
            mix = collections.Counter(
                re.sub(r"^@!?U?P\w+\s+", "", op).split()[0].split(".")[0] for _, op in body)
            top = ", ".join(f"{k} {v}" for k, v in mix.most_common(12))
            print(f"  loop {int(m.group(1), 16):#x}-{a:#x}: {len(body)} instructions ({top})")
    if not found:
        print(f"no kernel name contains {pattern!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
