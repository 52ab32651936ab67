"""``permitbus up``: the workers as processes, one per role and as many deciders as cores.

One Python process runs on one core (the GIL): ``serve`` with every service in one process went
through a contribution burst at a third of what the same services reach as separate processes.
So ``up`` starts ``permitbus run <service>`` children: the normalizers (one process; one active
reader per feed by its lease), ``workers`` deciders (they share the partitions among themselves by
leases, ``services/runtime/lease.py``: any number is correct, one per core is fast), the relay and
the scheduler. ``--single`` keeps the one-process mode (``serve``).

- A child that exits while the supervisor runs is started again after a back-off (0.5 s doubling
  to 30 s; back to 0.5 s once a child has run for a minute), so a crash loop does not spin.
  Nothing is lost meanwhile: what a dead worker held is taken over through the leases and the
  pending lists, as after a kill -9.
- SIGTERM or SIGINT is passed on to every child, which finishes the batch in hand (``serve``'s
  own stop); the supervisor exits 0 within 10 s when every child stopped cleanly, 1 when one had
  to be killed or failed. A second signal (a second or more later: the same signal sent to the
  process and to its group arrives twice) kills the children and exits 130. The children are in a
  process group of their own, so that only the supervisor signals them (under systemd:
  ``KillMode=mixed``).
- Children die with the supervisor (``PR_SET_PDEATHSIG`` on Linux): a supervisor killed with -9
  leaves no orphan worker behind to compete with the next one started.
- With ``PERMITBUS_HEARTBEAT_FILE`` (the probes of deploy/, services/runtime/heartbeat.py) each
  child beats into a file of its own (``<file>.<child>``) and the supervisor into the file itself:
  ``ready`` while every child's is fresh and ready. A child whose heartbeat has gone stale (its
  loop blocked, the process stopped) is killed and so started again.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field

from services.runtime import heartbeat

log = logging.getLogger("permitbus.up")

STOP_BUDGET_S = 9.5  # children stop within serve()'s 8 s; the rest is the supervisor's margin
BACKOFF_FIRST_S, BACKOFF_MAX_S, HEALTHY_AFTER_S = 0.5, 30.0, 60.0
STARTUP_GRACE_S = 60.0  # before a child's first heartbeat (its imports, on a busy machine)
DUPLICATE_SIGNAL_S = 1.0  # a second signal sooner than this is the first one again, not "kill now"


def default_workers() -> int:
    """Deciders: one per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def plan(workers: int) -> list[tuple[str, list[str]]]:
    """(name, arguments of ``permitbus``) for each child."""
    deciders = [(f"decider-{i + 1}", ["run", "decider"]) for i in range(workers)]
    return [("normalize", ["run", "normalize"]), *deciders, ("relay", ["run", "relay"]),
            ("scheduler", ["run", "scheduler"])]


@dataclass
class Backoff:
    """Seconds to wait before starting a child again, given how long its last run lasted."""

    delay: float = BACKOFF_FIRST_S

    def after(self, ran_s: float) -> float:
        if ran_s >= HEALTHY_AFTER_S:
            self.delay = BACKOFF_FIRST_S
        wait, self.delay = self.delay, min(BACKOFF_MAX_S, self.delay * 2)
        return wait


def _die_with(parent: int):
    """The child's set-up between fork and exec: SIGKILL when the supervisor dies. A supervisor
    killed after the fork but before ``prctl`` would leave the child an orphan holding the
    supervisor's stdout open (found by the kill -9 test at random moments): the child checks that
    its parent is still the supervisor once the signal is armed, and exits otherwise."""
    def arm() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            return
        if os.getppid() != parent:
            os._exit(1)
    return arm


@dataclass
class Child:
    name: str
    args: list[str]
    proc: asyncio.subprocess.Process | None = None
    started: float = 0.0
    starts: int = 0
    beaten: bool = False  # its heartbeat file has appeared since it was started
    backoff: Backoff = field(default_factory=Backoff)


class Supervisor:
    def __init__(self, workers: int, python: str = sys.executable, heartbeat_file: str | None = None,
                 stale_after_s: float = 30.0) -> None:
        self.children = [Child(name, args) for name, args in plan(workers)]
        self.python = python
        self.heartbeat_file = heartbeat_file
        self.stale_after_s = stale_after_s  # a child's heartbeat older than this: its loop is stuck
        self.stopping = asyncio.Event()
        self.signals = 0
        self.first_signal = 0.0

    def beat_file(self, child: Child) -> str | None:
        return f"{self.heartbeat_file}.{child.name}" if self.heartbeat_file else None

    async def start(self, child: Child) -> None:
        env = None
        if self.heartbeat_file:
            heartbeat.remove(self.beat_file(child))  # a dead child's last beat is not this one's
            env = {**os.environ, "PERMITBUS_HEARTBEAT_FILE": self.beat_file(child)}
        child.proc = await asyncio.create_subprocess_exec(
            self.python, "-m", "services.cli", *child.args, preexec_fn=_die_with(os.getpid()), env=env,
            process_group=0)  # a terminal's Ctrl-C reaches the supervisor, which passes it on once
        child.started, child.starts, child.beaten = time.monotonic(), child.starts + 1, False
        log.info("started %s (pid %d)", child.name, child.proc.pid)

    async def keep(self, child: Child) -> None:
        """Run ``child`` until the supervisor stops, starting it again whenever it exits."""
        while not self.stopping.is_set():
            await self.start(child)
            code = await child.proc.wait()
            if self.stopping.is_set():
                return
            wait = child.backoff.after(time.monotonic() - child.started)
            log.error("%s exited with status %d: starting it again in %.1f s", child.name, code, wait)
            try:
                await asyncio.wait_for(self.stopping.wait(), timeout=wait)
            except asyncio.TimeoutError:
                pass

    async def watch_heartbeats(self, interval: float = heartbeat.INTERVAL_S) -> None:
        """The supervisor's own heartbeat (ready when every child's is), and stuck children killed."""
        try:
            while not self.stopping.is_set():
                ready = True
                for c in self.children:
                    if c.proc is None or c.proc.returncode is not None:
                        ready = False
                        continue
                    path = self.beat_file(c)
                    stale = heartbeat.check(path, self.stale_after_s)
                    c.beaten = c.beaten or os.path.exists(path)
                    grace = self.stale_after_s if c.beaten else max(self.stale_after_s, STARTUP_GRACE_S)
                    if stale and time.monotonic() - c.started > grace:
                        log.error("%s: %s: killing it", c.name, stale)
                        c.proc.kill()  # keep() starts it again
                    ready = ready and heartbeat.check(path, self.stale_after_s, need_ready=True) is None
                heartbeat.write(self.heartbeat_file, heartbeat.READY if ready else heartbeat.WAITING)
                try:
                    await asyncio.wait_for(self.stopping.wait(), timeout=interval)
                except asyncio.TimeoutError:
                    pass
        finally:
            heartbeat.remove(self.heartbeat_file)

    def on_signal(self, signum: int) -> None:
        now = time.monotonic()
        if self.signals and now - self.first_signal < DUPLICATE_SIGNAL_S:
            return  # the same stop delivered twice (to the process and to its group)
        self.signals += 1
        self.first_signal = self.first_signal or now
        if self.signals > 1:
            log.warning("second signal: killing the workers")
            for c in self.live():
                c.proc.kill()
            os._exit(130)
        log.info("signal %s: stopping the workers", signal.Signals(signum).name)
        self.stopping.set()

    def live(self) -> list[Child]:
        return [c for c in self.children if c.proc is not None and c.proc.returncode is None]

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.on_signal, sig)
        keepers = [asyncio.create_task(self.keep(c), name=c.name) for c in self.children]
        if self.heartbeat_file:
            keepers.append(asyncio.create_task(self.watch_heartbeats(), name="heartbeat"))
        log.info("permitbus up: %s", ", ".join(c.name for c in self.children))
        await self.stopping.wait()
        deadline = time.monotonic() + STOP_BUDGET_S
        for c in self.live():
            c.proc.terminate()  # SIGTERM: the child finishes its batch in hand
        clean = True
        for c in self.children:
            if c.proc is None:
                continue
            try:
                code = await asyncio.wait_for(c.proc.wait(), timeout=max(0.1, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                log.error("%s did not stop in time: killed", c.name)
                c.proc.kill()
                code = await c.proc.wait()
                clean = False
            if code != 0 and code != -signal.SIGTERM:
                log.error("%s stopped with status %d", c.name, code)
                clean = False
        for k in keepers:
            k.cancel()
        await asyncio.gather(*keepers, return_exceptions=True)
        log.info("permitbus stopped")
        return 0 if clean else 1


def up(workers: int | None, heartbeat_file: str | None = None, stale_after_s: float = 30.0) -> int:
    return asyncio.run(Supervisor(workers or default_workers(), heartbeat_file=heartbeat_file,
                                  stale_after_s=stale_after_s).run())
