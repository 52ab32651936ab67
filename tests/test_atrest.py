"""Personal data at rest (docs/contract.md, "Personal data at rest"): no full ID number and no name in clear past the normalizer,
the IDs a decision needs sealed under the data key, keys required, rotated, and quarantine kept
only for its retention. All against the real Redis."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time

import msgspec
import pytest
from pydantic import SecretStr

from schemas.events import decode_event, encode_event, open_envelope
from schemas.picture import Person
from services.ops.backlog import backlog
from services.ops.rekey import rekey, remaining
from services.runtime import topology as t
from services.runtime.identity import partition_of
from services.runtime.sealing import DataKeys, SealError
from services.sim.generator import SimConfig, generate
from tests.conftest import publish, read_outlet, wait_until
from tests.harness import drain, services
from tests.people import contribution, make_id, months, permit, school

KEY1 = "k1-" + "a" * 40
KEY2 = "k2-" + "b" * 40
PSEUDO = "pseudonym-key-" + "c" * 32
# Where docs/contract.md allows a full ID or name: the departments' own records and what they receive.
CLEAR_ALLOWED = ("ingress:", "quarantine:", "dlq:", "out:", "outlet:", "roster{", "rosteridx{")
ID_FIELDS = ("sfzh", "AAC002", "xssfzh", "jhrsfzh", "applicantId")
NAME_FIELDS = ("xm", "AAC003", "xsxm")
_person = msgspec.msgpack.Decoder(Person)


def secrets_of(records) -> tuple[set[bytes], set[bytes]]:
    """The ID numbers (both spellings of a final X) and the names in the simulated records."""
    ids, names = set(), set()
    for rec in records:
        try:
            obj = json.loads(rec.payload)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        for f in ID_FIELDS:
            v = obj.get(f)
            if isinstance(v, str) and re.fullmatch(r"\d{17}[\dXx]", v):
                ids |= {v.upper().encode(), v.lower().encode()}
        for f in NAME_FIELDS:
            v = obj.get(f)
            if isinstance(v, str) and v.strip():
                names.add(v.encode())
    return ids, names


async def dump(r, key: bytes) -> list[bytes]:
    """Every byte string a key holds (fields, values, members, ids)."""
    kind = (await r.type(key)).decode()
    if kind == "stream":
        return [x for eid, fields in await r.xrange(key) for kv in fields.items() for x in (eid, *kv)]
    if kind == "hash":
        return [x for kv in (await r.hgetall(key)).items() for x in kv]
    if kind == "zset":
        return [m for m, _ in await r.zrange(key, 0, -1, withscores=True)]
    if kind == "set":
        return list(await r.smembers(key))
    if kind == "list":
        return await r.lrange(key, 0, -1)
    if kind == "string":
        return [await r.get(key)]
    return []


def found_in(blobs: list[bytes], ids: set[bytes], names: set[bytes]) -> set[bytes]:
    hay = b"\x00".join(blobs)
    return {s for s in ids | names if s in hay}


async def events_at_rest(r, partitions: int) -> list[bytes]:
    """The partition streams' events, encoded. None carries a copy of its record (QZ/BG/ZX payloads
    wait in ``held{quarantine:psb:permit}``, beside the quarantine, until the decider rules)."""
    out = []
    for p in range(partitions):
        for eid, fields in await r.xrange(t.evt(p)):
            for item in open_envelope(fields[b"b"]):
                ev = decode_event(item)
                assert not getattr(ev, "raw", b""), "an event carries its record's payload"
                out.append(eid + item)
    return out


async def test_a_simulated_city_leaves_no_id_or_name_at_rest(r, settings):
    settings = keyed(settings, KEY1, 1)
    records = list(generate(SimConfig(people=400, seed=11, today=settings.today)))
    ids, names = secrets_of(records)
    assert len(ids) > 400 and len(names) > 100
    for rec in records:
        await r.xadd(t.FEEDS[rec.feed].ingress, {"payload": rec.payload})

    # 1. the normalizers alone: what the partition streams carry
    async with services(settings, services=["normalize"]):
        await wait_until(lambda: _normalized(r, settings), timeout=60)
    events = await events_at_rest(r, settings.partitions)
    assert len(events) > 4000
    assert found_in(events, ids, names) == set()

    # 2. the whole path: every key but those where docs/contract.md allows clear IDs
    async with services(settings):
        await drain(r, settings, timeout=90)
    scanned = 0
    async for key in r.scan_iter(count=1000):
        if key.decode().startswith(CLEAR_ALLOWED):
            continue
        scanned += 1
        leaked = found_in([key, *await dump(r, key)], ids, names)
        assert not leaked, f"{key!r} holds {len(leaked)} ID numbers or names in clear"
    assert scanned >= 4 * settings.partitions  # pictures, archives, due dates, figures, positions...

    # 3. the decisions still name the right subjects
    person_of, child_of, applicant_of = {}, {}, {}
    for rec in records:
        if rec.malformed:
            continue
        obj = json.loads(rec.payload)
        rid = obj.get("ywlsh") or obj.get("LSH") or obj.get("sqbh") or obj.get("applicationNo")
        person_of[rid] = (obj.get("sfzh") or obj.get("AAC002") or obj.get("jhrsfzh") or obj.get("applicantId")).upper()
        if "sqbh" in obj:
            child_of[obj["sqbh"]] = obj["xssfzh"].upper()
        if "applicationNo" in obj:
            applicant_of[obj["applicationNo"]] = obj["applicantId"].upper()
    checked = {"roster": 0, "education": 0, "housing": 0}
    for outlet in ("outlet:psb", "outlet:edu", "outlet:health", "outlet:housing", "outlet:medins"):
        for d in await read_outlet(r, outlet):
            if d["entitlement"].startswith("education."):
                assert d["subject_id"] == child_of[d["application_id"]]
                checked["education"] += 1
            elif d["entitlement"].startswith("housing."):
                assert d["subject_id"] == applicant_of[d["application_id"]]
                checked["housing"] += 1
            elif d["caused_by"]:
                assert d["subject_id"] == person_of[d["caused_by"][0]]
                checked["roster"] += 1
    assert all(checked.values()), checked


def test_a_sealed_value_opens_only_with_its_key():
    k1 = DataKeys(KEY1, 1)
    sealed = k1.seal("340102199001011234")
    assert b"340102199001011234" not in sealed and len(sealed) == 1 + 12 + 18 + 16
    assert sealed != k1.seal("340102199001011234")  # a fresh nonce each time
    assert DataKeys(KEY2, 2, {1: KEY1}).open(sealed) == "340102199001011234"
    with pytest.raises(SealError, match="does not open"):
        DataKeys(KEY2, 1).open(sealed)  # another key under the same id
    with pytest.raises(SealError, match="key id 1, which this deployment does not have"):
        DataKeys(KEY2, 2).open(sealed)
    altered = sealed[:20] + bytes((sealed[20] ^ 1,)) + sealed[21:]
    with pytest.raises(SealError):
        DataKeys(KEY1, 1).open(altered)
    relabelled = b"\x02" + sealed[1:]  # the key id is authenticated too
    with pytest.raises(SealError):
        DataKeys(KEY2, 2, {1: KEY1}).open(relabelled)


def keyed(settings, key: str, kid: int, old: dict[int, str] | None = None):
    """``settings`` with the deployment's own keys (not the built-in ones)."""
    return settings.model_copy(update={
        "pseudonym_key": SecretStr(PSEUDO), "data_key": SecretStr(key), "data_key_id": kid,
        "data_keys": {i: SecretStr(k) for i, k in (old or {}).items()}, "insecure_dev_keys": False})


async def run_through(r, settings, *batches):
    """Each batch published and decided before the next: feeds are not ordered among themselves
    (a school application published with its guardian's permit may be decided first)."""
    async with services(settings):
        for feed, recs in batches:
            await publish(r, feed, *recs)
            await drain(r, settings, timeout=60)


async def test_a_wrong_data_key_stops_the_decider_instead_of_deciding_garbage(r, settings):
    from services.decider.worker import Decider
    from services.runtime.clock import Clock

    person = make_id()
    s1 = keyed(settings, KEY1, 1)
    await run_through(r, s1, ("psb:permit", [permit("QF", person, district="320111")]))
    p = partition_of(person, settings.partitions)
    position = await r.hget(t.decider_meta(p), "pos")
    decided = len(await read_outlet(r, "outlet:health"))
    assert decided == 1
    await publish(r, "psb:permit", permit("BG", person, district="320116"))  # a decision must name them
    async with services(s1, services=["normalize"]):
        await wait_until(lambda: _normalized(r, settings), timeout=30)
    wrong = Decider(r, keyed(settings, KEY2, 1), Clock(settings.today), range(settings.partitions))
    with pytest.raises(SealError, match="wrong PERMITBUS_DATA_KEY"):
        await wrong.step()
    assert await r.hget(t.decider_meta(p), "pos") == position  # nothing committed
    assert len(await read_outlet(r, "outlet:health")) == decided
    right = Decider(r, s1, Clock(settings.today), range(settings.partitions))
    assert await right.step() == 1  # the right key decides it (the relay is not running: read the outbox)
    moved = [json.loads(f[b"payload"]) for _, f in await r.xrange(t.outbox(p, "outlet:health"))]
    assert (moved[-1]["subject_id"], moved[-1]["district"]) == (person, "320116")


async def _normalized(r, settings) -> bool:
    b = await backlog(r, settings.partitions)
    return not b.ingress_lag and not b.ingress_pending


async def test_rotating_the_data_key(r, settings):
    people = [make_id(seq=i) for i in range(40)]
    child = make_id(birth="20190501")
    parts = range(settings.partitions)
    # 1. written under key 1
    s1 = keyed(settings, KEY1, 1)
    await run_through(r, s1, ("psb:permit", [permit("QF", p, district="320111") for p in people]))
    # then the application: the feeds are not ordered against each other (read first, it would be
    # decided ineligible, then eligible)
    await run_through(r, s1, ("edu:application", [school(people[0], child, sqqx="320111")]))
    assert (await remaining(r, DataKeys(KEY1, 1), parts))[1] == len(people) + 1
    # 2. key 2 current, key 1 still readable: old pictures are decided (a move), and re-sealed when written
    s2 = keyed(settings, KEY2, 2, {1: KEY1})
    moved = people[1:11]  # not the guardian: the child's decision changes only once key 1 is gone
    await run_through(r, s2, ("psb:permit", [permit("BG", p, district="320116") for p in moved]))
    health = [d for d in await read_outlet(r, "outlet:health") if d["district"] == "320116"]
    assert sorted(d["subject_id"] for d in health) == sorted(moved)
    left = await remaining(r, DataKeys(KEY2, 2, {1: KEY1}), parts)
    assert left[2] == len(moved) and left[1] == len(people) + 1 - len(moved)
    # 3. the pass re-seals the rest; nothing is left under key 1
    done = await rekey(r, DataKeys(KEY2, 2, {1: KEY1}), parts)
    assert (done.pictures, done.resealed) == (len(people), len(people) - len(moved))
    assert await remaining(r, DataKeys(KEY2, 2), parts) == {2: len(people) + 1}
    # 4. key 1 gone: everybody is still decided, with the right subjects (the child's too)
    s3 = keyed(settings, KEY2, 2)
    await run_through(r, s3, ("psb:permit", [permit("ZX", p) for p in people]))
    revoked = [d for d in await read_outlet(r, "outlet:health") if d["status"] == "revoked"]
    assert sorted(d["subject_id"] for d in revoked) == sorted(people)
    edu = await read_outlet(r, "outlet:edu")
    assert [d["subject_id"] for d in edu] == [child] * len(edu) and len(edu) == 2  # eligible, then not


async def test_a_picture_of_an_earlier_release_is_read_and_sealed_when_next_written(r, settings):
    person, child = make_id(), make_id(birth="20190501")
    s = keyed(settings, KEY1, 1)
    await run_through(r, s, ("psb:permit", [permit("QF", person, district="320111")]),
                      ("edu:application", [school(person, child, sqqx="320111")]))
    p = partition_of(person, settings.partitions)
    (key, blob), = (await r.hgetall(t.people(p))).items()
    keys = DataKeys(KEY1, 1)
    now = _person.decode(blob)
    (app,) = now.apps.values()
    app_then = msgspec.structs.replace(app, subject_id=keys.open(app.subject), subject=b"", born=0)
    then = msgspec.structs.replace(now, v=2, id=keys.open(now.sid), sid=b"", apps={app.id: app_then})
    await r.hset(t.people(p), key, msgspec.msgpack.encode(then))  # as release v2 stored it
    assert await remaining(r, keys, range(settings.partitions)) == {0: 2}
    await run_through(r, s, ("psb:permit", [permit("BG", person, district="320116")]))
    after = _person.decode(await r.hget(t.people(p), key))
    assert (after.v, after.id, keys.open(after.sid)) == (3, "", person)
    (app_after,) = after.apps.values()
    assert (app_after.subject_id, keys.open(app_after.subject)) == ("", child) and app_after.born
    health = await read_outlet(r, "outlet:health")
    assert [(d["subject_id"], d["district"]) for d in health] == [(person, "320111"), (person, "320116")]
    edu = await read_outlet(r, "outlet:edu")  # eligible, then not (the guardian moved away): the child's ID
    assert [(d["subject_id"], d["status"]) for d in edu] == [(child, "eligible"), (child, "revoked")]


def test_a_deployment_without_its_own_keys_refuses_to_start(redis_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERMITBUS_")}
    env |= {"PERMITBUS_REDIS_URL": redis_url}
    proc = subprocess.run([sys.executable, "-m", "services.cli", "run", "decider"], env=env, capture_output=True,
                          timeout=60)
    err = proc.stderr.decode().strip()
    assert proc.returncode == 1 and len(err.splitlines()) == 1, err
    assert "PERMITBUS_PSEUDONYM_KEY" in err and "PERMITBUS_DATA_KEY" in err and "PERMITBUS_INSECURE_DEV_KEYS" in err
    short = "too-short-" + "s" * 12
    env |= {"PERMITBUS_PSEUDONYM_KEY": PSEUDO, "PERMITBUS_DATA_KEY": short}
    proc = subprocess.run([sys.executable, "-m", "services.cli", "rekey"], env=env, capture_output=True, timeout=60)
    err = proc.stderr.decode().strip()
    assert proc.returncode == 1 and "PERMITBUS_DATA_KEY shorter than 32" in err, err
    assert short not in err and PSEUDO not in err


async def test_quarantine_and_dead_letters_are_kept_only_for_their_retention(r, settings):
    old_ms = int(time.time() * 1000) - 91 * 86_400_000
    streams = [t.FEEDS["edu:application"].quarantine, t.dlq(t.FEEDS["edu:application"].ingress),
               t.FEEDS["psb:permit"].quarantine, t.DECIDER_DLQ]
    for s in streams:
        await r.xadd(s, {"payload": b"old"}, id=f"{old_ms}-0")
        await r.xadd(s, {"payload": b"recent"})
    async with services(settings):
        async def expired():
            return all([await r.xlen(s) == 1 for s in streams])
        await wait_until(expired, timeout=15)
    for s in streams:
        assert [f[b"payload"] for _, f in await r.xrange(s)] == [b"recent"]


async def test_events_of_an_earlier_release_are_protected_when_the_decider_reads_them(r, settings):
    """An earlier release's normalizer wrote ID numbers in clear on the partition streams; the
    decider seals them as it reads them, so the pictures hold none, and decides as before."""
    import datetime as dt

    from schemas.events import PermitIssued, SchoolApplied, encode_envelope
    from services.decider.worker import Decider
    from services.runtime.clock import Clock

    s = keyed(settings, KEY1, 1)
    guardian, child = make_id(), make_id(birth="20190501")
    at = dt.datetime(2025, 1, 1, 9, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    then = [PermitIssued(record_id="GA1", source_id="1-0", person_id=guardian, permit_no="J1", district="320111",
                         valid_from=dt.date(2025, 1, 1), valid_until=dt.date(2027, 12, 31), at=at),
            SchoolApplied(record_id="JY1", source_id="2-0", person_id=guardian, application_id="JY1", child_id=child,
                          stage="XX", district="320111", applied_on=dt.date(2026, 3, 1))]
    p = partition_of(guardian, settings.partitions)
    await r.xadd(t.evt(p), {"b": encode_envelope([encode_event(ev) for ev in then])})
    d = Decider(r, s, Clock(settings.today), range(settings.partitions))
    while await d.step():
        pass
    stored = b"".join(x for kv in (await r.hgetall(t.people(p))).items() for x in kv)
    assert guardian.encode() not in stored and child.encode() not in stored
    decided = {json.loads(f[b"payload"])["subject_id"]
               for target in ("outlet:health", "outlet:edu") for _, f in await r.xrange(t.outbox(p, target))}
    assert decided == {guardian, child}
