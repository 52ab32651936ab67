"""``civil.temporary_assistance`` — clause （十四）, outlet ``outlet:civil``.

（十四）: 临时救助制度覆盖到所有常住人口 … 探索市域范围内常住地申请: temporary assistance covers
every permanent resident, who applies where they live. The Civil Affairs Bureau (市民政局) wants the
roster of who may apply in each district. Settled people are registered residents; settlement wins
when both hold.
"""

from __future__ import annotations

import datetime as dt

from services.picture.picture import Picture
from services.rules.verdict import Verdict

ENTITLEMENT = "civil.temporary_assistance"
BASIS = ("（十四）",)


def decide(pic: Picture, day: dt.date) -> Verdict:
    if pic.settled:  # settled: the settlement district
        return Verdict(district=pic.settlement_district, basis=BASIS)
    permit = pic.valid_permit(day)
    if permit is not None:  # else a valid permit on D: its district
        return Verdict(district=permit.district, basis=BASIS)
    return Verdict(district=None, reasons=("NO_VALID_PERMIT",), basis=BASIS)
