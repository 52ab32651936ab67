"""``permitbus follow`` as the departments run it: a process, connected to Redis as the
department's own ACL user (``permitbus acl``), its snapshots from ``permitbus api`` over HTTP,
into the real PostgreSQL. Killed with SIGKILL mid-burst and mid-snapshot, stopped with SIGTERM,
refused another department's outlet."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import httpx
import psycopg
import pytest
import redis.asyncio as aioredis

from services.follow.snapshot import Api
from schemas.districts import DISTRICTS
from services.runtime.localredis import free_port
from services.runtime.settings import Settings
from services.runtime.setup import run_setup
from tests import chaos, pg
from tests.aclredis import acl_redis
from tests.test_follow import HEALTH, as_rows

TOKENS = {"psb": "tok-psb", "edu": "tok-edu", "health": "tok-health", "housing": "tok-housing",
          "medins": "tok-medins"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with acl_redis(tmp_path_factory.mktemp("follow")) as srv:
        yield srv


@contextlib.contextmanager
def api_process(srv, **env: str):
    """``permitbus api`` as pb-api, on a free port, until the block ends. A slow rate makes a
    snapshot last long enough to be interrupted."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "services.cli", "api"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=chaos.env_for(
                                srv.url("pb-api"), PERMITBUS_API_TOKENS=json.dumps(TOKENS),
                                PERMITBUS_API_PORT=str(port), **env))
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError(proc.communicate(timeout=5)[0].decode()[-2000:])
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def follower(srv, dept: str, into: str, api: str, *, user: str | None = None, token: str | None = None,
             extra: tuple[str, ...] = ()) -> subprocess.Popen:
    env = chaos.env_for(srv.url(user or f"dept-{dept}"), PERMITBUS_FOLLOW_TOKEN=token or TOKENS[dept],
                        PERMITBUS_LOG_LEVEL="INFO")
    return subprocess.Popen([sys.executable, "-m", "services.cli", "follow", dept, "--into", into, "--api", api,
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)


async def fresh(srv) -> aioredis.Redis:
    admin = aioredis.Redis.from_url(srv.admin)
    await admin.flushall()
    assert await run_setup(Settings(redis_url=srv.url("pb-setup"))) == 0
    return admin


def position(url: str) -> str | None:
    try:
        return pg.scalar(url, "SELECT position FROM permitbus_follow_position WHERE outlet = 'outlet:health'")
    except psycopg.errors.UndefinedTable:
        return None


async def caught_up(admin, urls: list[str], timeout: float = 60.0) -> str:
    """Wait until every follower's position is the outlet's last id."""
    deadline = time.monotonic() + timeout
    while True:
        last = (await admin.xinfo_stream("outlet:health"))["last-generated-id"].decode()
        if all(position(u) == last for u in urls):
            return last
        assert time.monotonic() < deadline, f"followers not caught up with {last}: {[position(u) for u in urls]}"
        await asyncio.sleep(0.1)


def sigterm(proc: subprocess.Popen) -> tuple[int, float, str]:
    """SIGTERM; (exit status, seconds to exit, its output)."""
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=15)[0].decode()
    return proc.returncode, time.monotonic() - started, out


def kill9(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGKILL)
    return proc.communicate(timeout=10)[0].decode()


async def wait_for(predicate, timeout: float = 30.0, poll: float = 0.05):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {predicate}"
        await asyncio.sleep(poll)
    return value


# -- refusals ---------------------------------------------------------------------------------------
async def test_another_departments_outlet_is_refused_and_nothing_is_written(server):
    admin = await fresh(server)
    await admin.xadd("outlet:health", {"payload": b"{}"})
    with api_process(server) as api, pg.database() as url:
        # the Education Bureau's Redis user on the Health Commission's outlet
        proc = follower(server, "health", url, api, user="dept-edu")
        text = proc.communicate(timeout=60)[0].decode()
        assert proc.returncode == 2, text
        assert "Redis refuses outlet:health to its user dept-edu (NOPERM)" in text, text
        # its own Redis user, another department's API token
        wrong = follower(server, "health", url, api, token=TOKENS["edu"])
        text2 = wrong.communicate(timeout=60)[0].decode()
        assert wrong.returncode == 2 and "HTTP 403" in text2, text2
        assert position(url) is None and pg.rows(url) == {}
        for secret in (*TOKENS.values(), *server.passwords.values()):
            assert secret not in text + text2
    await admin.aclose()


# -- SIGTERM ----------------------------------------------------------------------------------------
async def test_sigterm_stops_it_within_10_s_exit_0_idle_or_mid_snapshot(server):
    admin = await fresh(server)
    inputs = chaos.city(120, 11)
    procs = chaos.Procs(server.url("pb-up"))
    procs.start()
    try:
        await chaos.publish(admin, "psb:permit", inputs["psb:permit"])
        await chaos.wait_idle(admin, procs=procs)
    finally:
        assert procs.stop() == [0]
    # one request a minute after the first: the snapshot waits on HTTP 429 when SIGTERM comes
    with api_process(server, PERMITBUS_API_RATE_PER_S="0.017", PERMITBUS_API_BURST="1") as api, \
            pg.database() as url:
        proc = follower(server, "health", url, api)
        await wait_for(lambda: pg.scalar(url, "SELECT count(*) FROM permitbus_follow_snapshot")
                       if _has_tables(url) else 0)
        await asyncio.sleep(1.0)
        code, took, out = sigterm(proc)
        assert code == 0 and took < 10, (code, took, out)
        assert position(url) is None and pg.rows(url) == {}  # the snapshot's transaction rolled back
    with api_process(server) as api, pg.database() as url:
        proc = follower(server, "health", url, api)
        await caught_up(admin, [url])
        await asyncio.sleep(1.5)  # idle: blocked on the outlet
        code, took, out = sigterm(proc)
        assert code == 0 and took < 10, (code, took, out)
        assert "entries applied" in out
    await admin.aclose()


def _has_tables(url: str) -> bool:
    return bool(pg.scalar(url, "SELECT to_regclass('permitbus_follow_snapshot') IS NOT NULL"))


# -- kill -9 ----------------------------------------------------------------------------------------
@pytest.mark.slow
async def test_killed_again_and_again_mid_burst_it_ends_with_the_rows_of_an_uninterrupted_follower(server):
    """Two followers of the Health Commission's outlet, under its own Redis user, into two
    databases: one left alone, one killed with SIGKILL mid-snapshot, once after it, and then four
    times while the pipeline pours a burst of decisions onto the outlet (each time started again
    with a backlog waiting and killed as soon as it has committed its first batch of it, the
    backlog still growing). Both end with the same rows, which are the outlet's
    latest decisions and, where eligible, the roster the API serves."""
    admin = await fresh(server)
    permits = chaos.city(3000, 23)["psb:permit"]
    first, rest = permits[: len(permits) // 3], permits[len(permits) // 3:]
    procs = chaos.Procs(server.url("pb-up"))
    procs.start()
    kills: list[tuple[str | None, str]] = []  # (B's position, the outlet's last id) at each kill
    logs: list[str] = []
    try:
        await chaos.publish(admin, "psb:permit", first)
        await chaos.wait_idle(admin, procs=procs)
        with api_process(server, PERMITBUS_API_RATE_PER_S="3", PERMITBUS_API_BURST="1") as api, \
                pg.database() as steady_url, pg.database() as killed_url:
            steady = follower(server, "health", steady_url, api)
            killed = follower(server, "health", killed_url, api, extra=("--batch", "40"))
            # 1: mid-snapshot (the slow API: 22 roster reads at 3 a second)
            await wait_for(lambda: _has_tables(killed_url)
                           and pg.scalar(killed_url, "SELECT count(*) FROM permitbus_follow_snapshot"))
            await asyncio.sleep(0.8)
            kills.append((position(killed_url), ""))
            logs.append(kill9(killed))
            assert position(killed_url) is None  # it was still taking its snapshot
            killed = follower(server, "health", killed_url, api, extra=("--batch", "40"))
            await wait_for(lambda: position(killed_url))  # its snapshot done, from the same base
            # 2-5: the burst, in consecutive slices (each person's records keep their order). Each
            # slice lands while it is down; it is started again, and killed as soon as it is
            # working through that backlog, more still arriving
            slices = [rest[i * len(rest) // 4:(i + 1) * len(rest) // 4] for i in range(4)]
            logs.append(kill9(killed))
            for part in slices:
                was = position(killed_url)
                length = await admin.xlen("outlet:health")
                await chaos.publish(admin, "psb:permit", part)
                deadline = time.monotonic() + 30
                while await admin.xlen("outlet:health") < length + 150 and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
                killed = follower(server, "health", killed_url, api, extra=("--batch", "20"))
                # killed as soon as its first batch of the backlog is committed; its position and
                # the outlet's end are read once it is dead
                await wait_for(lambda: position(killed_url) != was, poll=0.002)
                logs.append(kill9(killed))
                last = (await admin.xinfo_stream("outlet:health"))["last-generated-id"].decode()
                kills.append((position(killed_url), last))
            killed = follower(server, "health", killed_url, api, extra=("--batch", "20"))
            await chaos.wait_idle(admin, procs=procs)
            await caught_up(admin, [steady_url, killed_url], timeout=90)
            for proc in (steady, killed):
                code, took, out = sigterm(proc)
                logs.append(out)
                assert code == 0 and took < 10, (code, took, out[-2000:])
            table = pg.rows(steady_url)
            assert pg.rows(killed_url) == table
            assert len(kills) == 5
            behind = [k for k in kills[1:] if k[0] != k[1]]
            assert len(behind) >= 3, kills  # killed with work waiting, not only when idle
            # the rows are the outlet's latest decisions after the base, and the roster where eligible
            reader, roster = Api(api, TOKENS["health"]), {}  # the follower's client: it waits out HTTP 429
            for d in DISTRICTS:
                async for _, entries in reader.pages(HEALTH, d):
                    roster |= {(e["entitlement"], e["subject_id"], ""): e for e in entries}
            await reader.aclose()
            assert {k: v for k, v in table.items() if v[3] == "eligible"} == as_rows(roster)
            assert len(roster) > 1000
            assert any(v[3] == "revoked" for v in table.values())
    finally:
        assert procs.stop() == [0]
    text = "\n".join(logs)
    assert "Traceback" not in text, text[-3000:]
    for secret in (*TOKENS.values(), *server.passwords.values()):
        assert secret not in text
    await admin.aclose()
