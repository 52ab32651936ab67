"""The scheduler notices the date change and re-decides exactly the people it affects.

The decider keeps, per partition, a sorted set ``due:{pN}`` of pseudonym -> the first date on
which that person's outcomes may change with no event (the day after ``yxqz``, a future ``qfrq``,
a paid 310 month entering or leaving D's window). When D moves, the scheduler appends a
``date.tick`` event for each person due on or before D to their partition stream, so the tick is
decided in order with that person's other events. Not a scan of everyone: a range read per
partition. Ticking twice is harmless (a tick that changes nothing emits nothing).
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

from schemas.events import DateTick, encode_event, envelopes
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
        """Tick everyone due if the date moved since the last check. Returns people ticked.

        Checks of this process run one at a time: a check called while the loop's is under way
        (tests call it so) waits for it, finds the date ticked already, and ticks nobody twice."""
        async with self._checking:
            return await self._check()

    async def _check(self) -> int:
        await self.heartbeat()
        day = self.clock.today()
        last = await self.r.hget(t.scheduler_state(), "date")
        if last is not None and dt.date.fromisoformat(last.decode()) >= day:
            return 0
        n = await self.tick(day)
        await self.r.hset(t.scheduler_state(), mapping={"date": day.isoformat(), "ticked": n})
        await self.r.hincrby(t.scheduler_state(), "ticked_total", n)
        if n:
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
            ticks = [encode_event(DateTick(record_id=f"tick:{day.isoformat()}", source_id="", person_id="",
                                           on=day, pseudonym=member)) for member in members]
            for envelope in envelopes(ticks):
                pipe.xadd(t.evt(p), {"b": envelope})
                if len(pipe) >= 100:
                    await pipe.execute()
            n += len(ticks)
        await pipe.execute()
        self.ticked += n
        return n
