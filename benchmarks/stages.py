"""``python -m benchmarks.stages``: what each stage of the path can do with the machine to itself.

The same population and burst as ``python -m benchmarks``; then the burst through the normalizer
alone (the deciders stopped: the partition streams fill up), then the deciders and the relay alone
on that backlog. For each stage: records/s, CPU seconds of its processes and of Redis, and Redis's
costliest commands (``INFO commandstats``, reset at the stage's start). The whole path runs both
stages at once on the same two cores: its time is close to the sum of the two stages' times
(BENCHMARKS.md). Measures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from benchmarks.__main__ import Services, cpu_s, populate, private_redis, publish, size_arguments
from services.ops.backlog import backlog
from services.runtime import topology as t

INGRESS = t.FEEDS["hrss:contribution"].ingress


async def normalized(r) -> bool:
    group = (await r.xinfo_groups(INGRESS))[0]
    return group["lag"] == 0 and group["pending"] == 0


def alive(services: Services) -> None:
    exited = [name for name, p in services.procs.items() if p.poll() is not None]
    if exited:
        raise RuntimeError(f"{', '.join(exited)} exited during the benchmark")


async def stage(r, server, services: Services, names: list[str], started, done, n: int, top: int) -> list[str]:
    """Start ``names``; from when ``started`` says they work until ``done``, time them."""
    services.start(only=names)
    try:
        while not await started():
            alive(services)
            await asyncio.sleep(0.002)
        await r.config_resetstat()
        aof0 = (await r.info("persistence"))["aof_current_size"]
        t0 = time.perf_counter()
        cpu0 = {k: cpu_s(p.pid) for k, p in services.procs.items()}
        redis0 = cpu_s(server.pid), cpu_s(server.pid, children=True)
        while not await done():
            alive(services)
            await asyncio.sleep(0.01)
        took = time.perf_counter() - t0
        cpu = {k: cpu_s(p.pid) - cpu0[k] for k, p in services.procs.items()}
        cpu["redis"] = cpu_s(server.pid) - redis0[0]
        cpu["redis AOF rewrites"] = cpu_s(server.pid, children=True) - redis0[1]
        stats = await r.info("commandstats")
        persistence = await r.info("persistence")
    finally:
        services.stop()
    lines = [f"{' + '.join(names)}: {n:,} records in {took:.2f} s = {n / took:,.0f}/s; CPU s: "
             + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())]
    if persistence["aof_rewrites"] == 0:  # the AOF's growth is what the stage wrote
        lines.append(f"    AOF written: {(persistence['aof_current_size'] - aof0) / 1e6:,.0f} MB, "
                     f"{(persistence['aof_current_size'] - aof0) / n:,.0f} bytes a record")
    for name, s in sorted(stats.items(), key=lambda kv: -kv[1]["usec"])[:top]:
        lines.append(f"    {name.removeprefix('cmdstat_'):<16} {s['calls']:>9,} calls {s['usec'] / 1e6:>7.3f} s "
                     f"{s['usec_per_call']:>9,.0f} us/call")
    return lines


async def main(args) -> None:
    server, url, r = await private_redis()
    services = Services(url, args.partitions, args.batch, args.deciders)
    try:
        burst, _ = await populate(r, args, services)
        services.stop()
        if args.no_rewrites:
            await r.config_set("auto-aof-rewrite-percentage", 0)
            await r.bgrewriteaof()
            while (await r.info("persistence"))["aof_rewrite_in_progress"] or \
                    (await r.info("persistence"))["aof_rewrite_scheduled"]:
                await asyncio.sleep(0.05)
            await r.config_resetstat()  # aof_rewrites counts from here
        await publish(r, INGRESS, burst)
        before = (await r.xinfo_groups(INGRESS))[0]["entries-read"]

        async def normalizer_reading() -> bool:
            return (await r.xinfo_groups(INGRESS))[0]["entries-read"] != before

        report = await stage(r, server, services, ["normalize"], normalizer_reading, lambda: normalized(r),
                             len(burst), args.top)
        metas = [t.decider_meta(p) for p in range(args.partitions)]
        positions = [await r.hget(k, "pos") for k in metas]

        async def deciders_committing() -> bool:
            return [await r.hget(k, "pos") for k in metas] != positions

        async def drained() -> bool:
            return (await backlog(r, args.partitions)).idle

        deciders = [name for name in services.names() if name.startswith("decider")]
        report += await stage(r, server, services, [*deciders, "relay"], deciders_committing, drained,
                              len(burst), args.top)
    finally:
        services.stop()
        await r.aclose()
        server.terminate()
        server.wait()
    print()
    print("\n".join(report))


def cli(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.stages", description=__doc__)
    size_arguments(ap)
    ap.add_argument("--top", type=int, default=6, help="Redis commands listed per stage")
    ap.add_argument("--no-rewrites", action="store_true",
                    help="no automatic AOF rewrites during the stages: the AOF's growth per stage is printed")
    asyncio.run(main(ap.parse_args(argv)))


if __name__ == "__main__":
    cli()
