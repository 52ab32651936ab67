"""``python -m benchmarks.deciding``: the decider's Python work alone, in one process, no Redis.

A simulated city (``services.sim.generator``) is normalized once into canonical events; then,
timed, every event is folded into its person's picture and decided (``services.decider.emit``),
exactly as ``services/decider/worker.py`` does between its read and its commit, the monthly
contribution files included. Prints CPU microseconds per event and per rule call, the best of
``--repeat`` runs (a shared machine: the minimum is the least disturbed). For before/after
figures of a change to the rules (BENCHMARKS.md), run it on both trees, alternating.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time

os.environ.setdefault("PERMITBUS_INSECURE_DEV_KEYS", "1")  # a benchmark: built-in keys

from schemas.picture import PICTURE_SCHEMA_VERSION, Person
from services.decider import emit
from services.ingress.atrest import Protector
from services.ingress.fields import Reject
from services.ingress.service import understand
from services.picture.fold import Quarantine, fold
from services.picture.picture import Picture
from services.rules import ALL_RULES
from services.runtime.identity import Pseudonymizer
from services.runtime.settings import Settings
from services.sim.generator import SimConfig, generate

TODAY = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


KEYS = Settings().data_keyring()


def events(people: int, months: int) -> list:
    """The city's records as the normalizers make them (IDs protected), bad records left out."""
    protector = Protector(Pseudonymizer(Settings().pseudonym_secret()), KEYS)
    out = []
    for i, rec in enumerate(generate(SimConfig(people=people, months=months, today=TODAY))):
        ev = understand(rec.feed, f"{i + 1}-0", {b"payload": rec.payload})
        if not isinstance(ev, Reject):
            out.append(protector.protect(ev))
    return out


class Counting:
    """Counts the rule calls (wraps each rule's ``decide`` for one run, then puts it back)."""

    def __init__(self) -> None:
        self.calls = 0
        self.saved = {name: m.decide for name, m in ALL_RULES.items()}

    def __enter__(self):
        for m in ALL_RULES.values():
            m.decide = self._wrap(m.decide)
        return self

    def _wrap(self, f):
        def counted(*a, **kw):
            self.calls += 1
            return f(*a, **kw)
        return counted

    def __exit__(self, *exc) -> None:
        for name, m in ALL_RULES.items():
            m.decide = self.saved[name]


def run(evs: list) -> tuple[float, int]:
    """Fold and decide every event; CPU seconds, decisions made."""
    pics: dict[bytes, Picture] = {}
    decisions = 0
    start = time.process_time()
    for ev in evs:
        pic = pics.get(ev.pseudonym)
        if pic is None:
            pic = pics[ev.pseudonym] = Picture(Person(v=PICTURE_SCHEMA_VERSION, sid=ev.sealed_id), KEYS)
        touched = fold(pic, ev)
        if touched is None or isinstance(touched, Quarantine):
            continue
        for d in emit.evaluate(pic, touched, TODAY, NOW, [ev.record_id]):
            decisions += 1
    return time.process_time() - start, decisions


def decide_only(evs: list) -> tuple[float, int]:
    """Every rule on every final picture (and application) it applies to: the rules alone."""
    pics: dict[bytes, Picture] = {}
    for ev in evs:
        pic = pics.get(ev.pseudonym)
        if pic is None:
            pic = pics[ev.pseudonym] = Picture(Person(v=PICTURE_SCHEMA_VERSION, sid=ev.sealed_id), KEYS)
        fold(pic, ev)
    roster = [m for m in ALL_RULES.values() if not hasattr(m, "closes_on")]
    apps = [(ALL_RULES[a.entitlement], a, pic) for pic in pics.values() for a in pic.person.apps.values()]
    people = list(pics.values())
    n = 0
    start = time.process_time()
    for _ in range(5):
        for m in roster:
            for pic in people:
                m.decide(pic, TODAY)
        for m, a, pic in apps:
            m.decide(a, pic, TODAY)
        n += len(roster) * len(people) + len(apps)
    return time.process_time() - start, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=5000)
    ap.add_argument("--months", type=int, default=14)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    evs = events(args.people, args.months)
    with Counting() as counting:
        run(evs)
    best = min(run(evs)[0] for _ in range(args.repeat))
    rules = min(decide_only(evs)[0] for _ in range(args.repeat))
    _, n = decide_only(evs)
    print(f"{len(evs):,} events, {counting.calls:,} rule calls while deciding them")
    print(f"fold + decide: {best * 1e6 / len(evs):.2f} us an event (best of {args.repeat})")
    print(f"rules alone:   {rules * 1e6 / n:.3f} us a rule call ({n:,} calls, best of {args.repeat})")


if __name__ == "__main__":
    main()
