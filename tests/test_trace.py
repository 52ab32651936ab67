"""``permitbus trace <feed> <record id>`` (issue 12, point 5): every state a record can be in,
answered from the indexes the normalizer and the relay keep, against a real Redis and the real
services."""

import asyncio
import json

import pytest

from services.ingress import service as ingress_service
from services.ops.trace import trace
from services.rules import health
from services.runtime import topology as t
from services.runtime.identity import partition_of
from tests.conftest import publish
from tests.harness import drain, services
from tests.people import make_id, permit
from tests.test_demo import run_cli


@pytest.fixture
def settings3(settings):
    return settings.model_copy(update={"max_attempts": 3})


async def where(r, settings, rid, feed="psb:permit"):
    return await trace(r, feed, rid, settings.partitions, settings.trace_days)


async def test_decided_names_the_decision_ids_on_each_outlet(r, settings, redis_url):
    who = make_id()
    await publish(r, "psb:permit", permit("QF", who, district="320111", ywlsh="GA-DECIDED"))
    async with services(settings):
        await drain(r, settings)
    found = await where(r, settings, "GA-DECIDED")
    assert found["state"] == "decided" and found["decisions"], found
    for outlet, ids in found["decisions"].items():
        for eid in ids:
            (row,) = await r.xrange(outlet, eid, eid)
            assert "GA-DECIDED" in json.loads(row[1][b"payload"])["caused_by"]
    assert "outlet:health" in found["decisions"]
    # the command line says the same; no ID number anywhere in the indexes
    out = await asyncio.to_thread(run_cli, redis_url, "trace", "psb:permit", "GA-DECIDED")
    assert "decided" in out and found["decisions"]["outlet:health"][0] in out
    for key in await r.keys("trace*"):
        assert who.encode() not in b"".join(x for kv in (await r.hgetall(key)).items() for x in kv)
        assert 0 < await r.pttl(key) <= settings.trace_days * 86_400_000


async def test_quarantined_by_the_normalizer_says_why(r, settings):
    await publish(r, "psb:permit", permit("QF", make_id(), district="999999", ywlsh="GA-BAD"))
    async with services(settings):
        await drain(r, settings)
    found = await where(r, settings, "GA-BAD")
    assert found["state"] == "quarantined" and found["reason"] == "UNKNOWN_DISTRICT", found
    assert found["entry"] and (await r.xrange(found["stream"], found["entry"], found["entry"]))


async def test_quarantined_by_the_decider_unknown_permit(r, settings):
    await publish(r, "psb:permit", permit("QZ", make_id(), jzzbh="NOSUCH", ywlsh="GA-QZ"))
    async with services(settings):
        await drain(r, settings)
    found = await where(r, settings, "GA-QZ")
    assert found["state"] == "quarantined" and found["reason"] == "UNKNOWN_PERMIT" and found["by"] == "decide", found


async def test_waiting_in_its_partition_while_the_decider_is_away(r, settings):
    who = make_id()
    await publish(r, "psb:permit", permit("QF", who, district="320111", ywlsh="GA-WAIT"))
    async with services(settings):
        await drain(r, settings)
    await publish(r, "psb:permit", permit("QZ", who, ywlsh="GA-WAIT2", yxqz="2028-12-31"))
    normalizer_only = settings.model_copy()
    from services.runtime.runner import Running, serve

    running = Running()
    task = asyncio.create_task(serve(normalizer_only, ["normalize"], running=running, handle_signals=False))
    try:
        async def indexed():
            return (await where(r, settings, "GA-WAIT2"))["state"] != "not_seen"
        from tests.conftest import wait_until
        await wait_until(indexed)
    finally:
        running.stop.set()
        await task
    found = await where(r, settings, "GA-WAIT2")
    p = partition_of(who, settings.partitions)
    assert found["state"] == "waiting" and found["partition"] == p and found["stream"] == t.evt(p), found
    assert found["entry"]
    async with services(settings):
        await drain(r, settings)
    assert (await where(r, settings, "GA-WAIT2"))["state"] == "decided"


async def test_dead_lettered_by_the_decider_and_by_the_normalizer_with_the_error(r, settings3, monkeypatch):
    poison = make_id()
    real = health.decide

    def broken(pic, day):
        if pic.id == poison:
            raise RuntimeError("injected fault")
        return real(pic, day)

    real_norm = ingress_service.NORMALIZERS["psb:permit"]

    def broken_norm(rec, source_id, raw):
        if rec.get("ywlsh") == "GA-NPOISON":
            raise KeyError("injected normalizer fault")
        return real_norm(rec, source_id, raw)

    monkeypatch.setattr(health, "decide", broken)
    monkeypatch.setitem(ingress_service.NORMALIZERS, "psb:permit", broken_norm)
    await publish(r, "psb:permit", permit("QF", poison, district="320102", ywlsh="GA-POISON"),
                  permit("QF", make_id(), district="320102", ywlsh="GA-NPOISON"))
    async with services(settings3):
        await drain(r, settings3)
    found = await where(r, settings3, "GA-POISON")
    assert found["state"] == "dead_lettered" and found["stream"] == t.DECIDER_DLQ, found
    assert "injected fault" in found["error"] and poison not in json.dumps(found)
    found = await where(r, settings3, "GA-NPOISON")
    assert found["state"] == "dead_lettered" and found["stream"] == "dlq:ingress:psb:permit", found
    assert "injected normalizer fault" in found["error"]


async def test_not_seen_and_unindexable_ids(r, settings, redis_url):
    assert (await where(r, settings, "GA-NEVER"))["state"] == "not_seen"
    assert (await where(r, settings, "with space"))["state"] == "not_seen"
    out = await asyncio.to_thread(run_cli, redis_url, "trace", "psb:permit", "GA-NEVER", expect=1)
    assert "not seen" in out
    out = await asyncio.to_thread(run_cli, redis_url, "trace", "psb:permit", "GA-NEVER", "--json", expect=1)
    assert json.loads(out.strip().splitlines()[-1])["state"] == "not_seen"
    out = await asyncio.to_thread(run_cli, "redis://127.0.0.1:1/0", "trace", "psb:permit", "GA-NEVER", expect=2)
    assert "cannot be reached" in out
    with pytest.raises(ValueError):
        await where(r, settings, "x", feed="no:feed")


async def test_a_record_id_with_a_newline_is_not_indexed_and_stops_nothing(r, settings):
    """A department's record id is any string: one that would break the index's lines is left
    out of it, and its decisions flow."""
    who = make_id()
    await publish(r, "psb:permit", permit("QF", who, district="320111", ywlsh="GA\nLINE"))
    async with services(settings):
        await drain(r, settings)
    assert await r.xlen("outlet:health") == 1
    assert await r.xlen(t.relay_dlq("outlet:health")) == 0


async def test_dead_lettered_by_the_relay_on_its_way_to_an_outlet(r, settings3, monkeypatch):
    from tests.test_fault_isolation import _relay_faults

    victim = make_id()
    _relay_faults(monkeypatch, "pb_relay_refused", victim, targets=("outlet:health", "outlet:civil"))
    await publish(r, "psb:permit", permit("QF", victim, district="320111", ywlsh="GA-RPOISON"),
                  permit("QF", make_id(), district="320111", ywlsh="GA-FINE"))
    async with services(settings3):
        await drain(r, settings3)
    found = await where(r, settings3, "GA-RPOISON")
    assert found["state"] == "dead_lettered" and found["stream"] == t.relay_dlq("outlet:health"), found
    assert "PBARG pb_relay" in found["error"] and found["still_parked"]
    assert (await where(r, settings3, "GA-FINE"))["state"] == "decided"


async def test_without_the_index_of_accepted_records_quarantine_and_decisions_are_still_traced(r, settings):
    """The contribution feed's accepted records are not indexed by default (the burst's price,
    BENCHMARKS.md): one that took effect without a decision is not found, and trace says why; a
    quarantined one still is."""
    from services.ops.trace import trace
    from tests.conftest import publish
    from tests.harness import drain, services
    from tests.people import contribution, make_id

    assert "hrss:contribution" not in settings.trace_accepted  # the default
    person = make_id(seq=77)
    await publish(r, "hrss:contribution", contribution(person, "202601", lsh="RS-QUIET"),
                  {**contribution(person, "202602", lsh="RS-BAD"), "AAE002": "999912"})
    async with services(settings):
        await drain(r, settings)
    quiet = await trace(r, "hrss:contribution", "RS-QUIET", settings.partitions, settings.trace_days,
                        trace_accepted=False)
    assert quiet["state"] == "not_seen" and "PERMITBUS_TRACE_ACCEPTED" in quiet["why"]
    bad = await trace(r, "hrss:contribution", "RS-BAD", settings.partitions, settings.trace_days, trace_accepted=False)
    assert bad["state"] == "quarantined" and bad["reason"] == "BAD_DATE"
