#!/usr/bin/env python3
"""The card's power and SM clock during each timed run of bench_cuda.sh.

bench_cuda.sh (DMON=1, the default) logs `nvidia-smi dmon -s pc -o T` once a
second into dmon.txt and ends each line of ours.txt with its run's wall-clock
window, `@HH:MM:SS-HH:MM:SS`. This prints, for each such line, the samples in
its window: the highest and the median power draw and the lowest and the
median SM clock, and flags a run whose SM clock fell below 95% of the
highest clock seen in the whole log while the card was busy, or whose power
came within 3% of the card's limit (a power- or heat-capped run: its
tokens/s are not comparable with an uncapped run's). A sample is idle, and
left out of the clock test, when the card drew under 30% of its limit (or,
with no limit given, ran under half the highest clock): the run's first
second often holds the idle clock (345 MHz on the H200) before the work
starts, which session 22's first logs flagged as capped.

    python3 bench/dmon_summary.py OURS_TXT DMON_TXT [--power-limit W]
"""
import argparse
import re
import statistics
import sys


def seconds(hms):
    h, m, s = (int(x) for x in hms.split(":"))
    return 3600 * h + 60 * m + s


def idle(power, clock, peak, limit):
    """Whether a sample shows the card between kernels rather than capped."""
    return power < 0.3 * limit if limit else clock < 0.5 * peak


def read_dmon(path):
    cols, rows = None, []
    with open(path, errors="replace") as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "#Time":
                cols = parts[1:]
                continue
            if parts[0].startswith("#") or cols is None or not re.fullmatch(r"\d\d:\d\d:\d\d", parts[0]):
                continue
            vals = dict(zip(cols, parts[1:]))
            try:
                rows.append((seconds(parts[0]), float(vals["pwr"]), float(vals["pclk"])))
            except (KeyError, ValueError):
                continue  # a sample with '-' for a reading
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ours")
    ap.add_argument("dmon")
    ap.add_argument("--power-limit", default="", help="the card's limit in W (flags runs within 3%% of it; empty: none)")
    a = ap.parse_args()
    try:
        a.power_limit = float(a.power_limit) if a.power_limit else None
    except ValueError:
        a.power_limit = None
    samples = read_dmon(a.dmon)
    if not samples:
        print(f"dmon_summary: no samples in {a.dmon}", file=sys.stderr)
        return 1
    peak = max(c for _, _, c in samples)
    print(f"dmon: {len(samples)} samples, highest SM clock {peak:.0f} MHz"
          + (f", power limit {a.power_limit:.0f} W" if a.power_limit else ""))
    with open(a.ours, errors="replace") as f:
        for line in f:
            m = re.search(r"@(\d\d:\d\d:\d\d)-(\d\d:\d\d:\d\d)\s*$", line)
            if not m:
                continue
            t0, t1 = seconds(m.group(1)), seconds(m.group(2))
            if t1 < t0:
                t1 += 86400  # past midnight
            got = [(p, c) for t, p, c in samples if t0 <= t <= t1 or t0 <= t + 86400 <= t1]
            label = line[: m.start()].strip()
            label = re.sub(r"\{.*\}", "", label).strip()[:70]
            if not got:
                print(f"{label:70s}  no samples")
                continue
            pw = [p for p, _ in got]
            busy = [c for p, c in got if not idle(p, c, peak, a.power_limit)]
            ck = busy or [c for _, c in got]
            capped = (busy and min(busy) < 0.95 * peak) or (a.power_limit and max(pw) >= 0.97 * a.power_limit)
            print(f"{label:70s}  {len(got):3d} s  power max {max(pw):4.0f} W median {statistics.median(pw):4.0f}  "
                  f"SM clock min {min(ck):4.0f} MHz median {statistics.median(ck):4.0f}"
                  + (f" ({len(got) - len(busy)} idle s left out)" if len(busy) < len(got) else "")
                  + ("  CAPPED" if capped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
