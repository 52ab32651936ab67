"""Bounded streams: trimmed, but never past what some consumer group has not acknowledged."""

from services.ingress.service import Normalizer
from services.runtime import topology as t
from tests.conftest import publish
from tests.harness import drain, services
from tests.people import make_id, permit


async def test_ingress_trim_keeps_what_another_group_has_pending(r, settings):
    ids = await publish(r, "psb:permit", *[permit("QF", make_id()) for _ in range(300)])
    # a second group (an auditor, say) has read 150 entries and acknowledged 100
    await r.xgroup_create("ingress:psb:permit", "audit", id="0")
    got = await r.xreadgroup("audit", "a1", {"ingress:psb:permit": ">"}, count=150)
    await r.xack("ingress:psb:permit", "audit", *[eid for eid, _ in got[0][1][:100]])
    async with services(settings):
        await drain(r, settings)
    n = Normalizer(r, settings, "psb:permit", "test")
    await n.trim()
    remaining = [eid for eid, _ in await r.xrange("ingress:psb:permit")]
    assert ids[100] in remaining  # the audit group's oldest pending entry is kept
    assert ids[0] not in remaining  # approximate trimming drops whole nodes below the bound
    await r.xack("ingress:psb:permit", "audit", *[eid for eid, _ in got[0][1][100:]])
    rest = await r.xreadgroup("audit", "a1", {"ingress:psb:permit": ">"})
    await r.xack("ingress:psb:permit", "audit", *[eid for eid, _ in rest[0][1]])
    await n.trim()
    assert await r.xlen("ingress:psb:permit") < 120  # all acknowledged: only the last node stays


async def test_internal_streams_are_trimmed_after_use(r, settings):
    await publish(r, "psb:permit", *[permit("QF", make_id()) for _ in range(500)])
    async with services(settings):
        await drain(r, settings)
    evt = sum([await r.xlen(t.evt(p)) for p in range(settings.partitions)])
    out = sum([await r.xlen(t.outbox(p, "outlet:health")) for p in range(settings.partitions)])
    assert await r.xlen("outlet:health") == 500
    # trimmed exactly, past the positions: a partition stream or an outbox holds exactly what
    # waits, so its length is its stage's backlog (services/ops/status.py)
    assert out == 0
    assert evt == 0
