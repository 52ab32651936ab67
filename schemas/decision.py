"""The decision, as published on the outlets (docs/contract.md, "Outlets")."""

from __future__ import annotations

import datetime as dt

import msgspec

DECISION_SCHEMA_VERSION = 1


class Decision(msgspec.Struct, kw_only=True):
    decision_id: str
    entitlement: str
    subject_id: str
    application_id: str | None
    status: str  # eligible | ineligible | revoked
    district: str | None
    priority: bool
    reasons: list[str]
    basis: list[str]
    as_of: dt.date
    caused_by: list[str]
    version: int
    decided_at: dt.datetime
    schema_version: int = DECISION_SCHEMA_VERSION


decision_encoder = msgspec.json.Encoder()
decision_decoder = msgspec.json.Decoder(Decision)
