"""``medins.resident_enrollment`` — clause （十一）, outlet ``outlet:medins``.

（十一）: 对通过相关政策落户我市的，可以选择参加居民医保 … 避免重复参保、重复补助. A person with a paid employee
medical record (310, any region) in D's month or the two before is covered already.
"""

from __future__ import annotations

import datetime as dt

from services.picture.picture import Picture
from services.rules.verdict import Verdict

ENTITLEMENT = "medins.resident_enrollment"
BASIS = ("（十一）",)


def decide(pic: Picture, day: dt.date) -> Verdict:
    reasons = []
    if not pic.settled:
        reasons.append("NOT_SETTLED")
    if pic.paid_employee_medical_near(day):
        reasons.append("IN_EMPLOYEE_MEDICAL_INSURANCE")
    return Verdict(district=pic.settlement_district, reasons=tuple(reasons), basis=BASIS)
