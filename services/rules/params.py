"""Dated parameters, kept as data (``params/<name>.toml``), like OpenFisca's parameters.

Every figure and list a rule uses is a parameter (docs/policy.md, "Parameters"). A rule module
declares each one it reads, with the kind of value it takes (``declare``), and reads the value in
force on a day (``Param.on``); the values live in one TOML file per parameter::

    description = "..."
    unit = "..."
    reference = "宁政办发〔2021〕5号（十三）; docs/policy.md housing.security"
    [values]
    2021-01-01 = 3000
    2022-07-01 = 3300

Invariants, checked when a folder is read (``read_folder``), so that a bad edit stops a service at
start with one line naming the file (``start``), never a wrong decision or a dead letter: every
declared parameter has a file and every file is a declared parameter; ``description`` and
``reference`` are given and no other key; at least one value; dates ``YYYY-MM-DD`` strictly
ascending as written; each value of the declared kind (a whole number within bounds, a sum of
money, a non-empty list of known codes without repeats). A day before the first date has no value:
``ParameterError``, never a default.

The folder is ``PERMITBUS_PARAMS_DIR`` when set (a city's own copy), else ``params/`` here. One
folder is in force in a process (``use``); ``get`` reads it on first use if no service did.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import hashlib
import os
import pathlib
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

DEFAULT_DIR = pathlib.Path(__file__).parent / "params"
KEYS = frozenset({"description", "unit", "reference", "values"})


class ParameterError(ValueError):
    """A parameter file that cannot be used, or a day a parameter has no value on. The message is
    one line and names the file."""


# -- the kinds of value a parameter takes -----------------------------------------------------------
class Kind:
    """What a parameter's values must be. ``check`` returns the value as the rule reads it, or
    raises ``ValueError`` saying what is wrong with it (in the analyst's words)."""

    what = ""

    def check(self, value: object) -> object:  # pragma: no cover - every kind overrides it
        raise NotImplementedError


@dataclass(frozen=True)
class Whole(Kind):
    """A whole number from ``least`` to ``most`` (ages, months)."""

    least: int
    most: int

    @property
    def what(self) -> str:
        return f"a whole number from {self.least} to {self.most}"

    def check(self, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{value!r} is not {self.what}")
        if not self.least <= value <= self.most:
            raise ValueError(f"{value} is not {self.what}")
        return value


@dataclass(frozen=True)
class Money(Kind):
    """A sum of yuan, at least 0 (an integer or a decimal)."""

    what = "a sum of yuan, 0 or more"

    def check(self, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0 \
                or value == float("inf"):
            raise ValueError(f"{value!r} is not {self.what}")
        return float(value)


@dataclass(frozen=True)
class Codes(Kind):
    """A non-empty list of codes, each once: from ``known`` (code -> gloss) when given, else any code
    matching ``pattern`` (the departments may send codes this release does not name)."""

    name: str
    known: Mapping[str, str] | None = None
    pattern: str = r"[A-Za-z0-9_]{1,32}"

    @property
    def what(self) -> str:
        return f"a list of {self.name}"

    def check(self, value: object) -> frozenset[str]:
        if not isinstance(value, list) or not value:
            raise ValueError(f"{value!r} is not {self.what} (a non-empty list in brackets, e.g. [\"A\", \"B\"])")
        seen: set[str] = set()
        for item in value:
            if not isinstance(item, str):
                raise ValueError(f"{item!r} in the list is not a code in quotes")
            if self.known is not None and item not in self.known:
                raise ValueError(f"{item!r} is not one of the {self.name} ({', '.join(self.known)})")
            if self.known is None and not re.fullmatch(self.pattern, item):
                raise ValueError(f"{item!r} is not a code of {self.name} (letters, digits and _ only)")
            if item in seen:
                raise ValueError(f"{item!r} is listed twice")
            seen.add(item)
        return frozenset(value)


# -- declarations: which parameters the rules read ----------------------------------------------------
@dataclass(frozen=True)
class Declared:
    name: str
    kind: Kind
    on: str  # the day whose value a rule reads: "D", or an application's date ("sqrq", "appliedOn")


DECLARED: dict[str, Declared] = {}


def declare(name: str, kind: Kind, on: str = "D") -> Param:
    """A rule module states that it reads parameter ``name``, of ``kind``, as in force on ``on``."""
    got = DECLARED.get(name)
    if got is not None and (got.kind, got.on) != (kind, on):
        raise ValueError(f"parameter {name} declared twice, differently")
    DECLARED[name] = Declared(name, kind, on)
    return Param(name)


@dataclass(frozen=True, slots=True)
class InForce:
    """A figure as a rule used it, for an explanation: its value, the date from which that value
    applies, and its authority (the file's ``reference``)."""

    name: str
    value: object
    since: dt.date | None
    reference: str


@dataclass(frozen=True)
class Parameter:
    name: str
    description: str
    unit: str
    dates: tuple[dt.date, ...]
    values: tuple
    reference: str = ""
    path: str = ""

    def at(self, day: dt.date):
        i = bisect.bisect_right(self.dates, day) - 1
        if i < 0:
            raise ParameterError(f"{self.name} has no value in force on {day.isoformat()} (its first value is "
                                 f"dated {self.dates[0].isoformat()})")
        return self.values[i]

    def in_force(self, day: dt.date) -> InForce:
        """``at(day)`` with the date it applies from and the reference."""
        value = self.at(day)
        return InForce(self.name, value, self.dates[bisect.bisect_right(self.dates, day) - 1], self.reference)


class Param:
    """A rule's handle on a declared parameter: ``on(day)`` is the value in force that day, with its
    date and reference (an ``InForce``), from the folder in force. A decider asks for the same D for
    every person, and an application rule for a few dates of application: answers are kept per day
    for the folder in force (one comparison, or one dict look-up, instead of a search; BENCHMARKS.md)."""

    __slots__ = ("name", "_day", "_of", "_hit", "_memo")

    def __init__(self, name: str) -> None:
        self.name = name
        self._day = self._of = self._hit = None
        self._memo: dict[dt.date, InForce] = {}

    def on(self, day: dt.date) -> InForce:
        if day is self._day and _active is self._of:  # the decider passes one date object per batch
            return self._hit
        if _active is self._of:
            hit = self._memo.get(day)
        else:
            self._memo = {}
            hit = None
        if hit is None:
            if len(self._memo) >= 4096:
                self._memo = {}
            hit = self._memo[day] = get(self.name).in_force(day)
        self._day, self._of, self._hit = day, _active, hit
        return hit

    def __repr__(self) -> str:
        return f"Param({self.name!r})"


# -- reading and checking a folder --------------------------------------------------------------------
def read_file(path: pathlib.Path, kind: Kind) -> Parameter:
    """One parameter file, checked against ``kind``; ``ParameterError`` names the file and the problem."""
    where = f"parameter file {path}"
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ParameterError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ParameterError(f"{where}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ParameterError(f"{where}: not valid TOML: {_one_line(str(exc))}") from None
    unknown = sorted(set(doc) - KEYS)
    if unknown:
        raise ParameterError(f"{where}: unknown key {unknown[0]!r} (the keys are description, unit, reference and "
                             f"[values])")
    for key in ("description", "reference"):
        if not isinstance(doc.get(key), str) or not doc[key].strip():
            raise ParameterError(f"{where}: '{key}' is missing or empty")
    if not isinstance(doc.get("unit", ""), str):
        raise ParameterError(f"{where}: 'unit' is not text")
    values = doc.get("values")
    if not isinstance(values, dict) or not values:
        raise ParameterError(f"{where}: no [values] (a table of lines YYYY-MM-DD = value)")
    dates, out = [], []
    for key, value in values.items():
        try:
            day = dt.date.fromisoformat(key) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", key) else None
        except ValueError:
            day = None
        if day is None:
            raise ParameterError(f"{where}: [values] {key!r} is not a date YYYY-MM-DD")
        if dates and day <= dates[-1]:
            raise ParameterError(f"{where}: [values] dates are not in ascending order ({key} after "
                                 f"{dates[-1].isoformat()})")
        try:
            out.append(kind.check(value))
        except ValueError as exc:
            raise ParameterError(f"{where}: [values] {key}: {exc}") from None
        dates.append(day)
    return Parameter(path.stem, doc["description"].strip(), doc.get("unit", "").strip(), tuple(dates), tuple(out),
                     doc["reference"].strip(), str(path))


def _declared() -> dict[str, Declared]:
    import services.rules  # noqa: F401 - importing the rules declares their parameters

    return DECLARED


def problems(directory: pathlib.Path) -> tuple[dict[str, Parameter], list[str]]:
    """Every parameter of ``directory`` read and checked: (the parameters, every problem found, one
    line each naming its file)."""
    declared = _declared()
    found: dict[str, Parameter] = {}
    bad: list[str] = []
    if not directory.is_dir():
        return found, [f"parameter folder {directory}: not a folder"]
    files = {p.stem: p for p in sorted(directory.glob("*.toml"))}
    for name, path in files.items():
        if name not in declared:
            bad.append(f"parameter file {path}: no rule reads a parameter named {name!r} (a misspelt file name?)")
            continue
        try:
            found[name] = read_file(path, declared[name].kind)
        except ParameterError as exc:
            bad.append(str(exc))
    for name in sorted(set(declared) - set(files)):
        bad.append(f"parameter file {directory / (name + '.toml')}: missing (rule parameter {name})")
    return found, bad


def read_folder(directory: pathlib.Path) -> Folder:
    """``directory`` read and checked; ``ParameterError`` with the first problem (and how many more)."""
    found, bad = problems(directory)
    if bad:
        more = f" (and {len(bad) - 1} more problems: permitbus params check)" if len(bad) > 1 else ""
        raise ParameterError(bad[0] + more)
    return Folder(directory, found)


@dataclass(frozen=True)
class Folder:
    """The parameters of one folder, checked."""

    directory: pathlib.Path
    parameters: Mapping[str, Parameter]

    def __getitem__(self, name: str) -> Parameter:
        return self.parameters[name]

    def covering(self, day: dt.date) -> list[str]:
        """The parameters read as of D that have no value on ``day`` (D before their first date)."""
        return [n for n, p in sorted(self.parameters.items()) if DECLARED[n].on == "D" and day < p.dates[0]]

    def history(self, day: dt.date) -> str:
        """A digest of every value a decision made on ``day`` may read: for a parameter read as of D,
        every value dated on or before ``day``; for one read as of an application's date, every value
        (an application may be dated after D, and reaching a date changes no decision already made on
        an earlier application). It changes when a value read on D takes effect (its date reached) or
        an edit changes a value a decision may read; not when a value read on D dated later is added.
        The scheduler decides everyone again when it changes (services/scheduler/service.py)."""
        h = hashlib.blake2b(digest_size=12)
        for name, p in sorted(self.parameters.items()):
            on_d = name not in DECLARED or DECLARED[name].on == "D"
            for d, v in zip(p.dates, p.values):
                if d <= day or not on_d:
                    h.update(f"{name}|{d.isoformat()}|{sorted(v) if isinstance(v, frozenset) else v!r}\n".encode())
        return h.hexdigest()

    def amended(self, changes: Mapping[str, Mapping[str, object]]) -> Folder:
        """This folder with dated values added or replaced (``{name: {"YYYY-MM-DD": value}}``), checked
        as a file is: a situation test's "what if" (services/policy/situations.py)."""
        out = dict(self.parameters)
        for name, rows in changes.items():
            if name not in out:
                raise ParameterError(f"parameters: no rule reads a parameter named {name!r}")
            p = out[name]
            merged = dict(zip(p.dates, p.values))
            for key, value in rows.items():
                key = key.isoformat() if isinstance(key, dt.date) else str(key)
                try:
                    merged[dt.date.fromisoformat(key)] = DECLARED[name].kind.check(value)
                except ValueError as exc:
                    raise ParameterError(f"parameters: {name} {key}: {exc}") from None
            dates = tuple(sorted(merged))
            out[name] = Parameter(name, p.description, p.unit, dates, tuple(merged[d] for d in dates), p.reference,
                                  p.path)
        return Folder(self.directory, out)


# -- the folder in force in this process --------------------------------------------------------------
_active: Folder | None = None


def folder_of(directory: str | os.PathLike | None = None) -> pathlib.Path:
    """The folder to read: ``directory``, else ``PERMITBUS_PARAMS_DIR``, else the one shipped here."""
    if directory:
        return pathlib.Path(directory)
    env = os.environ.get("PERMITBUS_PARAMS_DIR")
    return pathlib.Path(env) if env else DEFAULT_DIR


def use(folder: Folder | str | os.PathLike | None = None) -> Folder:
    """Make ``folder`` (a ``Folder``, or a directory read and checked now) the one in force."""
    global _active
    _active = folder if isinstance(folder, Folder) else read_folder(folder_of(folder))
    return _active


def active() -> Folder:
    return _active if _active is not None else use()


@contextlib.contextmanager
def using(folder: Folder) -> Iterator[Folder]:
    """``folder`` in force for the block, then the one before (situation tests, tests)."""
    global _active
    before = _active
    _active = folder
    try:
        yield folder
    finally:
        _active = before


def get(name: str) -> Parameter:
    return active()[name]


def first_day(*handles: Param) -> dt.date:
    """The first day on which every one of ``handles`` has a value."""
    return max(get(h.name).dates[0] for h in handles)


def load(name: str, directory: pathlib.Path | None = None) -> Parameter:
    """Parameter ``name`` from ``directory`` (default: the folder in force), checked."""
    if directory is None:
        return get(name)
    return read_file(pathlib.Path(directory) / f"{name}.toml", _declared()[name].kind)


def start(directory: str | os.PathLike | None, today: dt.date | None = None) -> Folder:
    """A service's first step: the parameter folder read and checked, and a value for D of every
    parameter read as of D. Anything wrong stops the start: ``SystemExit`` with one line naming
    the file, before any record is read."""
    try:
        folder = use(directory)
    except ParameterError as exc:
        raise SystemExit(f"permitbus: cannot start: {exc}") from None
    if today is not None and (early := folder.covering(today)):
        p = folder[early[0]]
        raise SystemExit(f"permitbus: cannot start: parameter file {p.path}: no value on D = {today.isoformat()} "
                         f"(its first value is dated {p.dates[0].isoformat()})")
    return folder


def _one_line(s: str) -> str:
    return " ".join(s.split())
