"""The dates a record may carry (docs/contract.md, "Limits"): shared by ingress, IDs and rules.

Anything outside is a typo, and would overflow the date arithmetic downstream (the day after
9999-12-31 does not exist). Neutral vocabulary: imports nothing from ``services``
(tests/test_vocabulary.py).
"""

from __future__ import annotations

import datetime as dt

FIRST_DATE, LAST_DATE = dt.date(1900, 1, 1), dt.date(2099, 12, 31)
FIRST_MONTH, LAST_MONTH = 199001, 209912

# The first ``appliedOn`` the housing feed accepts (docs/contract.md, ``ingress:housing:application``):
# the day the income ceiling starts. The ceiling itself is a rule parameter
# (services/rules/params/housing.per_capita_income_max.toml); ingress checks the date without
# reading the rules, and tests/test_vocabulary.py fails when the two disagree.
HOUSING_FIRST_DAY = dt.date(2021, 1, 1)
