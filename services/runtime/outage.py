"""Redis going away, or saying no: log once per outage (not once per attempt), back off, carry on
when it returns.

An outage is anything that says "not now" about Redis rather than about the record in hand: the
connection failing or timing out, Redis still loading its data (``LOADING``), out of memory under
``noeviction`` (``OOM``, the setting deploy/redis/redis.conf recommends), a replica refusing writes
(``READONLY``), a primary that lost its link (``MASTERDOWN``), a cluster reconfiguring
(``CLUSTERDOWN``, ``TRYAGAIN``, ``UNBLOCKED``, too many redirections), a script running too long (``BUSY``). None of them is the
record's fault: the work is retried from where it stood, never dead-lettered, never a reason to
exit. The effect of every step is idempotent or guarded by a stored position, so a step that
half went through before Redis said no is simply done again.
"""

from __future__ import annotations

import logging
import random
import re
import time

from redis._parsers.base import BaseParser
from redis.exceptions import (ClusterDownError, ClusterError, NoPermissionError, OutOfMemoryError, ReadOnlyError,
                              ResponseError, SlotNotCoveredError, TryAgainError)
from redis.exceptions import ConnectionError as RConnectionError
from redis.exceptions import TimeoutError as RTimeoutError


class RedisBusyError(ResponseError):
    """``BUSY``: Redis is running a script or function past ``busy-reply-threshold``."""


# redis-py maps LOADING, OOM, READONLY, MASTERDOWN, CLUSTERDOWN and TRYAGAIN to classes of their
# own but leaves BUSY a plain ResponseError; give it one, so that one tuple of classes says
# "outage" (the parsers read this table, hiredis's included). BUSYGROUP is another code.
BaseParser.EXCEPTION_CLASSES.setdefault("BUSY", RedisBusyError)


class RedisUnblockedError(ResponseError):
    """``UNBLOCKED``: a blocking read ended because its node changed role (a cluster primary
    became a replica in a failover) or its slot moved away; read again, from the new owner."""


BaseParser.EXCEPTION_CLASSES.setdefault("UNBLOCKED", RedisUnblockedError)

UNREACHABLE: tuple[type[BaseException], ...] = (RConnectionError, RTimeoutError, OSError)  # LOADING is a ConnectionError
# A cluster client gives up on a command redirected too often (ClusterError, "TTL exhausted") or
# on a slot no node serves for the moment (SlotNotCoveredError): a reconfiguration, waited out.
REFUSING: tuple[type[BaseException], ...] = (OutOfMemoryError, ReadOnlyError, ClusterDownError, TryAgainError,
                                             RedisBusyError, RedisUnblockedError, ClusterError,
                                             SlotNotCoveredError)  # MasterDownError is a ClusterDownError
REDIS_OUTAGE = UNREACHABLE + REFUSING


class Outage:
    def __init__(self, log: logging.Logger, who: str, cap_s: float = 5.0) -> None:
        self.log = log
        self.who = who
        self.cap_s = cap_s
        self.since: float | None = None
        self.attempts = 0

    def failed(self, exc: BaseException) -> None:
        if self.since is None:
            self.since = time.monotonic()
            if isinstance(exc, REFUSING):
                self.log.warning("%s: Redis refuses the work (%s: %s); retrying with backoff",
                                 self.who, exc.__class__.__name__, _first_line(exc))
            else:
                self.log.warning("%s: Redis unreachable (%s); retrying with backoff", self.who,
                                 exc.__class__.__name__)
        self.attempts += 1

    def ok(self) -> None:
        if self.since is not None:
            self.log.warning(
                "%s: Redis back after %.1f s and %d attempts", self.who, time.monotonic() - self.since, self.attempts
            )
            self.since = None
            self.attempts = 0

    def backoff(self) -> float:
        return min(self.cap_s, 0.05 * 2 ** min(self.attempts, 10)) * (0.5 + random.random() / 2)


def _first_line(exc: BaseException) -> str:
    """Redis's own words, without a pipeline's echo of the command (which may hold a payload)."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text.rsplit("caused error: ", 1)[-1].strip("(),'\"")[:120]


_PIPELINE_ECHO = re.compile(r"Command # \d+ \(([^\s)]+)(?: ([^\s)]+))?(?: ([^\s)]+))?(?: ([^\s)]+))?")


def acl_refusal(exc: BaseException) -> str | None:
    """What the ACL refused, as "<command> <key>: <Redis's words>", or None if ``exc`` is not an
    ACL refusal. A pipeline's echo of the command is cut to its name and first key: the rest may
    hold a payload."""
    text = str(exc)
    first = _first_line(exc)
    if isinstance(exc, NoPermissionError) or "NOPERM" in text:
        pass
    elif "user executing the script can't" not in text:  # a refusal inside a Lua function (Redis 7.0)
        return None
    m = _PIPELINE_ECHO.search(text)
    if not m:
        return first
    cmd, a, b, c = m.groups()
    if cmd.upper() in ("FCALL", "FCALL_RO") and c:
        return f"{cmd.upper()} {a} on key {c}: {first}"
    return f"{cmd.upper()} on key {a}: {first}" if a else f"{cmd.upper()}: {first}"
