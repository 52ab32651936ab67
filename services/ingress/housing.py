"""``ingress:housing:application`` — Housing Security and Property Bureau (市住房保障和房产局)."""

from __future__ import annotations

from typing import Any

from schemas.dates import HOUSING_FIRST_DAY
from schemas.events import HousingApplied
from services.ingress import fields as f

FEED = "housing:application"


MAX_HOUSEHOLD = 100


def normalize(rec: dict[str, Any], source_id: str, raw: bytes) -> HousingApplied:
    application_id = f.text(rec, "applicationNo")
    applied_on = f.date(rec, "appliedOn", "YYYY-MM-DD")
    if applied_on < HOUSING_FIRST_DAY:
        raise f.Reject("BAD_DATE", f"'appliedOn' is before {HOUSING_FIRST_DAY.isoformat()}, when the income ceiling "
                                   "and the other figures of housing security start")
    return HousingApplied(
        record_id=application_id,
        source_id=source_id,
        person_id=f.born_by(f.id_number(rec, "applicantId"), "applicantId", applied_on),
        application_id=application_id,
        household_size=f.positive_int(rec, "householdSize", MAX_HOUSEHOLD),
        monthly_income=f.amount(rec, "monthlyIncome"),
        owns_home=f.boolean(rec, "ownsHome"),
        district=f.district(rec, "districtCode"),
        occupation=f.optional_text(rec, "occupation"),
        applied_on=applied_on,
    )
