"""Fold one canonical event into a picture (docs/policy.md, "What the system knows of a person").

Returns what the event touched, so that the decider re-decides only what can have changed:
``ALL`` (permit, settlement, date), ``CONTRIBUTIONS`` (the rules that read contributions: the
months recognised or worked changed), ``MEDICAL`` (only a month's paid 310: medical insurance),
the id of one application, or ``STORED`` (a contribution kept that changes no fact a rule reads:
a second scheme in a month already worked, say). ``None`` means no effect: a duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.events import (
    ContributionRecorded,
    DateTick,
    Event,
    HousingApplied,
    PermitCancelled,
    PermitIssued,
    PermitMoved,
    PermitRenewed,
    SchoolApplied,
    Settled,
)
from schemas.picture import Application, Permit
from services.picture.contributions import CHANGED, DUPLICATE
from services.picture.contributions import MEDICAL as MEDICAL_ONLY
from services.picture.picture import Picture
from services.runtime.identity import fingerprint

ALL = "all"
CONTRIBUTIONS = "contributions"
MEDICAL = "medical"  # only whether a month has a paid 310 record changed
STORED = "stored"  # kept in the picture, but nothing a rule reads has changed


@dataclass(frozen=True, slots=True)
class Quarantine:
    reason: str
    detail: str


def fold(pic: Picture, event: Event) -> str | Quarantine | None:
    person = pic.person
    if event.sealed_id and not person.sid and not person.id:
        person.sid = event.sealed_id  # a picture begun by contributions (which carry no ID) learns it
    if isinstance(event, ContributionRecorded):
        done = pic.contributions.record(
            fingerprint(event.record_id), event.month, event.insurance_type, event.region, event.paid
        )
        if done == DUPLICATE:
            return None
        return CONTRIBUTIONS if done == CHANGED else MEDICAL if done == MEDICAL_ONLY else STORED
    if isinstance(event, DateTick):
        return ALL
    if isinstance(event, (SchoolApplied, HousingApplied)):
        if event.application_id in person.apps:
            return None
        person.apps[event.application_id] = _application(event)
        return "app:" + event.application_id

    fp = fingerprint(event.record_id)
    if fp in person.seen:
        return None
    if isinstance(event, PermitIssued):
        person.permit = Permit(
            number=event.permit_no,
            district=event.district,
            valid_from=event.valid_from.toordinal(),
            valid_until=event.valid_until.toordinal(),
            sector=event.sector,
        )
    elif isinstance(event, Settled):
        person.settled_district = event.district
        person.settled_on = event.on.toordinal()
    else:
        permit = person.permit
        if permit is None or permit.cancelled or permit.number != event.permit_no:
            return Quarantine(
                "UNKNOWN_PERMIT", "the person holds no permit with the number given in 'jzzbh'"
            )
        if isinstance(event, PermitRenewed):
            permit.valid_from = event.valid_from.toordinal()
            permit.valid_until = event.valid_until.toordinal()
            if event.district is not None:
                permit.district = event.district
            if event.sector is not None:
                permit.sector = event.sector
        elif isinstance(event, PermitMoved):
            permit.district = event.district
        elif isinstance(event, PermitCancelled):
            permit.cancelled = True
    person.seen.append(fp)
    return ALL


def _application(event: SchoolApplied | HousingApplied) -> Application:
    if isinstance(event, SchoolApplied):
        return Application(
            entitlement="education.compulsory_enrollment",
            id=event.application_id,
            subject_id=event.child_id,  # empty once protected (atrest): sealed in ``subject``
            district=event.district,
            applied_on=event.applied_on.toordinal(),
            stage=event.stage,
            subject=event.child_sealed,
            born=event.child_born.toordinal() if event.child_born else 0,
        )
    return Application(
        entitlement="housing.security",
        id=event.application_id,
        subject_id=event.person_id,
        district=event.district,
        applied_on=event.applied_on.toordinal(),
        household_size=event.household_size,
        monthly_income=event.monthly_income,
        owns_home=event.owns_home,
        occupation=event.occupation,
        subject=event.sealed_id,
    )
