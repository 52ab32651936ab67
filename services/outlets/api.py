"""The departments' read API: current rosters and a subject's current entitlements.

CONTRACT.md: a department reads the whole current roster of one of its entitlements (per
district) together with the outlet position it corresponds to, then follows the outlet from that
position (``XREAD … STREAMS outlet:<dept> <position>``) without gaps or repeats. Only the
department that owns an entitlement may read it: each department has its own bearer token
(``PERMITBUS_API_TOKENS``); a token opens the entitlements of its own outlet and nothing else.

    GET /v1/rosters/{entitlement}/{district}   -> {position, entries: [decision, …]}
    GET /v1/subjects/{subject_id}              -> the caller's current eligible decisions for that person
    GET /health
"""

from __future__ import annotations

import hmac

import msgspec
from fastapi import Depends, FastAPI, Header, HTTPException
from pydantic import BaseModel

from services.ingress.fields import DISTRICTS
from services.outlets.relay import roster_field
from services.runtime import topology as t
from services.runtime.redis import connect, fn
from services.runtime.settings import Settings


class Roster(BaseModel):
    entitlement: str
    district: str
    outlet: str
    position: str  # the outlet entry id this roster includes everything up to
    count: int
    entries: list[dict]


class SubjectEntitlements(BaseModel):
    subject_id: str
    entries: list[dict]


def owner(entitlement: str) -> str:
    return t.OUTLETS[entitlement].stream.split(":", 1)[1]


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(title="permitbus read API", version="1")
    r = connect(settings.redis_url)
    tokens = {dept: tok.encode() for dept, tok in settings.api_tokens.items()}

    def department(authorization: str = Header(default="")) -> str:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer":
            for dept, expected in tokens.items():
                if hmac.compare_digest(expected, token.encode()):
                    return dept
        raise HTTPException(401, "a department's bearer token is required")

    @app.get("/health")
    async def health() -> dict:
        await r.ping()
        return {"status": "ok"}

    @app.get("/v1/rosters/{entitlement}/{district}", response_model=Roster)
    async def roster(entitlement: str, district: str, dept: str = Depends(department)) -> Roster:
        if entitlement not in t.OUTLETS:
            raise HTTPException(404, f"unknown entitlement {entitlement!r}")
        if owner(entitlement) != dept:
            raise HTTPException(403, f"{entitlement} belongs to outlet:{owner(entitlement)}")
        if district not in DISTRICTS:
            raise HTTPException(404, f"unknown district {district!r}")
        outlet = t.OUTLETS[entitlement].stream
        position, flat = await r.fcall_ro(fn("pb_roster"), 2, outlet, t.roster(outlet, entitlement, district))
        entries = [msgspec.json.decode(flat[i + 1]) for i in range(0, len(flat), 2)]
        entries.sort(key=lambda d: (d["subject_id"], d["application_id"] or ""))
        return Roster(entitlement=entitlement, district=district, outlet=outlet, position=position.decode(),
                      count=len(entries), entries=entries)

    @app.get("/v1/subjects/{subject_id}", response_model=SubjectEntitlements)
    async def subject(subject_id: str, dept: str = Depends(department)) -> SubjectEntitlements:
        subject_id = subject_id.upper()
        found: list[dict] = []
        for ent, o in t.OUTLETS.items():
            if owner(ent) != dept:
                continue
            index = t.roster_index(o.stream, ent)
            if o.application_based:
                fields = [f async for f, _ in r.hscan_iter(index, match=f"{subject_id}|*", count=1000)]
            else:
                fields = [roster_field(subject_id, None).encode()]
            for f in fields:
                d = await r.hget(index, f)
                if d is None:
                    continue
                blob = await r.hget(t.roster(o.stream, ent, list(DISTRICTS)[int(d) - 1]), f)
                if blob is not None:
                    found.append(msgspec.json.decode(blob))
        return SubjectEntitlements(subject_id=subject_id, entries=found)

    return app


def serve_api(settings: Settings) -> int:
    import uvicorn

    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_level="warning")
    return 0
