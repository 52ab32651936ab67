"""Quarantine and dead letters keep the original record (names and ID numbers included: an operator
fixes and re-drives it) only for ``PERMITBUS_QUARANTINE_RETENTION_DAYS`` (docs/contract.md, "Personal data
at rest"). The workers that write them trim them as part of a periodic step they already take:
each normalizer its feed's quarantine and ``dlq:ingress:<feed>``, the relay the permit quarantine it
fills (``UNKNOWN_PERMIT``) and ``dlq:decider``.

Trimmed exactly (``MINID`` without ``~``): an approximate trim may keep older entries for a while,
and these streams are small. Idempotent, so several workers may do it.
"""

from __future__ import annotations

import time

DAY_MS = 86_400_000
EVERY_S = 60.0  # how often a relay looks (a normalizer trims on its lease refresh)


def minid(days: int, now_ms: int | None = None) -> str:
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    return f"{max(now_ms - days * DAY_MS, 0)}-0"


async def expire(r, streams: list[str], days: int, now_ms: int | None = None) -> int:
    """Drop the entries of ``streams`` older than ``days``; returns how many were dropped."""
    bound = minid(days, now_ms)
    pipe = r.pipeline(transaction=False)
    for s in streams:
        pipe.xtrim(s, minid=bound, approximate=False)
    return sum(await pipe.execute())
