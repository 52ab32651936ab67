"""``health.family_doctor`` — clauses （七）（十二）, outlet ``outlet:health``.

（十二）: 将农业转移落户人口纳入我市基层医疗卫生服务体系管理范围 … 自愿就近选择家庭医生团队进行签约;
（七）: 居住证持有人 … 在居住地依法享有基本公共服务. Settled people are registered residents.
Settlement wins when both hold. Each condition goes through ``why.check`` (``services/rules/why.py``).
"""

from __future__ import annotations

import datetime as dt

from services.picture.picture import Picture
from services.rules.verdict import Verdict
from services.rules.versions import Formulas
from services.rules.why import SILENT, Condition

ENTITLEMENT = "health.family_doctor"
BASIS = ("（七）", "（十二）")

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
