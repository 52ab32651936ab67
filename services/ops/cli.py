"""``permitbus quarantine|dlq list|show|redrive``.

Quarantine (bad input) lives in ``quarantine:<feed>``; dead letters (records whose processing
kept failing: a bug, not bad input) in ``dlq:ingress:<feed>`` and ``dlq:decider``. Re-driving puts
the record back where it entered (the ingress stream, or the partition stream for the decider's),
optionally with a payload fixed by an operator, and deletes the parked copy, exactly once and only
where it came from (``services/ops/redrive.py``). Identity numbers are masked on screen. Exit
status: 0 done, 1 refused or not found.
"""

from __future__ import annotations

import re

from services.ops.redrive import Refused, apply, earlier_copy, plan
from services.runtime import topology as t
from schemas.ids import mask
from services.runtime.redis import client as runtime_client
from services.runtime.redis import is_cluster, load_functions

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
    all_dlq = list(t.dead_letter_streams())
    if not name:
        return all_dlq
    full = name if name.startswith("dlq:") else t.dlq(name)
    if full not in all_dlq:
        raise SystemExit(f"unknown dead-letter stream {name!r}; streams: {', '.join(all_dlq)}")
    return [full]


async def list_entries(r, kind: str, name: str | None, count: int) -> list[tuple[str, bytes, dict]]:
    out = []
    for s in streams(kind, name):
        for eid, fields in await r.xrange(s, count=count):
            out.append((s, eid, fields))
    return out


async def parked(r, stream: str, page: int = 500):
    """The entries of a parked stream, a page at a time (a stream may hold many)."""
    start = "-"
    while rows := await r.xrange(stream, min=start, count=page):
        for row in rows:
            yield row
        start = "(" + rows[-1][0].decode()


async def redrive(r, kind: str, name: str, entry_id: str | None, payload: bytes | None, partitions: int,
                  out=print) -> int:
    """Put parked entries back where they entered, each exactly once. Returns the exit status:
    0 when every entry named was re-driven, 1 when one was refused or not found (the others are
    re-driven; a refused entry stays parked, unchanged)."""
    (stream,) = streams(kind, name)
    if payload is not None and not entry_id:
        out(f"refused: --payload replaces the payload of one entry: name its id (permitbus {kind} list {name})")
        return 1
    if entry_id and not await r.xrange(stream, entry_id, entry_id):
        earlier = await earlier_copy(r, stream, entry_id, partitions)
        out(f"no entry {entry_id} in {stream}" + (f" (re-driven earlier: {earlier[0]} {earlier[1].decode()})"
                                                  if earlier else ""))
        return 1
    await load_functions(r)  # this release's pb_redrive, whichever release the workers run
    atomic = not is_cluster(r)  # a cluster keeps the parked and target streams in two slots
    entries = parked(r, stream) if not entry_id else _one(r, stream, entry_id)
    done = refused = 0
    async for eid, fields in entries:
        try:
            copy = plan(stream, eid, fields, payload, partitions)  # checked before anything changes
        except Refused as exc:
            out(f"refused: {masked(str(exc).encode())}")
            refused += 1
            continue
        fresh, copy_id = await apply(r, copy, atomic=atomic)
        done += 1
        out(f"{stream} {eid.decode()} -> {copy.target} {copy_id.decode()}"
            + ("" if fresh else " (copied by an earlier run that was interrupted; not copied again)"))
    out(f"re-driven: {done}" + (f", refused: {refused}" if refused else ""))
    return 1 if refused else 0


async def _one(r, stream: str, entry_id: str):
    for row in await r.xrange(stream, entry_id, entry_id):
        yield row


def client(settings):
    """The deployment's client (services/runtime/redis.py): a Redis Cluster's when
    ``PERMITBUS_REDIS_CLUSTER_URL`` is set. Re-drives take two steps on a cluster."""
    return runtime_client(settings)


async def operate(settings, args) -> int:
    r = client(settings)
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
            return await redrive(r, args.cmd, args.stream, args.id, payload, settings.partitions)
        return 0
    finally:
        await r.aclose()
