"""Ingress normalization, pure and fast: ``understand(feed, entry_id, fields)`` on raw department
records (docs/contract.md, "Ingress") -> the canonical event, or a ``Reject`` with the specific reason
code of ``services/ingress/fields.py`` and a sentence for a person.

Choices documented here (the contract leaves them open; the tests pin what the code does):
* ``householdSize`` 2.5 (a JSON float) is ``WRONG_TYPE`` (the contract says "integer"), as is
  ``3.0`` and the string ``"3"``; ``0`` and negatives are ``BAD_NUMBER``.
* ``monthlyIncome`` of ``true`` or a list is ``WRONG_TYPE``; a non-numeric, NaN-like, infinite or
  negative value (number or string) is ``BAD_NUMBER``.
* A code given with the wrong JSON type (``"AAE078": 1``, ``"AAE140": 110``) is ``WRONG_TYPE``.
* An ID number with an impossible birth date *and* a correct check digit is ``BAD_ID``.
"""

from __future__ import annotations

import copy
import datetime as dt
import json

import pytest

from schemas.events import (
    ContributionRecorded,
    HousingApplied,
    PermitCancelled,
    PermitIssued,
    PermitMoved,
    PermitRenewed,
    SchoolApplied,
    Settled,
    encode_event,
)
from schemas.ids import check_digit
from services.ingress.fields import REASONS, Reject
from services.ingress.service import understand
from tests.people import contribution, housing, permit, school

FEEDS = ("psb:permit", "hrss:contribution", "edu:application", "housing:application")
ENTRY = "1764288000000-7"
BJ = dt.timezone(dt.timedelta(hours=8))


def _id(birth: str, seq: int, region: str = "340102") -> str:
    body = f"{region}{birth}{seq:03d}"
    return body + check_digit(body)


def _id_with_x(birth: str = "19850612", region: str = "320104") -> str:
    for seq in range(1000):
        body = f"{region}{birth}{seq:03d}"
        if check_digit(body) == "X":
            return body + "X"
    raise AssertionError("no X check digit")


ADULT = _id("19900101", 11)
GUARDIAN = _id("19850301", 12)
CHILD = _id("20180101", 13)
ID_X = _id_with_x()  # check character "X"
ID_x = ID_X[:17] + "x"  # the same person, spelled with lower-case x
CHILD_X = _id_with_x("20170505", "340104")
WRONG_CHECK = ADULT[:17] + str((int(ADULT[17]) + 1) % 10 if ADULT[17] != "X" else 0)
IMPOSSIBLE_BIRTH = _id("19900230", 14)  # 30 February, with a correct check digit
IMPOSSIBLE_MONTH = _id("19901301", 15)
assert WRONG_CHECK != ADULT and ADULT[17] != "X" and ID_X[17] == "X"


def encode(rec) -> bytes:
    return rec if isinstance(rec, bytes) else json.dumps(rec, ensure_ascii=False).encode()


def run(feed: str, rec):
    raw = encode(rec)
    return understand(feed, ENTRY, {b"payload": raw}), raw


def without(rec: dict, *names: str) -> dict:
    rec = copy.deepcopy(rec)
    for n in names:
        rec.pop(n, None)
    return rec


def with_(rec: dict, **kw) -> dict:
    rec = copy.deepcopy(rec)
    rec.update(kw)
    return rec


def assert_reject(out, reason: str, field: str | None = None) -> None:
    assert isinstance(out, Reject), f"expected {reason}, got {out!r}"
    assert out.reason == reason, f"expected {reason}, got {out.reason}: {out.detail}"
    assert isinstance(out.detail, str) and out.detail.strip(), "a Reject must carry a human detail"
    if field is not None:
        assert field in out.detail, f"detail should name the field {field!r}: {out.detail!r}"


# ---------------------------------------------------------------------------------------------
# Good records -> canonical events
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("qfrq", "yxqz"), [
    ("2025-01-01", "2027-12-31"),
    ("20250101", "20271231"),
    ("2025-01-01", "20271231"),
    ("20250101", "2027-12-31"),
])
def test_qf_issues_a_permit_each_date_spelling(qfrq, yxqz):
    rec = permit("QF", ADULT, jzzbh="NJ-0001", district="320111", qfrq=qfrq, yxqz=yxqz,
                 czsj="2025-01-01 09:08:07", ywlsh="GA-QF-1")
    out, _ = run("psb:permit", rec)
    assert out == PermitIssued(
        record_id="GA-QF-1", source_id=ENTRY, person_id=ADULT, permit_no="NJ-0001", district="320111",
        valid_from=dt.date(2025, 1, 1), valid_until=dt.date(2027, 12, 31), sector=None,
        at=dt.datetime(2025, 1, 1, 9, 8, 7, tzinfo=BJ))
    assert out.at.utcoffset() == dt.timedelta(hours=8)
    encode_event(out)


@pytest.mark.parametrize(("hylb", "sector"), [("HW", "HW"), ("GJ", "GJ"), ("ZZ", "ZZ"), (None, None), ("", None)])
def test_qf_sector_is_optional_and_other_codes_are_kept(hylb, sector):
    rec = permit("QF", ADULT, hylb=None)
    if hylb is not None:
        rec["hylb"] = hylb
    out, _ = run("psb:permit", rec)
    assert isinstance(out, PermitIssued) and out.sector == sector


def test_lower_case_x_in_an_id_number_is_upper_cased():
    out, _ = run("psb:permit", permit("QF", ID_x))
    assert isinstance(out, PermitIssued) and out.person_id == ID_X
    out, _ = run("hrss:contribution", contribution(ID_x, "202501"))
    assert isinstance(out, ContributionRecorded) and out.person_id == ID_X
    out, _ = run("edu:application", school(ID_x, CHILD_X[:17] + "x"))
    assert isinstance(out, SchoolApplied) and out.person_id == ID_X and out.child_id == CHILD_X
    out, _ = run("housing:application", housing(ID_x))
    assert isinstance(out, HousingApplied) and out.person_id == ID_X


@pytest.mark.parametrize(("qfrq", "yxqz"), [("2026-01-01", "2028-12-31"), ("20260101", "20281231")])
@pytest.mark.parametrize("jzdqh", ["320116", None, ""])
def test_qz_renews_with_optional_district(qfrq, yxqz, jzdqh):
    rec = permit("QZ", ADULT, jzzbh="NJ-0001", district=None, qfrq=qfrq, yxqz=yxqz, hylb="GJ",
                 czsj="2026-01-01 10:00:00", ywlsh="GA-QZ-1")
    if jzdqh is not None:
        rec["jzdqh"] = jzdqh
    out, raw = run("psb:permit", rec)
    assert out == PermitRenewed(
        record_id="GA-QZ-1", source_id=ENTRY, person_id=ADULT, permit_no="NJ-0001",
        valid_from=dt.date(2026, 1, 1), valid_until=dt.date(2028, 12, 31), district=jzdqh or None,
        sector="GJ", at=dt.datetime(2026, 1, 1, 10, 0, 0, tzinfo=BJ))


def test_qz_on_the_same_day_is_not_a_date_order_problem():
    out, _ = run("psb:permit", permit("QZ", ADULT, qfrq="2026-01-01", yxqz="20260101"))
    assert isinstance(out, PermitRenewed) and out.valid_from == out.valid_until == dt.date(2026, 1, 1)


def test_bg_moves_the_permit():
    rec = permit("BG", ID_x, jzzbh="NJ-0001", district="320118", czsj="2026-02-03 23:59:59", ywlsh="GA-BG-1")
    out, raw = run("psb:permit", rec)
    assert out == PermitMoved(record_id="GA-BG-1", source_id=ENTRY, person_id=ID_X, permit_no="NJ-0001",
                              district="320118", at=dt.datetime(2026, 2, 3, 23, 59, 59, tzinfo=BJ))


@pytest.mark.parametrize("jzdqh", ["320111", None])
def test_zx_cancels_the_permit_district_not_needed(jzdqh):
    rec = permit("ZX", ADULT, jzzbh="NJ-0001", district=jzdqh, czsj="2026-03-04 00:00:00", ywlsh="GA-ZX-1")
    out, raw = run("psb:permit", rec)
    assert out == PermitCancelled(record_id="GA-ZX-1", source_id=ENTRY, person_id=ADULT, permit_no="NJ-0001",
                                  at=dt.datetime(2026, 3, 4, 0, 0, 0, tzinfo=BJ))
    assert raw not in encode_event(out)  # no payload on the partition streams: it waits in held{...}


def test_lh_settles_on_the_date_of_czsj_without_permit_number():
    rec = permit("LH", ADULT, district="320105", czsj="2025-06-30 18:30:00", ywlsh="GA-LH-1")
    assert "jzzbh" not in rec and "qfrq" not in rec
    out, _ = run("psb:permit", rec)
    assert out == Settled(record_id="GA-LH-1", source_id=ENTRY, person_id=ADULT, district="320105",
                          on=dt.date(2025, 6, 30), at=dt.datetime(2025, 6, 30, 18, 30, tzinfo=BJ))


@pytest.mark.parametrize("op", ["QF", "QZ", "BG", "ZX", "LH"])
def test_permit_payload_with_odd_whitespace_and_escapes_is_understood(op):
    rec = permit(op, ADULT)
    raw = (" \r\n\t" + json.dumps(rec, ensure_ascii=True, indent=3) + "\n\n ").encode()
    out, _ = run("psb:permit", raw)
    assert not isinstance(out, Reject), out
    assert out.person_id == ADULT and out.record_id == rec["ywlsh"]
    assert b"\r\n" not in encode_event(out)  # events carry no payload


@pytest.mark.parametrize(("aae140", "region", "aae078", "paid"), [
    ("110", "320102", "1", True), ("120", "320118", "0", False), ("210", "320506", "1", True),
    ("310", "321002", "1", True), ("410", "110101", "1", True), ("510", "000000", "0", False),
    ("170", "320102", "1", True), ("390", "320102", "0", False),
])
def test_contribution_record(aae140, region, aae078, paid):
    rec = contribution(ADULT, "202412", aae140=aae140, region=region, paid=aae078, lsh="RS-1")
    out, _ = run("hrss:contribution", rec)
    assert out == ContributionRecorded(record_id="RS-1", source_id=ENTRY, person_id=ADULT,
                                       insurance_type=aae140, month=202412, region=region, paid=paid)


@pytest.mark.parametrize(("sqrq", "day"), [
    ("2026/03/01", dt.date(2026, 3, 1)),
    ("2026年3月1日", dt.date(2026, 3, 1)),
    ("2026年12月31日", dt.date(2026, 12, 31)),
    ("2024/02/29", dt.date(2024, 2, 29)),
])
@pytest.mark.parametrize("xd", ["XX", "CZ"])
def test_school_application(sqrq, day, xd):
    rec = school(GUARDIAN, CHILD, xd=xd, sqqx="320113", sqrq=sqrq, sqbh="JY-1")
    out, _ = run("edu:application", rec)
    assert out == SchoolApplied(record_id="JY-1", source_id=ENTRY, person_id=GUARDIAN, application_id="JY-1",
                                child_id=CHILD, stage=xd, district="320113", applied_on=day)


@pytest.mark.parametrize(("income", "value"), [
    (6000, 6000.0), (0, 0.0), (4500.5, 4500.5), ("6000", 6000.0), ("4500.50", 4500.5), ("0", 0.0),
])
@pytest.mark.parametrize(("occupation", "kept"), [
    ("sanitation", "sanitation"), ("public_transport", "public_transport"), ("astronaut", "astronaut"),
    (None, None),
])
def test_housing_application(income, value, occupation, kept):
    rec = housing(ADULT, size=4, income=income, owns=True, district="320105", occupation=occupation,
                  applied="2026-03-01", no="ZF-1")
    out, _ = run("housing:application", rec)
    assert out == HousingApplied(record_id="ZF-1", source_id=ENTRY, person_id=ADULT, application_id="ZF-1",
                                 household_size=4, monthly_income=value, owns_home=True, district="320105",
                                 occupation=kept, applied_on=dt.date(2026, 3, 1))
    assert type(out.monthly_income) is float
    encode_event(out)


def test_names_are_left_behind():
    for feed, rec in (("psb:permit", permit("QF", ADULT)), ("psb:permit", permit("LH", ADULT)),
                      ("hrss:contribution", contribution(ADULT, "202501")),
                      ("edu:application", school(GUARDIAN, CHILD))):
        out, _ = run(feed, rec)
        assert not isinstance(out, Reject)
        wire = encode_event(out)
        assert "张三".encode() not in wire and "小明".encode() not in wire


# ---------------------------------------------------------------------------------------------
# Rejections: one table per reason, a case per feed where it applies
# ---------------------------------------------------------------------------------------------

GOOD = {
    "psb:permit": permit("QF", ADULT, ywlsh="GA-1"),
    "hrss:contribution": contribution(ADULT, "202501", lsh="RS-1"),
    "edu:application": school(GUARDIAN, CHILD, sqbh="JY-1"),
    "housing:application": housing(ADULT, no="ZF-1"),
}


@pytest.mark.parametrize("feed", FEEDS)
def test_good_baseline_is_understood(feed):
    out, _ = run(feed, GOOD[feed])
    assert not isinstance(out, Reject), out


@pytest.mark.parametrize("feed", FEEDS)
@pytest.mark.parametrize("fields", [{}, {b"data": encode(permit("QF", ADULT))}, {b"Payload": b"{}"}],
                         ids=["empty-entry", "other-field", "wrong-case"])
def test_no_payload(feed, fields):
    assert_reject(understand(feed, ENTRY, fields), "NO_PAYLOAD")


INVALID_JSON = {
    "garbage": b"hello, world",
    "empty": b"",
    "blank": b" \r\n\t ",
    "truncated": b'{"ywlsh": "GA-1", "ywlx": ',
    "trailing-garbage": b'{"ywlsh": "GA-1"} {"x": 1}',
    "single-quotes": b"{'ywlsh': 'GA-1'}",
    "nan-literal": b'{"monthlyIncome": NaN}',
    "bom": b"\xef\xbb\xbf{}",
    "invalid-utf8-leading": b"\xff\xfe{}",
    "lone-surrogate-escape": b'{"xm": "\\ud800"}',
}


@pytest.mark.parametrize("feed", FEEDS)
@pytest.mark.parametrize("raw", list(INVALID_JSON.values()), ids=list(INVALID_JSON))
def test_invalid_json(feed, raw):
    out, _ = run(feed, raw)
    assert_reject(out, "INVALID_JSON")


def _utf8_broken(feed: str) -> bytes:
    """A good record with one invalid UTF-8 sequence inside a JSON string (a GBK-encoded name)."""
    name = {"psb:permit": "xm", "hrss:contribution": "AAC003", "edu:application": "xsxm",
            "housing:application": "applicationNo"}[feed]
    rec = with_(GOOD[feed], **{name: "@@"})
    return encode(rec).replace(b"@@", "张三".encode("gbk") + b"\xff")


@pytest.mark.parametrize("feed", FEEDS)
def test_invalid_utf8_inside_a_string_is_invalid_json(feed):
    raw = _utf8_broken(feed)
    out = understand(feed, ENTRY, {b"payload": raw})
    assert_reject(out, "INVALID_JSON")


NOT_AN_OBJECT = {"array": b'[{"ywlsh": "GA-1"}]', "empty-array": b"[]", "string": b'"QF"', "number": b"42",
                 "float": b"1.5", "null": b"null", "true": b"true"}


@pytest.mark.parametrize("feed", FEEDS)
@pytest.mark.parametrize("raw", list(NOT_AN_OBJECT.values()), ids=list(NOT_AN_OBJECT))
def test_not_an_object(feed, raw):
    out, _ = run(feed, raw)
    assert_reject(out, "NOT_AN_OBJECT")


# -- MISSING_FIELD: every required field of every feed (and every permit operation), absent/null/"" ---

PERMIT_COMMON = ("ywlsh", "ywlx", "sfzh", "xm", "czsj")
PERMIT_REQUIRED = {
    "QF": PERMIT_COMMON + ("jzzbh", "jzdqh", "qfrq", "yxqz"),
    "QZ": PERMIT_COMMON + ("jzzbh", "qfrq", "yxqz"),
    "BG": PERMIT_COMMON + ("jzzbh", "jzdqh"),
    "ZX": PERMIT_COMMON + ("jzzbh",),
    "LH": PERMIT_COMMON + ("jzdqh",),
}
PERMIT_OPTIONAL = {
    "QF": ("hylb",),
    "QZ": ("jzdqh", "hylb"),
    "BG": ("qfrq", "yxqz", "hylb"),
    "ZX": ("jzdqh", "qfrq", "yxqz", "hylb"),
    "LH": ("jzzbh", "qfrq", "yxqz", "hylb"),
}
OTHER_REQUIRED = {
    "hrss:contribution": ("LSH", "AAC002", "AAC003", "AAE140", "AAE002", "AAB301", "AAE078"),
    "edu:application": ("sqbh", "xsxm", "xssfzh", "jhrsfzh", "xd", "sqqx", "sqrq"),
    "housing:application": ("applicationNo", "applicantId", "householdSize", "monthlyIncome", "ownsHome",
                            "districtCode", "appliedOn"),
}


def _full_permit(op: str) -> dict:
    """A permit record of ``op`` carrying every field of the feed (so absence is ours to choose)."""
    rec = permit(op, ADULT, hylb="HW")
    rec.setdefault("jzzbh", "JZZ001")
    rec.setdefault("jzdqh", "320111")
    rec.setdefault("qfrq", "2025-01-01")
    rec.setdefault("yxqz", "2027-12-31")
    return rec


MISSING_CASES = [
    pytest.param("psb:permit", _full_permit(op), name, id=f"psb-{op}-{name}")
    for op, names in PERMIT_REQUIRED.items() for name in names
] + [
    pytest.param(feed, GOOD[feed], name, id=f"{feed.split(':')[0]}-{name}")
    for feed, names in OTHER_REQUIRED.items() for name in names
]


@pytest.mark.parametrize(("feed", "rec", "name"), MISSING_CASES)
@pytest.mark.parametrize("how", ["absent", "null"])
def test_missing_required_field(feed, rec, name, how):
    bad = without(rec, name) if how == "absent" else with_(rec, **{name: None})
    out, _ = run(feed, bad)
    assert_reject(out, "MISSING_FIELD", name)


NON_TEXT_REQUIRED = {"householdSize", "ownsHome"}


@pytest.mark.parametrize(("feed", "rec", "name"), [
    c for c in MISSING_CASES if c.values[2] not in NON_TEXT_REQUIRED
])
def test_empty_string_required_field(feed, rec, name):
    out, _ = run(feed, with_(rec, **{name: ""}))
    assert_reject(out, "MISSING_FIELD", name)


@pytest.mark.parametrize("name", sorted(NON_TEXT_REQUIRED))
def test_empty_string_for_a_non_text_required_field_is_missing(name):
    out, _ = run("housing:application", with_(GOOD["housing:application"], **{name: ""}))
    assert_reject(out, "MISSING_FIELD", name)


@pytest.mark.parametrize("op", list(PERMIT_OPTIONAL))
def test_permit_fields_not_required_for_the_operation(op):
    rec = without(_full_permit(op), *PERMIT_OPTIONAL[op])
    out, _ = run("psb:permit", rec)
    assert not isinstance(out, Reject), f"{op} without {PERMIT_OPTIONAL[op]}: {out!r}"
    assert out.record_id == rec["ywlsh"]


@pytest.mark.parametrize(("feed", "rec"), [
    ("edu:application", school(GUARDIAN, CHILD)),
    ("housing:application", housing(ADULT, occupation=None)),
])
def test_no_optional_fields_needed(feed, rec):
    out, _ = run(feed, rec)
    assert not isinstance(out, Reject), out


# -- WRONG_TYPE ------------------------------------------------------------------------------

WRONG_TYPE = [
    ("psb:permit", "ywlsh", 12345), ("psb:permit", "ywlx", ["QF"]), ("psb:permit", "sfzh", int(ADULT[:17])),
    ("psb:permit", "xm", {"name": "张三"}), ("psb:permit", "jzzbh", 1), ("psb:permit", "jzdqh", 320111),
    ("psb:permit", "qfrq", 20250101), ("psb:permit", "yxqz", 20271231), ("psb:permit", "czsj", 1735693200),
    ("psb:permit", "hylb", 1), ("psb:permit", "xm", True),
    ("hrss:contribution", "LSH", 1), ("hrss:contribution", "AAC002", int(ADULT[:17])),
    ("hrss:contribution", "AAE140", 110), ("hrss:contribution", "AAE002", 202501),
    ("hrss:contribution", "AAB301", 320102), ("hrss:contribution", "AAE078", 1),
    ("hrss:contribution", "AAE078", True), ("hrss:contribution", "AAC003", ["张三"]),
    ("edu:application", "sqbh", 7), ("edu:application", "xssfzh", 1), ("edu:application", "jhrsfzh", []),
    ("edu:application", "xd", 1), ("edu:application", "sqqx", 320111), ("edu:application", "sqrq", 20260301),
    ("edu:application", "xsxm", False),
    ("housing:application", "applicationNo", 1), ("housing:application", "applicantId", 1),
    ("housing:application", "householdSize", "3"), ("housing:application", "householdSize", 2.5),
    ("housing:application", "householdSize", 3.0), ("housing:application", "householdSize", True),
    ("housing:application", "monthlyIncome", True), ("housing:application", "monthlyIncome", [6000]),
    ("housing:application", "monthlyIncome", {"v": 1}),
    ("housing:application", "ownsHome", "false"), ("housing:application", "ownsHome", 0),
    ("housing:application", "districtCode", 320111), ("housing:application", "occupation", 1),
    ("housing:application", "appliedOn", 20260301),
]


@pytest.mark.parametrize(("feed", "name", "value"), WRONG_TYPE,
                         ids=[f"{f.split(':')[0]}-{n}-{type(v).__name__}" for f, n, v in WRONG_TYPE])
def test_wrong_type(feed, name, value):
    out, _ = run(feed, with_(GOOD[feed], **{name: value}))
    assert_reject(out, "WRONG_TYPE", name)


# -- BAD_ID / BAD_ID_CHECKSUM / SAME_PERSON ------------------------------------------------------

ID_FIELDS = [("psb:permit", "sfzh"), ("hrss:contribution", "AAC002"), ("edu:application", "xssfzh"),
             ("edu:application", "jhrsfzh"), ("housing:application", "applicantId")]
BAD_IDS = {
    "17-chars": ADULT[:17],
    "19-chars": ADULT + "1",
    "15-digit-old-style": ADULT[:6] + ADULT[8:17],
    "letter-inside": ADULT[:5] + "A" + ADULT[6:],
    "letter-check-not-x": ADULT[:17] + "Y",
    "x-inside": ADULT[:10] + "X" + ADULT[11:],
    "spaces": " " + ADULT + " ",
    "hyphenated": ADULT[:6] + "-" + ADULT[6:14] + "-" + ADULT[14:],
    "birth-feb-30": IMPOSSIBLE_BIRTH,
    "birth-month-13": IMPOSSIBLE_MONTH,
}


@pytest.mark.parametrize(("feed", "name"), ID_FIELDS)
@pytest.mark.parametrize("value", list(BAD_IDS.values()), ids=list(BAD_IDS))
def test_bad_id(feed, name, value):
    out, _ = run(feed, with_(GOOD[feed], **{name: value}))
    assert_reject(out, "BAD_ID", name)


def test_impossible_birth_dates_really_carry_a_valid_check_digit():
    for value in (IMPOSSIBLE_BIRTH, IMPOSSIBLE_MONTH):
        assert check_digit(value[:17]) == value[17]


@pytest.mark.parametrize(("feed", "name"), ID_FIELDS)
def test_full_width_digits_are_not_an_id_number(feed, name):
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in ID_X[:17]) + "X"
    out, _ = run(feed, with_(GOOD[feed], **{name: full_width}))
    assert_reject(out, "BAD_ID", name)


@pytest.mark.parametrize(("feed", "name"), ID_FIELDS)
@pytest.mark.parametrize("value", [WRONG_CHECK, ID_X[:17] + "0", ADULT[:17] + "X", ADULT[:17] + "x"],
                         ids=["digit", "digit-for-X", "X-for-digit", "x-for-digit"])
def test_bad_id_checksum(feed, name, value):
    out, _ = run(feed, with_(GOOD[feed], **{name: value}))
    assert_reject(out, "BAD_ID_CHECKSUM", name)


@pytest.mark.parametrize(("child", "guardian"), [
    (CHILD, CHILD), (CHILD_X, CHILD_X), (CHILD_X[:17] + "x", CHILD_X), (CHILD_X, CHILD_X[:17] + "x"),
])
def test_same_person(child, guardian):
    out, _ = run("edu:application", school(guardian, child))
    assert_reject(out, "SAME_PERSON", "jhrsfzh")


# -- UNKNOWN_CODE --------------------------------------------------------------------------------

UNKNOWN_CODES = [
    ("psb:permit", "ywlx", "XX"), ("psb:permit", "ywlx", "qf"), ("psb:permit", "ywlx", " QF"),
    ("psb:permit", "ywlx", "签发"),
    ("hrss:contribution", "AAE140", "999"), ("hrss:contribution", "AAE140", "11"),
    ("hrss:contribution", "AAE140", "110 "), ("hrss:contribution", "AAE078", "2"),
    ("hrss:contribution", "AAE078", "Y"), ("hrss:contribution", "AAE078", "true"),
    ("edu:application", "xd", "GZ"), ("edu:application", "xd", "xx"), ("edu:application", "xd", "小学"),
]


@pytest.mark.parametrize(("feed", "name", "value"), UNKNOWN_CODES)
def test_unknown_code(feed, name, value):
    out, _ = run(feed, with_(GOOD[feed], **{name: value}))
    assert_reject(out, "UNKNOWN_CODE", name)


# -- BAD_DATE / DATE_ORDER ------------------------------------------------------------------------

BAD_DATES = [
    # qfrq / yxqz: YYYY-MM-DD or YYYYMMDD
    ("psb:permit", "QF", "qfrq", "2025-02-30"), ("psb:permit", "QF", "qfrq", "20250230"),
    ("psb:permit", "QF", "qfrq", "2025/01/01"), ("psb:permit", "QF", "qfrq", "2025年1月1日"),
    ("psb:permit", "QF", "qfrq", "2025-1-1"), ("psb:permit", "QF", "qfrq", "2025-01-01 09:00:00"),
    ("psb:permit", "QF", "qfrq", "01-01-2025"), ("psb:permit", "QF", "qfrq", "2025-13-01"),
    ("psb:permit", "QF", "yxqz", "2027-02-29"), ("psb:permit", "QF", "yxqz", "2027/12/31"),
    ("psb:permit", "QZ", "qfrq", "2026-00-10"), ("psb:permit", "QZ", "yxqz", "2028年12月31日"),
    # czsj: YYYY-MM-DD HH:MM:SS
    ("psb:permit", "QF", "czsj", "2025-01-01"), ("psb:permit", "BG", "czsj", "2025-01-01T09:00:00"),
    ("psb:permit", "ZX", "czsj", "2025-01-01 09:00"), ("psb:permit", "LH", "czsj", "2025-01-01 24:00:00"),
    ("psb:permit", "LH", "czsj", "2025-02-30 09:00:00"), ("psb:permit", "QZ", "czsj", "20250101 090000"),
    ("psb:permit", "QF", "czsj", "2025-01-01 09:00:00+08:00"),
    # AAE002: YYYYMM
    ("hrss:contribution", None, "AAE002", "202513"), ("hrss:contribution", None, "AAE002", "202500"),
    ("hrss:contribution", None, "AAE002", "2025-01"), ("hrss:contribution", None, "AAE002", "20250101"),
    ("hrss:contribution", None, "AAE002", "2025"), ("hrss:contribution", None, "AAE002", "２０２５０１"),
    # sqrq: YYYY/MM/DD or YYYY年M月D日
    ("edu:application", None, "sqrq", "2026-03-01"), ("edu:application", None, "sqrq", "20260301"),
    ("edu:application", None, "sqrq", "2026/02/30"), ("edu:application", None, "sqrq", "2026年2月30日"),
    ("edu:application", None, "sqrq", "2026年13月1日"), ("edu:application", None, "sqrq", "2026年3月1"),
    # appliedOn: YYYY-MM-DD
    ("housing:application", None, "appliedOn", "2026/03/01"),
    ("housing:application", None, "appliedOn", "20260301"),
    ("housing:application", None, "appliedOn", "2026-02-30"),
    ("housing:application", None, "appliedOn", "2026年3月1日"),
]


@pytest.mark.parametrize(("feed", "op", "name", "value"), BAD_DATES,
                         ids=[f"{f.split(':')[0]}-{o or ''}-{n}-{v}" for f, o, n, v in BAD_DATES])
def test_bad_date(feed, op, name, value):
    rec = _full_permit(op) if op else GOOD[feed]
    out, _ = run(feed, with_(rec, **{name: value}))
    assert_reject(out, "BAD_DATE", name)


@pytest.mark.parametrize(("name", "value"), [("qfrq", "２０２５-01-01"), ("czsj", "２０２５-01-01 09:00:00")])
def test_full_width_digits_are_not_a_date(name, value):
    out, _ = run("psb:permit", with_(_full_permit("QF"), **{name: value}))
    assert_reject(out, "BAD_DATE", name)


@pytest.mark.parametrize("op", ["QF", "QZ"])
@pytest.mark.parametrize(("qfrq", "yxqz"), [("2026-01-01", "2025-12-31"), ("20260101", "2025-12-31"),
                                            ("2026-01-02", "20260101")])
def test_date_order(op, qfrq, yxqz):
    out, _ = run("psb:permit", permit(op, ADULT, qfrq=qfrq, yxqz=yxqz))
    assert_reject(out, "DATE_ORDER")
    assert "yxqz" in out.detail and "qfrq" in out.detail


# -- UNKNOWN_DISTRICT / BAD_REGION / BAD_NUMBER --------------------------------------------------

UNKNOWN_DISTRICTS = [
    ("psb:permit", "QF", "jzdqh", "320100"), ("psb:permit", "QF", "jzdqh", "320101"),
    ("psb:permit", "BG", "jzdqh", "320505"), ("psb:permit", "LH", "jzdqh", "110101"),
    ("psb:permit", "QZ", "jzdqh", "320199"), ("psb:permit", "QF", "jzdqh", "玄武"),
    ("edu:application", None, "sqqx", "320112"), ("edu:application", None, "sqqx", "32011"),
    ("housing:application", None, "districtCode", "320103"),
    ("housing:application", None, "districtCode", " 320111"),
]


@pytest.mark.parametrize(("feed", "op", "name", "value"), UNKNOWN_DISTRICTS)
def test_unknown_district(feed, op, name, value):
    rec = _full_permit(op) if op else GOOD[feed]
    out, _ = run(feed, with_(rec, **{name: value}))
    assert_reject(out, "UNKNOWN_DISTRICT", name)


@pytest.mark.parametrize("value", ["32010", "3201022", "32010A", "３２０１０２", "3201-2", " 32010"])
def test_bad_region(value):
    out, _ = run("hrss:contribution", with_(GOOD["hrss:contribution"], AAB301=value))
    assert_reject(out, "BAD_REGION", "AAB301")


@pytest.mark.parametrize("value", ["320102", "320506", "321002", "110101", "000000", "999999"])
def test_any_six_digit_region_is_understood(value):
    out, _ = run("hrss:contribution", with_(GOOD["hrss:contribution"], AAB301=value))
    assert isinstance(out, ContributionRecorded) and out.region == value


BAD_NUMBERS = [
    ("householdSize", 0), ("householdSize", -1),
    ("monthlyIncome", -1), ("monthlyIncome", -0.01), ("monthlyIncome", "-5"), ("monthlyIncome", "abc"),
    ("monthlyIncome", "NaN"), ("monthlyIncome", "nan"), ("monthlyIncome", "Infinity"),
    ("monthlyIncome", "inf"), ("monthlyIncome", "-inf"), ("monthlyIncome", "6,000"),
    ("monthlyIncome", "6000元"), ("monthlyIncome", "６０００"), ("monthlyIncome", "0x10"),
    ("monthlyIncome", "1e999"),
]


@pytest.mark.parametrize(("name", "value"), BAD_NUMBERS, ids=[f"{n}={v!r}" for n, v in BAD_NUMBERS])
def test_bad_number(name, value):
    out, _ = run("housing:application", with_(GOOD["housing:application"], **{name: value}))
    assert_reject(out, "BAD_NUMBER", name)


def test_underscore_is_not_a_numeric_string():
    out, _ = run("housing:application", with_(GOOD["housing:application"], monthlyIncome="1_000"))
    assert_reject(out, "BAD_NUMBER", "monthlyIncome")


def test_household_size_beyond_any_household_is_bad_number():
    out, _ = run("housing:application", with_(GOOD["housing:application"], householdSize=10**30))
    assert_reject(out, "BAD_NUMBER", "householdSize")


# -- every reason code is exercised here (UNKNOWN_PERMIT is the decider's: tests/test_quarantine_duplicates.py)

def test_every_reason_code_has_a_case():
    covered = {"NO_PAYLOAD", "TOO_LARGE", "INVALID_JSON", "NOT_AN_OBJECT", "DUPLICATE_FIELD", "MISSING_FIELD",
               "WRONG_TYPE", "BAD_ID",
               "BAD_ID_CHECKSUM", "SAME_PERSON", "UNKNOWN_CODE", "BAD_DATE", "DATE_ORDER", "UNKNOWN_DISTRICT",
               "BAD_REGION", "BAD_NUMBER"}
    assert set(REASONS) - covered == {"UNKNOWN_PERMIT"}  # TOO_LARGE, DUPLICATE_FIELD: tests/test_input_limits.py


def test_understand_never_raises_on_assorted_garbage():
    """Whatever arrives, understand() answers with an event or a Reject (it must never raise)."""
    samples = [b"{}", b'{"ywlx": "QF"}', b'{"sfzh": null}', b'{"a": {"b": [1, 2, {"c": null}]}}',
               b'{"householdSize": 1e400}', b'{"monthlyIncome": -0.0}', b"\x00", b'"\\u0000"',
               b'{"ywlsh": "\\u0000"}', "{\"xm\": \"\U0001F600\"}".encode()]
    for feed in FEEDS:
        for raw in samples:
            out = understand(feed, ENTRY, {b"payload": raw})
            assert isinstance(out, Reject) and out.detail.strip(), (feed, raw, out)
