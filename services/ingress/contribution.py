"""``ingress:hrss:contribution`` — Human Resources and Social Security Bureau (市人社局)."""

from __future__ import annotations

from typing import Any

from schemas.events import ContributionRecorded
from services.ingress import fields as f

FEED = "hrss:contribution"
EMPLOYEE_TYPES = frozenset({"110", "120", "210", "310", "410", "510"})
RESIDENT_TYPES = frozenset({"170", "390"})
INSURANCE_TYPES = EMPLOYEE_TYPES | RESIDENT_TYPES
ARRIVAL = {"1": True, "0": False}


def normalize(rec: dict[str, Any], source_id: str, raw: bytes) -> ContributionRecorded:
    record_id = f.text(rec, "LSH")
    person = f.id_number(rec, "AAC002")
    f.text(rec, "AAC003")  # required; not carried further
    insurance_type = f.code(rec, "AAE140", INSURANCE_TYPES)
    month = f.month(rec, "AAE002")
    region = f.text(rec, "AAB301")
    if len(region) != 6 or not region.isascii() or not region.isdigit():
        raise f.Reject("BAD_REGION", "field 'AAB301' is not a 6-digit region code")
    paid = ARRIVAL[f.code(rec, "AAE078", ARRIVAL)]
    return ContributionRecorded(
        record_id=record_id,
        source_id=source_id,
        person_id=person,
        insurance_type=insurance_type,
        month=month,
        region=region,
        paid=paid,
    )
