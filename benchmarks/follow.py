"""``python -m benchmarks.follow``: records/s from an outlet into PostgreSQL, ``permitbus follow``
against a naive consumer measured in the same run on the same entries.

A private redis-server; ``outlet:health`` filled with a monthly-burst-like backlog (``--entries``,
default 200,000) of decisions encoded by schemas/decision.py: ``--subjects`` people, most decided
once, some two or three times (eligible, revoked, eligible again), in outlet order. Each run
follows the whole backlog into a fresh database on the PostgreSQL of ``--pg`` (default the local
one), from position ``0-0`` (no snapshot: the rosters are not what is measured):

* ``follow --batch N``: the follower as shipped (services/follow/follower.py), for each N of
  ``--batches``: one verified XREAD, one COPY + guarded upsert + position per transaction, the
  next batch read while PostgreSQL works; and once more at the largest N without reading ahead;
* ``naive``: what a department would write first: XREAD 1000, then per entry one transaction
  (the guarded upsert and the position), synchronous_commit as the server has it (on), over the
  first ``--naive-entries`` entries (it is slow);
* ``naive, synchronous_commit off``: the same with the follower's session setting, to tell the
  batching from the commit setting.

CPU seconds of the benchmark process (reading, decoding) and of the PostgreSQL backend serving it
(/proc/<pid>/stat) are printed beside, and their sum per entry: on a shared machine the CPU an
entry costs moves much less than the wall-clock rate. Measures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import tempfile
import time

import psycopg
import redis.asyncio as aioredis

from benchmarks.__main__ import cpu_s, publish
from schemas.decision import Decision, decision_encoder
from services.follow import store
from services.follow.follower import Follower
from services.follow.rows import Row, from_entry
from services.runtime.localredis import free_port, spawn_redis

OUTLET, HEALTH = "outlet:health", "health.family_doctor"
DISTRICTS = ("320102", "320104", "320105", "320106", "320111", "320113", "320114", "320115", "320116",
             "320117", "320118")


def backlog(entries: int, subjects: int, seed: int = 7) -> list[bytes]:
    """Decisions as the decider emits them for a roster entitlement, in outlet order."""
    rng = random.Random(seed)
    ids = [f"3201{rng.randrange(10**13):013d}{rng.choice('0123456789X')}" for _ in range(subjects)]
    version = [0] * subjects
    out = []
    now = dt.datetime(2026, 11, 28, 10, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    for i in range(entries):
        s = i if i < subjects else rng.randrange(subjects)
        version[s] += 1
        v = version[s]
        status = "eligible" if v % 2 else "revoked"
        out.append(decision_encoder.encode(Decision(
            decision_id=f"{i:024x}", entitlement=HEALTH, subject_id=ids[s], application_id=None, status=status,
            district=DISTRICTS[s % len(DISTRICTS)], priority=False,
            reasons=[] if status == "eligible" else ["PERMIT_EXPIRED"], basis=["（七）", "（十二）"],
            as_of=now.date(), caused_by=[f"GA{i:012d}"], version=v, decided_at=now + dt.timedelta(milliseconds=i))))
    return out


async def fresh_db(base: str, name: str) -> str:
    async with await psycopg.AsyncConnection.connect(f"{base}/postgres", autocommit=True) as c:
        await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await c.execute(f'CREATE DATABASE "{name}"')
    url = f"{base}/{name}"
    conn = await store.connect(url)
    await conn.execute(f"INSERT INTO {store.POSITION} VALUES (%s, '0-0')", (OUTLET,))
    await conn.close()
    return url


async def drop_db(base: str, name: str) -> None:
    async with await psycopg.AsyncConnection.connect(f"{base}/postgres", autocommit=True) as c:
        await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def run_follow(redis_url: str, url: str, batch: int, read_ahead: bool = True) -> tuple[float, float]:
    """The follower over the whole backlog: (seconds, its PostgreSQL backend's CPU seconds)."""
    f = Follower("health", redis_url, url, None, batch=batch, once=True, read_ahead=read_ahead)
    probe = await psycopg.AsyncConnection.connect(url, autocommit=True)
    started = time.perf_counter()
    task = asyncio.create_task(f.run())
    pid = None
    while pid is None and not task.done():  # the follower's own backend, once it has connected
        cur = await probe.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'permitbus follow'")
        row = await cur.fetchone()
        pid = row[0] if row else None
        await asyncio.sleep(0.005)
    cpu0 = cpu_s(pid) if pid else 0.0
    last = cpu0
    while not task.done():
        last = cpu_s(pid) if pid else 0.0
        await asyncio.sleep(0.05)
    await task
    elapsed = time.perf_counter() - started
    await probe.close()
    return elapsed, max(last - cpu0, 0.0)


async def run_naive(redis_url: str, url: str, entries: int, synchronous_commit: bool) -> tuple[float, float]:
    """XREAD 1000, then one transaction per entry (upsert + position): (seconds, backend CPU s)."""
    r = aioredis.Redis.from_url(redis_url)
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    pid = conn.info.backend_pid
    cpu0 = cpu_s(pid)
    if not synchronous_commit:
        await conn.execute("SET synchronous_commit = off")
    cols = ", ".join(store.COLUMNS)
    upsert = (f"INSERT INTO {store.DECISION} AS t ({cols}) VALUES ({', '.join(['%s'] * len(store.COLUMNS))}) "
              f"ON CONFLICT (entitlement, subject_id, application_id) DO UPDATE SET "
              + ", ".join(f"{c} = EXCLUDED.{c}" for c in store.COLUMNS[3:]) + " WHERE t.version < EXCLUDED.version")
    done, position = 0, "0-0"
    started = time.perf_counter()
    while done < entries:
        resp = await r.xread({OUTLET: position}, count=min(1000, entries - done))
        if not resp:
            break
        for eid, fields in resp[0][1]:
            row = from_entry(eid.decode(), fields, frozenset({HEALTH}))
            async with conn.transaction():
                if isinstance(row, Row):
                    await conn.execute(upsert, row.columns())
                await conn.execute(f"UPDATE {store.POSITION} SET position = %s WHERE outlet = %s",
                                   (eid.decode(), OUTLET))
            position = eid.decode()
            done += 1
    elapsed = time.perf_counter() - started
    backend = cpu_s(pid) - cpu0
    await conn.close()
    await r.aclose()
    return elapsed, backend


async def main(args) -> None:
    base = args.pg.rstrip("/")
    print(f"building {args.entries:,} decisions over {args.subjects:,} people ...", flush=True)
    payloads = backlog(args.entries, args.subjects)
    with tempfile.TemporaryDirectory() as workdir:
        port = free_port()
        proc = spawn_redis(port, workdir)
        redis_url = f"redis://127.0.0.1:{port}/0"
        try:
            r = aioredis.Redis.from_url(redis_url)
            await publish(r, OUTLET, payloads)
            size = await r.memory_usage(OUTLET) or 0
            await r.aclose()
            print(f"outlet: {len(payloads):,} entries, {size / 1e6:.0f} MB in Redis; PostgreSQL {base}\n")
            rows = []
            runs = [(batch, True) for batch in args.batches] + [(max(args.batches), False)]
            for batch, ahead in runs:
                name = f"pbbench_follow_{os.getpid()}_{batch}_{int(ahead)}"
                url = await fresh_db(base, name)
                cpu0 = cpu_s(os.getpid())
                took, pg_cpu = await run_follow(redis_url, url, batch, ahead)
                own = cpu_s(os.getpid()) - cpu0
                async with await psycopg.AsyncConnection.connect(url) as c:
                    n = (await (await c.execute(f"SELECT count(*) FROM {store.DECISION}")).fetchone())[0]
                await drop_db(base, name)
                rows.append((f"follow --batch {batch}{'' if ahead else ', without reading ahead'}", len(payloads), took,
                             own, pg_cpu, n))
            for sync in (True, False):
                name = f"pbbench_naive_{os.getpid()}_{int(sync)}"
                url = await fresh_db(base, name)
                cpu0 = cpu_s(os.getpid())
                took, pg_cpu = await run_naive(redis_url, url, args.naive_entries, sync)
                own = cpu_s(os.getpid()) - cpu0
                await drop_db(base, name)
                rows.append((f"naive: a transaction per entry, synchronous_commit {'on' if sync else 'off'}",
                             args.naive_entries, took, own, pg_cpu, None))
        finally:
            proc.terminate()
            proc.wait(10)
    naive = rows[-2][1] / rows[-2][2]
    naive_us = (rows[-2][3] + rows[-2][4]) / rows[-2][1] * 1e6
    print("| run | entries | seconds | records/s | x naive | CPU s (this process / PG backend) | CPU us an entry "
          "| x naive | rows |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for what, n, took, own, pg_cpu, count in rows:
        rate, us = n / took, (own + pg_cpu) / n * 1e6
        print(f"| {what} | {n:,} | {took:.1f} | {rate:,.0f} | {rate / naive:.1f}x | {own:.1f} / {pg_cpu:.1f} "
              f"| {us:.0f} | {naive_us / us:.1f}x less | {f'{count:,}' if count is not None else '-'} |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="python -m benchmarks.follow", description=__doc__)
    ap.add_argument("--entries", type=int, default=200_000)
    ap.add_argument("--subjects", type=int, default=150_000)
    ap.add_argument("--batches", type=lambda s: [int(x) for x in s.split(",")], default=[500, 2000, 5000])
    ap.add_argument("--naive-entries", type=int, default=20_000)
    ap.add_argument("--pg", default=os.environ.get("PERMITBUS_TEST_PG", "postgresql://postgres@127.0.0.1:5432"))
    asyncio.run(main(ap.parse_args()))
