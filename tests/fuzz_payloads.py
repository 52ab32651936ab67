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
