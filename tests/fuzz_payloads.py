"""Hypothesis strategies for department payloads: random bytes, wrong types, missing and extra
fields, huge strings, odd Unicode and boundary dates, built around valid records of each feed."""

from __future__ import annotations

import json

from hypothesis import strategies as st

from tests.people import contribution, housing, make_id, permit, school

FEEDS = ("psb:permit", "hrss:contribution", "edu:application", "housing:application")

_adult, _child = make_id("19880229", seq=1), make_id("20180830", seq=2)
BASES = {
    "psb:permit": [permit(op, _adult, ywlsh=f"GA{op}") for op in ("QF", "QZ", "BG", "ZX", "LH")],
    "hrss:contribution": [contribution(_adult, "202402", lsh="RS1")],
    "edu:application": [school(_adult, _child, sqbh="JY1"), school(_adult, _child, sqbh="JY2", sqrq="2026年3月1日")],
    "housing:application": [housing(_adult, no="ZF1"), housing(_adult, no="ZF2", income="4999.5", occupation="sanitation")],
}

odd_text = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
    st.sampled_from(["", " ", "\u0000", "\ud7ff", "ｘ", "３２０１１１", "𠀀", "\u202e320111", "null", "NaN"]),
    st.just("x" * 100_000),  # a huge string
)
boundary_dates = st.sampled_from([
    "0000-01-01", "0001-01-01", "9999-12-31", "2024-02-29", "2023-02-29", "20240229", "20230229",
    "2026/02/29", "2024/02/29", "2024年2月29日", "2024年13月1日", "2020-12-31", "2021-01-01",
    "2022-06-30", "2022-07-01", "2026-11-28 00:00:00", "2026-11-28 24:00:00", "1900-01-01 00:00:00",
])
wrong_types = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                        st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(),
                                                                              max_size=2))
field_value = st.one_of(odd_text, boundary_dates, wrong_types, st.integers(-10**30, 10**30))


@st.composite
def mutated_record(draw, feed: str) -> bytes:
    rec = dict(draw(st.sampled_from(BASES[feed])))
    for key in draw(st.lists(st.sampled_from(sorted(rec)), max_size=3, unique=True)):
        action = draw(st.sampled_from(["drop", "replace", "replace"]))
        if action == "drop":
            rec.pop(key)
        else:
            rec[key] = draw(field_value)
    for key in draw(st.lists(st.text(max_size=8), max_size=2)):  # extra fields
        rec[key] = draw(field_value)
    return json.dumps(rec, ensure_ascii=draw(st.booleans())).encode()


def payloads(feed: str):
    return st.one_of(
        mutated_record(feed),
        mutated_record(feed),
        st.binary(max_size=64),  # random bytes
        st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                     max_leaves=6).map(lambda v: json.dumps(v).encode()),
    )


any_feed_payload = st.sampled_from(FEEDS).flatmap(lambda f: st.tuples(st.just(f), payloads(f)))


# -- the limits of docs/contract.md, "What bad input gets": at and just past each bound ---------------
MAX_BYTES = 65_536  # PERMITBUS_MAX_PAYLOAD_BYTES' default
DATE_FIELDS = {  # field -> its spellings, as strftime formats
    "psb:permit": {"qfrq": ("%Y-%m-%d", "%Y%m%d"), "yxqz": ("%Y-%m-%d", "%Y%m%d"), "czsj": ("%Y-%m-%d 09:00:00",)},
    "hrss:contribution": {},
    "edu:application": {"sqrq": ("%Y/%m/%d", "%Y年%-m月%-d日")},
    "housing:application": {"appliedOn": ("%Y-%m-%d",)},
}
ID_FIELDS = {"psb:permit": ("sfzh",), "hrss:contribution": ("AAC002",), "edu:application": ("xssfzh", "jhrsfzh"),
             "housing:application": ("applicantId",)}
NUMBER_FIELDS = {"housing:application": ("monthlyIncome", "householdSize")}
edge_days = st.sampled_from(["1899-12-31", "1900-01-01", "1900-01-02", "2099-12-30", "2099-12-31", "2100-01-01",
                             "9999-12-31", "0001-01-01", "1970-01-01"])
edge_months = st.sampled_from(["198912", "199001", "199002", "209911", "209912", "210001", "999912", "000001"])
edge_births = st.sampled_from(["18991231", "19000101", "19000102", "20250101", "20261128", "20990101", "20991231"])
edge_numbers = st.sampled_from([b"1e400", b"-1e400", b"1e308", b"1.7976931348623157e309", b"1e12", b"1e12.5",
                                b"1000000000000", b"1000000000001", b"999999999999.99", b"1" + b"0" * 400,
                                b"-0", b"0.0", b'"1e400"', b'"1000000000001"', b'"1000000000000"'])
edge_depths = st.sampled_from([31, 32, 33, 34, 100, 1000, 30_000])
edge_sizes = st.sampled_from([MAX_BYTES - 1, MAX_BYTES, MAX_BYTES + 1, MAX_BYTES + 1000])  # 10 MB: test_input_limits
_PLACE = "\x00placeholder\x00"


def _with_raw(rec: dict, name: str, token: bytes) -> bytes:
    """``rec`` as JSON with the value of ``name`` replaced by a raw JSON token (``1e400``...)."""
    return json.dumps({**rec, name: _PLACE}).encode().replace(json.dumps(_PLACE).encode(), token)


def _nest(depth: int) -> bytes:
    return b"[" * depth + b"0" + b"]" * depth


@st.composite
def extreme_record(draw, feed: str) -> bytes:
    """A record of ``feed`` (valid, or mutated as ``mutated_record`` does) with one extreme value:
    a date, month or birth date at or past its bound, a huge or non-finite number, deep nesting, a
    duplicate field, a size at or past the limit."""
    rec = dict(draw(st.sampled_from(BASES[feed])))
    kinds = ["id", "number", "deep", "dup", "size"] + (["date"] if DATE_FIELDS[feed] else []) \
        + (["month"] if feed == "hrss:contribution" else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "date":
        name, spellings = draw(st.sampled_from(sorted(DATE_FIELDS[feed].items())))
        day = draw(edge_days)
        y, m, d = int(day[:4]), int(day[5:7]), int(day[8:])
        spelling = draw(st.sampled_from(spellings))
        rec[name] = (spelling.replace("%Y", f"{y:04d}").replace("%m", f"{m:02d}").replace("%d", f"{d:02d}")
                     .replace("%-m", str(m)).replace("%-d", str(d)))
    elif kind == "month":
        rec["AAE002"] = draw(edge_months)
    elif kind == "id":
        rec[draw(st.sampled_from(ID_FIELDS[feed]))] = make_id(draw(edge_births), seq=draw(st.integers(0, 999)))
    elif kind == "number":
        name = draw(st.sampled_from(NUMBER_FIELDS.get(feed, ()) + ("extra",)))
        return _with_raw(rec, name, draw(edge_numbers))
    elif kind == "deep":
        return _with_raw(rec, draw(st.sampled_from(sorted(rec) + ["extra"])), _nest(draw(edge_depths) - 1))
    elif kind == "dup":
        name = draw(st.sampled_from(sorted(rec)))
        again = json.dumps(rec[name] if draw(st.booleans()) else draw(field_value)).encode()
        raw = json.dumps(rec).encode()
        return raw[:-1] + b", " + json.dumps(name).encode() + b": " + again + b"}"
    elif kind == "size":
        raw = json.dumps({**rec, "pad": ""}).encode()
        return raw[:-2] + b"x" * max(0, draw(edge_sizes) - len(raw)) + b'"}'
    return json.dumps(rec, ensure_ascii=draw(st.booleans())).encode()


def extreme_payloads(feed: str):
    return st.one_of(extreme_record(feed), payloads(feed))


any_feed_extreme = st.sampled_from(FEEDS).flatmap(lambda f: st.tuples(st.just(f), extreme_payloads(f)))
