"""``python -m benchmarks.durability``: what it would cost to close the window an ungraceful failover
or a crash of the Redis host leaves open (README, "Running on Redis Cluster").

Redis acknowledges a write before its replica has it and, with ``appendfsync everysec``
(deploy/redis/redis.conf), before it is on disk. Two ways to wait for more, measured on the
decider's commit path (``pb_commit``, the heaviest writer):

* ``WAIT 1 <ms>`` after each commit: the decider goes on only once a replica has the commit;
* ``appendfsync always``: Redis fsyncs its AOF before it replies to each write;
* both.

A private primary (deploy/redis/redis.conf: AOF, everysec) and one replica of it on this machine's
disk. For each variant, the same simulated city is normalized into the partition streams
(untimed), then one decider in this process works the backlog through, timed: events/s, commits
(one pipeline of ``pb_commit`` calls a step) and each commit's latency, the WAIT included; the
ratio to the variant with nothing. Then ``--writes`` small writes one at a time, each waited
for: the variant's price for a write alone (a commit's price is hidden in its batch). Variants
alternate over ``--repeat`` rounds (a shared machine); each figure is the median of its rounds.
Measures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
import time

os.environ.setdefault("PERMITBUS_INSECURE_DEV_KEYS", "1")  # a benchmark: built-in keys

import redis.asyncio as aioredis

from benchmarks.__main__ import DEPLOY_REDIS_CONF, TODAY, publish
from services.decider.worker import Decider
from services.ops.backlog import backlog
from services.runtime import topology as t
from services.runtime.clock import Clock
from services.runtime.localredis import free_port, spawn_redis
from services.runtime.redis import ensure_groups, load_functions
from services.runtime.runner import Running, serve
from services.runtime.settings import Settings
from services.sim.generator import SimConfig, generate

VARIANTS = ("nothing", "WAIT 1", "appendfsync always", "both")


def servers(workdir: str) -> tuple[list[subprocess.Popen], str, int]:
    """A primary with deploy/redis/redis.conf and a replica of it; (processes, primary URL, replica port)."""
    primary, replica = free_port(), free_port()
    os.makedirs(f"{workdir}/primary")
    os.makedirs(f"{workdir}/replica")
    p = spawn_redis(primary, f"{workdir}/primary", appendonly=True, config=str(DEPLOY_REDIS_CONF))
    conf = f"{workdir}/replica/redis.conf"
    with open(conf, "w") as f:
        f.write(open(DEPLOY_REDIS_CONF).read() + f"\nreplicaof 127.0.0.1 {primary}\n")
    q = spawn_redis(replica, f"{workdir}/replica", appendonly=True, config=conf)
    return [p, q], f"redis://127.0.0.1:{primary}/0", replica


async def linked(replica_port: int) -> None:
    rep = aioredis.Redis(port=replica_port)
    try:
        while (await rep.info("replication")).get("master_link_status") != "up":
            await asyncio.sleep(0.05)
    finally:
        await rep.aclose()


async def normalized(r, settings: Settings, records: dict[str, list[bytes]]) -> int:
    """The city's records normalized into the partition streams (the decider stopped)."""
    for feed, payloads in records.items():
        await publish(r, t.FEEDS[feed].ingress, payloads)
    running = Running()
    task = asyncio.create_task(serve(settings, ["normalize"], running=running, handle_signals=False))
    await running.ready.wait()
    while True:
        b = await backlog(r, settings.partitions)
        if not (b.ingress_lag or b.ingress_pending):
            break
        await asyncio.sleep(0.05)
    running.stop.set()
    await task
    return sum([await r.xlen(t.evt(p)) for p in range(settings.partitions)])


async def one(r, url: str, variant: str, records, args) -> dict:
    await r.flushall()
    await load_functions(r)
    await ensure_groups(r)
    await r.config_set("appendfsync", "always" if variant in ("appendfsync always", "both") else "everysec")
    settings = Settings(redis_url=url, partitions=args.partitions, batch_size=args.batch, today=TODAY,
                        decider_entries=args.entries)
    await normalized(r, settings, records)
    decider = Decider(r, settings, Clock(TODAY), range(args.partitions), owner="bench")
    send, latencies, acks = decider._send, [], []

    async def timed(ready):
        t0 = time.perf_counter()
        out = await send(ready)
        if variant in ("WAIT 1", "both"):
            acks.append(await r.execute_command("WAIT", 1, args.wait_ms))
        latencies.append(time.perf_counter() - t0)
        return out

    decider._send = timed
    t0 = time.perf_counter()
    while await decider.step():
        pass
    took = time.perf_counter() - t0
    latencies.sort()
    # one small write at a time, each waited for: what the variant costs a write on its own
    single = []
    for i in range(args.writes):
        t1 = time.perf_counter()
        await r.xadd("bench:durability", {"i": i})
        if variant in ("WAIT 1", "both"):
            acks.append(await r.execute_command("WAIT", 1, args.wait_ms))
        single.append(time.perf_counter() - t1)
    single.sort()
    return {"events": decider.applied, "s": took, "commits": len(latencies),
            "p50_ms": statistics.median(latencies) * 1000, "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
            "w50_ms": statistics.median(single) * 1000, "w99_ms": single[int(len(single) * 0.99)] * 1000,
            "unacked": sum(1 for a in acks if a < 1)}


async def main(args) -> None:
    cfg = SimConfig(people=args.people, seed=5, today=TODAY, months=args.months, malformed_rate=0, duplicate_rate=0)
    records: dict[str, list[bytes]] = {}
    for rec in generate(cfg):
        records.setdefault(rec.feed, []).append(rec.payload)
    workdir = tempfile.mkdtemp(prefix="permitbus-durability-", dir=args.dir)
    procs, url, replica = servers(workdir)
    r = aioredis.Redis.from_url(url)
    rounds: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    try:
        await linked(replica)
        print(f"{sum(map(len, records.values())):,} records of {args.people:,} people; primary + 1 replica, AOF "
              f"on {workdir}", flush=True)
        for round_ in range(args.repeat):
            for variant in VARIANTS:
                res = await one(r, url, variant, records, args)
                res["rate"] = res["events"] / res["s"]
                rounds[variant].append(res)
                print(f"  round {round_ + 1} {variant:<19} {res['rate']:>9,.0f} events/s  commit "
                      f"p50 {res['p50_ms']:6.2f} ms  p99 {res['p99_ms']:6.2f} ms; one write p50 {res['w50_ms']:.3f} "
                      f"ms p99 {res['w99_ms']:.3f} ms", flush=True)
    finally:
        await r.aclose()
        for p in procs:
            p.terminate()
            p.wait(10)
    # medians over the rounds, metric by metric (the machine is shared: one round can be disturbed)
    med = {v: {k: statistics.median(x[k] for x in rs) for k in ("rate", "p50_ms", "p99_ms", "w50_ms", "w99_ms")}
           for v, rs in rounds.items()}
    print(f"\ncommit path, medians of {args.repeat} rounds (one decider, {args.partitions} partitions, normalizer "
          f"batches of {args.batch}, {args.entries} per partition a step, WAIT timeout {args.wait_ms} ms):")
    print(f"{'after each commit':<20} {'events/s':>9} {'x base':>7} {'commit p50':>10} {'p99 ms':>7}"
          f"   {'one write p50':>13} {'x base':>6} {'p99 ms':>7}")
    base = med["nothing"]
    for variant in VARIANTS:
        m = med[variant]
        unacked = sum(x["unacked"] for x in rounds[variant])
        print(f"{variant:<20} {m['rate']:>9,.0f} {m['rate'] / base['rate']:>7.2f} {m['p50_ms']:>10.2f} "
              f"{m['p99_ms']:>7.2f}   {m['w50_ms']:>13.3f} {m['w50_ms'] / base['w50_ms']:>6.1f} {m['w99_ms']:>7.3f}"
              + (f"  ({unacked} WAITs timed out)" if unacked else ""))


def cli(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.durability", description=__doc__.split("\n\n")[0])
    ap.add_argument("--people", type=int, default=2000)
    ap.add_argument("--months", type=int, default=6, help="months of contributions a person has")
    ap.add_argument("--partitions", type=int, default=16)
    ap.add_argument("--batch", type=int, default=250,
                    help="normalizer batch: with --entries, the events a commit carries (a few per partition)")
    ap.add_argument("--entries", type=int, default=1, help="partition-stream entries a decider step reads")
    ap.add_argument("--wait-ms", type=int, default=1000, help="WAIT's timeout")
    ap.add_argument("--writes", type=int, default=2000, help="single writes timed one at a time")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where the servers keep their AOF (default: the temp dir)")
    asyncio.run(main(ap.parse_args(argv)))


if __name__ == "__main__":
    cli()
