"""`permitbus up` as a separate process: raw records in, outlets out, a clean stop on SIGTERM."""

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest

from services.runtime import topology as t

from tests.conftest import publish, read_outlet
from tests.harness import drain
from tests.people import contribution, housing, make_id, months, permit, school


def start(redis_url: str, *args: str, **env) -> subprocess.Popen:
    full_env = {**os.environ, "PERMITBUS_REDIS_URL": redis_url, "PERMITBUS_TODAY": "2026-11-28",
                "PERMITBUS_PARTITIONS": "4", "PERMITBUS_LOG_LEVEL": "WARNING", **env}
    return subprocess.Popen([sys.executable, "-m", "services.cli", *(args or ("up",))], env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> tuple[int, float, str]:
    t0 = time.monotonic()
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=15)
    return proc.returncode, time.monotonic() - t0, out.decode()


async def test_up_end_to_end_and_sigterm(r, settings, redis_url):
    adult, settled, child = make_id("19880101"), make_id("19800101"), make_id("20190101")
    # published before the first start: groups are created at 0, so nothing is lost
    await publish(r, "psb:permit", permit("QF", adult, district="320117"))
    proc = start(redis_url, PERMITBUS_LOG_LEVEL="DEBUG")
    try:
        await publish(r, "hrss:contribution", *[contribution(adult, m, region="320500") for m in months("202503", 6)])
        await publish(r, "psb:permit", permit("LH", settled, district="320104", czsj="2026-05-01 10:00:00"))
        # Feeds are not ordered among themselves: had the school application been decided before
        # the contributions, it would (rightly) be decided twice, ineligible then eligible.
        await drain(r, settings, timeout=30)
        await publish(r, "housing:application", housing(settled, size=2, income=6000, district="320104",
                                                        applied="2026-06-01", no="ZF9"))
        await publish(r, "edu:application", school(adult, child, sqqx="320117", sqbh="JY9"), b"not json")
        await drain(r, settings, timeout=30)
        # the guardian's permit cancelled: the place offered is withdrawn (revoked), and so is every
        # roster entry the permit gave (docs/policy.md: education, health, temporary assistance)
        await publish(r, "psb:permit", permit("ZX", adult, czsj="2026-11-01 09:00:00"))
        await drain(r, settings, timeout=30)
    finally:
        code, took, out = stop(proc)
    assert code == 0, out
    assert took < 10
    assert [(d["subject_id"], d["status"]) for d in await read_outlet(r, "outlet:psb")] == [
        (adult, "eligible"), (adult, "revoked")]
    assert [(d["subject_id"], d["application_id"], d["status"], d["reasons"])
            for d in await read_outlet(r, "outlet:edu")] == [
        (child, "JY9", "eligible", []), (child, "JY9", "revoked", ["GUARDIAN_NO_VALID_PERMIT"])]
    civil = [(d["subject_id"], d["status"]) for d in await read_outlet(r, "outlet:civil")]
    assert sorted(civil[:2]) == sorted([(adult, "eligible"), (settled, "eligible")])
    assert civil[2:] == [(adult, "revoked")]
    assert await read_outlet(r, "outlet:hrss") == []  # worked 2025-03..08: no recent employment on D
    assert [(d["application_id"], d["status"]) for d in await read_outlet(r, "outlet:housing")] == [
        ("ZF9", "eligible")]
    assert {d["subject_id"] for d in await read_outlet(r, "outlet:health")} == {adult, settled}
    assert [d["subject_id"] for d in await read_outlet(r, "outlet:health") if d["status"] == "revoked"] == [adult]
    assert [d["subject_id"] for d in await read_outlet(r, "outlet:medins")] == [settled]
    q = await r.xrange("quarantine:edu:application")
    assert [(f[b"payload"], f[b"reason"]) for _, f in q] == [(b"not json", b"INVALID_JSON")]
    assert "permitbus up" in out  # the log was captured ...
    for person in (adult, settled, child):
        assert person not in out  # ... and never shows a full ID number


async def test_second_signal_exits_at_once(r, redis_url):
    proc = start(redis_url)
    await asyncio.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=10)
    assert proc.returncode in (0, 130)


@pytest.mark.parametrize("args", [("up",), ("up", "--single")])
async def test_a_stop_delivered_twice_at_once_is_one_stop(r, redis_url, args):
    """A signal sent to the process and to its group (a terminal's Ctrl-C, `timeout`, systemd's
    control-group kill) arrives twice: a clean stop, not the second signal's exit at once."""
    proc = start(redis_url, *args, PERMITBUS_LOG_LEVEL="INFO")
    for _ in range(300):
        await asyncio.sleep(0.1)
        if await r.exists(*(t.lease("normalize", f) for f in t.FEEDS)) == len(t.FEEDS):
            break  # every worker has started (the normalizers hold their feeds)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out.decode()[-2000:]
    assert b"second signal" not in out


async def test_run_one_service_alone(r, settings, redis_url):
    person = make_id()
    await publish(r, "psb:permit", permit("QF", person, district="320102"))
    procs = [start(redis_url, "run", "normalize"), start(redis_url, "run", "decider"),
             start(redis_url, "run", "relay", "--partitions", "0-3"), start(redis_url, "run", "scheduler")]
    try:
        await drain(r, settings, timeout=30)
        assert [d["subject_id"] for d in await read_outlet(r, "outlet:health")] == [person]
    finally:
        results = [stop(p) for p in procs]
    assert [c for c, _, _ in results] == [0, 0, 0, 0], [o for _, _, o in results]
