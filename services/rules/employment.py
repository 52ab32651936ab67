"""``employment.unemployment_registration`` — clause （九）, outlet ``outlet:hrss``.

（九）: 落实常住地失业登记制度: a person registers as unemployed, and gets the public employment
services, where they live. The employment service centres want, per district, the people who may
register there and who have just stopped working, to reach them first. A roster entitlement.
The ages and month windows are dated parameters (``params/employment.*.toml``, ``params.py``), in
force on D.
Each condition goes through ``why.check`` (``services/rules/why.py``), which explains it.

The window moves on the first day of every month with no event at all, and the age on birthdays:
``changes_by_itself`` gives the scheduler the next date on which this person's outcome changes so.
"""

from __future__ import annotations

import datetime as dt

from services.picture.contributions import month_index
from services.picture.picture import Picture
from services.rules import params
from services.rules.params import InForce
from services.rules.verdict import Verdict
from services.rules.versions import Formulas
from services.rules.why import SILENT, Condition

ENTITLEMENT = "employment.unemployment_registration"
BASIS = ("（九）",)
WORKING_AGE_MIN = "employment.working_age_min"  # 16, inclusive
WORKING_AGE_MAX = "employment.working_age_max"  # 60, exclusive
GAP_MONTHS = "employment.gap_months"  # 2 calendar months before D's month without paid work
LOOKBACK_MONTHS = "employment.lookback_months"  # 12 calendar months before those, with some
PARAMETERS = (
    params.declare(WORKING_AGE_MIN, params.Whole(0, 150)),
    params.declare(WORKING_AGE_MAX, params.Whole(1, 150)),
    params.declare(GAP_MONTHS, params.Whole(1, 120)),
    params.declare(LOOKBACK_MONTHS, params.Whole(1, 600)),
)

WHERE = Condition("permit_or_settled", "NO_VALID_PERMIT",
                  "settled (落户), or a valid residence permit on D: the settlement district when settled, "
                  "else the permit's", ("settlement", "permit", "on"))
WORKING_AGE = Condition("working_age", "OUT_OF_WORKING_AGE",
                        "at least employment.working_age_min (16) and under employment.working_age_max (60) "
                        "years old on D, from the birth date in the ID number (not checked for a person known "
                        "from contributions only, who has no ID on file)",
                        ("born", "on", "age", "minimum", "maximum"))
NOT_WORKING = Condition("no_work_in_gap", "EMPLOYED",
                        "no paid employee-scheme record (110 120 210 310 410 510, any region) for the "
                        "employment.gap_months (2) calendar months before D's month", ("on", "gap", "gap_worked"))
WORKED_BEFORE = Condition("work_in_lookback", "NO_RECENT_EMPLOYMENT",
                          "at least one paid employee-scheme month (any region) in the "
                          "employment.lookback_months (12) calendar months before those",
                          ("on", "gap", "lookback", "lookback_worked"))
CONDITIONS = (WHERE, WORKING_AGE, NOT_WORKING, WORKED_BEFORE)


def formula(pic: Picture, day: dt.date, why=SILENT) -> Verdict:
    reasons = []
    permit = pic.valid_permit(day)
    district = pic.settlement_district if pic.settled else permit.district if permit else None
    if not why.check(WHERE, district is not None, pic.person, pic.person.permit, day):  # 1. settlement wins
        reasons.append("NO_VALID_PERMIT")
    youngest, oldest, gap, lookback = in_force(day)
    age = pic.age_on(day)  # None: known from contributions only (no ID), so condition 1 fails anyway
    if age is not None and not why.check(WORKING_AGE, youngest.value <= age < oldest.value,
                                         pic.birth_date, day, age, youngest, oldest):
        reasons.append("OUT_OF_WORKING_AGE")  # 2. 16 ≤ age < 60 on D
    this = month_index(day.year * 100 + day.month)
    g, n = gap.value, lookback.value
    if not why.check(NOT_WORKING, not pic.paid_employee_in(this - g, this - 1), day, gap, pic):
        reasons.append("EMPLOYED")  # 3. no paid employee month in the 2 before D's
    if not why.check(WORKED_BEFORE, pic.paid_employee_in(this - g - n, this - g - 1), day, gap, lookback, pic):
        reasons.append("NO_RECENT_EMPLOYMENT")  # 4. one in the 12 before those
    return Verdict(district=district, reasons=tuple(reasons), basis=BASIS)


FORMULAS = Formulas(ENTITLEMENT, formula, CONDITIONS, __name__)
# the formula in force on D (``services/rules/versions.py``): while there is one, that formula
decide = formula


def in_force(day: dt.date) -> tuple[InForce, InForce, InForce, InForce]:
    """The four figures of （九） in force on ``day`` (youngest, oldest, gap, lookback; whole
    numbers), from the parameter folder in force (``Param.on`` keeps them per day)."""
    return tuple(p.on(day) for p in PARAMETERS)


# -- when the outcome changes with no event -------------------------------------------------------
def changes_by_itself(pic: Picture, day: dt.date) -> dt.date | None:
    """The first date after ``day`` on which conditions 2-4 let this person in or out of the roster
    with no event: the first of a month on which the window reaches or leaves a month worked, or
    the 16th or 60th birthday, with the figures in force on ``day``. None when only an event can
    make a difference: neither settled nor holding a permit valid on ``day`` (a permit valid from a
    later date, or ending, is the picture's own next change; ``Picture.next_change``). A figure
    that takes a new value on a later date is not filed per person: the scheduler decides everyone
    again on that date (services/scheduler/service.py), which files new dates.

    Conditions 3-4 hold in month ``x`` exactly when the last month worked before ``x`` lies in
    ``[x - gap - lookback, x - gap - 1]``; so each month worked ``m``, followed by the next one
    ``m'``, opens the months ``m + gap + 1 .. min(m + gap + lookback, m')``. Only the last month
    worked before D's month and those after it can open months from D's on.
    """
    p = pic.person.permit
    d = day.toordinal()
    if pic.settled:
        until = dt.date.max.toordinal()
    elif p is not None and not p.cancelled and p.valid_from <= d <= p.valid_until:
        until = p.valid_until  # the permit's end is a change of its own
    else:
        return None
    youngest, oldest, gap, lookback = (f.value for f in in_force(day))
    this = day.year * 12 + day.month - 1
    last, later = pic.worked_around(this, this - gap - lookback)
    worked = [last, *later] if last is not None else later
    opened = []  # the months in which conditions 3 and 4 hold, as (first, last) month indexes
    for i, m in enumerate(worked):
        a, b = m + gap + 1, m + gap + lookback
        if i + 1 < len(worked) and worked[i + 1] < b:
            b = worked[i + 1]
        if a <= b:
            opened.append((a, b))
    return _first_change(pic, day, until, this, opened, youngest, oldest) if opened else None


def _first_change(pic: Picture, day: dt.date, until: int, this: int, opened: list[tuple[int, int]],
                  youngest: int, oldest: int) -> dt.date | None:
    """The first day after ``day``, not after ``until``, on which "in an ``opened`` month and of
    working age" turns from what it is on ``day``: at the edge of an opened span, or on a birthday
    that falls in one (elsewhere the window is shut on both sides of the birthday)."""
    born = pic.birth_date

    def holds(month: int, on: dt.date) -> bool:
        if not any(a <= month <= b for a, b in opened):
            return False
        if born is None:
            return True
        return youngest <= on.year - born.year - ((on.month, on.day) < (born.month, born.day)) < oldest

    candidates = []
    for a, b in opened:
        for x in (a, b + 1):
            if x > this and (first := _first_of(x)) is not None and first.toordinal() <= until:
                candidates.append((first, x))
    if born is not None:
        for years in (youngest, oldest):
            birthday = _birthday(born, years)
            if birthday is not None and day < birthday and birthday.toordinal() <= until:
                month = birthday.year * 12 + birthday.month - 1
                if any(a <= month <= b for a, b in opened):
                    candidates.append((birthday, month))
    if not candidates:
        return None
    now = holds(this, day)
    return next((on for on, month in sorted(candidates) if holds(month, on) != now), None)


def _first_of(month: int) -> dt.date | None:
    year = month // 12
    return dt.date(year, month % 12 + 1, 1) if dt.MINYEAR <= year <= dt.MAXYEAR else None


def _birthday(born: dt.date, years: int) -> dt.date | None:
    """The first day on which someone born on ``born`` is ``years`` old (1 March for 29 February
    in a common year, as ``Picture.age_on`` counts)."""
    year = born.year + years
    if year > dt.MAXYEAR:
        return None
    try:
        return born.replace(year=year)
    except ValueError:
        return dt.date(year, 3, 1)
