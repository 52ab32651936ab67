"""``settlement.four_districts`` — clause （六）, outlet ``outlet:psb``.

（六）: 全面放宽浦口、六合、溧水、高淳区城镇地区落户限制，对持有上述四区居住证、缴纳城镇职工社会保险6个月以上的人员，即可办理落户.
An invitation to apply, never a settlement: clause （二） forbids settling anyone against their will.
The four districts and the 6 months are dated parameters (``params/settlement.*.toml``) in force on D.
Each condition goes through ``why.check`` (``services/rules/why.py``), which explains it.
"""

from __future__ import annotations

import datetime as dt

from schemas.districts import DISTRICTS as NANJING
from services.picture.picture import Picture
from services.rules import params
from services.rules.verdict import Verdict
from services.rules.versions import Formulas
from services.rules.why import SILENT, Condition

ENTITLEMENT = "settlement.four_districts"
BASIS = ("（六）",)
DISTRICTS = params.declare("settlement.districts", params.Codes("Nanjing district codes", NANJING))
MIN_MONTHS = params.declare("settlement.min_employee_months", params.Whole(1, 600))

NOT_SETTLED = Condition("not_settled", "ALREADY_SETTLED", "not settled (落户) in Nanjing", ("settlement",))
VALID_PERMIT = Condition("valid_permit", "NO_VALID_PERMIT", "a valid residence permit on D", ("permit", "on"))
DISTRICT = Condition("district_covered", "DISTRICT_NOT_COVERED",
                     "the permit's district is one of settlement.districts (浦口, 六合, 溧水, 高淳); checked when "
                     "there is a valid permit",
                     ("district", "districts"))
MONTHS = Condition("employee_months", "INSUFFICIENT_CONTRIBUTIONS",
                   "at least settlement.min_employee_months (6) recognised employee months (employee schemes paid "
                   "in Jiangsu), counted together",
                   ("months", "required", "by_month"))
CONDITIONS = (NOT_SETTLED, VALID_PERMIT, DISTRICT, MONTHS)


def formula(pic: Picture, day: dt.date, why=SILENT) -> Verdict:
    reasons = []
    if not why.check(NOT_SETTLED, not pic.settled, pic.person):  # 1. not settled
        reasons.append("ALREADY_SETTLED")
    permit = pic.valid_permit(day)
    if not why.check(VALID_PERMIT, permit is not None, pic.person.permit, day):  # 2. a valid permit on D
        reasons.append("NO_VALID_PERMIT")
    elif not why.check(DISTRICT, permit.district in (districts := DISTRICTS.on(day)).value, permit.district,
                       districts):
        reasons.append("DISTRICT_NOT_COVERED")  # 3. in one of the four districts
    months, required = pic.recognised_employee_months(), MIN_MONTHS.on(day)
    if not why.check(MONTHS, months >= required.value, months, required, pic):  # 4. ≥ 6 recognised months
        reasons.append("INSUFFICIENT_CONTRIBUTIONS")
    return Verdict(district=permit.district if permit else None, reasons=tuple(reasons), basis=BASIS)


FORMULAS = Formulas(ENTITLEMENT, formula, CONDITIONS, __name__)
# the formula in force on D (``services/rules/versions.py``): while there is one, that formula
decide = formula
