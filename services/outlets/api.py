"""The departments' read API: current rosters and a subject's current entitlements.

docs/contract.md, "Rosters and subjects": a department reads the whole current roster of one of its entitlements (per
district) together with the outlet position it corresponds to, then follows the outlet from that
position (``XREAD … STREAMS outlet:<dept> <position>``) without gaps or repeats. Only the
department that owns an entitlement may read it: each department has its own bearer token
(``PERMITBUS_API_TOKENS``); a token opens the entitlements of its own outlet and nothing else.

    GET /v1/rosters/{entitlement}/{district}[?limit=N&cursor=C]
        -> {position, count, entries: [decision, …] (one page), next: cursor | null}
    GET /v1/subjects/{subject_id}   -> the caller's current eligible decisions for that person
    GET /v1/subjects/{subject_id}/explain/{entitlement}   -> why: each condition, its facts
                                    (services/outlets/explain.py)
    GET /v1/people/{id}/disclosures -> with the ``citizen`` token only: every decision about that person
                                       any department received (services/audit/disclosures.py)
    GET /health
    GET /asyncapi.json              -> the AsyncAPI 3.0 document of every stream (no token: no data in it)
    GET /ops, /ops/api/*  the operations page, with the ``ops`` token only (services/ops/page.py)

Invariants:
* Paged rosters: the first page takes the roster and its outlet position in one Lua call
  (``pb_roster_page``); a roster longer than the page is copied there into an immutable snapshot
  (TTL ``PERMITBUS_API_SNAPSHOT_TTL_S``, the outlet's slot) that the later pages read in the same
  order, one call each (``pb_roster_next``). Every page carries the same position, so reading all pages and then following the
  outlet from it gives the current roster, whatever was decided between pages.
* A subject lookup is one Redis call (``pb_subject``) whatever the roster's size: the relay keeps
  a subject index with the roster. The ID must be 17 digits and a check character (422), so it
  never becomes a pattern.
* Tokens: an empty or shared token stops the API at start (``ApiRefusal``). Each token may make
  ``PERMITBUS_API_RATE_PER_S`` requests a second after a burst of ``PERMITBUS_API_BURST`` (429
  past it), and start ``PERMITBUS_API_SNAPSHOTS_MAX`` paged reads per snapshot TTL (each holds a
  copy of a roster in Redis); the budgets are per API process.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time

import msgspec
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Response
from pydantic import BaseModel

from services.audit.disclosures import CITIZEN
from services.audit.disclosures import router as disclosures_router
from schemas.districts import DISTRICTS
from schemas.ids import id_problem
from services.ops.page import OPS
from services.ops.page import router as ops_router
from services.runtime import topology as t
from services.runtime.identity import Pseudonymizer
from services.runtime.redis import client, fn
from services.runtime.settings import Settings

PAGE_DEFAULT, PAGE_MAX = 1000, 5000
CURSOR = re.compile(r"([0-9a-f]{16})\.([0-9]{1,9})")


class ApiRefusal(ValueError):
    """The API cannot start with these settings (the message names the variable)."""


class Roster(BaseModel):
    entitlement: str
    district: str
    outlet: str
    position: str  # the outlet entry id this roster includes everything up to (the same on every page)
    count: int  # entries in the whole roster as of that position
    entries: list[dict]  # this page
    next: str | None = None  # cursor of the next page; None on the last


class SubjectEntitlements(BaseModel):
    subject_id: str
    entries: list[dict]


def owner(entitlement: str) -> str:
    return t.OUTLETS[entitlement].stream.split(":", 1)[1]


def check_tokens(tokens: dict[str, str]) -> None:
    """An empty token would open a department's data to ``Authorization: Bearer `` with nothing
    after it; a token shared by two departments would open one's data to the other."""
    empty = sorted(dept for dept, tok in tokens.items() if not tok.strip())
    if empty:
        raise ApiRefusal(f"PERMITBUS_API_TOKENS: empty token for {', '.join(empty)}")
    seen: dict[str, str] = {}
    for dept, tok in tokens.items():
        if tok in seen:
            raise ApiRefusal(f"PERMITBUS_API_TOKENS: {seen[tok]} and {dept} have the same token")
        seen[tok] = dept


class RateLimit:
    """A token bucket per department: ``burst`` requests at once, then ``rate`` a second."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.buckets: dict[str, tuple[float, float]] = {}  # dept -> (tokens left, when)

    def take(self, dept: str) -> float:
        """0 if the request may go ahead, else the seconds until it may."""
        now = time.monotonic()
        left, then = self.buckets.get(dept, (float(self.burst), now))
        left = min(float(self.burst), left + (now - then) * self.rate)
        if left < 1:
            self.buckets[dept] = (left, now)
            return (1 - left) / self.rate
        self.buckets[dept] = (left - 1, now)
        return 0.0


class SnapshotBudget:
    """Paged reads a department may start per TTL: each holds a copy of a roster in Redis (about
    0.5 KB an entry) until its TTL, so without a bound one token could fill Redis's memory."""

    def __init__(self, most: int, ttl_s: float) -> None:
        self.most, self.ttl_s = most, ttl_s
        self.started: dict[str, list[float]] = {}

    def wait(self, dept: str) -> float:
        """0 if ``dept`` may start one more now, else the seconds until it may."""
        now = time.monotonic()
        live = self.started[dept] = [s for s in self.started.get(dept, []) if s > now - self.ttl_s]
        return 0.0 if len(live) < self.most else live[0] + self.ttl_s - now

    def count(self, dept: str) -> None:
        self.started.setdefault(dept, []).append(time.monotonic())


def create_app(settings: Settings) -> FastAPI:
    check_tokens(settings.api_tokens)
    app = FastAPI(title="permitbus read API", version="1")
    r = app.state.redis = client(settings)
    tokens = {dept: tok.encode() for dept, tok in settings.api_tokens.items()}
    rate = RateLimit(settings.api_rate_per_s, settings.api_burst)
    pseudonym = Pseudonymizer(settings.pseudonym_secret())
    ttl_ms = settings.api_snapshot_ttl_s * 1000
    snapshots = SnapshotBudget(settings.api_snapshots_max, settings.api_snapshot_ttl_s)

    def department(authorization: str = Header(default="")) -> str:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token:
            for dept, expected in tokens.items():
                if hmac.compare_digest(expected, token.encode()):
                    wait = rate.take(dept)
                    if wait:
                        raise HTTPException(429, "too many requests for this token",
                                            headers={"Retry-After": str(max(1, round(wait)))})
                    return dept
        raise HTTPException(401, "a department's bearer token is required")

    def owned(entitlement: str, dept: str) -> str:
        if entitlement not in t.OUTLETS:
            raise HTTPException(404, f"unknown entitlement {entitlement!r}")
        if owner(entitlement) != dept:
            raise HTTPException(403, f"{entitlement} belongs to outlet:{owner(entitlement)}")
        return t.OUTLETS[entitlement].stream

    from services.ops.metrics import mount as mount_metrics

    mount_metrics(app, r, settings)  # GET /metrics, no token (services/ops/metrics.py)

    @app.get("/health")
    async def health() -> dict:
        await r.ping()
        return {"status": "ok"}

    asyncapi: list[bytes] = []  # built on the first request, then kept: it depends on the code only

    @app.get("/asyncapi.json")
    async def asyncapi_document() -> Response:
        if not asyncapi:
            from services.ops.asyncapi import render

            asyncapi.append(render().encode())
        return Response(asyncapi[0], media_type="application/json")

    @app.get("/v1/rosters/{entitlement}/{district}", response_model=Roster)
    async def roster(entitlement: str, district: str, dept: str = Depends(department),
                     limit: int = Query(PAGE_DEFAULT, ge=1, le=PAGE_MAX),
                     cursor: str | None = Query(None, max_length=40)) -> Roster:
        outlet = owned(entitlement, dept)
        if district not in DISTRICTS:
            raise HTTPException(404, f"unknown district {district!r}")
        if cursor is None:
            snap, offset = secrets.token_hex(8), 0
            keys = t.roster_snapshot(outlet, entitlement, district, snap)
            wait = snapshots.wait(dept)
            position, total, blobs, kept = await r.fcall(
                fn("pb_roster_page"), 4, outlet, t.roster(outlet, entitlement, district), *keys, limit, ttl_ms,
                0 if wait else 1)
            if kept == -1:  # a roster longer than a page, and no budget left for its snapshot
                raise HTTPException(429, "too many paged roster reads in progress for this token",
                                    headers={"Retry-After": str(max(1, round(wait)))})
            if kept:
                snapshots.count(dept)
        else:
            m = CURSOR.fullmatch(cursor)
            if m is None:
                raise HTTPException(422, "cursor: not a cursor this API gave")
            snap, offset = m.group(1), int(m.group(2))
            keys = t.roster_snapshot(outlet, entitlement, district, snap)
            page = await r.fcall_ro(fn("pb_roster_next"), 2, *keys, offset, limit)
            if not page:
                raise HTTPException(410, "this roster read has expired: start again without a cursor")
            (position, total, blobs), kept = page, 1
        end = offset + len(blobs)
        return Roster(entitlement=entitlement, district=district, outlet=outlet, position=position.decode(),
                      count=total, entries=[msgspec.json.decode(b) for b in blobs],
                      next=f"{snap}.{end}" if kept and end < total else None)

    @app.get("/v1/subjects/{subject_id}", response_model=SubjectEntitlements)
    async def subject(subject_id: str, dept: str = Depends(department)) -> SubjectEntitlements:
        if dept in (OPS, CITIZEN):
            raise HTTPException(403, f"the {dept} token opens no department's data")
        if len(subject_id) != 18 or id_problem(subject_id) is not None:
            raise HTTPException(422, "subject_id: an ID number is 17 digits and a check character")
        subject_id = subject_id.upper()
        found: list[dict] = []
        for ent, o in t.OUTLETS.items():
            if owner(ent) != dept:
                continue
            keys = [t.roster_index(o.stream, ent)] + [t.roster(o.stream, ent, d) for d in DISTRICTS]
            keys.append(t.roster_subjects(o.stream, ent))
            who = pseudonym(subject_id) if o.application_based else b""
            blobs = await r.fcall_ro(fn("pb_subject"), len(keys), *keys, subject_id, who)
            found += sorted((msgspec.json.decode(b) for b in blobs), key=lambda d: d["application_id"] or "")
        return SubjectEntitlements(subject_id=subject_id, entries=found)

    app.include_router(ops_router(settings, r, tokens, rate))
    from services.outlets.explain import router as explain_router

    app.include_router(explain_router(settings, r, department))  # GET /v1/subjects/{id}/explain/{entitlement}
    app.include_router(disclosures_router(r, settings, department))
    return app


def serve_api(settings: Settings) -> int:
    import sys

    import uvicorn

    from services.rules import params
    from services.runtime.clock import Clock

    params.start(settings.params_dir, Clock(settings.today).today())  # explanations decide: a bad file stops the start
    try:
        app = create_app(settings)
    except ApiRefusal as exc:
        print(f"permitbus: cannot start the API: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_level="warning")
    return 0
