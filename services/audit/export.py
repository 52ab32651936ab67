"""``permitbus audit export --from YYYY-MM-DD --to YYYY-MM-DD``: the disclosures of a period, as
JSON lines for an auditor.

One line per audit entry delivered in the window (Beijing days, both included), outlet by outlet,
in delivery order (the partitions' chains merged by entry id):

    {"outlet", "department", "stream", "id", "delivered_at", "subject" (the pseudonym, hex),
     "prev", "hash" (hex: each line's ``prev`` is the ``hash`` of the line before it in its
     stream, when both are in the window), "data_key_id", "decision" (as the outlet received it)}

No full ID number leaves: the decision's subject is masked (``320111********123X``), as is any
ID-shaped text elsewhere in the line; decisions hold no names. Reading the decisions needs the data
key (they rest sealed). The window is read with ``XRANGE`` by id (ids are delivery times), a page
at a time per partition, so a long period costs memory of a page per partition.
"""

from __future__ import annotations

import datetime as dt
import heapq
import json
from collections.abc import AsyncIterator, Callable

from services.audit import chain
from services.ops.cli import masked
from services.runtime import topology as t
from services.runtime.clock import SHANGHAI
from schemas.ids import mask
from services.runtime.redis import stream_id
from services.runtime.sealing import DataKeys, SealError

PAGE = 1000
DEPARTMENT = {o.stream: o.department for o in t.OUTLETS.values()}


def window(start: dt.date, end: dt.date) -> tuple[int, int]:
    """Beijing days ``start``..``end`` (both included) -> [ms, ms) bounds."""
    lo = dt.datetime.combine(start, dt.time(), SHANGHAI)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), SHANGHAI)
    return int(lo.timestamp() * 1000), int(hi.timestamp() * 1000)


async def _merged(r, outlet: str, partitions: int, lo: int, hi: int) -> AsyncIterator[tuple[bytes, int, dict]]:
    """The outlet's audit entries of the window, all partitions, by id."""
    parts = chain.partitions(await r.hgetall(t.audit_head(outlet)), partitions)
    its = {p: chain.pages(r, t.audit(outlet, p), f"{lo}-0", f"({hi}-0", PAGE).__aiter__() for p in parts}
    heap: list = []

    async def push(p: int) -> None:
        try:
            eid, fields = await its[p].__anext__()
        except StopAsyncIteration:
            return
        heapq.heappush(heap, (stream_id(eid), p, eid, fields))

    for p in its:
        await push(p)
    while heap:
        _, p, eid, fields = heapq.heappop(heap)
        yield eid, p, fields
        await push(p)


def line(outlet: str, p: int, eid: bytes, fields: dict, keys: DataKeys) -> str:
    """One disclosure as a JSON line; an entry whose decision does not open (altered, or sealed
    under a key this deployment lacks) is written with ``decision`` null and why."""
    try:
        decision = json.loads(keys.open_audit(fields.get(b"dec", b"")))
        decision["subject_id"] = mask(decision.get("subject_id"))
        why = None
    except SealError as exc:
        decision, why = None, str(exc)
    ms = stream_id(eid)[0]
    row = {"outlet": outlet, "department": DEPARTMENT.get(outlet), "stream": t.audit(outlet, p), "id": eid.decode(),
           "delivered_at": dt.datetime.fromtimestamp(ms / 1000, SHANGHAI).isoformat(timespec="milliseconds"),
           "subject": fields.get(b"who", b"").hex(), "prev": fields.get(b"prev", b"").hex(),
           "hash": chain.entry_hash(fields.items()).hex(), "data_key_id": (fields.get(b"dec") or b"\0")[0],
           "decision": decision}
    if why:
        row["unreadable"] = why
    return masked(json.dumps(row, ensure_ascii=False).encode())


async def export(r, keys: DataKeys, partitions: int, start: dt.date, end: dt.date,
                 out: Callable[[str], None], outlets: list[str] | None = None) -> int:
    """Write the window's lines with ``out``; returns how many."""
    lo, hi = window(start, end)
    n = 0
    for outlet in outlets or t.AUDITED:
        async for eid, p, fields in _merged(r, outlet, partitions, lo, hi):
            out(line(outlet, p, eid, fields, keys))
            n += 1
    return n
