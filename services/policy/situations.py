"""Situation tests as the policy office writes them: YAML files of records in and decisions expected.

A file is a list of situations (docs/policy.md, "Situation tests")::

    - name: a permit in 浦口 and six months paid
      as_of: 2026-11-28                     # D for these records
      people: {zhang: 1990-01-01}           # a name -> a birth date (a valid ID number is made) or an ID number
      records:                              # in order, each {feed: record in the department's field names}
        - psb:permit: {ywlx: QF, sfzh: zhang, jzzbh: P1, jzdqh: "320111", qfrq: 2025-01-01, yxqz: 2027-12-31}
        - hrss:contribution: {AAC002: zhang, AAE002: 202501..202506}
      expect:                               # per entitlement: a decision, a list of them in order, or none
        settlement.four_districts: {subject: zhang, status: eligible, district: "320111"}
      then:                                 # later dates, optional: the scheduler ticks whoever is due
        - as_of: 2028-01-01
          expect:
            settlement.four_districts: {status: revoked, reasons: [NO_VALID_PERMIT]}

What a record may leave out is filled in (``DEFAULTS``: record ids, names, the time of the record,
a paid enterprise pension in Nanjing); ``AAE002`` may be a list or a range ``202501..202506`` (one
record a month). Values are sent as the department's JSON: a date or a number written without
quotes is sent as its text, except ``householdSize`` and ``monthlyIncome`` (numbers) and
``ownsHome`` (true/false).

Everything a file gets wrong (an unknown key, entitlement, field of a decision, feed, a date that
is not one) is a ``SituationError`` naming the file and the situation, before anything runs.
"""

from __future__ import annotations

import datetime as dt
import itertools
import pathlib
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from schemas.ids import check_digit, id_problem
from services.rules import ALL_RULES

FEEDS = ("psb:permit", "hrss:contribution", "edu:application", "housing:application")
ID_FIELDS = {"psb:permit": ("sfzh",), "hrss:contribution": ("AAC002",), "edu:application": ("xssfzh", "jhrsfzh"),
             "housing:application": ("applicantId",)}
NUMBERS = frozenset({"householdSize", "monthlyIncome"})  # JSON numbers in the housing feed (docs/contract.md)
SITUATION_KEYS = frozenset({"name", "as_of", "people", "parameters", "records", "expect", "verdicts", "quarantined",
                            "then", "end_to_end"})
STEP_KEYS = frozenset({"as_of", "records", "expect", "verdicts", "quarantined"})
DECISION_KEYS = ("status", "subject", "application", "district", "reasons", "priority", "version", "as_of", "basis")
VERDICT_KEYS = ("eligible", "subject", "application", "district", "reasons", "priority")
STATUSES = frozenset({"eligible", "ineligible", "revoked"})


class SituationError(ValueError):
    """A situation file that cannot be run: the message names the file and the situation."""


@dataclass
class Step:
    as_of: dt.date
    records: list[tuple[str, dict[str, Any], int]]  # (feed, the record as published, its number as written)
    expect: dict[str, list[dict[str, Any]]] | None  # entitlement -> decisions in order; None: no decision at all
    quarantined: list[str] = field(default_factory=list)  # the reasons expected, in order
    verdicts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # entitlement -> what the rule says on D


@dataclass
class Situation:
    file: str
    name: str
    people: dict[str, str]  # name -> ID number
    steps: list[Step]
    parameters: dict[str, dict[str, Any]]
    end_to_end: bool = False

    @property
    def checked(self) -> list[str]:
        """The entitlements this situation checks: those its steps name (in every step: a step
        that does not name one expects no decision of it)."""
        seen: dict[str, None] = {}
        for s in self.steps:
            for e in s.expect or ():
                seen[e] = None
        return list(seen)

    def who(self, id_number: str | None) -> str:
        """A person as the report shows them: their name here, else the ID masked."""
        from schemas.ids import mask

        for name, pid in self.people.items():
            if pid == id_number:
                return name
        return mask(id_number) if id_number else "null"


class _Loader(yaml.SafeLoader):
    """YAML without the implicit dates: ``2025-01-01`` stays the text the department would send."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}


def load(path: str | pathlib.Path) -> list[Situation]:
    path = pathlib.Path(path)
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except OSError as exc:
        raise SituationError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise SituationError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(doc, list) or not doc:
        raise SituationError(f"{path}: a situation file is a list of situations (each begins with '- name:')")
    out, names = [], set()
    for i, item in enumerate(doc, 1):
        s = _situation(str(path), i, item)
        if s.name in names:
            raise SituationError(f"{path}: two situations named {s.name!r}")
        names.add(s.name)
        out.append(s)
    return out


def _situation(file: str, i: int, doc: Any) -> Situation:
    where = f"{file}, situation {i}"
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str) or not doc["name"].strip():
        raise SituationError(f"{where}: has no name")
    where = f"{file}, situation {doc['name']!r}"
    _keys(where, doc, SITUATION_KEYS)
    people = _people(where, doc.get("people") or {})
    steps = [_step(where, "", doc, people)]
    then = doc.get("then") or []
    if not isinstance(then, list):
        raise SituationError(f"{where}: 'then' is a list of later steps, each with its as_of")
    for n, later in enumerate(then, 2):
        if not isinstance(later, dict):
            raise SituationError(f"{where}, step {n}: a step is a mapping with as_of, records, expect")
        _keys(f"{where}, step {n}", later, STEP_KEYS)
        steps.append(_step(where, f", step {n}", later, people))
        if steps[-1].as_of < steps[-2].as_of:
            raise SituationError(f"{where}, step {n}: as_of goes back in time ({steps[-1].as_of} before "
                                 f"{steps[-2].as_of})")
    parameters = doc.get("parameters") or {}
    if not isinstance(parameters, dict) or not all(isinstance(v, dict) for v in parameters.values()):
        raise SituationError(f"{where}: 'parameters' is a mapping name -> {{YYYY-MM-DD: value}}")
    situation = Situation(file, doc["name"].strip(), people, steps, parameters, bool(doc.get("end_to_end")))
    if not situation.checked and all(s.expect is not None and not s.verdicts for s in steps):
        raise SituationError(f"{where}: expects nothing (name an entitlement under 'expect' or 'verdicts', or write "
                             "'expect: none')")
    return situation


def _keys(where: str, doc: dict, allowed: frozenset) -> None:
    unknown = sorted(str(k) for k in set(doc) - allowed)
    if unknown:
        raise SituationError(f"{where}: unknown key {unknown[0]!r} (the keys are {', '.join(sorted(allowed))})")


def _day(where: str, value: Any) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise SituationError(f"{where}: {value!r} is not a date YYYY-MM-DD") from None


_seq = itertools.count(1)


def _people(where: str, doc: Any) -> dict[str, str]:
    if not isinstance(doc, dict):
        raise SituationError(f"{where}: 'people' is a mapping name -> birth date or ID number")
    out = {}
    for name, value in doc.items():
        text = str(value)
        if re.fullmatch(r"\d{17}[\dXx]", text):
            if id_problem(text.upper()) is not None:
                raise SituationError(f"{where}: {name}'s ID number is not valid (its check digit?)")
            out[str(name)] = text.upper()
            continue
        born = _day(f"{where}, people {name}", text)
        body = f"340102{born:%Y%m%d}{next(_seq) % 1000:03d}"
        out[str(name)] = body + check_digit(body)
    return out


def _step(where: str, at: str, doc: dict, people: dict[str, str]) -> Step:
    if "as_of" not in doc:
        raise SituationError(f"{where}{at}: no as_of (the date D of the step)")
    day = _day(f"{where}{at}, as_of", doc["as_of"])
    records = [(*r, n) for n, (feed, rec) in enumerate(_records(f"{where}{at}", doc.get("records") or []), 1)
               for r in _expand(f"{where}{at}, record {n}", feed, rec, people, day)]
    quarantined = doc.get("quarantined") or []
    if not isinstance(quarantined, list) or not all(isinstance(q, str) for q in quarantined):
        raise SituationError(f"{where}{at}: 'quarantined' is a list of reason codes")
    return Step(day, records, _expect(f"{where}{at}", doc.get("expect", {}), people), list(quarantined),
                _verdicts(f"{where}{at}", doc.get("verdicts") or {}, people))


def _records(where: str, doc: Any) -> list[tuple[str, dict]]:
    """``[{feed: record}, …]`` in order, or ``{feed: [record, …], …}`` (feed by feed, as written)."""
    pairs: list[tuple[str, Any]] = []
    if isinstance(doc, dict):
        for feed, recs in doc.items():
            pairs += [(feed, r) for r in (recs if isinstance(recs, list) else [recs])]
    elif isinstance(doc, list):
        for item in doc:
            if not isinstance(item, dict) or len(item) != 1:
                raise SituationError(f"{where}: each record is written '- <feed>: {{fields}}', e.g. "
                                     "'- psb:permit: {ywlx: QF, …}'")
            pairs += list(item.items())
    else:
        raise SituationError(f"{where}: 'records' is a list of '- <feed>: {{fields}}'")
    for feed, rec in pairs:
        if feed not in FEEDS:
            raise SituationError(f"{where}: unknown feed {feed!r} (one of {', '.join(FEEDS)})")
        if not isinstance(rec, dict):
            raise SituationError(f"{where}: a {feed} record is a mapping of its fields")
    return pairs


def _expand(where: str, feed: str, rec: dict, people: dict[str, str], day: dt.date) -> list[tuple[str, dict]]:
    """One record as written -> the records published: names of people replaced by their ID numbers,
    values as JSON sends them, what is left out filled in, a list or range of months expanded."""
    out = {}
    for k, v in rec.items():
        k = str(k)
        if k in ID_FIELDS[feed] and isinstance(v, str) and v in people:
            v = people[v]
        elif isinstance(v, int) and not isinstance(v, bool) and k not in NUMBERS:
            v = str(v)
        elif isinstance(v, float) and k not in NUMBERS:
            v = repr(v)
        out[k] = v
    months = _months(where, rec.get("AAE002")) if feed == "hrss:contribution" else [None]
    return [(feed, {**DEFAULTS[feed](day), **out, **({"AAE002": m} if m else {}), **_ids(feed, out)})
            for m in months]


def _months(where: str, value: Any) -> list[str | None]:
    if isinstance(value, list):
        return [str(v) for v in value]
    text = str(value) if value is not None else None
    if text and (m := re.fullmatch(r"(\d{6})\s*\.\.\s*(\d{6})", text)):
        a, b = int(m.group(1)), int(m.group(2))
        ia, ib = (a // 100) * 12 + a % 100 - 1, (b // 100) * 12 + b % 100 - 1
        if ib < ia or ib - ia > 600:
            raise SituationError(f"{where}: AAE002 range {text} runs backwards or is too long")
        return [f"{i // 12}{i % 12 + 1:02d}" for i in range(ia, ib + 1)]
    return [text]


def _ids(feed: str, rec: dict) -> dict:
    """A record id of its own when none is written (the feed's id field)."""
    key = {"psb:permit": "ywlsh", "hrss:contribution": "LSH", "edu:application": "sqbh",
           "housing:application": "applicationNo"}[feed]
    return {} if key in rec else {key: f"S{next(_seq):09d}"}


DEFAULTS = {
    "psb:permit": lambda day: {"xm": "某某", "czsj": f"{day.isoformat()} 09:00:00"},
    "hrss:contribution": lambda day: {"AAC003": "某某", "AAE140": "110", "AAB301": "320102", "AAE078": "1"},
    "edu:application": lambda day: {"xsxm": "某某", "sqrq": f"{day:%Y/%m/%d}"},
    "housing:application": lambda day: {"ownsHome": False, "appliedOn": day.isoformat()},
}


def _expect(where: str, doc: Any, people: dict[str, str]) -> dict[str, list[dict]] | None:
    if doc == "none" or doc is None:
        return None
    if not isinstance(doc, dict):
        raise SituationError(f"{where}: 'expect' is a mapping entitlement -> decisions, or 'none'")
    out = {}
    for ent, value in doc.items():
        if ent not in ALL_RULES:
            raise SituationError(f"{where}: unknown entitlement {ent!r} (one of {', '.join(ALL_RULES)})")
        items = [] if value == "none" else value if isinstance(value, list) else [value]
        out[ent] = [_decision(f"{where}, {ent}", d, people) for d in items]
    return out


def _decision(where: str, d: Any, people: dict[str, str]) -> dict:
    if not isinstance(d, dict):
        raise SituationError(f"{where}: a decision is a mapping with at least its status")
    unknown = sorted(str(k) for k in set(d) - set(DECISION_KEYS))
    if unknown:
        raise SituationError(f"{where}: unknown field {unknown[0]!r} of a decision (the fields are "
                             f"{', '.join(DECISION_KEYS)})")
    if d.get("status") not in STATUSES:
        raise SituationError(f"{where}: status {d.get('status')!r} is not one of {', '.join(sorted(STATUSES))}")
    out = dict(d)
    if "subject" in out:
        out["subject"] = people.get(str(out["subject"]), str(out["subject"]))
    for k in ("district", "application", "as_of"):
        if out.get(k) is not None:
            out[k] = str(out[k])
    for k in ("reasons", "basis"):
        if k in out:
            if not isinstance(out[k], list):
                raise SituationError(f"{where}: {k} is a list, e.g. [NO_VALID_PERMIT]")
            out[k] = [str(x) for x in out[k]]
    if out["status"] == "eligible" and out.get("reasons"):
        raise SituationError(f"{where}: an eligible decision has no reasons")
    return out


def _verdicts(where: str, doc: Any, people: dict[str, str]) -> dict[str, list[dict]]:
    """What a rule says on D at the end of the step, as ``permitbus explain`` says it (decided or not:
    a roster rule publishes nothing while a person was never eligible)."""
    if not isinstance(doc, dict):
        raise SituationError(f"{where}: 'verdicts' is a mapping entitlement -> a verdict or a list of them")
    out = {}
    for ent, value in doc.items():
        if ent not in ALL_RULES:
            raise SituationError(f"{where}: unknown entitlement {ent!r} (one of {', '.join(ALL_RULES)})")
        items = value if isinstance(value, list) else [value]
        checked = []
        for v in items:
            if not isinstance(v, dict) or not isinstance(v.get("eligible"), bool):
                raise SituationError(f"{where}, verdicts {ent}: a verdict is a mapping with eligible: true or false")
            unknown = sorted(str(k) for k in set(v) - set(VERDICT_KEYS))
            if unknown:
                raise SituationError(f"{where}, verdicts {ent}: unknown field {unknown[0]!r} (the fields are "
                                     f"{', '.join(VERDICT_KEYS)})")
            v = dict(v)
            if "subject" in v:
                v["subject"] = people.get(str(v["subject"]), str(v["subject"]))
            elif len(people) == 1:
                v["subject"] = next(iter(people.values()))
            elif "application" not in v:
                raise SituationError(f"{where}, verdicts {ent}: whose? (subject: a name, or application: its id)")
            for k in ("district", "application"):
                if v.get(k) is not None:
                    v[k] = str(v[k])
            if "reasons" in v:
                if not isinstance(v["reasons"], list):
                    raise SituationError(f"{where}, verdicts {ent}: reasons is a list, e.g. [NO_VALID_PERMIT]")
                v["reasons"] = [str(x) for x in v["reasons"]]
                if v["eligible"] and v["reasons"]:
                    raise SituationError(f"{where}, verdicts {ent}: an eligible verdict has no reasons")
            checked.append(v)
        out[ent] = checked
    return out
