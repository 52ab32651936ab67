"""Logging set-up: one line per Redis outage, not one per attempt, also for FastStream's readers;
``PERMITBUS_LOG_FORMAT=json`` for logs an operator can search (``JsonLines``)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import time

from schemas.ids import mask


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


# the service a logger belongs to, by its name
SERVICES = {"permitbus.ingress": "normalize", "permitbus.faststream": "normalize", "faststream": "normalize",
            "permitbus.decider": "decide", "permitbus.relay": "relay", "permitbus.scheduler": "schedule",
            "permitbus.api": "api", "permitbus.lease": "lease", "permitbus.runner": "runner",
            "permitbus.setup": "setup", "permitbus.ops": "ops", "permitbus.follow": "follow"}
_ID = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")
_FEED = re.compile(r"\b(?:ingress|quarantine|normalize):?\s?([a-z]+:[a-z]+)\b")
_PARTITION = re.compile(r"\bpartition (\d+)\b|\{p(\d+)\}")
_TARGET = re.compile(r"\brelay ((?:outlet|quarantine|dlq):[a-z:]+[a-z])\b")


def masked(text: str) -> str:
    """``text`` with every ID number masked (a line that slipped one through stays searchable)."""
    return _ID.sub(lambda m: mask(m.group()), text)


class JsonLines(logging.Formatter):
    """One JSON object a line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``,
    ``service``, and ``stage``, ``feed``, ``partition`` where the line names them (the loggers'
    messages say ``ingress:<feed>``, ``partition N``, ``relay <target>``; a record's ``extra`` of
    the same names wins). ID numbers are masked in the message and in tracebacks."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        out = {"time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
               "level": record.levelname, "logger": record.name, "message": masked(message)}
        service = getattr(record, "service", None) or _service(record.name)
        if service:
            out["service"] = service
        feed = getattr(record, "feed", None) or _first(_FEED, message)
        partition = getattr(record, "partition", None)
        if partition is None:
            partition = _first(_PARTITION, message)
        target = _first(_TARGET, message)
        stage = getattr(record, "stage", None)
        if stage is None:
            stage = {"normalize": f"normalize:{feed}" if feed else None, "decide": "decide",
                     "relay": f"relay:{target}" if target else None, "schedule": "schedule"}.get(service or "")
        if stage:
            out["stage"] = stage
        if feed:
            out["feed"] = feed
        if partition is not None:
            out["partition"] = int(partition)
        if record.exc_info:
            out["error"] = masked(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False)


def _service(logger: str) -> str | None:
    for prefix, service in SERVICES.items():
        if logger == prefix or logger.startswith(prefix + "."):
            return service
    return None


def _first(pattern: re.Pattern, text: str) -> str | None:
    m = pattern.search(text)
    if not m:
        return None
    return next(g for g in m.groups() if g is not None)


def setup(level: str, fmt: str | None = None) -> None:
    """``fmt``: ``json`` for one JSON object a line (default: ``PERMITBUS_LOG_FORMAT``, else text)."""
    fmt = (fmt or os.environ.get("PERMITBUS_LOG_FORMAT") or "text").lower()
    if fmt == "json":
        handler = logging.StreamHandler()
        handler.setFormatter(JsonLines())
        logging.basicConfig(level=level, handlers=[handler], force=True)
    else:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    once = OncePerOutage()
    for name in ("permitbus.faststream", "faststream", "faststream.access.redis", "faststream.access"):
        logging.getLogger(name).addFilter(once)
        if logging.getLevelName(level) > logging.DEBUG and name.startswith("faststream"):
            logging.getLogger(name).setLevel(logging.WARNING)  # its per-batch lines are noise at INFO
