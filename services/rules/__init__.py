"""Where a rule lives: one module per entitlement of docs/policy.md, each next to its clause.

``ROSTER_RULES`` decide about a person (settlement, family doctor, medical insurance,
unemployment registration, temporary assistance);
``APPLICATION_RULES`` decide about one application on its subject's situation (education,
housing). Figures the policy leaves to the city are dated parameters in ``params/*.toml``.
"""

from services.rules import civil, education, employment, health, housing, medins, settlement
from services.rules.verdict import REASON_ORDER, Verdict

ROSTER_RULES = {m.ENTITLEMENT: m for m in (settlement, health, medins, employment, civil)}
APPLICATION_RULES = {m.ENTITLEMENT: m for m in (education, housing)}
ALL_RULES = {**ROSTER_RULES, **APPLICATION_RULES}

__all__ = ["ROSTER_RULES", "APPLICATION_RULES", "ALL_RULES", "Verdict", "REASON_ORDER"]
