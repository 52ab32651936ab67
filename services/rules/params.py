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


@dataclass(frozen=True)
class Parameter:
    name: str
    description: str
    unit: str
    dates: tuple[dt.date, ...]
    values: tuple[float, ...]

    def at(self, day: dt.date) -> float:
        i = bisect.bisect_right(self.dates, day) - 1
        if i < 0:
            raise ParameterError(f"{self.name} has no value in force on {day.isoformat()}")
        return self.values[i]


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
    )


@functools.lru_cache(maxsize=None)
def get(name: str) -> Parameter:
    return load(name)
