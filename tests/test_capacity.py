"""The capacity benchmark's city, loaded directly (benchmarks/capacity.py), is what the services
build from the same records: pictures, months stored apart, due dates, figures, rosters."""

from __future__ import annotations

import subprocess
import sys

import msgspec
import redis as sync_redis

from benchmarks import capacity
from schemas.decision import decision_decoder
from services.picture import stored
from services.runtime import topology as t
from services.runtime.redis import ensure_groups, load_functions
from tests.harness import drain, services

PEOPLE = 24
# 8 months: the first month's pack puts the boundary of the months stored apart before it, the
# seventh moves it past the first month, which is then written to arc:{pN}
HISTORY = capacity.months_until(202609, 8)


async def _stored(r, settings, keys) -> dict:
    """Everything the city's people have in Redis, comparable: pictures with their sealed ID
    opened, decisions without the time they were made."""
    out: dict = {}
    for p in range(settings.partitions):
        out[t.people(p)] = {k: _person(v, keys) for k, v in (await r.hgetall(t.people(p))).items()}
        out[t.archive(p)] = await r.hgetall(t.archive(p))
        out[t.due(p)] = dict(await r.zrange(t.due(p), 0, -1, withscores=True))
        out[t.figures(p)] = await r.hgetall(t.figures(p))
    for o in t.OUTLETS.values():
        out[t.roster_index(o.stream, o.entitlement)] = await r.hgetall(t.roster_index(o.stream, o.entitlement))
        for d in capacity._DISTRICTS:
            key = t.roster(o.stream, o.entitlement, d)
            out[key] = {f: _decision(v) for f, v in (await r.hgetall(key)).items()}
    return out


def _person(blob: bytes, keys):
    person = stored.decoder.decode(blob)
    person.sid = keys.open(person.sid).encode()  # sealed with a fresh nonce each time
    return person


def _decision(payload: bytes) -> dict:
    d = msgspec.structs.asdict(decision_decoder.decode(payload))
    d.pop("decided_at")
    return d


async def _load_directly(r, settings, exact: bool) -> dict:
    builder = capacity.Builder(settings, settings.today)
    client = sync_redis.Redis.from_url(settings.redis_url)
    try:
        counts = capacity.write(client, [builder.person(i, capacity.records(i, HISTORY, settings.today), exact)
                                         for i in range(PEOPLE)])
    finally:
        client.close()
    assert counts["people"] == PEOPLE and counts["listed"] > 0
    return await _stored(r, settings, builder.keys)


async def _through_the_services(r, settings) -> dict:
    """The same records published as the benchmark's history is: the permits, then month by month."""
    async with services(settings):
        await _publish(r, "psb:permit", [capacity.permit_record(i, settings.today) for i in range(PEOPLE)])
        await drain(r, settings)
        for month in HISTORY:
            await _publish(r, "hrss:contribution",
                           [capacity.contribution_record(i, month, settings.today) for i in range(PEOPLE)])
            await drain(r, settings)
    return await _stored(r, settings, settings.data_keyring())


async def _publish(r, feed: str, payloads: list[bytes]) -> None:
    pipe = r.pipeline(transaction=False)
    for payload in payloads:
        pipe.xadd(t.FEEDS[feed].ingress, {"payload": payload})
    await pipe.execute()


async def _fresh(r) -> None:
    await r.flushdb()
    await load_functions(r)
    await ensure_groups(r)


async def test_the_city_loaded_directly_is_what_the_services_store(r, settings):
    exact = await _load_directly(r, settings, exact=True)
    await _fresh(r)
    fast = await _load_directly(r, settings, exact=False)
    await _fresh(r)
    piped = await _through_the_services(r, settings)

    people = {k for key, v in piped.items() if key.startswith("ppl:") for k in v}
    assert len(people) == PEOPLE
    assert sum(len(v) for key, v in piped.items() if key.startswith("arc:")) == PEOPLE  # months stored apart
    assert any(v for key, v in piped.items() if key.startswith("roster{"))
    revoked = sum(o.status == "revoked" for key, v in piped.items() if key.startswith("ppl:")
                  for person in v.values() for o in person.roster.values())
    assert revoked > 0  # the history withdrew something: the fast load's one difference is seen

    # exact: every key and field as the services left them
    assert exact == piped

    # fast: the same but for the outcomes the history went through (a version, a withdrawn grant)
    def settled(state: dict) -> dict:
        out = {}
        for key, value in state.items():
            if key.startswith("ppl:"):
                value = {k: msgspec.structs.replace(person, roster={
                    ent: msgspec.structs.replace(o, version=0) for ent, o in person.roster.items()
                    if o.status != "revoked"}) for k, person in value.items()}
            elif key.startswith("fig:"):
                value = {f: n for f, n in value.items() if n != b"0"}
            elif key.startswith("roster{"):
                value = {f: {**d, "version": 0, "decision_id": "", "caused_by": []} for f, d in value.items()}
            out[key] = value
        return out

    assert settled(fast) == settled(piped)
    assert fast[t.people(0)].keys() == piped[t.people(0)].keys()


def test_capacity_runner_small():
    proc = subprocess.run([sys.executable, "-m", "benchmarks.capacity", "--people", "300", "--months", "8",
                           "--bursts", "path,stages", "--procs", "1", "--quiet"], capture_output=True, timeout=120)
    out = proc.stdout.decode()
    assert proc.returncode == 0, out + proc.stderr.decode()[-3000:]
    assert "loaded: 300 people in " in out, out
    for row in ("bytes a person: pictures", "bytes a person: rosters", "bytes a person: the person's state",
                "used_memory (GB)", "burst 202610 (path): normalize + decider1 + decider2 + relay",
                "burst 202611 (stages): normalize ", "burst 202611 (stages): decider1 + decider2 + relay",
                "BGREWRITEAOF (before the bursts)", "BGREWRITEAOF (after the bursts)"):
        assert row in out, out
    assert "one normalizer alone: " in out and " shard(s) of 25 GB" in out, out  # the account, from the run


def test_a_stage_too_short_for_the_cpu_clock_is_said_so_not_divided_by():
    """The CPU clock ticks every 10 ms: a small run's normalizer can read 0.0 CPU s (found by CI
    at 300 people, once the normalizer got faster), and the account divided by it."""
    assert capacity._per_core(300, 0.0) == "(too few records to measure)"
    assert capacity._per_core(300, 0.01) == "30,000"
