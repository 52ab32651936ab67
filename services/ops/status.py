"""Every stage at a glance: ``permitbus status``, ``GET /metrics`` and the ops page read this.

A stage is ``normalize:<feed>``, ``decide``, ``relay:<target>`` (one per relay target: the seven
outlets, and the permit feed's quarantine and ``dlq:decider``, which the relay feeds from outboxes
too) and ``schedule``. For each: entries waiting (``backlog``), read and not finished
(``pending``: only the normalizers have such, read with NOACK and not yet committed,
``services.ops.backlog.in_flight``; the decider and relay commit from a position, atomically),
the age of the oldest waiting entry, work done per second over the last minute, the live
workers, and a verdict judged from the trend, as Burrow judges consumer lag:

* ``DOWN``: no live worker for the stage (a normalizer's lease, a member of ``members:<role>``
  for the decider, relay and scheduler);
* ``STALLED``: work waiting now and 30 s ago, and nothing done in between;
* ``LAGGING``: the backlog is larger than it was about a minute ago;
* ``OK`` otherwise.

The trend needs history: each reading appends a sample of every stage's counters to
``ops:history`` (at most one every ``SAMPLE_EVERY_S``, kept ``KEEP_S``), so that a one-shot run
from cron judges the last minute from the samples earlier runs, scrapes and pages left.

Cost: a fixed number of Redis calls per stage and partition, in three round trips, never a read
of records: the counters are kept by the Lua steps that have the effects (``t.counters``), the
partition streams and outboxes are trimmed exactly as they are applied, so their length is their
backlog (``pb_stream_head`` returns it with the first id only, not the entry).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from redis.exceptions import ResponseError

from services.ops.backlog import in_flight
from services.runtime import topology as t
from services.runtime.clock import Clock
from services.runtime.redis import fn, stream_id

SAMPLE_EVERY_S = 5.0
KEEP_S = 300
STALL_S = 30.0
TREND_S = 60.0
SAMPLES_READ = 80  # the newest samples read back: at one per SAMPLE_EVERY_S, more than KEEP_S
LATENCY_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)  # as permitbus.lua
VERDICTS = ("OK", "LAGGING", "STALLED", "DOWN")
SHANGHAI = ZoneInfo("Asia/Shanghai")


def stage_names() -> list[str]:
    """Every stage, in the order of the stream graph."""
    return ([f"normalize:{f}" for f in t.FEEDS] + ["decide"] + [f"relay:{target}" for target in t.RELAY_TARGETS]
            + ["schedule"])


@dataclass
class Stage:
    stage: str
    backlog: int = 0
    pending: int = 0
    oldest_ms: int | None = None  # ms of the oldest entry waiting
    done: int = 0  # a counter of work done since the deployment began (its unit is the stage's)
    workers: int = 0
    rate_per_s: float = 0.0
    verdict: str = "OK"

    def row(self, now: float) -> dict:
        age = max(0.0, now - self.oldest_ms / 1000) if self.oldest_ms is not None else 0.0
        return {"stage": self.stage, "backlog": self.backlog, "pending": self.pending,
                "oldest_waiting_s": round(age, 3), "rate_per_s": round(self.rate_per_s, 3),
                "workers": self.workers, "verdict": self.verdict}


def _ms(entry_id) -> int:
    return stream_id(entry_id)[0]


def _num(counters: dict, name: str) -> int:
    v = counters.get(name.encode()) if counters else None
    return int(v) if v is not None else 0


def _prefixed(counters: dict, prefix: str) -> dict[str, int]:
    out = {}
    for k, v in (counters or {}).items():
        k = k.decode()
        if k.startswith(prefix):
            out[k[len(prefix):]] = int(v)
    return out


def _value(reply, default=None):
    return default if isinstance(reply, Exception) else reply


async def collect(r, settings, now: float | None = None) -> dict:
    """The ``permitbus status --json`` document (docs/contract.md, "Operations"), with extra keys for
    ``/metrics``: ``records``, ``decisions``, ``deliveries``, ``audited``, ``latency``, ``lease_changes``, ``redis``,
    ``history_s``.
    Appends a trend sample (see the module's docstring)."""
    now = time.time() if now is None else now
    parts = settings.partitions
    feeds = list(t.FEEDS.values())
    targets = list(t.RELAY_TARGETS)
    today = Clock(settings.today).today()

    pipe = r.pipeline(transaction=False)
    for f in feeds:
        pipe.xinfo_groups(f.ingress)
        pipe.xpending(f.ingress, t.NORMALIZER_GROUP)
        pipe.exists(t.lease("normalize", f.name))
        pipe.hgetall(t.counters(f.ingress))
        pipe.hgetall(t.counters(f.quarantine))
        pipe.hgetall(t.counters(t.dlq(f.ingress)))
    for p in range(parts):
        pipe.fcall_ro(fn("pb_stream_head"), 1, t.evt(p))
        pipe.hget(t.decider_meta(p), "applied")
        pipe.zcount(t.due(p), "-inf", today.toordinal())
    for target in targets:
        pipe.hgetall(t.counters(target))
        for p in range(parts):
            pipe.fcall_ro(fn("pb_stream_head"), 1, t.outbox(p, target))
    for role in ("decider", "relay", "schedule"):
        pipe.zcount(t.members(role), int(now * 1000), "+inf")
    pipe.hget(t.scheduler_state(), "date")
    pipe.hget(t.scheduler_state(), "ticked_total")
    leases = [("normalize", t.lease("normalize", f.name)) for f in feeds]
    leases += [(role, t.partition_lease(role, p)) for role in ("decider", "relay") for p in range(parts)]
    for _, key in leases:
        pipe.hget(t.lease_changes(key), "changes")
    for s in t.dead_letter_streams():
        pipe.xlen(s)
    pipe.xrevrange(t.ops_history(), count=SAMPLES_READ)
    res = iter(await pipe.execute(raise_on_error=False))
    memory, persistence = await _redis_info(r)

    stages: list[Stage] = []
    records: dict[str, dict[str, int]] = {}
    quarantine: dict[str, dict[str, int]] = {}
    undelivered: list[tuple[Stage, bytes]] = []
    for f in feeds:
        groups, summary, lease, acked, qcount, dcount = (_value(next(res)) for _ in range(6))
        st = Stage(f"normalize:{f.name}", workers=int(lease or 0), done=_num(acked, "acked"))
        for g in groups or []:
            if g["name"] in (t.NORMALIZER_GROUP, t.NORMALIZER_GROUP.encode()):
                reading, committed = in_flight(g, acked)
                st.pending = int(g["pending"]) + reading
                st.backlog = int(g["lag"]) if g.get("lag") is not None else 0
                if reading:  # the oldest of them waits longest
                    undelivered.append((st, f.ingress, committed))
                elif st.backlog:
                    undelivered.append((st, f.ingress, g["last-delivered-id"]))
        if summary and summary.get("min") is not None:
            st.oldest_ms = _ms(summary["min"])
        stages.append(st)
        records[f.name] = {"accepted": _num(acked, "accepted"), "quarantined": _num(qcount, "quarantined"),
                           "dead_lettered": _num(dcount, "dead_lettered")}
        quarantine[f.name] = {k: v for k, v in _prefixed(qcount, "reason:").items() if v}
    decide = Stage("decide")
    due = 0
    for _ in range(parts):
        head, applied, n_due = next(res), _value(next(res)), _value(next(res))
        _head_into(decide, head)
        decide.done += int(applied or 0)
        due += int(n_due or 0)
    stages.append(decide)
    decisions: dict[str, dict[str, int]] = {}
    deliveries: dict[str, int] = {}
    audited: dict[str, int] = {}  # audit entries written with the deliveries (pb_relay): equal to them
    latency = {"buckets": {le: 0 for le in LATENCY_MS}, "inf": 0, "sum_s": 0.0, "count": 0}
    for target in targets:
        counters = _value(next(res)) or {}
        st = Stage(f"relay:{target}", done=_num(counters, "moved"))
        for _ in range(parts):
            _head_into(st, next(res))
        stages.append(st)
        if target in (o.stream for o in t.OUTLETS.values()):
            ent = next(o.entitlement for o in t.OUTLETS.values() if o.stream == target)
            decisions[ent] = _prefixed(counters, "status:")
            deliveries[target] = _num(counters, "delivered")
            audited[target] = _num(counters, "audited")
            for le in LATENCY_MS:
                latency["buckets"][le] += _num(counters, f"lat:{le}")
            latency["inf"] += _num(counters, "lat:inf")
            latency["sum_s"] += _num(counters, "lat_sum_ms") / 1000
            latency["count"] += _num(counters, "lat_count")
    live = {role: int(_value(next(res)) or 0) for role in ("decider", "relay", "schedule")}
    ticked_for, ticked_total = _value(next(res)), _value(next(res))
    lease_changes = {"normalize": 0, "decider": 0, "relay": 0}
    for role, _ in leases:
        lease_changes[role] += int(_value(next(res)) or 0)
    dead_letters = {s: int(_value(next(res)) or 0) for s in t.dead_letter_streams()}
    history = _value(next(res)) or []

    decide.workers = live["decider"]
    for st in stages:
        if st.stage.startswith("relay:"):
            st.workers = live["relay"]
    schedule = Stage("schedule", workers=live["schedule"], done=int(ticked_total or 0))
    if ticked_for is None or dt.date.fromisoformat(ticked_for.decode()) < today:
        schedule.backlog = due  # people due whom the scheduler has not ticked for today yet
        if due:
            midnight = dt.datetime.combine(today, dt.time(), SHANGHAI).timestamp()
            schedule.oldest_ms = int(min(midnight, now) * 1000)
    stages.append(schedule)

    if undelivered:  # the first entry not yet read, for the oldest waiting age
        pipe = r.pipeline(transaction=False)
        for _, ingress, last in undelivered:
            pipe.xrange(ingress, min=b"(" + _b(last), count=1)
        for (st, _, _), rows in zip(undelivered, await pipe.execute(raise_on_error=False)):
            if rows and not isinstance(rows, Exception):
                ms = _ms(rows[0][0])
                st.oldest_ms = ms if st.oldest_ms is None else min(st.oldest_ms, ms)

    samples = _samples(history)
    history_s = judge(stages, samples, now)
    await _sample(r, stages, samples, now)
    return {
        "as_of": dt.datetime.fromtimestamp(now, dt.timezone.utc).isoformat(timespec="seconds"),
        "stages": [st.row(now) for st in stages],
        "quarantine": quarantine,
        "dead_letters": dead_letters,
        "records": records,
        "decisions": decisions,
        "deliveries": deliveries,
        "audited": audited,
        "latency": latency,
        "lease_changes": lease_changes,
        "redis": {"used_memory_bytes": int(memory.get("used_memory", 0)),
                  "maxmemory_bytes": int(memory.get("maxmemory", 0)),
                  "aof_last_rewrite_ok": 1 if persistence.get("aof_last_bgrewrite_status", "ok") == "ok" else 0,
                  "aof_rewrites": int(persistence.get("aof_rewrites", 0))},
        "history_s": round(history_s, 1),
    }


async def _redis_info(r) -> tuple[dict, dict]:
    """INFO memory and persistence, summed over a cluster's primaries (each keeps its own; a
    rewrite failed on any of them is a failure). A user that may not run INFO reads nothing."""
    from services.runtime.redis import each_primary

    memory: dict = {"used_memory": 0, "maxmemory": 0}
    persistence: dict = {"aof_rewrites": 0, "aof_last_bgrewrite_status": "ok"}
    try:
        for info in (await each_primary(r, "INFO", "memory")).values():
            for k in memory:
                memory[k] += int(info.get(k, 0))
        for info in (await each_primary(r, "INFO", "persistence")).values():
            persistence["aof_rewrites"] += int(info.get("aof_rewrites", 0))
            if info.get("aof_last_bgrewrite_status", "ok") != "ok":
                persistence["aof_last_bgrewrite_status"] = info["aof_last_bgrewrite_status"]
    except ResponseError:
        pass
    return memory, persistence


def _b(x) -> bytes:
    return x if isinstance(x, bytes) else str(x).encode()


def _head_into(st: Stage, head) -> None:
    """Add one stream's ``pb_stream_head`` reply (length, first id) to a stage."""
    if isinstance(head, Exception):
        raise head  # this release's functions not loaded (`permitbus setup`), or a right missing
    if not head:
        return
    length, first = head
    st.backlog += int(length)
    if length and first:
        ms = _ms(first)
        st.oldest_ms = ms if st.oldest_ms is None else min(st.oldest_ms, ms)


def _samples(history) -> list[tuple[float, dict]]:
    """The trend samples, oldest first: (time, {stage: [done, backlog, pending]})."""
    out = []
    for _, fields in reversed(history):
        try:
            out.append((float(fields[b"t"]), json.loads(fields[b"s"])))
        except (KeyError, ValueError):
            continue
    return out


def judge(stages: list[Stage], samples: list[tuple[float, dict]], now: float) -> float:
    """Set each stage's rate and verdict from the samples; returns how many seconds of history the
    rate was judged on (0: none yet, rates 0)."""
    past = [(ts, s) for ts, s in samples if ts < now - 0.5]
    # the rate and the trend: against the oldest sample of the last minute (and a little more)
    window = [(ts, s) for ts, s in past if ts >= now - TREND_S - 2 * SAMPLE_EVERY_S]
    base = window[0] if window else None
    # stalled: against the newest sample at least STALL_S old
    old = [(ts, s) for ts, s in past if ts <= now - STALL_S]
    stall_base = old[-1] if old else None
    for st in stages:
        if base and st.stage in base[1]:
            done, backlog, _ = base[1][st.stage]
            st.rate_per_s = max(0.0, (st.done - done) / (now - base[0]))
        waiting = st.backlog + st.pending
        if st.workers == 0:
            st.verdict = "DOWN"
        elif waiting and stall_base and st.stage in stall_base[1] \
                and stall_base[1][st.stage][0] == st.done and sum(stall_base[1][st.stage][1:]) > 0:
            st.verdict = "STALLED"
        elif base and st.stage in base[1] and now - base[0] >= SAMPLE_EVERY_S \
                and st.backlog > base[1][st.stage][1]:
            st.verdict = "LAGGING"
        else:
            st.verdict = "OK"
    return now - base[0] if base else 0.0


async def _sample(r, stages: list[Stage], samples: list[tuple[float, dict]], now: float) -> None:
    """Append this reading to the trend, unless another was taken less than SAMPLE_EVERY_S ago."""
    if samples and abs(now - samples[-1][0]) < SAMPLE_EVERY_S:
        return
    pipe = r.pipeline(transaction=False)
    pipe.xadd(t.ops_history(), {"t": repr(now), "s": json.dumps({st.stage: [st.done, st.backlog, st.pending]
                                                                  for st in stages}, separators=(",", ":"))})
    pipe.xtrim(t.ops_history(), minid=f"{int((time.time() - KEEP_S) * 1000)}-0", approximate=True)
    try:
        await pipe.execute()
    except ResponseError:
        pass  # a reader without the right to keep samples still reads


def exit_status(doc: dict) -> int:
    """0 when every verdict is OK, else 1 (2, Redis unreachable, is the caller's)."""
    return 0 if all(s["verdict"] == "OK" for s in doc["stages"]) else 1


def render(doc: dict) -> str:
    """The human form of ``permitbus status``."""
    lines = [f"permitbus status as of {doc['as_of']}",
             f"{'stage':34} {'backlog':>8} {'pending':>8} {'oldest':>9} {'rate/s':>9} {'workers':>7}  verdict"]
    for s in doc["stages"]:
        lines.append(f"{s['stage']:34} {s['backlog']:>8} {s['pending']:>8} {_age(s['oldest_waiting_s']):>9} "
                     f"{s['rate_per_s']:>9.1f} {s['workers']:>7}  {s['verdict']}")
    if not doc.get("history_s"):
        lines.append("(no trend yet: rates and LAGGING/STALLED need an earlier reading; run again in a few seconds)")
    q = {f: r for f, r in doc["quarantine"].items() if r}
    lines.append("quarantine:" + (" none" if not q else ""))
    for feed, reasons in q.items():
        lines.append(f"  {feed:32} " + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())))
    d = {s: n for s, n in doc["dead_letters"].items() if n}
    lines.append("dead letters:" + (" none" if not d else ""))
    for stream, n in d.items():
        lines.append(f"  {stream:32} {n}")
    return "\n".join(lines)


def _age(s: float) -> str:
    if s < 60:
        return f"{s:.1f}s"
    if s < 3600:
        return f"{s / 60:.1f}m"
    return f"{s / 3600:.1f}h"


async def run(settings, as_json: bool, watch: float | None, out=print) -> int:
    """``permitbus status``: exit 0 when every verdict is OK, 1 otherwise, 2 when Redis cannot be
    reached (or refuses: this release's functions not loaded, a right missing). ``--watch``
    refreshes in place every ``watch`` seconds until interrupted."""
    import sys

    from redis.exceptions import RedisError

    from services.runtime.redis import client, load_functions

    r = client(settings)
    try:
        try:
            await load_functions(r)  # only when Redis lacks this release's (pb_stream_head)
        except RedisError:
            pass  # a user that may not load them: collect() says so if they are missing
        while True:
            try:
                try:
                    doc = await collect(r, settings)
                except ResponseError as exc:
                    if "Function not found" not in str(exc):
                        raise
                    await load_functions(r)  # an emptied Redis: load them again, read again
                    doc = await collect(r, settings)
            except RedisError as exc:
                print(f"permitbus status: Redis cannot be read: {type(exc).__name__}: {str(exc)[:200]}",
                      file=sys.stderr)
                return 2
            text = json.dumps(doc, ensure_ascii=False) if as_json else render(doc)
            if watch is None:
                out(text)
                return exit_status(doc)
            out("\x1b[H\x1b[2J" + text if not as_json else text, flush=True)
            await _sleep(watch)
    finally:
        await r.aclose()


async def _sleep(s: float) -> None:
    import asyncio

    await asyncio.sleep(s)
