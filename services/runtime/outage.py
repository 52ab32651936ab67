"""Redis going away: log once per outage (not once per attempt), back off, carry on when it returns."""

from __future__ import annotations

import logging
import random
import time


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
            self.log.warning("%s: Redis unreachable (%s); retrying with backoff", self.who, exc.__class__.__name__)
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
