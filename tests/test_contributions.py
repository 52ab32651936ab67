"""The packed contribution slots against a plain model of docs/contract.md's rule (a later record for
the same person, type, month and region replaces the earlier one; a retried old record is a
duplicate), over random sequences of records, including corrections and months out of order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codes import EMPLOYEE_TYPES
from services.picture.contributions import (
    CHANGED, DUPLICATE, MEDICAL, STORED, TYPES, UNKNOWN, Contributions, month_index,
)

MONTHS = [202401, 202402, 202403, 202412, 202501, 202502]
REGIONS = ["320100", "320111", "310100"]

record = st.tuples(
    st.integers(1, 40),  # fingerprint: a record id; repeats are retries of the same record
    st.sampled_from(MONTHS),
    st.sampled_from(TYPES),
    st.sampled_from(REGIONS),
    st.booleans(),
)


def model(records):
    """Slots as a dict, replaced records remembered, recognised months, paid 310 months and months
    worked (a paid employee scheme, any region)."""
    slots: dict[tuple, tuple[bool, int]] = {}
    old: set[int] = set()
    outcomes = []
    for fp, month, typ, region, paid in records:
        key = (month, typ, region)
        cur = slots.get(key)
        if (cur is not None and cur[1] == fp) or fp in old:
            outcomes.append(DUPLICATE)
            continue
        if cur is not None:
            old.add(cur[1])
        slots[key] = (paid, fp)
        outcomes.append(None)
    employee = {m for (m, typ, region), (paid, _) in slots.items()
                if paid and typ in EMPLOYEE_TYPES and region.startswith("32")}
    medical = sorted({month_index(m) for (m, typ, _), (paid, _) in slots.items() if paid and typ == "310"})
    worked = sorted({month_index(m) for (m, typ, _), (paid, _) in slots.items() if paid and typ in EMPLOYEE_TYPES})
    return outcomes, len(employee), medical, worked


@settings(max_examples=300, deadline=None)
@given(st.lists(record, max_size=60))
def test_packed_slots_agree_with_the_plain_model(records):
    c = Contributions()
    outcomes = [c.record(*r) for r in records]
    expected, recognised, medical, worked = model(records)
    assert [o == DUPLICATE for o in outcomes] == [e == DUPLICATE for e in expected]
    for i, got in enumerate(outcomes):  # CHANGED / MEDICAL exactly when a fact the rules read changed
        if got != DUPLICATE:
            _, *before = model(records[:i])
            _, *after = model(records[:i + 1])
            counted, medical_changed, worked_changed = (b != a for b, a in zip(before, after))
            assert got == (CHANGED if counted or worked_changed else MEDICAL if medical_changed else STORED)
    assert c.recognised_months() == recognised
    assert c.paid_medical_months() == medical
    for m in MONTHS:
        i = month_index(m)
        assert c.paid_medical_in(i - 2, i) == any(i - 2 <= x <= i for x in medical)
        assert c.paid_employee_in(i - 2, i) == any(i - 2 <= x <= i for x in worked)
        for floor in (i - 14, i - 2):
            last = max((x for x in worked if floor <= x < i), default=None)
            assert c.worked_around(i, floor) == (last, [x for x in worked if x >= i])
    # stored and loaded again, with the running count and without it (older pictures)
    packed, old = c.pack()
    months = [int.from_bytes(packed[i:i + 2], "little") for i in range(0, len(packed), 13)]
    assert months == sorted(months)
    for count in (c.employee_months, UNKNOWN):
        again = Contributions(packed, old, count)
        assert again.recognised_months() == recognised
        assert [again.record(*r) for r in records] == [DUPLICATE] * len(records)


def test_what_record_reports():
    c = Contributions()
    assert c.record(1, 202501, "110", "320100", True) == CHANGED  # a new recognised month
    assert c.record(2, 202501, "120", "320100", True) == STORED  # the month counted already
    assert c.record(2, 202501, "120", "320100", True) == DUPLICATE  # the same record again
    assert c.record(3, 202501, "310", "310100", True) == MEDICAL  # a paid 310 month (any region)
    assert c.record(4, 202501, "310", "320100", True) == STORED  # 310 paid already that month
    assert c.record(5, 202501, "110", "320100", False) == STORED  # 120 and 310 still count
    assert c.recognised_months() == 1
    assert c.record(3, 202501, "310", "310100", True) == DUPLICATE
    assert c.record(1, 202501, "110", "320100", True) == DUPLICATE  # replaced: a retry cannot undo
    assert c.record(6, 202501, "120", "320100", False) == STORED
    assert c.record(7, 202501, "310", "320100", False) == CHANGED  # the month is no longer recognised
    assert c.recognised_months() == 0  # (310100's paid 310 is outside Jiangsu)
    assert c.paid_medical_months() == [month_index(202501)]
    assert c.record(8, 202501, "310", "310100", False) == CHANGED  # no paid 310, nor any work, that month now
    assert c.paid_medical_months() == []
    assert c.record(9, 202502, "110", "310100", True) == CHANGED  # worked (in Shanghai): not recognised
    assert c.recognised_months() == 0 and c.worked_around(month_index(202503), 0) == (month_index(202502), [])
    assert c.record(10, 202502, "390", "320100", True) == STORED  # a resident scheme: no fact changes
