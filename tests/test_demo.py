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
    assert "started a private redis-server" in out and "records/s end to end" in out


def test_demo_says_how_to_get_redis_when_there_is_none(tmp_path):
    from services.runtime.localredis import free_port

    bare_path = str(tmp_path)  # no redis-server on this PATH
    out = run_cli(f"redis://127.0.0.1:{free_port()}/0", "demo", "--people", "10", expect=1, PATH=bare_path)
    assert "No Redis answers" in out and "apt-get install redis-server" in out
