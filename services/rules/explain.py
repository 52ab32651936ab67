"""Why a rule decides what it decides: the rule's own ``decide`` run with a recording ``Trace``.

``explain_roster`` and ``explain_application`` run exactly the function the decider runs
(``services/decider/emit.py``), on the same picture and date, with ``why=Trace()`` instead of
the silent default (``services/rules/why.py``), and return every condition of the rule in the
rule's order (``CONDITIONS``): whether it was checked, whether it holds, the reason code it gives
when it fails (the conditions of the rule's version in force, ``services/rules/versions.py``),
and the facts it read, rendered here (the permit's district and dates, settlement, the months
counted and the regions that paid them, ages, the figures in force with their references). The
outcome (``eligible``, ``district``, ``priority``, ``reasons``) is the ``Verdict`` that call
returned, so it is the decision's by construction.

An application is evaluated as the decider does (``emit.application_step``): on D while open,
as of its closing day once D is past it. No ID number is read or rendered: the caller knows the
subject, and a guardian is described by their situation only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from schemas.picture import Application, Outcome, Permit, Person
from schemas.codes import EMPLOYEE_TYPES
from services.picture.contributions import month_index
from services.picture.picture import Picture
from services.rules import APPLICATION_RULES, ROSTER_RULES
from services.rules.params import InForce
from services.rules.verdict import Verdict
from services.rules.why import Trace


def explain_roster(entitlement: str, pic: Picture, day: dt.date) -> dict:
    """A roster entitlement of the person of ``pic`` on ``day``."""
    rule = ROSTER_RULES[entitlement]
    trace = Trace()
    verdict = rule.decide(pic, day, trace)
    return {"entitlement": entitlement, "application_id": None, "as_of": day.isoformat(),
            **_outcome(verdict), "conditions": _conditions(rule.FORMULAS.at(day).conditions, trace),
            "last_decision": _last(pic.person.roster.get(entitlement))}


def explain_application(app: Application, pic: Picture, day: dt.date) -> dict:
    """Application ``app``, filed in ``pic`` (the guardian's, the applicant's), as the decider
    decides it on ``day``: on ``day`` while open, else as of its closing day."""
    rule = APPLICATION_RULES[app.entitlement]
    closing = rule.closes_on(app)
    on = min(day, closing)
    trace = Trace()
    verdict = rule.decide(app, pic, on, trace)
    formula = rule.FORMULAS.at(dt.date.fromordinal(app.applied_on))  # as the rule dispatches (versions.py)
    return {"entitlement": app.entitlement, "application_id": app.id, "as_of": on.isoformat(),
            **_outcome(verdict), "conditions": _conditions(formula.conditions, trace),
            "application": _application(app, closing, day), "last_decision": _last(app.last)}


def _outcome(v: Verdict) -> dict:
    return {"eligible": v.eligible, "district": v.district, "priority": v.priority, "reasons": list(v.reasons),
            "basis": list(v.basis)}


def _last(o: Outcome | None) -> dict | None:
    """The outcome the pipeline last published for this entitlement (and application)."""
    if o is None:
        return None
    return {"status": o.status, "district": o.district, "priority": o.priority, "version": o.version}


def _conditions(declared, trace: Trace) -> list[dict]:
    checked = {c.name: (holds, facts) for c, holds, facts in trace.steps}
    out = []
    for c in declared:
        row = {"condition": c.name, "says": c.says, "reason": c.reason}
        if c.name in checked:
            holds, facts = checked[c.name]
            given = dict(zip(c.facts, facts))
            row |= {"checked": True, "holds": holds,
                    "facts": {name: RENDER[name](value, given) for name, value in given.items()}}
        else:  # not reached: docs/policy.md leaves it unchecked here (no district to compare, not primary school)
            row |= {"checked": False, "holds": None, "facts": {}}
        out.append(row)
    return out


def _application(app: Application, closing: dt.date, day: dt.date) -> dict:
    out = {"district": app.district, "applied_on": _iso(app.applied_on), "closes_on": closing.isoformat(),
           "open": not app.closed and day <= closing}
    if app.entitlement.startswith("education."):
        out["stage"] = app.stage
    else:
        out |= {"household_size": app.household_size, "monthly_income": app.monthly_income,
                "owns_home": app.owns_home, "occupation": app.occupation}
    return out


# -- facts: one renderer per fact name (services/rules/*.py, ``Condition.facts``) ----------------------
def _iso(ordinal: int | None) -> str | None:
    return dt.date.fromordinal(ordinal).isoformat() if ordinal else None


def _month(m: int) -> str:
    return f"{m // 12:04d}-{m % 12 + 1:02d}"


def settlement(person: Person, _=None) -> dict:
    return {"settled": person.settled_district is not None, "district": person.settled_district,
            "on": _iso(person.settled_on)}


def permit(p: Permit | None, _=None) -> dict | None:
    """The permit the person holds (valid on D or not: the condition says whether it is): what the
    condition reads of it, no more (its number and sector are not needed to say why; PIPL Art. 6)."""
    if p is None:
        return None
    return {"district": p.district, "valid_from": _iso(p.valid_from), "valid_until": _iso(p.valid_until),
            "cancelled": p.cancelled}


def parameter(f: InForce, _=None) -> dict:
    value = sorted(f.value) if isinstance(f.value, (set, frozenset)) else f.value
    return {"parameter": f.name, "value": value, "since": f.since.isoformat() if f.since else None,
            "reference": f.reference}


def employee_months(pic: Picture, _=None) -> dict:
    """The months with a paid employee-scheme record from Jiangsu (32xxxx), each once, with the
    types and regions that paid them (the count the rule compares is the number of these); and
    the months with records that do not count, and why."""
    months: dict[int, list[tuple[str, str, bool]]] = {}
    if pic.has_contributions:
        for m, typ, region, paid in pic.contributions.records():
            months.setdefault(m, []).append((typ, region, paid))
    counted, other = [], []
    for m, recs in months.items():
        paying = sorted({(typ, region) for typ, region, paid in recs
                         if paid and typ in EMPLOYEE_TYPES and region.startswith("32")})
        if paying:
            counted.append({"month": _month(m), "regions": sorted({r for _, r in paying}),
                            "types": sorted({t for t, _ in paying})})
            continue
        if not any(paid for _, _, paid in recs):
            why = "nothing paid (AAE078 = 0)"
        elif not any(paid and typ in EMPLOYEE_TYPES for typ, _, paid in recs):
            why = "resident schemes only (170 390)"
        else:
            why = "employee schemes paid outside Jiangsu only"
        other.append({"month": _month(m), "records": [f"{typ}@{region}{'' if paid else ' unpaid'}"
                                                      for typ, region, paid in sorted(recs)], "why": why})
    return {"counted": counted, "not_counted": other}


def medical_window(pic: Picture, given: dict) -> dict:
    """The months of the window on D and the paid employee medical (310) records in them."""
    day, n = given["on"], given["window"].value
    last = month_index(day.year * 100 + day.month)
    window = list(range(last - n + 1, last + 1))
    paid: dict[int, set[str]] = {}
    if pic.has_contributions:
        for m, typ, region, is_paid in pic.contributions.records():
            if is_paid and typ == "310" and m in window:
                paid.setdefault(m, set()).add(region)
    return {"months": [_month(m) for m in window],
            "paid": [{"month": _month(m), "regions": sorted(r)} for m, r in sorted(paid.items())]}


def _worked(pic: Picture, months: list[int]) -> dict:
    """The months ``months`` and those of them with a paid employee-scheme record (any region),
    with the types and regions that paid them."""
    paid: dict[int, set[tuple[str, str]]] = {}
    if pic.has_contributions:
        for m, typ, region, is_paid in pic.contributions.records():
            if is_paid and typ in EMPLOYEE_TYPES and m in months:
                paid.setdefault(m, set()).add((typ, region))
    return {"months": [_month(m) for m in months],
            "paid": [{"month": _month(m), "regions": sorted({r for _, r in tr}), "types": sorted({t for t, _ in tr})}
                     for m, tr in sorted(paid.items())]}


def gap_worked(pic: Picture, given: dict) -> dict:
    """The gap months of （九） on D (the ``gap`` calendar months before D's month), and any worked."""
    this = month_index(given["on"].year * 100 + given["on"].month)
    return _worked(pic, list(range(this - given["gap"].value, this)))


def lookback_worked(pic: Picture, given: dict) -> dict:
    """The lookback months of （九） on D (the ``lookback`` months before the gap months), and any worked."""
    this = month_index(given["on"].year * 100 + given["on"].month)
    last = this - given["gap"].value
    return _worked(pic, list(range(last - given["lookback"].value, last)))


def _date(d: dt.date | None, _=None) -> str | None:
    return d.isoformat() if d else None


def _plain(v, _=None):
    return v


RENDER: dict[str, Callable] = {
    "settlement": settlement,
    "permit": permit,
    "on": _date, "born": _date, "age_on": _date, "applied_on": _date,
    "district": _plain, "district_applied": _plain, "settlement_district": _plain, "permit_district": _plain,
    "stage": _plain, "occupation": _plain, "permit_sector": _plain,
    "months": _plain, "age": _plain, "household_size": _plain, "monthly_income": _plain, "owns_home": _plain,
    "districts": parameter, "required": parameter, "minimum": parameter, "maximum": parameter,
    "ceiling": parameter, "window": parameter, "occupations": parameter, "sectors": parameter,
    "by_month": employee_months,
    "paid_310": medical_window,
    "gap": parameter, "lookback": parameter,
    "gap_worked": gap_worked, "lookback_worked": lookback_worked,
}
