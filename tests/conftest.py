"""Test fixtures: a real Redis (PERMITBUS_TEST_REDIS, default 127.0.0.1:6379), one database per
test, emptied before and after. No stand-ins."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os

import pytest
import redis.asyncio as aioredis

from services.runtime.redis import ensure_groups, load_functions
from services.runtime.settings import Settings

BASE = os.environ.get("PERMITBUS_TEST_REDIS", "redis://127.0.0.1:6379")
# Tests run with the built-in keys (their processes inherit this); tests/test_atrest.py checks
# that a deployment without its own keys refuses to start.
os.environ.setdefault("PERMITBUS_INSECURE_DEV_KEYS", "1")
TEST_DBS = range(1, 16)


def pytest_configure(config):
    """No Redis on 127.0.0.1:6379 (a fresh machine)? Start a private one for the whole run."""
    global BASE
    from services.runtime.localredis import answers, private_redis

    if not answers(BASE + "/0"):
        cm = private_redis()
        url, _ = cm.__enter__()
        config._permitbus_redis = cm
        BASE = url.rsplit("/", 1)[0]
        os.environ["PERMITBUS_TEST_REDIS"] = BASE


def pytest_unconfigure(config):
    cm = getattr(config, "_permitbus_redis", None)
    if cm is not None:
        cm.__exit__(None, None, None)


@pytest.fixture
def redis_url():
    """A database of its own for this test; a lock in db 0 keeps concurrent test runs apart."""
    import redis as sync_redis

    admin = sync_redis.Redis.from_url(f"{BASE}/0")
    token = f"{os.getpid()}"
    for _ in range(600):
        for db in TEST_DBS:
            if admin.set(f"permitbus:test-lock:{db}", token, nx=True, ex=900):
                try:
                    yield f"{BASE}/{db}"
                finally:
                    admin.delete(f"permitbus:test-lock:{db}")
                    admin.close()
                return
        import time

        time.sleep(0.5)
    raise RuntimeError("no free test database on the test Redis")


@pytest.fixture
async def r(redis_url):
    client = aioredis.Redis.from_url(redis_url)
    await client.flushdb()
    await load_functions(client)
    await ensure_groups(client)
    yield client
    await client.flushdb()
    await client.aclose()


@pytest.fixture
def settings(redis_url) -> Settings:
    return Settings(redis_url=redis_url, partitions=4, batch_size=500, today=dt.date(2026, 11, 28),
                    scheduler_interval_s=0.05, lease_ttl_ms=1500)


async def publish(r, feed: str, *records) -> list[bytes]:
    """XADD raw department records (dicts are JSON-encoded; bytes go as they are)."""
    ids = []
    for rec in records:
        payload = rec if isinstance(rec, bytes) else json.dumps(rec, ensure_ascii=False).encode()
        ids.append(await r.xadd(f"ingress:{feed}", {"payload": payload}))
    return ids


async def read_outlet(r, stream: str) -> list[dict]:
    return [json.loads(f[b"payload"]) for _, f in await r.xrange(stream)]


async def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate.__name__}")
        await asyncio.sleep(interval)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    """A local Redis Cluster of 3 primaries and 3 replicas for the whole run (started on first
    use, stopped at the end; tests/cluster.py)."""
    from tests.cluster import LocalCluster

    c = LocalCluster(tmp_path_factory.mktemp("cluster")).start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def cluster(redis_cluster):
    """The cluster, emptied (data and functions) before and after this test."""
    redis_cluster.wait_ok()
    redis_cluster.flush()
    yield redis_cluster
    redis_cluster.flush()
