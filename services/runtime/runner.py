"""Runs services in one process: ``permitbus up`` (all) or ``permitbus run <service>`` (one).

Stops cleanly on SIGTERM/SIGINT: the normalizers finish and acknowledge the batch in hand, the
decider and relay finish their current atomic step, and the process exits 0 within 10 s. A
second signal (a second or more after the first: one sent to the process and to its group
arrives twice) exits at once (status 130).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from faststream.redis import RedisBroker
from redis.exceptions import ResponseError

from services.decider.worker import Decider
from services.ingress.service import Normalizer, subscribe
from services.outlets.relay import Relay
from services.rules import params
from services.runtime import heartbeat
from services.runtime import topology as t
from services.runtime.clock import Clock
from services.runtime.outage import REDIS_OUTAGE, Outage, acl_refusal
from services.runtime.redis import client, cluster_broker_class, is_cluster, url_of
from services.runtime.settings import Settings
from services.runtime.setup import missing
from services.scheduler.service import Scheduler

log = logging.getLogger("permitbus")
SERVICES = ("normalize", "decider", "relay", "scheduler")
STOP_BUDGET_S = 8.0
FASTSTREAM_LOGGER = "permitbus.faststream"  # FastStream logs through our configuration, not its own


@dataclass
class Running:
    """What a run started, for progress displays and tests."""

    normalizers: list[Normalizer] = field(default_factory=list)
    decider: Decider | None = None
    relay: Relay | None = None
    scheduler: Scheduler | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    stop: asyncio.Event = field(default_factory=asyncio.Event)


def tune_gc() -> None:
    """The hot loops allocate many short-lived objects per record; CPython's default gen-0
    threshold (700) runs the cyclic collector thousands of times a second over them. Measured on a
    114,304-event burst: decider CPU 2.33 s -> 1.82 s. Objects surviving start-up are frozen."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)


def consumer_name(settings: Settings) -> str:
    return settings.consumer or f"{socket.gethostname()}-{os.getpid()}"


async def wait_for_redis(r, stop: asyncio.Event, services: Iterable[str] = SERVICES) -> bool:
    """Wait until Redis answers and holds what these services need: this release's functions and,
    for normalizers, the consumer groups (done by ``permitbus setup``, or here when the user may).

    A Redis that is unreachable, still loading, or refusing writes (out of memory under
    ``noeviction``: FUNCTION LOAD and XGROUP CREATE are refused then) is waited for, with one
    line when the wait starts and one when it ends; so is a Redis not set up yet, saying what is
    missing once. False if a stop came first."""
    outage = Outage(log, "start-up")
    said = None
    while not stop.is_set():
        try:
            await r.ping()
            lacking = await missing(r, groups="normalize" in services)
            if lacking is None:
                outage.ok()
                if said:
                    log.warning("set-up done: starting")
                return True
            if lacking != said:
                log.warning("waiting: %s", lacking)
                said = lacking
            outage.attempts += 1  # back off as for an outage, without its log lines
        except REDIS_OUTAGE as exc:
            outage.failed(exc)
        except ResponseError as exc:  # this user may not even look (NOPERM): say which right, wait
            refusal = acl_refusal(exc)
            if refusal is None:
                raise
            if refusal != said:
                log.error("waiting: Redis refuses this service's user: %s (is its ACL from `permitbus acl` of "
                          "this release?)", refusal)
                said = refusal
            outage.attempts += 1
        try:
            await asyncio.wait_for(stop.wait(), timeout=outage.backoff())
        except asyncio.TimeoutError:
            pass
    return False


async def serve(
    settings: Settings,
    services: Iterable[str] = SERVICES,
    *,
    feeds: Iterable[str] | None = None,
    partitions: Iterable[int] | None = None,
    clock: Clock | None = None,
    running: Running | None = None,
    handle_signals: bool = True,
) -> int:
    services = set(services)
    unknown = services - set(SERVICES)
    if unknown:
        raise ValueError(f"unknown services: {', '.join(sorted(unknown))}")
    settings.require_keys()  # a deployment without its own keys does not start (SystemExit, one line)
    running = running or Running()
    clock = clock or Clock(settings.today)
    # the dated parameters read and checked before any record is: a bad file stops the start (SystemExit, one line)
    params.start(settings.params_dir, clock.today())
    tune_gc()
    loop = asyncio.get_running_loop()
    if handle_signals:
        first: list[float] = []

        def on_signal(signum: int) -> None:
            if first and time.monotonic() - first[0] < 1.0:
                return  # the same stop delivered twice (to this process and to its group)
            first.append(time.monotonic())
            if running.stop.is_set():
                log.warning("second signal: exiting at once")
                os._exit(130)
            log.info("signal %s: finishing the work in hand", signal.Signals(signum).name)
            running.stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig)

    beat = (asyncio.create_task(heartbeat.beat(settings.heartbeat_file, running.ready, running.stop),
                                name="heartbeat") if settings.heartbeat_file else None)
    try:
        return await _serve(settings, services, feeds, partitions, clock, running)
    finally:
        if beat is not None:
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)  # removes the file


async def _serve(settings: Settings, services: set[str], feeds: Iterable[str] | None,
                 partitions: Iterable[int] | None, clock: Clock, running: Running) -> int:
    r = client(settings)
    if not await wait_for_redis(r, running.stop, services):
        await r.aclose()
        return 0
    part_list = list(partitions) if partitions is not None else None

    broker: RedisBroker | None = None
    tasks: list[asyncio.Task] = []
    workers: list = []
    if "normalize" in services:
        # A normalizer reads one ingress stream (one slot): FastStream's cluster broker reads it
        # from whichever node holds it (docs/contract.md, "Running").
        make = cluster_broker_class() if is_cluster(r) else RedisBroker
        broker = make(url_of(settings), graceful_timeout=STOP_BUDGET_S - 2, log_level=logging.DEBUG,
                      logger=logging.getLogger(FASTSTREAM_LOGGER))
        for feed in feeds or t.FEEDS:
            n = Normalizer(r, settings, feed, consumer_name(settings))
            sub = subscribe(broker, n)
            running.normalizers.append(n)
            workers.append(n)
            tasks.append(asyncio.create_task(n.supervise(sub), name=f"normalize {feed}"))
    if "decider" in services:
        running.decider = Decider(r, settings, clock, part_list, owner=consumer_name(settings))
        workers.append(running.decider)
        tasks.append(asyncio.create_task(running.decider.run(), name="decider"))
    if "relay" in services:
        running.relay = Relay(r, settings, part_list, owner=consumer_name(settings))
        workers.append(running.relay)
        tasks.append(asyncio.create_task(running.relay.run(), name="relay"))
    if "scheduler" in services:
        running.scheduler = Scheduler(r, settings, clock)
        workers.append(running.scheduler)
        tasks.append(asyncio.create_task(running.scheduler.run(), name="scheduler"))
    if broker is not None:
        await broker.connect()  # subscribers start once their feed's lease is held
    log.info("permitbus up: %s", ", ".join(s for s in SERVICES if s in services))
    running.ready.set()

    stop_wait = asyncio.create_task(running.stop.wait())
    await asyncio.wait([stop_wait, *tasks], return_when=asyncio.FIRST_COMPLETED)
    crashed = [task for task in tasks if task.done() and task.exception()]
    for task in crashed:
        log.error("service %s stopped: %r", task.get_name(), task.exception(), exc_info=task.exception())
    for w in workers:
        w.stop()  # normalizers stop their subscriber: the batch in hand is finished and acknowledged
    done, pending = await asyncio.wait(tasks, timeout=STOP_BUDGET_S / 2) if tasks else (set(), set())
    for task in pending:
        task.cancel()
    stop_wait.cancel()
    if broker is not None:
        await broker.stop()
    await r.aclose()
    log.info("permitbus stopped")
    return 1 if crashed else 0
