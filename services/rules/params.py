"""Dated parameters, kept as data (``params/<name>.toml``), like OpenFisca's parameters.

Each file has ``description``, ``unit``, ``reference`` and a ``[values]`` table of
``YYYY-MM-DD = value`` lines; ``Parameter.at(day)`` is the value in force on that day.
``PERMITBUS_PARAMS_DIR`` points to another folder (a city's own copy) if set.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import os
import pathlib
import tomllib
from dataclasses import dataclass

DEFAULT_DIR = pathlib.Path(__file__).parent / "params"


class ParameterError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class InForce:
    """A figure as a rule used it, for an explanation: its value, the date from which that value
    applies (None: a figure fixed in the rule's module, not yet a dated file) and its authority."""

    name: str
    value: object
    since: dt.date | None
    reference: str


def fixed(name: str, value: object, reference: str) -> InForce:
    """A figure of the policy kept in a rule's module (no dates): the rule reads ``.value``."""
    return InForce(name, value, None, reference)


@dataclass(frozen=True)
class Parameter:
    name: str
    description: str
    unit: str
    dates: tuple[dt.date, ...]
    values: tuple[float, ...]
    reference: str = ""

    def at(self, day: dt.date) -> float:
        i = bisect.bisect_right(self.dates, day) - 1
        if i < 0:
            raise ParameterError(f"{self.name} has no value in force on {day.isoformat()}")
        return self.values[i]

    def in_force(self, day: dt.date) -> InForce:
        """``at(day)`` with the date it applies from and the reference."""
        value = self.at(day)
        return InForce(self.name, value, self.dates[bisect.bisect_right(self.dates, day) - 1], self.reference)


def load(name: str, directory: pathlib.Path | None = None) -> Parameter:
    directory = directory or pathlib.Path(os.environ.get("PERMITBUS_PARAMS_DIR", DEFAULT_DIR))
    path = directory / f"{name}.toml"
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ParameterError(f"cannot read parameter file {path}: {exc}") from exc
    rows = []
    for key, value in doc.get("values", {}).items():
        try:
            day = dt.date.fromisoformat(str(key))
        except ValueError:
            raise ParameterError(f"{path}: {key!r} is not a date YYYY-MM-DD") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterError(f"{path}: value for {key} must be a number")
        rows.append((day, float(value)))
    if not rows:
        raise ParameterError(f"{path}: no [values]")
    rows.sort()
    return Parameter(
        name=name,
        description=str(doc.get("description", "")),
        unit=str(doc.get("unit", "")),
        dates=tuple(d for d, _ in rows),
        values=tuple(v for _, v in rows),
        reference=str(doc.get("reference", "")),
    )


@functools.lru_cache(maxsize=None)
def get(name: str) -> Parameter:
    return load(name)
