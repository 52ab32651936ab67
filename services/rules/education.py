"""``education.compulsory_enrollment`` — clauses （七）（八）, outlet ``outlet:edu``.

（八）: 进一步推动建立以居住证为主要依据的随迁子女入学政策，保障符合政策规定的随迁子女平等接受教育的权利. Decided on the guardian's situation;
the subject is the child. Open until 31 December of the year of ``sqrq``. The ages are dated
parameters (``params/education.*.toml``) in force on ``sqrq``, the date of application.
Each condition goes through ``why.check`` (``services/rules/why.py``), which explains it.
"""

from __future__ import annotations

import datetime as dt

from schemas.picture import Application
from schemas.ids import birth_date
from services.picture.picture import Picture
from services.rules import params
from services.rules.verdict import Verdict
from services.rules.versions import Formulas
from services.rules.why import SILENT, Condition

ENTITLEMENT = "education.compulsory_enrollment"
BASIS = ("（七）", "（八）")
PRIMARY_MIN_AGE = params.declare("education.primary_min_age", params.Whole(0, 18), on="sqrq")
MAX_AGE = params.declare("education.max_age", params.Whole(1, 30), on="sqrq")
PARAMETERS = (PRIMARY_MIN_AGE, MAX_AGE)

GUARDIAN = Condition("guardian_permit_or_settled", "GUARDIAN_NO_VALID_PERMIT",
                     "the guardian (jhrsfzh) holds a valid residence permit on D, or is settled (落户)",
                     ("settlement", "permit", "on"))
DISTRICT = Condition("district_matches", "DISTRICT_MISMATCH",
                     "that permit's district, or the settlement district, is the district applied in (sqqx); "
                     "checked when the guardian has either",
                     ("district_applied", "settlement_district", "permit_district"))
PRIMARY_AGE = Condition("primary_min_age", "UNDER_AGE",
                        "for primary school (XX): the child is at least education.primary_min_age (6) on 31 August "
                        "of the year of sqrq",
                        ("stage", "born", "age_on", "age", "minimum"))
UNDER_MAX = Condition("under_max_age", "OVER_AGE", "the child is under education.max_age (18) on sqrq",
                      ("born", "applied_on", "age", "maximum"))
CONDITIONS = (GUARDIAN, DISTRICT, PRIMARY_AGE, UNDER_MAX)


def age_on(born: dt.date, day: dt.date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def formula(app: Application, guardian: Picture, day: dt.date, why=SILENT) -> Verdict:
    reasons = []
    applied_on = dt.date.fromordinal(app.applied_on)
    permit = guardian.valid_permit(day)
    settled_in = guardian.settlement_district
    permit_in = permit.district if permit else None
    # 1. the guardian holds a valid permit, or is settled
    if not why.check(GUARDIAN, settled_in is not None or permit_in is not None,
                     guardian.person, guardian.person.permit, day):
        reasons.append("GUARDIAN_NO_VALID_PERMIT")
    # 2. that permit's district, or the settlement district, is sqqx
    elif not why.check(DISTRICT, app.district in (settled_in, permit_in), app.district, settled_in, permit_in):
        reasons.append("DISTRICT_MISMATCH")
    born = dt.date.fromordinal(app.born) if app.born else birth_date(app.subject_id)
    if app.stage == "XX":  # 3.
        aug31 = dt.date(applied_on.year, 8, 31)
        age, least = age_on(born, aug31), PRIMARY_MIN_AGE.on(applied_on)
        if not why.check(PRIMARY_AGE, age >= least.value, app.stage, born, aug31, age, least):
            reasons.append("UNDER_AGE")
    age, most = age_on(born, applied_on), MAX_AGE.on(applied_on)
    if not why.check(UNDER_MAX, age < most.value, born, applied_on, age, most):  # 4.
        reasons.append("OVER_AGE")
    return Verdict(district=app.district, reasons=tuple(reasons), basis=BASIS)


FORMULAS = Formulas(ENTITLEMENT, formula, CONDITIONS, __name__,
                    day_of=lambda app, guardian, day, *_: dt.date.fromordinal(app.applied_on))
# the formula in force on the date of application (``services/rules/versions.py``): while there is one, that formula
decide = formula


def closes_on(app: Application) -> dt.date:
    """The closing day: 31 December of the year of application (docs/policy.md, "The entitlements")."""
    return dt.date(dt.date.fromordinal(app.applied_on).year, 12, 31)


def is_open(app: Application, day: dt.date) -> bool:
    return day <= closes_on(app)


def applications_from() -> dt.date:
    """The first date of application the parameters have values for: an application dated before
    it is refused at ingress (``BAD_DATE``, services/ingress/school.py), never decided."""
    return params.first_day(*PARAMETERS)
