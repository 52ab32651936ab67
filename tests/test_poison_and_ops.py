"""Poison records go to dead-letter streams after N deliveries and the feed keeps moving;
operators list, show and re-drive dead letters and quarantined records."""

import asyncio

import msgspec
import pytest

from schemas.events import encode_envelope, encode_event
from services.ingress import service as ingress_service
from services.ingress.service import understand
from services.runtime import topology as t
from services.runtime.identity import partition_of
from services.rules import health
from tests.conftest import publish, read_outlet
from tests.harness import drain, services, unfinished
from tests.people import make_id, permit
from tests.test_demo import run_cli


@pytest.fixture
def settings3(settings):
    return settings.model_copy(update={"max_attempts": 3})


async def test_decider_poison_is_dead_lettered_then_redriven_once(r, settings3, redis_url, monkeypatch):
    poison, others = make_id(), [make_id() for _ in range(5)]
    real = health.decide

    def broken(pic, day):
        if pic.id == poison:
            raise RuntimeError("injected fault")
        return real(pic, day)

    monkeypatch.setattr(health, "decide", broken)
    await publish(r, "psb:permit", permit("QF", poison, district="320102"))
    await publish(r, "psb:permit", *[permit("QF", p, district="320102") for p in others])
    async with services(settings3):
        await drain(r, settings3)
    dead = await r.xrange("dlq:decider")
    assert len(dead) == 1
    fields = dead[0][1]
    assert fields[b"deliveries"] == b"3" and b"injected fault" in fields[b"error"]
    assert fields[b"stream"].startswith(b"evt:{p")
    subjects = [d["subject_id"] for d in await read_outlet(r, "outlet:health")]
    assert sorted(subjects) == sorted(others)  # later records still flowed
    # the operator sees it, with the ID masked
    listing = await asyncio.to_thread(run_cli, redis_url, "dlq", "list")
    assert "dlq:decider" in listing and "injected fault" in listing and "1 entries" in listing
    # the bug is fixed; re-drive: applied once
    monkeypatch.setattr(health, "decide", real)
    async with services(settings3):
        parts = {"PERMITBUS_PARTITIONS": str(settings3.partitions)}  # as the deployment's: checked on re-drive
        out = await asyncio.to_thread(run_cli, redis_url, "dlq", "redrive", "decider", **parts)
        assert "re-driven: 1" in out
        await drain(r, settings3)
        again = await asyncio.to_thread(run_cli, redis_url, "dlq", "redrive", "decider", **parts)
        assert "re-driven: 0" in again
        await drain(r, settings3)
    health_out = await read_outlet(r, "outlet:health")
    assert [(d["subject_id"], d["version"]) for d in health_out if d["subject_id"] == poison] == [(poison, 1)]
    assert await r.xlen("dlq:decider") == 0


async def test_normalizer_poison_is_dead_lettered_then_redriven_once(r, settings3, redis_url, monkeypatch):
    real = ingress_service.NORMALIZERS["psb:permit"]
    calls = {"n": 0}

    def broken(rec, source_id, raw):
        if rec.get("ywlsh") == "POISON":
            calls["n"] += 1
            raise KeyError("injected fault")
        return real(rec, source_id, raw)

    monkeypatch.setitem(ingress_service.NORMALIZERS, "psb:permit", broken)
    victim, after = make_id(), make_id()
    await publish(r, "psb:permit", permit("QF", victim, district="320111", ywlsh="POISON"))
    await publish(r, "psb:permit", permit("QF", after, district="320111"))
    async with services(settings3):
        await drain(r, settings3)
    dead = await r.xrange("dlq:ingress:psb:permit")
    assert len(dead) == 1 and dead[0][1][b"deliveries"] == b"3" and b"injected fault" in dead[0][1][b"error"]
    assert calls["n"] == 1 + 3  # the batch, then the entry alone until its attempts ran out
    assert [d["subject_id"] for d in await read_outlet(r, "outlet:health")] == [after]
    assert await unfinished(r, "psb:permit") == 0
    shown = await asyncio.to_thread(run_cli, redis_url, "dlq", "show", "ingress:psb:permit", dead[0][0].decode())
    assert victim not in shown and victim[:6] + "********" + victim[-4:] in shown
    monkeypatch.setitem(ingress_service.NORMALIZERS, "psb:permit", real)
    async with services(settings3):
        await asyncio.to_thread(run_cli, redis_url, "dlq", "redrive", "ingress:psb:permit")
        await drain(r, settings3)
    assert sorted(d["subject_id"] for d in await read_outlet(r, "outlet:health")) == sorted([after, victim])


async def test_quarantine_list_show_and_redrive_a_fixed_record(r, settings, redis_url):
    person = make_id()
    good = permit("QF", person, district="320105")
    bad = dict(good, sfzh=person[:-1] + ("0" if person[-1] != "0" else "1"))  # wrong check digit
    import json

    await publish(r, "psb:permit", bad)
    async with services(settings):
        await drain(r, settings)
        listing = await asyncio.to_thread(run_cli, redis_url, "quarantine", "list", "psb:permit")
        assert "BAD_ID_CHECKSUM" in listing and "1 entries" in listing
        (qid, fields), = await r.xrange("quarantine:psb:permit")
        shown = await asyncio.to_thread(run_cli, redis_url, "quarantine", "show", "psb:permit", qid.decode())
        assert "reason: BAD_ID_CHECKSUM" in shown and bad["sfzh"] not in shown
        fixed = json.dumps(good, ensure_ascii=False)
        out = await asyncio.to_thread(run_cli, redis_url, "quarantine", "redrive", "psb:permit", qid.decode(),
                                      "--payload", fixed)
        assert "re-driven: 1" in out
        await drain(r, settings)
    assert await r.xlen("quarantine:psb:permit") == 0
    assert [d["subject_id"] for d in await read_outlet(r, "outlet:health")] == [person]
    missing = await asyncio.to_thread(run_cli, redis_url, "quarantine", "show", "psb:permit", "1-1", expect=1)
    assert "no entry" in missing


async def test_a_bad_event_in_an_envelope_is_dead_lettered_alone_and_a_damaged_envelope_whole(r, settings3):
    """Partition-stream entries carry envelopes of events: an item that is no event goes to
    ``dlq:decider`` under ``<entry id>/<index>`` while the envelope's other events take effect;
    an entry that cannot be opened at all goes there as one undecodable event."""
    good = make_id()
    p = partition_of(good, settings3.partitions)
    event = understand("psb:permit", "1-0", {b"payload": msgspec.json.encode(permit("QF", good, district="320102"))})
    stray = msgspec.msgpack.encode({"not": "an event"})
    first = await r.xadd(t.evt(p), {"b": encode_envelope([stray, encode_event(event)])})
    damaged = await r.xadd(t.evt(p), {"b": b"\xdc\x00\x05\x01"})
    async with services(settings3, services=("decider", "relay")):
        await drain(r, settings3)
    dead = {f[b"source_id"]: f for _, f in await r.xrange("dlq:decider")}
    assert sorted(dead) == sorted([first + b"/0", damaged])
    assert dead[first + b"/0"][b"event"] == stray and dead[damaged][b"event"] == b"\xdc\x00\x05\x01"
    assert all(b"undecodable" in f[b"error"] and f[b"deliveries"] == b"3" for f in dead.values())
    assert [d["subject_id"] for d in await read_outlet(r, "outlet:health")] == [good]
