"""``ingress:edu:application`` — Education Bureau (市教育局): school places (随迁子女)."""

from __future__ import annotations

from typing import Any

from schemas.codes import STAGES
from schemas.dates import SCHOOL_FIRST_DAY
from schemas.events import SchoolApplied
from services.ingress import fields as f

FEED = "edu:application"


def normalize(rec: dict[str, Any], source_id: str, raw: bytes) -> SchoolApplied:
    application_id = f.text(rec, "sqbh")
    f.text(rec, "xsxm")  # required; a minor's name is not carried further (PIPL Art. 28)
    child = f.id_number(rec, "xssfzh")
    guardian = f.id_number(rec, "jhrsfzh")
    if guardian == child:
        raise f.Reject("SAME_PERSON", "the guardian's ID number 'jhrsfzh' is the child's own")
    stage = f.code(rec, "xd", STAGES)
    district = f.district(rec, "sqqx")
    applied_on = f.date(rec, "sqrq", "YYYY/MM/DD", "YYYY年M月D日")
    if applied_on < SCHOOL_FIRST_DAY:
        raise f.Reject("BAD_DATE", f"'sqrq' is before {SCHOOL_FIRST_DAY.isoformat()}, when the figures of the education rule "
                                   "(the ages) start")
    f.born_by(child, "xssfzh", applied_on)
    f.born_by(guardian, "jhrsfzh", applied_on)
    return SchoolApplied(
        record_id=application_id,
        source_id=source_id,
        person_id=guardian,
        application_id=application_id,
        child_id=child,
        stage=stage,
        district=district,
        applied_on=applied_on,
    )
