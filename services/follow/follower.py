"""The follow loop: snapshot when there is no position (or it left the outlet), then batches.

Each batch is one verified read of up to ``batch`` outlet entries (``outlet.Reader``) and one
PostgreSQL transaction holding their rows, their rejects and the new position
(``store.commit_batch``). The next batch is read and decoded while PostgreSQL works on the one
before (``_read`` ahead): the two take about the same time (BENCHMARKS.md). The stored position is the only state: a follower killed at any point
starts again from it, and the version guard makes a batch applied twice the same as once.

Recovery has one path: whatever goes away (Redis, PostgreSQL, the API), the session is closed
(which also releases the outlet's lock), the follower waits a little and starts again from the
stored position, as after a kill. What waiting will not cure (a Redis user without rights on this
outlet, a wrong token, PostgreSQL refusing the login or the tables) stops it with ``Refused``.

Stopping (``stop``, SIGTERM): the batch in hand is committed or rolled back, nothing is left half
done, and ``run`` returns; every wait in the loop is at most a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import psycopg
from redis.exceptions import RedisError

from services.follow import store
from services.follow.outlet import OutletGap, Reader, judge, span
from services.follow.rows import Rejected, Row, from_entry
from services.follow.snapshot import Api, Refused, Stopped, take
from services.runtime import topology as t
from services.runtime.faults import is_outage
from services.runtime.outage import acl_refusal
from services.runtime.redis import connect

log = logging.getLogger("permitbus.follow")
BLOCK_MS = 1000
PROGRESS_S = 10.0
# a PostgreSQL that answers FATAL at login refuses for good, unless it is one of these
_PG_PASSING = ("too many clients", "starting up", "shutting down", "recovery mode", "not yet accepting")


def entitlements_of(outlet: str) -> list[str]:
    return [o.entitlement for o in t.OUTLETS.values() if o.stream == outlet]


def pg_refusal(exc: BaseException) -> str | None:
    """What PostgreSQL refused for good (login, database, rights), or None for an outage."""
    if not isinstance(exc, psycopg.Error):
        return None
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    state = getattr(exc, "sqlstate", None) or ""
    if state == "42P01":  # a table dropped under it: made again when the session starts again
        return None
    if state[:2] in ("28", "3D", "42"):
        return text
    if state == "" and "FATAL:" in text and not any(p in text for p in _PG_PASSING):
        return text
    return None


@dataclass(slots=True)
class Batch:
    entries: int
    new: str  # the position after it: its last entry's id
    rows: list[Row]
    rejected: list[Rejected]


class Follower:
    def __init__(self, dept: str, redis_url: str, pg_url: str, api: Api | None, batch: int = 2000,
                 once: bool = False, read_ahead: bool = True, cluster: bool = False) -> None:
        self.cluster = cluster  # redis_url names a node of a Redis Cluster (PERMITBUS_REDIS_CLUSTER_URL)
        self.outlet = t.DEPARTMENT_OUTLETS[dept]
        self.entitlements = entitlements_of(self.outlet)
        self.allowed = frozenset(self.entitlements)
        self.redis_url, self.pg_url, self.api = redis_url, pg_url, api
        self.batch, self.once = batch, once
        self.read_ahead = read_ahead  # off only to measure what it brings (benchmarks/follow.py)
        self.stopping = api.stopping if api else asyncio.Event()
        self.applied = self.rejected = 0
        self.snapshots = 0
        self.following = False  # this session reached the loop (an outage after it is a new one)
        self._noted = (time.monotonic(), 0)

    def stop(self) -> None:
        self.stopping.set()

    async def run(self) -> None:
        """Follow until stopped (or, with ``once``, until the outlet has nothing more)."""
        r = connect(self.redis_url, cluster=self.cluster)
        delay, down = 0.2, None
        try:
            while not self.stopping.is_set():
                conn = None
                try:
                    conn = await store.connect(self.pg_url)
                    if not await self._lock(conn):
                        return
                    await self._follow(r, conn)
                    return
                except Stopped:
                    return
                except RedisError as exc:
                    refusal = acl_refusal(exc)
                    if refusal:
                        user = urlsplit(self.redis_url).username or "default"
                        raise Refused(f"Redis refuses {self.outlet} to its user {user} (NOPERM): {refusal}") from None
                    if not is_outage(exc):
                        raise
                    down = self._down(down, "Redis", exc)
                except psycopg.Error as exc:
                    refusal = pg_refusal(exc)
                    if refusal:
                        raise Refused(f"PostgreSQL refuses: {refusal}") from None
                    down = self._down(down, "PostgreSQL", exc)
                except store.PositionMoved as exc:
                    log.error("%s; reading it again", exc)
                except OSError as exc:
                    down = self._down(down, "Redis", exc)
                finally:
                    if conn is not None:
                        await conn.close()
                if self.following:  # it got as far as following: a new outage from here on
                    self.following, down, delay = False, None, 0.2
                await self._pause(delay)
                delay = min(delay * 2, 5.0)
        finally:
            await r.aclose()

    def _down(self, since: float | None, what: str, exc: BaseException) -> float:
        if since is None:
            log.warning("%s: %s unavailable (%s); starting again from the stored position when it is back",
                        self.outlet, what, type(exc).__name__)
        return since or time.monotonic()

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except TimeoutError:
            pass

    async def _lock(self, conn) -> bool:
        """The outlet's lock in this database; another follower holding it is waited for (a
        standby). False when stopped meanwhile."""
        said = False
        while not await store.lock(conn, self.outlet):
            if not said:
                log.warning("%s: another follower holds this outlet in this database; waiting for it to stop",
                            self.outlet)
                said = True
            await self._pause(1.0)
            if self.stopping.is_set():
                return False
        return True

    async def _follow(self, r, conn) -> None:
        position = await store.position(conn, self.outlet)
        if position is None:
            position = await self._snapshot(r, conn, "no position stored yet")
        log.info("%s: following from %s", self.outlet, position)
        self.following = True
        reader = Reader(r, self.outlet, self.batch)
        ahead: asyncio.Future | None = None
        try:
            while not self.stopping.is_set():
                try:
                    batch = await (ahead or self._read(reader, position))
                except OutletGap as gap:
                    log.warning("%s: %s; taking a new snapshot", self.outlet, gap)
                    position = await self._snapshot(r, conn, str(gap))
                    continue
                finally:
                    ahead = None
                if batch is None:
                    if self.once:
                        return
                    await reader.wait(position, BLOCK_MS)
                    continue
                # the next batch is read and decoded while PostgreSQL works on this one
                if self.read_ahead:
                    ahead = asyncio.ensure_future(self._read(reader, batch.new))
                rejected = await store.commit_batch(conn, self.outlet, position, batch.new, batch.rows,
                                                    batch.rejected)
                if rejected:
                    self._log_rejected(rejected)
                position = batch.new
                self.applied += batch.entries
                self.rejected += len(rejected)
                self._progress(position)
        finally:
            if ahead is not None:
                ahead.cancel()
                with contextlib.suppress(BaseException):
                    await ahead

    async def _read(self, reader: Reader, position: str) -> "Batch | None":
        """The entries after ``position`` as rows and rejects (None: nothing there yet)."""
        entries = await reader.next_batch(position)
        if not entries:
            return None
        rows: list[Row] = []
        rejected: list[Rejected] = []
        for eid, fields in entries:
            x = from_entry(eid.decode(), fields, self.allowed)
            (rows if isinstance(x, Row) else rejected).append(x)
        return Batch(len(entries), entries[-1][0].decode(), rows, rejected)

    async def _snapshot(self, r, conn, why: str) -> str:
        """Rows from the rosters and the position they start from (``snapshot.take``)."""
        if self.entitlements and self.api is None:
            raise Refused(f"{self.outlet} needs a snapshot ({why}), read from the read API: give --api URL or "
                          "PERMITBUS_FOLLOW_API, and the department's token in PERMITBUS_FOLLOW_TOKEN")
        base = await store.snapshot_base(conn, self.outlet)
        if base is None or judge(await span(r, self.outlet), base):
            last = (await span(r, self.outlet)).last
            base = f"{last[0]}-{last[1]}"
            await store.start_snapshot(conn, self.outlet, base)
        started = time.monotonic()
        log.info("%s: snapshot of %s from outlet position %s (%s)", self.outlet,
                 ", ".join(self.entitlements) or "no rosters", base, why)
        rows, bad = await take(conn, self.api, self.outlet, self.entitlements, base)
        self.snapshots += 1
        log.info("%s: snapshot done: %d rows, %d rejected, in %.1f s; following from %s", self.outlet, rows, bad,
                 time.monotonic() - started, base)
        return base

    def _log_rejected(self, rejected: list[Rejected]) -> None:
        """Entry ids and reasons (which name fields, not values: rows.py), never a payload."""
        first = rejected[0]
        log.warning("%s: %d entries rejected (kept in %s), e.g. %s: %s", self.outlet, len(rejected), store.REJECTED,
                    first.entry_id, first.reason)

    def _progress(self, position: str) -> None:
        now = time.monotonic()
        then, done = self._noted
        if now - then >= PROGRESS_S:
            log.info("%s: %d entries applied (%.0f/s), position %s", self.outlet, self.applied,
                     (self.applied - done) / (now - then), position)
            self._noted = (now, self.applied)
