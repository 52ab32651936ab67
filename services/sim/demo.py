"""``permitbus demo`` and ``permitbus simulate``: a simulated Nanjing through the real services.

The demo never touches a deployment (docs/contract.md, "Running"): it runs on a private
``redis-server`` of its own, whatever ``PERMITBUS_REDIS_URL`` says. Pointed at a Redis with
``--redis``, it first makes the database its own: an empty one gets the marker
``topology.DEMO_MARKER`` before anything else is written; a marked one (an earlier demo's) is
emptied; any other (a deployment, or anyone's data) is refused and left untouched. URLs are printed
with their password starred (``redact_url``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import sys
import time
from collections import Counter, defaultdict

from schemas.districts import DISTRICTS
from services.ops.backlog import backlog
from services.runtime import topology as t
from services.runtime.clock import Clock
from services.runtime.localredis import NoRedis, private_redis
from services.runtime.redact import redact_url
from services.runtime.redis import connect, ensure_groups, load_functions
from services.runtime.runner import Running, serve
from services.runtime.settings import Settings
from services.sim.generator import SimConfig, generate

NO_SERVER_HELP = (
    "permitbus demo runs on a private redis-server of its own, and there is no redis-server on PATH.\n"
    "Install Redis 7 (Debian/Ubuntu: `apt-get install redis-server`), or give the demo a Redis it may "
    "use: permitbus demo --redis redis://HOST:PORT/DB (an empty database, or one an earlier demo wrote)."
)


class NotOurs(Exception):
    """The Redis database holds data the demo did not write."""


async def claim(r) -> int:
    """Make the database the demo's own before writing anything: mark an empty one, empty a marked
    one (returns how many keys an earlier demo left), refuse anything else (``NotOurs``)."""
    if await r.exists(t.DEMO_MARKER):
        left = await r.dbsize() - 1
        await r.flushdb()
    else:
        left = 0
        if await r.dbsize():
            sample = sorted(k.decode("utf-8", "replace") for k in (await r.scan(0, count=100))[1])[:3]
            raise NotOurs(f"{await r.dbsize():,} keys the demo did not write (e.g. {', '.join(sample)})")
    stamp = f"written by permitbus demo at {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}"
    if not await r.set(t.DEMO_MARKER, stamp, nx=True):
        raise NotOurs("another demo claimed it at the same moment")
    return left


async def publish(r, records, progress=None) -> Counter:
    """XADD the records on their ingress streams, 1,000 per round trip. Returns counts per feed."""
    counts: Counter = Counter()
    pipe = r.pipeline(transaction=False)
    for rec in records:
        pipe.xadd(t.FEEDS[rec.feed].ingress, {"payload": rec.payload})
        counts[rec.feed] += 1
        if len(pipe) >= 1000:
            await pipe.execute()
            if progress:
                progress(counts)
    await pipe.execute()
    return counts


async def simulate(settings: Settings, people: int, seed: int) -> int:
    """Feed a simulated Nanjing into an already running deployment."""
    r = connect(settings.redis_url)
    try:
        await r.ping()
    except Exception as exc:  # noqa: BLE001
        print(f"cannot reach Redis at {redact_url(settings.redis_url)}: {exc}", file=sys.stderr)
        return 1
    today = settings.today or Clock().today()
    started = time.monotonic()
    counts = await publish(r, generate(SimConfig(people=people, seed=seed, today=today)))
    await r.aclose()
    took = time.monotonic() - started
    print(f"published {sum(counts.values()):,} records in {took:.1f} s: "
          + ", ".join(f"{f} {n:,}" for f, n in counts.items()))
    return 0


async def demo(settings: Settings, people: int, seed: int, redis: str | None = None, out=sys.stdout) -> int:
    """Run the demo on a private redis-server, or on ``redis`` if it is empty or the demo's own."""
    if redis is not None:
        return await _on(settings.model_copy(update={"redis_url": redis}), people, seed, out, private=False)
    if shutil.which("redis-server") is None:
        print(NO_SERVER_HELP, file=sys.stderr)
        return 1
    try:
        with private_redis() as (url, _):
            return await _on(settings.model_copy(update={"redis_url": url}), people, seed, out, private=True)
    except NoRedis as exc:
        print(exc, file=sys.stderr)
        return 1


async def _on(settings: Settings, people: int, seed: int, out, *, private: bool) -> int:
    # a demo, not a deployment: the built-in keys when none are given (PERMITBUS_INSECURE_DEV_KEYS)
    settings = settings.model_copy(update={"insecure_dev_keys": True})
    shown = redact_url(settings.redis_url)
    r = connect(settings.redis_url)
    try:
        try:
            left = await claim(r)
        except NotOurs as exc:
            print(f"refusing to run the demo on the Redis at {shown}: it holds {exc}. The demo writes only "
                  "to an empty database or one an earlier demo marked as its own "
                  f"(key {t.DEMO_MARKER}); run `permitbus demo` without --redis to use a private redis-server.",
                  file=sys.stderr)
            return 1
        except Exception as exc:  # noqa: BLE001 - unreachable, wrong password, ...
            print(f"cannot use the Redis at {shown}: {exc}", file=sys.stderr)
            return 1
        if private:
            print(f"Started a private redis-server at {shown} for the demo (stopped afterwards)", file=out)
        else:
            print(f"Using the Redis at {shown} (the demo's own)"
                  + (f": cleared {left} keys an earlier demo left" if left else ""), file=out)
        return await _demo(settings, people, seed, out, r)
    finally:
        await r.aclose()


async def _demo(settings: Settings, people: int, seed: int, out, r) -> int:
    await load_functions(r)
    await ensure_groups(r)
    today = settings.today or Clock().today()
    print(f"Simulating Nanjing on {today}: {people:,} people holding or applying for residence permits", file=out)
    t0 = time.monotonic()
    records = list(generate(SimConfig(people=people, seed=seed, today=today)))
    expected_bad = Counter(rec.malformed for rec in records if rec.malformed)
    print(f"generated {len(records):,} department records in {time.monotonic() - t0:.1f} s "
          f"({sum(expected_bad.values()):,} malformed on purpose)", file=out)

    running = Running()
    svc = asyncio.create_task(serve(settings, running=running, handle_signals=False))
    await running.ready.wait()
    started = time.monotonic()
    published: Counter = Counter()

    def line() -> str:
        n_norm = sum(n.events + n.quarantined for n in running.normalizers)
        decided = running.decider.applied if running.decider else 0
        dec = running.decider.decisions if running.decider else 0
        return (f"\r  published {sum(published.values()):>9,}  normalized {n_norm:>9,}  "
                f"decided {decided:>9,}  decisions {dec:>8,}  {time.monotonic() - started:6.1f} s")

    async def show() -> None:
        while True:
            print(line(), end="", file=out, flush=True)
            await asyncio.sleep(0.5)

    ticker = asyncio.create_task(show())
    published = await publish(r, records, progress=lambda c: published.update(c - published))
    while not (await backlog(r, settings.partitions)).idle:
        await asyncio.sleep(0.2)
    elapsed = time.monotonic() - started
    ticker.cancel()
    print(line(), file=out)
    running.stop.set()
    await svc
    await _summary(r, settings, len(records), elapsed, out)
    return 0


async def _summary(r, settings: Settings, n_records: int, elapsed: float, out) -> None:
    from services.figures.read import by_district, read_counters, render_table

    per: dict[str, Counter] = defaultdict(Counter)
    ents = list(t.OUTLETS)
    for o in t.OUTLETS.values():
        async for key in _entries(r, o.stream):
            per[key[1] or "-"][(key[0], key[2])] += 1
    print("\nDecisions per entitlement per district (eligible / ineligible / revoked):", file=out)
    short = {e: e.split(".")[0] for e in ents}
    head = f"{'district':<14}" + "".join(f"{short[e]:>18}" for e in ents)
    print(head, file=out)
    for code in [*DISTRICTS, "-"]:
        c = per.get(code, Counter())
        name = f"{code} {DISTRICTS.get(code, '')}"
        cells = "".join(f"{c[(e, 'eligible')]:>8}/{c[(e, 'ineligible')]:>4}/{c[(e, 'revoked')]:>4}" for e in ents)
        print(f"{name:<{14 - sum(1 for ch in name if ord(ch) > 0x2E80)}}{cells}", file=out)
    reasons: Counter = Counter()
    for feed in t.FEEDS.values():
        for _, f in await r.xrange(feed.quarantine):
            reasons[(feed.name, f[b"reason"].decode())] += 1
    print(f"\nQuarantined records by reason ({sum(reasons.values()):,} in all):", file=out)
    for (feed, reason), n in sorted(reasons.items()):
        print(f"  {feed:<22} {reason:<18} {n:>6,}", file=out)
    print("\nCity figures (permitbus figures):", file=out)
    print(render_table(by_district(await read_counters(r, settings.partitions))), file=out)
    print(f"\n{n_records:,} records in {elapsed:.1f} s: {n_records / elapsed:,.0f} records/s end to end", file=out)


async def _entries(r, stream: str):
    import msgspec

    last = "-"
    while True:
        rows = await r.xrange(stream, min=last, count=5000)
        if last != "-":
            rows = rows[1:]
        if not rows:
            return
        for _, f in rows:
            d = msgspec.json.decode(f[b"payload"])
            yield d["entitlement"], d["district"], d["status"]
        last = rows[-1][0]
