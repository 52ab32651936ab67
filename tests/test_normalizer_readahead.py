"""The normalizer reads the next batch while the previous one is applied (``Normalizer.submit`` /
``apply_inbox``): a person's records keep their order, and a stop applies and commits every
batch already read, leaving nothing unfinished."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from schemas.events import decode_event, open_envelope
from services.ingress.service import Normalizer
from services.runtime import topology as t
from services.runtime.redis import LIBRARY, fn
from services.runtime.identity import Pseudonymizer
from services.runtime.settings import Settings
from tests.conftest import publish
from tests.harness import services, unfinished
from tests.people import contribution, make_id, months

FEED = "hrss:contribution"
pseudonym = Pseudonymizer(Settings().pseudonym_secret())


async def events_on_partitions(r, partitions: int) -> list[tuple[str, str]]:
    """(person, source id) of every event on the partition streams, partition by partition (the
    person as the event names them: by pseudonym)."""
    out = []
    for p in range(partitions):
        for _, fields in await r.xrange(t.evt(p)):
            for item in open_envelope(fields[b"b"]):
                ev = decode_event(item)
                out.append((ev.pseudonym, ev.source_id))
    return out


async def test_reads_ahead_in_order_and_a_stop_finishes_every_batch_read(r, settings, monkeypatch):
    settings = settings.model_copy(update={"batch_size": 10})
    people = [make_id(seq=i) for i in range(3)]
    ids = []
    for m in months("202201", 40):
        ids += await publish(r, FEED, *[contribution(p, m) for p in people])
    source = {eid.decode(): i for i, eid in enumerate(ids)}

    first_applied = asyncio.Event()
    queued_while_applying = []
    apply = Normalizer.apply

    async def slow_apply(self, entries, prepared=None):
        await asyncio.sleep(0.05)
        queued_while_applying.append(self.inbox.qsize())
        await apply(self, entries, prepared)
        first_applied.set()

    monkeypatch.setattr(Normalizer, "apply", slow_apply)
    async with services(settings, services=("normalize",)):
        await asyncio.wait_for(first_applied.wait(), 10)
        await asyncio.sleep(0.15)
    # stopped part-way: what was read is applied and acknowledged, the rest is left unread
    group = next(g for g in await r.xinfo_groups(t.FEEDS[FEED].ingress) if g["name"] == t.NORMALIZER_GROUP.encode())
    assert await unfinished(r, FEED) == 0
    assert await r.hget(t.counters(t.FEEDS[FEED].ingress), "committed") == group["last-delivered-id"]
    assert 10 <= group["entries-read"] < len(ids)
    assert max(queued_while_applying) == 1  # the next batch was read while one was being applied

    events = await events_on_partitions(r, settings.partitions)
    assert sorted(source[sid] for _, sid in events) == list(range(group["entries-read"]))
    for person in people:
        mine = [source[sid] for who, sid in events if who == pseudonym(person)]
        assert mine == sorted(mine) and mine


async def test_a_batch_is_prepared_during_the_last_acknowledgement_but_written_after_it(r, settings, monkeypatch):
    settings = settings.model_copy(update={"batch_size": 10})
    person = make_id()
    await publish(r, FEED, *[contribution(person, m) for m in months("202101", 60)])
    log: list[str] = []
    prepare, apply, fcall = Normalizer.prepare, Normalizer.apply, aioredis.Redis.fcall

    def logged_prepare(self, entries):
        log.append("prepare")
        return prepare(self, entries)

    async def logged_apply(self, entries, prepared=None):
        log.append("write")
        await apply(self, entries, prepared)

    async def slow_ack(self, name, *args):
        if name == fn("pb_ack"):
            await asyncio.sleep(0.03)
            log.append("acked")
        return await fcall(self, name, *args)

    monkeypatch.setattr(Normalizer, "prepare", logged_prepare)
    monkeypatch.setattr(Normalizer, "apply", logged_apply)
    monkeypatch.setattr(aioredis.Redis, "fcall", slow_ack)
    async with services(settings, services=("normalize",)):
        for _ in range(400):
            group = (await r.xinfo_groups(t.FEEDS[FEED].ingress))[0]
            if group["lag"] == 0 and await unfinished(r, FEED) == 0:
                break
            await asyncio.sleep(0.02)
    writes = [i for i, step in enumerate(log) if step == "write"]
    assert len(writes) >= 6  # batches of 1, 2, 4, 8, then 10 (the read budget starts small)
    for a, b in zip(writes, writes[1:]):
        assert "acked" in log[a:b]  # the next batch's events go out after this one is acknowledged
    assert any("prepare" in log[a:log.index("acked", a)] for a in writes)  # ... prepared meanwhile
    events = await events_on_partitions(r, settings.partitions)
    assert len(events) == 60 and [sid for _, sid in events] == sorted((sid for _, sid in events), key=_id)


def _id(sid: str) -> tuple[int, int]:
    ms, seq = sid.split("-")
    return int(ms), int(seq)


async def test_a_batch_is_acknowledged_after_redis_lost_the_functions(r, settings):
    """Redis restarted empty between the batch's events and its acknowledgement (``pb_ack``):
    the functions are loaded again, the batch applied again (its events are ignored downstream
    as duplicates) and acknowledged."""
    person = make_id()
    await publish(r, FEED, *[contribution(person, m) for m in months("202501", 3)])
    n = Normalizer(r, settings, FEED, "c1")
    await n.rewind()  # as a worker taking the feed: nothing committed yet, so what was delivered is
    resp = await r.xreadgroup(t.NORMALIZER_GROUP, "c1", {t.FEEDS[FEED].ingress: ">"}, noack=True)
    apply = n.apply

    async def then_lose_functions(entries, prepared=None):
        await apply(entries, prepared)
        if not lost:
            lost.append(await r.function_flush())

    lost: list = []
    n.apply = then_lose_functions
    await n.handle(resp[0][1])
    assert lost and await r.function_list(library=LIBRARY)
    assert await r.hget(t.counters(t.FEEDS[FEED].ingress), "committed") == resp[0][1][-1][0]
    sources = [sid for _, sid in await events_on_partitions(r, settings.partitions)]
    assert len(sources) == 6 and len(set(sources)) == 3  # applied twice, acknowledged once


@pytest.mark.parametrize("functions_lost", [False, True], ids=["outage", "outage-and-functions-lost"])
async def test_a_read_whose_reply_was_lost_is_read_again_before_anything_new(r, settings, monkeypatch,
                                                                            functions_lost):
    """Redis moved the group past a batch (reads are NOACK) but the reply never arrived (the
    connection broke: an outage). FastStream reads only new entries (``>``), so without more those
    entries would never be read; the normalizer moves the group back to its committed position
    first (``pb_rewind``). Found by the Redis-restart chaos test (when reads kept a pending list).
    Redis may come back without its functions: the rewind loads them again and goes on."""
    settings = settings.model_copy(update={"batch_size": 50, "consumer": "lost-reply"})
    people = [make_id(seq=i) for i in range(4)]
    real = aioredis.Redis.xreadgroup
    lost = []

    async def xreadgroup(self, groupname, consumername, streams, *args, **kwargs):
        reply = await real(self, groupname, consumername, streams, *args, **kwargs)
        if not lost and reply and reply[0][1] and list(streams.values()) == [">"]:
            lost.append(len(reply[0][1]))  # delivered (the group moved on) and never seen
            if functions_lost:
                await r.function_flush()
            raise aioredis.ConnectionError("connection lost after the reply was sent")
        return reply

    monkeypatch.setattr(aioredis.Redis, "xreadgroup", xreadgroup)
    async with services(settings, services=("normalize",)):
        await asyncio.sleep(0.3)  # the feeds' leases taken and the subscribers reading
        ids = []
        for m in months("202301", 3):
            ids += await publish(r, FEED, *[contribution(p, m) for p in people])

        async def settled():
            committed = await r.hget(t.counters(t.FEEDS[FEED].ingress), "committed")
            return lost and committed == ids[-1] and len(await events_on_partitions(r, settings.partitions)) >= len(ids)

        deadline = asyncio.get_running_loop().time() + 20  # FastStream waits 5 s after a failed read
        while not await settled():
            assert asyncio.get_running_loop().time() < deadline, "entries never finished after a lost reply"
            await asyncio.sleep(0.1)
    assert lost and lost[0] > 0
    assert await r.hget(t.counters(t.FEEDS[FEED].ingress), "acked") == str(len(ids)).encode()  # each once
    seen = {source for _, source in await events_on_partitions(r, settings.partitions)}
    assert seen == {eid.decode() for eid in ids}  # every record normalized, the lost ones included
