"""Rules whose shape changes on a date: an entitlement's formulas, each from its date.

Where only a figure changes, a dated parameter says so (``services/rules/params.py``). Where the
rule itself changes (a condition added, dropped or reworded) on a date, the rule module keeps
every version, as OpenFisca keeps ``formula``, ``formula_2015_12``, ``formula_2016_12``: the base
formula applies to any date before the first dated one, each dated one from its date on, and the
module's ``decide`` runs the one in force (``Formulas.at``) on the day the rule is judged on: D for
a roster rule, the date of application for an application (as for the parameters, docs/policy.md).
While a rule has one formula its ``decide`` is that formula itself, with no dispatch on the hot
path (BENCHMARKS.md); adding a dated formula rebinds the module's ``decide`` to a dispatcher.

Each formula comes with the conditions it checks (``services/rules/why.py``), so that an
explanation lists the conditions of the version that decided, and the situation tests' coverage
counts every version's conditions (tests/test_situations.py).
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from services.rules.why import Condition


@dataclass(frozen=True)
class Formula:
    since: dt.date | None  # None: the base formula, in force before any dated one
    decide: Callable
    conditions: tuple[Condition, ...]

    @property
    def name(self) -> str:
        return "formula" if self.since is None else f"formula_{self.since:%Y_%m}"


class Formulas:
    """The formulas of one entitlement, by the date from which each applies."""

    def __init__(self, entitlement: str, decide: Callable, conditions: tuple[Condition, ...], module: str,
                 day_of: Callable[..., dt.date] = lambda pic, day, *_: day) -> None:
        """``module``: the rule's module, whose ``decide`` this keeps bound to the formula(s) in force;
        ``day_of``: the day a call of ``decide`` is dispatched on, from its arguments (default: D)."""
        self.entitlement = entitlement
        self.base = Formula(None, decide, conditions)
        self.dated: list[Formula] = []
        self._dates: list[dt.date] = []
        self.module = module
        self.day_of = day_of

    def add(self, since: dt.date, decide: Callable, conditions: tuple[Condition, ...]) -> Formula:
        """A version of the rule in force from ``since`` (until the next one's date)."""
        if since in self._dates:
            raise ValueError(f"{self.entitlement}: a formula from {since.isoformat()} exists already")
        f = Formula(since, decide, conditions)
        i = bisect.bisect_right(self._dates, since)
        self._dates.insert(i, since)
        self.dated.insert(i, f)
        self._bind()
        return f

    def remove(self, f: Formula) -> None:
        i = self.dated.index(f)
        del self.dated[i], self._dates[i]
        self._bind()

    def dispatch(self, *args):
        """The formula in force on the day of the call (``day_of``), called."""
        return self.at(self.day_of(*args)).decide(*args)

    def _bind(self) -> None:
        sys.modules[self.module].decide = self.dispatch if self.dated else self.base.decide

    @contextlib.contextmanager
    def trying(self, since: dt.date, decide: Callable, conditions: tuple[Condition, ...]) -> Iterator[Formula]:
        """A version in force for the block only (tests; a situation test of a proposed rule)."""
        f = self.add(since, decide, conditions)
        try:
            yield f
        finally:
            self.remove(f)

    def at(self, day: dt.date) -> Formula:
        """The formula in force on ``day``."""
        if not self._dates or day < self._dates[0]:
            return self.base
        return self.dated[bisect.bisect_right(self._dates, day) - 1]

    def all(self) -> tuple[Formula, ...]:
        return (self.base, *self.dated)

    def dates(self) -> tuple[dt.date, ...]:
        return tuple(self._dates)
