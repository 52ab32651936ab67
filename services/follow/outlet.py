"""Reading an outlet from a stored position, and knowing when that position has left the outlet.

The relay trims each outlet to ``PERMITBUS_OUTLET_RETENTION_DAYS`` (``XTRIM MINID``, in
``pb_relay``): a follower stopped longer than that would find its position gone, and a plain
``XREAD`` from it would silently skip what was trimmed after it. So every read is verified:

* ``next_batch`` reads from just *before* the position, so the entry at the position comes back
  first when it is still there. Trimming removes a stream's oldest entries, so while the entry at
  the position is there, everything after it is too: the read is gap-free. This costs one entry a
  read, no round trip.
* When it is not there (position ``0-0``, a snapshot's base that was never an entry, or trimmed),
  ``XINFO STREAM`` (which a department's user may run on its own outlet, services/runtime/access.py)
  decides with ``judge``: nothing ever removed, or the first entry still at or before the
  position -> no gap; otherwise what followed the position may be gone -> ``OutletGap`` (the
  follower takes a new snapshot). It errs on the side of a snapshot: when the outlet was trimmed
  exactly up to the position, nothing was lost, and a snapshot is taken all the same.
* ``wait`` blocks until something is appended after the position and reads nothing: the batch is
  then read by ``next_batch``, verified as above.

A position beyond the outlet's last id means the outlet was made anew (a Redis emptied): also a gap.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from services.runtime.redis import stream_id

MAX_SEQ = 2**64 - 1


class OutletGap(Exception):
    """The outlet no longer holds everything after the position: take a new snapshot."""


def before(position: str) -> str | None:
    """The largest stream id below ``position`` (None for ``0-0``)."""
    ms, seq = stream_id(position)
    if seq:
        return f"{ms}-{seq - 1}"
    return f"{ms - 1}-{MAX_SEQ}" if ms else None


@dataclass(frozen=True)
class Span:
    """What ``XINFO STREAM`` says of the outlet that matters here."""

    length: int
    added: int  # entries-added: every entry ever appended
    first: tuple[int, int] | None  # the oldest entry still there
    last: tuple[int, int]  # last-generated-id (0-0 when the stream does not exist)


async def span(r: aioredis.Redis, outlet: str) -> Span:
    try:
        info = await r.xinfo_stream(outlet)
    except ResponseError as exc:
        if "no such key" in str(exc).lower():
            return Span(0, 0, None, (0, 0))
        raise
    first = info.get("first-entry")
    return Span(int(info["length"]), int(info["entries-added"]), stream_id(first[0]) if first else None,
                stream_id(info["last-generated-id"]))


def judge(s: Span, position: str) -> str | None:
    """None when reading on after ``position`` misses nothing; else why it would."""
    q = stream_id(position)
    if s.last < q:
        return f"the outlet's last entry {s.last[0]}-{s.last[1]} is before the position {position}: it was made anew"
    if s.added == s.length:
        return None  # nothing was ever removed
    if s.first is None:
        return None if s.last == q else f"everything after the position {position} was trimmed"
    if s.first <= q:
        return None
    return (f"the outlet was trimmed past the position {position} (its first entry is now "
            f"{s.first[0]}-{s.first[1]})")


class Reader:
    def __init__(self, r: aioredis.Redis, outlet: str, count: int) -> None:
        self.r, self.outlet, self.count = r, outlet, count

    async def next_batch(self, position: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """Up to ``count`` entries after ``position``, none missed; ``OutletGap`` when some were trimmed."""
        prev = before(position)
        resp = await self.r.xread({self.outlet: prev or "0-0"}, count=self.count + (1 if prev else 0))
        entries = resp[0][1] if resp else []
        if prev and entries and entries[0][0].decode() == position:
            return entries[1:]
        why = judge(await span(self.r, self.outlet), position)
        if why:
            raise OutletGap(why)
        return entries[: self.count]

    async def wait(self, position: str, block_ms: int) -> bool:
        """Block until an entry is appended after ``position`` (True) or ``block_ms`` pass (False)."""
        return bool(await self.r.xread({self.outlet: position}, count=1, block=block_ms))
