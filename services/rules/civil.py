"""``civil.temporary_assistance`` — clause （十四）, outlet ``outlet:civil``.

（十四）: 临时救助制度覆盖到所有常住人口 … 探索市域范围内常住地申请: temporary assistance covers every
permanent resident, who applies where they live. The Civil Affairs Bureau (市民政局) wants the roster
of who may apply in each district. Settled people are registered residents; settlement wins when
both hold (docs/policy.md). Each condition goes through ``why.check`` (``services/rules/why.py``).
"""

from __future__ import annotations

import datetime as dt

from services.picture.picture import Picture
from services.rules.verdict import Verdict
from services.rules.versions import Formulas
from services.rules.why import SILENT, Condition

ENTITLEMENT = "civil.temporary_assistance"
BASIS = ("（十四）",)

SETTLED = Condition("settled", None, "settled (落户) in Nanjing: eligible in the settlement district, "
                                     "which wins over a permit's", ("settlement",))
VALID_PERMIT = Condition("valid_permit", "NO_VALID_PERMIT",
                         "else, a valid residence permit on D: eligible in its district", ("permit", "on"))
CONDITIONS = (SETTLED, VALID_PERMIT)


def formula(pic: Picture, day: dt.date, why=SILENT) -> Verdict:
    if why.check(SETTLED, pic.settled, pic.person):
        return Verdict(district=pic.settlement_district, basis=BASIS)
    permit = pic.valid_permit(day)
    if why.check(VALID_PERMIT, permit is not None, pic.person.permit, day):
        return Verdict(district=permit.district, basis=BASIS)
    return Verdict(district=None, reasons=("NO_VALID_PERMIT",), basis=BASIS)


FORMULAS = Formulas(ENTITLEMENT, formula, CONDITIONS, __name__)
# the formula in force on D (``services/rules/versions.py``): while there is one, that formula
decide = formula
