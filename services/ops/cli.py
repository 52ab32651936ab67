"""``permitbus quarantine|dlq list|show|redrive``.

Quarantine (bad input) lives in ``quarantine:<feed>``; dead letters (records whose processing
kept failing: a bug, not bad input) in ``dlq:ingress:<feed>`` and ``dlq:decider``. Re-driving puts
the record back where it entered (the ingress stream, or the partition stream for the decider's),
optionally with a payload fixed by an operator, and deletes the parked copy. Identity numbers are
masked on screen unless ``--reveal`` is given.
"""

from __future__ import annotations

import re

import msgspec

from services.runtime import topology as t
from services.runtime.identity import mask
from services.runtime.redis import connect

_ID = re.compile(rb"\d{17}[\dXx]")


def masked(data: bytes) -> str:
    return _ID.sub(lambda m: mask(m.group().decode()).encode(), data).decode("utf-8", "backslashreplace")


def streams(kind: str, name: str | None) -> list[str]:
    if kind == "quarantine":
        feeds = [name] if name else list(t.FEEDS)
        bad = [f for f in feeds if f not in t.FEEDS]
        if bad:
            raise SystemExit(f"unknown feed {bad[0]!r}; feeds: {', '.join(t.FEEDS)}")
        return [t.FEEDS[f].quarantine for f in feeds]
    all_dlq = [t.dlq(f.ingress) for f in t.FEEDS.values()] + [t.DECIDER_DLQ, *t.RELAY_DLQS]
    if not name:
        return all_dlq
    full = name if name.startswith("dlq:") else f"dlq:{name}"
    if full not in all_dlq:
        raise SystemExit(f"unknown dead-letter stream {name!r}; streams: {', '.join(all_dlq)}")
    return [full]


async def list_entries(r, kind: str, name: str | None, count: int) -> list[tuple[str, bytes, dict]]:
    out = []
    for s in streams(kind, name):
        for eid, fields in await r.xrange(s, count=count):
            out.append((s, eid, fields))
    return out


async def redrive(r, kind: str, name: str, entry_id: str | None, payload: bytes | None) -> int:
    """Put parked entries back where they entered. Returns how many were re-driven."""
    (stream,) = streams(kind, name)
    entries = await r.xrange(stream, entry_id, entry_id) if entry_id else await r.xrange(stream)
    if entry_id and not entries:
        raise SystemExit(f"no entry {entry_id} in {stream}")
    if payload is not None and len(entries) != 1:
        raise SystemExit("--payload replaces the payload of one entry: name its id")
    n = 0
    for eid, fields in entries:
        if stream == t.DECIDER_DLQ:
            await r.xadd(fields[b"stream"].decode(), {"e": fields[b"event"]})
        elif stream in t.RELAY_DLQS:  # back onto the outbox it was read from, as it was
            await r.xadd(fields[b"stream"].decode(), msgspec.msgpack.decode(fields[b"fields"]))
        else:
            target = fields.get(b"stream", b"").decode() or f"ingress:{stream.split(':', 1)[1]}"
            await r.xadd(target, {"payload": payload if payload is not None else fields[b"payload"]})
        await r.xdel(stream, eid)
        n += 1
    return n


async def operate(settings, args) -> int:
    r = connect(settings.redis_url)
    try:
        if args.action == "list":
            rows = await list_entries(r, args.cmd, args.stream, args.count)
            for s, eid, f in rows:
                why = (f.get(b"reason") or f.get(b"error") or b"").decode("utf-8", "replace")
                print(f"{s}  {eid.decode()}  source={f.get(b'source_id', b'').decode()}  {why}  "
                      f"{(f.get(b'detail') or b'').decode('utf-8', 'replace')}")
            print(f"{len(rows)} entries")
        elif args.action == "show":
            (stream,) = streams(args.cmd, args.stream)
            rows = await r.xrange(stream, args.id, args.id)
            if not rows:
                print(f"no entry {args.id} in {stream}")
                return 1
            for k, v in rows[0][1].items():
                print(f"{k.decode()}: {masked(v)}")
        elif args.action == "redrive":
            payload = args.payload.encode() if args.payload is not None else None
            print(f"re-driven: {await redrive(r, args.cmd, args.stream, args.id, payload)}")
        return 0
    finally:
        await r.aclose()
