"""A worker's liveness for probes: a file the process rewrites every few seconds.

The workers (``permitbus run <service>``, ``permitbus up``) serve no HTTP, so a container's probe
cannot ask them. With ``PERMITBUS_HEARTBEAT_FILE`` set, ``serve`` (services/runtime/runner.py)
rewrites that file every ``INTERVAL_S`` from its event loop, with one word: ``waiting`` while Redis
is unreachable or not set up yet (``wait_for_redis``), ``ready`` once the services run. It removes
the file when it stops.

Invariant: while the process's event loop turns, the file is at most ``INTERVAL_S`` old (plus one
write). A loop blocked by code that never yields, a frozen or stopped process, leaves it to age;
``python -m services.runtime.heartbeat FILE --max-age S`` then exits 1 (the liveness probe of
deploy/k8s and deploy/compose.yaml), and with ``--ready`` also while the file says ``waiting`` (the
readiness probe). Redis being down does *not* fail liveness (the file says ``waiting`` and stays
fresh): restarting workers would not bring Redis back. A crashed service makes ``serve`` return and
the process exit, which its supervisor (Kubernetes, compose, systemd) sees without a probe.

This module imports nothing of the rest of permitbus, so the probe starts in a few tens of ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

INTERVAL_S = 2.0
READY, WAITING = "ready", "waiting"


def write(path: str, state: str) -> None:
    """Replace the file in one step (a probe never reads half a word)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(state + "\n")
    os.replace(tmp, path)


async def beat(path: str, ready: asyncio.Event, stop: asyncio.Event, interval: float = INTERVAL_S) -> None:
    """Rewrite ``path`` every ``interval`` until ``stop``; then remove it."""
    try:
        while not stop.is_set():
            write(path, READY if ready.is_set() else WAITING)
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except asyncio.TimeoutError:
                pass
    finally:
        remove(path)


def remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def check(path: str, max_age_s: float, need_ready: bool = False, now: float | None = None) -> str | None:
    """Why the probe fails, in one line; None when it passes."""
    try:
        st = os.stat(path)
        with open(path) as f:
            state = f.read().strip()
    except FileNotFoundError:
        return f"no heartbeat file {path} (not started, or stopping)"
    age = (time.time() if now is None else now) - st.st_mtime
    if age > max_age_s:
        return f"heartbeat {age:.0f} s old (more than {max_age_s:g} s): the process is not running its loop"
    if need_ready and state != READY:
        return f"not ready: {state or 'empty'} (Redis unreachable or not set up: see the log)"
    return None


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m services.runtime.heartbeat",
                                 description="exit 0 if a permitbus worker's heartbeat file is fresh")
    ap.add_argument("path", nargs="?", default=os.environ.get("PERMITBUS_HEARTBEAT_FILE"),
                    help="the file (default: $PERMITBUS_HEARTBEAT_FILE)")
    ap.add_argument("--max-age", type=float, default=30.0, help="seconds (default 30)")
    ap.add_argument("--ready", action="store_true", help="also fail while the worker is waiting for Redis")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.path:
        print("no heartbeat file: give a path or set PERMITBUS_HEARTBEAT_FILE", file=sys.stderr)
        return 2
    why = check(args.path, args.max_age, args.ready)
    if why:
        print(why, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
