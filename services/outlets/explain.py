"""Explaining a subject's decision from the stored picture (docs/contract.md, "Audit and a person's view").

    GET /v1/subjects/{subject_id}/explain/{entitlement}[?application_id=A]
        -> {subject_id, entitlement, as_of, explanations: [explanation, …]}

with the token of the department that owns the entitlement (the ``ops`` token opens no
department's data: 403); ``permitbus explain`` (``services/ops/explain.py``) prints the same for
operators, IDs masked. Each explanation is ``services/rules/explain.py``'s: the rule's own
``decide`` run with a recording trace on the picture the decider committed, so it gives the
outcome the decider would give on D, condition by condition, with the facts each read.

Where the picture is: the subject's own (``ppl:{pN}``, keyed by the keyed pseudonym of the ID,
partition ``crc32(ID)``) for a roster entitlement and for housing (the applicant's); for education
the guardian's, found through ``filed:{pN}`` (the child's applications, written by the education
feed's normalizer). Read with its months stored apart in one MULTI/EXEC (``services/picture/stored.py``).
No sealed value is opened: explaining needs no data key.
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from schemas.picture import Application
from schemas.ids import id_problem
from services.picture import stored
from services.picture.picture import Picture
from services.rules import APPLICATION_RULES, ROSTER_RULES
from services.rules.explain import explain_application, explain_roster
from services.runtime import topology as t
from services.runtime.clock import Clock
from services.runtime.identity import Pseudonymizer, partition_of

PSEUDONYM_BYTES = 12  # services/runtime/identity.py


class ConditionTrace(BaseModel):
    condition: str
    says: str  # docs/policy.md's words
    reason: str | None  # the reason code it gives when it fails; None: it picks an alternative or the priority
    checked: bool  # False: not reached (no district to compare, not primary school)
    holds: bool | None
    facts: dict  # what it read: permit, settlement, months counted, ages, figures in force


class Explanation(BaseModel):
    entitlement: str
    application_id: str | None
    as_of: str  # D, or an application's closing day once past it
    eligible: bool
    district: str | None
    priority: bool
    reasons: list[str]
    basis: list[str]
    conditions: list[ConditionTrace]
    application: dict | None = None  # the application's own facts
    last_decision: dict | None  # status, district, priority, version last published


class Explained(BaseModel):
    subject_id: str
    entitlement: str
    as_of: str
    explanations: list[Explanation]


class NotExplained(LookupError):
    """Nothing to explain (no picture, no such application): the message says which."""


async def explanations(r, partitions: int, pseudonym: Pseudonymizer, subject_id: str, entitlement: str,
                       day: dt.date, application_id: str | None = None) -> list[dict]:
    """The explanations of ``entitlement`` for ``subject_id`` (an ID number, upper-case) on ``day``:
    one for a roster entitlement, one per application (or only ``application_id``) otherwise."""
    p, key = partition_of(subject_id, partitions), pseudonym(subject_id)
    if entitlement in ROSTER_RULES:
        person = await stored.read(r, p, key)
        if person is None:
            raise NotExplained("no picture of this person: nothing was ever decided about them")
        return [explain_roster(entitlement, Picture(person), day)]
    if entitlement not in APPLICATION_RULES:
        raise NotExplained(f"unknown entitlement {entitlement!r}")
    found: list[tuple[Application, Picture]] = []
    if entitlement.startswith("education."):
        for (gp, gkey), ids in (await _filed(r, p, key)).items():
            person = await stored.read(r, gp, gkey)
            apps = person.apps.values() if person is not None else ()
            found += [(a, Picture(person)) for a in apps if a.entitlement == entitlement and a.id in ids]
    else:
        person = await stored.read(r, p, key)
        if person is not None:
            found = [(a, Picture(person)) for a in person.apps.values() if a.entitlement == entitlement]
    if application_id is not None:
        found = [(a, pic) for a, pic in found if a.id == application_id]
    if not found:
        which = f"application {application_id!r}" if application_id is not None else "application"
        raise NotExplained(f"no {which} of {entitlement} about this person has been decided")
    found.sort(key=lambda x: (x[0].applied_on, x[0].id))
    return [explain_application(a, pic, day) for a, pic in found]


async def _filed(r, p: int, key: bytes) -> dict[tuple[int, bytes], set[str]]:
    """(guardian's partition, guardian's pseudonym) -> the ids of the child's applications filed there."""
    out: dict[tuple[int, bytes], set[str]] = {}
    for m in await r.zrange(t.filed(p), b"[" + key, _after(key), bylex=True):
        at = PSEUDONYM_BYTES
        gp = int.from_bytes(m[at:at + 2], "big")
        gkey = m[at + 2:at + 2 + PSEUDONYM_BYTES]
        out.setdefault((gp, gkey), set()).add(m[at + 2 + PSEUDONYM_BYTES:].decode())
    return out


def _after(prefix: bytes) -> bytes:
    """The exclusive lexicographic bound just past every member that starts with ``prefix``."""
    b = bytearray(prefix)
    while b and b[-1] == 0xFF:
        b.pop()
    if not b:
        return b"+"
    b[-1] += 1
    return b"(" + bytes(b)


def router(settings, r, department) -> APIRouter:
    """The explain endpoint; ``department`` is the API's token dependency (services/outlets/api.py)."""
    api = APIRouter()
    pseudonym = Pseudonymizer(settings.pseudonym_secret())
    clock = Clock(settings.today)

    @api.get("/v1/subjects/{subject_id}/explain/{entitlement}", response_model=Explained)
    async def explain(subject_id: str, entitlement: str, dept: str = Depends(department),
                      application_id: str | None = Query(None, max_length=128)) -> dict:
        outlet = t.OUTLETS.get(entitlement)
        if outlet is None:
            raise HTTPException(404, f"unknown entitlement {entitlement!r}")
        if outlet.stream != t.DEPARTMENT_OUTLETS.get(dept):  # the ops token owns no outlet
            raise HTTPException(403, f"{entitlement} belongs to {outlet.stream}")
        if len(subject_id) != 18 or id_problem(subject_id) is not None:
            raise HTTPException(422, "subject_id: an ID number is 17 digits and a check character")
        subject_id, day = subject_id.upper(), clock.today()
        try:
            found = await explanations(r, settings.partitions, pseudonym, subject_id, entitlement, day,
                                       application_id)
        except NotExplained as exc:
            raise HTTPException(404, str(exc)) from None
        except stored.NewerPicture:
            raise HTTPException(503, "the picture was written by a newer release of permitbus: "
                                     "upgrade the API to explain it") from None
        return {"subject_id": subject_id, "entitlement": entitlement, "as_of": day.isoformat(),
                "explanations": found}

    return api
