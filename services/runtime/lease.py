"""Leases: how workers of one service share the work and keep per-person order.

* A feed's normalizer has one active consumer at a time (``lease:normalize:<feed>``): records
  of one person arrive in order on one ingress stream, and one reader appends them in order.
  Standby workers take over when the lease lapses (the holder died) and first finish what the
  dead holder left pending.
* Partitions are shared among the live workers of a role (decider, relay): each worker announces
  itself in ``members:<role>`` and takes the partitions ``p`` with ``p % n == its rank``, each under
  a lease ``lease:<role>:{pN}``. Two owners for a moment are harmless: every commit is guarded
  by the partition's stored position (compare-and-set), so at most one of them moves it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from services.runtime import topology as t
from services.runtime.redis import fn

log = logging.getLogger("permitbus.lease")
SHORT_REFRESH_S = 0.2


class Lease:
    def __init__(self, r, key: str, owner: str, ttl_ms: int) -> None:
        self.r, self.key, self.owner, self.ttl_ms = r, key, owner, ttl_ms
        self.held = False

    async def take(self) -> bool:
        """Acquire, or renew if already ours. False if another worker holds it."""
        self.held = bool(await self.r.fcall(fn("pb_lease"), 2, self.key, t.lease_changes(self.key), self.owner,
                                            self.ttl_ms, "take"))
        return self.held

    async def release(self) -> None:
        if self.held:
            await self.r.fcall(fn("pb_lease"), 1, self.key, self.owner, self.ttl_ms, "release")
            self.held = False


class PartitionShare:
    """The partitions this worker owns now, among the live members of its role."""

    def __init__(self, r, role: str, owner: str, partitions: list[int], ttl_ms: int = 10_000) -> None:
        self.r, self.role, self.owner, self.ttl_ms = r, role, owner, ttl_ms
        self.partitions = partitions
        self.owned: set[int] = set()
        self.wanted: set[int] = set()
        self.leases = {p: Lease(r, t.partition_lease(role, p), owner, ttl_ms) for p in partitions}

    async def refresh(self) -> set[int]:
        now = int(time.time() * 1000)
        members_key = t.members(self.role)
        pipe = self.r.pipeline(transaction=False)
        pipe.zadd(members_key, {self.owner: now + self.ttl_ms})
        pipe.zremrangebyscore(members_key, "-inf", now)
        pipe.zrange(members_key, 0, -1)
        *_, members = await pipe.execute()
        members = sorted(m.decode() for m in members)  # by name: scores move with every refresh
        rank, n = members.index(self.owner), len(members)
        wanted = {p for p in self.partitions if p % n == rank}
        pipe = self.r.pipeline(transaction=False)
        order = sorted(wanted) + sorted(self.owned - wanted)
        for p in sorted(wanted):
            key = self.leases[p].key
            pipe.fcall(fn("pb_lease"), 2, key, t.lease_changes(key), self.owner, self.ttl_ms, "take")
        for p in sorted(self.owned - wanted):
            pipe.fcall(fn("pb_lease"), 1, self.leases[p].key, self.owner, self.ttl_ms, "release")
        results = await pipe.execute()
        owned = {p for p, ok in zip(order, results) if p in wanted and ok}
        if owned != self.owned:
            log.info("%s %s now owns partitions %s (of %d members)", self.role, self.owner, sorted(owned), n)
        self.owned, self.wanted = owned, wanted
        return owned

    async def leave(self) -> None:
        pipe = self.r.pipeline(transaction=False)
        for p in sorted(self.owned):
            pipe.fcall(fn("pb_lease"), 1, self.leases[p].key, self.owner, self.ttl_ms, "release")
        pipe.zrem(t.members(self.role), self.owner)
        await pipe.execute()
        self.owned = set()


async def run_partitioned(worker, refresh_s: float = 2.0) -> None:
    """The loop of a partition worker (decider, relay): keep its share of the partitions fresh,
    step while it owns any, ride out Redis outages and repair an emptied Redis; leave on stop.

    ``worker`` has ``r``, ``share`` (or None for static partitions), ``active``, ``pos``,
    ``stopping``, ``outage`` and ``step(block_ms)``."""
    from redis.exceptions import ResponseError

    from services.runtime.outage import REDIS_OUTAGE
    from services.runtime.redis import recover

    next_share = 0.0
    while not worker.stopping.is_set():
        try:
            if worker.share and time.monotonic() >= next_share:
                owned = sorted(await worker.share.refresh())
                if owned != worker.active:
                    worker.active, worker.pos = owned, {}
                # short of its share (another member still holds some): ask again soon, so that a
                # worker joining under load starts sharing in a fraction of a second
                short = worker.share.owned != worker.share.wanted
                next_share = time.monotonic() + (SHORT_REFRESH_S if short else refresh_s)
            if not worker.active:
                await asyncio.sleep(0.2)
                continue
            await worker.step(block_ms=200)
            worker.outage.ok()
        except REDIS_OUTAGE as exc:  # unreachable, or refusing (OOM, READONLY, ...): wait, then re-read positions
            worker.outage.failed(exc)
            worker.pos.clear()
            await asyncio.sleep(worker.outage.backoff())
        except ResponseError as exc:
            if not await recover(worker.r, exc):
                raise
            worker.pos.clear()
    if worker.share:
        try:
            await worker.share.leave()
        except REDIS_OUTAGE:
            pass
