"""``medins.resident_enrollment`` — clause （十一）, outlet ``outlet:medins``.

（十一）: 对通过相关政策落户我市的，可以选择参加居民医保 … 避免重复参保、重复补助. A person with a paid employee
medical record (310, any region) in D's month or the months before it, ``medins.employee_medical_window_months``
in all (3, a dated parameter in force on D), is covered already.
Each condition goes through ``why.check`` (``services/rules/why.py``).

The window moves with D: ``changes_by_itself`` gives the scheduler the first of the month on which a
paid 310 month enters or leaves it, with no event.
"""

from __future__ import annotations

import datetime as dt

from services.picture.contributions import month_index
from services.picture.picture import Picture
from services.rules import params
from services.rules.verdict import Verdict
from services.rules.versions import Formulas
from services.rules.why import SILENT, Condition

ENTITLEMENT = "medins.resident_enrollment"
BASIS = ("（十一）",)
WINDOW_MONTHS = params.declare("medins.employee_medical_window_months", params.Whole(1, 24))

SETTLED = Condition("settled", "NOT_SETTLED", "settled (落户) in Nanjing", ("settlement",))
NOT_INSURED = Condition("no_employee_medical", "IN_EMPLOYEE_MEDICAL_INSURANCE",
                        "no paid employee medical insurance (310, any region) in D's month or the months before it: "
                        "medins.employee_medical_window_months (3) in all",
                        ("on", "window", "paid_310"))
CONDITIONS = (SETTLED, NOT_INSURED)


def formula(pic: Picture, day: dt.date, why=SILENT) -> Verdict:
    reasons = []
    if not why.check(SETTLED, pic.settled, pic.person):
        reasons.append("NOT_SETTLED")
    window = WINDOW_MONTHS.on(day)
    if not why.check(NOT_INSURED, not pic.paid_employee_medical_near(day, window.value), day, window, pic):
        reasons.append("IN_EMPLOYEE_MEDICAL_INSURANCE")
    return Verdict(district=pic.settlement_district, reasons=tuple(reasons), basis=BASIS)


FORMULAS = Formulas(ENTITLEMENT, formula, CONDITIONS, __name__)
# the formula in force on D (``services/rules/versions.py``): while there is one, that formula
decide = formula


def changes_by_itself(pic: Picture, day: dt.date) -> dt.date | None:
    """The first date after ``day`` on which a paid 310 month enters D's window or leaves it (the
    first of that month), for a settled person: the window of the length in force on ``day``. A
    length that changes on a later date changes every window at once: the scheduler decides
    everyone again on that date (services/scheduler/service.py), which files new dates."""
    if not pic.settled or not pic.has_contributions:
        return None
    n = WINDOW_MONTHS.on(day).value
    this = month_index(day.year * 100 + day.month)
    best = None
    for m in pic.contributions.paid_medical_months():
        for edge in (m, m + n):  # the month enters D's window, and leaves it
            if edge > this and edge // 12 <= dt.MAXYEAR and (best is None or edge < best):
                best = edge
    return dt.date(best // 12, best % 12 + 1, 1) if best is not None else None
