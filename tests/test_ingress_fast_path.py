"""The contribution feed's fast path (a msgspec-typed decode) against the field-by-field checks:
on any payload it yields the same event, or steps aside (None) and lets the checks name the
problem. It must never accept what the checks reject."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codes import INSURANCE_TYPES
from services.ingress import contribution, limits
from services.ingress.fields import Reject
from tests.fuzz_payloads import payloads
from tests.people import contribution as record
from tests.people import make_id


def slow(raw: bytes):
    rec = limits.parse(raw)
    if isinstance(rec, Reject):
        return None
    try:
        return contribution.normalize(rec, "1-0", raw)
    except Reject:
        return None


def agree(raw: bytes) -> bool:
    quick = contribution.fast(raw, "1-0")
    return quick is None or quick == slow(raw)


@settings(max_examples=3000, deadline=None)
@given(payloads("hrss:contribution"))
def test_fast_path_never_accepts_what_the_checks_reject(raw):
    assert agree(raw)


FIELDS = ["LSH", "AAC002", "AAC003", "AAE140", "AAE002", "AAB301", "AAE078"]
TRICKY = ["", " ", "202513", "202500", "2025011", "202501\n", "３２０１０２", "32010", "3201021", None, 1, True,
          "110 ", "1\n", "x" * 30, "32010219900101123x", "320102199001011234"]


@settings(max_examples=2000, deadline=None)
@given(st.sampled_from(FIELDS), st.sampled_from(TRICKY), st.booleans())
def test_each_field_spelled_wrongly_or_dropped(name, value, drop):
    rec = record(make_id(), "202501")
    if drop:
        del rec[name]
    else:
        rec[name] = value
    assert agree(msgspec.json.encode(rec))


def test_well_formed_records_take_the_fast_path():
    pid = make_id()
    raw = msgspec.json.encode(record(pid.lower(), "202501", aae140="310", region="310100", paid="0"))
    quick = contribution.fast(raw, "7-0")
    assert quick is not None and quick == slow(raw).__class__(**{**msgspec.structs.asdict(slow(raw)),
                                                                 "source_id": "7-0"})
    assert (quick.person_id, quick.month, quick.paid, quick.region) == (pid.upper(), 202501, False, "310100")


def test_fast_path_knows_the_same_insurance_types():
    import typing

    hints = typing.get_type_hints(contribution._Wire)
    assert set(typing.get_args(hints["AAE140"])) == INSURANCE_TYPES


def test_anything_but_the_seven_fields_steps_aside():
    """An extra field, a field twice (even spelled with an escape), a nested value: the typed decode
    would take the last of two values and skip what it does not know, so ``normalize`` decides."""
    raw = msgspec.json.encode(record(make_id(), "202501"))
    twice = raw[:-1] + b', "AAE002": "202502"}'
    escaped = raw[:-1] + rb', "AAE\u003002": "202502"}'  # "AAE002" again
    for variant in (raw[:-1] + b', "extra": 1}', raw[:-1] + b', "x": [[[]]]}', twice, escaped):
        assert contribution.fast(variant, "1-0") is None, variant
    assert contribution.fast(raw, "1-0") is not None
    assert isinstance(slow(raw[:-1] + b', "extra": 1}'), contribution.ContributionRecorded)
