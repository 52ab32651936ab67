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
TEST_DBS = range(1, 16)
_next_db = iter(())


def _db() -> int:
    global _next_db
    try:
        return next(_next_db)
    except StopIteration:
        _next_db = iter(TEST_DBS)
        return next(_next_db)


@pytest.fixture
def redis_url() -> str:
    return f"{BASE}/{_db()}"


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
                    scheduler_interval_s=0.05, claim_idle_ms=200)


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
