"""Canonical events: what the normalizers make of the departments' records.

One type per kind of department fact. Every event names the person whose picture it changes
(the permit holder, the contributor, the child's guardian, the housing applicant), the
department's record id (``record_id``: ``ywlsh``/``LSH``/``sqbh``/``applicationNo``) used to
ignore duplicates, and the ingress entry id (``source_id``) it came from.

A normalizer reads the person's ID number into ``person_id`` (and a child's into ``child_id``);
before the event is written anywhere, ``services.ingress.atrest`` replaces it with the person's
keyed pseudonym (``pseudonym``, the key of the picture) and, on every event but a contribution,
the ID sealed under the data key (``sealed_id``; a child's: ``child_sealed``, with the birth date
the rules need in ``child_born``), so that no full ID number rests on a partition stream (docs/contract.md, "Personal data at rest").
Events written by an earlier release carry ``person_id`` in clear; the decider protects them the
same way when it reads them.

Names, incomes beyond what a rule needs, and other personal data the rules do not use are left
behind at the normalizer (PIPL Art. 6, minimum scope). No event carries the department's payload:
the payload of a ``QZ``/``BG``/``ZX`` record, which the decider may find names a permit the person
does not hold (``UNKNOWN_PERMIT``), waits in ``held{quarantine:psb:permit}`` instead
(``services/runtime/topology.py``, ``held``). ``raw`` is only read: events of an older release
carry the payload there, and the decider still quarantines it (README, "Rolling upgrades").

On the partition streams the events travel as msgpack (``encode_event``/``decode_event``),
tagged by ``kind``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import msgspec

EVENT_SCHEMA_VERSION = 1


class _Event(msgspec.Struct, tag_field="kind", kw_only=True):
    v: int = EVENT_SCHEMA_VERSION
    record_id: str
    source_id: str
    person_id: str = ""  # in clear only between the department's record and ``atrest.protect``
    pseudonym: bytes = b""  # keyed pseudonym of the person (the key of the picture)
    sealed_id: bytes = b""  # the person's ID, sealed (services.runtime.sealing); not on contributions


class PermitIssued(_Event, tag="permit.issued", kw_only=True):
    """``QF`` 签发: a new permit, replacing any earlier one."""

    permit_no: str
    district: str
    valid_from: dt.date
    valid_until: dt.date
    sector: str | None = None  # "HW" sanitation, "GJ" public transport, other codes kept as given
    at: dt.datetime


class PermitRenewed(_Event, tag="permit.renewed", kw_only=True):
    """``QZ`` 签注: new validity for the permit with this number (and a district if given)."""

    permit_no: str
    valid_from: dt.date
    valid_until: dt.date
    district: str | None = None
    sector: str | None = None
    at: dt.datetime
    raw: bytes = b""  # written by releases before held payloads only; read for a rolling upgrade


class PermitMoved(_Event, tag="permit.moved", kw_only=True):
    """``BG`` 变更: the permit with this number moves to another district."""

    permit_no: str
    district: str
    at: dt.datetime
    raw: bytes = b""  # written by releases before held payloads only; read for a rolling upgrade


class PermitCancelled(_Event, tag="permit.cancelled", kw_only=True):
    """``ZX`` 注销: the permit with this number is cancelled."""

    permit_no: str
    at: dt.datetime
    raw: bytes = b""  # written by releases before held payloads only; read for a rolling upgrade


class Settled(_Event, tag="person.settled", kw_only=True):
    """``LH`` 落户: now a registered Nanjing resident of ``district`` since ``on``."""

    district: str
    on: dt.date
    at: dt.datetime


class ContributionRecorded(_Event, tag="contribution.recorded", kw_only=True):
    """One social-insurance record: person, scheme type, month, paying region, paid or not."""

    insurance_type: str  # AAE140
    month: int  # YYYYMM
    region: str  # AAB301, 6 digits
    paid: bool  # AAE078 == "1"


class SchoolApplied(_Event, tag="school.applied", kw_only=True):
    """A compulsory-education place requested for a child (随迁子女); person_id is the guardian."""

    application_id: str
    child_id: str = ""  # in clear only until ``atrest.protect``
    child_sealed: bytes = b""
    child_born: dt.date | None = None  # from the child's ID: the age the rule checks
    stage: str  # "XX" primary, "CZ" junior secondary
    district: str
    applied_on: dt.date


class HousingApplied(_Event, tag="housing.applied", kw_only=True):
    """A housing-security application; person_id is the applicant."""

    application_id: str
    household_size: int
    monthly_income: float
    owns_home: bool
    district: str
    occupation: str | None = None
    applied_on: dt.date


class DateTick(_Event, tag="date.tick", kw_only=True):
    """Internal (scheduler): the date reached a point where this person's outcomes may change.

    Names the person by pseudonym (the key of the picture) only."""

    on: dt.date


Event = (
    PermitIssued
    | PermitRenewed
    | PermitMoved
    | PermitCancelled
    | Settled
    | ContributionRecorded
    | SchoolApplied
    | HousingApplied
    | DateTick
)

EVENT_TYPES: tuple[type, ...] = (
    PermitIssued,
    PermitRenewed,
    PermitMoved,
    PermitCancelled,
    Settled,
    ContributionRecorded,
    SchoolApplied,
    HousingApplied,
    DateTick,
)

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Event)


def encode_event(event: Event) -> bytes:
    return _encoder.encode(event)


def decode_event(data: bytes) -> Event:
    return _decoder.decode(data)


# -- envelopes: many events in one partition-stream entry --------------------------------------
# A partition stream entry carries either one event (field ``e``) or an envelope of events in
# order (field ``b``): a msgpack array whose items are encoded events. One stream entry per
# partition per normalizer batch instead of one per record: Redis does one XADD, the decider
# parses one entry.
_raw_list = msgspec.msgpack.Decoder(list[msgspec.Raw])
ENVELOPE_MAX = 500  # events per envelope (writers split longer runs over several entries) ...
ENVELOPE_MAX_BYTES = 1 << 20  # ... and past this many bytes (an event larger than that goes alone)


def encode_envelope(events: list[bytes]) -> bytes:
    """Encoded events -> one msgpack array of them (the items are not encoded again)."""
    n = len(events)
    if n < 16:
        head = bytes((0x90 | n,))
    elif n < 1 << 16:
        head = b"\xdc" + n.to_bytes(2, "big")
    else:
        head = b"\xdd" + n.to_bytes(4, "big")
    return head + b"".join(events)


def envelopes(events: list[bytes], max_events: int = ENVELOPE_MAX,
              max_bytes: int = ENVELOPE_MAX_BYTES) -> Iterator[bytes]:
    """Encoded events, in order -> envelopes of at most ``max_events`` events and, unless one
    event alone is larger, ``max_bytes`` bytes: no stream entry nears Redis's limits (512 MB an
    argument, 1 GB a client's query buffer) whatever the events, and the decider reads a
    bounded amount per entry."""
    head = 5  # the array's header, at most
    if head + sum(map(len, events)) <= max_bytes:  # the usual case (a batch's records are small): count only
        for start in range(0, len(events), max_events):
            yield encode_envelope(events[start:start + max_events])
        return
    start, size = 0, head
    for i, event in enumerate(events):
        if i > start and (i - start >= max_events or size + len(event) > max_bytes):
            yield encode_envelope(events[start:i])
            start, size = i, head
        size += len(event)
    if start < len(events):
        yield encode_envelope(events[start:])


def open_envelope(data: bytes) -> list[bytes]:
    """An envelope -> its encoded events, each to be decoded on its own (a bad one stays alone)."""
    return [bytes(raw) for raw in _raw_list.decode(data)]


_event_list = msgspec.msgpack.Decoder(list[Event])


def decode_envelope(data: bytes) -> list[Event]:
    """An envelope's events decoded in one call (the usual case: the readers fall back to
    ``open_envelope`` and decode each event alone when this raises, so a bad one stays alone)."""
    return _event_list.decode(data)
