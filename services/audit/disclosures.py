"""A person's view: ``GET /v1/people/{id}/disclosures`` with the ``citizen`` token (the city's
citizen portal; docs/contract.md, "Audit and a person's view of their data").

Every decision about that person delivered to any department, from the audit log (so also those
an outlet no longer keeps): which outlet and department, the entitlement, status, district,
priority, reasons, the clauses it rests on (``basis``), ``decided_at``, when it was delivered,
newest first, a page at a time:

    GET /v1/people/{id}/disclosures?limit=50[&cursor=C]
        -> {subject_id (masked), count (this page), disclosures: [...], next: cursor | null}

Invariants:
* Found by the person's ID without any ID at rest: the ID becomes its keyed pseudonym, whose refs
  each outlet's audit index holds (``auditidx{<outlet>}``, written by ``pb_relay`` with the entry);
  each entry is read by its id and its decision opened with the data key. An entry whose subject
  is not the one asked (it cannot happen short of a pseudonym collision) is left out.
* Pages: newest first by delivery (the audit entry id is the outlet entry's), outlet name breaking
  ties; the cursor is the last item's ``<id>.<dept>``, so a page never repeats or skips an item
  when decisions arrive between pages (they are newer). Refs of entries trimmed past the audit
  retention are skipped.
* Only the ``citizen`` token opens it (401 without a known token, 403 with another); 422 for a
  malformed ID, before anything is read; the response names the person only masked.
"""

from __future__ import annotations

import datetime as dt
import logging
import re

import msgspec
from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from services.audit import chain
from schemas.ids import id_problem
from services.runtime import topology as t
from services.runtime.clock import SHANGHAI
from schemas.ids import mask
from services.runtime.identity import Pseudonymizer
from services.runtime.redis import stream_id
from services.runtime.sealing import SealError

log = logging.getLogger("permitbus.api")
CITIZEN = "citizen"  # the citizen portal's entry in PERMITBUS_API_TOKENS: it opens no department's data
PAGE_DEFAULT, PAGE_MAX = 50, 500
CURSOR = re.compile(r"([0-9]{1,20})-([0-9]{1,20})\.([a-z]{1,20})")
DEPARTMENT = {o.stream: o.department for o in t.OUTLETS.values()}
SHOWN = ("entitlement", "status", "district", "priority", "reasons", "basis", "decided_at", "as_of", "version",
         "application_id", "decision_id")


class Disclosures(BaseModel):
    subject_id: str  # masked: the portal knows whom it asked about
    count: int
    disclosures: list[dict]
    next: str | None = None


def _key(eid: bytes, outlet: str) -> tuple[tuple[int, int], str]:
    return stream_id(eid), outlet.split(":", 1)[1]


def router(r, settings, who) -> APIRouter:
    """``who``: the API's token dependency (services/outlets/api.py), returning the token's name."""
    api = APIRouter()
    pseudonym = Pseudonymizer(settings.pseudonym_secret())
    keys = settings.data_keyring()

    @api.get("/v1/people/{subject_id}/disclosures", response_model=Disclosures)
    async def disclosures(subject_id: str, caller: str = Depends(who),
                          limit: int = Query(PAGE_DEFAULT, ge=1, le=PAGE_MAX),
                          cursor: str | None = Query(None, max_length=64)) -> Disclosures:
        if caller != CITIZEN:
            raise HTTPException(403, "a person's disclosures need the citizen token")
        if len(subject_id) != 18 or id_problem(subject_id) is not None:
            raise HTTPException(422, "id: an ID number is 17 digits and a check character")
        after = None
        if cursor is not None:
            m = CURSOR.fullmatch(cursor)
            if m is None:
                raise HTTPException(422, "cursor: not a cursor this API gave")
            after = ((int(m.group(1)), int(m.group(2))), m.group(3))
        subject_id = subject_id.upper()
        who_ = pseudonym(subject_id)
        pipe = r.pipeline(transaction=False)
        for outlet in t.AUDITED:
            pipe.hget(t.audit_index(outlet), who_)
        refs = [(eid, p, outlet) for outlet, value in zip(t.AUDITED, await pipe.execute())
                for eid, p in chain.refs(value)]
        refs.sort(key=lambda ref: _key(ref[0], ref[2]), reverse=True)
        if after is not None:
            refs = [ref for ref in refs if _key(ref[0], ref[2]) < after]
        page, more = refs[:limit], len(refs) > limit
        pipe = r.pipeline(transaction=False)
        for eid, p, outlet in page:
            pipe.xrange(t.audit(outlet, p), eid, eid)
        out = []
        for (eid, p, outlet), rows in zip(page, await pipe.execute()):
            if not rows or rows[0][1].get(b"who") != who_:
                continue  # trimmed past the retention
            try:
                decision = msgspec.json.decode(keys.open_audit(rows[0][1].get(b"dec", b"")))
            except SealError:
                log.error("%s %s: its decision does not open (permitbus audit verify)", t.audit(outlet, p),
                          eid.decode())
                continue
            if decision.get("subject_id") != subject_id:
                continue
            ms = stream_id(eid)[0]
            out.append({"outlet": outlet, "department": DEPARTMENT.get(outlet),
                        "delivered_at": dt.datetime.fromtimestamp(ms / 1000, SHANGHAI).isoformat(timespec="milliseconds"),
                        **{k: decision.get(k) for k in SHOWN}})
        last = page[-1] if page else None
        return Disclosures(subject_id=mask(subject_id), count=len(out), disclosures=out,
                           next=f"{last[0].decode()}.{last[2].split(':', 1)[1]}" if more and last else None)

    return api
