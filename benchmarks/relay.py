"""``python -m benchmarks.relay``: the relay alone, on outboxes filled beforehand with decisions.

The whole path's benchmark (``python -m benchmarks``) is a contribution burst, which yields few
decisions: the relay's cost is lost in it. Here ``--decisions`` decisions (health roster entries,
eligible, spread over 16 partitions, as the decider writes them: ``payload``, ``roster``, ``_t``)
wait in the outboxes of a private redis-server (AOF everysec, deploy/redis/redis.conf), and one
relay in this process moves them to ``outlet:health`` and its roster (and, from the release with
the audit log, to the audit log). Prints decisions/s, the relay's CPU and Redis's CPU and the
AOF bytes per decision. Measures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time

os.environ.setdefault("PERMITBUS_INSECURE_DEV_KEYS", "1")
from benchmarks.__main__ import cpu_s, private_redis
from schemas.districts import DISTRICTS
from schemas.ids import check_digit
from services.outlets.relay import Relay
from services.runtime import topology as t
from services.runtime.settings import Settings

PARTITIONS = 16


def decision(i: int, rnd: random.Random) -> bytes:
    body = f"3201111990{rnd.randrange(10**8):08d}"[:17]
    return json.dumps({
        "decision_id": f"d{i:012d}", "entitlement": "health.family_doctor", "subject_id": body + check_digit(body),
        "application_id": None, "status": "eligible", "district": rnd.choice(list(DISTRICTS)), "priority": False,
        "reasons": [], "basis": ["（四）"], "as_of": "2026-11-28", "caused_by": [f"GA{i:010d}"], "version": 1,
        "decided_at": "2026-11-28T10:00:00+08:00"}, ensure_ascii=False).encode()


async def main(args) -> None:
    server, url, r = await private_redis()
    try:
        rnd = random.Random(7)
        now_ms = int(time.time() * 1000)
        pipe = r.pipeline(transaction=False)
        for i in range(args.decisions):
            pipe.xadd(t.outbox(i % PARTITIONS, "outlet:health"),
                      {"payload": decision(i, rnd), "roster": b"set", "_t": str(now_ms).encode()})
            if i % 5000 == 4999:
                await pipe.execute()
        await pipe.execute()
        await r.bgrewriteaof()
        await asyncio.sleep(1)
        aof0 = (await r.info("persistence"))["aof_current_size"]
        settings = Settings(redis_url=url, partitions=PARTITIONS)
        relay = Relay(r, settings, range(PARTITIONS), targets=["outlet:health"])
        redis0, cpu0, t0 = cpu_s(server.pid), time.process_time(), time.perf_counter()
        while await relay.step():
            pass
        took, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        redis_cpu = cpu_s(server.pid) - redis0
        aof = (await r.info("persistence"))["aof_current_size"] - aof0
        moved = await r.xlen("outlet:health")
        audited = sum([await r.xlen(t.audit("outlet:health", p)) for p in range(PARTITIONS)]) \
            if hasattr(t, "audit") else 0
        print(f"relay: {moved:,} decisions in {took:.2f} s = {moved / took:,.0f}/s; relay CPU {cpu:.2f} s "
              f"({cpu / moved * 1e6:.1f} µs each), redis CPU {redis_cpu:.2f} s ({redis_cpu / moved * 1e6:.1f} µs each); "
              f"AOF {aof / moved:,.0f} bytes each; audited {audited:,}; used_memory "
              f"{(await r.info('memory'))['used_memory'] / moved:,.0f} bytes per decision")
    finally:
        await r.aclose()
        server.terminate()
        server.wait()


def cli(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.relay", description=__doc__)
    ap.add_argument("--decisions", type=int, default=50_000)
    asyncio.run(main(ap.parse_args(argv)))


if __name__ == "__main__":
    cli()
