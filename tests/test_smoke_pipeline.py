"""The whole path in one process on a real Redis: ingress -> outlets."""

from tests.conftest import publish, read_outlet
from tests.harness import drain, services
from tests.people import contribution, make_id, months, permit


async def test_permit_and_contributions_reach_outlets(r, settings):
    person = make_id()
    await publish(r, "psb:permit", permit("QF", person, district="320111"))
    await publish(r, "hrss:contribution", *[contribution(person, m) for m in months("202501", 6)])
    async with services(settings):
        await drain(r, settings)
    psb = await read_outlet(r, "outlet:psb")
    health = await read_outlet(r, "outlet:health")
    assert [d["status"] for d in psb] == ["eligible"]
    assert psb[0]["subject_id"] == person and psb[0]["district"] == "320111" and psb[0]["version"] == 1
    assert psb[0]["caused_by"] and psb[0]["basis"] == ["（六）"] and psb[0]["as_of"] == "2026-11-28"
    assert [d["status"] for d in health] == ["eligible"]
    assert await read_outlet(r, "outlet:medins") == []
