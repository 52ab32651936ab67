"""``python -m benchmarks.capacity``: a city of N permit holders loaded directly, one monthly burst
through the services, and what Redis holds and writes (BENCHMARKS.md, "capacity account").

Replaying 2.5 million people's history record by record through the services would take hours on
this machine, so the city is built the way the decider would have built it, without the streams:
each person's records (a ``QF`` permit, then one contribution a month) are turned into events by
the normalizer's own code (``understand``, ``Protector``), folded and decided by the decider's own
code (``fold``, ``evaluate``), packed by ``services.decider.commit.pack`` once per month as the
pipeline commits them (one batch per month's file), and the roster changes applied as the relay
applies them (``_roster_change``). What is written is what ``pb_commit`` and ``pb_relay`` would
have written: pictures (``ppl:{pN}``), older months (``arc:{pN}``), due dates (``due:{pN}``),
figures (``fig:{pN}``) and rosters (``roster{...}``, ``rosteridx{...}``). Not written: the history's
decisions on the outlet streams and the audit log (their size is accounted per decision,
BENCHMARKS.md). ``tests/test_capacity.py`` checks on a small city that what is loaded here equals
what the services build from the same records.

Then one month's file (one record per person, for the month after the history) is published on
``ingress:hrss:contribution`` and worked off by the services as separate processes (as
``python -m benchmarks``): either all at once (``path``: time to the last decision) or stage by
stage (``stages``: the normalizer alone, then deciders and relay on its output: each stage's rate
with the machine to itself). CPU seconds per record for each process and Redis, Redis memory
before and after, the AOF's size, and the cost of a ``BGREWRITEAOF`` (time, fork, copy-on-write).
Prints a table and, with ``--json``, writes the figures. Measures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing
import os
import shutil
import subprocess
import time
from pathlib import Path

os.environ.setdefault("PERMITBUS_INSECURE_DEV_KEYS", "1")  # a benchmark, not a deployment: built-in keys

import redis as sync_redis
import redis.asyncio as aioredis

from benchmarks.__main__ import TODAY, Services, cpu_s, print_table, private_redis
from schemas.districts import DISTRICTS, INDEX
from schemas.ids import check_digit
from schemas.picture import PICTURE_SCHEMA_VERSION, Person
from services.decider import commit
from services.decider.commit import RECHECK_DUE, RECHECK_FIGURES
from services.decider.emit import evaluate
from services.decider.worker import _outbox_entry, _recheck
from services.ingress.atrest import Protector
from services.ingress.fields import Reject
from services.ingress.service import understand
from services.ops.backlog import backlog
from services.outlets.relay import ENTITLEMENT_OF, _roster_change
from services.picture.contributions import ARCHIVE_KEEP_MONTHS, first_slot_from
from services.picture.fold import ALL, Quarantine, fold
from services.picture.picture import Picture
from services.runtime import topology as t
from services.runtime.identity import Pseudonymizer, partition_of
from services.runtime.settings import Settings
from services.sim.generator import GIVEN, HOMETOWNS, SURNAMES
from services.sim.generator import OTHER_SECTORS as SECTORS

PERMIT, CONTRIB = "psb:permit", "hrss:contribution"
_DISTRICTS = list(DISTRICTS)
_INDEX_DISTRICT = {str(i): code for code, i in INDEX.items()}


# -- the city: person i's records, deterministic ---------------------------------------------------
def person_id(i: int, today: dt.date = TODAY) -> str:
    """Person i's ID number (GB 11643): distinct for every i (hometown, birth day and serial are
    a one-to-one function of i), born 20 to 55 years before ``today``."""
    j, home = divmod(i, len(HOMETOWNS))
    k, serial = divmod(j, 1000)
    born = dt.date.fromordinal(today.toordinal() - 7306 - (k * 197) % 12800)
    body = f"{HOMETOWNS[home]}{born:%Y%m%d}{serial:03d}"
    return body + check_digit(body)


def _name(i: int) -> str:
    return SURNAMES[i % len(SURNAMES)] + GIVEN[(i // 7) % len(GIVEN)] + GIVEN[(i // 300) % len(GIVEN)] * (i % 3 != 0)


def permit_record(i: int, today: dt.date = TODAY) -> bytes:
    """Person i's residence permit (QF), valid on ``today``: issued up to ~2.7 years before, for 3 years."""
    issued = dt.date.fromordinal(today.toordinal() - (i * 7919) % 1000)
    try:
        until = issued.replace(year=issued.year + 3) - dt.timedelta(days=1)
    except ValueError:  # 29 February
        until = issued.replace(year=issued.year + 3, day=28) - dt.timedelta(days=1)
    district = _DISTRICTS[i % len(_DISTRICTS)]
    rec = {"ywlsh": f"GA{i:014d}", "ywlx": "QF", "sfzh": person_id(i, today), "xm": _name(i),
           "jzzbh": f"{district}{issued.year % 100:02d}{i % 10_000_000:07d}", "jzdqh": district,
           "qfrq": issued.isoformat(), "yxqz": until.isoformat(),
           "czsj": f"{issued.isoformat()} {9 + i % 9:02d}:{i % 60:02d}:{(i // 60) % 60:02d}"}
    if i % 3 == 0:
        rec["hylb"] = SECTORS[(i // 3) % len(SECTORS)]
    return json.dumps(rec, ensure_ascii=False).encode()


def contribution_record(i: int, month: int, today: dt.date = TODAY, pid: str | None = None) -> bytes:
    """Person i's contribution record for ``month`` (YYYYMM): seven in ten employed (employee medical
    insurance, 310, in their permit's district), the others in the resident scheme (390); about one
    in 33 unpaid."""
    district = _DISTRICTS[i % len(_DISTRICTS)]
    typ = "310" if i % 10 < 7 else "390"
    paid = "0" if (i * 31 + month) % 33 == 0 else "1"
    return (f'{{"LSH": "{month}{i:012d}", "AAC002": "{pid or person_id(i, today)}", "AAC003": "{_name(i)}", '
            f'"AAE140": "{typ}", "AAE002": "{month}", "AAB301": "{district}", "AAE078": "{paid}"}}').encode()


def records(i: int, history: list[int], today: dt.date = TODAY) -> list[list[tuple[str, bytes]]]:
    """Person i's records as the decider's batches would hold them: the permit, then a month's record a batch."""
    pid = person_id(i, today)
    return [[(PERMIT, permit_record(i, today))]] + [[(CONTRIB, contribution_record(i, m, today, pid))] for m in history]


def months_until(last: int, n: int) -> list[int]:
    """The ``n`` months (YYYYMM) ending with ``last``, oldest first."""
    y, m = divmod(last, 100)
    out = []
    for _ in range(n):
        out.append(y * 100 + m)
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    return out[::-1]


def next_month(yyyymm: int) -> int:
    y, m = divmod(yyyymm, 100)
    return (y + 1) * 100 + 1 if m == 12 else yyyymm + 1


# -- building what the pipeline would have stored -----------------------------------------------
class Builder:
    """Person by person, what the normalizer, the decider and the relay would have written for the
    records of ``batches`` (lists of payloads, one list per batch the decider commits)."""

    def __init__(self, settings: Settings, day: dt.date) -> None:
        self.settings = settings
        self.keys = settings.data_keyring()
        self.pseudonym = Pseudonymizer(settings.pseudonym_secret())
        self.protector = Protector(self.pseudonym, self.keys)
        self.day = day
        self.now = dt.datetime.combine(day, dt.time(10), dt.timezone(dt.timedelta(hours=8)))
        self.partitions = settings.partitions

    def person(self, i: int, batches: list[list[tuple[str, bytes]]], exact: bool = True) -> tuple[int, bytes, dict]:
        """(partition, picture key, what is stored): ``state``, ``archive`` (or None), ``due``
        (ordinal, 0: none), ``figs`` (deltas), ``roster`` ({(target, field): (district index,
        payload) | None}), ``decisions`` (delivered to outlets).

        ``exact``: every event decided and every batch packed as the decider does (what the
        services store, byte for byte but for the sealed ID's nonce and the decisions' time).
        Otherwise (four to five times faster): every event folded, then the person decided once,
        as the scheduler's tick decides everyone, and packed once, with the boundary of the months
        stored apart moved month by month as the batches would have moved it. The picture then
        differs from the services' only in what the history's intermediate outcomes leave in it:
        an outcome's version (1 where the history made it 2 or 3), and no ``revoked`` outcome for
        an entitlement the history granted and withdrew (tests/test_capacity.py)."""
        if not exact:
            return self._fast(i, batches)
        pic: Picture | None = None
        key = b""
        p = 0
        state, archive, due, figs = b"", None, 0, {}
        roster: dict[tuple[str, bytes], tuple[str, bytes] | None] = {}
        counted = [0]
        for b, batch in enumerate(batches):
            flags, dirty = 0, False
            for r, (feed, payload) in enumerate(batch):
                p, ev = self._event(i, b, r, feed, payload)
                key = ev.pseudonym
                if pic is None:
                    pic = Picture(Person(v=PICTURE_SCHEMA_VERSION, sid=ev.sealed_id), self.keys)
                touched = fold(pic, ev)
                if touched is None or isinstance(touched, Quarantine):
                    continue
                dirty = True
                ds = evaluate(pic, touched, self.day, self.now, [ev.record_id])
                self._listed(pic, ds, roster, counted)
                flags |= _recheck(pic, touched, ds)
            if not dirty:
                continue
            share = commit.pack(key, pic, flags, self.day)
            state = share.state
            if share.archive is not None:
                archive = share.archive
            if share.due:
                due = 0 if share.due[1] == "-" else share.due[1]
            for f, v in (share.figs or {}).items():
                figs[f] = figs.get(f, 0) + v
            pic = Picture(pic.person, self.keys)  # the next batch starts from the picture as committed
        return p, key, {"state": state, "archive": archive, "due": due, "figs": figs, "roster": roster,
                        "decisions": counted[0]}

    def _event(self, i: int, b: int, r: int, feed: str, payload: bytes):
        ev = understand(feed, f"{i + 1}-{b * 1000 + r}", {b"payload": payload})
        if isinstance(ev, Reject):
            raise ValueError(f"person {i}: a record the normalizer refuses: {ev.reason} {ev.detail}")
        p = partition_of(ev.person_id, self.partitions)
        return p, self.protector.protect(ev)

    def _listed(self, pic: Picture, ds: list, roster: dict, counted: list) -> None:
        """The relay's roster changes for decisions ``ds`` (``_roster_change``, as ``pb_relay`` applies them)."""
        for d in ds:
            entry = _outbox_entry(pic, d, None)
            target = t.RELAY_TARGETS[entry[0] - 1]
            fields = dict(zip(entry[2::2], entry[3::2]))
            _, change, _ = _roster_change(fields, self.pseudonym)
            action, field = change[0], change[1]
            field = field.encode() if isinstance(field, str) else field
            if b"payload" in fields:
                counted[0] += 1
            if action == b"set":
                roster[(target, field)] = (change[2], fields[b"payload"])
            elif action == b"del":
                roster[(target, field)] = None

    def _fast(self, i: int, batches: list[list[tuple[str, bytes]]]) -> tuple[int, bytes, dict]:
        pic: Picture | None = None
        key = b""
        p = 0
        archived = 0
        record_id = ""
        for b, batch in enumerate(batches):
            dirty = False
            for r, (feed, payload) in enumerate(batch):
                p, ev = self._event(i, b, r, feed, payload)
                key, record_id = ev.pseudonym, ev.record_id
                if pic is None:
                    pic = Picture(Person(v=PICTURE_SCHEMA_VERSION, sid=ev.sealed_id), self.keys)
                touched = fold(pic, ev)
                dirty = dirty or not (touched is None or isinstance(touched, Quarantine))
            if dirty and pic.has_contributions:
                # services.picture.contributions.split_for_storage, as each batch's pack applies it
                c = pic.contributions
                if len(c):
                    newest = c._month_at(len(c) - 1)
                    if newest - archived + 1 >= 2 * ARCHIVE_KEEP_MONTHS:
                        archived = newest - ARCHIVE_KEEP_MONTHS + 1
        roster: dict[tuple[str, bytes], tuple[str, bytes] | None] = {}
        counted = [0]
        ds = evaluate(pic, ALL, self.day, self.now, [record_id])
        self._listed(pic, ds, roster, counted)
        pic.person.archived = archived
        if pic.has_contributions:
            c = pic.contributions
            c.archived = archived
            c.archive_dirty = bool(archived) and first_slot_from(bytes(c.buf), archived) > 0
        share = commit.pack(key, pic, RECHECK_FIGURES | RECHECK_DUE, self.day)
        due = 0 if not share.due or share.due[1] == "-" else share.due[1]
        return p, key, {"state": share.state, "archive": share.archive, "due": due, "figs": share.figs or {},
                        "roster": roster, "decisions": counted[0]}


def write(r: sync_redis.Redis, built: list[tuple[int, bytes, dict]]) -> dict[str, int]:
    """Write what ``Builder.person`` built, as ``pb_commit`` and ``pb_relay`` would have left it."""
    ppl: dict[int, dict] = {}
    arc: dict[int, dict] = {}
    due: dict[int, dict] = {}
    figs: dict[int, dict] = {}
    rosters: dict[str, dict] = {}
    index: dict[str, dict] = {}
    decisions = listed = 0
    for p, key, s in built:
        ppl.setdefault(p, {})[key] = s["state"]
        if s["archive"] is not None:
            arc.setdefault(p, {})[key] = s["archive"]
        if s["due"]:
            due.setdefault(p, {})[key] = s["due"]
        for f, v in s["figs"].items():
            figs.setdefault(p, {})[f] = figs.get(p, {}).get(f, 0) + v
        for (target, field), listing in s["roster"].items():
            if listing is None:
                continue
            district, payload = listing
            ent = ENTITLEMENT_OF[target]
            rosters.setdefault(t.roster(target, ent, _INDEX_DISTRICT[district]), {})[field] = payload
            index.setdefault(t.roster_index(target, ent), {})[field] = district
            listed += 1
        decisions += s["decisions"]
    pipe = r.pipeline(transaction=False)
    for p, m in ppl.items():
        pipe.hset(t.people(p), mapping=m)
    for p, m in arc.items():
        pipe.hset(t.archive(p), mapping=m)
    for p, m in due.items():
        pipe.zadd(t.due(p), m)
    for p, m in figs.items():
        for f, v in m.items():  # (a figure counted and uncounted again stays, at 0, as pb_commit leaves it)
            pipe.hincrby(t.figures(p), f, v)
    for k, m in rosters.items():
        pipe.hset(k, mapping=m)
    for k, m in index.items():
        pipe.hset(k, mapping=m)
    pipe.execute()
    return {"people": len(built), "decisions": decisions, "listed": listed}


# -- the load, in worker processes ----------------------------------------------------------------
_W: dict = {}


def _worker_init(url: str, history: list[int], today: str, partitions: int, exact: bool) -> None:
    day = dt.date.fromisoformat(today)
    settings = Settings(redis_url=url, partitions=partitions, today=day)
    _W.update(r=sync_redis.Redis.from_url(url), builder=Builder(settings, day), history=history, day=day, exact=exact)


def _load_chunk(span: tuple[int, int]) -> tuple[dict[str, int], float]:
    cpu0 = time.process_time()
    day, history = _W["day"], _W["history"]
    built = [_W["builder"].person(i, records(i, history, day), _W["exact"]) for i in range(*span)]
    out = write(_W["r"], built)
    return out, time.process_time() - cpu0


def _publish_chunk(span: tuple[int, int]) -> int:
    month, day = _W["burst_month"], _W["day"]
    ingress = t.FEEDS[CONTRIB].ingress
    pipe = _W["r"].pipeline(transaction=False)
    for i in range(*span):
        pipe.xadd(ingress, {"payload": contribution_record(i, month, day)})
    pipe.execute()
    return span[1] - span[0]


def _publish_init(url: str, month: int, today: str) -> None:
    _W.update(r=sync_redis.Redis.from_url(url), burst_month=month, day=dt.date.fromisoformat(today))


def _spans(n: int, chunk: int) -> list[tuple[int, int]]:
    return [(a, min(n, a + chunk)) for a in range(0, n, chunk)]


def load(url: str, people: int, history: list[int], partitions: int, procs: int, chunk: int = 2000,
         today: dt.date = TODAY, progress: bool = True, exact: bool = False,
         spans: list[tuple[int, int]] | None = None) -> dict[str, float]:
    """Build and write ``people`` permit holders with ``history`` months of contributions (or
    only those of ``spans``)."""
    totals = {"people": 0, "decisions": 0, "listed": 0, "cpu_s": 0.0}
    t0 = time.perf_counter()
    spans = _spans(people, chunk) if spans is None else spans
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(procs, _worker_init, (url, history, today.isoformat(), partitions, exact)) as pool:
        for n, (out, cpu) in enumerate(pool.imap_unordered(_load_chunk, spans), 1):
            for k, v in out.items():
                totals[k] += v
            totals["cpu_s"] += cpu
            if progress and (n % max(1, len(spans) // 20) == 0 or n == len(spans)):
                el = time.perf_counter() - t0
                print(f"  loaded {totals['people']:,} people in {el:.0f} s ({totals['people'] / el:,.0f}/s)", flush=True)
    totals["wall_s"] = time.perf_counter() - t0
    return totals


def publish_burst(url: str, people: int, month: int, procs: int, today: dt.date = TODAY) -> float:
    t0 = time.perf_counter()
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(procs, _publish_init, (url, month, today.isoformat())) as pool:
        sum(pool.imap_unordered(_publish_chunk, _spans(people, 5000)))
    return time.perf_counter() - t0


def restart_redis(workdir: str, timeout: float = 1800) -> tuple[subprocess.Popen, str, float]:
    """A redis-server (deploy/redis/redis.conf's settings) on a directory that holds an AOF: the
    time until it has loaded it and answers."""
    from benchmarks.__main__ import DEPLOY_REDIS_CONF
    from services.runtime.localredis import free_port

    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen([shutil.which("redis-server"), str(DEPLOY_REDIS_CONF), "--port", str(port), "--bind",
                             "127.0.0.1", "--dir", workdir, "--save", "", "--appendonly", "yes", "--appendfsync",
                             "everysec", "--maxmemory-policy", "noeviction", "--daemonize", "no", "--logfile",
                             "redis.log"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = sync_redis.Redis.from_url(url)
    while True:
        try:
            if client.ping():
                break
        except (sync_redis.exceptions.BusyLoadingError, sync_redis.exceptions.ConnectionError):
            pass
        if proc.poll() is not None or time.perf_counter() - t0 > timeout:
            proc.kill()
            raise RuntimeError(f"redis-server did not load {workdir} (exit {proc.poll()})")
        time.sleep(0.05)
    client.close()
    return proc, url, time.perf_counter() - t0


def missing_spans(url: str, people: int, partitions: int, chunk: int = 2000, margin: int = 4,
                  today: dt.date = TODAY) -> list[tuple[int, int]]:
    """The chunks of a load that was cut short to write again: those with a person not in ``ppl``,
    and the ``margin`` last complete ones before each of them (a chunk whose pictures went in but
    not all its rosters; writing a chunk again is idempotent, the figures aside: ``refigure``)."""
    settings = Settings(redis_url=url, partitions=partitions, today=today)
    pseudonym = Pseudonymizer(settings.pseudonym_secret())
    r = sync_redis.Redis.from_url(url)
    spans = _spans(people, chunk)
    todo: set[int] = set()
    for n, (a, b) in enumerate(spans):
        pipe = r.pipeline(transaction=False)
        for i in range(a, b):
            pid = person_id(i, today)
            pipe.hexists(t.people(partition_of(pid, partitions)), pseudonym(pid))
        if not all(pipe.execute()):
            todo.update(range(max(0, n - margin), n + 1))
    r.close()
    return [spans[n] for n in sorted(todo)]


def refigure(url: str, partitions: int) -> None:
    """fig:{pN} recounted from the pictures (``Person.figs``): what pb_commit's deltas add up to."""
    from services.picture.stored import decoder
    r = sync_redis.Redis.from_url(url)
    for p in range(partitions):
        counts: dict[str, int] = {}
        for _, blob in r.hscan_iter(t.people(p), count=2000):
            for f in decoder.decode(blob).figs:
                counts[f] = counts.get(f, 0) + 1
        pipe = r.pipeline(transaction=True)
        pipe.delete(t.figures(p))
        if counts:
            pipe.hset(t.figures(p), mapping=counts)
        pipe.execute()
    r.close()


# -- measuring Redis -----------------------------------------------------------------------------
def aof_bytes(workdir: str) -> int:
    d = Path(workdir) / "appendonlydir"
    return sum(f.stat().st_size for f in d.iterdir()) if d.exists() else 0


async def memory_by_kind(r, partitions: int) -> dict[str, int]:
    """MEMORY USAGE of the keys, by kind (exact: every field counted)."""
    kinds = {"pictures": [t.people(p) for p in range(partitions)],
             "archives": [t.archive(p) for p in range(partitions)],
             "due dates": [t.due(p) for p in range(partitions)],
             "figures": [t.figures(p) for p in range(partitions)],
             "partition streams": [t.evt(p) for p in range(partitions)],
             "outboxes": [t.outbox(p, x) for p in range(partitions) for x in t.RELAY_TARGETS]}
    kinds["rosters"] = [k async for k in r.scan_iter(match="roster*", count=1000)]
    kinds["outlets"] = [o.stream for o in t.OUTLETS.values()]
    kinds["audit"] = [k async for k in r.scan_iter(match="audit*", count=1000)]
    kinds["ingress"] = [f.ingress for f in t.FEEDS.values()]
    out = {}
    for kind, keys in kinds.items():
        total = 0
        for k in keys:
            total += await r.memory_usage(k, samples=0) or 0
        out[kind] = total
    return out


async def rewrite(r, server, workdir: str) -> dict[str, float]:
    """BGREWRITEAOF now: its time, the fork, the copy-on-write, the child's CPU, the AOF after."""
    await wait_quiet(r)
    children0 = cpu_s(server.pid, children=True)
    rss0 = (await r.info("memory"))["used_memory_rss"]
    t0 = time.perf_counter()
    await r.bgrewriteaof()
    peak_cow = 0
    while True:
        info = await r.info("persistence")
        peak_cow = max(peak_cow, info.get("current_cow_size", 0))
        if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
            break
        await asyncio.sleep(0.02)
    took = time.perf_counter() - t0
    stats = await r.info("stats")
    mem = await r.info("memory")
    return {"seconds": took, "fork_ms": stats["latest_fork_usec"] / 1000, "cow_mb": info["aof_last_cow_size"] / 1e6,
            "cow_peak_seen_mb": peak_cow / 1e6, "child_cpu_s": cpu_s(server.pid, children=True) - children0,
            "rss_before_mb": rss0 / 1e6, "rss_after_mb": mem["used_memory_rss"] / 1e6,
            "fragmentation": mem["mem_fragmentation_ratio"], "aof_mb": aof_bytes(workdir) / 1e6,
            "status": info["aof_last_bgrewrite_status"]}


async def wait_quiet(r, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = await r.info("persistence")
        if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
            return
        await asyncio.sleep(0.05)


# -- the burst -----------------------------------------------------------------------------------
async def run_stage(r, server, services: Services, names: list[str], started, done) -> dict:
    """Start ``names``; from when ``started`` says they work until ``done``: wall and CPU seconds."""
    services.start(only=names)
    try:
        while not await started():
            _alive(services)
            await asyncio.sleep(0.002)
        t0 = time.perf_counter()
        pids = services.pids()
        cpu0 = {k: cpu_s(pid) for k, pid in pids.items()}
        redis0, rw0 = cpu_s(server.pid), cpu_s(server.pid, children=True)
        rewrites0 = (await r.info("persistence"))["aof_rewrites"]
        while not await done():
            _alive(services)
            await asyncio.sleep(0.02)
        took = time.perf_counter() - t0
        cpu = {k: cpu_s(pid) - cpu0[k] for k, pid in pids.items()}
        cpu["redis"] = cpu_s(server.pid) - redis0
        cpu["redis AOF rewrites"] = cpu_s(server.pid, children=True) - rw0
        rewrites = (await r.info("persistence"))["aof_rewrites"] - rewrites0
    finally:
        services.stop()
    return {"names": names, "seconds": took, "cpu": cpu, "rewrites": rewrites}


def _alive(services: Services) -> None:
    exited = [name for name, p in services.procs.items() if p.poll() is not None]
    if exited:
        raise RuntimeError(f"{', '.join(exited)} exited during the benchmark")


async def burst(r, server, url: str, args, month: int, mode: str) -> dict:
    ingress = t.FEEDS[CONTRIB].ingress
    services = Services(url, args.partitions, args.batch, args.deciders)
    publish_s = publish_burst(url, args.people, month, args.procs)
    before = (await r.xinfo_groups(ingress))[0]["entries-read"] or 0
    metas = [t.decider_meta(p) for p in range(args.partitions)]

    async def normalizer_reading() -> bool:
        return ((await r.xinfo_groups(ingress))[0]["entries-read"] or 0) != before

    async def normalized() -> bool:
        g = (await r.xinfo_groups(ingress))[0]
        return g["lag"] == 0 and g["pending"] == 0

    async def idle() -> bool:  # twice in a row: work moves between stages
        return (await backlog(r, args.partitions)).idle and (await backlog(r, args.partitions)).idle

    outlets0 = sum([await r.xlen(o.stream) for o in t.OUTLETS.values()])
    stages = []
    if mode == "stages":
        stages.append(await run_stage(r, server, services, ["normalize"], normalizer_reading, normalized))
        positions = [await r.hget(k, "pos") for k in metas]

        async def committing() -> bool:
            return [await r.hget(k, "pos") for k in metas] != positions

        deciders = [n for n in services.names() if n.startswith("decider")]
        stages.append(await run_stage(r, server, services, [*deciders, "relay"], committing, idle))
    else:
        stages.append(await run_stage(r, server, services, services.names(), normalizer_reading, idle))
    decisions = sum([await r.xlen(o.stream) for o in t.OUTLETS.values()]) - outlets0
    return {"month": month, "mode": mode, "records": args.people, "publish_s": publish_s, "stages": stages,
            "decisions": decisions}


# -- the run -------------------------------------------------------------------------------------
def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def main(args) -> dict:
    restart_s = None
    if args.resume:
        server, url, restart_s = restart_redis(args.resume)
        r = aioredis.Redis.from_url(url)
        print(f"restarted Redis on {args.resume}: AOF of {aof_bytes(args.resume) / 1e6:,.0f} MB loaded in "
              f"{restart_s:.1f} s", flush=True)
    else:
        server, url, r = await private_redis()
    workdir = (await r.config_get("dir"))["dir"]
    out: dict = {"people": args.people, "exact": args.exact, "months": args.months, "partitions": args.partitions,
                 "deciders": args.deciders, "load_before": loadavg(), "cores": os.cpu_count()}
    try:
        # the history ends two months before TODAY's; the first burst is the month before TODAY's
        # (the file a department sends early in the month), the next ones the months after it
        history = months_until(months_until(TODAY.year * 100 + TODAY.month, 3)[0], args.months)
        bursts = [next_month(history[-1])]
        while len(bursts) < len(args.bursts):
            bursts.append(next_month(bursts[-1]))
        print(f"city: {args.people:,} permit holders, {args.months} months of contributions "
              f"({history[0]}-{history[-1]}); bursts {', '.join(map(str, bursts))}; load {loadavg()}", flush=True)
        mem0 = 0 if args.resume else (await r.info("memory"))["used_memory"]
        spans = None
        if args.resume:  # a load cut short (Redis stopped under it): write what is missing, recount the figures
            spans = missing_spans(url, args.people, args.partitions)
            print(f"resuming: {sum(b - a for a, b in spans):,} people to write again", flush=True)
        loaded = load(url, args.people, history, args.partitions, args.procs, today=TODAY, progress=not args.quiet,
                      exact=args.exact, spans=spans)
        if args.resume:
            refigure(url, args.partitions)
            loaded["people"] = sum([await r.hlen(t.people(p)) for p in range(args.partitions)])
            loaded["resumed_from_restart_s"] = restart_s
            loaded["listed"] = loaded["decisions"] = sum(  # (the fast load's decisions are its roster entries)
                [await r.hlen(t.roster_index(o.stream, o.entitlement)) for o in t.OUTLETS.values()])
        redis_cpu_load = cpu_s(server.pid) + cpu_s(server.pid, children=True)
        await wait_quiet(r)
        info = await r.info()
        out["load"] = {**loaded, "redis_cpu_s": redis_cpu_load, "used_memory": info["used_memory"] - mem0,
                       "aof_mb": aof_bytes(workdir) / 1e6, "aof_rewrites": info["aof_rewrites"]}
        print(f"loaded: {loaded['people']:,} people in {loaded['wall_s']:.0f} s ({loaded['cpu_s']:.0f} CPU s "
              f"building, Redis {redis_cpu_load:.0f} CPU s); {loaded['decisions']:,} decisions, "
              f"{loaded['listed']:,} roster entries; used_memory {info['used_memory'] / 1e9:.2f} GB; "
              f"AOF {out['load']['aof_mb']:,.0f} MB ({info['aof_rewrites']} automatic rewrites)", flush=True)
        out["kinds_before"] = await memory_by_kind(r, args.partitions)
        out["rewrite_before"] = await rewrite(r, server, workdir)
        print(f"rewrite after the load: {json.dumps(out['rewrite_before'])}", flush=True)
        out["bursts"] = []
        for month, mode in zip(bursts, args.bursts):
            aof0 = aof_bytes(workdir)
            mem_b = (await r.info("memory"))["used_memory"]
            await r.config_set("auto-aof-rewrite-percentage", 0 if args.no_rewrites else 100)
            b = await burst(r, server, url, args, month, mode)
            await wait_quiet(r)
            b["aof_growth_mb"] = (aof_bytes(workdir) - aof0) / 1e6
            b["used_memory_before"], b["used_memory_after"] = mem_b, (await r.info("memory"))["used_memory"]
            b["load"] = loadavg()
            out["bursts"].append(b)
            for s in b["stages"]:
                cpu = ", ".join(f"{k} {v:.1f}" for k, v in s["cpu"].items())
                print(f"burst {month} ({mode}) {' + '.join(s['names'])}: {b['records']:,} records in "
                      f"{s['seconds']:.1f} s = {b['records'] / s['seconds']:,.0f}/s; CPU s: {cpu}; "
                      f"{s['rewrites']} rewrites", flush=True)
            print(f"  {b['decisions']:,} decisions; published in {b['publish_s']:.1f} s; AOF +{b['aof_growth_mb']:,.0f} MB; "
                  f"load {b['load']}", flush=True)
        await r.config_set("auto-aof-rewrite-percentage", 100)
        # the ingress stream is trimmed by the normalizer's retention, not yet: count it apart
        out["kinds_after"] = await memory_by_kind(r, args.partitions)
        info = await r.info()
        out["used_memory_after"] = info["used_memory"]
        out["used_memory_rss_after"] = info["used_memory_rss"]
        out["aof_mb_after"] = aof_bytes(workdir) / 1e6
        out["rewrite_after"] = rewrite_after = await rewrite(r, server, workdir)
        print(f"rewrite after the bursts: {json.dumps(rewrite_after)}", flush=True)
        out["load_after"] = loadavg()
    finally:
        await r.aclose()
        server.terminate()
        server.wait()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report(out)
    print("\n" + "\n".join(account(out)))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))
    return out


def report(out: dict) -> None:
    n = out["people"]
    kb, ka = out["kinds_before"], out["kinds_after"]
    state = ("pictures", "archives", "due dates", "figures", "rosters")
    rows = [("permit holders", f"{n:,}", f"{out['months']} months of history, {out['partitions']} partitions"),
            ("load: wall / building CPU (s)", f"{out['load']['wall_s']:.0f} / {out['load']['cpu_s']:.0f}",
             f"{out['load']['cpu_s'] * 1e6 / n:,.0f} us a person; Redis {out['load']['redis_cpu_s']:.0f} CPU s"),
            ("history decisions a person", f"{out['load']['decisions'] / n:.2f}",
             f"roster entries a person {out['load']['listed'] / n:.2f}")]
    for kind in state:
        rows.append((f"bytes a person: {kind}", f"{ka[kind] / n:,.0f}", f"after the load {kb[kind] / n:,.0f}"))
    rows.append(("bytes a person: the person's state", f"{sum(ka[k] for k in state) / n:,.0f}",
                 f"after the load {sum(kb[k] for k in state) / n:,.0f}"))
    rows.append(("used_memory (GB)", f"{out['used_memory_after'] / 1e9:.2f}",
                 f"after the load {out['load']['used_memory'] / 1e9:.2f}; RSS {out['used_memory_rss_after'] / 1e9:.2f}; "
                 f"ingress {ka['ingress'] / 1e6:,.0f} MB, outlets {ka['outlets'] / 1e6:,.0f} MB, "
                 f"audit {ka['audit'] / 1e6:,.0f} MB"))
    for b in out["bursts"]:
        for s in b["stages"]:
            per = ", ".join(f"{k} {v * 1e6 / b['records']:.1f}" for k, v in s["cpu"].items())
            rows.append((f"burst {b['month']} ({b['mode']}): {' + '.join(s['names'])}",
                         f"{b['records'] / s['seconds']:,.0f}/s", f"{s['seconds']:.1f} s; CPU us a record: {per}"))
        rows.append((f"burst {b['month']}: AOF written (MB)", f"{b['aof_growth_mb']:,.0f}",
                     f"{b['aof_growth_mb'] * 1e6 / b['records']:,.0f} bytes a record; {b['decisions']:,} decisions; "
                     f"used_memory {b['used_memory_before'] / 1e9:.2f} -> {b['used_memory_after'] / 1e9:.2f} GB; "
                     f"load {b['load']}"))
    for name in ("rewrite_before", "rewrite_after"):
        w = out[name]
        rows.append((f"BGREWRITEAOF ({name.split('_')[1]} the bursts)", f"{w['seconds']:.1f} s",
                     f"fork {w['fork_ms']:.0f} ms, COW {w['cow_mb']:.0f} MB, child CPU {w['child_cpu_s']:.1f} s, "
                     f"AOF {w['aof_mb']:,.0f} MB, RSS {w['rss_before_mb']:,.0f} MB, frag {w['fragmentation']}"))
    print_table(rows)
    print(f"\nmachine: {out['cores']} cores; load average {out['load_before']} at the start, {out['load_after']} at the end")


# -- the account ---------------------------------------------------------------------------------
def _kind(process: str) -> str:
    return "redis" if process.startswith("redis") else process.rstrip("0123456789")


def _per_core(records: float, cpu_s: float) -> str:
    """Records a second a core; a run too small for the CPU clock (10 ms ticks) says so instead."""
    return f"{records / cpu_s:,.0f}" if cpu_s > 0 else "(too few records to measure)"


def account(out: dict, city: int = 2_500_000, windows: tuple[int, ...] = (3600, 600, 60), audit_bytes: int = 550,
            audit_years: int = 5, decisions_a_year: tuple[float, ...] = (0.5, 2.0), shard_gb: float = 25.0) -> list[str]:
    """The capacity account for ``city`` permit holders from a run's figures (BENCHMARKS.md gives the
    method): CPU a record per stage -> cores for the monthly burst within each window; Redis
    bytes a person -> memory with the audit log kept ``audit_years`` -> shards of ``shard_gb``."""
    n = out["people"]
    lines = [f"city: {city:,} permit holders; measured on {n:,} ({out['months']} months of history)"]
    for b in out["bursts"]:
        per: dict[str, float] = {}
        for s in b["stages"]:
            for k, v in s["cpu"].items():
                per[_kind(k)] = per.get(_kind(k), 0.0) + v * 1e6 / b["records"]
        total = sum(per.values())
        wall = sum(s["seconds"] for s in b["stages"])
        lines.append(f"burst {b['month']} ({b['mode']}): CPU us a record " + ", ".join(f"{k} {v:.1f}" for k, v in per.items())
                     + f"; total {total:.1f} us = {_per_core(1e6, total)} records/s a core; here {b['records'] / wall:,.0f}/s on "
                     f"{out['cores']} cores")
        for w in windows:
            lines.append(f"  {city:,} records within {w // 60} min: {city * total / 1e6 / w:.1f} cores busy "
                         f"(normalizer {city * per.get('normalize', 0) / 1e6 / w:.2f}, deciders "
                         f"{city * per.get('decider', 0) / 1e6 / w:.2f}, relay {city * per.get('relay', 0) / 1e6 / w:.2f}, "
                         f"Redis {city * per.get('redis', 0) / 1e6 / w:.2f})")
        if b["mode"] == "stages":
            s = b["stages"][0]
            lines.append(f"  one normalizer alone: {b['records'] / s['seconds']:,.0f} records/s wall, "
                         f"{s['cpu']['normalize'] * 1e6 / b['records']:.1f} us CPU a record "
                         f"(= {_per_core(b['records'], s['cpu']['normalize'])}/s if it had a core to itself), "
                         f"Redis {s['cpu']['redis'] * 1e6 / b['records']:.1f} us a record for it")
    ka = out["kinds_after"]
    state = sum(ka[k] for k in ("pictures", "archives", "due dates", "figures", "rosters")) / n
    used = out["used_memory_after"] / n
    lines.append(f"Redis: the people's state {state:,.0f} bytes a person (used_memory {used:,.0f} a person, "
                 f"everything included) -> {city * state / 1e9:.1f} GB ({city * used / 1e9:.1f} GB by used_memory)")
    for dpy in decisions_a_year:
        audit = city * dpy * audit_years * audit_bytes / 1e9
        total_gb = city * used / 1e9 + audit
        lines.append(f"  + audit, {dpy} decisions a person a year for {audit_years} years at {audit_bytes} B: "
                     f"{audit:.1f} GB; total {total_gb:.1f} GB -> {-(-total_gb // shard_gb):.0f} shard(s) of "
                     f"{shard_gb:.0f} GB (used_memory)")
    return lines


def cli(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.capacity", description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=1_000_000, help="permit holders loaded")
    ap.add_argument("--months", type=int, default=24, help="months of contribution history loaded")
    ap.add_argument("--bursts", default="path",
                    help="the monthly bursts run, one after another, each 'path' (all services at once) or "
                         "'stages' (the normalizer alone, then deciders and relay), comma-separated")
    ap.add_argument("--partitions", type=int, default=16)
    ap.add_argument("--batch", type=int, default=2500)
    ap.add_argument("--deciders", type=int, default=2)
    ap.add_argument("--procs", type=int, default=2, help="processes building and publishing the city")
    ap.add_argument("--exact", action="store_true",
                    help="decide every event of the history and pack every month, as the services do (3x slower)")
    ap.add_argument("--no-rewrites", action="store_true", help="no automatic AOF rewrite during the bursts")
    ap.add_argument("--resume", metavar="DIR",
                    help="a Redis directory a --keep run left (its load cut short): restart Redis on it (timed), "
                         "write the people missing, then run the bursts")
    ap.add_argument("--keep", action="store_true", help="keep Redis's directory (its AOF) afterwards")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--json", help="write the figures to this file")
    ap.add_argument("--account", metavar="JSON", help="print the capacity account from a run's --json file, run nothing")
    args = ap.parse_args(argv)
    if args.account:
        out = json.loads(Path(args.account).read_text())
        print("\n".join(account(out)))
        return out
    args.bursts = [b.strip() for b in args.bursts.split(",") if b.strip()]
    if any(b not in ("path", "stages") for b in args.bursts):
        ap.error("--bursts: 'path' or 'stages'")
    return asyncio.run(main(args))


if __name__ == "__main__":
    cli()
