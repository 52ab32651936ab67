"""``health.family_doctor`` — clauses （七）（十二）, outlet ``outlet:health``.

（十二）: 将农业转移落户人口纳入我市基层医疗卫生服务体系管理范围 … 自愿就近选择家庭医生团队进行签约;
（七）: 居住证持有人 … 在居住地依法享有基本公共服务. Settled people are registered residents.
Settlement wins when both hold.
"""

from __future__ import annotations

import datetime as dt

from services.picture.picture import Picture
from services.rules.verdict import Verdict

ENTITLEMENT = "health.family_doctor"
BASIS = ("（七）", "（十二）")


def decide(pic: Picture, day: dt.date) -> Verdict:
    if pic.settled:
        return Verdict(district=pic.settlement_district, basis=BASIS)
    permit = pic.valid_permit(day)
    if permit is not None:
        return Verdict(district=permit.district, basis=BASIS)
    return Verdict(district=None, reasons=("NO_VALID_PERMIT",), basis=BASIS)
