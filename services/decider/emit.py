"""When a verdict becomes a decision (CONTRACT.md, "When decisions are emitted").

* Application-based: one decision when first decided, then one each time ``status``,
  ``district`` or ``priority`` changes while the application is open.
* Roster-based: nothing while never eligible; ``eligible`` when it starts or the district
  changes; ``revoked`` (with the reasons, in the district it applied in) when it ends.
* Versions count per entitlement, subject and application, from 1, without gaps.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from schemas.decision import Decision
from schemas.picture import Application, Outcome
from services.picture.fold import ALL as TOUCH_ALL
from services.picture.fold import CONTRIBUTIONS as TOUCH_CONTRIBUTIONS
from services.picture.fold import STORED as TOUCH_STORED
from services.picture.picture import Picture
from services.rules import APPLICATION_RULES, ROSTER_RULES
from services.rules.verdict import Verdict

CONTRIBUTION_RULES = ("settlement.four_districts", "medins.resident_enrollment")


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
) -> Decision | None:
    rule = APPLICATION_RULES[app.entitlement]
    prev = app.last
    if prev is not None and not rule.is_open(app, day):
        return None  # closed: decided once, no longer followed
    verdict = rule.decide(app, pic, day)
    status = "eligible" if verdict.eligible else "ineligible"
    if prev and (prev.status, prev.district, prev.priority) == (status, verdict.district, verdict.priority):
        return None
    app.last = Outcome(status, verdict.district, verdict.priority, prev.version + 1 if prev else 1)
    return _decision(app.entitlement, pic.subject_of(app), app.id, app.last, verdict, day, now, caused_by)


def evaluate(
    pic: Picture, touched: str, day: dt.date, now: dt.datetime, caused_by: list[str]
) -> list[Decision]:
    """Decide again what ``touched`` can have changed; return the decisions whose outcome changed."""
    out: list[Decision] = []
    if touched == TOUCH_STORED:
        return out
    if touched.startswith("app:"):
        d = application_step(pic, pic.person.apps[touched[4:]], day, now, caused_by)
        return [d] if d else out
    roster = CONTRIBUTION_RULES if touched == TOUCH_CONTRIBUTIONS else ROSTER_RULES
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


def figure_keys(pic: Picture, day: dt.date) -> list[str]:
    """The city figures (POLICY.md, clauses （十五）（十六）（十七）) this person counts in now."""
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
