"""Re-driving parked records: exactly once, only where they came from, fixes checked first.

A parked entry (``quarantine:<feed>``, ``dlq:ingress:<feed>``, ``dlq:decider``) goes back to the
stream it entered by, and nowhere else: the target is derived from the parked stream's own name
through the topology (``dlq:decider`` is the one exception: its entries name their partition
stream, accepted only if it is ``evt:{pN}`` of this deployment and the event decodes and belongs
to that partition). A parked entry's fields never choose a target on their own, so a crafted entry
cannot write to an outlet.

Exactly once (``pb_redrive``): the copy is appended together with a mark ``<parked stream>
<parked id>`` in the target's slot; a mark already there makes the append a no-op. On a single
Redis the same call deletes the parked entry (one atomic step); on a Redis Cluster the parked
stream lives in another slot, so the delete follows, and a run killed in between is finished by
running it again (the mark stops a second copy).

An operator's fixed payload is checked with the normalizer's own checks (``understand``) before
anything changes, and refused with the reason when it would be quarantined again; the original
bytes travel with the copy (field ``original``; the normalizer reads only ``payload``), as does
``redrive_of`` (``<parked stream> <parked id>``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import msgspec

from schemas.events import decode_event
from services.ingress.fields import Reject
from services.ingress.service import understand
from services.runtime import topology as t
from services.runtime.identity import partition_of
from services.runtime.redis import fn

MARKS_RETENTION_MS = 90 * 86_400_000  # a mark outlives any re-run of a killed re-drive

QUARANTINES = {f.quarantine: f for f in t.FEEDS.values()}
INGRESS_DLQS = {t.dlq(f.ingress): f for f in t.FEEDS.values()}
RELAY_DLQS = {t.relay_dlq(target): target for target in t.RELAY_TARGETS}


class Refused(Exception):
    """A re-drive that must not happen; the message names the entry and says why."""


@dataclass
class Copy:
    """What one re-drive appends, and where."""

    parked: str
    entry_id: bytes
    target: str
    fields: dict[bytes, bytes] = field(default_factory=dict)

    @property
    def mark(self) -> bytes:
        return f"{self.parked} ".encode() + self.entry_id


def plan(parked: str, entry_id: bytes, fields: dict[bytes, bytes], payload: bytes | None,
         partitions: int) -> Copy:
    """The copy to append for one parked entry, or ``Refused``. Reads nothing, changes nothing."""
    name = f"{parked} {entry_id.decode()}"
    if parked in QUARANTINES or parked in INGRESS_DLQS:
        feed = (QUARANTINES.get(parked) or INGRESS_DLQS[parked])
        original = fields.get(b"payload", b"")
        body = original if payload is None else payload
        _check(feed.name, name, body, fixed=payload is not None, quarantined=parked in QUARANTINES)
        out = {b"payload": body, b"redrive_of": f"{parked} ".encode() + entry_id}
        if payload is not None:
            out[b"original"] = original
        return Copy(parked, entry_id, feed.ingress, out)
    if parked == t.DECIDER_DLQ:
        if payload is not None:
            raise Refused(f"{name}: --payload cannot apply: {t.DECIDER_DLQ} holds canonical events, not a "
                          "department's payload; re-drive it without --payload, or have the department "
                          "send a corrected record")
        return Copy(parked, entry_id, _partition_stream(name, fields, partitions),
                    {b"e": fields.get(b"event", b""), b"redrive_of": f"{parked} ".encode() + entry_id})
    if parked in RELAY_DLQS:
        if payload is not None:
            raise Refused(f"{name}: --payload cannot apply: {parked} holds outbox entries the relay could not "
                          "move, not a department's payload; re-drive it without --payload")
        return Copy(parked, entry_id, _outbox(name, fields, RELAY_DLQS[parked], partitions),
                    _outbox_fields(name, fields))  # as it was: an outlet entry has no other field
    raise Refused(f"{name}: no re-drive rule for {parked}")


def _outbox(name: str, fields: dict[bytes, bytes], target: str, partitions: int) -> str:
    """``dlq:relay{<target>}``: back onto the outbox it was read from, only if that is an outbox of
    this deployment for that very target."""
    claimed = fields.get(b"stream", b"").decode("utf-8", "replace")
    if claimed not in {t.outbox(p, target) for p in range(partitions)}:
        raise Refused(f"{name}: its stream {claimed[:60]!r} is not an outbox for {target} of this deployment")
    return claimed


def _outbox_fields(name: str, fields: dict[bytes, bytes]) -> dict[bytes, bytes]:
    try:
        out = msgspec.msgpack.decode(fields.get(b"fields", b""), type=dict[bytes, bytes])
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise Refused(f"{name}: its outbox entry does not decode ({str(exc)[:80]}); it cannot be re-driven") from None
    if not out:
        raise Refused(f"{name}: it holds no outbox entry")
    return out


def _check(feed: str, name: str, body: bytes, *, fixed: bool, quarantined: bool) -> None:
    """The normalizer's own checks. A fixed payload, or a quarantined one sent back unchanged, that
    would be quarantined again is refused; a dead letter (our fault, not bad input) may go back
    as it is, but not while the normalizer still fails on it."""
    try:
        verdict = understand(feed, "0-0", {b"payload": body})
    except Exception as exc:  # noqa: BLE001 - the bug that parked it is still there
        raise Refused(f"{name}: the normalizer still fails on this record ({exc!r:.200}); "
                      "re-drive it once the fault is fixed") from None
    if isinstance(verdict, Reject) and (fixed or quarantined):
        which = "the fixed payload" if fixed else "its payload, unchanged,"
        raise Refused(f"{name}: {which} would be quarantined again: {verdict.reason}: {verdict.detail}")


def _partition_stream(name: str, fields: dict[bytes, bytes], partitions: int) -> str:
    """``dlq:decider``: the entry's own ``stream`` only if it is a partition stream of this
    deployment and the event belongs there."""
    claimed = fields.get(b"stream", b"").decode("utf-8", "replace")
    ours = {t.evt(p): p for p in range(partitions)}
    if claimed not in ours:
        raise Refused(f"{name}: its stream {claimed[:60]!r} is not a partition stream of this deployment "
                      f"(evt:{{p0}} … evt:{{p{partitions - 1}}})")
    try:
        event = decode_event(fields.get(b"event", b""))
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise Refused(f"{name}: its event does not decode ({str(exc)[:80]}); it cannot be re-driven") from None
    if event.person_id and (home := partition_of(event.person_id, partitions)) != ours[claimed]:
        raise Refused(f"{name}: its event belongs to {t.evt(home)}, not {claimed}, with {partitions} partitions "
                      "(is PERMITBUS_PARTITIONS set as for the deployment?)")
    return claimed


async def apply(r, copy: Copy, *, atomic: bool) -> tuple[bool, bytes]:
    """Append the copy once and delete the parked entry. Returns (new copy?, copy id).

    ``atomic`` (one Redis): both in one call. Otherwise (a cluster): the copy and its mark in the
    target's slot, then the delete; killed in between, running it again only deletes. A quarantine
    keeps its entries' count per reason (``t.counters``): the delete takes one off, once."""
    keys = [copy.target, t.redrive_marks(copy.target), t.redrive_times(copy.target)]
    counted = [t.counters(copy.parked)] if copy.parked in QUARANTINES else []
    if atomic:
        keys += [copy.parked, *counted]
    args = [copy.mark, copy.entry_id, int(time.time() * 1000), MARKS_RETENTION_MS]
    for k, v in copy.fields.items():
        args += [k, v]
    fresh, copy_id = await r.fcall(fn("pb_redrive"), len(keys), *keys, *args)
    if not atomic:
        if counted:
            await r.fcall(fn("pb_unpark"), 2, copy.parked, *counted, copy.entry_id)
        else:
            await r.xdel(copy.parked, copy.entry_id)
    return bool(fresh), copy_id


async def earlier_copy(r, parked: str, entry_id: str, partitions: int) -> tuple[str, bytes] | None:
    """Where a parked entry that is gone was re-driven, if this deployment remembers it."""
    targets = ([QUARANTINES[parked].ingress] if parked in QUARANTINES else
               [INGRESS_DLQS[parked].ingress] if parked in INGRESS_DLQS else
               [t.evt(p) for p in range(partitions)] if parked == t.DECIDER_DLQ else [])
    for target in targets:
        copy_id = await r.hget(t.redrive_marks(target), f"{parked} {entry_id}")
        if copy_id:
            return target, copy_id
    return None
