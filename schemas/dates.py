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
# the day the income ceiling and the other figures of housing security start. The figures are rule
# parameters (services/rules/params/housing.*.toml), read as of the date of application; ingress
# checks the date without reading the rules (an application dated earlier could not be decided),
# and tests/test_vocabulary.py fails when the two disagree.
HOUSING_FIRST_DAY = dt.date(2021, 1, 1)
# The first ``sqrq`` the school feed accepts (``ingress:edu:application``): the day the ages of the
# education rule start (services/rules/params/education.*.toml), the same way.
SCHOOL_FIRST_DAY = dt.date(2021, 1, 1)
