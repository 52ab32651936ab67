"""The scheduler notices the date change and re-decides exactly the people it affects.

The decider keeps, per partition, a sorted set ``due:{pN}`` of pseudonym -> the first date on
which that person's outcomes may change with no event (the day after ``yxqz``, a future ``qfrq``,
a paid 310 month entering or leaving D's window). When D moves, the scheduler appends a
``date.tick`` event for each person due on or before D to their partition stream, so the tick is
decided in order with that person's other events. Not a scan of everyone: a range read per
partition. Ticking twice is harmless (a tick that changes nothing emits nothing).

A parameter value or a formula taking effect on a date changes outcomes with no event too, but
for anyone the rule reads, not for a few people known in advance; and an edit of the parameter
files (``PERMITBUS_PARAMS_DIR``, a restart) may change a value already in force. So the scheduler
keeps a digest of the rules in force (``services.rules.in_force``: every parameter value and formula
dated on or before D, and every one read as of an application's date) in ``sched:state``; when
D's digest differs from the one stored, it ticks everyone (every stored picture, read in chunks with HSCAN: the pass of ``permitbus retick``,
services/ops/retick.py) instead of the people due. That happens once per change of the rules, not
per day (BENCHMARKS.md: about one monthly burst's worth of work).
The first check of a deployment stores the digest and ticks nobody for it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import time

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from schemas.events import envelopes
from services import rules
from services.ops.retick import retick, tick_entry
from services.runtime import topology as t
from services.runtime.clock import Clock
from services.runtime.outage import REDIS_OUTAGE, Outage
from services.runtime.redis import recover
from services.runtime.settings import Settings

log = logging.getLogger("permitbus.scheduler")


class Scheduler:
    def __init__(self, r: aioredis.Redis, settings: Settings, clock: Clock) -> None:
        self.r = r
        self.settings = settings
        self.clock = clock
        self.stopping = asyncio.Event()
        self.outage = Outage(log, "scheduler")
        self.ticked = 0
        self._checking = asyncio.Lock()  # one check at a time in this process (its loop, or a caller's)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"

    def stop(self) -> None:
        self.stopping.set()

    async def run(self) -> None:
        while not self.stopping.is_set():
            try:
                await self.check()
                self.outage.ok()
                wait = self.settings.scheduler_interval_s
            except REDIS_OUTAGE as exc:
                self.outage.failed(exc)
                wait = self.outage.backoff()
            except ResponseError as exc:  # a right missing (NOPERM): said clearly, retried
                if not await recover(self.r, exc):
                    raise
                wait = self.settings.scheduler_interval_s
            try:
                await asyncio.wait_for(self.stopping.wait(), timeout=wait)
            except asyncio.TimeoutError:
                pass
        try:
            await self.r.zrem(t.members("schedule"), self.owner)  # stopped: no longer live
        except (*REDIS_OUTAGE, ResponseError):
            pass

    async def heartbeat(self) -> None:
        """Announce this scheduler as live until three intervals from now (``members:schedule``,
        as the partition workers announce themselves): ``permitbus status`` counts the live ones."""
        now = int(time.time() * 1000)
        key = t.members("schedule")
        pipe = self.r.pipeline(transaction=False)
        pipe.zadd(key, {self.owner: now + int(max(3 * self.settings.scheduler_interval_s, 10) * 1000)})
        pipe.zremrangebyscore(key, "-inf", now)
        await pipe.execute()

    async def check(self) -> int:
        """Tick everyone due if the date moved since the last check, or everyone if the rules in
        force changed (a parameter or formula dated D or earlier, first met or edited). Returns
        people ticked.

        Checks of this process run one at a time: a check called while the loop's is under way
        (tests call it so) waits for it, finds the date ticked already, and ticks nobody twice."""
        async with self._checking:
            return await self._check()

    async def _check(self) -> int:
        await self.heartbeat()
        day = self.clock.today()
        last, stored = await self.r.hmget(t.scheduler_state(), "date", "rules")
        in_force = rules.in_force(day)
        changed = stored is not None and stored.decode() != in_force
        if not changed and last is not None and dt.date.fromisoformat(last.decode()) >= day:
            if stored is None:
                await self.r.hset(t.scheduler_state(), "rules", in_force)
            return 0
        n = await (self.tick_everyone(day) if changed else self.tick(day))
        await self.r.hset(t.scheduler_state(), mapping={"date": day.isoformat(), "ticked": n, "rules": in_force})
        await self.r.hincrby(t.scheduler_state(), "ticked_total", n)
        if changed:
            log.warning("date is %s: the rules in force changed (a dated parameter or formula): %d people decided "
                        "again", day.isoformat(), n)
        elif n:
            log.info("date is %s: %d people due for a new decision", day.isoformat(), n)
        return n

    async def tick(self, day: dt.date) -> int:
        pipe = self.r.pipeline(transaction=False)
        for p in range(self.settings.partitions):
            pipe.zrangebyscore(t.due(p), "-inf", day.toordinal())
        due = await pipe.execute()
        n = 0
        pipe = self.r.pipeline(transaction=False)
        for p, members in enumerate(due):
            ticks = [tick_entry(day, member) for member in members]
            for envelope in envelopes(ticks):
                pipe.xadd(t.evt(p), {"b": envelope})
                if len(pipe) >= 100:
                    await pipe.execute()
            n += len(ticks)
        await pipe.execute()
        self.ticked += n
        return n

    async def tick_everyone(self, day: dt.date) -> int:
        """A tick for every stored picture: the pass of ``permitbus retick`` (services/ops/retick.py),
        partition by partition, ``CHUNK`` pictures a read."""
        n = await retick(self.r, range(self.settings.partitions), day)
        self.ticked += n
        return n
