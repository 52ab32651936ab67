"""``ingress:hrss:contribution`` — Human Resources and Social Security Bureau (市人社局)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from schemas.codes import ARRIVAL, INSURANCE_TYPES
from schemas.events import ContributionRecorded
from schemas.ids import id_problem
from services.ingress import fields as f
from services.ingress.limits import flat_quotes

FEED = "hrss:contribution"


def normalize(rec: dict[str, Any], source_id: str, raw: bytes) -> ContributionRecorded:
    record_id = f.text(rec, "LSH")
    person = f.id_number(rec, "AAC002")
    f.text(rec, "AAC003")  # required; not carried further
    insurance_type = f.code(rec, "AAE140", INSURANCE_TYPES)
    month = f.month(rec, "AAE002")
    if int(person[6:12]) > month:
        raise f.Reject("BAD_ID", "field 'AAC002' is an ID number born after the contribution month 'AAE002'")
    region = f.text(rec, "AAB301")
    if len(region) != 6 or not region.isascii() or not region.isdigit():
        raise f.Reject("BAD_REGION", "field 'AAB301' is not a 6-digit region code")
    paid = ARRIVAL[f.code(rec, "AAE078", ARRIVAL)]
    return ContributionRecorded(
        record_id=record_id,
        source_id=source_id,
        person_id=person,
        insurance_type=insurance_type,
        month=month,
        region=region,
        paid=paid,
    )


# -- the fast path: the monthly burst is millions of these -----------------------------------
class _Wire(msgspec.Struct):
    """A record as docs/contract.md spells it, checked by msgspec while it decodes (in C). A record
    this does not accept goes through ``normalize``, which names the exact problem; this accepts
    nothing that ``normalize`` rejects (tests/test_ingress_fast_path.py)."""

    LSH: Annotated[str, msgspec.Meta(min_length=1)]
    AAC002: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{17}[0-9Xx]\Z")]
    AAC003: Annotated[str, msgspec.Meta(min_length=1)]
    AAE140: Literal["110", "120", "210", "310", "410", "510", "170", "390"]
    AAE002: Annotated[str, msgspec.Meta(pattern=r"^(199[0-9]|20[0-9][0-9])(0[1-9]|1[0-2])\Z")]  # 199001-209912
    AAB301: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}\Z")]
    AAE078: Literal["0", "1"]


_wire = msgspec.json.Decoder(_Wire)


_QUOTES = flat_quotes(len(_Wire.__struct_fields__))


def fast(raw: bytes, source_id: str) -> ContributionRecorded | None:
    """A well-formed record straight from its bytes, or None: take ``normalize``.

    Only a flat object of exactly the seven fields (``limits.flat_quotes``): a duplicate field
    (which the typed decode would resolve to its last value), an extra field or any nesting
    takes ``normalize``, where ``limits.parse`` checks the payload's shape."""
    if raw.count(b'"') != _QUOTES:
        return None
    try:
        w = _wire.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return None
    if w.AAC002[6:12] > w.AAE002 or id_problem(w.AAC002) is not None:  # born after the month: 6 digits each
        return None
    return ContributionRecorded(
        record_id=w.LSH,
        source_id=source_id,
        person_id=w.AAC002.upper(),
        insurance_type=w.AAE140,
        month=int(w.AAE002),
        region=w.AAB301,
        paid=w.AAE078 == "1",
    )
