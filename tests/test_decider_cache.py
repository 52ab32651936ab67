"""The pictures a decider keeps between batches (``services.decider.cache``) are used only while
they are what Redis holds: never after another worker moved the partition on, never after a
batch failed part-way (pictures are changed in place), and deciding with them gives exactly
what deciding from Redis gives."""

from __future__ import annotations

import json

import pytest
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError

from schemas.decision import decision_decoder
from schemas.events import encode_envelope, encode_event
from schemas.picture import Person
from services.decider.cache import PictureCache
from services.decider.worker import Decider, _person_decoder
from services.ingress.service import understand
from services.rules import health
from services.runtime import topology as t
from services.runtime.clock import Clock
from services.runtime.identity import partition_of
from services.runtime.redis import load_functions
from tests.people import contribution, make_id, months, permit


@pytest.fixture
def one_entry(settings):
    """Deciders read one partition-stream entry per partition per step, so tests choose the batches."""
    return settings.model_copy(update={"decider_entries": 1, "max_attempts": 3})


def decider(r, settings) -> Decider:
    return Decider(r, settings, Clock(settings.today), range(settings.partitions))


async def append(r, settings, feed: str, *records: dict) -> None:
    """One partition-stream entry per partition holding these records' events, as the normalizer writes."""
    by_p: dict[int, list[bytes]] = {}
    for rec in records:
        ev = understand(feed, "1-0", {b"payload": json.dumps(rec, ensure_ascii=False).encode()})
        by_p.setdefault(partition_of(ev.person_id, settings.partitions), []).append(encode_event(ev))
    for p, evs in by_p.items():
        await r.xadd(t.evt(p), {"b": encode_envelope(evs)})


async def drain(d: Decider) -> None:
    while await d.step():
        pass


async def pictures(r, settings) -> dict[bytes, bytes]:
    """Everything stored of people: the pictures (each sealed ID opened, the person's and its
    applications' subjects: sealing draws a random nonce) and the months stored apart."""
    import msgspec

    keys = settings.data_keyring()
    out = {}
    for p in range(settings.partitions):
        for k, blob in (await r.hgetall(t.people(p))).items():
            person = _person_decoder.decode(blob)
            apps = {a: msgspec.structs.replace(app, subject=keys.open(app.subject).encode() if app.subject else b"")
                    for a, app in person.apps.items()}
            out[k] = msgspec.msgpack.encode(msgspec.structs.replace(person, sid=keys.open(person.sid).encode(),
                                                                    apps=apps))
        out.update({b"arc:" + k: v for k, v in (await r.hgetall(t.archive(p))).items()})
    return out


async def health_decisions(r, settings) -> list[tuple[str, str, int]]:
    out = []
    for p in range(settings.partitions):
        for _, f in await r.xrange(t.outbox(p, "outlet:health")):
            d = decision_decoder.decode(f[b"payload"])
            out.append((d.subject_id, d.status, d.version))
    return sorted(out)


def same_partition(person: str, partitions: int) -> str:
    p = partition_of(person, partitions)
    return next(q for i in range(1000) if partition_of(q := make_id("19850101", seq=i), partitions) == p and q != person)


async def test_kept_pictures_decide_as_redis_would(r, one_entry):
    people = [make_id(seq=i) for i in range(12)]
    batches = [("psb:permit", [permit("QF", p, district="320102") for p in people])]
    batches += [("hrss:contribution", [contribution(p, m, aae140="310") for p in people])
                for m in months("202501", 14)]  # one entry per month: each batch meets everybody again
    batches += [("psb:permit", [permit("ZX", p) for p in people[:4]])]

    async def decide(settings) -> tuple:
        await r.flushdb()
        await load_functions(r)
        for feed, records in batches:
            await append(r, settings, feed, *records)
        d = decider(r, settings)
        await drain(d)
        return d.cache.hits, await pictures(r, settings), await health_decisions(r, settings)

    hits, *expected = await decide(one_entry.model_copy(update={"decider_cache": 0}))
    assert hits == 0
    hits, *got = await decide(one_entry)
    assert hits >= 12 * 14  # everybody met again in each month's batch came from memory
    assert got == expected and len(expected[1]) == 12 + 4
    assert sum(k.startswith(b"arc:") for k in expected[0]) == 12  # everybody has months stored apart


@pytest.mark.parametrize("stranger", [False, True], ids=["all-kept", "one-to-read"])
async def test_a_partition_moved_on_by_another_worker_is_read_again(r, one_entry, stranger, caplog):
    """A batch whose pictures are all kept reads nothing before deciding: pb_commit's
    compare-and-set finds the partition moved on. A batch with a picture to read reads the
    position with it and finds the move before deciding. Either way the batch is decided again
    from Redis's pictures."""
    person = make_id()
    other = same_partition(person, one_entry.partitions)
    await append(r, one_entry, "psb:permit", permit("QF", person, district="320102"))
    a, b = decider(r, one_entry), decider(r, one_entry)
    await a.step()  # a keeps the picture with the permit
    await append(r, one_entry, "hrss:contribution", *[contribution(person, m) for m in months("202501", 6)])
    await b.step()  # b records six months (and trims them from the stream: a reads the next entry)
    await append(r, one_entry, "hrss:contribution", *[contribution(person, m) for m in months("202507", 6)],
                 *([contribution(other, "202507")] if stranger else []))  # (someone a never met)
    with caplog.at_level("INFO", logger="permitbus.decider"):
        await drain(a)  # a must not decide the last six months from its own, older picture
    said = caplog.text
    assert ("moved on to" in said) == stranger and ("commit lost to another worker" in said) != stranger, said
    c = decider(r, one_entry.model_copy(update={"decider_cache": 0}))
    pic = await c.r.hget(t.people(partition_of(person, one_entry.partitions)), c.pseudonym(person))
    assert _person_decoder.decode(pic).emp_months == 12


async def test_a_batch_failing_part_way_is_decided_again_from_redis(r, one_entry, monkeypatch):
    person = make_id()
    other = same_partition(person, one_entry.partitions)
    real = health.decide
    faults = [RuntimeError("injected fault")]  # the other person's first decision fails, once

    def flaky(pic, day):
        if pic.id == other and faults:
            raise faults.pop()
        return real(pic, day)

    monkeypatch.setattr(health, "decide", flaky)
    d = decider(r, one_entry)
    await append(r, one_entry, "hrss:contribution", contribution(person, "202501"))
    await d.step()  # the person's picture (no permit yet) is kept
    assert len(d.cache) == 1
    # the person's permit changes the kept picture in place, then the other person's event fails:
    # the retry must start again from the stored picture, or the person's decision is never made
    await append(r, one_entry, "psb:permit", permit("QF", person, district="320102"),
                 permit("QF", other, district="320104"))
    await drain(d)
    assert not faults
    assert [(s, st) for s, st, _ in await health_decisions(r, one_entry)] == sorted(
        [(person, "eligible"), (other, "eligible")])
    assert await r.xlen(t.outbox(partition_of(other, one_entry.partitions), t.DECIDER_DLQ)) == 0


async def test_a_commit_that_fails_forgets_the_kept_pictures(r, one_entry, monkeypatch):
    person = make_id()
    d = decider(r, one_entry)
    await append(r, one_entry, "hrss:contribution", contribution(person, "202501"))
    await d.step()
    await append(r, one_entry, "psb:permit", permit("QF", person, district="320102"))
    execute = Pipeline.execute
    commits = []

    async def commit_fails(self, raise_on_error=True):
        if any(args[0] == "FCALL" for args, _ in self.command_stack):  # the step's pb_commit
            commits.append(len(self.command_stack))
            raise RedisConnectionError("injected: connection lost during the commit")
        return await execute(self, raise_on_error)

    monkeypatch.setattr(Pipeline, "execute", commit_fails)
    with pytest.raises(RedisConnectionError):
        await d.step()
    assert commits == [1]
    assert len(d.cache) == 0  # the kept picture has the permit, which Redis does not hold
    monkeypatch.setattr(Pipeline, "execute", execute)
    await drain(d)
    assert [(s, st) for s, st, _ in await health_decisions(r, one_entry)] == [(person, "eligible")]


def test_the_cache_is_bounded_and_forgets_the_least_recently_used():
    c = PictureCache(limit=8, partitions=4)  # two a partition
    c.put(0, {b"a": Person(v=1, id="a"), b"b": Person(v=1, id="b")})
    c.lookup(0, [b"a"])
    c.put(0, {b"a": c.lookup(0, [b"a"])[0][b"a"]})  # a used again
    c.put(0, {b"c": Person(v=1, id="c")})
    found, missing = c.lookup(0, [b"a", b"b", b"c"])
    assert sorted(found) == [b"a", b"c"] and missing == [b"b"]
    assert PictureCache(limit=0, partitions=4).lookup(0, [b"a"]) == ({}, [b"a"])
    c.drop(0)
    assert len(c) == 0
