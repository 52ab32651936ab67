"""The normalizer reads with NOACK and commits a position (``pb_ack``), moving the group back to
it when a holder changes or a read fails (``pb_rewind``): what is read and not finished is read
again, each entry is counted once, operators see it as pending, and trimming keeps it."""

from __future__ import annotations

import asyncio

from services.ingress.service import Normalizer
from services.ops.backlog import backlog
from services.ops.status import collect
from services.runtime import topology as t
from services.runtime.redis import fn, msgpack_strings
from tests.conftest import publish, read_outlet
from tests.harness import drain, services, unfinished
from tests.people import contribution, make_id, months, permit
from tests.test_normalizer_readahead import events_on_partitions

FEED = "hrss:contribution"
INGRESS = t.FEEDS[FEED].ingress
COUNTERS = t.counters(INGRESS)


async def group(r) -> dict:
    return next(g for g in await r.xinfo_groups(INGRESS) if g["name"] == t.NORMALIZER_GROUP.encode())


async def read(r, count: int) -> list[bytes]:
    got = await r.xreadgroup(t.NORMALIZER_GROUP, "w", {INGRESS: ">"}, count=count, noack=True)
    return [eid for eid, _ in got[0][1]] if got else []


async def ack(r, ids: list[bytes], rejected: list[bytes] = ()) -> int:
    return await r.fcall(fn("pb_ack"), 2, INGRESS, COUNTERS, t.NORMALIZER_GROUP, msgpack_strings(ids),
                         msgpack_strings(list(rejected)) if rejected else "")


async def rewind(r) -> list:
    return await r.fcall(fn("pb_rewind"), 2, INGRESS, COUNTERS, t.NORMALIZER_GROUP)


async def test_what_is_read_and_not_committed_is_read_again_and_counted_once(r, settings):
    person = make_id()
    ids = await publish(r, FEED, *[contribution(person, m) for m in months("202401", 5)])
    assert await rewind(r) == [b"0-0", 0]  # nothing committed yet: what the group delivered is
    assert await read(r, 5) == ids
    assert (await group(r))["pending"] == 0  # NOACK: no pending list ...
    assert await unfinished(r, FEED) == 5  # ... but five entries read and not finished
    assert (await backlog(r, settings.partitions)).ingress_pending == 5
    assert await ack(r, ids[:3], rejected=[ids[2]]) == 3  # (the batch's ids, and those it quarantined)
    assert await unfinished(r, FEED) == 2
    assert await rewind(r) == [ids[2], 1]  # a new holder: the group goes back to the last entry finished
    g = await group(r)
    assert (g["last-delivered-id"], g["entries-read"], g["lag"]) == (ids[2], 3, 2)
    assert await unfinished(r, FEED) == 0
    assert await read(r, 5) == ids[3:]  # read again from there
    assert await ack(r, ids) == 2  # the whole batch again (say, a zombie's): only the two new count
    counters = await r.hgetall(COUNTERS)
    assert (counters[b"acked"], counters[b"accepted"], counters[b"committed"], counters[b"committed_n"]) == \
        (b"5", b"4", ids[-1], b"5")
    assert (await group(r))["entries-read"] == 5 and (await group(r))["lag"] == 0
    assert await ack(r, ids[:3]) == 0 and (await r.hget(COUNTERS, "committed")) == ids[-1]  # never backwards
    assert await rewind(r) == [ids[-1], 0]  # nothing read past it: the group stays
    assert (await backlog(r, settings.partitions)).idle


async def test_status_shows_entries_in_hand_as_pending_with_their_age(r, settings):
    ids = await publish(r, FEED, *[contribution(make_id(), "202401") for _ in range(4)])
    await rewind(r)
    await read(r, 3)
    await ack(r, ids[:1])
    doc = await collect(r, settings, now=int(ids[0].split(b"-")[0]) / 1000 + 60)
    st = next(s for s in doc["stages"] if s["stage"] == f"normalize:{FEED}")
    assert (st["backlog"], st["pending"]) == (1, 2)
    assert 59 <= st["oldest_waiting_s"] <= 61  # the oldest entry read and not finished (ids[1])


async def test_a_batch_given_up_on_is_read_again_before_anything_new(r, settings, monkeypatch):
    """A batch whose handling raised out of ``handle`` (not a data fault: those are retried and
    dead-lettered inside) is not committed; the subscriber moves the group back and reads it again
    before the entries after it."""
    person = make_id()
    ids = await publish(r, FEED, *[contribution(person, m) for m in months("202301", 6)])
    handle, failed = Normalizer.handle, []

    async def fail_once(self, entries, deliveries=None, prepared=None):
        if not failed:
            failed.append([eid for eid, _ in entries])
            raise RuntimeError("injected: the batch is given up on")
        return await handle(self, entries, deliveries, prepared)

    async def normalized(last: bytes) -> None:
        for _ in range(300):
            if await r.hget(COUNTERS, "committed") == last:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"not committed up to {last!r}: {await r.hgetall(COUNTERS)}")

    monkeypatch.setattr(Normalizer, "handle", fail_once)
    async with services(settings.model_copy(update={"batch_size": 2}), services=("normalize",)):
        await normalized(ids[-1])
        ids += await publish(r, FEED, contribution(person, "202401"))
        await normalized(ids[-1])
    assert failed and failed[0][0] == ids[0]
    counters = await r.hgetall(COUNTERS)
    assert counters[b"acked"] == b"7" and counters[b"committed"] == (await group(r))["last-delivered-id"]
    sources = [sid for _, sid in await events_on_partitions(r, settings.partitions)]
    assert set(sources) == {eid.decode() for eid in ids}


async def test_entries_pending_from_a_release_that_acknowledged_are_taken_over_and_counted(r, settings):
    """A release before NOACK left entries pending in the group: the new holder claims and
    handles them (XAUTOCLAIM), counts them once, then takes what the group delivered as committed."""
    people = [make_id(seq=i) for i in range(3)]
    ids = await publish(r, "psb:permit", *[permit("QF", p, district="320111") for p in people])
    ingress = t.FEEDS["psb:permit"].ingress
    await r.xreadgroup(t.NORMALIZER_GROUP, "old-release", {ingress: ">"}, count=2)  # pending, never acked
    assert (await r.xpending(ingress, t.NORMALIZER_GROUP))["pending"] == 2
    async with services(settings):
        await drain(r, settings)
    assert (await r.xpending(ingress, t.NORMALIZER_GROUP))["pending"] == 0
    counters = await r.hgetall(t.counters(ingress))
    assert (counters[b"acked"], counters[b"committed"]) == (b"3", ids[-1])
    assert sorted(d["subject_id"] for d in await read_outlet(r, "outlet:health")) == sorted(people)


async def test_trimming_stops_at_the_committed_position(r, settings, monkeypatch):
    """Entries read and not finished may be read again: the ingress trim bound is the committed
    position, not the group's last-delivered-id."""
    ids = await publish(r, FEED, *[contribution(make_id(), "202401") for _ in range(6)])
    await rewind(r)
    await read(r, 6)
    await ack(r, ids[:2])
    bounds = []

    async def xtrim(name, *args, minid=None, **kw):
        bounds.append(minid)
        return 0

    n = Normalizer(r, settings, FEED, "test")
    monkeypatch.setattr(r, "xtrim", xtrim)
    await n.trim()
    assert bounds == [ids[1].decode()]


async def test_a_batch_after_entries_another_reader_left_unfinished_is_not_committed(r, settings):
    """Two readers on the feed (a worker that lost the lease and has not noticed yet reads one
    more batch, then dies): the new holder's next batch is refused, since committing it would
    pass entries nobody finished; it moves the group back and reads them too."""
    import pytest
    from redis.exceptions import ResponseError

    ids = await publish(r, FEED, *[contribution(make_id(), "202401") for _ in range(6)])
    await rewind(r)
    assert await read(r, 2) == ids[:2]
    await ack(r, ids[:2])
    zombie = await r.xreadgroup(t.NORMALIZER_GROUP, "zombie", {INGRESS: ">"}, count=2, noack=True)
    assert [eid for eid, _ in zombie[0][1]] == ids[2:4]  # read, never finished
    assert await read(r, 2) == ids[4:]
    with pytest.raises(ResponseError, match="UNFINISHED"):
        await ack(r, ids[4:])
    assert await r.hgetall(COUNTERS) == {b"committed": ids[1], b"committed_n": b"2", b"acked": b"2",
                                        b"accepted": b"2"}  # nothing written
    assert await rewind(r) == [ids[1], 1]
    assert await read(r, 10) == ids[2:]
    assert await ack(r, ids[2:]) == 4 and await r.hget(COUNTERS, "committed") == ids[-1]


async def test_batches_are_handled_on_the_event_loop_without_a_worker_thread(r, settings):
    """FastStream resolves a ``Context("message")`` argument through fast_depends, which runs a
    synchronous resolver in anyio's worker thread: a thread hand-off for every batch, and two
    threads taking turns at the GIL. The handler takes the raw batch as its body instead."""
    import threading

    before = {th.ident for th in threading.enumerate()}
    person = make_id()
    await publish(r, "psb:permit", permit("QF", person))
    await publish(r, FEED, *[contribution(person, m) for m in months("202401", 3)])
    async with services(settings):
        await drain(r, settings)
        assert (await r.hgetall(COUNTERS))[b"accepted"] == b"3"
        threads = [th.name for th in threading.enumerate() if th.ident not in before]
    assert not [name for name in threads if "AnyIO" in name], threads


async def test_the_quick_parse_of_stream_replies_gives_what_redis_py_gives(r, redis_url):
    """``stream_reply`` (the normalizer's broker parses its XREADGROUP replies with it) against
    redis-py's own parse, on a real Redis: entries of one field and of several, binary values,
    two streams, an empty read; and on both wire forms (RESP2's list, RESP3's map)."""
    import redis.asyncio as aioredis
    from redis._parsers.helpers import parse_xread, parse_xread_resp3_to_resp2_legacy

    from services.runtime.redis import parse_streams_quickly, stream_reply

    await r.xadd("qp:a", {"payload": b"\xff\x00{}"})
    await r.xadd("qp:a", {"a": "1", "b": "2", "c": b"\x80"})
    await r.xadd("qp:b", {"payload": "x"})
    for stream in ("qp:a", "qp:b"):
        for g in ("g1", "g2"):
            await r.xgroup_create(stream, g, id="0")
    plain = aioredis.Redis.from_url(redis_url)
    quick = aioredis.Redis.from_url(redis_url)
    parse_streams_quickly(quick)
    parse_streams_quickly(quick)  # once is enough; twice changes nothing
    assert quick.response_callbacks["XREADGROUP"] is not plain.response_callbacks["XREADGROUP"]
    got = await quick.xreadgroup("g1", "c", {"qp:a": ">", "qp:b": ">"}, count=10, noack=True)
    want = await plain.xreadgroup("g2", "c", {"qp:a": ">", "qp:b": ">"}, count=10, noack=True)
    assert got == want and len(got) == 2 and len(got[0][1]) == 2
    assert await quick.xreadgroup("g1", "c", {"qp:a": ">"}, count=10, block=10) == []
    raw = [[b"s", [[b"1-0", [b"payload", b"p"]], [b"2-0", [b"k", b"v", b"k2", b"v2"]]]]]
    assert stream_reply(raw) == parse_xread(raw)
    assert stream_reply({b"s": raw[0][1]}) == parse_xread_resp3_to_resp2_legacy({b"s": raw[0][1]})
    assert stream_reply(None) == stream_reply({}) == []
    gone = [[b"s", [None, [b"3-0", [b"payload", b"p"]]]]]  # an entry deleted since (a pending read's reply)
    assert stream_reply(gone) == parse_xread(gone)
    # a read with options (Redis 8.4's CLAIM) is left to redis-py's parse
    theirs, ours = plain.response_callbacks["XREADGROUP"], quick.response_callbacks["XREADGROUP"]
    claimed = {b"s": [[b"4-0", [b"payload", b"p"], 1500, 2]]}
    assert ours(claimed, claim_min_idle_time=1000) == theirs(claimed, claim_min_idle_time=1000)
    await plain.aclose()
    await quick.aclose()
