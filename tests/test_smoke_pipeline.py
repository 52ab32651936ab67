"""The whole path in one process on a real Redis: ingress -> outlets."""

import asyncio

from services.runtime.runner import Running, serve
from tests.conftest import publish, read_outlet, wait_until
from tests.people import contribution, make_id, months, permit


async def test_permit_and_contributions_reach_outlets(r, settings):
    person = make_id()
    await publish(r, "psb:permit", permit("QF", person, district="320111"))
    await publish(r, "hrss:contribution", *[contribution(person, m) for m in months("202501", 6)])
    running = Running()
    task = asyncio.create_task(serve(settings, running=running, handle_signals=False))
    try:
        async def settled_out():
            return await read_outlet(r, "outlet:psb")
        psb = await wait_until(settled_out)
        health = await wait_until(lambda: read_outlet(r, "outlet:health"))
    finally:
        running.stop.set()
        assert await task == 0
    assert [d["status"] for d in psb] == ["eligible"]
    assert psb[0]["subject_id"] == person and psb[0]["district"] == "320111" and psb[0]["version"] == 1
    assert health[0]["status"] == "eligible"
