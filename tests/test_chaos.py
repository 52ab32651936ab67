"""Nothing lost, nothing twice: kill -9 the services at random moments, restart Redis mid-burst,
and compare the outlets with an undisturbed run of the same input."""

import asyncio
import signal

import pytest

from tests import chaos
from tests.harness import unfinished

pytestmark = pytest.mark.slow

PEOPLE, SEED = 1300, 11  # about 52,000 records over the four feeds


@pytest.fixture(scope="module")
def inputs():
    data = chaos.city(PEOPLE, SEED)
    assert chaos.total(data) >= 50_000
    return data


_baseline = {}


async def baseline(redis_url, inputs):
    if "outcome" not in _baseline:
        _baseline["outcome"], _ = await chaos.run(redis_url, inputs)
        assert sum(len(v) for v in _baseline["outcome"].decisions.values()) > 1000
    return _baseline["outcome"]


async def test_kill_9_at_random_moments(redis_url, inputs):
    want = await baseline(redis_url, inputs)
    plan = {"psb:permit": 1, "hrss:contribution": 3, "edu:application": 1}  # kills per feed
    got, procs = await chaos.run(redis_url, inputs, chaos.random_kills(chaos.rng(20261128), plan, 0.8))
    assert procs.kills == 5
    chaos.assert_exact(got, want)
    print(f"kill -9 chaos: {chaos.total(inputs):,} records, {procs.kills} kills, "
          f"{sum(len(v) for v in got.decisions.values()):,} decisions equal to the undisturbed run")


async def test_redis_restart_with_aof_mid_burst(redis_url, inputs, tmp_path):
    """Redis (AOF, everysec) killed with SIGKILL mid-burst and started again on the same port and
    files: the services reconnect by themselves and the outlets equal an undisturbed run."""
    import signal

    from services.runtime.localredis import free_port, spawn_redis

    want = await baseline(redis_url, inputs)
    port = free_port()
    server = {"proc": spawn_redis(port, str(tmp_path), appendonly=True)}
    private = f"redis://127.0.0.1:{port}/0"
    restarts = 0

    async def disturb(feed, procs, r):
        nonlocal restarts
        if feed != "hrss:contribution":
            return
        await asyncio.sleep(0.7)
        server["proc"].send_signal(signal.SIGKILL)
        server["proc"].wait()
        await asyncio.sleep(1.5)  # an outage: the services retry with backoff meanwhile
        server["proc"] = spawn_redis(port, str(tmp_path), appendonly=True)
        restarts += 1

    try:
        got, procs = await chaos.run(private, inputs, disturb)
    finally:
        server["proc"].terminate()
        server["proc"].wait()
    assert restarts == 1
    chaos.assert_exact(got, want)
    log = b"\n".join(procs.logs).decode()
    outages = log.count("Redis unreachable")
    assert 1 <= outages <= 12, log[-3000:]  # once per outage and component, not once per attempt
    assert "Redis back after" in log


async def test_two_workers_one_killed_the_survivor_takes_over(redis_url, inputs):
    """Two normalizers, two deciders: kill -9 the active normalizer while it holds read-but-not-
    finished entries, and one decider; the survivors read those entries again (the group moved
    back to the committed position) and take the partitions, and the outlets equal an
    undisturbed run."""
    want = await baseline(redis_url, inputs)
    commands = [("run", "normalize"), ("run", "normalize"), ("run", "decider"), ("run", "decider"),
                ("run", "relay"), ("run", "scheduler")]
    seen = {}

    async def kill_when_pending(procs, r):
        """Runs while the contribution feed is being published: kills the active normalizer
        while it holds a batch it has read and not finished. It is stopped (SIGSTOP) first and
        the feed looked at again, so that the batch cannot be finished between the look and the
        kill; if it was, the normalizer goes on (SIGCONT) and the next batch is waited for."""
        reading = 0
        for _ in range(20_000):
            if await unfinished(r, "hrss:contribution"):
                holder = (await r.get("lease:normalize:hrss:contribution")).decode()
                active = next(i for i in (0, 1) if holder.endswith(f"-{procs.procs[i].pid}"))
                procs.procs[active].send_signal(signal.SIGSTOP)
                reading = await unfinished(r, "hrss:contribution")
                if reading:
                    break
                procs.procs[active].send_signal(signal.SIGCONT)
            await asyncio.sleep(0.001)
        assert reading, "the normalizer was never seen holding a batch it had not finished"
        seen["pending_at_kill"] = reading
        procs.kill9(active)
        procs.kill9(2)  # one of the two deciders
        procs.procs[active] = procs.procs[2] = _Done()

    async def disturb(feed, procs, r):
        if feed == "psb:permit":  # the contribution feed is published next, with this watching
            seen["killer"] = asyncio.create_task(kill_when_pending(procs, r))
        elif feed == "hrss:contribution":
            await seen["killer"]

    got, procs = await chaos.run(redis_url, inputs, disturb, commands=commands, PERMITBUS_LOG_LEVEL="INFO")
    assert seen["pending_at_kill"] > 0
    chaos.assert_exact(got, want)
    log = b"\n".join(procs.logs).decode()
    assert "ingress:hrss:contribution: reading again from" in log  # the survivor moved the group back
    assert "another worker holds the feed; standing by" in log


class _Done:
    """Stands in for a process that was killed on purpose and not restarted."""

    returncode = 0
    pid = -1

    def poll(self):
        return None  # not counted as a service that died

    def send_signal(self, sig):
        pass

    def communicate(self, timeout=None):
        return (b"", None)
