"""How a rule says why: every condition it checks goes through one recorder, ``why.check``.

A rule declares its conditions as data next to its clause (``Condition``: a name, the reason code
given when it fails, docs/policy.md's words, the names of the facts it reads) and checks each one as

    if not why.check(VALID_PERMIT, permit is not None, pic.person.permit, day):
        reasons.append("NO_VALID_PERMIT")

``check`` returns the boolean it was given, so the condition that decides is the one recorded.
The decider passes ``SILENT`` (the default), whose ``check`` only returns it: one call with
positional arguments (about 50 ns; BENCHMARKS.md), and the facts are references to values the
rule has at hand, rendered only when explaining (``services/rules/explain.py``). ``Trace``
records each check in order; ``services/rules/explain.py`` runs the same ``decide`` with one.
So the explanation and the decision come from the same code and cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Condition:
    """One condition of a rule. ``reason``: the code an ineligible decision lists when it fails;
    None for a condition that decides something else (which alternative applies, the priority).
    ``facts``: the names of the values ``check`` is given after the boolean, in order."""

    name: str
    reason: str | None
    says: str
    facts: tuple[str, ...] = ()


class Silent:
    """The decider's recorder: records nothing."""

    __slots__ = ()

    def check(self, condition: Condition, holds: bool, *facts: object) -> bool:
        return holds


SILENT = Silent()


class Trace:
    """Records each condition checked, in order: (condition, holds, facts as given)."""

    __slots__ = ("steps",)

    def __init__(self) -> None:
        self.steps: list[tuple[Condition, bool, tuple]] = []

    def check(self, condition: Condition, holds: bool, *facts: object) -> bool:
        if len(facts) != len(condition.facts):
            raise TypeError(f"{condition.name}: {len(facts)} facts given, {len(condition.facts)} declared")
        self.steps.append((condition, bool(holds), facts))
        return holds
