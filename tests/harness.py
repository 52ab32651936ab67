"""Run the services in this test's process against the test's Redis database."""

from __future__ import annotations

import asyncio
import contextlib

from services.ops.backlog import backlog
from services.runtime.runner import Running, serve


@contextlib.asynccontextmanager
async def services(settings, clock=None, **kw):
    running = Running()
    task = asyncio.create_task(serve(settings, clock=clock, running=running, handle_signals=False, **kw))
    await asyncio.wait([task, asyncio.create_task(running.ready.wait())], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    try:
        yield running
    finally:
        running.stop.set()
        assert await task == 0


async def drain(r, settings, timeout: float = 30.0, settle: int = 3) -> None:
    """Wait until every stage is idle (several checks in a row: work moves between stages)."""
    deadline = asyncio.get_running_loop().time() + timeout
    calm = 0
    while calm < settle:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"pipeline not idle after {timeout}s: {await backlog(r, settings.partitions)}")
        calm = calm + 1 if (await backlog(r, settings.partitions)).idle else 0
        await asyncio.sleep(0.05)


async def unfinished(r, feed: str) -> int:
    """Entries of ``feed`` its normalizer has read and not finished (reads are NOACK: not a
    pending list, the group's entries read past the committed position), plus any pending."""
    from services.ops.backlog import in_flight
    from services.runtime import topology as t

    ingress = t.FEEDS[feed].ingress
    group = next(g for g in await r.xinfo_groups(ingress) if g["name"] == t.NORMALIZER_GROUP.encode())
    return group["pending"] + in_flight(group, await r.hgetall(t.counters(ingress)))[0]
