"""``permitbus asyncapi``: the AsyncAPI 3.0 document is current, valid against the official AsyncAPI
3.0.0 JSON Schema, names every stream of the graph, and agrees with what the services really accept
and write (records the normalizer accepts validate; decisions and quarantine entries on a real
Redis validate)."""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import json
import pathlib
import subprocess
import sys
from urllib.parse import unquote

import httpx
import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings as hsettings
from hypothesis import strategies as st

from services.ingress.service import understand
from services.ingress.fields import Reject
from services.ops.asyncapi import render
from services.outlets.api import create_app
from services.runtime import access
from services.runtime import topology as t
from services.sim.generator import SimConfig, generate
from tests.conftest import publish, read_outlet
from tests.fuzz_payloads import FEEDS, payloads
from tests.harness import drain, services
from tests.people import contribution, housing, make_id, months, permit, school

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "asyncapi.json"
# The official JSON Schema of AsyncAPI 3.0.0: `schemas/3.0.0-without-$id.json` of the npm package
# @asyncapi/specs 6.11.1 (Apache-2.0; no PyPI package carries it), gzipped; see tests/data/README.md.
OFFICIAL = ROOT / "tests" / "data" / "asyncapi-3.0.0.schema.json.gz"
OFFICIAL_SHA256 = "abe96881dbfaad495ccbb6bd8d3fb43ca18a13b9d7564849ccb66f39d5e5b20f"


@pytest.fixture(scope="module")
def doc() -> dict:
    return json.loads(render())


def official_validator() -> jsonschema.Draft7Validator:
    raw = gzip.decompress(OFFICIAL.read_bytes())
    assert hashlib.sha256(raw).hexdigest() == OFFICIAL_SHA256, "the vendored AsyncAPI schema was changed"
    schema = json.loads(raw)
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def payload_schema(doc: dict, channel: str) -> dict:
    """The payload schema of the one message of ``channel``, its references resolved."""
    (ref,) = doc["channels"][channel]["messages"].values()
    message = doc["components"]["messages"][unquote(ref["$ref"]).rsplit("/", 1)[1]]
    return doc["components"]["schemas"][unquote(message["payload"]["$ref"]).rsplit("/", 1)[1]]


def validator(doc: dict, channel: str) -> jsonschema.Draft7Validator:
    schema = payload_schema(doc, channel)
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


def test_committed_document_is_current_and_the_command_prints_it():
    """docs/asyncapi.json is what `permitbus asyncapi` prints now (regenerate it with
    `permitbus asyncapi > docs/asyncapi.json`)."""
    out = subprocess.run([sys.executable, "-m", "services.cli", "asyncapi"], capture_output=True, cwd=ROOT,
                         timeout=60, check=True)
    assert out.stdout.decode() == render()
    assert DOC.read_text(encoding="utf-8") == render(), "docs/asyncapi.json is stale: permitbus asyncapi > it"


def test_valid_against_the_official_asyncapi_3_schema(doc):
    v = official_validator()
    errors = [f"{list(e.absolute_path)}: {e.message[:200]}" for e in v.iter_errors(doc)]
    assert errors == []
    assert doc["asyncapi"] == "3.0.0"
    # the validator does look inside: a 2.x-style operation and a channel without its message fail
    broken = json.loads(json.dumps(doc))
    broken["operations"]["ingress:psb:permit"]["action"] = "subscribe"
    assert any("subscribe" in e.message for e in v.iter_errors(broken))
    broken = json.loads(json.dumps(doc))
    broken["channels"]["outlet:psb"]["messages"] = ["not a map"]
    assert list(v.iter_errors(broken))


def test_every_stream_of_the_graph_is_a_channel_and_no_other(doc):
    """From the stream graph (services/runtime/access.py): each department's ingress, quarantine
    and outlet, every quarantine and dead-letter stream (the relay's included)."""
    channels = {c["address"] for c in doc["channels"].values()}
    want = {*t.quarantine_streams(), *t.dead_letter_streams(), *(f.ingress for f in t.FEEDS.values())}
    for dept in access.departments():
        want |= {k for u in dept.uses for k in u.keys}
    assert want <= channels
    assert {t.relay_dlq(x) for x in t.RELAY_TARGETS} <= channels and "dlq:relay{outlet:health}" in channels
    declared = access.key_patterns()
    assert all(any(fnmatch.fnmatchcase(c, p) for p in declared) for c in channels), "a channel the graph lacks"
    ops = {o["channel"]["$ref"].rsplit("/", 1)[1]: o["action"] for o in doc["operations"].values()}
    assert {c: a for c, a in ops.items() if a == "receive"} == {f.ingress: "receive" for f in t.FEEDS.values()}
    assert doc["channels"]["ingress:psb:permit"]["bindings"]["redis"]["groupName"] == t.NORMALIZER_GROUP


def test_ingress_schemas_state_the_contract(doc):
    permit_s = payload_schema(doc, "ingress:psb:permit")
    assert permit_s["properties"]["ywlx"]["enum"] == ["QF", "QZ", "BG", "ZX", "LH"]
    assert set(permit_s["required"]) == {"ywlsh", "ywlx", "sfzh", "xm", "czsj"}
    contrib = payload_schema(doc, "ingress:hrss:contribution")
    assert sorted(contrib["properties"]["AAE140"]["enum"]) == ["110", "120", "170", "210", "310", "390", "410", "510"]
    house = payload_schema(doc, "ingress:housing:application")
    assert house["properties"]["appliedOn"]["format"] == "date" and house["properties"]["ownsHome"]["type"] == "boolean"
    (ref,) = doc["channels"]["ingress:edu:application"]["messages"].values()
    message = doc["components"]["messages"][unquote(ref["$ref"]).rsplit("/", 1)[1]]
    assert message["x-limits"]["maxPayloadBytes"] == 64 * 1024 and message["x-limits"]["maxJsonDepth"] == 32
    v = validator(doc, "ingress:housing:application")
    rec = housing(make_id())
    assert v.is_valid(rec)
    for bad in ({"householdSize": 0}, {"monthlyIncome": -1}, {"monthlyIncome": 2e12}, {"districtCode": "320100"},
                {"appliedOn": "1899-12-31"}, {"appliedOn": "2026/01/01"}, {"ownsHome": "false"}):
        assert not v.is_valid({**rec, **bad}), bad
    v = validator(doc, "ingress:hrss:contribution")
    rec = contribution(make_id(), "202501")
    assert v.is_valid(rec) and not v.is_valid({**rec, "AAE002": "198912"}) and not v.is_valid({**rec, "AAE002": "210001"})
    v = validator(doc, "ingress:psb:permit")
    assert v.is_valid(permit("LH", make_id(), jzzbh=None)) and not v.is_valid(permit("QF", make_id(), district=None))


# Reasons a JSON Schema can state (the others need arithmetic: a check digit, two dates compared).
STATED = {"NOT_AN_OBJECT", "MISSING_FIELD", "WRONG_TYPE", "UNKNOWN_CODE", "UNKNOWN_DISTRICT", "BAD_REGION",
          "BAD_NUMBER"}


def test_simulated_records_the_normalizer_accepts_validate_and_stated_faults_do_not(doc):
    validators = {f: validator(doc, f"ingress:{f}") for f in t.FEEDS}
    seen: dict[str, int] = {}
    for i, rec in enumerate(generate(SimConfig(people=400, seed=3, malformed_rate=0.2))):
        verdict = understand(rec.feed, f"{i}-0", {b"payload": rec.payload})
        try:
            body = json.loads(rec.payload)
        except (ValueError, UnicodeDecodeError):
            continue
        if not isinstance(verdict, Reject):
            assert validators[rec.feed].is_valid(body), (rec.feed, rec.payload[:300])
            seen["accepted"] = seen.get("accepted", 0) + 1
        elif verdict.reason in STATED:
            assert not validators[rec.feed].is_valid(body), (verdict.reason, rec.payload[:300])
            seen[verdict.reason] = seen.get(verdict.reason, 0) + 1
    assert seen.get("accepted", 0) > 1000 and len(seen) >= 6, seen


@hsettings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(FEEDS).flatmap(lambda feed: st.tuples(st.just(feed), payloads(feed))))
def test_no_fuzzed_record_the_normalizer_accepts_is_refused_by_the_schema(doc, case):
    feed, raw = case
    verdict = understand(feed, "1-0", {b"payload": raw})
    if not isinstance(verdict, Reject):
        assert validator(doc, f"ingress:{feed}").is_valid(json.loads(raw)), raw[:300]


@pytest.mark.parametrize("op, extra", [
    ("ZX", {"jzdqh": "0", "qfrq": "not a date", "yxqz": 7, "hylb": 3}),  # a cancellation reads none of them
    ("BG", {"qfrq": "someday", "hylb": ["x"]}),
    ("LH", {"jzzbh": 12, "yxqz": "never"}),
])
def test_fields_an_operation_ignores_are_not_refused_by_the_schema(doc, op, extra):
    """Found by the fuzzer on a clean clone: a `ZX` with `jzdqh` "0" was accepted (a cancellation
    reads no district) and refused by the schema. The schema constrains each field only for the
    operations that read it."""
    person = make_id("19880229")
    rec = {**permit(op, person, district="320104", czsj="2025-01-01 09:00:00"), **extra}
    verdict = understand("psb:permit", "1-0", {b"payload": json.dumps(rec, ensure_ascii=False).encode()})
    assert not isinstance(verdict, Reject), verdict
    assert validator(doc, "ingress:psb:permit").is_valid(rec)


async def test_decisions_and_quarantine_entries_written_on_redis_validate(r, settings, doc):
    guardian, child, applicant = make_id("19850101"), make_id("20190301"), make_id("19800101")
    await publish(r, "psb:permit", permit("QF", guardian, district="320111"), permit("QF", applicant, district="320106"),
                  {"ywlsh": "bad", "ywlx": "QF"}, b"not json")
    await publish(r, "hrss:contribution", *[contribution(guardian, m) for m in months("202501", 7)],
                  *[contribution(applicant, m) for m in months("202501", 7)])
    await publish(r, "edu:application", school(guardian, child))
    await publish(r, "housing:application", housing(applicant))
    async with services(settings):
        await drain(r, settings)
    checked = 0
    for o in t.OUTLETS.values():
        v = validator(doc, o.stream)
        for decision in await read_outlet(r, o.stream):
            assert list(v.iter_errors(decision)) == []
            checked += 1
    assert checked >= 4 and {o.stream for o in t.OUTLETS.values()} <= set(doc["channels"])
    v = validator(doc, "quarantine:psb:permit")
    parked = [{k.decode(): x.decode("utf-8", "replace") for k, x in f.items()}
              for _, f in await r.xrange("quarantine:psb:permit")]
    assert len(parked) == 2 and all(list(v.iter_errors(p)) == [] for p in parked)
    # a decision the contract does not allow is refused by the same schema
    wrong = {**(await read_outlet(r, "outlet:psb"))[0], "status": "maybe"}
    assert not v.is_valid(wrong) and not validator(doc, "outlet:psb").is_valid(wrong)


async def test_api_serves_the_document_without_a_token(settings):
    app = create_app(settings.model_copy(update={"api_tokens": {"psb": "t-psb"}}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        got = await c.get("/asyncapi.json")
    assert got.status_code == 200 and got.headers["content-type"].startswith("application/json")
    assert got.text == DOC.read_text(encoding="utf-8")


async def test_dead_letters_written_on_redis_validate(r, settings, doc, monkeypatch):
    """A normalizer's, a decider's and a relay's dead letter (faults injected for one record
    each) have the fields the document gives their streams."""
    import msgspec

    from services.ingress import service as ingress_service
    from services.outlets import relay
    from services.rules import health

    bad_norm, bad_decide, bad_relay = make_id(), make_id(), make_id()
    real_norm, real_health, real_decoder = ingress_service.NORMALIZERS["psb:permit"], health.decide, \
        relay.decision_decoder

    def norm(rec, source_id, raw):
        if rec.get("sfzh") == bad_norm:
            raise KeyError("injected fault")
        return real_norm(rec, source_id, raw)

    def decide(pic, day):
        if pic.id == bad_decide:
            raise RuntimeError("injected fault")
        return real_health(pic, day)

    class Decoder:
        def decode(self, data):
            if bad_relay.encode() in data:
                raise msgspec.ValidationError("injected fault")
            return real_decoder.decode(data)

    monkeypatch.setitem(ingress_service.NORMALIZERS, "psb:permit", norm)
    monkeypatch.setattr(health, "decide", decide)
    monkeypatch.setattr(relay, "decision_decoder", Decoder())
    await publish(r, "psb:permit", *(permit("QF", p, district="320111") for p in (bad_norm, bad_decide, bad_relay)))
    async with services(settings.model_copy(update={"max_attempts": 2})):
        await drain(r, settings)
    streams = {"dlq:ingress:psb:permit": 1, t.DECIDER_DLQ: 1, t.relay_dlq("outlet:health"): 1}
    for stream, n in streams.items():
        entries = await r.xrange(stream)
        assert len(entries) == n, stream
        v = validator(doc, stream)
        for _, fields in entries:
            as_text = {k.decode(): x.decode("utf-8", "replace") for k, x in fields.items()}
            assert list(v.iter_errors(as_text)) == [], (stream, sorted(as_text))
            assert not v.is_valid({k: x for k, x in as_text.items() if k != "error"})
