#!/usr/bin/env python3
"""Summarizes a decode timeline from a GGUFSCOPE_TIMELINE build (bench/variants/timeline.patch).

Input: the CSV ggufscope-bench-forward writes to $GGUFSCOPE_TIMELINE_OUT: one row per block of
every kernel that enters through GridEnter (grid id, block, SM, %globaltimer at the entry and when
the dependent-launch wait released it), for three consecutive decode steps of one graph (a graph
replay keeps its kernels' grid ids, so each grid id holds one kernel's blocks of all three steps).

Per kernel of the chosen step, in order of release: its blocks, how many of them were resident
before its release (entered before the first block's wait returned: weights requested early)
and when its last block entered, and its share of the step: from its release to the next
kernel's release (the kernel's work after the wait plus the dependent-launch hand-over). Kernels
that call GridLeave (the tensor-core mat-vecs, attention) also record when each block's thread 0
finished (the t_leave column; CSVs from before session 19 lack it): their share then splits into
"work" (release to the last block's finish) and "hand-over" (that finish to the next kernel's
release). Then the same by kernel kind
(block count, and the previous kernel's, which tells apart launches of one size), and the gap
between steps.

Kinds of 2 to 527 blocks (at most one wave of 4 blocks on each of 132 multiprocessors) also show their placement: how many multiprocessors held 1, 2, ...
of a launch's blocks, and the median time from the release to the last of them leaving.

  python3 bench/timeline_summary.py tl.csv [--step 1] [--rows 24] [--json]
"""
import argparse
import collections
import csv
import json


def placement(mine, mine_sm, go):
    """Blocks per multiprocessor: {n: [each multiprocessor's last block out after the release, us]}
    for the multiprocessors that held n of the kernel's blocks (None without t_leave)."""
    if not all(l > 0 for _, _, l in mine) or None in mine_sm:
        return None
    last = collections.defaultdict(int)
    count = collections.Counter()
    for (_, _, l), sm in zip(mine, mine_sm):
        count[sm] += 1
        last[sm] = max(last[sm], l)
    out = collections.defaultdict(list)
    for sm, n in count.items():
        out[n].append((last[sm] - go) / 1000)
    return dict(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--step", type=int, default=1, help="0, 1 or 2 (default 1: a step with steps on both sides)")
    ap.add_argument("--rows", type=int, default=24, help="kernels listed from the step's start")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    recs = collections.defaultdict(list)
    sms = collections.defaultdict(list)  # each record's multiprocessor, in recs' order
    with open(a.csv) as f:
        for r in csv.DictReader(f):
            recs[int(r["grid"])].append((int(r["t_enter"]), int(r["t_go"]), int(r.get("t_leave") or 0)))
            sms[int(r["grid"])].append(int(r["sm"]) if r.get("sm") else None)
    if not recs:
        raise SystemExit(f"{a.csv}: no records")
    # Steps: the step's last kernel (ArgMax's final, one block) has one record per step; its
    # releases end the steps (the patch records three).
    one = [g for g, v in recs.items() if len(v) == 3]
    if not one:
        raise SystemExit("no one-block kernel recorded three times to find the steps by")
    last = max(one, key=lambda g: max(t for _, t, _ in recs[g]))
    ends = sorted(t for _, t, _ in recs[last])

    def step_of(t):
        for i, e in enumerate(ends):
            if t <= e:
                return i
        return len(ends)

    ks = []
    for g, v in recs.items():
        mine = [(e, t, l) for e, t, l in v if step_of(t) == a.step]
        if not mine:
            continue
        mine_sm = [sm for (e, t, l), sm in zip(v, sms[g]) if step_of(t) == a.step]
        go = min(t for _, t, _ in mine)
        leave = max(l for _, _, l in mine) if all(l > 0 for _, _, l in mine) else None
        ks.append({"grid": g, "blocks": len(mine), "go": go, "go_last": max(t for _, t, _ in mine), "leave": leave,
                   "enter_first": min(e for e, _, _ in mine),
                   "resident_before_release": sum(1 for e, _, _ in mine if e <= go),
                   "last_entry_after_release_us": max(0, max(e for e, _, _ in mine) - go) / 1000,
                   "placement": placement(mine, mine_sm, go)})
    ks.sort(key=lambda k: k["go"])
    t0 = ks[0]["go"]
    for i, k in enumerate(ks):
        nxt = ks[i + 1]["go"] if i + 1 < len(ks) else k["go_last"]
        k["share_us"] = (nxt - k["go"]) / 1000
        k["work_us"] = (k["leave"] - k["go"]) / 1000 if k["leave"] is not None else None
        k["handover_us"] = (nxt - k["leave"]) / 1000 if k["leave"] is not None and i + 1 < len(ks) else None
        k["prev_blocks"] = ks[i - 1]["blocks"] if i else 0
    prev_end = ends[a.step - 1] if a.step > 0 else None

    def kind_placement(v):
        # Per n: multiprocessors holding n blocks (mean a launch) and the median of their last block out.
        if any(x["placement"] is None for x in v):
            return None
        by_n = collections.defaultdict(list)
        for x in v:
            for n, lasts in x["placement"].items():
                by_n[n].extend(lasts)
        return [{"blocks_per_sm": n, "sms_per_launch": len(l) / len(v), "median_last_out_us": sorted(l)[len(l) // 2]}
                for n, l in sorted(by_n.items())]

    kinds = collections.defaultdict(list)
    for k in ks:
        kinds[(k["blocks"], k["prev_blocks"])].append(k)
    def mean_of(v, key):
        xs = [x[key] for x in v if x[key] is not None]
        return sum(xs) / len(xs) if xs else None

    by_kind = sorted(({"blocks": b, "prev_blocks": p, "count": len(v), "mean_us": sum(x["share_us"] for x in v) / len(v),
                       "total_us": sum(x["share_us"] for x in v),
                       "mean_work_us": mean_of(v, "work_us"), "mean_handover_us": mean_of(v, "handover_us"),
                       "mean_resident_before_release": sum(x["resident_before_release"] for x in v) / len(v),
                       "mean_last_entry_after_release_us": sum(x["last_entry_after_release_us"] for x in v) / len(v),
                       "placement": kind_placement(v)}
                      for (b, p), v in kinds.items()), key=lambda d: -d["total_us"])
    out = {"step": a.step, "kernels": len(ks), "span_us": (ks[-1]["go_last"] - t0) / 1000,
           "gap_from_previous_step_us": (t0 - prev_end) / 1000 if prev_end is not None else None,
           "by_kind": by_kind,
           "sequence": [{"blocks": k["blocks"], "resident_before_release": k["resident_before_release"],
                         "release_us": (k["go"] - t0) / 1000, "share_us": k["share_us"], "work_us": k["work_us"],
                         "handover_us": k["handover_us"]} for k in ks]}
    if a.json:
        print(json.dumps(out, indent=1))
        return
    print(f"step {a.step}: {len(ks)} kernels recorded, {out['span_us']:.1f} us from the first release to the last"
          + (f"; {out['gap_from_previous_step_us']:.1f} us after the previous step's last release" if prev_end else ""))
    def us(x):
        return f"{x:10.2f}" if x is not None else f"{'-':>10}"

    print(" idx  blocks  resident-early  release(us)  share(us)   work(us) handover(us)")
    for i, k in enumerate(ks):
        if i < a.rows or i >= len(ks) - 4:
            print(f"{i:4d} {k['blocks']:7d} {k['resident_before_release']:15d} {(k['go'] - t0) / 1000:12.2f} {k['share_us']:10.2f}"
                  f" {us(k['work_us'])} {us(k['handover_us'])}")
        elif i == a.rows:
            print("  ...")
    print("\nby kind (blocks, previous kernel's blocks): count, mean share us, total us, mean resident early,"
          " mean us from the release to the last block's entry [mean work + hand-over us]")
    for d in by_kind:
        split = (f"  [{d['mean_work_us']:.2f} + {d['mean_handover_us']:.2f}]"
                 if d["mean_work_us"] is not None and d["mean_handover_us"] is not None else "")
        print(f"  ({d['blocks']}, {d['prev_blocks']}): {d['count']:3d} x {d['mean_us']:7.2f} = {d['total_us']:8.1f} us,"
              f" {d['mean_resident_before_release']:.0f} resident early, last in +{d['mean_last_entry_after_release_us']:.2f}{split}")
        if d["placement"] and d["blocks"] < 4 * 132 and d["blocks"] > 1:
            # One-wave launches: how the blocks fell on the multiprocessors, and when each group's last left.
            print("      placement: " + ", ".join(f"{p['sms_per_launch']:.1f} SMs x {p['blocks_per_sm']}"
                                               f" (out +{p['median_last_out_us']:.2f})" for p in d["placement"]))


if __name__ == "__main__":
    main()
