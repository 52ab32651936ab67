"""Run a situation in this process, as the pipeline would, and compare what it decides.

Each record goes through the real normalizer (``services.ingress.service.understand``), its event is
folded into the person's picture (``services.picture.fold``) and decided by the decider's own
emission logic (``services.decider.emit.evaluate``, the rules of ``services.rules``), one record a
batch, the picture stored and read back after each as the decider stores it. When D moves to a
later step, the scheduler's choice is made as the scheduler makes it (services/scheduler/service.py):
everyone if the rules in force changed (``services.rules.in_force``), else whoever's next-change
date (``emit.next_change``) is due. What is left out: Redis, sealing, partitions, the relay; the
end-to-end tests run situations through those too (tests/test_situations.py).

``Coverage`` records, after each batch, every condition of every rule as the rule checks it on the
person (``services/rules/why.py``, a ``Trace``), so that a test can say which conditions no
situation reaches both ways.
"""

from __future__ import annotations

import datetime as dt
import json
from contextlib import nullcontext
from dataclasses import dataclass, field

import msgspec

from schemas.events import DateTick
from schemas.picture import PICTURE_SCHEMA_VERSION, Person
from services import rules
from services.decider import emit
from services.ingress.fields import Reject
from services.ingress.service import understand
from services.picture.fold import Quarantine, fold
from services.picture.picture import Picture
from services.policy.situations import Situation
from services.rules import APPLICATION_RULES, ROSTER_RULES, params
from services.rules.why import Trace

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(Person)


@dataclass
class StepResult:
    decisions: list[dict] = field(default_factory=list)  # as published: entitlement, subject_id, status, …
    quarantined: list[tuple[str, str]] = field(default_factory=list)  # (reason, what the record was)
    ticked: int = 0
    verdicts: dict[str, list[dict | str]] = field(default_factory=dict)  # as asked: what the rule says, or why not


class Coverage:
    """(entitlement, formula, condition) -> the outcomes seen (True: holds, False: fails)."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str, str], set[bool]] = {}
        self.reasons: dict[str, set[str]] = {}  # entitlement -> reason codes some situation expects

    def trace(self, pic: Picture, day: dt.date) -> None:
        for entitlement, rule in ROSTER_RULES.items():
            self._note(entitlement, rule.FORMULAS.at(day).name, rule.decide, (pic, day))
        for app in pic.person.apps.values():
            rule = APPLICATION_RULES[app.entitlement]
            on = min(day, rule.closes_on(app))
            name = rule.FORMULAS.at(dt.date.fromordinal(app.applied_on)).name
            self._note(app.entitlement, name, rule.decide, (app, pic, on))

    def _note(self, entitlement: str, formula: str, decide, args) -> None:
        t = Trace()
        decide(*args, t)
        for condition, holds, _ in t.steps:
            self.seen.setdefault((entitlement, formula, condition.name), set()).add(holds)

    def expected(self, situation: Situation) -> None:
        for step in situation.steps:
            for entitlement, decisions in [*(step.expect or {}).items(), *step.verdicts.items()]:
                for d in decisions:
                    self.reasons.setdefault(entitlement, set()).update(d.get("reasons", ()))

    def missing(self, entitlements=None) -> list[str]:
        """What no situation covers, one line each: a condition of a formula never checked holding
        or never failing; a reason code no situation expects."""
        out = []
        for entitlement, rule in rules.ALL_RULES.items():
            if entitlements is not None and entitlement not in entitlements:
                continue
            formulas = getattr(rule, "FORMULAS", None)
            if formulas is None:
                out.append(f"{entitlement}: declares no formulas and conditions (services/rules/versions.py, why.py)")
                continue
            for f in formulas.all():
                for c in f.conditions:
                    seen = self.seen.get((entitlement, f.name, c.name), set())
                    for holds, word in ((True, "holding"), (False, "failing")):
                        if holds not in seen:
                            out.append(f"{entitlement} {f.name}: condition {c.name!r}"
                                       f"{f' ({c.reason})' if c.reason else ''} never seen {word}")
            declared = {c.reason for f in formulas.all() for c in f.conditions if c.reason}
            for reason in sorted(declared - self.reasons.get(entitlement, set())):
                out.append(f"{entitlement}: no situation expects the reason {reason}")
        return out


def published(d) -> dict:
    """A decision as the outlet carries it (JSON), for comparing."""
    return json.loads(msgspec.json.encode(d))


class Desk:
    """The pictures of one situation, kept as the decider keeps them, with their due dates."""

    def __init__(self, coverage: Coverage | None = None) -> None:
        self.people: dict[str, Person] = {}  # the person's ID -> their stored picture
        self.due: dict[str, dt.date] = {}
        self.coverage = coverage
        self.seq = 0

    def _decide(self, pid: str, event, day: dt.date, out: StepResult, what: str) -> None:
        person = self.people.get(pid)
        if person is None and isinstance(event, DateTick):
            return
        pic = Picture(person if person is not None else Person(v=PICTURE_SCHEMA_VERSION, id=pid))
        touched = fold(pic, event)
        if isinstance(touched, Quarantine):
            out.quarantined.append((touched.reason, f"{what}: {touched.detail}"))
            return
        if touched is None:
            return  # a duplicate: no effect
        now = dt.datetime.combine(day, dt.time(10), SHANGHAI)
        caused_by = [] if isinstance(event, DateTick) else [event.record_id]
        for d in emit.evaluate(pic, touched, day, now, caused_by):
            if not isinstance(d, emit.RosterDrop):
                out.decisions.append(published(d))
        nxt = emit.next_change(pic, day)
        if nxt is None:
            self.due.pop(pid, None)
        else:
            self.due[pid] = nxt
        if self.coverage is not None:
            self.coverage.trace(pic, day)
        self.people[pid] = _dec.decode(_enc.encode(pic.freeze()))  # stored, and read back

    def record(self, feed: str, rec: dict, day: dt.date, out: StepResult, n: int) -> None:
        self.seq += 1
        raw = json.dumps(rec, ensure_ascii=False).encode()
        event = understand(feed, f"{1_600_000_000_000 + self.seq}-0", {b"payload": raw})
        what = f"record {n} ({feed})"
        if isinstance(event, Reject):
            out.quarantined.append((event.reason, f"{what}: {event.detail}"))
            return
        self._decide(event.person_id, event, day, out, what)

    def verdict(self, entitlement: str, want: dict, day: dt.date) -> dict | str:
        """What the rule says on ``day`` of the subject (or application) ``want`` names, as
        ``permitbus explain`` says it (services/rules/explain.py): a roster rule on the person's
        picture; an application on its filer's, as of its closing day once past it."""
        if entitlement in ROSTER_RULES:
            person = self.people.get(want.get("subject", ""))
            if person is None:
                return "nobody of that name has a picture (no record about them was taken)"
            v = ROSTER_RULES[entitlement].decide(Picture(person), day)
        else:
            rule = APPLICATION_RULES[entitlement]
            found = [(app, person) for person in self.people.values() for app in person.apps.values()
                     if app.entitlement == entitlement and want.get("application", app.id) == app.id
                     and want.get("subject", app.subject_id) == app.subject_id]
            if len(found) != 1:
                return f"{len(found)} applications of {entitlement} match (name the application)"
            app, person = found[0]
            v = rule.decide(app, Picture(person), min(day, rule.closes_on(app)))
        return {"eligible": v.eligible, "district": v.district, "reasons": list(v.reasons), "priority": v.priority,
                "subject": want.get("subject"), "application": want.get("application")}

    def tick(self, day: dt.date, everyone: bool, out: StepResult) -> None:
        due = list(self.people) if everyone else [p for p, d in self.due.items() if d <= day]
        for pid in due:
            out.ticked += 1
            self._decide(pid, DateTick(record_id=f"tick:{day.isoformat()}", source_id="", person_id=pid, on=day,
                                       pseudonym=b""), day, out, "tick")


def run(situation: Situation, coverage: Coverage | None = None) -> list[StepResult]:
    """What the pipeline decides for each step of ``situation``, in order."""
    with parameters(situation):
        desk, results, before = Desk(coverage), [], None
        for step in situation.steps:
            out = StepResult()
            if before is not None and step.as_of > before:
                everyone = rules.in_force(step.as_of) != rules.in_force(before)
                desk.tick(step.as_of, everyone, out)
            for feed, rec, n in step.records:
                desk.record(feed, rec, step.as_of, out, n)
            out.verdicts = {e: [desk.verdict(e, w, step.as_of) for w in ws] for e, ws in step.verdicts.items()}
            results.append(out)
            before = step.as_of
    if coverage is not None:
        coverage.expected(situation)
    return results


def parameters(situation: Situation):
    """The parameter folder in force, with the situation's own dated values ("what if") added."""
    if not situation.parameters:
        return nullcontext()
    try:
        return params.using(params.active().amended(situation.parameters))
    except params.ParameterError as exc:
        raise ValueError(f"{situation.file}, situation {situation.name!r}: {exc}") from None


# -- comparing --------------------------------------------------------------------------------------
FIELD = {"subject": "subject_id", "application": "application_id"}


def differences(situation: Situation, results: list[StepResult]) -> list[str]:
    """What differs from what the situation expects, as lines of a diff (IDs shown by name or masked)."""
    lines = []
    checked = situation.checked
    for n, (step, got) in enumerate(zip(situation.steps, results), 1):
        head = f"step {n}, as of {step.as_of.isoformat()}"
        reasons = [r for r, _ in got.quarantined]
        if reasons != step.quarantined:
            lines.append(f"{head}: records quarantined")
            lines += [f"  - expected {r}" for r in step.quarantined]
            lines += [f"  + got {r} ({what})" for r, what in got.quarantined]
        entitlements = checked if step.expect is not None else sorted({d["entitlement"] for d in got.decisions})
        for ent in entitlements:
            want = (step.expect or {}).get(ent, [])
            have = [d for d in got.decisions if d["entitlement"] == ent]
            if len(want) == len(have) and all(_matches(w, h) for w, h in zip(want, have)):
                continue
            if len(want) == len(have):  # the same number: only the decisions that differ
                for i, (w, h) in enumerate(zip(want, have), 1):
                    if not _matches(w, h):
                        lines.append(f"{head}: {ent}, decision {i} of {len(want)}")
                        lines += [f"  - expected {_show(situation, w, w)}", f"  + got      {_show(situation, h, w)}"]
                continue
            lines.append(f"{head}: {ent}, {len(want)} decisions expected, {len(have)} made")
            lines += [f"  - expected {_show(situation, w, w)}" for w in want] or ["  - expected no decision"]
            lines += [f"  + got      {_show(situation, h, want[i] if i < len(want) else {})}"
                      for i, h in enumerate(have)] or ["  + got      no decision"]
        for ent, wants in step.verdicts.items():
            for want, have in zip(wants, got.verdicts.get(ent, ())):
                if isinstance(have, dict) and all(have.get(k) == v for k, v in want.items()):
                    continue
                lines.append(f"{head}: verdict of {ent}")
                lines.append(f"  - expected {_show(situation, want, want)}")
                lines.append(f"  + got      {_show(situation, have, want) if isinstance(have, dict) else have}")
    return lines


def _matches(want: dict, have: dict) -> bool:
    return all(have.get(FIELD.get(k, k)) == v for k, v in want.items())


def _show(situation: Situation, d: dict, shape: dict) -> str:
    """A decision in the words of the file: the fields the expectation names (and status, subject,
    district, reasons always), people by name, other IDs masked."""
    first = ("eligible", "status", "subject", "district", "reasons")
    keys = [*first, *[k for k in shape if k not in first]]
    parts = []
    for k in keys:
        v = d.get(FIELD.get(k, k), d.get(k))
        if k not in d and FIELD.get(k, k) not in d:
            continue
        if k == "subject":
            v = situation.who(v)
        elif isinstance(v, bool) or v is None:
            v = {True: "true", False: "false", None: "null"}[v]
        elif isinstance(v, list):
            v = "[" + ", ".join(v) + "]"
        parts.append(f"{k}: {v}")
    return "{" + ", ".join(parts) + "}"
