"""The limits of docs/contract.md, "What bad input gets", at and just past each bound, on ``understand``
(pure): ``TOO_LARGE``, nesting depth, ``DUPLICATE_FIELD``, date and month ranges, birth dates,
non-finite and huge numbers. End to end through the running services: the bad-record tables of
tests/test_quarantine_duplicates.py, and tests/test_fuzz.py."""

from __future__ import annotations

import json

import msgspec
import pytest

from schemas.events import ContributionRecorded, HousingApplied, PermitRenewed, SchoolApplied, encode_event
from services.ingress import contribution, limits
from services.ingress.fields import Reject
from services.ingress.service import understand
from tests.people import contribution as contrib_record
from tests.people import housing, make_id, permit, school

FEEDS = ("psb:permit", "hrss:contribution", "edu:application", "housing:application")
ADULT, CHILD = make_id("19850101"), make_id("20180101")
GOOD = {
    "psb:permit": permit("QF", ADULT),
    "hrss:contribution": contrib_record(ADULT, "202501"),
    "edu:application": school(ADULT, CHILD),
    "housing:application": housing(ADULT),
}


def run(feed: str, raw: bytes | dict, **kw):
    raw = raw if isinstance(raw, bytes) else json.dumps(raw, ensure_ascii=False).encode()
    return understand(feed, "1-0", {b"payload": raw}, **kw)


def reason(out) -> str:
    return out.reason if isinstance(out, Reject) else "accepted"


def accepted(out) -> bool:
    if isinstance(out, Reject):
        return False
    encode_event(out)  # and nothing downstream trips on it
    return True


def padded(rec: dict, size: int) -> bytes:
    """``rec`` as JSON of exactly ``size`` bytes (an unknown field takes the rest)."""
    head = json.dumps({**rec, "pad": ""}, ensure_ascii=False).encode()
    return head[:-2] + b"x" * (size - len(head)) + b'"}'


# -- size -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("feed", FEEDS)
def test_size_at_the_limit_is_read_one_byte_over_is_too_large(feed):
    assert accepted(run(feed, padded(GOOD[feed], limits.MAX_PAYLOAD_BYTES)))
    out = run(feed, padded(GOOD[feed], limits.MAX_PAYLOAD_BYTES + 1))
    assert reason(out) == "TOO_LARGE" and "65,537 bytes" in out.detail


def test_ten_megabytes_is_too_large_and_the_limit_is_a_setting():
    big = padded(GOOD["psb:permit"], 10_000_000)
    assert reason(run("psb:permit", big)) == "TOO_LARGE"
    assert accepted(run("psb:permit", big, max_bytes=10_000_000))
    assert reason(run("psb:permit", padded(GOOD["psb:permit"], 2000), max_bytes=1999)) == "TOO_LARGE"


# -- depth ----------------------------------------------------------------------------------------

def nested(depth: int) -> bytes:
    """A good permit record with an unknown field whose value makes the JSON ``depth`` deep."""
    inner = b"[" * (depth - 2) + b"1" + b"]" * (depth - 2)
    return json.dumps(GOOD["psb:permit"]).encode()[:-1] + b', "deep": {"a": ' + inner + b"}}"


@pytest.mark.parametrize("depth", [1, 2, 31, 32])
def test_nesting_up_to_32_levels_is_read(depth):
    raw = nested(depth) if depth > 2 else json.dumps(GOOD["psb:permit"]).encode()
    assert accepted(run("psb:permit", raw))


@pytest.mark.parametrize("depth", [33, 34, 1000, 30_000])
def test_nesting_deeper_than_32_is_invalid_json(depth):
    out = run("psb:permit", nested(depth))
    assert reason(out) == "INVALID_JSON" and "32 levels" in out.detail


def test_100000_deep_is_invalid_json_not_an_exception():
    """The issue's finding: msgspec raises RecursionError (not a DecodeError) on this."""
    for raw in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000, b"[" * 100_000):
        for feed in FEEDS:
            assert reason(run(feed, raw, max_bytes=len(raw))) == "INVALID_JSON"


def test_brackets_inside_strings_are_not_nesting():
    rec = {**GOOD["psb:permit"], "note": "[[[[{{{{" * 100, "esc\\\"[": "\\\\\"{{{{" * 50}
    assert accepted(run("psb:permit", rec))


# -- duplicate fields -----------------------------------------------------------------------------

@pytest.mark.parametrize("feed", FEEDS)
def test_a_field_twice_is_duplicate_field(feed):
    rec = GOOD[feed]
    first = next(iter(rec))
    raw = json.dumps(rec, ensure_ascii=False).encode()
    assert reason(run(feed, raw[:-1] + f', "{first}": {json.dumps(rec[first])}}}'.encode())) == "DUPLICATE_FIELD"
    assert reason(run(feed, raw[:-1] + b', "x": 1, "x": 1}')) == "DUPLICATE_FIELD"  # an unknown field too
    assert reason(run(feed, raw[:-1] + b', "x": [{"y": 1, "y": 2}]}')) == "DUPLICATE_FIELD"  # nested
    assert accepted(run(feed, raw[:-1] + b', "x": [{"y": 1}, {"y": 2}], "y": {"x": 1}}'))  # same names apart


def test_a_field_twice_in_another_spelling_is_duplicate_field():
    """``"AAE002"`` and ``"AAE\\u003002"`` are the same key once decoded."""
    raw = json.dumps(GOOD["hrss:contribution"]).encode()
    out = run("hrss:contribution", raw[:-1] + rb', "AAE\u003002": "202502"}')
    assert reason(out) == "DUPLICATE_FIELD"


def test_the_contribution_fast_path_does_not_take_the_last_of_two_values():
    """The typed decode would accept this record with the month 202502."""
    raw = msgspec.json.encode(GOOD["hrss:contribution"])[:-1] + b',"AAE002":"202502"}'
    assert contribution.fast(raw.replace(b',"AAE002":"202501"', b""), "1-0") is not None  # the check is needed
    assert reason(run("hrss:contribution", raw)) == "DUPLICATE_FIELD"


def test_colons_and_quotes_inside_strings_are_not_keys():
    rec = {**GOOD["housing:application"], "note": 'a: "b": c', "d\":": "e:f"}
    assert isinstance(run("housing:application", rec), HousingApplied)


# -- dates ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "ok"), [
    ("1899-12-31", False), ("1900-01-01", True), ("2099-12-31", True), ("2100-01-01", False),
    ("9999-12-31", False), ("0001-01-01", False), ("99991231", False), ("20991231", True),
])
def test_permit_dates_between_1900_and_2099(value, ok):
    """``"yxqz": "9999-12-31"`` made the decider raise computing the day after it (issue 10)."""
    rec = permit("QZ", ADULT, qfrq="1900-01-01", yxqz=value)
    assert accepted(run("psb:permit", rec)) is ok
    if not ok:
        out = run("psb:permit", rec)
        assert reason(out) == "BAD_DATE" and "yxqz" in out.detail


@pytest.mark.parametrize(("field", "value", "ok"), [
    ("czsj", "2099-12-31 23:59:59", True), ("czsj", "2100-01-01 00:00:00", False),
    ("czsj", "1899-12-31 23:59:59", False), ("qfrq", "1899-12-31", False),
])
def test_operation_and_issue_dates_between_1900_and_2099(field, value, ok):
    rec = {**permit("QF", make_id("18990101"), qfrq="2025-01-01", yxqz="2099-12-31"), "sfzh": ADULT, field: value}
    assert reason(run("psb:permit", rec)) == ("accepted" if ok else "BAD_DATE")


@pytest.mark.parametrize(("value", "ok"), [
    ("198912", False), ("199001", True), ("209912", True), ("210001", False), ("999912", False), ("000101", False),
])
def test_contribution_months_between_199001_and_209912(value, ok):
    """``"AAE002": "999912"`` was accepted and then dead-lettered when it could not be packed."""
    rec = contrib_record(make_id("19000101"), value)
    assert reason(run("hrss:contribution", rec)) == ("accepted" if ok else "BAD_DATE")
    assert contribution.fast(json.dumps(rec).encode(), "1-0") is None or ok


@pytest.mark.parametrize(("feed", "field", "value", "ok"), [
    ("edu:application", "sqrq", "2099/12/31", True), ("edu:application", "sqrq", "2100/01/01", False),
    ("edu:application", "sqrq", "1899年12月31日", False),
    ("housing:application", "appliedOn", "2099-12-31", True), ("housing:application", "appliedOn", "2100-01-01", False),
])
def test_application_dates_up_to_2099(feed, field, value, ok):
    rec = {**GOOD[feed], field: value}
    assert reason(run(feed, rec)) == ("accepted" if ok else "BAD_DATE")


# -- birth dates ----------------------------------------------------------------------------------

BORN_2099 = make_id("20990101")


@pytest.mark.parametrize(("feed", "rec", "field"), [
    ("psb:permit", permit("QF", BORN_2099), "sfzh"),
    ("hrss:contribution", contrib_record(BORN_2099, "202501"), "AAC002"),
    ("edu:application", school(ADULT, BORN_2099), "xssfzh"),
    ("edu:application", school(BORN_2099, CHILD), "jhrsfzh"),
    ("housing:application", housing(BORN_2099), "applicantId"),
])
def test_an_id_born_after_the_record_is_bad_id(feed, rec, field):
    """An ID born in 2099 got an eligible family-doctor decision (issue 10)."""
    out = run(feed, rec)
    assert reason(out) == "BAD_ID" and field in out.detail


def test_born_on_the_record_date_is_read_the_day_after_is_not():
    assert accepted(run("psb:permit", permit("LH", make_id("20250101"), czsj="2025-01-01 09:00:00")))
    assert reason(run("psb:permit", permit("LH", make_id("20250102"), czsj="2025-01-01 09:00:00"))) == "BAD_ID"
    assert isinstance(run("hrss:contribution", contrib_record(make_id("20250131"), "202501")), ContributionRecorded)
    assert reason(run("hrss:contribution", contrib_record(make_id("20250201"), "202501"))) == "BAD_ID"
    assert isinstance(run("edu:application", school(ADULT, make_id("20260301"), sqrq="2026/03/01")), SchoolApplied)
    assert reason(run("edu:application", school(ADULT, make_id("20260302"), sqrq="2026/03/01"))) == "BAD_ID"


@pytest.mark.parametrize("feed", FEEDS)
def test_an_id_born_before_1900_is_bad_id(feed):
    old = make_id("18991231")
    rec = {"psb:permit": permit("QF", old), "hrss:contribution": contrib_record(old, "202501"),
           "edu:application": school(old, CHILD), "housing:application": housing(old)}[feed]
    assert reason(run(feed, rec)) == "BAD_ID"
    assert accepted(run(feed, json.loads(json.dumps(rec).replace(old, make_id("19000101")))))


# -- numbers --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "ok"), [
    (b"1000000000000", True), (b"1000000000000.0", True), (b"1000000000001", False), (b"1e12", True),
    (b"1.0000000001e12", False), (b'"1000000000000"', True), (b'"1000000000001"', False),
    (b"1" + b"0" * 400, False), (b"1e400", False), (b"-1e400", False), (b'"' + b"9" * 5000 + b'"', False),
])
def test_income_is_finite_and_at_most_10_to_the_12(value, ok):
    raw = json.dumps({**GOOD["housing:application"], "monthlyIncome": 0}).encode().replace(
        b'"monthlyIncome": 0', b'"monthlyIncome": ' + value)
    out = run("housing:application", raw)
    assert reason(out) == ("accepted" if ok else "BAD_NUMBER"), out


@pytest.mark.parametrize("feed", FEEDS)
def test_a_non_finite_number_anywhere_is_bad_number(feed):
    """msgspec raises ValidationError (no DecodeError) on 1e400 in any field, known or not."""
    raw = json.dumps(GOOD[feed]).encode()[:-1] + b', "extra": [1e400]}'
    assert reason(run(feed, raw)) == "BAD_NUMBER"


def test_huge_integers_elsewhere_are_ignored_like_any_unknown_field():
    raw = json.dumps(GOOD["psb:permit"]).encode()[:-1] + b', "extra": ' + b"9" * 1000 + b"}"
    assert accepted(run("psb:permit", raw))


def test_renewal_keeps_reading_good_records():
    """The bounds leave ordinary records alone."""
    out = run("psb:permit", permit("QZ", ADULT, qfrq="2026-01-01", yxqz="2028-12-31"))
    assert isinstance(out, PermitRenewed)
