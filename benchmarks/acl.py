"""``python -m benchmarks.acl``: what the ACL checks cost. The same simulated city through the same
services (one process each: normalize, decider, relay, scheduler), once with every service as an
all-powerful user and once with each under its own ACL user (``permitbus acl``: a Redis 7 selector
per declared use), alternating, on one private redis-server with the ACL file loaded. Prints the
wall time from publishing to idle, Redis's CPU, and Redis's microseconds per call of the busiest
commands. Measures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis.asyncio as aioredis

from services.runtime.access import USER_OF_SERVICE
from services.runtime.settings import Settings
from services.runtime.setup import run_setup
from tests import chaos
from tests.aclredis import ADMIN, acl_redis


async def one_run(srv, users: dict[str, str], inputs: dict[str, list[bytes]]) -> dict:
    admin = aioredis.Redis.from_url(srv.admin)
    await admin.flushall()
    with open(os.devnull, "w") as quiet:
        sys.stdout, saved = quiet, sys.stdout
        try:
            await run_setup(Settings(redis_url=srv.url("pb-setup")))
        finally:
            sys.stdout = saved
    procs = [subprocess.Popen([sys.executable, "-m", "services.cli", "run", service],
                              env=chaos.env_for(srv.url(user)), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
             for service, user in users.items()]
    await asyncio.sleep(2.0)  # started and waiting
    await admin.config_resetstat()
    before = await admin.info("cpu")
    started = time.monotonic()
    for feed in chaos.FEED_ORDER:
        await chaos.publish(admin, feed, inputs[feed])
    await chaos.wait_idle(admin, timeout=600)
    took = time.monotonic() - started
    after = await admin.info("cpu")
    stats = await admin.info("commandstats")
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(20)
    await admin.aclose()
    cpu = sum(after[k] - before[k] for k in ("used_cpu_sys", "used_cpu_user"))
    return {"wall_s": took, "redis_cpu_s": cpu, "stats": stats}


async def main(args) -> None:
    inputs = chaos.city(args.people, args.seed)
    records = sum(len(v) for v in inputs.values())
    runs: dict[str, list[dict]] = {"all rights": [], "own ACL users": []}
    with tempfile.TemporaryDirectory(prefix="permitbus-acl-bench-") as tmp, acl_redis(Path(tmp)) as srv:
        for _ in range(args.rounds):
            runs["all rights"].append(await one_run(srv, {s: ADMIN for s in USER_OF_SERVICE}, inputs))
            runs["own ACL users"].append(await one_run(srv, dict(USER_OF_SERVICE), inputs))
    print(f"{records:,} records ({args.people:,} people), {args.rounds} alternating rounds, best of each:")
    print(f"{'':16} {'wall s':>8} {'redis CPU s':>12}  usec/call: " + " ".join(f"{c:>9}" for c in COMMANDS))
    for name, rs in runs.items():
        best = min(rs, key=lambda r: r["wall_s"])
        cpu = min(r["redis_cpu_s"] for r in rs)
        per = [best["stats"].get(f"cmdstat_{c}", {}).get("usec_per_call", 0.0) for c in COMMANDS]
        print(f"{name:16} {best['wall_s']:8.2f} {cpu:12.2f}             " + " ".join(f"{u:9.2f}" for u in per))


COMMANDS = ("fcall", "xadd", "xreadgroup", "xread", "hmget", "hset")


def cli(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.acl", description=__doc__)
    ap.add_argument("--people", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(ap.parse_args(argv)))


if __name__ == "__main__":
    cli()
