"""``permitbus trace <feed> <record id>``: where one department record is now.

Answered from two small indexes kept where records pass, never by scanning whole streams:

* the normalizer, in the pipeline that applies a batch, writes ``trace{ingress:<feed>}:<day>``
  (one hash per feed and UTC day, with a TTL of ``PERMITBUS_TRACE_DAYS``): record id ->
  ``<ingress id> p<N>`` (its event went to ``evt:{pN}``), ``<ingress id> q <reason>`` (quarantined)
  or ``<ingress id> d <dead letter id>`` (dead-lettered);
* the relay, in the ``pb_relay`` step that appends a decision (a decider's dead letter, a decider's
  quarantine copy), writes ``trace{<target>}:<day>``: record id -> the ids appended (decisions
  carry ``caused_by``).

A lookup reads ``days`` fields of each index (one pipeline), then at most one bounded range of the
stream named by the hit. Record ids are not personal data; the indexes hold no ID number and no
name. A record id with white space or longer than ``RID_MAX`` is not indexed (the index's format
separates ids by spaces and lines).
"""

from __future__ import annotations

import datetime as dt
import re
import time

import msgspec

from schemas.events import decode_event, open_envelope
from services.ingress import limits
from services.runtime import topology as t
from services.runtime.redis import stream_id

RID_MAX = 128
RECORD_FIELD = {"psb:permit": "ywlsh", "hrss:contribution": "LSH", "edu:application": "sqbh",
                "housing:application": "applicationNo"}
LOOKAHEAD = 200  # entries of a quarantine or partition stream read from the record's time on
_json = msgspec.json.Decoder()


def day_of(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y%m%d")


def days_back(now_ms: int, days: int) -> list[str]:
    """The index days to read, newest first (one more than ``days``: a record indexed just before
    midnight UTC of the oldest day still counts)."""
    return [day_of(now_ms - i * 86_400_000) for i in range(days + 1)]


_TRACEABLE = re.compile(r"\S{1,%d}" % RID_MAX)  # one word: index lines are space-separated


def traceable(rid: object) -> str | None:
    """``rid`` if a trace index can hold it (a non-empty word of at most RID_MAX characters).
    On the normalizer's hot path: one C call, not a loop over characters (30 % of its time)."""
    return rid if isinstance(rid, str) and _TRACEABLE.fullmatch(rid) else None


def record_id_of(feed: str, payload: bytes) -> str | None:
    """The record id of a raw payload, when it has one (a quarantined record may not). Runs on bad
    input too: a payload past the size limit, or one msgspec cannot decode (not JSON, nested too
    deep), has none."""
    if len(payload) > limits.MAX_PAYLOAD_BYTES:
        return None
    try:
        rec = _json.decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    return traceable(rec.get(RECORD_FIELD[feed])) if isinstance(rec, dict) else None


def record_ids_of_entry(target: str, fields: dict[bytes, bytes], caused_by: list[str] | None) -> str:
    """The relay's trace line for one outbox entry: the record ids that caused it."""
    rids: list[str | None]
    if caused_by is not None:
        rids = list(caused_by)
    elif target == t.DECIDER_DLQ:
        try:
            rids = [decode_event(fields.get(b"event", b"")).record_id]
        except (msgspec.DecodeError, msgspec.ValidationError):
            rids = []
    elif target.startswith("quarantine:"):
        if fields.get(b"action") == b"release":  # a QZ/BG/ZX record that took effect: not quarantined
            rids = []
        elif b"_r" in fields:  # the decider names the record (its payload waits in held{...})
            rids = [fields[b"_r"].decode("utf-8", "replace")]
        else:  # an entry of an earlier release carries the payload
            rids = [record_id_of(target.split(":", 1)[1], fields.get(b"payload", b""))]
    else:
        rids = []
    return " ".join(r for r in map(traceable, rids) if r)


TRACED_TARGETS = t.RELAY_TARGETS


async def trace(r, feed: str, record_id: str, partitions: int, days: int, now_ms: int | None = None,
                trace_accepted: bool = True) -> dict:
    """``{"feed", "record_id", "state", ...}``; state is one of ``not_seen``, ``quarantined``
    (``reason``, ``detail``, ``entry``), ``dead_lettered`` (``stream``, ``entry``, ``error``),
    ``waiting`` (``partition``, ``stream``, ``decider_at``), ``decided`` (``decisions``:
    {outlet: [ids]}, empty when no entitlement changed; ``dead_letters``: {relay dead-letter
    stream: [ids]} when one of its decisions was parked on its way out)."""
    now_ms = now_ms or int(time.time() * 1000)
    out: dict = {"feed": feed, "record_id": record_id}
    if feed not in t.FEEDS:
        raise ValueError(f"unknown feed {feed!r}; feeds: {', '.join(t.FEEDS)}")
    rid = traceable(record_id)
    if rid is None:
        return out | {"state": "not_seen", "why": "a record id with white space, or this long, is not indexed"}
    back = days_back(now_ms, days)
    pipe = r.pipeline(transaction=False)
    for day in back:
        pipe.hget(t.trace_ingress(feed, day), rid)
    for target in TRACED_TARGETS:
        for day in back:
            pipe.hget(t.trace_target(target, day), rid)
    res = await pipe.execute()
    seen = next((v.decode() for v in res[:len(back)] if v), None)
    found: dict[str, list[str]] = {}
    parked: dict[str, list[str]] = {}  # relay dead letters ('!' ids), by dead-letter stream
    for i, target in enumerate(TRACED_TARGETS):
        ids = {x for v in res[len(back) * (i + 1):len(back) * (i + 2)] if v for x in v.decode().split()}
        if good := sorted((x for x in ids if not x.startswith("!")), key=stream_id):
            found[target] = good
        if bad := sorted((x[1:] for x in ids if x.startswith("!")), key=stream_id):
            parked[t.relay_dlq(target)] = bad
    if seen is None and not found and not parked:
        return out | {"state": "not_seen",
                      "why": f"not read by the normalizer in the last {days} days: still waiting in "
                             f"{t.FEEDS[feed].ingress}, or never sent, or older"
                             + ("" if trace_accepted else "; or accepted without changing a decision (this "
                                "feed's accepted records are not indexed: PERMITBUS_TRACE_ACCEPTED)")}
    ingress_id, _, where = (seen or "").partition(" ")
    out["ingress_id"] = ingress_id or None
    if dead := found.pop(t.DECIDER_DLQ, None):
        rows = await r.xrange(t.DECIDER_DLQ, dead[-1], dead[-1])
        return out | {"state": "dead_lettered", "stream": t.DECIDER_DLQ, "entry": dead[-1],
                      "error": _text(rows[0][1].get(b"error")) if rows else None,
                      "still_parked": bool(rows)}
    quarantined_later = {s: ids for s, ids in found.items() if s.startswith("quarantine:")}
    for s in quarantined_later:
        found.pop(s)
    outlets = {s: ids for s, ids in found.items() if s.startswith("outlet:")}
    if parked and not outlets:
        stream, ids = next(iter(parked.items()))
        rows = await r.xrange(stream, ids[-1], ids[-1])
        return out | {"state": "dead_lettered", "stream": stream, "entry": ids[-1],
                      "error": _text(rows[0][1].get(b"error")) if rows else None, "still_parked": bool(rows)}
    if outlets:
        return out | {"state": "decided", "decisions": outlets} | ({"dead_letters": parked} if parked else {})
    if quarantined_later:
        (s, ids), = list(quarantined_later.items())[:1]
        rows = await r.xrange(s, ids[-1], ids[-1])
        f = rows[0][1] if rows else {}
        return out | {"state": "quarantined", "stream": s, "entry": ids[-1], "by": "decide",
                      "reason": _text(f.get(b"reason")), "detail": _text(f.get(b"detail"))}
    if where.startswith("q "):
        return out | await _quarantined(r, feed, ingress_id, where[2:])
    if where.startswith("d "):
        stream = t.dlq(t.FEEDS[feed].ingress)
        entry = where[2:]
        rows = await r.xrange(stream, entry, entry)
        return out | {"state": "dead_lettered", "stream": stream, "entry": entry,
                      "error": _text(rows[0][1].get(b"error")) if rows else None, "still_parked": bool(rows)}
    p = int(where[1:])
    return out | await _in_partition(r, p, ingress_id, rid)


async def _quarantined(r, feed: str, ingress_id: str, reason: str) -> dict:
    """The quarantine entry of ``ingress_id``: appended after the ingress entry, so it is among
    the first entries from the ingress entry's time on (one bounded range)."""
    stream = t.FEEDS[feed].quarantine
    ms = stream_id(ingress_id)[0]
    for eid, f in await r.xrange(stream, min=f"{ms}-0", count=LOOKAHEAD):
        if f.get(b"source_id", b"").decode() == ingress_id:
            return {"state": "quarantined", "stream": stream, "entry": eid.decode(), "by": "normalize",
                    "reason": _text(f.get(b"reason")), "detail": _text(f.get(b"detail"))}
    return {"state": "quarantined", "stream": stream, "entry": None, "by": "normalize", "reason": reason,
            "detail": "no longer in quarantine (re-driven, or past its retention)"}


async def _in_partition(r, p: int, ingress_id: str, rid: str) -> dict:
    """Appended to ``evt:{pN}``: waiting while the decider's position is before its entry."""
    stream = t.evt(p)
    pos = await r.hget(t.decider_meta(p), "pos")
    at = stream_id(pos) if pos else (0, 0)
    ms = stream_id(ingress_id)[0]
    entry = None
    for eid, f in await r.xrange(stream, min=f"{ms}-0", count=LOOKAHEAD):
        events = open_envelope(f[b"b"]) if b"b" in f else [f.get(b"e", b"")]
        for raw in events:
            try:
                if decode_event(raw).record_id == rid:
                    entry = eid
                    break
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
        if entry is not None:
            break
    base = {"partition": p, "stream": stream, "decider_at": pos.decode() if pos else None}
    if (entry is not None and stream_id(entry) > at) or (entry is None and at[0] < ms):
        return base | {"state": "waiting", "entry": entry.decode() if entry else None}
    return base | {"state": "decided", "decisions": {},
                   "note": "applied by the decider; no decision changed, or not yet relayed"}


def _text(v: bytes | None) -> str | None:
    return v.decode("utf-8", "replace") if v is not None else None


def render(found: dict) -> str:
    s = found["state"]
    head = f"{found['feed']} {found['record_id']}: "
    if s == "not_seen":
        return head + "not seen: " + found["why"]
    if s == "quarantined":
        where = f" ({found['stream']} {found['entry']})" if found.get("entry") else f" ({found['stream']})"
        return head + f"quarantined by {found['by']}: {found['reason']}: {found['detail']}{where}"
    if s == "dead_lettered":
        return head + f"dead-lettered in {found['stream']} {found['entry']}: {found['error']}"
    if s == "waiting":
        return head + (f"waiting in {found['stream']} (partition {found['partition']}), entry "
                       f"{found['entry'] or '?'}; the decider is at {found['decider_at'] or 'the start'}")
    lines = [head + "decided"]
    for outlet, ids in found["decisions"].items():
        lines.append(f"  {outlet}: {' '.join(ids)}")
    if not found["decisions"]:
        lines.append("  " + found.get("note", "no decision"))
    for stream, ids in found.get("dead_letters", {}).items():
        lines.append(f"  parked on its way out: {stream}: {' '.join(ids)}")
    return "\n".join(lines)


async def main(settings, feed: str, record_id: str, as_json: bool, out=print) -> int:
    """``permitbus trace``: 0 when the record was seen, 1 when not (or the feed is unknown), 2
    when Redis cannot be reached."""
    import json

    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from services.ops.cli import client

    r = client(settings)
    try:
        found = await trace(r, feed, record_id, settings.partitions, settings.trace_days,
                            trace_accepted=feed in settings.trace_accepted)
    except ValueError as exc:
        out(f"permitbus trace: {exc}")
        return 1
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        out(f"permitbus trace: Redis cannot be reached ({type(exc).__name__})")
        return 2
    finally:
        await r.aclose()
    out(json.dumps(found, ensure_ascii=False) if as_json else render(found))
    return 1 if found["state"] == "not_seen" else 0
