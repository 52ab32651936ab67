"""Logging set-up: one line per Redis outage, not one per attempt, also for FastStream's readers."""

from __future__ import annotations

import logging
import time


class OncePerOutage(logging.Filter):
    """FastStream logs "Message fetch error" with a traceback every 5 s while Redis is away;
    let the first through (as a one-line warning) and drop repeats for ``window_s``."""

    def __init__(self, window_s: float = 300.0) -> None:
        super().__init__()
        self.window_s = window_s
        self.last: float | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if "Message fetch error" not in record.getMessage():
            return True
        now = time.monotonic()
        if self.last is not None and now - self.last < self.window_s:
            return False
        self.last = now
        exc = record.exc_info[1] if record.exc_info else None
        record.msg = f"ingress reader: Redis unreachable ({type(exc).__name__ if exc else 'error'}); retrying"
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def setup(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    once = OncePerOutage()
    for name in ("permitbus.faststream", "faststream", "faststream.access.redis", "faststream.access"):
        logging.getLogger(name).addFilter(once)
        if logging.getLevelName(level) > logging.DEBUG and name.startswith("faststream"):
            logging.getLogger(name).setLevel(logging.WARNING)  # its per-batch lines are noise at INFO
