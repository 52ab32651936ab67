"""What a rule returns: eligible or not, where, with which priority, and every failed condition."""

from __future__ import annotations

from dataclasses import dataclass, field

# docs/policy.md, "Reason codes": the order in which an ineligible decision lists them.
REASON_ORDER: tuple[str, ...] = (
    "ALREADY_SETTLED",
    "NO_VALID_PERMIT",
    "DISTRICT_NOT_COVERED",
    "INSUFFICIENT_CONTRIBUTIONS",
    "GUARDIAN_NO_VALID_PERMIT",
    "DISTRICT_MISMATCH",
    "UNDER_AGE",
    "OVER_AGE",
    "NOT_SETTLED",
    "IN_EMPLOYEE_MEDICAL_INSURANCE",
    "OWNS_HOME",
    "INCOME_ABOVE_LIMIT",
    "OUT_OF_WORKING_AGE",
    "EMPLOYED",
    "NO_RECENT_EMPLOYMENT",
)


@dataclass(frozen=True, slots=True)
class Verdict:
    district: str | None
    reasons: tuple[str, ...] = ()
    priority: bool = False
    basis: tuple[str, ...] = field(default=())

    @property
    def eligible(self) -> bool:
        return not self.reasons
