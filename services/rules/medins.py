"""``medins.resident_enrollment`` — clause （十一）, outlet ``outlet:medins``.

（十一）: 对通过相关政策落户我市的，可以选择参加居民医保 … 避免重复参保、重复补助. A person with a paid employee
medical record (310, any region) in D's month or the two before is covered already.
Each condition goes through ``why.check`` (``services/rules/why.py``).
"""

from __future__ import annotations

import datetime as dt

from services.picture.picture import Picture
from services.rules.params import fixed
from services.rules.verdict import Verdict
from services.rules.why import SILENT, Condition

ENTITLEMENT = "medins.resident_enrollment"
BASIS = ("（十一）",)
# D's month and the two before (services/picture/picture.py, ``paid_employee_medical_near``)
WINDOW_MONTHS = fixed("medins.employee_medical_window_months", 3, "宁政办发〔2021〕5号（十一）; docs/policy.md")

SETTLED = Condition("settled", "NOT_SETTLED", "settled (落户) in Nanjing", ("settlement",))
NOT_INSURED = Condition("no_employee_medical", "IN_EMPLOYEE_MEDICAL_INSURANCE",
                        "no paid employee medical insurance (310, any region) in D's month or the two before",
                        ("on", "window", "paid_310"))
CONDITIONS = (SETTLED, NOT_INSURED)


def decide(pic: Picture, day: dt.date, why=SILENT) -> Verdict:
    reasons = []
    if not why.check(SETTLED, pic.settled, pic.person):
        reasons.append("NOT_SETTLED")
    if not why.check(NOT_INSURED, not pic.paid_employee_medical_near(day), day, WINDOW_MONTHS, pic):
        reasons.append("IN_EMPLOYEE_MEDICAL_INSURANCE")
    return Verdict(district=pic.settlement_district, reasons=tuple(reasons), basis=BASIS)
