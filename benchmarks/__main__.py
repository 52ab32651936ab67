"""``python -m benchmarks``: the monthly contribution burst through the whole path, against two
baselines measured in the same run on the same records, plus latency, memory and RSS.

Sets up a private redis-server (AOF everysec, as deploy/redis/redis.conf), loads a population of
permit holders with their contribution history through the pipeline, then times a burst of the
last months' contributions (ingress -> normalized -> picture -> rules -> outlets) with the services
as separate processes (one normalizer, one decider, one relay: both cores). Prints one table.
Measures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import redis.asyncio as aioredis

os.environ.setdefault("PERMITBUS_INSECURE_DEV_KEYS", "1")  # a benchmark, not a deployment: built-in keys
from services.ops.backlog import backlog
from services.runtime import acl, topology as t
from services.runtime.access import USER_OF_SERVICE
from services.runtime.localredis import free_port, spawn_redis
from services.runtime.redis import ensure_groups, load_functions
from services.sim.generator import SimConfig, contributions_burst, generate
from tests.aclredis import ADMIN, write_acl  # under --acl: the ACL file of `permitbus acl` and an admin

TODAY = dt.date(2026, 11, 28)
DEPLOY_REDIS_CONF = Path(__file__).resolve().parents[1] / "deploy" / "redis" / "redis.conf"
NULL_CIPHER = Path(__file__).resolve().parent / "nullcipher"


def months_before(day: dt.date, n: int) -> list[int]:
    y, m = day.year, day.month
    out = []
    for _ in range(n):
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
        out.append(y * 100 + m)
    return sorted(out)


def cpu_s(pid: int, children: bool = False) -> float:
    """CPU seconds of a process (user + system); with ``children``, of its children that ended
    (Redis's AOF-rewrite forks)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        at = 13 if children else 11
        return (int(fields[at]) + int(fields[at + 1])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Services:
    """The services as separate processes, with their RSS sampled."""

    def __init__(self, url: str, partitions: int, batch: int, deciders: int = 1, up: bool = False,
                 urls: dict[str, str] | None = None, null_cipher: bool = False) -> None:
        self.deciders = deciders
        self.up = up  # one `permitbus up` (a supervisor and its worker processes) instead of one process a service
        self.urls = urls or {}  # per service ("up" for `permitbus up`): its own ACL user's URL
        self.env = {**os.environ, "PERMITBUS_REDIS_URL": url, "PERMITBUS_TODAY": TODAY.isoformat(),
                    "PERMITBUS_PARTITIONS": str(partitions), "PERMITBUS_BATCH_SIZE": str(batch),
                    "PERMITBUS_LOG_LEVEL": "WARNING", "PERMITBUS_INSECURE_DEV_KEYS": "1"}
        if null_cipher:  # measurement only: benchmarks/nullcipher/sitecustomize.py
            self.env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(NULL_CIPHER), os.environ.get("PYTHONPATH"))))
            self.env["PERMITBUS_BENCH_NULL_CIPHER"] = "1"
        self.procs: dict[str, subprocess.Popen] = {}
        self.samples: dict[str, list[int]] = {}
        self.sampled: dict[str, int] = {}  # the pids sampled

    def _env(self, service: str) -> dict[str, str]:
        url = self.urls.get(service)
        return {**self.env, "PERMITBUS_REDIS_URL": url} if url else self.env

    def names(self) -> list[str]:
        return ["normalize", *(["decider"] if self.deciders == 1 else
                               [f"decider{i + 1}" for i in range(self.deciders)]), "relay"]

    def start(self, only: list[str] | None = None) -> None:
        """Start the services (or ``only`` those named), each as its own process."""
        self.procs, self.samples, self.sampled = {}, {}, {}
        if self.up and not only:
            self.procs["up"] = subprocess.Popen([sys.executable, "-m", "services.cli", "up", "--workers",
                                                 str(self.deciders)], env=self._env("up"))
            while len(self.pids()) < len(self.names()):
                time.sleep(0.05)
            self.samples = {name: [] for name in self.pids()}
            return
        for name in only or self.names():
            service = name.rstrip("0123456789")
            self.procs[name] = subprocess.Popen([sys.executable, "-m", "services.cli", "run", service],
                                                env=self._env(service))
            self.samples[name] = []

    def pids(self) -> dict[str, int]:
        """The worker processes by name (under `permitbus up`: its children, named by role)."""
        if "up" not in self.procs:
            return {name: p.pid for name, p in self.procs.items()}
        up, out, n = self.procs["up"].pid, {}, 0
        for d in sorted(Path("/proc").iterdir(), key=lambda d: int(d.name) if d.name.isdigit() else 0):
            try:
                if not d.name.isdigit() or int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) != up:
                    continue
                argv = (d / "cmdline").read_bytes().split(b"\0")
            except (OSError, IndexError, ValueError):
                continue
            if b"run" in argv and (role := argv[argv.index(b"run") + 1].decode()) != "scheduler":
                if role == "decider" and self.deciders > 1:
                    n += 1
                    role = f"decider{n}"
                out[role] = int(d.name)
        return out

    def sample(self) -> None:
        """The workers' RSS now (their pids as found when they started: under `up`, finding them
        means reading every process's /proc entry)."""
        if not self.sampled:
            self.sampled = self.pids()
        for name, pid in self.sampled.items():
            self.samples.setdefault(name, []).append(rss_kb(pid))

    def stop(self) -> None:
        for p in self.procs.values():
            p.terminate()
        for p in self.procs.values():
            p.wait(20)


async def publish(r, stream: str, payloads: list[bytes], chunk: int = 5000) -> None:
    for i in range(0, len(payloads), chunk):
        pipe = r.pipeline(transaction=False)
        for payload in payloads[i:i + chunk]:
            pipe.xadd(stream, {"payload": payload})
        await pipe.execute()


def resp_xadds(stream: str, payloads: list[bytes]) -> bytes:
    """The burst as Redis protocol (``XADD stream * payload <record>`` each), for ``redis-cli --pipe``."""
    head = b"*5\r\n$4\r\nXADD\r\n$%d\r\n%b\r\n$1\r\n*\r\n$7\r\npayload\r\n" % (len(stream), stream.encode())
    return b"".join(b"%b$%d\r\n%b\r\n" % (head, len(p), p) for p in payloads)


async def publish_pipe(url: str, protocol_file: str, records: int) -> None:
    """Publish as a department's bulk export would: ``redis-cli --pipe`` (C, pipelined) reading
    the month's file already in Redis protocol (removed afterwards, with its directory), so that
    the publisher on the same machine takes as little of its two cores as such a tool does (a
    Python publisher took a core of its own and was the limit: 33,072 records/s)."""
    try:
        with open(protocol_file, "rb") as f:
            proc = await asyncio.create_subprocess_exec("redis-cli", "-u", url, "--pipe", stdin=f,
                                                        stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.STDOUT)
            out, _ = await proc.communicate()
    finally:  # the file (a month's records, in a directory of its own) is not kept
        Path(protocol_file).unlink()
        Path(protocol_file).parent.rmdir()
    if proc.returncode != 0 or f"errors: 0, replies: {records}".encode() not in out:
        raise RuntimeError(f"redis-cli --pipe failed: {out.decode(errors='replace')[-300:]}")


async def until_idle(r, partitions: int, services: Services | None = None, poll: float = 0.01,
                     timeout: float = 900.0) -> float:
    """Wait until the pipeline has worked everything off; return when (``time.perf_counter()``)
    that was first seen. The benchmark shares the machine's cores with what it measures, so it
    looks cheaply: the contribution feed's group caught up and committed and every partition
    stream empty (``pb_commit`` trims what it applied: XLEN is a partition's backlog), about 20
    commands, every ``poll`` s once fewer than 10,000 records wait to be read (every 0.1 s
    before); only then the whole backlog (about 180 commands, the relay's outboxes included)
    to confirm. (Polling the whole backlog every 50 ms took 1.5 CPU s of the two cores during a
    14.6 s burst.) Worker RSS is sampled every 0.1 s or so."""
    deadline = time.monotonic() + timeout
    ingress = t.FEEDS["hrss:contribution"].ingress
    next_sample = 0.0
    while True:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the pipeline did not drain in {timeout:.0f} s: {await backlog(r, partitions)}")
        if services and any(p.poll() is not None for p in services.procs.values()):
            raise RuntimeError("a service process exited during the benchmark")
        if services and time.monotonic() >= next_sample:
            services.sample()
            next_sample = time.monotonic() + 0.1
        pipe = r.pipeline(transaction=False)
        pipe.xinfo_groups(ingress)
        pipe.hget(t.counters(ingress), "committed_n")
        for p in range(partitions):
            pipe.xlen(t.evt(p))
        groups, committed, *lengths = await pipe.execute()
        group = next(g for g in groups if g["name"] == t.NORMALIZER_GROUP.encode())
        if not group["lag"] and int(committed or 0) >= (group["entries-read"] or 0) and not any(lengths):
            seen = time.perf_counter()
            if (await backlog(r, partitions)).idle:
                return seen
        await asyncio.sleep(poll if (group["lag"] or 0) < 10_000 else 0.1)


async def wait_rewrite(r, timeout: float = 60.0) -> None:
    """Until an AOF rewrite in progress has ended (its child's CPU is counted when it is reaped)."""
    deadline = time.monotonic() + timeout
    while (await r.info("persistence"))["aof_rewrite_in_progress"] and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


# -- baselines --------------------------------------------------------------------------------
async def baseline_raw(url: str, payloads: list[bytes]) -> float:
    """redis-py: XREADGROUP 1000 + msgspec decode + XACK, one loop."""
    r = aioredis.Redis.from_url(url)
    await r.delete("bench:raw")
    await publish(r, "bench:raw", payloads)
    await r.xgroup_create("bench:raw", "g", id="0")
    decoder = msgspec.json.Decoder()
    n = 0
    t0 = time.perf_counter()
    while n < len(payloads):
        resp = await r.xreadgroup("g", "c", {"bench:raw": ">"}, count=1000)
        entries = resp[0][1]
        for _, fields in entries:
            decoder.decode(fields[b"payload"])
        await r.xack("bench:raw", "g", *[eid for eid, _ in entries])
        n += len(entries)
    took = time.perf_counter() - t0
    await r.delete("bench:raw")
    await r.aclose()
    return n / took


async def baseline_faststream(url: str, payloads: list[bytes]) -> float:
    """A plain FastStream consumer handling one message at a time (group, ack after handling)."""
    from faststream.redis import RedisBroker, StreamSub

    r = aioredis.Redis.from_url(url)
    await r.delete("bench:fs")
    await publish(r, "bench:fs", payloads)
    await r.xgroup_create("bench:fs", "g", id="0")
    broker = RedisBroker(url, log_level=10)
    decoder = msgspec.json.Decoder()
    done = asyncio.Event()
    count = {"n": 0}

    @broker.subscriber(stream=StreamSub("bench:fs", group="g", consumer="c"))
    async def handle(body: dict) -> None:
        decoder.decode(body["payload"])
        count["n"] += 1
        if count["n"] >= len(payloads):
            done.set()

    t0 = time.perf_counter()
    await broker.start()
    await done.wait()
    took = time.perf_counter() - t0
    await broker.stop()
    await r.delete("bench:fs")
    await r.aclose()
    return len(payloads) / took


# -- latency ----------------------------------------------------------------------------------
async def latency(r, cfg: SimConfig, rate: int, seconds: float) -> tuple[float, float, int]:
    """Steady ``rate`` records/s of mixed feeds; XADD on ingress -> decision on the outlet."""
    mixed = [rec for rec in generate(cfg) if not rec.malformed and not rec.duplicate]
    need = int(rate * seconds)
    mixed = mixed[:need]
    record_id = {"psb:permit": "ywlsh", "hrss:contribution": "LSH", "edu:application": "sqbh",
                 "housing:application": "applicationNo"}
    sent_ms: dict[str, int] = {}
    got: list[int] = []
    positions = {o.stream: (await r.xinfo_stream(o.stream))["last-generated-id"] if await r.exists(o.stream)
                 else "0-0" for o in t.OUTLETS.values()}
    stop = asyncio.Event()

    async def reader() -> None:
        rr = aioredis.Redis.from_url(_url(r))
        while not stop.is_set():
            resp = await rr.xread(positions, count=1000, block=100)
            for stream, entries in resp or []:
                for eid, f in entries:
                    positions[stream.decode()] = eid
                    d = msgspec.json.decode(f[b"payload"])
                    at = int(eid.split(b"-")[0])
                    starts = [sent_ms[c] for c in d["caused_by"] if c in sent_ms]
                    if starts:
                        got.append(at - min(starts))
        await rr.aclose()

    task = asyncio.create_task(reader())
    t0 = time.perf_counter()
    batch = max(1, rate // 50)  # 50 small bursts a second
    for i in range(0, len(mixed), batch):
        pipe = r.pipeline(transaction=False)
        chunk = mixed[i:i + batch]
        for rec in chunk:
            pipe.xadd(t.FEEDS[rec.feed].ingress, {"payload": rec.payload})
        ids = await pipe.execute()
        for rec, eid in zip(chunk, ids):
            sent_ms[json.loads(rec.payload)[record_id[rec.feed]]] = int(eid.split(b"-")[0])
        ahead = (i + batch) / rate - (time.perf_counter() - t0)
        if ahead > 0:
            await asyncio.sleep(ahead)
    await asyncio.sleep(1.0)
    stop.set()
    await task
    if not got:
        return float("nan"), float("nan"), 0
    q = statistics.quantiles(got, n=100)
    return statistics.median(got), q[98], len(got)


def _url(r) -> str:
    """The URL ``r`` was made from (its user and password too, under --acl)."""
    kw = r.connection_pool.connection_kwargs
    login = f"{kw['username']}:{kw['password']}@" if kw.get("username") else ""
    return f"redis://{login}{kw.get('host', '127.0.0.1')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"


# -- the run ----------------------------------------------------------------------------------
async def private_redis(passwords: dict[str, str] | None = None) -> tuple[subprocess.Popen, str, aioredis.Redis]:
    """A redis-server of our own with deploy/redis/redis.conf's settings, functions and groups.
    With ``passwords`` (user -> password, ``ADMIN`` among them), also the ACL file of ``permitbus
    acl`` (``default`` off; ``tests.aclredis.write_acl``); the URL returned is then ``ADMIN``'s."""
    workdir = tempfile.mkdtemp(prefix="permitbus-bench-")
    port = free_port()
    config = str(DEPLOY_REDIS_CONF)
    if passwords:
        users = write_acl(Path(workdir), passwords)
        config = str(Path(workdir) / "redis.conf")
        Path(config).write_text(f"include {DEPLOY_REDIS_CONF}\naclfile {users}\n")
    server = spawn_redis(port, workdir, appendonly=True, config=config)
    url = user_url(port, ADMIN, passwords) if passwords else f"redis://127.0.0.1:{port}/0"
    r = aioredis.Redis.from_url(url)
    await load_functions(r)
    await ensure_groups(r)
    return server, url, r


async def populate(r, args, services: Services) -> tuple[list[bytes], int]:
    """Permit holders and their contribution history through the running services, until idle.
    Returns the burst (the last ``args.burst_months`` months' records, not yet published) and
    the number of permit holders."""
    cfg = SimConfig(people=args.people, seed=5, today=TODAY, months=1, malformed_rate=0, duplicate_rate=0)
    history = months_before(TODAY, args.months)
    burst_months, earlier = history[-args.burst_months:], history[:-args.burst_months]
    print(f"population: {args.people:,} people; history {len(earlier)} months; burst {len(burst_months)} months",
          flush=True)
    permits = [rec.payload for rec in generate(cfg) if rec.feed == "psb:permit"]
    holders = sum(1 for p in permits if b'"QF"' in p)
    services.start()
    t0 = time.perf_counter()
    await publish(r, t.FEEDS["psb:permit"].ingress, permits)
    n_hist = 0
    for m in earlier:
        recs = [rec.payload for rec in contributions_burst(cfg, m)]
        n_hist += len(recs)
        await publish(r, t.FEEDS["hrss:contribution"].ingress, recs)
    await until_idle(r, args.partitions, services)
    setup_s = time.perf_counter() - t0
    print(f"setup: {len(permits):,} permit records and {n_hist:,} contributions in {setup_s:.1f} s "
          f"({(len(permits) + n_hist) / setup_s:,.0f}/s)", flush=True)
    return [rec.payload for m in burst_months for rec in contributions_burst(cfg, m)], holders


def user_url(port: int, user: str, passwords: dict[str, str]) -> str:
    return f"redis://{user}:{passwords[user]}@127.0.0.1:{port}/0"


async def main(args) -> None:
    passwords = {u: secrets.token_hex(16) for u in (*acl.REQUIRED, ADMIN)} if args.acl else None
    server, url, r = await private_redis(passwords)
    urls = {}
    if passwords:  # each service as its own ACL user; `permitbus up` as pb-up
        port = r.connection_pool.connection_kwargs["port"]
        urls = {service: user_url(port, user, passwords) for service, user in {**USER_OF_SERVICE, "up": "pb-up"}.items()}
    services = Services(url, args.partitions, args.batch, args.deciders, up=args.up, urls=urls,
                        null_cipher=args.null_cipher)
    print(f"services as {'their own ACL users' if passwords else 'an all-powerful user'}"
          + (", sealing nothing (--null-cipher)" if args.null_cipher else ""), flush=True)
    try:
        burst, holders = await populate(r, args, services)
        n_burst_months = args.burst_months

        # The month's file lands on the ingress stream (as a department's bulk export would), then
        # the services work it off: the time from their start to the last decision on the outlets.
        ingress = t.FEEDS["hrss:contribution"].ingress
        decisions_before = sum([await r.xlen(o.stream) for o in t.OUTLETS.values()])
        if services.up:
            # `permitbus up` runs on: the month's file is published while it works, by a publisher on
            # the same machine; the clock runs from the first record published to the last decision.
            if args.publisher == "redis-cli":
                protocol = Path(tempfile.mkdtemp(prefix="permitbus-bench-")) / "burst.resp"
                protocol.write_bytes(resp_xadds(ingress, burst))
            t0 = time.perf_counter()
            pids = services.pids()
            rss_before = {k: rss_kb(pid) for k, pid in pids.items()}
            cpu_before = {k: cpu_s(pid) for k, pid in pids.items()}
            publishing = asyncio.create_task(publish_pipe(url, str(protocol), len(burst)) if args.publisher == "redis-cli"
                                             else publish(r, ingress, burst))
        else:
            services.stop()
            t0 = time.perf_counter()
            await publish(r, ingress, burst)
            publish_rate = len(burst) / (time.perf_counter() - t0)
            read_before = (await r.xinfo_groups(ingress))[0]["entries-read"]
            services.start()
            # Start-up (imports, leases) is not part of the burst: the clock and the CPU counters
            # start when the normalizer has read its first batch of it.
            while (await r.xinfo_groups(ingress))[0]["entries-read"] == read_before:
                await asyncio.sleep(0.005)
            t0 = time.perf_counter()
            pids = services.pids()
            rss_before = {k: rss_kb(pid) for k, pid in pids.items()}
            cpu_before = {k: cpu_s(pid) for k, pid in pids.items()}
        redis_cpu_before = cpu_s(server.pid)
        own_before = cpu_s(os.getpid()), cpu_s(os.getpid(), children=True)  # this process; the publisher once reaped
        await r.config_resetstat()  # Redis's command costs during the burst (printed after it)
        forks_before = cpu_s(server.pid, children=True), (await r.info("persistence"))["aof_rewrites"]
        if services.up:
            await publishing
            publish_rate = len(burst) / (time.perf_counter() - t0)
        burst_s = await until_idle(r, args.partitions, services) - t0
        cpu = {k: cpu_s(pid) - cpu_before[k] for k, pid in pids.items()}
        cpu["redis"] = cpu_s(server.pid) - redis_cpu_before
        own = cpu_s(os.getpid()) - own_before[0], cpu_s(os.getpid(), children=True) - own_before[1]
        await wait_rewrite(r)
        cpu["redis AOF rewrites"] = cpu_s(server.pid, children=True) - forks_before[0]
        rewrites = (await r.info("persistence"))["aof_rewrites"] - forks_before[1]
        commands = await r.info("commandstats")
        decisions = sum([await r.xlen(o.stream) for o in t.OUTLETS.values()]) - decisions_before
        rate = len(burst) / burst_s
        rss_after = {k: rss_kb(pid) for k, pid in pids.items()}
        burst_samples = {k: list(v) for k, v in services.samples.items()}

        print(f"burst: {len(burst):,} contributions in {burst_s:.1f} s = {rate:,.0f}/s, {decisions:,} decisions; "
              f"published {f'meanwhile by {args.publisher}' if services.up else 'beforehand'} at {publish_rate:,.0f}/s; CPU s: "
              + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()) + f" ({rewrites} rewrites)"
              + (f"; publisher {own[1]:.1f}" if services.up else "") + f"; this benchmark's own polling {own[0]:.1f}",
              flush=True)
        print("redis commands during the burst (s; a function's commands count in it too): " + ", ".join(
            f"{name.removeprefix('cmdstat_')} {st['usec'] / 1e6:.2f} ({st['calls']:,} calls)"
            for name, st in sorted(commands.items(), key=lambda kv: -kv[1]["usec"])[:8]), flush=True)

        lat_cfg = SimConfig(people=max(200, args.latency_rate * int(args.latency_seconds) // 40), seed=99,
                            today=TODAY, months=2, malformed_rate=0, duplicate_rate=0)
        p50, p99, n_lat = await latency(r, lat_cfg, args.latency_rate, args.latency_seconds)
        print(f"latency: {n_lat:,} decisions, p50 {p50:.0f} ms, p99 {p99:.0f} ms", flush=True)

        used = (await r.info("memory"))["used_memory"]
        people_bytes = 0
        for p in range(args.partitions):
            for key in (t.people(p), t.archive(p), t.due(p), t.figures(p), t.decider_meta(p)):
                people_bytes += await r.memory_usage(key, samples=0) or 0
        people = sum([await r.hlen(t.people(p)) for p in range(args.partitions)])
        services.stop()

        sample = burst[: min(len(burst), args.baseline_records)]
        raw = await baseline_raw(url, burst)
        fs = await baseline_faststream(url, sample)
    finally:
        if any(p.poll() is None for p in services.procs.values()):
            services.stop()
        await r.aclose()
        server.terminate()
        server.wait()
    peak = {k: max(v or [0]) for k, v in services.samples.items()}
    rows = [
        ("burst records", f"{len(burst):,}", f"{n_burst_months} months x {holders:,} permit holders"),
        ("pipeline records/s", f"{rate:,.0f}", "ingress -> outlets, " + (
            f"`permitbus up --workers {args.deciders}`, the burst published meanwhile" if args.up
            else "separate processes, the burst published beforehand")),
        ("raw redis-py loop records/s", f"{raw:,.0f}", "XREADGROUP 1000 + msgspec + XACK"),
        ("FastStream per-message records/s", f"{fs:,.0f}", f"on {len(sample):,} of the same records"),
        ("pipeline / FastStream per-message", f"{rate / fs:.1f}x", "target >= 15x"),
        ("pipeline / raw loop", f"{rate / raw:.2f}x", "target >= 0.15x"),
        ("latency p50 / p99 (ms)", f"{p50:.0f} / {p99:.0f}", f"{args.latency_rate:,} records/s mixed, {n_lat:,} decisions"),
        ("Redis bytes per person", f"{people_bytes / max(people, 1):,.0f}",
         f"pictures+archives+due+figures of {people:,} people, {args.months} months; used_memory/person "
         f"{used / max(people, 1):,.0f}"),
        ("worker peak RSS (MB)", ", ".join(f"{k} {v / 1024:.0f}" for k, v in peak.items()),
         "burst start -> end: " + ", ".join(f"{k} {rss_before[k] / 1024:.0f}->{rss_after[k] / 1024:.0f}"
                                             for k in rss_before)),
    ]
    for name, series in burst_samples.items():
        if name.startswith("decider") and series:
            quarter = [series[min(len(series) - 1, len(series) * q // 4)] for q in (1, 2, 3, 4)]
            rows.append((f"{name} RSS through the burst (MB)", " / ".join(f"{kb / 1024:.0f}" for kb in quarter),
                         f"at 1/4, 1/2, 3/4 and the end of the burst ({len(series)} samples)"))
    print_table(rows)


def print_table(rows: list[tuple[str, str, str]]) -> None:
    """(measure, value, note) rows as an aligned table, after a blank line."""
    w0 = max(len(a) for a, _, _ in rows)
    w1 = max(len(b) for _, b, _ in rows)
    print()
    print(f"{'measure':<{w0}}  {'value':>{w1}}  note")
    print("-" * (w0 + w1 + 40))
    for a, b, c in rows:
        print(f"{a:<{w0}}  {b:>{w1}}  {c}")


def size_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--people", type=int, default=50_000)
    ap.add_argument("--months", type=int, default=24, help="months of contributions in all")
    ap.add_argument("--burst-months", type=int, default=7,
                    help="the last months, timed as one burst (7: ~540,000 records for 50,000 people)")
    ap.add_argument("--partitions", type=int, default=16)
    ap.add_argument("--batch", type=int, default=2500)
    ap.add_argument("--deciders", type=int, default=2, help="decider processes sharing the partitions")
    ap.add_argument("--up", action="store_true",
                    help="run the services as `permitbus up --workers DECIDERS` and publish the burst while it runs")
    ap.add_argument("--publisher", choices=("redis-cli", "python"), default="redis-cli",
                    help="with --up, who publishes the burst meanwhile: `redis-cli --pipe` (a bulk export's "
                         "tool) or a redis-py pipeline loop")


def cli(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    size_arguments(ap)
    ap.add_argument("--baseline-records", type=int, default=30_000, help="records for the slow baseline")
    ap.add_argument("--latency-rate", type=int, default=2000)
    ap.add_argument("--latency-seconds", type=float, default=10)
    ap.add_argument("--small", action="store_true", help="a quick run: 2,000 people, 6 months")
    ap.add_argument("--acl", action="store_true",
                    help="Redis with the ACL file of `permitbus acl` (default off); each service as its own user")
    ap.add_argument("--null-cipher", action="store_true",
                    help="measurement only: the services seal nothing (issue 11's encryption priced by difference)")
    args = ap.parse_args(argv)
    if args.small:
        args.people, args.months, args.burst_months = 2000, 6, 2
        args.baseline_records, args.latency_seconds = 3000, 3
    asyncio.run(main(args))


if __name__ == "__main__":
    cli()
