"""Where a rule lives: one module per entitlement of docs/policy.md, each next to its clause.

``ROSTER_RULES`` decide about a person (settlement, family doctor, medical insurance,
unemployment registration, temporary assistance);
``APPLICATION_RULES`` decide about one application on its subject's situation (education,
housing). Every figure a rule reads is a dated parameter in ``params/*.toml`` (``params.py``);
a rule whose shape changes on a date keeps each version (``versions.py``).
"""

import datetime as dt
import hashlib

from services.rules import civil, education, employment, health, housing, medins, params, settlement
from services.rules.verdict import REASON_ORDER, Verdict

ROSTER_RULES = {m.ENTITLEMENT: m for m in (settlement, health, medins, employment, civil)}
APPLICATION_RULES = {m.ENTITLEMENT: m for m in (education, housing)}
ALL_RULES = {**ROSTER_RULES, **APPLICATION_RULES}


def in_force(day: dt.date) -> str:
    """A digest of the rules in force on ``day``: every parameter value and every formula dated on
    or before it, from the parameter folder in force (for what is read as of an application's date,
    every one: ``params.Folder.history``). It changes on the date a value or a formula read on D
    takes effect, and when an edit changes one a decision may read; the scheduler then decides
    everyone again (services/scheduler/service.py)."""
    h = hashlib.blake2b(params.active().history(day).encode(), digest_size=12)
    for entitlement, rule in sorted(ALL_RULES.items()):
        for since in rule.FORMULAS.dates():
            if since <= day or entitlement in APPLICATION_RULES:
                h.update(f"{entitlement}|{since.isoformat()}\n".encode())
    return h.hexdigest()


__all__ = ["ROSTER_RULES", "APPLICATION_RULES", "ALL_RULES", "Verdict", "REASON_ORDER", "in_force"]
