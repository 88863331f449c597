#!/usr/bin/env python3
"""Host mirror of bench/variants/sector-copies.patch's copy layout (the
tensor-core mat-vec's kSect windows), checked on every stage of a few
launch shapes: each copy reads only bytes of its row's stage piece, the
pieces land whole at slot + row * stride + 16 (stage % 2), and each 8-lane
request of a copy instruction touches whole sectors only. Also counts the
sectors per copy instruction of the plain layout in this model of 8-lane
requests (18.9 for the 3-tile Q4_K launch, where ncu counted 25 on the
H200: ncu's count is the real one, so the GPU run decides).
Run: python3 sector_copies_check.py  (no GPU; exits 1 on a mismatch)."""
import sys

def check(stage_bytes, n_stages, kr, n_rows, base=0):
    chunks = stage_bytes // 16
    win = chunks + 1
    stride = stage_bytes + 16
    row_bytes = stage_bytes * n_stages
    assert row_bytes % 32 == 0 and base % 32 == 0 and stage_bytes % 32 == 16
    kcw = kr * win // 32
    bad = 0
    sect_req = sect_ideal = 0
    for v0 in range(0, n_rows, kr):
        for s in range(n_stages):
            sp = s & 1
            smem = {}
            reqs = []
            for lane in range(32):
                for i in range(kcw):
                    c = lane + 32 * i
                    row, w = divmod(c, win)
                    v = min(v0 + row, n_rows - 1)
                    skip = (w == 0) if sp else (w == win - 1)
                    if skip:
                        continue
                    src = base + v * row_bytes + 16 * w + s * stage_bytes - 16 * sp
                    piece = base + v * row_bytes + s * stage_bytes
                    if not (piece <= src and src + 16 <= piece + stage_bytes):
                        bad += 1
                    dst = row * stride + 16 * w
                    for b in range(16):
                        smem[dst + b] = src + b
                    reqs.append((i, lane // 8, src))
            for row in range(kr):
                v = min(v0 + row, n_rows - 1)
                piece = base + v * row_bytes + s * stage_bytes
                o = 16 * sp
                for b in range(stage_bytes):
                    if smem.get(row * stride + o + b) != piece + b:
                        bad += 1
            by = {}
            for i, q, src in reqs:
                by.setdefault((i, q), []).append(src)
            for srcs in by.values():
                sectors = {a // 32 for a in srcs} | {(a + 15) // 32 for a in srcs}
                sect_req += len(sectors)
                sect_ideal += len(srcs) * 16 / 32
    return bad, sect_req / sect_ideal

def plain_sectors(stage_bytes, n_stages, kr):
    """Sectors per copy instruction of the plain layout (chunks in (row, chunk) order)."""
    chunks = stage_bytes // 16
    row_bytes = stage_bytes * n_stages
    tot = n = 0
    for s in range(n_stages):
        for i in range((kr * chunks + 31) // 32):
            secs = 0
            for q in range(4):
                srcs = []
                for lane in range(8 * q, 8 * q + 8):
                    c = lane + 32 * i
                    if c < kr * chunks:
                        row, ch = divmod(c, chunks)
                        srcs.append(row * row_bytes + s * stage_bytes + 16 * ch)
                secs += len({a // 32 for a in srcs} | {(a + 15) // 32 for a in srcs})
            tot += secs
            n += 1
    return tot / n

fail = 0
for name, sb, stages, kr, rows in [("Q4_K 3 tiles, 3584 cols", 144, 14, 48, 480), ("Q4_K 2 tiles", 144, 14, 32, 96),
                                    ("Q4_K 1 tile, 18944 cols", 144, 74, 16, 48), ("Q8_0 1 tile, 3584 cols", 272, 14, 16, 40),
                                    ("Q8_0 1 tile, 1536 cols, 33 rows", 272, 6, 16, 33)]:
    bad, ratio = check(sb, stages, kr, rows, base=256)
    print(f"{name}: {bad} mismatches; sectors per 8-lane request / ideal {ratio:.3f}; "
          f"plain layout {plain_sectors(sb, stages, kr):.1f} sectors a copy instruction (16 ideal)")
    fail |= bad != 0
sys.exit(1 if fail else 0)
