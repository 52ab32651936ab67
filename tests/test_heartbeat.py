"""The workers' probe (services/runtime/heartbeat.py): a real worker process keeps its heartbeat
file fresh and says when it is ready; frozen (SIGSTOP), the probe fails within its max age; Redis
unreachable, it is alive but not ready; stopped, the file is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from services.runtime import heartbeat
from services.runtime.localredis import free_port


def probe(path, *flags: str) -> subprocess.CompletedProcess:
    """The probe exactly as deploy/ runs it: a process of its own."""
    return subprocess.run([sys.executable, "-m", "services.runtime.heartbeat", str(path), *flags],
                          capture_output=True, text=True, timeout=30)


def start(redis_url: str, path, service: str = "scheduler") -> subprocess.Popen:
    env = {**os.environ, "PERMITBUS_REDIS_URL": redis_url, "PERMITBUS_HEARTBEAT_FILE": str(path),
           "PERMITBUS_PARTITIONS": "4", "PERMITBUS_LOG_LEVEL": "WARNING"}
    return subprocess.Popen([sys.executable, "-m", "services.cli", "run", service], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_for(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_check_states(tmp_path, monkeypatch):
    path = str(tmp_path / "hb")
    assert "no heartbeat file" in heartbeat.check(path, 30)
    heartbeat.write(path, heartbeat.WAITING)
    assert heartbeat.check(path, 30) is None  # alive while waiting for Redis
    assert "not ready: waiting" in heartbeat.check(path, 30, need_ready=True)
    heartbeat.write(path, heartbeat.READY)
    assert heartbeat.check(path, 30, need_ready=True) is None
    assert "old" in heartbeat.check(path, 30, now=time.time() + 31)
    assert heartbeat.main([path, "--ready"]) == 0
    os.utime(path, (time.time() - 60, time.time() - 60))
    assert heartbeat.main([path]) == 1
    monkeypatch.delenv("PERMITBUS_HEARTBEAT_FILE", raising=False)
    assert heartbeat.main([]) == 2
    monkeypatch.setenv("PERMITBUS_HEARTBEAT_FILE", path)
    assert heartbeat.main([]) == 1  # the default path is the worker's own setting


def test_worker_fresh_ready_frozen_and_stopped(r, redis_url, tmp_path):
    path = tmp_path / "hb"
    proc = start(redis_url, path)
    try:
        assert wait_for(lambda: probe(path, "--ready").returncode == 0), probe(path, "--ready").stderr
        assert path.read_text() == "ready\n"
        proc.send_signal(signal.SIGSTOP)  # a process that no longer runs its loop
        try:
            failed = wait_for(lambda: probe(path, "--max-age", "3").returncode == 1, timeout=10)
            assert failed and "old" in probe(path, "--max-age", "3").stderr
        finally:
            proc.send_signal(signal.SIGCONT)
        assert wait_for(lambda: probe(path, "--max-age", "3", "--ready").returncode == 0, timeout=10)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out.decode()
    assert not path.exists()  # stopping: not ready any more
    assert "no heartbeat file" in probe(path).stderr


def test_alive_but_not_ready_while_redis_is_unreachable(tmp_path):
    path = tmp_path / "hb"
    proc = start(f"redis://127.0.0.1:{free_port()}/0", path, service="relay")
    try:
        assert wait_for(lambda: path.exists() and probe(path).returncode == 0)
        not_ready = probe(path, "--ready")
        assert not_ready.returncode == 1 and "not ready: waiting" in not_ready.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out.decode()
    assert not path.exists()
