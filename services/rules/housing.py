"""``housing.security`` — clause （十三）, outlet ``outlet:housing``.

（十三）: 确保符合条件的农业转移落户人口与我市城镇居民同等享有政府提供基本住房保障的权利 … 重点保障环卫、公交等公共服务行业农业转移落户人口住房需求.
The income ceiling and the priority occupations and sectors are dated parameters
(``params/housing.*.toml``) in force on ``appliedOn``, the date of application.
Each condition goes through ``why.check`` (``services/rules/why.py``), which explains it.
"""

from __future__ import annotations

import datetime as dt

from schemas.picture import Application
from services.picture.picture import Picture
from services.rules import params
from services.rules.verdict import Verdict
from services.rules.versions import Formulas
from services.rules.why import SILENT, Condition

ENTITLEMENT = "housing.security"
BASIS = ("（十三）",)
INCOME_CEILING = "housing.per_capita_income_max"
CEILING = params.declare(INCOME_CEILING, params.Money(), on="appliedOn")
# docs/contract.md: `occupation` sanitation, public_transport, anything else = other; `hylb` HW, GJ, …
PRIORITY_OCCUPATIONS = params.declare("housing.priority_occupations", params.Codes("occupations (occupation)"),
                                      on="appliedOn")
PRIORITY_SECTORS = params.declare("housing.priority_sectors", params.Codes("permit sectors (hylb)"), on="appliedOn")
PARAMETERS = (CEILING, PRIORITY_OCCUPATIONS, PRIORITY_SECTORS)

SETTLED = Condition("settled", "NOT_SETTLED", "the applicant is settled (落户) in Nanjing", ("settlement",))
NO_HOME = Condition("owns_no_home", "OWNS_HOME", "the household owns no housing (ownsHome is false)", ("owns_home",))
INCOME = Condition("income_within_ceiling", "INCOME_ABOVE_LIMIT",
                   "monthlyIncome / householdSize is at most housing.per_capita_income_max in force on appliedOn",
                   ("monthly_income", "household_size", "ceiling"))
PRIORITY = Condition("priority", None,
                     "priority when the occupation is one of housing.priority_occupations (sanitation, "
                     "public_transport), or the applicant's latest permit sector one of housing.priority_sectors "
                     "(HW 环卫, GJ 公交)",
                     ("occupation", "permit_sector", "occupations", "sectors"))
CONDITIONS = (SETTLED, NO_HOME, INCOME, PRIORITY)


def formula(app: Application, applicant: Picture, day: dt.date, why=SILENT) -> Verdict:
    reasons = []
    if not why.check(SETTLED, applicant.settled, applicant.person):  # 1.
        reasons.append("NOT_SETTLED")
    if not why.check(NO_HOME, not app.owns_home, app.owns_home):  # 2.
        reasons.append("OWNS_HOME")
    applied_on = dt.date.fromordinal(app.applied_on)
    ceiling = CEILING.on(applied_on)
    # 3. income / size ≤ ceiling
    if not why.check(INCOME, app.monthly_income <= ceiling.value * app.household_size,
                     app.monthly_income, app.household_size, ceiling):
        reasons.append("INCOME_ABOVE_LIMIT")
    sector = applicant.latest_sector()
    occupations, sectors = PRIORITY_OCCUPATIONS.on(applied_on), PRIORITY_SECTORS.on(applied_on)
    priority = why.check(PRIORITY, app.occupation in occupations.value or sector in sectors.value,
                         app.occupation, sector, occupations, sectors)
    return Verdict(district=app.district, reasons=tuple(reasons), priority=priority, basis=BASIS)


FORMULAS = Formulas(ENTITLEMENT, formula, CONDITIONS, __name__,
                    day_of=lambda app, applicant, day, *_: dt.date.fromordinal(app.applied_on))
# the formula in force on the date of application (``services/rules/versions.py``): while there is one, that formula
decide = formula


def closes_on(app: Application) -> dt.date:
    """The closing day: 31 December of the year of application (docs/policy.md, "The entitlements")."""
    return dt.date(dt.date.fromordinal(app.applied_on).year, 12, 31)


def is_open(app: Application, day: dt.date) -> bool:
    return day <= closes_on(app)


def applications_from() -> dt.date:
    """The first date of application the parameters have values for: an application dated before
    it is refused at ingress (``BAD_DATE``, services/ingress/housing.py), never decided."""
    return params.first_day(*PARAMETERS)
