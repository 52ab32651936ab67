"""``employment.unemployment_registration`` — clause （九）, outlet ``outlet:hrss``.

（九）: 落实常住地失业登记制度: a person registers as unemployed, and gets the public employment
services, where they live. The employment service centres want, per district, the people who may
register there and who have just stopped working, to reach them first. A roster entitlement.
The ages and month windows are dated parameters (``params/employment.*.toml``), in force on D.

The window moves on the first day of every month with no event at all, and the age on birthdays:
``changes_by_itself`` gives the scheduler the next date on which this person's outcome changes so.
"""

from __future__ import annotations

import datetime as dt

from services.picture.contributions import month_index
from services.picture.picture import Picture
from services.rules import params
from services.rules.verdict import Verdict

ENTITLEMENT = "employment.unemployment_registration"
BASIS = ("（九）",)
WORKING_AGE_MIN = "employment.working_age_min"  # 16, inclusive
WORKING_AGE_MAX = "employment.working_age_max"  # 60, exclusive
GAP_MONTHS = "employment.gap_months"  # 2 calendar months before D's month without paid work
LOOKBACK_MONTHS = "employment.lookback_months"  # 12 calendar months before those, with some
PARAMETERS = (WORKING_AGE_MIN, WORKING_AGE_MAX, GAP_MONTHS, LOOKBACK_MONTHS)


def _figure(name: str, day: dt.date) -> int:
    return int(params.get(name).at(day))


def decide(pic: Picture, day: dt.date) -> Verdict:
    reasons = []
    permit = pic.valid_permit(day)
    if pic.settled:  # 1. settled, or a valid permit on D; settlement wins
        district = pic.settlement_district
    elif permit is not None:
        district = permit.district
    else:
        district = None
        reasons.append("NO_VALID_PERMIT")
    age = pic.age_on(day)  # None: known from contributions only (no ID), so condition 1 fails anyway
    if age is not None and not _figure(WORKING_AGE_MIN, day) <= age < _figure(WORKING_AGE_MAX, day):
        reasons.append("OUT_OF_WORKING_AGE")  # 2. 16 ≤ age < 60 on D
    this = month_index(day.year * 100 + day.month)
    gap, lookback = _figure(GAP_MONTHS, day), _figure(LOOKBACK_MONTHS, day)
    if pic.paid_employee_in(this - gap, this - 1):  # 3. no paid employee month in the 2 before D's
        reasons.append("EMPLOYED")
    if not pic.paid_employee_in(this - gap - lookback, this - gap - 1):  # 4. one in the 12 before those
        reasons.append("NO_RECENT_EMPLOYMENT")
    return Verdict(district=district, reasons=tuple(reasons), basis=BASIS)


# -- when the outcome changes with no event -------------------------------------------------------
def changes_by_itself(pic: Picture, day: dt.date) -> dt.date | None:
    """The first date after ``day`` on which conditions 2-4 let this person in or out of the roster
    with no event: the first of a month on which the window reaches or leaves a month worked, the
    16th or 60th birthday, or a date from which a parameter takes a new value. None when only an
    event can make a difference: neither settled nor holding a permit valid on ``day`` (a permit
    valid from a later date, or ending, is the picture's own next change; ``Picture.next_change``).

    Conditions 3-4 hold in month ``x`` exactly when the last month worked before ``x`` lies in
    ``[x - gap - lookback, x - gap - 1]``; so each month worked ``m``, followed by the next one
    ``m'``, opens the months ``m + gap + 1 .. min(m + gap + lookback, m')``. Only the last month
    worked before D's month and those after it can open months from D's on.
    """
    p = pic.person.permit
    d = day.toordinal()
    if pic.settled:
        until = dt.date.max
    elif p is not None and not p.cancelled and p.valid_from <= d <= p.valid_until:
        until = dt.date.fromordinal(p.valid_until)  # the permit's end is a change of its own
    else:
        return None
    gap, lookback = _figure(GAP_MONTHS, day), _figure(LOOKBACK_MONTHS, day)
    youngest, oldest = _figure(WORKING_AGE_MIN, day), _figure(WORKING_AGE_MAX, day)
    this = month_index(day.year * 100 + day.month)
    last, later = pic.worked_around(this, this - gap - lookback)
    worked = ([last] if last is not None else []) + later
    opened = [(m + gap + 1, min(m + gap + lookback, nxt))
              for m, nxt in zip(worked, [*worked[1:], 1 << 30])]
    born = pic.birth_date

    def holds(on: dt.date) -> bool:
        x = on.year * 12 + on.month - 1
        if not any(a <= x <= b for a, b in opened):
            return False
        if born is None:
            return True
        age = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
        return youngest <= age < oldest

    edges = {_first_of(x) for a, b in opened if a <= b for x in (a, b + 1)}
    if born is not None:
        edges |= {_birthday(born, youngest), _birthday(born, oldest)}
    now = holds(day)
    found = next((e for e in sorted(e for e in edges if e is not None and day < e <= until)
                  if holds(e) != now), None)
    new_values = [v for name in PARAMETERS for v in params.get(name).dates if day < v <= until]
    return min([*([found] if found else []), *new_values], default=None)


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
