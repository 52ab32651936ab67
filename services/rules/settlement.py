"""``settlement.four_districts`` — clause （六）, outlet ``outlet:psb``.

（六）: 全面放宽浦口、六合、溧水、高淳区城镇地区落户限制，对持有上述四区居住证、缴纳城镇职工社会保险6个月以上的人员，即可办理落户.
An invitation to apply, never a settlement: clause （二） forbids settling anyone against their will.
"""

from __future__ import annotations

import datetime as dt

from services.picture.picture import Picture
from services.rules.verdict import Verdict

ENTITLEMENT = "settlement.four_districts"
BASIS = ("（六）",)
FOUR_DISTRICTS = frozenset({"320111", "320116", "320117", "320118"})  # 浦口 六合 溧水 高淳
MIN_MONTHS = 6


def decide(pic: Picture, day: dt.date) -> Verdict:
    reasons = []
    if pic.settled:  # 1. not settled
        reasons.append("ALREADY_SETTLED")
    permit = pic.valid_permit(day)
    if permit is None:  # 2. a valid permit on D
        reasons.append("NO_VALID_PERMIT")
    elif permit.district not in FOUR_DISTRICTS:  # 3. in one of the four districts
        reasons.append("DISTRICT_NOT_COVERED")
    if pic.recognised_employee_months() < MIN_MONTHS:  # 4. ≥ 6 recognised employee months
        reasons.append("INSUFFICIENT_CONTRIBUTIONS")
    return Verdict(district=permit.district if permit else None, reasons=tuple(reasons), basis=BASIS)
