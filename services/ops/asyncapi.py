"""``permitbus asyncapi``: the AsyncAPI 3.0 document of every stream a department or an operator sees.

Generated, never written by hand: the channels come from the stream graph (``topology.py``: the
feeds, their quarantines and dead letters, the relay's dead letters, the outlets), the payloads
from the schemas (``services/ingress/records.py`` for the departments' records, built from the
normalizers' code lists; ``schemas/decision.py`` for the decisions, through msgspec's JSON Schema).

FastStream's own AsyncAPI generator (``faststream.specification.AsyncAPI``, schema 3.0.0) lays the
document out: a ``RedisBroker`` that never connects declares one ``StreamSub`` subscriber per
ingress stream (with the normalizers' consumer group) and one publisher per stream permitbus
writes; FastStream turns them into servers, channels with their Redis bindings, operations and
messages. Its payloads come from pydantic, so each schema is handed over as
``Annotated[dict, WithJsonSchema(schema)]``. Then three corrections, because our entries are not
FastStream's: no ``correlationId`` header (our entries have no headers), no consumer name in the
bindings (each worker has its own), and each message says how it sits in the stream entry
(``x-redis-entry``): the ingress and outlet payloads are the JSON in the entry's one field
``payload``; the quarantine and dead-letter payloads are the entry's fields themselves.

``docs/asyncapi.json`` is this output; tests/test_asyncapi.py keeps it current and validates it
against the official AsyncAPI 3.0.0 JSON Schema.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import unquote

import msgspec
from pydantic import WithJsonSchema

from schemas.decision import Decision
from schemas.districts import DISTRICTS
from services.ingress.fields import REASONS
from services.ingress.records import limits, record_schema
from services.runtime import topology as t

TITLE = "permitbus"
SERVER = "redis://localhost:6379"  # a placeholder: each deployment's PERMITBUS_REDIS_URL
STATUSES = ("eligible", "ineligible", "revoked")  # docs/contract.md "Outlets"
ENTRY_ID = {"type": "string", "pattern": "^[0-9]+-[0-9]+$", "description": "A Redis stream entry id."}
PAYLOAD_ENTRY = {"fields": ["payload"], "payload": "the message payload as UTF-8 JSON text in the field `payload`"}
FIELDS_ENTRY = {"fields": "the payload's properties, one stream entry field each (strings or bytes)"}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("permitbus")
    except PackageNotFoundError:  # pragma: no cover - run from a checkout without installing
        return "0"


def decision_schema(outlet: str) -> dict[str, Any]:
    """The decision JSON on ``outlet`` (msgspec's schema of ``Decision``, with the contract's codes)."""
    raw = msgspec.json.schema(Decision)
    out = dict(raw["$defs"][raw["$ref"].rsplit("/", 1)[1]])
    props = {k: dict(v) for k, v in out["properties"].items()}
    ents = [o.entitlement for o in t.OUTLETS.values() if o.stream == outlet]
    if ents:
        props["entitlement"]["enum"] = ents
    props["status"] |= {"enum": list(STATUSES), "description": "`eligible`, `ineligible` (an application refused) "
                        "or `revoked` (an earlier eligibility ended)."}
    props["subject_id"] |= {"pattern": "^[0-9]{17}[0-9X]$", "description": "The person the decision is about (the "
                            "child for education, the applicant for housing), 18 characters, `X` upper-case."}
    props["district"] = {"anyOf": [{"type": "string", "enum": list(DISTRICTS)}, {"type": "null"}],
                         "description": "The district code the entitlement applies in, or null."}
    props["application_id"]["description"] = "`sqbh` / `applicationNo` for application-based entitlements, else null."
    props["decided_at"] |= {"format": "date-time", "description": "ISO-8601 timestamp with offset."}
    props["version"] |= {"minimum": 1, "description": "Increases by one with each decision for the same entitlement, "
                         "subject and application."}
    props["caused_by"]["description"] = "The ingress record ids (`ywlsh`, `LSH`, `sqbh`, `applicationNo`) whose " \
                                        "arrival produced this decision."
    props["reasons"]["description"] = "Reason codes from docs/policy.md; empty when eligible."
    props["basis"]["description"] = "The clauses of 宁政办发〔2021〕5号 the decision rests on, e.g. `（六）`."
    props["decision_id"]["description"] = "Unique."
    props["priority"]["description"] = "Housing priority groups; false elsewhere."
    out["properties"] = props
    out["title"] = "Decision"
    return out


def quarantine_schema(feed: t.Feed) -> dict[str, Any]:
    return {"title": "QuarantinedRecord", "type": "object", "required": ["payload", "source_id", "reason", "detail"],
            "properties": {
                "payload": {"type": "string", "description": "The original bytes of the ingress entry's `payload`, "
                                                             "unchanged."},
                "source_id": {**ENTRY_ID, "description": f"The `{feed.ingress}` entry id."},
                "reason": {"type": "string", "enum": list(REASONS), "description": "A short machine code."},
                "detail": {"type": "string", "description": "A sentence for a person."}}}


def _dead(title: str, what: dict[str, Any], stream: dict[str, Any], source: dict[str, Any] | None = None,
          **more: Any) -> dict[str, Any]:
    props = {**what, "source_id": source or {**ENTRY_ID, "description": "The entry's id in the stream it was read from."},
             "stream": stream, **more,
             "error": {"type": "string", "description": "The error it raised (our own fault, not bad input)."},
             "deliveries": {"type": "string", "pattern": "^[0-9]+$", "description": "Attempts made "
                                                                                     "(PERMITBUS_MAX_ATTEMPTS)."}}
    return {"title": title, "type": "object", "properties": props,
            "required": [k for k in props if k != "payload" or "fields" not in props]}


def ingress_dlq_schema(feed: t.Feed) -> dict[str, Any]:
    return _dead("IngressDeadLetter", {"payload": {"type": "string", "description": "The record's bytes."}},
                 {"const": feed.ingress, "description": "The stream it was read from."})


def decider_dlq_schema() -> dict[str, Any]:
    return _dead("DeciderDeadLetter",
                 {"event": {"type": "string", "contentEncoding": "binary",
                            "description": "The canonical event (msgpack), as its partition stream held it."}},
                 {"type": "string", "pattern": r"^evt:\{p[0-9]+\}$", "description": "Its partition stream."},
                 {"type": "string", "pattern": "^[0-9]+-[0-9]+(/[0-9]+)?$",
                  "description": "The event's id: its partition stream entry id, then `/<n>`, its place in that "
                                 "entry's envelope (none for a re-driven event, alone in its entry)."})


def relay_dlq_schema(target: str) -> dict[str, Any]:
    return _dead("RelayDeadLetter",
                 {"fields": {"type": "string", "contentEncoding": "binary",
                             "description": "The outbox entry's fields (a msgpack map), as they were."},
                  "payload": {"type": "string", "description": "The outbox entry's `payload`, when it had one."}},
                 {"type": "string", "pattern": r"^out:\{p[0-9]+\}:" + target + "$",
                  "description": "The outbox it was read from."},
                 target={"const": target, "description": "Where it was going."})


def audit_schema(outlet: str) -> dict[str, Any]:
    """An audit entry (services/audit/chain.py): its id is the outlet entry's it records."""
    return {"title": "AuditEntry", "type": "object", "required": ["prev", "who", "dec"],
            "description": f"One decision delivered on `{outlet}`, under the id of its `{outlet}` entry, written in "
                          "the step that delivered it. The fields in this order are what the entry's hash covers "
                          "(SHA-256 of `permitbus:audit:v1\\n` then each field's name and value, each preceded "
                          "by its length as 4 bytes big-endian).",
            "properties": {
                "prev": {"type": "string", "contentEncoding": "binary", "minLength": 32, "maxLength": 32,
                         "description": "The SHA-256 of the entry before it in its stream (of the stream's "
                                        "genesis, `permitbus:audit:genesis:v1\\n` + the stream's name, for "
                                        "the first)."},
                "who": {"type": "string", "contentEncoding": "binary", "minLength": 12, "maxLength": 12,
                        "description": "The subject's keyed pseudonym (PERMITBUS_PSEUDONYM_KEY)."},
                "dec": {"type": "string", "contentEncoding": "binary",
                        "description": "The decision as the outlet received it, sealed with the data key: key id "
                                       "(1 byte), nonce (12), AES-256-GCM ciphertext and tag."}}}


def _as_pydantic(schema: dict[str, Any]) -> Any:
    """A schema FastStream's (pydantic) generator takes as it is."""
    return Annotated[dict, WithJsonSchema(schema)]


def _subscribe(broker, feed: t.Feed) -> None:
    from faststream.redis import StreamSub

    async def normalize(body: dict) -> None:
        """Documentation only: the normalizer is services/ingress/service.py."""

    # the payload schema FastStream reads off the handler's signature (set here, not in the
    # signature: this module's annotations are strings, resolved later, when ``feed`` has moved on)
    normalize.__annotations__ = {"body": _as_pydantic(record_schema(feed.name)), "return": None}
    normalize.__name__ = normalize.__qualname__ = "normalize_" + feed.name.replace(":", "_")

    broker.subscriber(stream=StreamSub(feed.ingress, group=t.NORMALIZER_GROUP, consumer="normalize"),
                      title=feed.ingress,
                      description=f"{feed.department}: publishes its records here (XADD, one field `payload`, the "
                                  "record as UTF-8 JSON). The same record (same record id) may be sent again: it takes "
                                  "effect once. A record that cannot be understood is copied to "
                                  f"`{feed.quarantine}`. Consumer group `{t.NORMALIZER_GROUP}`, created at `0`, read with "
                                  "NOACK: the group keeps no pending list (XINFO shows 0 pending); what is finished is "
                                  f"the position `committed` in `{t.counters(feed.ingress)}`, and `permitbus status` "
                                  "counts what is read and not finished as pending.")(normalize)


def _channels() -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(stream, description, payload schema, x-redis-entry) of every stream permitbus writes for others."""
    out = []
    for f in t.FEEDS.values():
        out.append((f.quarantine, f"Records of `{f.ingress}` that could not be understood, with the reason; the "
                    f"{f.department} may read it, operators list, fix and re-drive them.", quarantine_schema(f),
                    FIELDS_ENTRY))
    for f in t.FEEDS.values():
        out.append((t.dlq(f.ingress), f"Records of `{f.ingress}` that made the normalizer fail (our fault) "
                    "PERMITBUS_MAX_ATTEMPTS times; for operators.", ingress_dlq_schema(f), FIELDS_ENTRY))
    out.append((t.DECIDER_DLQ, "Events the decider failed on PERMITBUS_MAX_ATTEMPTS times (our fault); for "
                "operators.", decider_dlq_schema(), FIELDS_ENTRY))
    for target in t.RELAY_TARGETS:
        out.append((t.relay_dlq(target), f"Outbox entries the relay could not move to `{target}` after "
                    "PERMITBUS_MAX_ATTEMPTS tries; for operators.", relay_dlq_schema(target), FIELDS_ENTRY))
    for dept, stream in t.DEPARTMENT_OUTLETS.items():
        ents = [o for o in t.OUTLETS.values() if o.stream == stream]
        what = (f"entitlements {', '.join(f'`{o.entitlement}`' for o in ents)}" if ents
                else "no entitlement yet in this release")
        who = f"the {ents[0].department}" if ents else f"department `{dept}`"
        out.append((stream, f"Decisions for {who} ({what}): once each, in order "
                    "per subject, with the clause and the reasons. Read it with XREAD/XREADGROUP as `dept-"
                    f"{dept}`; the read API's rosters give the position to follow it from.", decision_schema(stream),
                    PAYLOAD_ENTRY))
    for outlet in t.AUDITED:
        out.append((t.audit(outlet, "<N>"), f"The audit log of `{outlet}`, one stream per partition N (0 to "
                    "PERMITBUS_PARTITIONS - 1), kept PERMITBUS_AUDIT_RETENTION_DAYS: every decision delivered "
                    "there, hash-chained; for auditors (`permitbus audit verify|export`, user `pb-audit`).",
                    audit_schema(outlet), FIELDS_ENTRY))
    return out


def build() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document, as a JSON-able dict."""
    from faststream.redis import RedisBroker
    from faststream.specification import AsyncAPI

    broker = RedisBroker(SERVER, protocol_version="7", description="The deployment's Redis (PERMITBUS_REDIS_URL); "
                         "each department connects as its own ACL user `dept-<dept>` (docs/contract.md \"Access\").")
    for feed in t.FEEDS.values():
        _subscribe(broker, feed)
    entries: dict[str, dict[str, Any]] = {f.ingress: PAYLOAD_ENTRY for f in t.FEEDS.values()}
    for stream, description, schema, entry in _channels():
        broker.publisher(stream=stream, title=stream, description=description, schema=_as_pydantic(schema))
        entries[stream] = entry
    doc = AsyncAPI(broker, title=TITLE, version=_version(), schema_version="3.0.0",
                   description=DESCRIPTION).to_specification().to_jsonable()
    # FastStream calls its one server "development": this is every deployment's
    doc = json.loads(json.dumps(doc).replace('"#/servers/development"', '"#/servers/deployment"'))
    doc["servers"] = {"deployment": doc["servers"].pop("development")}
    order = [*(f.ingress for f in t.FEEDS.values()), *(c[0] for c in _channels())]
    for part in ("channels", "operations"):  # FastStream's order varies from run to run: the graph's
        doc[part] = {k: doc[part][k] for k in sorted(doc[part], key=order.index)}
    for part in ("messages", "schemas"):
        doc["components"][part] = dict(sorted(doc["components"][part].items()))
    for channel in doc["channels"].values():
        channel.get("bindings", {}).get("redis", {}).pop("consumerName", None)
        for ref in channel["messages"].values():
            msg = doc["components"]["messages"][unquote(ref["$ref"].rsplit("/", 1)[1])]
            msg.pop("correlationId", None)
            msg["contentType"] = "application/json"
            msg["x-redis-entry"] = entries[channel["address"]]
            if channel["address"] in entries and channel["address"].startswith("ingress:"):
                msg["x-limits"] = limits()
    return doc


def render() -> str:
    """The document as ``docs/asyncapi.json`` holds it."""
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


DESCRIPTION = """\
permitbus: Nanjing's departments publish their records on Redis streams; permitbus decides the \
entitlements of 宁政办发〔2021〕5号 and pushes each department the decisions it needs.

* Ingress (`ingress:<feed>`): each entry has one field, `payload`, the record as UTF-8 JSON exactly \
as the department's system emits it (the payload schemas below). Limits (docs/contract.md, "Limits"): a payload \
over 64 KiB is `TOO_LARGE`, JSON nested deeper than 32 levels `INVALID_JSON`, the same field twice \
in one object `DUPLICATE_FIELD`; such a record, like any record that cannot be understood, is \
copied to `quarantine:<feed>` with a reason and never stops the feed.
* Outlets (`outlet:<dept>`): each entry has one field, `payload`, a decision as JSON.
* Quarantine and dead-letter streams: the payload's properties are the entry's fields.
* Audit log (`audit:{outlet:<dept>}:p<N>`, one stream per outlet and partition): the properties \
are the entry's fields; each entry holds the hash of the one before it.

Generated by `permitbus asyncapi` from the stream graph and the schemas; served by `permitbus api` \
at `GET /asyncapi.json`."""
