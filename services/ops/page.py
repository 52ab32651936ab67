"""The operations page, ``GET /ops`` on ``permitbus api`` (docs/contract.md "Operations").

One static file (``static/ops.html``: HTML, CSS and JavaScript, no build step, nothing fetched
from elsewhere: it works offline) and a small JSON API under ``/ops/api/`` that it calls with the
``ops`` token of ``PERMITBUS_API_TOKENS`` (typed into its login form, kept in the page's memory):

    GET  /ops/api/graph                     the stream graph, from services/runtime/topology.py
    GET  /ops/api/status                    services.ops.status.collect(): backlogs, rates, verdicts
    GET  /ops/api/parked?stream=S&count=N   quarantine and dead letters, personal data removed
    POST /ops/api/redrive                   {stream, id, changes?|payload?}: re-drive one entry
    GET  /ops/api/figures                   the figures per district
    GET  /ops/api/trace?feed=F&record_id=R  where one record is now (services/ops/trace.py)

Invariants:
* Only the ``ops`` token opens these (401 without a token, 403 with a department's); the ``ops``
  token opens no department's data (the read API refuses it, services/outlets/api.py).
* What the page receives holds no full ID number (masked as on the command line) and no name:
  name fields (``xm``, ``AAC003``, the child's ``xsxm``, any ``*xm``/``*name*`` key) are removed
  from parked records before they are sent, not hidden in the browser; a payload that is not a
  JSON object is sent with name fields cut out by pattern, except the education feed's, which is
  not sent at all (it may hold a child's name anywhere).
* A re-drive goes through services/ops/redrive.py (``plan`` checks the fixed payload with the
  normalizer's own checks before anything changes; ``apply`` copies exactly once). Since the
  operator never sees the names and IDs, a fix is given as ``changes`` to the original record's
  fields (``null`` removes one) and merged here, so the fields the operator cannot see are kept.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import msgspec
from fastapi import APIRouter, Depends, Header, HTTPException, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from schemas.events import decode_event
from services.figures.read import by_district, read_counters
from services.ops import status as status_mod
from services.ops.cli import masked
from services.ops.redrive import Refused, apply, plan
from services.ops.trace import RECORD_FIELD, trace
from services.runtime import topology as t
from services.runtime.redis import is_cluster

PAGE = Path(__file__).with_name("static") / "ops.html"
OPS = "ops"  # the operators' entry in PERMITBUS_API_TOKENS
NAME_KEY = re.compile(r"(?i)(^xm$|^aac003$|xm$|name)")
NAME_IN_TEXT = re.compile(r'(?i)("[^"]*(?:xm|name|aac003)"\s*:\s*)"(?:[^"\\]|\\.)*"')
COUNT_MAX = 200


class Redrive(BaseModel):
    stream: str
    id: str
    changes: dict | None = None  # merged into the original record (null removes a field)
    payload: str | None = None  # a whole new payload, for a record that is not a JSON object


def parked_streams() -> list[str]:
    return [*t.quarantine_streams(), *t.dead_letter_streams()]


def graph(partitions: int) -> dict:
    """Nodes (streams and stages, in columns left to right) and edges, from the topology."""
    nodes: list[dict] = []
    edges: list[list[str]] = []
    evt = f"evt:{{p0}}…{{p{partitions - 1}}}"
    outbox = f"out:{{p0}}…{{p{partitions - 1}}}"

    def node(id_: str, kind: str, col: int) -> None:
        nodes.append({"id": id_, "kind": kind, "col": col})

    node(evt, "stream", 2)
    for f in t.FEEDS.values():
        node(f.ingress, "stream", 0)
        node(f"normalize:{f.name}", "stage", 1)
        node(f.quarantine, "parked", 2)
        node(t.dlq(f.ingress), "parked", 2)
        edges += [[f.ingress, f"normalize:{f.name}"], [f"normalize:{f.name}", evt],
                  [f"normalize:{f.name}", f.quarantine], [f"normalize:{f.name}", t.dlq(f.ingress)]]
    node("schedule", "stage", 1)
    node("decide", "stage", 3)
    node(outbox, "stream", 4)
    edges += [["schedule", evt], [evt, "decide"], ["decide", outbox]]
    for target in t.RELAY_TARGETS:
        node(f"relay:{target}", "stage", 5)
        if not any(n["id"] == target for n in nodes):
            node(target, "parked" if not target.startswith("outlet:") else "stream", 6)
        node(t.relay_dlq(target), "parked", 6)
        edges += [[outbox, f"relay:{target}"], [f"relay:{target}", target], [f"relay:{target}", t.relay_dlq(target)]]
    return {"nodes": nodes, "edges": edges}


def _clean(value):
    """A parsed record with name fields removed and ID numbers masked, recursively."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if not NAME_KEY.search(str(k))}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str):
        return masked(value.encode())
    return value


def _payload(stream: str, raw: bytes) -> dict:
    try:
        rec = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        rec = None
    if isinstance(rec, dict):
        removed = sorted(k for k in rec if NAME_KEY.search(str(k)))
        return {"record": _clean(rec), "removed": removed}
    if "edu:" in stream:
        return {"text": None, "note": f"not a JSON object ({len(raw)} bytes); not shown: it may hold a child's name"}
    return {"text": masked(NAME_IN_TEXT.sub(r'\1"(removed)"', raw.decode("utf-8", "replace")).encode())[:2000]}


def entry_view(stream: str, eid: bytes, fields: dict[bytes, bytes]) -> dict:
    """What the page may see of one parked entry."""
    out: dict = {"id": eid.decode()}
    for k, v in fields.items():
        key = k.decode("utf-8", "replace")
        if key == "payload":
            out |= _payload(stream, v)
        elif key == "event":
            try:
                ev = decode_event(v)
                out["event"] = {"kind": type(ev).__name__, "record_id": ev.record_id}
            except (msgspec.DecodeError, msgspec.ValidationError):
                out["event"] = {"kind": "?", "record_id": None}
        elif key == "fields":
            continue  # a relay dead letter's whole outbox entry: its payload is shown above
        elif key in ("reason", "detail", "error", "source_id", "stream", "target", "deliveries", "original"):
            if key != "original":
                out[key] = masked(v)[:500]
    rec = out.get("record") or {}
    feed = stream.split(":", 1)[1] if stream.startswith("quarantine:") else (
        stream.removeprefix("dlq:ingress:") if stream.startswith("dlq:ingress:") else None)
    if feed in RECORD_FIELD and isinstance(rec.get(RECORD_FIELD[feed]), str):
        out["record_id"], out["feed"] = rec[RECORD_FIELD[feed]], feed
    elif "event" in out:
        out["record_id"] = out["event"]["record_id"]
    return out


def router(settings, r, tokens: dict[str, bytes], rate) -> APIRouter:
    import hmac

    api = APIRouter()
    ops_token = tokens.get(OPS)

    def bearer(authorization: str) -> str | None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        for dept, expected in tokens.items():
            if hmac.compare_digest(expected, token.encode()):
                return dept
        return None

    def operator(authorization: str = Header(default="")) -> str:
        who = bearer(authorization)
        if who is None or ops_token is None:
            raise HTTPException(401, "the ops token is required")
        if who != OPS:
            raise HTTPException(403, "the operations page needs the ops token, not a department's")
        wait = rate.take(OPS)
        if wait:
            raise HTTPException(429, "too many requests for this token",
                                headers={"Retry-After": str(max(1, round(wait)))})
        return who

    @api.get("/ops", response_class=HTMLResponse, include_in_schema=False)
    async def page(authorization: str = Header(default="")) -> HTMLResponse:
        """The page itself holds no data (it asks with the token typed in); a department's token
        sent to it is refused all the same."""
        if authorization and bearer(authorization) not in (None, OPS):
            raise HTTPException(403, "the operations page needs the ops token, not a department's")
        return HTMLResponse(PAGE.read_text(encoding="utf-8"), headers={"Cache-Control": "no-store"})

    @api.get("/ops/api/graph")
    async def graph_(_: str = Depends(operator)) -> dict:
        return graph(settings.partitions)

    @api.get("/ops/api/status")
    async def status(_: str = Depends(operator)) -> dict:
        return await status_mod.collect(r, settings)

    @api.get("/ops/api/parked")
    async def parked(stream: str, count: int = Query(50, ge=1, le=COUNT_MAX), _: str = Depends(operator)) -> dict:
        if stream not in parked_streams():
            raise HTTPException(404, f"unknown parked stream {stream[:60]!r}")
        rows = await r.xrevrange(stream, count=count)
        return {"stream": stream, "entries": [entry_view(stream, eid, f) for eid, f in rows]}

    @api.post("/ops/api/redrive")
    async def redrive(body: Redrive, _: str = Depends(operator)) -> dict:
        if body.stream not in parked_streams():
            raise HTTPException(404, f"unknown parked stream {body.stream[:60]!r}")
        rows = await r.xrange(body.stream, body.id, body.id)
        if not rows:
            raise HTTPException(404, f"no entry {body.id[:40]} in {body.stream} (re-driven already?)")
        eid, fields = rows[0]
        payload = None
        if body.changes is not None:
            try:
                original = json.loads(fields.get(b"payload", b""))
            except (ValueError, UnicodeDecodeError):
                original = None
            if not isinstance(original, dict):
                raise HTTPException(422, "this record is not a JSON object: give a whole payload instead of changes")
            merged = {k: v for k, v in (original | body.changes).items() if v is not None}
            payload = json.dumps(merged, ensure_ascii=False).encode()
        elif body.payload is not None:
            payload = body.payload.encode()
        try:
            copy = plan(body.stream, eid, fields, payload, settings.partitions)
        except Refused as exc:
            raise HTTPException(422, masked(str(exc).encode())) from None
        fresh, copy_id = await apply(r, copy, atomic=not is_cluster(r))
        return {"target": copy.target, "copy_id": copy_id.decode(), "fresh": fresh}

    @api.get("/ops/api/figures")
    async def figures(_: str = Depends(operator)) -> dict:
        return by_district(await read_counters(r, settings.partitions))

    @api.get("/ops/api/trace")
    async def trace_(feed: str, record_id: str = Query(..., max_length=200), _: str = Depends(operator)) -> dict:
        if feed not in t.FEEDS:
            raise HTTPException(404, f"unknown feed {feed[:40]!r}")
        return await trace(r, feed, record_id, settings.partitions, settings.trace_days,
                           trace_accepted=feed in settings.trace_accepted)

    return api
