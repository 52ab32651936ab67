"""The starting point: the outlet's current rosters, read from the read API, as rows.

A department's Redis user reads its outlet and nothing else (docs/contract.md "Access"), so the rosters
come from the read API (services/outlets/api.py) with the department's token: every district of
every entitlement the outlet carries, page by page; each read of a roster carries the outlet
position it includes (the same on every page of that read).

Why the result does not depend on when the rosters were read (or how often a killed follower
read them again): the snapshot starts from a ``base``, the outlet's last id *before* any roster is
read, recorded in ``permitbus_follow_snapshot`` before reading, and kept when the follower is
stopped half-way. Every roster read is then at or after the base, and the follower goes on from
the base. For any key, either its latest decision came after the base, and following the outlet
brings it (the version guard keeps the highest); or nothing happened to it since the base, and
every roster read after the base shows it the same way: listed (eligible) or not there. So the
rows are fixed by the base alone, whichever district was read when, and a roster read started
again (its pages expired, HTTP 410) changes nothing.

A snapshot replaces the outlet's rows: the table then holds what a follower started afresh from
that base would hold (what was decided before the base about people not on a roster now, an
``ineligible`` application, say, is not in any roster and is not kept).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
import msgspec

from services.follow import store
from services.follow.rows import Rejected, from_roster
from schemas.districts import DISTRICTS
from services.runtime.redis import stream_id

log = logging.getLogger("permitbus.follow")
PAGE = 5000  # the API's largest page (services/outlets/api.py PAGE_MAX)


class Refused(Exception):
    """A refusal that waiting will not change (a wrong token, an entitlement not the department's)."""


class Stopped(Exception):
    """The follower was asked to stop: the snapshot's transaction is rolled back, its base kept."""


class Expired(Exception):
    """The pages of a roster read expired before they were all read: read that roster again."""


class Api:
    """The read API, as the department calls it (``Authorization: Bearer <token>``)."""

    def __init__(self, base_url: str, token: str, transport: httpx.AsyncBaseTransport | None = None,
                 stopping: asyncio.Event | None = None) -> None:
        self.client = httpx.AsyncClient(base_url=base_url.rstrip("/"), transport=transport, timeout=30.0,
                                        headers={"Authorization": f"Bearer {token}"})
        self.stopping = stopping or asyncio.Event()
        self.down_since: float | None = None

    async def aclose(self) -> None:
        await self.client.aclose()

    async def pages(self, entitlement: str, district: str) -> AsyncIterator[tuple[str, list[dict]]]:
        """(position, entries) of each page of one roster read."""
        cursor = None
        while True:
            params = {"limit": PAGE} | ({"cursor": cursor} if cursor else {})
            body = await self._get(f"/v1/rosters/{entitlement}/{district}", params)
            yield body["position"], body["entries"]
            cursor = body.get("next")
            if not cursor:
                return

    async def _get(self, path: str, params: dict) -> dict:
        delay = 0.2
        while True:
            if self.stopping.is_set():
                raise Stopped()
            try:
                resp = await self.client.get(path, params=params)
            except httpx.TransportError as exc:
                log.warning("read API unreachable (%s); retrying", type(exc).__name__)
                await self._pause(delay)
                delay = min(delay * 2, 5.0)
                continue
            if resp.status_code == 200:
                return resp.json()
            if resp.status_code == 410:
                raise Expired()
            if resp.status_code == 429:
                wait = float(resp.headers.get("Retry-After", "1"))
                log.info("read API: rate limited, waiting %.0f s", wait)
                await self._pause(wait)
                continue
            if resp.status_code >= 500:
                log.warning("read API answered %d; retrying", resp.status_code)
                await self._pause(delay)
                delay = min(delay * 2, 5.0)
                continue
            detail = _detail(resp)
            raise Refused(f"the read API refused {path}: HTTP {resp.status_code} {detail}")

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except TimeoutError:
            return
        raise Stopped()


def _detail(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("detail", ""))[:200]
    except ValueError:
        return ""


async def take(conn, api: Api, outlet: str, entitlements: list[str], base: str) -> tuple[int, int]:
    """Replace the outlet's rows by its rosters and set its position to ``base``, in one
    transaction. Returns (rows, rejected)."""
    rows_n = rejected_n = 0
    async with conn.transaction():
        await store.replace(conn, entitlements)
        rejected: list[Rejected] = []
        for entitlement in entitlements:
            for district in DISTRICTS:
                while True:
                    try:
                        n, bad = await _roster(conn, api, outlet, entitlement, district, base)
                        break
                    except Expired:
                        log.info("%s %s: the roster read expired; reading it again", entitlement, district)
                rows_n += n
                rejected += bad
        await store.reject(conn, outlet, rejected)
        rejected_n = len(rejected)
        await store.finish_snapshot(conn, outlet, base)
    return rows_n, rejected_n


async def _roster(conn, api: Api, outlet: str, entitlement: str, district: str, base: str) -> tuple[int, list[Rejected]]:
    n, bad, offset = 0, [], 0
    allowed = frozenset({entitlement})
    async for position, entries in api.pages(entitlement, district):
        if stream_id(position) < stream_id(base):
            raise Refused(f"the roster {entitlement} {district} is at {position}, before the outlet position {base} "
                          "read first: is the API on the same Redis as the outlet?")
        rows = []
        for entry in entries:
            source = f"roster:{entitlement}:{district}:{offset}"
            offset += 1
            row = from_roster(entry, allowed, source)
            if isinstance(row, str):
                bad.append(Rejected(source, row, msgspec.json.encode(entry)))
            else:
                rows.append(row)
        bad = await store.apply(conn, outlet, rows, bad)
        n += len(rows)
    return n, bad
