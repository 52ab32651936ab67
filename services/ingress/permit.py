"""``ingress:psb:permit`` — Public Security Bureau (市公安局): residence permits and settlement."""

from __future__ import annotations

from typing import Any

from schemas.codes import OPERATIONS
from schemas.events import Event, PermitCancelled, PermitIssued, PermitMoved, PermitRenewed, Settled
from services.ingress import fields as f

FEED = "psb:permit"


def normalize(rec: dict[str, Any], source_id: str, raw: bytes) -> Event:
    record_id = f.text(rec, "ywlsh")
    op = f.code(rec, "ywlx", OPERATIONS)
    person = f.id_number(rec, "sfzh")
    f.text(rec, "xm")  # required by the contract; not carried further (minimum scope)
    at = f.beijing_time(rec, "czsj")
    f.born_by(person, "sfzh", at.date())
    common = {"record_id": record_id, "source_id": source_id, "person_id": person, "at": at}
    if op == "LH":
        return Settled(district=f.district(rec, "jzdqh"), on=at.date(), **common)
    permit_no = f.text(rec, "jzzbh")
    if op == "ZX":
        return PermitCancelled(permit_no=permit_no, **common)
    if op == "BG":
        return PermitMoved(permit_no=permit_no, district=f.district(rec, "jzdqh"), **common)
    valid_from = f.date(rec, "qfrq", "YYYY-MM-DD", "YYYYMMDD")
    valid_until = f.date(rec, "yxqz", "YYYY-MM-DD", "YYYYMMDD")
    if valid_until < valid_from:
        raise f.Reject("DATE_ORDER", "'yxqz' (valid until) is before 'qfrq' (issued)")
    sector = f.optional_text(rec, "hylb")
    if op == "QF":
        return PermitIssued(
            permit_no=permit_no,
            district=f.district(rec, "jzdqh"),
            valid_from=valid_from,
            valid_until=valid_until,
            sector=sector,
            **common,
        )
    return PermitRenewed(
        permit_no=permit_no,
        valid_from=valid_from,
        valid_until=valid_until,
        district=f.district(rec, "jzdqh", required=False),
        sector=sector,
        **common,
    )
