"""An outlet entry -> the row it makes in ``permitbus_decision``, or the reason it makes none.

Pure (no I/O), so what the follower stores is testable without Redis or PostgreSQL.

docs/contract.md, "Departments' side": one row per (``entitlement``, ``subject_id``,
``application_id``, ``''`` for a roster entitlement) holding the latest decision. The latest is the
highest ``version`` (it increases by one with each decision for the same key, docs/contract.md
"Outlets"), so applying is a guarded upsert (``store.apply``): whatever order or however often a
decision arrives (a snapshot overlapping the outlet, a batch read again after a kill), the row
ends at the highest version seen.

What is checked is what the key and the columns need, so that PostgreSQL never refuses a batch
for one entry's sake: the JSON itself (msgspec refuses invalid UTF-8 and lone surrogates), the
types, an ID number's shape, an entitlement of this outlet, a timestamp with its offset. What
PostgreSQL may still refuse (``\\u0000`` in a string: jsonb cannot hold it) is found by
``store.apply`` falling back to one entry at a time. The other fields (``reasons``, ``basis``,
``as_of``, ``caused_by``) are kept in ``payload`` as received.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec

from services.runtime.logs import masked

ID = re.compile(r"[0-9]{17}[0-9X]")
DISTRICT = re.compile(r"[0-9]{6}")
MAX_VERSION = 2**63 - 1  # bigint


class _Wire(msgspec.Struct):
    """The fields of a decision (schemas/decision.py) that make the row; the rest stay in payload."""

    decision_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    entitlement: str
    subject_id: str
    application_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None
    status: Literal["eligible", "ineligible", "revoked"]
    district: str | None
    priority: bool
    version: Annotated[int, msgspec.Meta(ge=1, le=MAX_VERSION)]
    decided_at: Annotated[dt.datetime, msgspec.Meta(tz=True)]


_decode = msgspec.json.Decoder(_Wire).decode
_convert = msgspec.convert


@dataclass(frozen=True, slots=True)
class Row:
    """One row of ``permitbus_decision`` (its columns, in the table's order)."""

    entitlement: str
    subject_id: str
    application_id: str  # '' for a roster entitlement
    status: str
    district: str | None
    priority: bool
    version: int
    decision_id: str
    decided_at: dt.datetime
    payload: str  # the decision as received (JSON text)
    source: str = ""  # where it was read: the outlet entry id, or the roster (not a column)

    @property
    def key(self) -> tuple[str, str, str]:
        return self.entitlement, self.subject_id, self.application_id

    def columns(self) -> tuple:
        return (self.entitlement, self.subject_id, self.application_id, self.status, self.district, self.priority,
                self.version, self.decision_id, self.decided_at, self.payload)


@dataclass(frozen=True, slots=True)
class Rejected:
    """An entry that makes no row: kept in ``permitbus_follow_rejected`` with the reason."""

    entry_id: str
    reason: str  # a sentence naming the field, never its value (it may be an ID number)
    payload: bytes


def _row(w: _Wire, payload: str, entitlements: frozenset[str], source: str) -> Row | str:
    if w.entitlement not in entitlements:
        return "entitlement: not one of this outlet's"
    if not ID.fullmatch(w.subject_id):
        return "subject_id: not 17 digits and a check character (X upper-case)"
    if w.district is not None and not DISTRICT.fullmatch(w.district):
        return "district: not a 6-digit district code"
    if "\x00" in w.decision_id or (w.application_id and "\x00" in w.application_id):
        return "decision_id or application_id: holds a NUL character"
    return Row(w.entitlement, w.subject_id, w.application_id or "", w.status, w.district, w.priority, w.version,
               w.decision_id, w.decided_at, payload, source)


def from_entry(entry_id: str, fields: dict[bytes, bytes], entitlements: frozenset[str]) -> Row | Rejected:
    """An outlet entry (field ``payload``, docs/contract.md "Outlets") -> its row, or why it has none."""
    raw = fields.get(b"payload")
    if raw is None:
        return Rejected(entry_id, "no payload field", msgspec.msgpack.encode(
            {k.decode("utf-8", "replace"): v for k, v in fields.items()}))
    try:
        w = _decode(raw)
        out = _row(w, raw.decode(), entitlements, entry_id)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        out = _reason(exc)
    return out if isinstance(out, Row) else Rejected(entry_id, out, raw)


def from_roster(entry: dict, entitlements: frozenset[str], source: str) -> Row | str:
    """A roster entry as the read API returns it (the decision, decoded) -> its row, or why not."""
    try:
        w = _convert(entry, _Wire)
    except msgspec.ValidationError as exc:
        return _reason(exc)
    return _row(w, msgspec.json.encode(entry).decode(), entitlements, source)


def _reason(exc: Exception) -> str:
    """msgspec names the field (``at `$.version```) and the rule."""
    if isinstance(exc, UnicodeDecodeError):
        return "payload: not UTF-8"
    if not isinstance(exc, msgspec.ValidationError):
        return "payload: not a JSON object"
    return masked("payload: " + str(exc))[:300]  # an enum's message quotes the value: no ID in clear
