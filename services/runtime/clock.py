"""The evaluation date D: ``PERMITBUS_TODAY`` when set, otherwise today in Asia/Shanghai.

Injectable: services take a ``Clock``; tests pass a ``ManualClock`` and move it.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Clock:
    def __init__(self, fixed: dt.date | None = None) -> None:
        self._fixed = fixed

    def today(self) -> dt.date:
        if self._fixed is not None:
            return self._fixed
        return dt.datetime.now(SHANGHAI).date()

    def now(self) -> dt.datetime:
        return dt.datetime.now(SHANGHAI)


class ManualClock(Clock):
    def __init__(self, day: dt.date) -> None:
        super().__init__(day)

    def set(self, day: dt.date) -> None:
        self._fixed = day

    def advance(self, days: int = 1) -> dt.date:
        assert self._fixed is not None
        self._fixed = self._fixed + dt.timedelta(days=days)
        return self._fixed
