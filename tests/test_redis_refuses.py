"""Redis saying no is an outage, not a crash: out of memory under ``noeviction`` mid-burst (and a
restart while it lasts), then room again; the outlets equal an undisturbed run's.

Runs on a redis-server of its own (CONFIG SET maxmemory would disturb every other test)."""

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.exceptions import OutOfMemoryError, ReadOnlyError, ResponseError

from services.runtime.outage import REDIS_OUTAGE, RedisBusyError
from services.runtime.redis import fn, load_functions
from tests import chaos

PEOPLE, SEED = 300, 5


@pytest.fixture
def private_url(tmp_path):
    from services.runtime.localredis import free_port, spawn_redis

    port = free_port()
    proc = spawn_redis(port, str(tmp_path))
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait()


async def oom_count(r) -> int:
    return (await r.info("errorstats")).get("errorstat_OOM", {}).get("count", 0)


@pytest.mark.slow
async def test_out_of_memory_mid_burst_then_room_again(private_url):
    inputs = chaos.city(PEOPLE, SEED)
    want, _ = await chaos.run(private_url, inputs)
    assert sum(len(v) for v in want.decisions.values()) > 200
    seen = {}

    async def disturb(feed, procs, r):
        if feed != "hrss:contribution":
            return
        await asyncio.sleep(0.2)  # the burst is being normalized and decided
        await r.config_set("maxmemory", 1)  # every write refused from now on (noeviction)
        await r.config_resetstat()
        await asyncio.sleep(1.5)
        procs.kill9()  # a restart while Redis refuses writes waits; it does not die at start-up
        oom_before = await oom_count(r)
        procs.restart()
        for _ in range(300):  # until the new workers (processes of `permitbus up`) meet refusals too
            await asyncio.sleep(0.1)
            if await oom_count(r) > oom_before:
                break
        await asyncio.sleep(1)
        seen["alive"] = procs.alive()
        seen["oom"] = await oom_count(r)
        seen["backlog"] = await r.xlen("ingress:hrss:contribution")
        await r.config_set("maxmemory", 0)

    got, procs = await chaos.run(private_url, inputs, disturb)
    assert seen["alive"], b"\n".join(procs.logs).decode()[-3000:]
    assert seen["oom"] > 0  # the services really met OOM refusals
    chaos.assert_exact(got, want)
    log = b"\n".join(procs.logs).decode()
    refusals = log.count("Redis refuses the work")
    assert 1 <= refusals <= 12, log[-3000:]  # once per outage and component, not once per attempt
    assert "Redis back after" in log
    assert "Traceback" not in log, log[-3000:]


async def test_refusals_are_outages_and_script_errors_are_not(private_url):
    """The classes the services treat as "wait and retry", read off a real Redis's replies."""
    r = aioredis.Redis.from_url(private_url)
    try:
        await load_functions(r)
        await r.config_set("maxmemory", 1)
        with pytest.raises(OutOfMemoryError) as oom:
            await r.xadd("s", {"a": "b"})
        assert isinstance(oom.value, REDIS_OUTAGE)
        with pytest.raises(OutOfMemoryError):  # a pipeline keeps the class
            await r.pipeline(transaction=False).set("k", "v").execute()
        with pytest.raises(OutOfMemoryError):  # and so does a refused FUNCTION LOAD
            await r.function_load("#!lua name=pbtest\nredis.register_function('pbt', function() return 1 end)")
        # the lease and the acknowledgement still work out of memory: ownership does not flap
        assert await r.fcall(fn("pb_lease"), 1, "lease:x", "me", 1000, "take") == 1
        await r.config_set("maxmemory", 0)
        with pytest.raises(ResponseError) as bad:  # a script's own error is not an outage
            await r.fcall(fn("pb_commit"), 7, "a", "b", "c", "d", "e", "f", "g", "0-0", "1-0", "not msgpack")
        assert not isinstance(bad.value, REDIS_OUTAGE)
        await r.config_set("busy-reply-threshold", 100)
        slow = asyncio.create_task(r.eval("local t = redis.call('TIME')[1] + 2 "
                                          "while tonumber(redis.call('TIME')[1]) < t do end return 1", 0))
        await asyncio.sleep(0.3)
        other = aioredis.Redis.from_url(private_url)
        with pytest.raises(RedisBusyError) as busy:
            await other.get("k")
        assert isinstance(busy.value, REDIS_OUTAGE)
        await other.aclose()
        await slow
        assert ReadOnlyError in REDIS_OUTAGE
    finally:
        await r.aclose()
