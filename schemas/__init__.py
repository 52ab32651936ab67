"""The shared vocabulary of permitbus.

Every service speaks these types and nothing else:

* ``schemas.events``   – canonical events, one per kind of department fact, written by the
                          normalizers on the partition streams ``evt:{pN}``;
* ``schemas.picture``  – a person's picture (state) kept by the decider in ``ppl:{pN}``;
* ``schemas.decision`` – the decision published on the outlets (docs/contract.md, "Outlets");
* ``schemas.ids``, ``schemas.codes``, ``schemas.districts``, ``schemas.dates`` – ID numbers, the
  departments' code lists, Nanjing's districts (append-only: their indexes are stored) and the
  contract's date limits, which ingress, pictures and rules all import from here.

Nothing in ``schemas`` imports from ``services`` (tests/test_vocabulary.py).

Each type carries a schema version (``SCHEMA_VERSION``); the JSON Schema files in
``schemas/json/`` are generated from them (``python -m schemas.export``).
"""

from schemas.decision import Decision
from schemas.events import (
    EVENT_TYPES,
    ContributionRecorded,
    DateTick,
    Event,
    HousingApplied,
    PermitCancelled,
    PermitIssued,
    PermitMoved,
    PermitRenewed,
    SchoolApplied,
    Settled,
)
from schemas.picture import Application, Outcome, Permit, Person

SCHEMA_VERSION = 1

__all__ = [
    "SCHEMA_VERSION",
    "EVENT_TYPES",
    "Event",
    "PermitIssued",
    "PermitRenewed",
    "PermitMoved",
    "PermitCancelled",
    "Settled",
    "ContributionRecorded",
    "SchoolApplied",
    "HousingApplied",
    "DateTick",
    "Person",
    "Permit",
    "Application",
    "Outcome",
    "Decision",
]
