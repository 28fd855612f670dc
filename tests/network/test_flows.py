"""The flow table and the processor-sharing math on their own (no SimPy), pinned to hand-computed cases."""
from __future__ import annotations

import math

import numpy as np
import pytest

from vfedsim.network.flows import (
    DUE, FLOAT_COLUMNS, INT_COLUMNS, FlowTable, Resources, bytes_now, carried_bytes, completing, next_instant,
    rebuild,
)


def _flow(nbytes=1e6, start=0.0, rate=0.0, fin=math.inf, grp=0, fid=0, bc=-1, t_exit=math.inf):
    f = dict(zip(FLOAT_COLUMNS, (0.0,) * len(FLOAT_COLUMNS)))
    f.update(nbytes=nbytes, start=start, rate=rate, fin=fin, outage_since=math.nan, t_trip=math.inf, t_exit=t_exit,
             t_outage=math.inf, t_resume=math.inf, t_turn=math.inf)
    i = dict(zip(INT_COLUMNS, (0,) * len(INT_COLUMNS)))
    i.update(fid=fid, vehicle=fid, grp=grp, rsu=grp // 2, up=grp % 2, bc=bc, relay=-1, hops=1)
    return tuple(f[c] for c in FLOAT_COLUMNS), tuple(i[c] for c in INT_COLUMNS)


def test_table_grows_removes_and_tracks_rows():
    t = FlowTable.empty(2)
    for k in range(5):
        t.append(*_flow(nbytes=100.0 * (k + 1), fid=k, t_exit=10.0 - k))
    assert t.n == 5 and t.capacity == 8
    assert t.nbytes[:5].tolist() == [100.0, 200.0, 300.0, 400.0, 500.0] and t.fid[:5].tolist() == [0, 1, 2, 3, 4]
    assert t.due_minima() == [math.inf, 6.0, math.inf, math.inf, math.inf]
    tracked = t.remove(np.array([1]), [4, 3])  # the last row (fid 4) moves into row 1
    assert t.n == 4 and t.fid[:4].tolist() == [0, 4, 2, 3] and tracked == [1, 3]
    tracked = t.remove(np.array([0, 2, 3]), [1])  # the bulk path keeps order
    assert t.n == 1 and t.fid[:1].tolist() == [4] and tracked == [0]


def test_sharing_hand_computed():
    """Two flows of 1 MB at 8 and 16 Mbit/s join one resource at t = 0 and t = 0.5 (virtual time grows at
    1/n): the first alone to V = 0.5, then both at half speed."""
    t, res = FlowTable.empty(), Resources.empty(2)
    a = t.append(*_flow(nbytes=1e6, rate=8e6, fid=0))
    v = res.advance(0, 0.0)
    t.fin[a] = v + 8 * 1e6 / 8e6  # 1 s of airtime
    res.count[0] += 1
    res.joined(0, float(t.fin[a]))
    res.plan(0)
    assert res.next_s[0] == 1.0
    b = t.append(*_flow(nbytes=1e6, rate=16e6, fid=1))
    v = res.advance(0, 0.5)
    assert v == 0.5
    t.fin[b] = v + 8 * 1e6 / 16e6  # 0.5 s of airtime: fin 1.0, the same as the first
    res.count[0] += 1
    res.joined(0, float(t.fin[b]))
    res.plan(0)
    assert res.next_s[0] == pytest.approx(0.5 + (1.0 - 0.5) * 2)  # both finish at t = 1.5
    assert sorted(completing(t, res, 1.5).tolist()) == [a, b]
    assert completing(t, res, 1.4).size == 0
    carried = bytes_now(t, res, 1.0)  # V(1.0) = 0.75: a has 0.25 s of airtime left, b 0.25 s at twice the rate
    assert carried == pytest.approx([1e6 - 0.25 * 8e6 / 8, 1e6 - 0.25 * 16e6 / 8])
    assert carried_bytes(1e6, 0.0, 1.0, 0.75, 8e6) == pytest.approx(750_000.0)
    assert next_instant(res, [2.0] * len(DUE), 3.0) == pytest.approx(1.5)


def test_leaving_first_finisher_replans_from_the_others():
    t, res = FlowTable.empty(), Resources.empty(2)
    rows = [t.append(*_flow(rate=8e6, fid=k, grp=1)) for k in range(3)]
    for r, fin in zip(rows, (1.0, 3.0, 2.0)):
        t.fin[r] = fin
        res.count[1] += 1
        res.joined(1, fin)
    res.plan(1)
    assert res.first[1] == 1.0 and res.next_s[1] == 3.0  # V = 0 at t = 0, three flows
    res.advance(1, 3.0)
    t.fin[rows[0]] = math.inf
    res.count[1] -= 1
    res.left(1, 1.0, t)
    res.plan(1)
    assert res.first[1] == 2.0 and res.next_s[1] == pytest.approx(3.0 + (2.0 - 1.0) * 2)


def test_rebuild_counts_a_broadcast_once():
    t, res = FlowTable.empty(), Resources.empty(4)
    t.append(*_flow(fin=5.0, grp=2, fid=0, bc=7))
    t.append(*_flow(fin=5.0, grp=2, fid=1, bc=7))
    t.append(*_flow(fin=3.0, grp=2, fid=2))
    t.append(*_flow(fin=math.inf, grp=3, fid=3))  # in outage: not live
    live = np.isfinite(t.fin[:4])
    members = rebuild(res, t, live, 10.0)
    assert res.count.tolist() == [0, 0, 2, 0] and members == {7: 2}
    assert res.first[2] == 3.0 and res.next_s[2] == 10.0 + 3.0 * 2 and math.isinf(res.next_s[3])
