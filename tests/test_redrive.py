"""Operators' re-drives cannot lose or duplicate a record (docs/contract.md, "What bad input gets"):
exactly once even when killed half-way, a fix checked before anything changes with the original
bytes kept, a dead letter only back to the stream it came from, a ``--payload`` that cannot apply
refused. Against the real Redis; the CLI runs as its own process."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import msgspec
import redis as sync_redis

from schemas.events import encode_event
from services.ingress.service import understand
from services.ops.redrive import apply, plan
from services.runtime import topology as t
from services.runtime.identity import partition_of
from services.runtime.redis import fn
from tests.conftest import read_outlet
from tests.harness import drain, services
from tests.people import make_id, permit
from tests.test_demo import run_cli

Q = "quarantine:psb:permit"
DLQ = "dlq:ingress:psb:permit"
INGRESS = "ingress:psb:permit"


def raw(rec: dict) -> bytes:
    return json.dumps(rec, ensure_ascii=False).encode()


async def park_bad_checksum(r) -> tuple[bytes, dict, bytes]:
    person = make_id()
    good = permit("QF", person, district="320105")
    bad = raw(dict(good, sfzh=person[:-1] + ("0" if person[-1] != "0" else "1")))
    qid = await r.xadd(Q, {"payload": bad, "source_id": "1-1", "reason": "BAD_ID_CHECKSUM", "detail": "x"})
    return qid, good, bad


async def test_a_redrive_killed_between_copy_and_delete_is_finished_by_running_it_again(r, redis_url):
    """The cluster path (parked and target streams in two slots): copy + mark, then delete. Killed
    after the copy, a second run copies nothing and only deletes."""
    qid, good, bad = await park_bad_checksum(r)
    fields = (await r.xrange(Q))[0][1]
    copy = plan(Q, qid, fields, raw(good), partitions=4)
    # step one alone, as a command killed before its delete leaves it
    keys = [copy.target, t.redrive_marks(copy.target), t.redrive_times(copy.target)]
    args = [copy.mark, qid, int(time.time() * 1000), 10**10]
    for k, v in copy.fields.items():
        args += [k, v]
    fresh, first = await r.fcall(fn("pb_redrive"), 3, *keys, *args)
    assert fresh == 1 and await r.xlen(INGRESS) == 1 and await r.xlen(Q) == 1
    out = await asyncio.to_thread(run_cli, redis_url, "quarantine", "redrive", "psb:permit", qid.decode(),
                                  "--payload", raw(good).decode())
    assert "re-driven: 1" in out and "not copied again" in out and first.decode() in out
    assert await r.xlen(Q) == 0
    (cid, copied), = await r.xrange(INGRESS)
    assert cid == first and copied[b"payload"] == raw(good) and copied[b"original"] == bad
    # the two-step path from the start: a "kill" between the steps, then the whole command again
    qid2, good2, _ = await park_bad_checksum(r)
    copy2 = plan(Q, qid2, (await r.xrange(Q))[0][1], raw(good2), partitions=4)

    class Killed(Exception):
        pass

    real_xdel, real_fcall = r.xdel, r.fcall

    async def killed(*a, **k):
        raise Killed

    async def killed_at_unpark(name, *a, **k):  # the delete of a quarantine entry (with its count)
        if name == fn("pb_unpark"):
            raise Killed
        return await real_fcall(name, *a, **k)

    r.xdel, r.fcall = killed, killed_at_unpark
    try:
        await apply(r, copy2, atomic=False)
    except Killed:
        pass
    r.xdel, r.fcall = real_xdel, real_fcall
    assert await r.xlen(INGRESS) == 2 and await r.xlen(Q) == 1
    assert (await apply(r, copy2, atomic=False))[0] is False
    assert await r.xlen(INGRESS) == 2 and await r.xlen(Q) == 0



REDRIVE = [sys.executable, "-m", "services.cli", "dlq", "redrive", "ingress:psb:permit"]


def kill_redrives(cmd: list[str], env: dict, r, goals) -> int:
    """For each goal, run ``cmd`` and kill -9 it once the ingress stream holds ``goal`` entries
    (unless it finished first). Returns the number of kills."""
    kills = 0
    for goal in goals:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while r.xlen(INGRESS) < goal and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    return kills

def test_redrive_killed_at_random_points_copies_each_record_once(redis_url):
    """kill -9 of ``permitbus dlq redrive`` twelve times while it works through 3,000 dead letters,
    then a run to the end: every record is on ingress exactly once and the dead-letter stream is
    empty."""
    r = sync_redis.Redis.from_url(redis_url)
    r.flushdb()
    pipe = r.pipeline(transaction=False)
    for i in range(3000):
        pipe.xadd(DLQ, {"payload": raw(permit("QF", make_id(seq=i), ywlsh=f"K{i:05d}")), "source_id": f"{i + 1}-0",
                        "stream": INGRESS, "error": "RuntimeError()", "deliveries": 5})
    pipe.execute()
    env = {**os.environ, "PERMITBUS_REDIS_URL": redis_url}
    kills = kill_redrives(REDRIVE, env, r, range(150, 3000, 250))  # 12 goals: XADD-then-XDEL left 6-7 duplicates
    assert kills >= 10
    out = run_cli(redis_url, "dlq", "redrive", "ingress:psb:permit")
    assert "re-driven:" in out
    seen = [json.loads(f[b"payload"])["ywlsh"] for _, f in r.xrange(INGRESS)]
    assert len(seen) == 3000 and len(set(seen)) == 3000
    assert r.xlen(DLQ) == 0
    r.flushdb()
    r.close()


async def test_a_fixed_payload_is_checked_before_anything_changes(r, redis_url):
    qid, good, bad = await park_bad_checksum(r)
    before = await r.xrange(Q)
    out = await asyncio.to_thread(run_cli, redis_url, "quarantine", "redrive", "psb:permit", qid.decode(),
                                  "--payload", "{oops not json", expect=1)
    assert "refused" in out and "INVALID_JSON" in out and qid.decode() in out
    still_bad = dict(good, yxqz="2024-01-01")  # before qfrq
    out = await asyncio.to_thread(run_cli, redis_url, "quarantine", "redrive", "psb:permit", qid.decode(),
                                  "--payload", raw(still_bad).decode(), expect=1)
    assert "DATE_ORDER" in out
    # unchanged, it would only come back: refused too, with the reason
    out = await asyncio.to_thread(run_cli, redis_url, "quarantine", "redrive", "psb:permit", qid.decode(), expect=1)
    assert "BAD_ID_CHECKSUM" in out and "would be quarantined again" in out
    assert await r.xrange(Q) == before and await r.xlen(INGRESS) == 0
    # a fix without an id cannot apply: refused, never ignored
    out = await asyncio.to_thread(run_cli, redis_url, "quarantine", "redrive", "psb:permit",
                                  "--payload", raw(good).decode(), expect=1)
    assert "name its id" in out and await r.xrange(Q) == before


async def test_a_fixed_record_takes_effect_once_with_its_original_bytes_kept(r, settings, redis_url):
    qid, good, bad = await park_bad_checksum(r)
    out = await asyncio.to_thread(run_cli, redis_url, "quarantine", "redrive", "psb:permit", qid.decode(),
                                  "--payload", raw(good).decode())
    assert "re-driven: 1" in out
    (_, copied), = await r.xrange(INGRESS)
    assert copied[b"payload"] == raw(good) and copied[b"original"] == bad
    assert copied[b"redrive_of"] == f"{Q} ".encode() + qid
    again = await asyncio.to_thread(run_cli, redis_url, "quarantine", "redrive", "psb:permit", qid.decode(), expect=1)
    assert "no entry" in again and "re-driven earlier" in again
    async with services(settings):
        await drain(r, settings)
    assert [d["subject_id"] for d in await read_outlet(r, "outlet:health")] == [good["sfzh"]]
    assert await r.xlen(Q) == 0


async def test_a_dead_letter_goes_back_only_where_it_came_from(r, redis_url, settings):
    person = make_id()
    p = partition_of(person, settings.partitions)
    event = encode_event(understand("psb:permit", "1-0", {b"payload": raw(permit("QF", person))}))
    other = (p + 1) % settings.partitions
    crafted = {
        "outlet": {"event": event, "stream": "outlet:health", "source_id": "9-0", "error": "x", "deliveries": 5},
        "foreign": {"event": event, "stream": "evt:{p99}", "source_id": "9-1", "error": "x", "deliveries": 5},
        "wrong partition": {"event": event, "stream": t.evt(other), "source_id": "9-2", "error": "x", "deliveries": 5},
        "undecodable": {"event": b"\xc1junk", "stream": t.evt(p), "source_id": "9-3", "error": "x", "deliveries": 5},
    }
    ids = {name: await r.xadd(t.DECIDER_DLQ, f) for name, f in crafted.items()}
    good = await r.xadd(t.DECIDER_DLQ, {"event": event, "stream": t.evt(p), "source_id": "9-4", "error": "x",
                                        "deliveries": 5})
    # an ingress dead letter naming an outlet goes to its own ingress stream, whatever it says
    ing = await r.xadd(DLQ, {"payload": raw(permit("QF", make_id())), "stream": "outlet:health", "source_id": "8-0",
                             "error": "x", "deliveries": 5})
    env = {"PERMITBUS_PARTITIONS": str(settings.partitions)}
    out = await asyncio.to_thread(run_cli, redis_url, "dlq", "redrive", "decider", expect=1, **env)
    for name, eid in ids.items():
        assert f"refused: {t.DECIDER_DLQ} {eid.decode()}" in out, name
    assert "re-driven: 1, refused: 4" in out
    assert [eid for eid, _ in await r.xrange(t.DECIDER_DLQ)] == list(ids.values())  # refused ones stay, unchanged
    assert await r.exists("outlet:health", "evt:{p99}", t.evt(other)) == 0
    (_, copied), = await r.xrange(t.evt(p))
    assert copied[b"e"] == event and copied[b"redrive_of"] == f"{t.DECIDER_DLQ} ".encode() + good
    out = await asyncio.to_thread(run_cli, redis_url, "dlq", "redrive", "ingress:psb:permit", ing.decode(), **env)
    assert "re-driven: 1" in out and await r.xlen(INGRESS) == 1 and await r.exists("outlet:health") == 0
    # dlq:decider holds events: a --payload cannot apply there
    refused = ids["outlet"].decode()
    out = await asyncio.to_thread(run_cli, redis_url, "dlq", "redrive", "decider", refused, "--payload",
                                  raw(permit("QF", person)).decode(), expect=1, **env)
    assert "--payload cannot apply" in out and await r.xlen(t.DECIDER_DLQ) == 4
    assert msgspec.msgpack.decode(copied[b"e"])["person_id"] == person


def test_redrive_on_a_redis_cluster_is_exactly_once_through_kills(cluster):
    """On a real Redis Cluster the dead-letter stream and the ingress stream hash to different
    slots (one call cannot hold both: CROSSSLOT): the copy and its mark go first, the delete
    second. A run stopped between the two, and kill -9 of the command eight times while it works
    through 1,500 dead letters: in the end each record is on ingress once and the dead letters
    are gone."""
    from redis.cluster import RedisCluster, key_slot

    from services.runtime.redis import LUA

    assert key_slot(DLQ.encode()) != key_slot(INGRESS.encode())
    seed = cluster.url
    rc = RedisCluster.from_url(seed)
    rc.function_load(LUA, replace=True)
    for i in range(1500):
        rc.xadd(DLQ, {"payload": raw(permit("QF", make_id(seq=i), ywlsh=f"C{i:05d}")), "source_id": f"{i + 1}-0",
                      "stream": INGRESS, "error": "RuntimeError()", "deliveries": 5})
    first_id, first = rc.xrange(DLQ, count=1)[0]
    copy = plan(DLQ, first_id, first, None, partitions=16)
    atomic = [copy.target, t.redrive_marks(copy.target), t.redrive_times(copy.target), DLQ]
    try:
        rc.fcall(fn("pb_redrive"), 4, *atomic, copy.mark, first_id, 0, 1)
        raise AssertionError("a call over two slots was accepted")
    except (sync_redis.ResponseError, sync_redis.exceptions.RedisClusterException) as exc:
        assert "CROSSSLOT" in str(exc) or "same key slot" in str(exc)
    # the first step alone, as a command killed before its delete leaves it
    args = [copy.mark, first_id, int(time.time() * 1000), 10**10]
    for k, v in copy.fields.items():
        args += [k, v]
    fresh, first_copy = rc.fcall(fn("pb_redrive"), 3, *atomic[:3], *args)
    assert fresh == 1 and rc.xlen(INGRESS) == 1 and rc.xlen(DLQ) == 1500
    env = {**os.environ, "PERMITBUS_REDIS_CLUSTER_URL": seed, "PERMITBUS_REDIS_URL": "redis://127.0.0.1:1/0"}
    kills = kill_redrives(REDRIVE, env, rc, range(100, 1500, 175))
    assert kills >= 6
    done = subprocess.run(REDRIVE, env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    seen = [json.loads(f[b"payload"])["ywlsh"] for _, f in rc.xrange(INGRESS)]
    assert len(seen) == 1500 and len(set(seen)) == 1500
    assert rc.xlen(DLQ) == 0
    assert rc.hget(t.redrive_marks(INGRESS), copy.mark) == first_copy
    rc.close()
