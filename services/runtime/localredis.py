"""A private ``redis-server`` for the demo, tests and benchmarks when none answers.

Started from PATH on a free loopback port with a temporary directory, stopped afterwards.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from urllib.parse import urlparse

NO_REDIS_HELP = (
    "No Redis answers at {url} and there is no redis-server on PATH to start one.\n"
    "Install Redis 7 (Debian/Ubuntu: `apt-get install redis-server`), or point PERMITBUS_REDIS_URL "
    "at a Redis 7+ server."
)


class NoRedis(RuntimeError):
    pass


def answers(url: str, timeout: float = 1.0) -> bool:
    u = urlparse(url)
    try:
        with socket.create_connection((u.hostname or "127.0.0.1", u.port or 6379), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            reply = s.recv(64)
            return reply.startswith(b"+PONG") or reply.startswith(b"-NOAUTH")
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_redis(port: int, workdir: str, *, appendonly: bool = False,
                config: str | None = None) -> subprocess.Popen:
    """Start redis-server on 127.0.0.1:port in workdir and wait until it answers. With ``config``
    (a redis.conf), its settings apply except where, bind, persistence mode and logging are given
    here."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise NoRedis(NO_REDIS_HELP.format(url="(private)"))
    args = [exe, *([config] if config else []),
            "--port", str(port), "--bind", "127.0.0.1", "--dir", workdir, "--save", "",
            "--appendonly", "yes" if appendonly else "no", "--appendfsync", "everysec",
            "--maxmemory-policy", "noeviction", "--daemonize", "no", "--logfile", "redis.log"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not answers(url, 0.2):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise NoRedis(f"redis-server did not start (exit {proc.poll()}); see {workdir}/redis.log")
        time.sleep(0.05)
    return proc


@contextlib.contextmanager
def private_redis(*, appendonly: bool = False, port: int | None = None,
                  directory: str | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start redis-server; yield (url, process); stop it and remove its directory afterwards."""
    port = port or free_port()
    tmp = None if directory else tempfile.TemporaryDirectory(prefix="permitbus-redis-")
    workdir = directory or tmp.name  # type: ignore[union-attr]
    try:
        proc = spawn_redis(port, workdir, appendonly=appendonly)
    except BaseException:
        if tmp is not None:
            tmp.cleanup()
        raise
    url = f"redis://127.0.0.1:{port}/0"
    try:
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        if tmp is not None:
            tmp.cleanup()


@contextlib.contextmanager
def redis_for(url: str) -> Iterator[tuple[str, bool]]:
    """The Redis at ``url`` if it answers, else a private one. Yields (url, private?)."""
    if answers(url):
        yield url, False
        return
    with private_redis() as (private_url, _):
        yield private_url, True
