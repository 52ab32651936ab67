"""``education.compulsory_enrollment`` — clauses （七）（八）, outlet ``outlet:edu``.

（八）: 进一步推动建立以居住证为主要依据的随迁子女入学政策，保障符合政策规定的随迁子女平等接受教育的权利. Decided on the guardian's situation;
the subject is the child. Open until 31 December of the year of ``sqrq``.
"""

from __future__ import annotations

import datetime as dt

from schemas.picture import Application
from services.ingress.fields import birth_date
from services.picture.picture import Picture
from services.rules.verdict import Verdict

ENTITLEMENT = "education.compulsory_enrollment"
BASIS = ("（七）", "（八）")
PRIMARY_MIN_AGE = 6  # on 31 August of the year of sqrq
MAX_AGE = 18  # under 18 on sqrq


def age_on(born: dt.date, day: dt.date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def decide(app: Application, guardian: Picture, day: dt.date) -> Verdict:
    reasons = []
    applied_on = dt.date.fromordinal(app.applied_on)
    permit = guardian.valid_permit(day)
    districts = {d for d in (guardian.settlement_district, permit.district if permit else None) if d}
    if not districts:  # 1. guardian holds a valid permit, or is settled
        reasons.append("GUARDIAN_NO_VALID_PERMIT")
    elif app.district not in districts:  # 2. that permit's district, or the settlement district, is sqqx
        reasons.append("DISTRICT_MISMATCH")
    born = dt.date.fromordinal(app.born) if app.born else birth_date(app.subject_id)
    if app.stage == "XX" and age_on(born, dt.date(applied_on.year, 8, 31)) < PRIMARY_MIN_AGE:
        reasons.append("UNDER_AGE")  # 3.
    if age_on(born, applied_on) >= MAX_AGE:
        reasons.append("OVER_AGE")  # 4.
    return Verdict(district=app.district, reasons=tuple(reasons), basis=BASIS)


def closes_on(app: Application) -> dt.date:
    """The closing day: 31 December of the year of application (docs/policy.md, "The entitlements")."""
    return dt.date(dt.date.fromordinal(app.applied_on).year, 12, 31)


def is_open(app: Application, day: dt.date) -> bool:
    return day <= closes_on(app)
