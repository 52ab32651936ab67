"""The main job: `permitbus demo --people 2000` on a real Redis, and `permitbus simulate`."""

import asyncio
import os
import re
import subprocess
import sys

from services.sim.generator import SimConfig, generate
from tests.harness import drain, services


def run_cli(redis_url: str, *args: str, timeout: float = 300, expect: int = 0, **env) -> str:
    env = {**os.environ, "PERMITBUS_REDIS_URL": redis_url, "PERMITBUS_TODAY": "2026-11-28", **env}
    proc = subprocess.run([sys.executable, "-m", "services.cli", *args], env=env, capture_output=True,
                          timeout=timeout)
    out = proc.stdout.decode() + proc.stderr.decode()
    assert proc.returncode == expect, out
    return out


def test_demo_2000_people(r, redis_url):
    out = run_cli(redis_url, "demo", "--people", "2000")
    malformed = int(re.search(r"\(([\d,]+) malformed on purpose\)", out)[1].replace(",", ""))
    quarantined = int(re.search(r"Quarantined records by reason \(([\d,]+) in all\)", out)[1].replace(",", ""))
    assert malformed > 0 and quarantined == malformed  # every bad record, and nothing else
    assert "Decisions per entitlement per district" in out
    for section in ("320111 浦口", "UNKNOWN_PERMIT", "INVALID_JSON", "records/s end to end"):
        assert section in out
    rate = float(re.search(r"([\d,]+) records/s end to end", out)[1].replace(",", ""))
    assert rate > 0
    for line in out.splitlines():  # no full ID number on the terminal
        assert not re.search(r"\b\d{17}[\dX]\b", line), line


async def test_simulate_feeds_a_running_deployment(r, settings, redis_url):
    expected_bad = sum(1 for rec in generate(SimConfig(people=300, seed=3, today=settings.today)) if rec.malformed)
    async with services(settings):  # the CLI runs in a thread: the services keep running meanwhile
        await asyncio.to_thread(run_cli, redis_url, "simulate", "--people", "300", "--seed", "3")
        await drain(r, settings, timeout=60)
    quarantined = sum([await r.xlen(f"quarantine:{f}") for f in
                       ("psb:permit", "hrss:contribution", "edu:application", "housing:application")])
    assert quarantined == expected_bad
    assert await r.xlen("outlet:health") > 0


def test_demo_starts_a_private_redis_when_none_answers():
    from services.runtime.localredis import free_port

    out = run_cli(f"redis://127.0.0.1:{free_port()}/0", "demo", "--people", "150")
    assert "Started a private redis-server" in out and "records/s end to end" in out


def test_demo_says_how_to_get_redis_when_there_is_none(tmp_path):
    from services.runtime.localredis import free_port

    bare_path = str(tmp_path)  # no redis-server on this PATH
    out = run_cli(f"redis://127.0.0.1:{free_port()}/0", "demo", "--people", "10", expect=1, PATH=bare_path)
    assert "no redis-server on PATH" in out and "apt-get install redis-server" in out and "--redis" in out


async def snapshot(r) -> dict:
    """Every key of the database and its DUMP, leases aside (they expire by design)."""
    return {k: await r.dump(k) async for k in r.scan_iter(count=1000) if await r.pttl(k) == -1}


async def test_demo_never_touches_a_deployment(r, settings, redis_url):
    """PERMITBUS_REDIS_URL names a running deployment: the demo runs on a private redis-server
    instead; pointed at it with --redis, it refuses; the deployment's keys stay as they were."""
    from tests.conftest import publish
    from tests.harness import drain, services
    from tests.people import make_id, permit

    await publish(r, "psb:permit", *[permit("QF", make_id(), district="320102") for _ in range(5)])
    async with services(settings):
        await drain(r, settings)
    before = await snapshot(r)
    assert len(before) > 10 and await r.xlen("outlet:health") == 5
    out = await asyncio.to_thread(run_cli, redis_url, "demo", "--people", "100")
    assert "Started a private redis-server" in out and "records/s end to end" in out
    assert await snapshot(r) == before
    out = await asyncio.to_thread(run_cli, redis_url, "demo", "--people", "100", "--redis", redis_url, expect=1)
    assert "refusing to run the demo" in out and "keys the demo did not write" in out
    assert await snapshot(r) == before


def test_demo_on_a_redis_of_its_own_prints_no_password(tmp_path):
    """A Redis with a password, given with --redis and as PERMITBUS_REDIS_URL: the demo marks the
    empty database, runs, runs again (clearing only what it wrote), and the password appears in
    nothing it prints, logs at DEBUG included; nor does ``simulate``'s or a refusal's message."""
    import redis as sync_redis

    from services.runtime.localredis import free_port, spawn_redis
    from services.runtime.topology import DEMO_MARKER

    secret = "pw-Demo-9f3e1c-secret"
    conf = tmp_path / "redis.conf"
    conf.write_text(f"requirepass {secret}\n")
    port = free_port()
    proc = spawn_redis(port, str(tmp_path), config=str(conf))
    url = f"redis://:{secret}@127.0.0.1:{port}/0"
    try:
        first = run_cli(url, "demo", "--people", "120", "--redis", url, PERMITBUS_LOG_LEVEL="DEBUG")
        assert "records/s end to end" in first and "redis://:***@127.0.0.1" in first
        direct = sync_redis.Redis.from_url(url)
        assert direct.get(DEMO_MARKER).startswith(b"written by permitbus demo")
        second = run_cli(url, "demo", "--people", "120", "--redis", url)
        assert "cleared" in second and "records/s end to end" in second
        direct.set("someone-else:data", "x")
        direct.delete(DEMO_MARKER)
        refused = run_cli(url, "demo", "--people", "10", "--redis", url, expect=1)
        assert "refusing to run the demo" in refused and direct.get("someone-else:data") == b"x"
        direct.close()
        unreachable = f"redis://:{secret}@127.0.0.1:{free_port()}/0"
        sim = run_cli(unreachable, "simulate", "--people", "10", expect=1)
        assert "cannot reach Redis at redis://:***@" in sim
        wrong = run_cli(f"redis://:not-{secret}@127.0.0.1:{port}/0", "demo", "--people", "10", "--redis",
                        f"redis://:not-{secret}@127.0.0.1:{port}/0", expect=1)
        for out in (first, second, refused, sim, wrong):
            assert secret not in out
    finally:
        proc.terminate()
        proc.wait(5)


def test_a_bad_setting_is_reported_without_its_value(redis_url):
    """A malformed PERMITBUS_API_TOKENS stops the command; the error names the field, not the token."""
    out = run_cli(redis_url, "topology", expect=2, PERMITBUS_API_TOKENS='{"edu": ["tok-7c1d-secret"]}')
    assert "PERMITBUS_API_TOKENS" in out and "tok-7c1d-secret" not in out
    assert "Traceback" not in out and len(out.strip().splitlines()) == 1


def test_redact_url_stars_every_form_of_password():
    from services.runtime.redact import redact_url

    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert redact_url("redis://app:s3cret@db:6379/2") == "redis://app:***@db:6379/2"
    assert redact_url("redis://:s3cret@db:6379/0") == "redis://:***@db:6379/0"
    assert redact_url("redis://s3cret@db/0") == "redis://***@db/0"
    assert redact_url("rediss://db/0?ssl_cert_reqs=none&password=s3cret") == \
        "rediss://db/0?ssl_cert_reqs=none&password=***"
    assert redact_url("redis://[::1:6379/0") == "***"
