"""`permitbus up` as a supervisor of worker processes: one per role and N deciders, a killed
worker started again, SIGTERM passed on (exit 0 within 10 s), no orphan after a kill -9."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import time

import pytest

from services.runtime.supervisor import BACKOFF_MAX_S, Backoff, plan
from tests.conftest import publish, read_outlet
from tests.harness import drain
from tests.people import make_id, permit
from tests.test_process import start, stop


def children(pid: int) -> dict[int, str]:
    """Live child processes of ``pid``: pid -> the role they run (``run <service>``)."""
    out = {}
    for d in pathlib.Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != pid or stat.rsplit(")", 1)[1].split()[0] == "Z":
                continue
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if b"run" in argv:
            out[int(d.name)] = argv[argv.index(b"run") + 1].decode()
    return out


def alive(pid: int) -> bool:
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def until(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError("timed out")


def n_children(pid: int, n: int, gone: int | None = None):
    """A predicate for ``until``: the children of ``pid`` once there are ``n`` (``gone`` not among them)."""
    def check():
        kids = children(pid)
        return kids if len(kids) == n and gone not in kids else None
    return check


def roles(kids: dict[int, str]) -> list[str]:
    return sorted(kids.values())


def test_plan_and_backoff():
    assert [name for name, _ in plan(2)] == ["normalize", "decider-1", "decider-2", "relay", "scheduler"]
    b = Backoff()
    waits = [b.after(0.1) for _ in range(10)]
    assert waits[:4] == [0.5, 1.0, 2.0, 4.0] and waits[-1] == BACKOFF_MAX_S  # a crash loop slows down
    assert b.after(120.0) == 0.5  # a worker that ran a minute before it died starts again at once


async def test_up_runs_a_process_per_role_restarts_a_killed_one_and_stops_on_sigterm(r, settings, redis_url):
    proc = start(redis_url, "up", "--workers", "3", PERMITBUS_LOG_LEVEL="INFO")
    try:
        kids = await until(n_children(proc.pid, 6))
        assert roles(kids) == ["decider", "decider", "decider", "normalize", "relay", "scheduler"]
        a = make_id("19880101")
        await publish(r, "psb:permit", permit("QF", a, district="320104"))
        await drain(r, settings, timeout=30)
        assert [d["subject_id"] for d in await read_outlet(r, "outlet:health")] == [a]

        victim = next(pid for pid, role in kids.items() if role == "decider")
        os.kill(victim, signal.SIGKILL)
        again = await until(n_children(proc.pid, 6, gone=victim))
        assert roles(again) == roles(kids)
        b = make_id("19900101")  # the pipeline goes on with the new decider
        await publish(r, "psb:permit", permit("QF", b, district="320105"))
        await drain(r, settings, timeout=30)
        assert [d["subject_id"] for d in await read_outlet(r, "outlet:health")] == [a, b]
        last = children(proc.pid)
    finally:
        code, took, out = stop(proc)
    assert code == 0, out
    assert took < 10
    assert not any(alive(pid) for pid in last)  # every worker stopped with it
    assert "decider-" in out and "exited with status -9: starting it again" in out


async def test_a_supervisor_killed_with_minus_9_leaves_no_worker_behind(redis_url):
    proc = start(redis_url, "up", "--workers", "1")
    try:
        kids = await until(n_children(proc.pid, 4))
    finally:
        code, _, _ = stop(proc, signal.SIGKILL)
    assert code == -signal.SIGKILL
    await until(lambda: not any(alive(pid) for pid in kids), timeout=5)


async def test_up_single_runs_everything_in_one_process(r, settings, redis_url):
    proc = start(redis_url, "up", "--single")
    try:
        a = make_id("19880101")
        await publish(r, "psb:permit", permit("QF", a, district="320104"))
        await drain(r, settings, timeout=30)
        assert [d["subject_id"] for d in await read_outlet(r, "outlet:health")] == [a]
        assert children(proc.pid) == {}
    finally:
        code, took, out = stop(proc)
    assert code == 0 and took < 10, out


@pytest.mark.parametrize("args", [("--workers", "0"), ("--workers", "-2")])
def test_up_refuses_no_deciders(redis_url, args):
    proc = start(redis_url, "up", *args)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 2 and b"--workers must be at least 1" in out


def test_up_without_keys_refuses_once_before_starting_workers(redis_url):
    proc = start(redis_url, "up", PERMITBUS_INSECURE_DEV_KEYS="0")
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode != 0 and b"PERMITBUS_PSEUDONYM_KEY" in out
    assert b"started" not in out


async def test_up_heartbeat_ready_when_every_worker_is_and_a_stuck_worker_is_restarted(r, settings, redis_url, tmp_path):
    from services.runtime import heartbeat

    beat = tmp_path / "hb"
    proc = start(redis_url, "up", "--workers", "1", PERMITBUS_HEARTBEAT_FILE=str(beat),
                 PERMITBUS_HEARTBEAT_STALE_S="4", PERMITBUS_LOG_LEVEL="INFO")
    try:
        kids = await until(n_children(proc.pid, 4))
        await until(lambda: heartbeat.check(str(beat), 30, need_ready=True) is None, timeout=30)
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "hb", "hb.decider-1", "hb.normalize", "hb.relay", "hb.scheduler"]  # one file a worker
        stuck = next(pid for pid, role in kids.items() if role == "relay")
        os.kill(stuck, signal.SIGSTOP)  # its loop stops: its heartbeat ages
        await until(lambda: heartbeat.check(str(beat), 30, need_ready=True) is not None, timeout=15)
        await until(n_children(proc.pid, 4, gone=stuck), timeout=20)  # killed and started again
        await until(lambda: heartbeat.check(str(beat), 30, need_ready=True) is None, timeout=30)
    finally:
        code, took, out = stop(proc)
    assert code == 0, out
    assert "relay: heartbeat" in out and "killing it" in out
    assert not beat.exists()  # removed on the way out


@pytest.mark.parametrize("parent, survives", [("os.getppid()", True), ("1", False)])
def test_a_worker_whose_supervisor_died_before_it_armed_its_death_signal_exits(parent, survives):
    """The child's set-up between fork and exec: once PR_SET_PDEATHSIG is armed, a parent that is
    no longer the supervisor (it was killed in between) makes the child exit instead of living on
    as an orphan holding the supervisor's output open."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", "import os\nfrom services.runtime.supervisor import _die_with\n"
                           f"_die_with({parent})()\nprint('alive')"], capture_output=True, timeout=30)
    assert (proc.returncode == 0 and b"alive" in proc.stdout) is survives, proc
