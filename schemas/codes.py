"""The departments' code lists, each code with its meaning (docs/contract.md, "Ingress").

Shared vocabulary: ingress accepts exactly these codes (else ``UNKNOWN_CODE``), the JSON Schemas
describe them (services/ingress/records.py), the picture packs AAE140 types and the rules read
their employee / resident / medical meaning from here. Imports nothing from ``services``
(tests/test_vocabulary.py).
"""

from __future__ import annotations

# -- AAE140, the social-insurance type (ingress:hrss:contribution) ---------------------------
# In this order, APPEND-ONLY: a type's position is stored, 3 bits of each packed contribution slot
# of every picture (services/picture/contributions.py); tests/test_vocabulary.py pins it. The 3
# bits are full: a ninth type needs a new slot layout (and a picture version).
INSURANCE_TYPES_IN_ORDER: tuple[str, ...] = ("110", "120", "210", "310", "410", "510", "170", "390")
INSURANCE_TYPE_NAMES: dict[str, str] = {
    "110": "enterprise pension", "120": "public-institution pension", "210": "unemployment",
    "310": "employee medical", "410": "work injury", "510": "maternity", "170": "resident pension",
    "390": "resident medical",
}
# Employee schemes: a paid month of any of them in Jiangsu is a month worked, clause （六）.
EMPLOYEE_TYPES = frozenset({"110", "120", "210", "310", "410", "510"})
# Resident schemes (no employer).
RESIDENT_TYPES = frozenset({"170", "390"})
INSURANCE_TYPES = EMPLOYEE_TYPES | RESIDENT_TYPES
# Employee medical insurance: whoever has it paid is not enrolled in resident medical insurance.
EMPLOYEE_MEDICAL = "310"

# -- AAE078, the arrival flag -------------------------------------------------------------------
ARRIVAL: dict[str, bool] = {"1": True, "0": False}

# -- ywlx, the permit operation (ingress:psb:permit) ------------------------------------------
OPERATIONS: dict[str, str] = {
    "QF": "issued 签发", "QZ": "renewed 签注 (new validity)", "BG": "residence district changed 变更",
    "ZX": "cancelled 注销", "LH": "settled 落户 (now a registered Nanjing resident)",
}

# -- xd, the school stage (ingress:edu:application) -------------------------------------------
STAGES: dict[str, str] = {"XX": "primary 小学", "CZ": "junior secondary 初中"}

# -- hylb, the permit holder's sector (free text: any other value means "other") --------------
SECTORS: dict[str, str] = {"HW": "sanitation 环卫", "GJ": "public transport 公交"}

# -- occupation, the housing applicant's sector (free text: any other value means "other") -----
OCCUPATIONS: dict[str, str] = {"sanitation": "sanitation 环卫", "public_transport": "public transport 公交"}
