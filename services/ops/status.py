"""The stages' status: ``collect()`` returns the ``permitbus status --json`` shape of CONTRACT.md.

MINIMAL STAND-IN, replaced at merge by the status branch's ``collect()`` (same signature, same
shape): it gives the operations page (services/ops/page.py) the contract's keys so that its tests
run. Backlogs are counted as in services/ops/backlog.py; rates and workers are not measured here
(``None``); the verdict is ``OK`` with nothing waiting, else ``LAGGING``.
"""

from __future__ import annotations

import datetime as dt
import time

from redis.exceptions import ResponseError

from services.runtime import topology as t
from services.runtime.redis import stream_id

PARKED_MAX = 10_000  # entries counted per parked stream


def _stage(name: str, backlog: int, pending: int, oldest: float | None) -> dict:
    return {"stage": name, "backlog": backlog, "pending": pending, "oldest_waiting_s": oldest,
            "rate_per_s": None, "workers": None, "verdict": "OK" if not (backlog or pending) else "LAGGING"}


async def collect(r, settings, now: float | None = None) -> dict:
    now = now or time.time()
    parts = settings.partitions
    pipe = r.pipeline(transaction=False)
    for feed in t.FEEDS.values():
        pipe.xinfo_groups(feed.ingress)
    for p in range(parts):
        pipe.hget(t.decider_meta(p), "pos")
        pipe.xrevrange(t.evt(p), count=1)
    for target in t.RELAY_TARGETS:
        pipe.hgetall(t.relay_pos(target))
        for p in range(parts):
            pipe.xrevrange(t.outbox(p, target), count=1)
    for s in (*t.quarantine_streams(), *t.dead_letter_streams()):
        pipe.xrange(s, count=PARKED_MAX)
    res = iter(await pipe.execute(raise_on_error=False))
    stages = []
    for feed in t.FEEDS.values():
        groups = next(res)
        lag = pending = 0
        if not isinstance(groups, ResponseError):
            for g in groups:
                if g["name"] in (t.NORMALIZER_GROUP, t.NORMALIZER_GROUP.encode()):
                    lag, pending = g.get("lag") or 0, g["pending"]
        stages.append(_stage(f"normalize:{feed.name}", lag, pending, None))
    behind = 0
    oldest: float | None = None
    for _ in range(parts):
        pos, last = next(res), next(res)
        if last and stream_id(last[0][0]) > stream_id(pos):
            behind += 1
            waited = max(0.0, now - (stream_id(pos)[0] / 1000 if pos else stream_id(last[0][0])[0] / 1000))
            oldest = max(oldest or 0.0, waited)
    stages.append(_stage("decide", behind, 0, oldest))
    for target in t.RELAY_TARGETS:
        positions = next(res)
        n = 0
        for p in range(parts):
            last = next(res)
            if last and stream_id(last[0][0]) > stream_id(positions.get(str(p).encode())):
                n += 1
        stages.append(_stage(f"relay:{target}", n, 0, None))
    stages.append(_stage("schedule", 0, 0, None))
    quarantine: dict[str, dict[str, int]] = {}
    dead: dict[str, int] = {}
    for feed in t.FEEDS:
        rows = next(res)
        for _, f in rows:
            reason = f.get(b"reason", b"?").decode("utf-8", "replace")
            quarantine.setdefault(feed, {})[reason] = quarantine.setdefault(feed, {}).get(reason, 0) + 1
    for s in t.dead_letter_streams():
        dead[s] = len(next(res))
    return {"as_of": dt.datetime.fromtimestamp(now, dt.timezone.utc).isoformat(timespec="seconds"),
            "stages": stages, "quarantine": quarantine, "dead_letters": dead}
