#!/usr/bin/env python3
"""Instruction mix of one kernel launch from ncu's source page (`NCU_SOURCE=...` in bench_cuda.sh).

usage: ncu_source_summary.py ncu_source_TYPE.csv [--warps N] [--top K] [--json]

The CSV is `ncu --import R --page source --print-source sass --csv`: one row per SASS instruction
with its "Instructions Executed" (warp-level) and "Warp Stall Sampling (All Samples)". Instructions
that ran the same number of times form one group; the group with the most executed instructions is
normally a kernel's main loop body, and its count divided by the warps that ran (--warps: grid x
warps a block) is the loop's trip count a warp. Prints, for the whole launch and for that loop body:
instructions a warp (and a trip), the opcodes that make them up, and each opcode's share of the
stall samples, so that a change to a stage loop can be weighed in instructions before it is timed.
Its static counterpart, without a GPU, is scripts/sass_loops.sh (every path of a loop counted);
this one counts what ran. Grouping by count is a heuristic: a loop whose body branches, or that
runs two stages a trip, splits into several groups (session 28's Q6_K down kernel: a 676-instruction
group once a trip of two stages, and the x split's 227 once a stage), so weigh the groups beside
it (--json lists only the largest) before calling it the whole loop.
Exit codes: 0 printed, 1 the file has no instruction rows, 2 bad arguments or an unreadable file.
"""
import argparse
import collections
import csv
import json
import sys


def opcode(sass: str) -> str:
    words = sass.split()
    if not words:
        return "?"
    word = words[1] if words[0].startswith("@") and len(words) > 1 else words[0]  # a predicate first
    return word.split(".")[0]


def count(cell: str) -> int:
    """ncu's integer cells, with or without thousands separators; anything else 0."""
    try:
        return int(cell.replace(",", "") or 0)
    except ValueError:
        return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv")
    ap.add_argument("--warps", type=int, default=0, help="warps that ran the kernel (grid x warps a block)")
    ap.add_argument("--top", type=int, default=15, help="opcodes listed (default 15)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.warps < 0 or a.top < 1:
        print("--warps must be >= 0 and --top >= 1", file=sys.stderr)
        return 2
    try:
        with open(a.csv, newline="") as f:
            lines = [line for line in f if line.startswith('"')]  # ncu's own messages start with ==
    except (OSError, UnicodeDecodeError) as e:
        print(f"{a.csv}: cannot read: {e}", file=sys.stderr)
        return 2
    rows = list(csv.reader(lines))
    kernel = rows[0][1] if rows and len(rows[0]) > 1 and rows[0][0] == "Kernel Name" else ""
    header_at = next((i for i, r in enumerate(rows) if "Source" in r and "Instructions Executed" in r), None)
    if header_at is None:
        print(f"{a.csv}: no instruction rows (not ncu's source page?)", file=sys.stderr)
        return 1
    hdr = rows[header_at]
    i_src, i_exec = hdr.index("Source"), hdr.index("Instructions Executed")
    i_samp = hdr.index("Warp Stall Sampling (All Samples)") if "Warp Stall Sampling (All Samples)" in hdr else None
    instr = []  # (opcode, executions, samples)
    for r in rows[header_at + 1:]:
        if len(r) <= max(i_src, i_exec):
            continue
        n = count(r[i_exec])
        s = count(r[i_samp]) if i_samp is not None and len(r) > i_samp else 0
        instr.append((opcode(r[i_src]), n, s))
    if not instr:
        print(f"{a.csv}: no instruction rows", file=sys.stderr)
        return 1
    total = sum(n for _, n, _ in instr)
    samples = sum(s for _, _, s in instr) or 1
    groups = collections.defaultdict(list)
    for op, n, s in instr:
        if n > 0:
            groups[n].append((op, s))
    loop_count, loop = max(groups.items(), key=lambda kv: kv[0] * len(kv[1]))

    def mix(items, per):
        ops = collections.Counter()
        samp = collections.Counter()
        for op, n, s in items:
            ops[op] += n
            samp[op] += s
        return [{"op": op, "per": n / per, "stall_share": samp[op] / samples} for op, n in ops.most_common(a.top)]

    warps = a.warps or None
    out = {
        "kernel": kernel,
        "instructions": total,
        "per_warp": total / warps if warps else None,
        "loop": {
            "executions_each": loop_count,
            "instructions": len(loop),
            "trips_per_warp": loop_count / warps if warps else None,
            "stall_share": sum(s for _, s in loop) / samples,
            "mix": mix([(op, 1, s) for op, s in loop], 1),
        },
        "mix_per_warp": mix(instr, warps or 1),
    }
    if a.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"kernel: {kernel}")
    per = f", {out['per_warp']:.1f} a warp" if warps else ""
    print(f"{total} warp instructions{per}")
    trips = f", {out['loop']['trips_per_warp']:.2f} trips a warp" if warps else ""
    print(f"main loop: {len(loop)} instructions run {loop_count} times each{trips}, "
          f"{100 * out['loop']['stall_share']:.1f}% of the stall samples")
    print("  loop body by opcode (instructions a trip, share of all stall samples):")
    for m in out["loop"]["mix"]:
        print(f"    {m['op']:10s} {m['per']:6.0f}  {100 * m['stall_share']:5.1f}%")
    print(f"  whole launch by opcode (instructions{' a warp' if warps else ''}, share of stall samples):")
    for m in out["mix_per_warp"]:
        print(f"    {m['op']:10s} {m['per']:9.1f}  {100 * m['stall_share']:5.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
