"""``permitbus retick``: decide every person once more, as of today, after a release adds rules.

A release that adds an entitlement (clauses （九） and （十四）: ``outlet:hrss``, ``outlet:civil``)
decides it for a person at that person's next event or change of date. A settled person, or a
permit holder whose permit runs for years, may have neither for months, and stays off the new
rosters until then. This pass appends a ``date.tick`` for every stored picture to its partition
stream, as the scheduler does for the people due (services/scheduler/service.py): decided in
order with the person's other events, by the rules of the running deciders; a tick that changes
no outcome emits nothing, so a second pass, or one over people decided since, costs reading only.

Run it once after the new deciders are up (``permitbus up`` of the release), as the operators'
user (``pb-ops``: HSCAN of the pictures, XADD to the partition streams). It reads the pictures
in chunks (HSCAN, ``CHUNK`` a call) and writes nothing else.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

from schemas.events import DateTick, encode_event, envelopes
from services.runtime import topology as t

CHUNK = 1000


def tick_entry(day: dt.date, pseudonym: bytes) -> bytes:
    """The scheduler's own event for one person (services/scheduler/service.py, ``tick``)."""
    return encode_event(DateTick(record_id=f"tick:{day.isoformat()}", source_id="", person_id="", on=day,
                                 pseudonym=pseudonym))


async def retick(r, partitions: Iterable[int], day: dt.date,
                 progress: Callable[[int, int], None] | None = None) -> int:
    """Append a ``date.tick`` for ``day`` for every picture of ``partitions``. Returns how many."""
    total = 0
    for p in partitions:
        cursor, n = 0, 0
        while True:
            cursor, chunk = await r.hscan(t.people(p), cursor, count=CHUNK)
            if chunk:
                pipe = r.pipeline(transaction=False)
                for envelope in envelopes([tick_entry(day, k) for k in chunk]):
                    pipe.xadd(t.evt(p), {"b": envelope})
                await pipe.execute()
                n += len(chunk)
            if cursor == 0:
                break
        total += n
        if progress:
            progress(p, n)
    return total
