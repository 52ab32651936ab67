"""When a verdict becomes a decision (docs/contract.md, "When decisions are emitted").

* Application-based: one decision when first decided (``eligible`` or ``ineligible``), then one
  each time ``status``, ``district`` or ``priority`` changes while the application is open:
  ``eligible`` when it becomes eligible, ``revoked`` (with the reasons) when an application that
  was eligible stops being eligible (the place offered is withdrawn, which ``ineligible`` would
  not say); one first decided ineligible stays ``ineligible`` until it becomes eligible.
* Roster-based: nothing while never eligible; ``eligible`` when it starts or the district
  changes; ``revoked`` (with the reasons, in the district it applied in) when it ends.
* Versions count per entitlement, subject and application, from 1, without gaps.
* An application closes on its closing day (31 December of its year). First read after it, it is
  decided once, as of that closing day, not as of D. Once closed it is decided no more and leaves
  its roster with no decision: a ``RosterDrop``, an outbox entry the relay applies to the roster
  and appends nothing for. So a roster of applications holds the eligible ones still open.
* Every outbox entry of a decision states its roster action (``roster_action``), so the relay
  keeps the roster right for a decision made after closing (listed nowhere) as for any other.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from schemas.decision import Decision
from schemas.picture import Application, Outcome
from services.picture.fold import ALL as TOUCH_ALL
from services.picture.fold import CONTRIBUTIONS as TOUCH_CONTRIBUTIONS
from services.picture.fold import MEDICAL as TOUCH_MEDICAL
from services.picture.fold import STORED as TOUCH_STORED
from services.picture.picture import Picture
from services.rules import APPLICATION_RULES, ROSTER_RULES, employment, medins
from services.rules.verdict import Verdict

# the roster rules that read contributions: decided again when a record changes what they read
CONTRIBUTION_RULES = ("settlement.four_districts", "medins.resident_enrollment", employment.ENTITLEMENT)
MEDICAL_RULES = ("medins.resident_enrollment",)  # the one that reads the months of paid 310
SET, DEL = b"set", b"del"  # roster actions stated to the relay


@dataclass(frozen=True, slots=True)
class RosterDrop:
    """A closed application leaves its roster: no decision is emitted for that."""

    entitlement: str
    subject_id: str
    application_id: str


def decision_id(entitlement: str, subject: str, application: str | None, version: int) -> str:
    h = hashlib.blake2b(f"{entitlement}|{subject}|{application or ''}|{version}".encode(), digest_size=12)
    return h.hexdigest()


def _decision(
    entitlement: str,
    subject: str,
    application: str | None,
    outcome: Outcome,
    verdict: Verdict,
    day: dt.date,
    now: dt.datetime,
    caused_by: list[str],
) -> Decision:
    return Decision(
        decision_id=decision_id(entitlement, subject, application, outcome.version),
        entitlement=entitlement,
        subject_id=subject,
        application_id=application,
        status=outcome.status,
        district=outcome.district,
        priority=outcome.priority,
        reasons=list(verdict.reasons),
        basis=list(verdict.basis),
        as_of=day,
        caused_by=caused_by,
        version=outcome.version,
        decided_at=now,
    )


def roster_step(
    pic: Picture, entitlement: str, day: dt.date, now: dt.datetime, caused_by: list[str]
) -> Decision | None:
    verdict = ROSTER_RULES[entitlement].decide(pic, day)
    prev = pic.person.roster.get(entitlement)
    version = prev.version + 1 if prev else 1
    if verdict.eligible:
        if prev and prev.status == "eligible" and prev.district == verdict.district and prev.priority == verdict.priority:
            return None
        outcome = Outcome("eligible", verdict.district, verdict.priority, version)
    else:
        if prev is None or prev.status != "eligible":
            return None  # never eligible, or already revoked: silent
        outcome = Outcome("revoked", prev.district, False, version)
    pic.person.roster[entitlement] = outcome
    return _decision(entitlement, pic.id, None, outcome, verdict, day, now, caused_by)


def application_step(
    pic: Picture, app: Application, day: dt.date, now: dt.datetime, caused_by: list[str]
) -> Decision | RosterDrop | None:
    if app.closed:
        return None  # decided for the last time, off the roster
    rule = APPLICATION_RULES[app.entitlement]
    prev = app.last
    closing = rule.closes_on(app)
    if day > closing:
        app.closed = True
        if prev is not None:  # closes now: off the roster if it is there, nothing emitted
            return RosterDrop(app.entitlement, pic.subject_of(app), app.id) if prev.status == "eligible" else None
        day = closing  # first read after its closing day: decided once, as of that day
    verdict = rule.decide(app, pic, day)
    if verdict.eligible:
        status = "eligible"
    elif prev is not None and prev.status in ("eligible", "revoked"):
        status = "revoked"  # was eligible: the offer is withdrawn (and stays so until eligible again)
    else:
        status = "ineligible"
    if prev and (prev.status, prev.district, prev.priority) == (status, verdict.district, verdict.priority):
        return None
    app.last = Outcome(status, verdict.district, verdict.priority, prev.version + 1 if prev else 1)
    return _decision(app.entitlement, pic.subject_of(app), app.id, app.last, verdict, day, now, caused_by)


def evaluate(
    pic: Picture, touched: str, day: dt.date, now: dt.datetime, caused_by: list[str]
) -> list[Decision | RosterDrop]:
    """Decide again what ``touched`` can have changed; return the decisions whose outcome changed
    and the roster drops of applications that closed."""
    out: list[Decision | RosterDrop] = []
    if touched == TOUCH_STORED:
        return out
    if touched.startswith("app:"):
        app = pic.person.apps[touched[4:]]
        d = application_step(pic, app, day, now, caused_by)
        return ([d] if d else out) + _close_past(pic, day, now, app)
    if touched in (TOUCH_CONTRIBUTIONS, TOUCH_MEDICAL):
        out += _close_past(pic, day, now)
    roster = CONTRIBUTION_RULES if touched == TOUCH_CONTRIBUTIONS else MEDICAL_RULES if touched == TOUCH_MEDICAL \
        else ROSTER_RULES
    for entitlement in roster:
        d = roster_step(pic, entitlement, day, now, caused_by)
        if d:
            out.append(d)
    if touched == TOUCH_ALL:
        for app in pic.person.apps.values():
            d = application_step(pic, app, day, now, caused_by)
            if d:
                out.append(d)
    return out


def _close_past(pic: Picture, day: dt.date, now: dt.datetime, skip: Application | None = None) -> list[RosterDrop]:
    """Close the applications still open past their closing day (their tick not read yet, or a
    picture of an earlier release, which filed no due date for closing) whatever event meets them."""
    out = []
    for app in pic.person.apps.values():
        if app is not skip and not app.closed and app.last is not None \
                and day > APPLICATION_RULES[app.entitlement].closes_on(app):
            d = application_step(pic, app, day, now, [])
            if d:
                out.append(d)
    return out


def roster_action(pic: Picture, d: Decision) -> bytes:
    """What the relay does with the roster for decision ``d`` of ``pic``: listed while eligible,
    and for an application only while it is open (a decision made after closing is listed nowhere)."""
    if d.status != "eligible":
        return DEL
    if d.application_id is not None and pic.person.apps[d.application_id].closed:
        return DEL
    return SET


def next_change(pic: Picture, day: dt.date) -> dt.date | None:
    """``Picture.next_change`` (the permit), the next date a paid 310 month enters or leaves the
    medical-insurance window (``medins.changes_by_itself``), the next date on which the
    unemployment window or the working age changes this person's outcome
    (``employment.changes_by_itself``), and the day after each open application's closing day, so
    that the scheduler ticks the person then and the application leaves its roster by itself. (A
    parameter or a formula taking effect on a date is not filed per person: the scheduler decides
    everyone again on that date, services/scheduler/service.py.)"""
    candidates = [c for c in (pic.next_change(day), medins.changes_by_itself(pic, day),
                              employment.changes_by_itself(pic, day)) if c is not None]
    for app in pic.person.apps.values():
        if not app.closed:
            candidates.append(max(APPLICATION_RULES[app.entitlement].closes_on(app), day) + dt.timedelta(days=1))
    return min(candidates, default=None)


def figure_keys(pic: Picture, day: dt.date) -> list[str]:
    """The city figures (docs/policy.md, "Figures for the city": clauses （十五）（十六）（十七）) this person counts in now."""
    keys = []
    person = pic.person
    permit = pic.valid_permit(day)
    if permit is not None:
        keys.append(f"permit_holders|{permit.district}")
    if person.settled_district is not None and person.settled_on is not None:
        keys.append(f"settlements|{person.settled_district}|{dt.date.fromordinal(person.settled_on).year}")
    for entitlement, outcome in person.roster.items():
        if outcome.status == "eligible":
            keys.append(f"eligible|{outcome.district}|{entitlement}")
    for app in person.apps.values():
        if app.last is not None:
            year = dt.date.fromordinal(app.applied_on).year
            keys.append(f"applications|{app.district}|{app.entitlement}|{year}|{app.last.status}")
    return sorted(keys)
