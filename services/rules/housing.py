"""``housing.security`` — clause （十三）, outlet ``outlet:housing``.

（十三）: 确保符合条件的农业转移落户人口与我市城镇居民同等享有政府提供基本住房保障的权利 … 重点保障环卫、公交等公共服务行业农业转移落户人口住房需求.
Income ceiling: the dated parameter ``housing.per_capita_income_max`` in force on ``appliedOn``.
"""

from __future__ import annotations

import datetime as dt

from schemas.picture import Application
from services.picture.picture import Picture
from services.rules import params
from services.rules.verdict import Verdict

ENTITLEMENT = "housing.security"
BASIS = ("（十三）",)
INCOME_CEILING = "housing.per_capita_income_max"
PRIORITY_OCCUPATIONS = frozenset({"sanitation", "public_transport"})
PRIORITY_SECTORS = frozenset({"HW", "GJ"})  # 环卫, 公交


def decide(app: Application, applicant: Picture, day: dt.date) -> Verdict:
    reasons = []
    if not applicant.settled:  # 1.
        reasons.append("NOT_SETTLED")
    if app.owns_home:  # 2.
        reasons.append("OWNS_HOME")
    ceiling = params.get(INCOME_CEILING).at(dt.date.fromordinal(app.applied_on))
    if app.monthly_income > ceiling * app.household_size:  # 3. income / size ≤ ceiling
        reasons.append("INCOME_ABOVE_LIMIT")
    priority = app.occupation in PRIORITY_OCCUPATIONS or applicant.latest_sector() in PRIORITY_SECTORS
    return Verdict(district=app.district, reasons=tuple(reasons), priority=priority, basis=BASIS)


def closes_on(app: Application) -> dt.date:
    """The closing day: 31 December of the year of application (docs/policy.md, "The entitlements")."""
    return dt.date(dt.date.fromordinal(app.applied_on).year, 12, 31)


def is_open(app: Application, day: dt.date) -> bool:
    return day <= closes_on(app)
