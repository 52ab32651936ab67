"""``housing.security`` — clause （十三）, outlet ``outlet:housing``.

（十三）: 确保符合条件的农业转移落户人口与我市城镇居民同等享有政府提供基本住房保障的权利 … 重点保障环卫、公交等公共服务行业农业转移落户人口住房需求.
Income ceiling: the dated parameter ``housing.per_capita_income_max`` in force on ``appliedOn``.
Each condition goes through ``why.check`` (``services/rules/why.py``), which explains it.
"""

from __future__ import annotations

import datetime as dt

from schemas.picture import Application
from services.picture.picture import Picture
from services.rules import params
from services.rules.params import fixed
from services.rules.verdict import Verdict
from services.rules.why import SILENT, Condition

ENTITLEMENT = "housing.security"
BASIS = ("（十三）",)
INCOME_CEILING = "housing.per_capita_income_max"
PRIORITY_OCCUPATIONS = fixed("housing.priority_occupations", frozenset({"sanitation", "public_transport"}),
                             "宁政办发〔2021〕5号（十三）: 环卫、公交")
PRIORITY_SECTORS = fixed("housing.priority_sectors", frozenset({"HW", "GJ"}),  # 环卫, 公交
                         "宁政办发〔2021〕5号（十三）: 环卫、公交")

SETTLED = Condition("settled", "NOT_SETTLED", "the applicant is settled (落户) in Nanjing", ("settlement",))
NO_HOME = Condition("owns_no_home", "OWNS_HOME", "the household owns no housing (ownsHome is false)", ("owns_home",))
INCOME = Condition("income_within_ceiling", "INCOME_ABOVE_LIMIT",
                   "monthlyIncome / householdSize is at most the ceiling in force on appliedOn",
                   ("monthly_income", "household_size", "ceiling"))
PRIORITY = Condition("priority", None,
                     "priority when the occupation is sanitation or public_transport, or the applicant's latest "
                     "permit sector is HW (环卫) or GJ (公交)",
                     ("occupation", "permit_sector", "occupations", "sectors"))
CONDITIONS = (SETTLED, NO_HOME, INCOME, PRIORITY)


def decide(app: Application, applicant: Picture, day: dt.date, why=SILENT) -> Verdict:
    reasons = []
    if not why.check(SETTLED, applicant.settled, applicant.person):  # 1.
        reasons.append("NOT_SETTLED")
    if not why.check(NO_HOME, not app.owns_home, app.owns_home):  # 2.
        reasons.append("OWNS_HOME")
    ceiling = params.get(INCOME_CEILING).in_force(dt.date.fromordinal(app.applied_on))
    # 3. income / size ≤ ceiling
    if not why.check(INCOME, app.monthly_income <= ceiling.value * app.household_size,
                     app.monthly_income, app.household_size, ceiling):
        reasons.append("INCOME_ABOVE_LIMIT")
    sector = applicant.latest_sector()
    priority = why.check(PRIORITY, app.occupation in PRIORITY_OCCUPATIONS.value or sector in PRIORITY_SECTORS.value,
                         app.occupation, sector, PRIORITY_OCCUPATIONS, PRIORITY_SECTORS)
    return Verdict(district=app.district, reasons=tuple(reasons), priority=priority, basis=BASIS)


def closes_on(app: Application) -> dt.date:
    """The closing day: 31 December of the year of application (docs/policy.md, "The entitlements")."""
    return dt.date(dt.date.fromordinal(app.applied_on).year, 12, 31)


def is_open(app: Application, day: dt.date) -> bool:
    return day <= closes_on(app)
