"""persist.patch's issue/consume schedule for one warp, mirrored on the host: every
(group, stage) of a block is consumed exactly once, from the slot its copy went to, and no slot is
overwritten before it is read. Run: python3 bench/variants/persist_schedule_check.py"""
import itertools
def sim(n_stages, kWarps, kDepth, n_groups, grid, block, warp):
    my_groups = (n_groups - block + grid - 1)//grid if block < n_groups else 0
    mine = (n_stages - warp + kWarps - 1)//kWarps if warp < n_stages else 0
    items = mine*my_groups
    st = dict(issued=0, ig=0, ik=0, cur=block)  # cur: group whose pointers are set (point(group_v0(0)))
    slots = {}
    def issue():
        if st['ik'] == mine:
            st['ik'] = 0; st['ig'] += 1; st['cur'] = block + st['ig']*grid
        k = st['ik']; st['ik'] += 1
        slot = st['issued'] % kDepth; st['issued'] += 1
        assert slot not in slots, 'slot overwritten before consumed'
        slots[slot] = (st['cur'], warp + k*kWarps)
    for _ in range(kDepth):
        if st['issued'] < items: issue()
    consumed = 0; seen = []
    for gi in range(my_groups):
        grp = block + gi*grid
        for k in range(mine):
            slot = consumed % kDepth
            got = slots.pop(slot)
            assert got == (grp, warp + k*kWarps), (got, grp, k)
            seen.append(got)
            consumed += 1
            if st['issued'] < items: issue()
    assert not slots and st['issued'] == items == consumed
    return seen
n=0
for n_stages, kWarps, kDepth, n_groups, grid in itertools.product([1,2,3,5,14,35,74],[4,8],[2,4],[1,2,3,7,40],[1,2,3,5,40]):
    if grid > n_groups: continue
    cover=set()
    for b in range(grid):
        for w in range(kWarps):
            for it in sim(n_stages,kWarps,kDepth,n_groups,grid,b,w): cover.add(it); n+=1
    assert cover == {(g,s) for g in range(n_groups) for s in range(n_stages)}, (n_stages,kWarps,n_groups,grid)
print('ok', n)
