"""``permitbus status``, ``GET /metrics``, the latency histogram and JSON logs (issue 12, points 1,
2, 3, 8), against the real Redis and real processes: verdicts changed by stopping, pausing and
flooding workers; counters that add up over two workers and a kill -9; a cost in Redis calls that
does not grow with records."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from services.ops import status as st
from services.ops.metrics import exposition
from services.outlets.api import create_app
from services.runtime import topology as t
from services.runtime.redis import ensure_groups, load_functions
from tests import chaos
from tests.conftest import publish, wait_until
from tests.harness import drain, services
from tests.people import contribution, make_id, permit

CONTRACT_KEYS = {"stage", "backlog", "pending", "oldest_waiting_s", "rate_per_s", "workers", "verdict"}


def wrong_check_digit(sfzh: str) -> str:
    return sfzh[:-1] + ("0" if sfzh[-1] != "0" else "1")


def stage(doc: dict, name: str) -> dict:
    return next(s for s in doc["stages"] if s["stage"] == name)


async def test_status_of_a_deployment_that_did_its_work(r, settings):
    """Every stage live and OK, nothing waiting; records, quarantine and decisions counted where
    the effects happened, equal to what the streams hold."""
    good = [permit("QF", make_id(seq=i)) for i in range(30)]
    bad = [permit("QF", wrong_check_digit(make_id(seq=100 + i))) for i in range(4)] + [b"not json", b"{}"]
    async with services(settings):
        await publish(r, "psb:permit", *good, *bad)
        await drain(r, settings)
        doc = await st.collect(r, settings)
    assert [s["stage"] for s in doc["stages"]] == st.stage_names()
    for s in doc["stages"]:
        assert set(s) == CONTRACT_KEYS
        assert s["workers"] >= 1 and s["backlog"] == 0 and s["pending"] == 0 and s["verdict"] == "OK", s
    assert doc["records"]["psb:permit"] == {"accepted": 30, "quarantined": 6, "dead_lettered": 0}
    reasons: dict[str, int] = {}
    for _, f in await r.xrange(t.FEEDS["psb:permit"].quarantine):
        reasons[f[b"reason"].decode()] = reasons.get(f[b"reason"].decode(), 0) + 1
    assert doc["quarantine"]["psb:permit"] == reasons and sum(reasons.values()) == 6
    outlet_entries = {o.stream: await r.xlen(o.stream) for o in t.OUTLETS.values()}
    assert doc["deliveries"] == outlet_entries and sum(outlet_entries.values()) > 0
    by_status = {ent: sum(n.values()) for ent, n in doc["decisions"].items()}
    assert by_status == {o.entitlement: outlet_entries[o.stream] for o in t.OUTLETS.values()}
    # every decision here comes from an ingress record: each is in the latency histogram once
    lat = doc["latency"]
    assert lat["count"] == sum(outlet_entries.values()) == sum(lat["buckets"].values()) + lat["inf"]
    assert lat["sum_s"] >= 0
    assert doc["dead_letters"] == {s: 0 for s in t.dead_letter_streams()}
    assert st.exit_status(doc) == 0


async def test_a_redrive_takes_one_off_its_reason(r, settings):
    """Quarantine counts are of the entries there now: re-driving a fixed record lowers its reason."""
    from services.ops.cli import redrive

    sfzh = make_id(seq=7)
    async with services(settings):
        await publish(r, "psb:permit", permit("QF", wrong_check_digit(sfzh)), b"[1]")
        await drain(r, settings)
        doc = await st.collect(r, settings)
        assert doc["quarantine"]["psb:permit"] == {"BAD_ID_CHECKSUM": 1, "NOT_AN_OBJECT": 1}
        (qid, _), _ = await r.xrange(t.FEEDS["psb:permit"].quarantine)
        fixed = json.dumps(permit("QF", sfzh)).encode()
        assert await redrive(r, "quarantine", "psb:permit", qid.decode(), fixed, settings.partitions,
                             out=lambda *_: None) == 0
        await drain(r, settings)
        doc = await st.collect(r, settings)
    assert doc["quarantine"]["psb:permit"] == {"NOT_AN_OBJECT": 1}
    assert doc["records"]["psb:permit"]["quarantined"] == 2  # since the deployment began
    assert doc["records"]["psb:permit"]["accepted"] == 1  # the re-driven copy
    # the two steps of a Redis Cluster (copy, then pb_unpark), the second run only deleting: once
    from services.ops.redrive import apply, plan

    q = t.FEEDS["psb:permit"].quarantine
    (qid, fields), = await r.xrange(q)
    copy = plan(q, qid, fields, json.dumps(permit("QF", make_id(seq=8))).encode(), settings.partitions)
    await apply(r, copy, atomic=False)
    await apply(r, copy, atomic=False)
    assert await r.xlen(q) == 0
    assert (await st.collect(r, settings))["quarantine"]["psb:permit"] == {}


async def test_the_cost_in_redis_calls_does_not_grow_with_records(redis_url, settings, monkeypatch):
    """The same number of Redis commands for 10 waiting records as for 3,000 (in every stage)."""
    from redis.asyncio.client import Pipeline, Redis

    sent = []
    real_execute, real_command = Pipeline.execute, Redis.execute_command

    async def counting_execute(self, *a, **k):
        sent.append(len(self.command_stack))
        return await real_execute(self, *a, **k)

    async def counting_command(self, *a, **k):
        sent.append(1)
        return await real_command(self, *a, **k)

    calls = []
    for n in (10, 3000):
        r = aioredis.Redis.from_url(redis_url)
        await r.flushdb()
        await load_functions(r)
        await ensure_groups(r)
        pipe = r.pipeline(transaction=False)
        for i in range(n):
            pipe.xadd("ingress:hrss:contribution", {"payload": b"{}"})
            for p in range(settings.partitions):
                pipe.xadd(t.evt(p), {"b": b"x" * 100})
                pipe.xadd(t.outbox(p, "outlet:health"), {"payload": b"{}"})
        await pipe.execute()
        await r.xreadgroup(t.NORMALIZER_GROUP, "c", {"ingress:hrss:contribution": ">"}, count=n // 2)
        sent.clear()
        monkeypatch.setattr(Pipeline, "execute", counting_execute)
        monkeypatch.setattr(Redis, "execute_command", counting_command)
        doc = await st.collect(r, settings)
        monkeypatch.setattr(Pipeline, "execute", real_execute)
        monkeypatch.setattr(Redis, "execute_command", real_command)
        calls.append(sum(sent))
        assert stage(doc, "normalize:hrss:contribution")["pending"] == n // 2
        assert stage(doc, "normalize:hrss:contribution")["backlog"] == n - n // 2
        assert stage(doc, "decide")["backlog"] == n * settings.partitions
        assert stage(doc, "relay:outlet:health")["backlog"] == n * settings.partitions
        await r.flushdb()
        await r.aclose()
    print(f"Redis commands per reading at {settings.partitions} partitions: {calls}")
    assert calls[0] == calls[1]


def _spawn(redis_url: str, *command: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "services.cli", *command],
                            env={**chaos.env_for(redis_url), "PERMITBUS_PARTITIONS": "4", **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def test_verdicts_follow_a_normalizer_paused_flooded_resumed_and_killed(redis_url, settings):
    """OK -> LAGGING (paused, flooded: the backlog grew) -> STALLED (work waiting, nothing done for
    30 s) -> OK (resumed, caught up) -> DOWN (killed: no live worker). The trend is judged from
    the samples earlier readings left (times given to ``collect``: a minute is not waited for;
    the worker, its pause and its lease are real)."""
    r = await chaos.fresh(redis_url)
    settings = settings.model_copy(update={"partitions": 4})
    name = "normalize:hrss:contribution"
    proc = _spawn(redis_url, "run", "normalize", "--feed", "hrss:contribution", PERMITBUS_LEASE_TTL_MS="6000")
    try:
        async def leased():
            return await r.exists(t.lease("normalize", "hrss:contribution"))

        await wait_until(leased, timeout=30)
        sfzh = make_id(seq=1)
        await publish(r, "hrss:contribution", *[contribution(sfzh, f"2025{m:02d}") for m in range(1, 13)])

        async def caught_up():
            return stage(await st.collect(r, settings, now=t0 - 100), name)["backlog"] == 0 and \
                stage(await st.collect(r, settings, now=t0 - 100), name)["pending"] == 0

        t0 = time.time()
        await wait_until(caught_up, timeout=30)
        await r.delete(t.ops_history())
        assert stage(await st.collect(r, settings, now=t0), name)["verdict"] == "OK"
        proc.send_signal(signal.SIGSTOP)  # paused: alive, holding its lease, doing nothing
        await asyncio.sleep(0.5)  # its last blocking read (100 ms) has timed out in Redis
        await publish(r, "hrss:contribution", *[contribution(make_id(seq=2), f"2024{m:02d}") for m in range(1, 13)])
        lagging = stage(await st.collect(r, settings, now=t0 + 20), name)
        assert lagging["verdict"] == "LAGGING" and lagging["backlog"] == 12 and lagging["workers"] == 1
        assert stage(await st.collect(r, settings, now=t0 + 55), name)["verdict"] == "STALLED"
        proc.send_signal(signal.SIGCONT)

        async def drained():
            s = stage(await st.collect(r, settings, now=t0 + 56), name)
            return s["backlog"] == 0 and s["pending"] == 0

        await wait_until(drained, timeout=30)
        resumed = stage(await st.collect(r, settings, now=t0 + 62), name)
        assert resumed["verdict"] == "OK" and resumed["rate_per_s"] > 0
        proc.send_signal(signal.SIGKILL)
        proc.wait()

        async def lapsed():
            return not await r.exists(t.lease("normalize", "hrss:contribution"))

        await wait_until(lapsed, timeout=30)
        assert stage(await st.collect(r, settings, now=t0 + 70), name)["verdict"] == "DOWN"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            proc.wait()
        await r.aclose()


def test_the_command_exit_status_and_json(redis_url):
    """``permitbus status --json``: the contract's document; exit 1 when a stage is not OK (nothing
    runs here: every stage is DOWN), 2 when Redis cannot be reached."""
    env = {**chaos.env_for(redis_url), "PERMITBUS_PARTITIONS": "4"}
    import redis as sync_redis

    sync_redis.Redis.from_url(redis_url).flushdb()
    out = subprocess.run([sys.executable, "-m", "services.cli", "status", "--json"], env=env,
                         capture_output=True, timeout=60)
    assert out.returncode == 1, out.stderr
    doc = json.loads(out.stdout)
    assert set(doc) >= {"as_of", "stages", "quarantine", "dead_letters"}
    assert {s["verdict"] for s in doc["stages"]} == {"DOWN"}
    assert all(set(s) == CONTRACT_KEYS for s in doc["stages"])
    text = subprocess.run([sys.executable, "-m", "services.cli", "status"], env=env, capture_output=True,
                          timeout=60)
    assert text.returncode == 1 and b"decide" in text.stdout and b"DOWN" in text.stdout
    gone = subprocess.run([sys.executable, "-m", "services.cli", "status"],
                          env={**env, "PERMITBUS_REDIS_URL": "redis://127.0.0.1:1/0"}, capture_output=True,
                          timeout=120)
    assert gone.returncode == 2 and b"Redis cannot be read" in gone.stderr
    sync_redis.Redis.from_url(redis_url).flushdb()


CONTRACT_FAMILIES = {
    "permitbus_stage_backlog": {"stage"},
    "permitbus_stage_oldest_waiting_seconds": {"stage"},
    "permitbus_stage_workers": {"stage"},
    "permitbus_records": {"feed", "result"},  # a counter: samples permitbus_records_total
    "permitbus_decisions": {"entitlement", "status"},
    "permitbus_quarantine_entries": {"feed", "reason"},
    "permitbus_dead_letter_entries": {"stream"},
    "permitbus_decision_latency_seconds": set(),
    # the operators' extras, named as in the monitoring rules
    "permitbus_stage_pending": {"stage"},
    "permitbus_stage_rate_per_second": {"stage"},
    "permitbus_stage_verdict": {"stage", "verdict"},
    "permitbus_outlet_deliveries": {"outlet"},
    "permitbus_audit_entries": {"outlet"},
    "permitbus_lease_changes": {"role"},
    "permitbus_redis_used_memory_bytes": set(),
    "permitbus_redis_maxmemory_bytes": set(),
    "permitbus_redis_aof_last_rewrite_ok": set(),
    "permitbus_redis_aof_rewrites": set(),
}


def parse(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


async def test_metrics_of_two_workers_and_a_kill_add_up(redis_url):
    """Two ``permitbus up --single`` processes (each worker known by its pid), one killed (-9)
    mid-burst and started again: the counters kept in Redis add up to what was published and
    delivered; names and labels as the contract."""
    inputs = chaos.city(1500, 3)
    r = await chaos.fresh(redis_url)
    procs = chaos.Procs(redis_url, commands=[("up", "--single"), ("up", "--single")])
    procs.start()
    try:
        for feed in chaos.FEED_ORDER:
            payloads = list(inputs[feed]) + [b"not json"]
            await chaos.publish(r, feed, payloads)
            if feed == "hrss:contribution":
                await asyncio.sleep(0.3)
                # kill the worker that normalizes this feed, so that its lease changes hands
                holder = (await r.get(t.lease("normalize", feed)) or b"").decode()
                victim = next((i for i, p in enumerate(procs.procs) if holder.endswith(f"-{p.pid}")), 0)
                procs.kill9(victim)
                procs.restart(victim)
            await chaos.wait_idle(r, procs=procs)
        settings = st_settings(redis_url)
        app = create_app(settings)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
            resp = await client.get("/metrics")  # no token
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
        fams = parse(resp.text)
    finally:
        procs.stop()
    for name, labels in CONTRACT_FAMILIES.items():
        assert name in fams, name
        for sample in fams[name].samples:
            if name == "permitbus_decision_latency_seconds":
                assert set(sample.labels) <= {"le"}
            else:
                assert set(sample.labels) == labels, (name, sample)
    records = {(s.labels["feed"], s.labels["result"]): s.value for s in fams["permitbus_records"].samples
               if s.name == "permitbus_records_total"}
    for feed in chaos.FEED_ORDER:
        published = len(inputs[feed]) + 1
        assert sum(v for (f, _), v in records.items() if f == feed) == published, feed
        assert records[(feed, "quarantined")] >= 1
    outlet_entries = sum([await r.xlen(o.stream) for o in t.OUTLETS.values()])
    decisions = sum(s.value for s in fams["permitbus_decisions"].samples if s.name == "permitbus_decisions_total")
    assert decisions == outlet_entries > 0  # each decision counted once, whoever relayed it
    audited = sum(s.value for s in fams["permitbus_audit_entries"].samples if s.name == "permitbus_audit_entries_total")
    assert audited == outlet_entries  # each written to the audit log with its delivery, kill -9 or not
    lat = {s.name: s for s in fams["permitbus_decision_latency_seconds"].samples if s.labels.get("le") in (None, "+Inf")}
    assert lat["permitbus_decision_latency_seconds_count"].value == outlet_entries
    changes = {s.labels["role"]: s.value for s in fams["permitbus_lease_changes"].samples
               if s.name == "permitbus_lease_changes_total"}
    # each feed's lease taken at start, and the killed holder's again by the survivor or its restart
    assert changes["normalize"] >= len(chaos.FEED_ORDER) + 1 and changes["decider"] >= chaos.PARTITIONS
    workers = {s.labels["stage"]: s.value for s in fams["permitbus_stage_workers"].samples}
    assert workers["decide"] == 2 and workers["relay:outlet:health"] == 2 and workers["schedule"] >= 1
    await r.aclose()


def st_settings(redis_url: str, partitions: int = chaos.PARTITIONS):
    from services.runtime.settings import Settings
    import datetime as dt

    return Settings(redis_url=redis_url, partitions=partitions, today=dt.date.fromisoformat(chaos.TODAY))


async def test_a_scrape_at_16_partitions(redis_url):
    """One reading at 16 partitions, with work waiting in every stage: the figure is printed (not
    asserted: a shared machine); the document must be right."""
    settings = st_settings(redis_url, 16)
    r = await chaos.fresh(redis_url)
    pipe = r.pipeline(transaction=False)
    for p in range(16):
        for _ in range(50):
            pipe.xadd(t.evt(p), {"b": b"x" * 2000})
        for target in t.RELAY_TARGETS:
            pipe.xadd(t.outbox(p, target), {"payload": b"{}"})
    await pipe.execute()
    await publish(r, "psb:permit", *[b"{}"] * 100)
    app = create_app(settings)
    timings = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        for _ in range(5):
            started = time.perf_counter()
            resp = await client.get("/metrics")
            timings.append((time.perf_counter() - started) * 1000)
    print(f"/metrics at 16 partitions: {', '.join(f'{ms:.1f}' for ms in timings)} ms")
    fams = parse(resp.text)
    backlog = {s.labels["stage"]: s.value for s in fams["permitbus_stage_backlog"].samples}
    assert backlog["decide"] == 16 * 50 and backlog["normalize:psb:permit"] == 100
    assert all(backlog[f"relay:{target}"] == 16 for target in t.RELAY_TARGETS)
    await r.flushdb()
    await r.aclose()


def test_exposition_of_a_known_reading():
    """The histogram is cumulative, in seconds, with the fixed buckets; the verdict is one-hot."""
    doc = {"stages": [{"stage": "decide", "backlog": 3, "pending": 0, "oldest_waiting_s": 1.5, "rate_per_s": 2.0,
                       "workers": 1, "verdict": "LAGGING"}],
           "records": {"psb:permit": {"accepted": 5, "quarantined": 1, "dead_lettered": 0}},
           "decisions": {"health.family_doctor": {"eligible": 4}}, "quarantine": {"psb:permit": {"BAD_ID": 1}},
           "dead_letters": {"dlq:decider": 0}, "deliveries": {"outlet:health": 4},
           "latency": {"buckets": {le: (1 if le in (5, 1000) else 0) for le in st.LATENCY_MS}, "inf": 1,
                       "sum_s": 70.2, "count": 3},
           "redis": {"used_memory_bytes": 1, "maxmemory_bytes": 0, "aof_last_rewrite_ok": 1, "aof_rewrites": 0}}
    fams = parse(exposition(doc).decode())
    b = {s.labels["le"]: s.value for s in fams["permitbus_decision_latency_seconds"].samples
         if s.name.endswith("_bucket")}
    assert b["0.005"] == 1 and b["0.5"] == 1 and b["1.0"] == 2 and b["60.0"] == 2 and b["+Inf"] == 3
    assert {s.labels["verdict"]: s.value for s in fams["permitbus_stage_verdict"].samples} == \
        {"OK": 0, "LAGGING": 1, "STALLED": 0, "DOWN": 0}


def test_json_logs_one_object_a_line_masked(redis_url, tmp_path):
    """``PERMITBUS_LOG_FORMAT=json``: a real ``permitbus run normalize`` logs JSON lines with the
    service, stage and feed, and an ID number in a message is masked."""
    import logging

    from services.runtime.logs import JsonLines

    record = logging.LogRecord("permitbus.decider", logging.ERROR, __file__, 1,
                               "partition %d event %s of 320111199001011234 failed", (3, "1-0"), None)
    line = json.loads(JsonLines().format(record))
    assert line["service"] == "decide" and line["stage"] == "decide" and line["partition"] == 3
    assert "320111199001011234" not in line["message"] and "320111********1234" in line["message"]
    env = {**chaos.env_for(redis_url), "PERMITBUS_LOG_FORMAT": "json", "PERMITBUS_LOG_LEVEL": "INFO"}
    proc = subprocess.Popen([sys.executable, "-m", "services.cli", "run", "normalize", "--feed", "psb:permit"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 30
        lines = []
        while time.time() < deadline:
            raw = proc.stdout.readline()
            if not raw:
                break
            lines.append(json.loads(raw))  # every line is one JSON object
            if "active normalizer" in lines[-1]["message"]:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    active = [x for x in lines if "active normalizer" in x["message"]]
    assert active, lines
    assert active[0]["service"] == "normalize" and active[0]["stage"] == "normalize:psb:permit"
    assert active[0]["feed"] == "psb:permit" and {"time", "level", "logger"} <= set(active[0])
