"""Support for the tests that really kill things: run `permitbus up` (or single services) as
processes over a fixed input, feed by feed, and collect the outlets in a comparable form."""

from __future__ import annotations

import asyncio
import collections
import functools
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from services.ops.backlog import backlog
from services.runtime.outage import REDIS_OUTAGE
from services.runtime.redis import connect, ensure_groups, load_functions
from services.runtime import topology as t
from services.sim.generator import SimConfig, generate
import datetime as dt

TODAY = "2026-11-28"
PARTITIONS = 8
FEED_ORDER = ("psb:permit", "hrss:contribution", "edu:application", "housing:application")


@functools.lru_cache(maxsize=4)
def city(people: int, seed: int) -> dict[str, list[bytes]]:
    """The input, per feed, in the order the departments publish it."""
    out: dict[str, list[bytes]] = {f: [] for f in FEED_ORDER}
    for rec in generate(SimConfig(people=people, seed=seed, today=dt.date.fromisoformat(TODAY))):
        out[rec.feed].append(rec.payload)
    return out


def env_for(redis_url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "PERMITBUS_REDIS_URL": redis_url, "PERMITBUS_TODAY": TODAY,
            "PERMITBUS_PARTITIONS": str(PARTITIONS), "PERMITBUS_LEASE_TTL_MS": "1000",
            "PERMITBUS_BATCH_SIZE": "500", "PERMITBUS_LOG_LEVEL": "WARNING", "PERMITBUS_INSECURE_DEV_KEYS": "1",
            **extra}


@dataclass
class Procs:
    redis_url: str
    commands: list[tuple[str, ...]] = field(default_factory=lambda: [("up",)])
    procs: list[subprocess.Popen] = field(default_factory=list)
    kills: int = 0
    logs: list[bytes] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)

    def start(self) -> None:
        self.procs = [self._spawn(c) for c in self.commands]

    def _spawn(self, command: tuple[str, ...]) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "services.cli", *command], env=env_for(self.redis_url, **self.extra_env),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def kill9(self, index: int = 0) -> None:
        p = self.procs[index]
        p.send_signal(signal.SIGKILL)
        self.logs.append(p.communicate(timeout=60)[0])  # its workers die with it: EOF soon
        self.kills += 1

    def restart(self, index: int = 0) -> None:
        self.procs[index] = self._spawn(self.commands[index])

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def stop(self) -> list[int]:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = []
        for p in self.procs:
            self.logs.append(p.communicate(timeout=20)[0])
            codes.append(p.returncode)
        return codes


async def publish(r, feed: str, payloads: list[bytes]) -> None:
    pipe = r.pipeline(transaction=False)
    for i, payload in enumerate(payloads, 1):
        pipe.xadd(f"ingress:{feed}", {"payload": payload})
        if i % 2000 == 0:
            await pipe.execute()
    await pipe.execute()


async def wait_idle(r, timeout: float = 120.0, procs: Procs | None = None) -> None:
    deadline = time.monotonic() + timeout
    calm = 0
    while calm < 4:
        if time.monotonic() > deadline:
            raise AssertionError(f"not idle after {timeout}s: {await backlog(r, PARTITIONS)}")
        if procs is not None and not procs.alive():
            raise AssertionError("a service process died: " + b"\n".join(procs.logs).decode()[-3000:])
        try:
            calm = calm + 1 if (await backlog(r, PARTITIONS)).idle else 0
        except REDIS_OUTAGE:  # a restarted Redis, a cluster failing over or moving a slot
            calm = 0
        await asyncio.sleep(0.1)


async def fresh(redis_url: str, cluster: bool = False):
    """An emptied Redis (on a cluster: every primary) with this release's functions and groups."""
    r = connect(redis_url, cluster=True) if cluster else aioredis.Redis.from_url(redis_url)
    await r.flushdb()
    await load_functions(r)
    await ensure_groups(r)
    return r


@dataclass
class Outcome:
    decisions: dict[str, list[dict]]  # outlet -> decisions in outlet order
    quarantine: collections.Counter  # (feed, reason, payload) -> count
    dead_letters: int

    def by_subject(self) -> dict[tuple, list[tuple]]:
        """(entitlement, subject, application) -> its decisions in version order, without the
        fields that differ between runs (decided_at)."""
        out: dict[tuple, list[tuple]] = collections.defaultdict(list)
        for decisions in self.decisions.values():
            for d in decisions:
                out[(d["entitlement"], d["subject_id"], d["application_id"])].append(
                    (d["version"], d["decision_id"], d["status"], d["district"], d["priority"], tuple(d["reasons"]),
                     tuple(d["basis"]), tuple(d["caused_by"]), d["as_of"]))
        return {k: sorted(v) for k, v in out.items()}


async def collect(r) -> Outcome:
    decisions = {}
    for o in t.OUTLETS.values():
        decisions[o.stream] = [json.loads(f[b"payload"]) for _, f in await r.xrange(o.stream)]
    quarantine: collections.Counter = collections.Counter()
    for feed in t.FEEDS.values():
        for _, f in await r.xrange(feed.quarantine):
            quarantine[(feed.name, f[b"reason"].decode(), f[b"payload"])] += 1
    dead = sum([await r.xlen(t.dlq(f.ingress)) for f in t.FEEDS.values()]) + await r.xlen(t.DECIDER_DLQ)
    return Outcome(decisions, quarantine, dead)


def assert_exact(outcome: Outcome, baseline: Outcome) -> None:
    """The same decisions (ids and timestamps aside), none missing, none twice, no version gap."""
    got, want = outcome.by_subject(), baseline.by_subject()
    for key, seq in got.items():
        assert [v[0] for v in seq] == list(range(1, len(seq) + 1)), f"versions with a gap or twice: {key}"
    for stream, decisions in outcome.decisions.items():
        ids = [d["decision_id"] for d in decisions]
        assert len(ids) == len(set(ids)), f"a decision published twice on {stream}"
    missing = set(want) - set(got)
    extra = set(got) - set(want)
    assert not missing and not extra, f"{len(missing)} subjects missing, {len(extra)} extra"
    differ = [k for k in want if got[k] != want[k]]
    assert not differ, f"{len(differ)} subjects decided differently, e.g. {differ[0]}: {got[differ[0]]} vs {want[differ[0]]}"
    assert outcome.quarantine == baseline.quarantine
    assert outcome.dead_letters == baseline.dead_letters == 0


async def run(redis_url: str, inputs: dict[str, list[bytes]], disturb=None, commands=None, cluster: bool = False,
              **extra_env: str) -> tuple[Outcome, Procs]:
    """Publish the input feed by feed (so that the order of a person's events is the same in every
    run), optionally disturbing the processes during each feed; stop; collect the outlets.
    ``cluster``: ``redis_url`` is a node of a Redis Cluster (PERMITBUS_REDIS_CLUSTER_URL)."""
    r = await fresh(redis_url, cluster)
    if cluster:
        extra_env = {"PERMITBUS_REDIS_CLUSTER_URL": redis_url, **extra_env}
    procs = Procs(redis_url, commands=list(commands or [("up",)]), extra_env=extra_env)
    procs.start()
    try:
        for feed in FEED_ORDER:
            await publish(r, feed, inputs[feed])
            if disturb is not None:
                await disturb(feed, procs, r)
            await wait_idle(r, procs=procs)
    finally:
        codes = procs.stop()
    assert codes == [0] * len(codes), b"\n".join(procs.logs).decode()[-3000:]
    outcome = await collect(r)
    await r.aclose()
    return outcome, procs


def random_kills(rnd: random.Random, plan: dict[str, int], before_s: float):
    """A ``disturb`` for ``run``: during each feed, ``plan[feed]`` times, wait up to ``before_s``,
    kill -9 the processes, wait up to 0.3 s, start them again."""
    async def disturb(feed, procs, r):
        for _ in range(plan.get(feed, 0)):
            await asyncio.sleep(rnd.uniform(0.05, before_s))
            procs.kill9()
            await asyncio.sleep(rnd.uniform(0.0, 0.3))
            procs.restart()
    return disturb


def total(inputs: dict[str, list[bytes]]) -> int:
    return sum(len(v) for v in inputs.values())


def rng(seed: int = 1) -> random.Random:
    return random.Random(seed)
