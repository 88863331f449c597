"""Per-kernel device time from an `ncu --csv --metrics gpu__time_duration.sum` log.

usage: ncu_summary.py LOG.csv STEPS LABEL -- sums each kernel's launches, divides by STEPS
(the decode steps the profiled run made) and prints microseconds per step, largest first.
"""
import csv
import re
import sys
from collections import defaultdict


def main() -> int:
    path, steps, label = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rows = []
    with open(path, newline="") as f:
        lines = [line for line in f if line.startswith('"')]  # ncu's own messages start with ==
    for row in csv.DictReader(lines):
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        value = float(row["Metric Value"].replace(",", ""))
        unit = row.get("Metric Unit", "ns")
        us = value / 1000 if unit in ("nsecond", "ns") else value * 1000 if unit in ("msecond", "ms") else value
        name = row["Kernel Name"].replace("(anonymous namespace)::", "").replace("ggufscope::cuda::", "")
        name = re.sub(r"\([^()]*\)$", "", name)  # drop a trailing argument list
        rows.append((name, us, row.get("Grid Size", ""), row.get("Block Size", "")))
    total = defaultdict(float)
    count = defaultdict(int)
    for name, us, grid, block in rows:  # one line per kernel and launch shape
        key = f"{name} grid{grid} block{block}".replace(" ", "") if grid else name
        total[key] += us
        count[key] += 1
    all_us = sum(total.values())
    print(f"== {label}: {len(rows)} launches, {all_us / steps:.1f} us of kernel time per step")
    for name, us in sorted(total.items(), key=lambda kv: -kv[1]):
        print(f"{us / steps:9.1f} us/step  {count[name] / steps:6.1f} launches/step  {name[:140]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
