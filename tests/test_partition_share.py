"""Live workers of a role share the partitions: disjoint, complete, and handed over quickly."""

from __future__ import annotations

from services.runtime.lease import PartitionShare

PARTS = list(range(16))


async def test_two_members_own_disjoint_halves_whatever_order_they_refresh_in(r):
    a = PartitionShare(r, "decider", "worker-a", PARTS)
    b = PartitionShare(r, "decider", "worker-b", PARTS)
    await a.refresh()
    assert a.owned == set(PARTS)  # alone: everything
    for first, second in [(a, b), (b, a), (a, b), (a, b), (b, a)]:
        await first.refresh()
        await second.refresh()
    await a.refresh()
    await b.refresh()
    assert a.owned and b.owned
    assert a.owned.isdisjoint(b.owned) and a.owned | b.owned == set(PARTS)
    assert a.owned == a.wanted and b.owned == b.wanted


async def test_a_member_that_leaves_hands_its_partitions_over(r):
    a = PartitionShare(r, "relay", "worker-a", PARTS)
    b = PartitionShare(r, "relay", "worker-b", PARTS)
    await a.refresh()
    await b.refresh()
    assert b.owned != b.wanted  # a still holds b's half until it refreshes
    await a.refresh()
    await b.refresh()
    assert len(b.owned) == 8
    await b.leave()
    await a.refresh()
    assert a.owned == set(PARTS)
