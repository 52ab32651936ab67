"""``employment.unemployment_registration`` (clause （九）) and ``civil.temporary_assistance``
(clause （十四）), as tests/test_rules.py tests the other rules: pure, no Redis, a person's situation
built by folding canonical events into a picture.

Unless a row says otherwise: D is 2026-11-28, so D's month is 2026-11, the gap months (condition 3)
are 2026-09 and 2026-10, and the lookback months (condition 4) 2025-09 to 2026-08; the permit is
valid from 2025-01-01 to 2027-12-31 in 浦口; the person was born on 1990-01-01; contributions are
enterprise pension (110) paid in Nanjing (320102).
"""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from schemas.picture import Person
from services.decider import emit
from services.picture.fold import CONTRIBUTIONS, STORED, fold
from services.picture.picture import Picture
from services.rules import civil, employment, params
from tests.people import make_id
from tests.test_rules import (
    BG, CIVIL, D, EDUCATION, HOUSING, JIANYE, LH, PUKOU, QF, QINHUAI, XUANWU, ZX, Desk, brief, day, housing_app, paid,
    person, school, someone, tick, unpaid,
)

EMPLOYMENT = employment.ENTITLEMENT


def worked(*months, aae140="110", region=XUANWU):
    """Paid employee-scheme records for these months (YYYYMM)."""
    return lambda p: [paid(p, m, aae140, region) for m in months]


def twelve_months_to(last: str):
    y, m = int(last[:4]), int(last[4:])
    out = []
    for _ in range(12):
        out.append(f"{y}{m:02d}")
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    return worked(*reversed(out))


# =============================================================================================
# employment.unemployment_registration — clause （九）
# =============================================================================================
EMPLOYMENT_CASES = [
    # situation, events, birth, reasons, district
    # 1. settled or a valid permit on D; settlement wins
    ("permit in 浦口, last worked 2026-08", [QF, worked("202608")], "19900101", (), PUKOU),
    ("settled in 秦淮, permit in 浦口: settlement wins", [QF, lambda p: LH(p, QINHUAI), worked("202608")],
     "19900101", (), QINHUAI),
    ("settled, no permit", [lambda p: LH(p, QINHUAI), worked("202608")], "19900101", (), QINHUAI),
    ("settled, permit expired", [lambda p: QF(p, qfrq="2023-01-01", yxqz="2025-12-31"), lambda p: LH(p, QINHUAI),
                                 worked("202608")], "19900101", (), QINHUAI),
    ("permit moved to 建邺", [QF, lambda p: BG(p, JIANYE), worked("202608")], "19900101", (), JIANYE),
    ("neither settled nor a permit", [worked("202608")], "19900101", ("NO_VALID_PERMIT",), None),
    ("permit expired", [lambda p: QF(p, qfrq="2023-01-01", yxqz="2025-12-31"), worked("202608")], "19900101",
     ("NO_VALID_PERMIT",), None),
    ("permit not yet valid", [lambda p: QF(p, qfrq="2026-12-01", yxqz="2028-11-30"), worked("202608")], "19900101",
     ("NO_VALID_PERMIT",), None),
    ("permit cancelled", [QF, ZX, worked("202608")], "19900101", ("NO_VALID_PERMIT",), None),
    # 2. 16 (inclusive) to 60 (exclusive) years old on D
    ("16 on D itself", [QF, worked("202608")], "20101128", (), PUKOU),
    ("16 tomorrow", [QF, worked("202608")], "20101129", ("OUT_OF_WORKING_AGE",), PUKOU),
    ("59, 60 tomorrow", [QF, worked("202608")], "19661129", (), PUKOU),
    ("60 on D itself", [QF, worked("202608")], "19661128", ("OUT_OF_WORKING_AGE",), PUKOU),
    ("70", [QF, worked("202608")], "19560101", ("OUT_OF_WORKING_AGE",), PUKOU),
    # 3. no paid employee-scheme month in the 2 months before D's month
    ("worked 2026-10 (a gap month)", [QF, worked("202606", "202610")], "19900101", ("EMPLOYED",), PUKOU),
    ("worked 2026-09 (a gap month)", [QF, worked("202606", "202609")], "19900101", ("EMPLOYED",), PUKOU),
    ("worked every month to 2026-10", [QF, twelve_months_to("202610")], "19900101", ("EMPLOYED",), PUKOU),
    ("worked in Shanghai in a gap month", [QF, worked("202606"), worked("202610", region="310000")], "19900101",
     ("EMPLOYED",), PUKOU),
    ("only work injury 410 paid in a gap month", [QF, worked("202606"), worked("202610", aae140="410")], "19900101",
     ("EMPLOYED",), PUKOU),
    ("D's own month does not count: worked 2026-06 and 2026-11", [QF, worked("202606", "202611")], "19900101",
     (), PUKOU),
    ("resident scheme 390 paid in a gap month", [QF, worked("202606"), worked("202610", aae140="390")], "19900101",
     (), PUKOU),
    ("gap month due but unpaid", [QF, worked("202606"), lambda p: unpaid(p, "202610")], "19900101", (), PUKOU),
    ("gap month paid, then the payment reversed", [QF, worked("202606", "202610"), lambda p: unpaid(p, "202610")],
     "19900101", (), PUKOU),
    # 4. at least one paid employee-scheme month in the 12 before those
    ("last worked 2025-09, the first lookback month", [QF, worked("202509")], "19900101", (), PUKOU),
    ("last worked 2025-08, just before the lookback", [QF, worked("202508")], "19900101",
     ("NO_RECENT_EMPLOYMENT",), PUKOU),
    ("never worked", [QF], "19900101", ("NO_RECENT_EMPLOYMENT",), PUKOU),
    ("only resident schemes 170 and 390", [QF, worked("202605", aae140="170"), worked("202606", aae140="390")],
     "19900101", ("NO_RECENT_EMPLOYMENT",), PUKOU),
    ("worked only in D's month", [QF, worked("202611")], "19900101", ("NO_RECENT_EMPLOYMENT",), PUKOU),
    ("last worked month unpaid", [QF, lambda p: unpaid(p, "202606")], "19900101", ("NO_RECENT_EMPLOYMENT",), PUKOU),
    ("last worked month reversed", [QF, worked("202606"), lambda p: unpaid(p, "202606")], "19900101",
     ("NO_RECENT_EMPLOYMENT",), PUKOU),
    ("any region: Shanghai 310000", [QF, worked("202606", region="310000")], "19900101", (), PUKOU),
    ("any region: Hangzhou 330100", [QF, worked("202606", region="330100")], "19900101", (), PUKOU),
    *[(f"every employee scheme counts: {t}", [QF, worked("202606", aae140=t)], "19900101", (), PUKOU)
      for t in ("110", "120", "210", "310", "410", "510")],
    # every failed condition, in docs/policy.md's order
    ("no permit, 70, working now, not before", [worked("202610")], "19560101",
     ("NO_VALID_PERMIT", "OUT_OF_WORKING_AGE", "EMPLOYED", "NO_RECENT_EMPLOYMENT"), None),
    ("15 and working", [QF, twelve_months_to("202610")], "20110101", ("OUT_OF_WORKING_AGE", "EMPLOYED"), PUKOU),
    ("no permit, never worked", [], "19900101", ("NO_VALID_PERMIT", "NO_RECENT_EMPLOYMENT"), None),
]


@pytest.mark.parametrize("situation, events, birth, reasons, district", EMPLOYMENT_CASES,
                         ids=[c[0] for c in EMPLOYMENT_CASES])
def test_employment_unemployment_registration(situation, events, birth, reasons, district):
    verdict = employment.decide(someone(*events, birth=birth), D)
    assert verdict.reasons == reasons
    assert verdict.district == district
    assert verdict.eligible is (reasons == ())
    assert verdict.basis == ("（九）",)


@pytest.mark.parametrize("on, reasons", [
    ("2021-08-31", ("EMPLOYED",)),  # gap months 2021-06, 2021-07: worked in 2021-06
    ("2021-09-01", ()),  # the policy's example: gap 2021-07, 2021-08; lookback 2020-07 to 2021-06
    ("2022-07-01", ()),  # gap 2022-05, 2022-06; lookback 2021-05 to 2022-04: 2021-06 is in it
    ("2022-08-31", ()),  # lookback 2021-06 to 2022-05: its last month with 2021-06 in it
    ("2022-09-01", ("NO_RECENT_EMPLOYMENT",)),  # lookback 2021-07 to 2022-06
])
def test_the_policy_example(on, reasons):
    """docs/policy.md, employment: D = 2021-09-01, last paid month 2021-06: eligible, with the windows
    the example names (gap 2021-07 and 2021-08, lookback 2020-07 to 2021-06). The example then says
    "revoked on 2022-07-01"; conditions 3 and 4 (2 gap months, then 12 lookback months) keep
    2021-06 in the lookback until August 2022, so the revocation comes on 2022-09-01. The numbered
    conditions, the example's own windows and the parameters agree on that; only the example's
    date does not (reported to the project: docs/policy.md will carry the corrected example)."""
    pic = someone(lambda p: QF(p, qfrq="2020-01-01", yxqz="2030-12-31"), worked("202006", "202103", "202106"))
    assert employment.decide(pic, day(on)).reasons == reasons


def test_a_person_known_from_contributions_only_is_decided_without_an_age():
    """Contributions carry no ID (a pseudonym only): no birth date, so condition 2 is not checked;
    condition 1 fails anyway."""
    pic = Picture(Person(v=3))
    fold(pic, paid("ignored", "202608"))
    assert pic.birth_date is None and pic.age_on(D) is None
    assert employment.decide(pic, D).reasons == ("NO_VALID_PERMIT",)
    assert employment.changes_by_itself(pic, D) is None


def test_a_month_worked_in_any_region_changes_what_the_rule_reads():
    """record() says CHANGED when a month gains or loses its paid employee slot in any region (a
    Shanghai month is no recognised month of （六）, but it is work for （九）), STORED when the
    month was worked already."""
    pid = make_id()
    pic = person(pid, QF(pid))
    assert fold(pic, paid(pid, "202606", region="310000")) == CONTRIBUTIONS
    assert pic.recognised_employee_months() == 0 and employment.decide(pic, D).eligible
    assert fold(pic, paid(pid, "202606", "210", region="310000")) == STORED  # a second scheme, same month
    assert fold(pic, paid(pid, "202606", "390")) == STORED  # a resident scheme
    assert fold(pic, unpaid(pid, "202606", region="310000")) == STORED  # the 210 still pays it
    assert fold(pic, unpaid(pid, "202606", "210", region="310000")) == CONTRIBUTIONS  # now nothing does
    assert employment.decide(pic, D).reasons == ("NO_RECENT_EMPLOYMENT",)


def test_working_ages_and_windows_are_dated_parameters():
    for name, value in ((employment.WORKING_AGE_MIN, 16), (employment.WORKING_AGE_MAX, 60),
                        (employment.GAP_MONTHS, 2), (employment.LOOKBACK_MONTHS, 12)):
        p = params.get(name)
        assert p.at(day("2021-02-09")) == value and p.dates[0] == day("2021-01-01")
        assert "（九）" in params.DEFAULT_DIR.joinpath(f"{name}.toml").read_text(encoding="utf-8")


def _with_value(monkeypatch, name: str, on: str, value: float) -> None:
    """The parameter ``name`` as if the city had added the line ``on = value`` to its file: the
    folder in force amended (``Folder.amended`` checks the value as a file's), for this test only."""
    monkeypatch.setattr(params, "_active", params.active().amended({name: {on: value}}))


def test_a_new_parameter_value_applies_from_its_date_and_the_scheduler_ticks_everyone_then(monkeypatch):
    """The city lowers the age of retirement from 60 to 55 on 2027-01-01 (say): from that day a
    57-year-old is out of working age. The date is not filed per person: the rules in force change
    that day (``rules.in_force``), and the scheduler decides everyone again (services/scheduler/service.py)."""
    from services import rules

    pic = someone(QF, worked("202608"), birth="19700101")
    assert employment.decide(pic, D).eligible
    assert employment.changes_by_itself(pic, D) == day("2027-11-01")  # 2026-08 leaves the lookback
    before = [rules.in_force(day(d)) for d in ("2026-12-31", "2027-01-01")]
    _with_value(monkeypatch, employment.WORKING_AGE_MAX, "2027-01-01", 55)
    assert employment.decide(pic, D).eligible
    assert employment.changes_by_itself(pic, D) == day("2027-11-01")
    assert employment.decide(pic, day("2027-01-01")).reasons == ("OUT_OF_WORKING_AGE",)
    after = [rules.in_force(day(d)) for d in ("2026-12-31", "2027-01-01")]
    assert after[0] == before[0] and after[1] != before[1]  # a new digest on the date: everyone ticked


def test_a_longer_gap_parameter_moves_the_window(monkeypatch):
    _with_value(monkeypatch, employment.GAP_MONTHS, "2026-11-01", 3)  # gap 2026-08..10, lookback 2025-08..2026-07
    assert employment.decide(someone(QF, worked("202607", "202608")), D).reasons == ("EMPLOYED",)
    assert employment.decide(someone(QF, worked("202508")), D).reasons == ()


# -- when the outcome changes with no event --------------------------------------------------
CHANGES = [
    # situation, events, birth, day, next change
    ("the policy's example, before", [lambda p: QF(p, qfrq="2020-01-01", yxqz="2030-12-31"), worked("202106")],
     "19900101", "2021-08-15", "2021-09-01"),
    ("the policy's example, after", [lambda p: QF(p, qfrq="2020-01-01", yxqz="2030-12-31"), worked("202106")],
     "19900101", "2021-09-01", "2022-09-01"),
    ("at work to last month: two months after it", [QF, twelve_months_to("202610")], "19900101", "2026-11-28",
     "2027-01-01"),
    ("at work this month too: a month later", [QF, twelve_months_to("202610"), worked("202611")], "19900101",
     "2026-11-28", "2027-02-01"),
    ("a month worked after D's month ends the window", [QF, worked("202606", "202611")], "19900101", "2026-11-28",
     "2026-12-01"),
    ("never worked: nothing changes by itself", [QF], "19900101", "2026-11-28", None),
    ("worked too long ago: nothing", [QF, worked("202501")], "19900101", "2026-11-28", None),
    ("no permit, not settled: only an event can help", [worked("202608")], "19900101", "2026-11-28", None),
    ("permit cancelled: nothing", [QF, ZX, worked("202608")], "19900101", "2026-11-28", None),
    ("permit not yet valid: its first day comes first (Picture.next_change)",
     [lambda p: QF(p, qfrq="2026-12-15", yxqz="2028-12-14"), worked("202608")], "19900101", "2026-11-28", None),
    ("permit ends before the window would change: its end comes first",
     [lambda p: QF(p, qfrq="2025-01-01", yxqz="2027-03-31"), worked("202608")], "19900101", "2026-11-28", None),
    ("settled: the permit's end does not matter",
     [lambda p: QF(p, qfrq="2025-01-01", yxqz="2027-03-31"), LH, worked("202608")], "19900101", "2026-11-28",
     "2027-11-01"),
    ("turns 16 in the window", [QF, worked("202608")], "20101215", "2026-11-28", "2026-12-15"),
    ("turns 60 in the window", [QF, worked("202608")], "19661215", "2026-11-28", "2026-12-15"),
    ("turns 60 after the window has closed: the close only", [QF, worked("202608")], "19671215", "2026-11-28",
     "2027-11-01"),
    ("under 16 until after the window: nothing", [QF, worked("202608")], "20111215", "2026-11-28", None),
]


@pytest.mark.parametrize("situation, events, birth, on, expected", CHANGES, ids=[c[0] for c in CHANGES])
def test_employment_changes_by_itself(situation, events, birth, on, expected):
    pic = someone(*events, birth=birth)
    got = employment.changes_by_itself(pic, day(on))
    assert got == (day(expected) if expected else None)
    if got is not None:  # the outcome really changes that day, and not the day before
        before = employment.decide(pic, got - dt.timedelta(days=1)).eligible
        assert employment.decide(pic, got).eligible is not before
        assert employment.decide(pic, day(on)).eligible is before


def test_changes_by_itself_agrees_with_deciding_every_day():
    """A differential check: for many situations, the date given is the first day, after D, on which
    deciding day by day gives another outcome (within the permit's validity, for 30 months)."""
    import random

    rng = random.Random(5)
    for _ in range(120):
        calendar = [f"{y}{m:02d}" for y in (2025, 2026, 2027) for m in range(1, 13)]
        months = sorted(rng.sample(calendar, rng.randint(0, 6)))
        birth = rng.choice(["19900101", "20101130", "19661203", "20110415", "19670610"])
        settled = rng.random() < 0.3
        pic = someone(lambda p: QF(p, qfrq="2025-01-01", yxqz="2029-12-31"), *([LH] if settled else []),
                      worked(*months) if months else (lambda p: []), birth=birth)
        start = day("2026-11-28")
        want = None
        outcome = employment.decide(pic, start).eligible
        for i in range(1, 30 * 31):
            d = start + dt.timedelta(days=i)
            if employment.decide(pic, d).eligible is not outcome:
                want = d
                break
        assert employment.changes_by_itself(pic, start) == want, (months, birth, settled)


def test_the_scheduler_is_given_the_window_change_and_the_tick_revokes():
    """emit.next_change files the person under the window's change; that day's tick (no event)
    revokes them with NO_RECENT_EMPLOYMENT, as docs/policy.md's example says."""
    desk = Desk()
    on = day("2021-08-15")
    desk.batch(QF(desk.pid, qfrq="2020-01-01", yxqz="2030-12-31", district=QINHUAI), on=on)
    desk.batch(*worked("202106", "202103", "202007")(desk.pid), on=on)  # (the latest first: no flicker)
    assert brief(desk.decisions, EMPLOYMENT) == []  # 2021-06 is a gap month in August
    assert emit.next_change(desk.pic, on) == day("2021-09-01")
    out = desk.batch(tick("2021-09-01"), on=day("2021-09-01"))
    assert brief(out, EMPLOYMENT) == [("eligible", QINHUAI, [], 1)]
    assert [d.caused_by for d in out if d.entitlement == EMPLOYMENT] == [[]]
    assert emit.next_change(desk.pic, day("2021-09-01")) == day("2022-09-01")  # (see test_the_policy_example)
    assert desk.batch(tick("2022-08-31"), on=day("2022-08-31")) == []
    out = desk.batch(tick("2022-09-01"), on=day("2022-09-01"))
    assert brief(out, EMPLOYMENT) == [("revoked", QINHUAI, ["NO_RECENT_EMPLOYMENT"], 2)]
    assert emit.next_change(desk.pic, day("2022-09-01")) == day("2031-01-01")  # the permit's end, no more


def test_going_back_to_work_revokes_with_employed_and_stopping_again_makes_eligible_again():
    desk = Desk()
    desk.batch(QF(desk.pid, district=PUKOU), *worked("202606")(desk.pid))
    assert brief(desk.decisions, EMPLOYMENT) == [("eligible", PUKOU, [], 1)]
    out = desk.batch(paid(desk.pid, "202610", region="320505"))  # works in Suzhou in October
    assert brief(out, EMPLOYMENT) == [("revoked", PUKOU, ["EMPLOYED"], 2)]
    out = desk.batch(unpaid(desk.pid, "202610", region="320505"))  # the record is corrected: unpaid
    assert brief(out, EMPLOYMENT) == [("eligible", PUKOU, [], 3)]
    out = desk.batch(BG(desk.pid, XUANWU))  # moves: eligible again in the new district
    assert brief(out, EMPLOYMENT) == [("eligible", XUANWU, [], 4)]


# =============================================================================================
# civil.temporary_assistance — clause （十四）
# =============================================================================================
CIVIL_CASES = [
    ("valid permit", [lambda p: QF(p, district=JIANYE)], (), JIANYE),
    ("settled, no permit", [lambda p: LH(p, QINHUAI)], (), QINHUAI),
    ("settled in 秦淮 and permit in 浦口: settlement wins", [QF, lambda p: LH(p, QINHUAI)], (), QINHUAI),
    ("settled, permit expired", [lambda p: QF(p, qfrq="2023-01-01", yxqz="2025-12-31"), lambda p: LH(p, QINHUAI)],
     (), QINHUAI),
    ("permit moved", [QF, lambda p: BG(p, JIANYE)], (), JIANYE),
    ("neither", [worked("202608")], ("NO_VALID_PERMIT",), None),
    ("permit expired", [lambda p: QF(p, qfrq="2023-01-01", yxqz="2025-12-31")], ("NO_VALID_PERMIT",), None),
    ("permit not yet valid", [lambda p: QF(p, qfrq="2026-12-01", yxqz="2028-11-30")], ("NO_VALID_PERMIT",), None),
    ("permit cancelled", [QF, ZX], ("NO_VALID_PERMIT",), None),
]


@pytest.mark.parametrize("situation, events, reasons, district", CIVIL_CASES, ids=[c[0] for c in CIVIL_CASES])
def test_civil_temporary_assistance(situation, events, reasons, district):
    verdict = civil.decide(someone(*events), D)
    assert (verdict.reasons, verdict.district, verdict.basis) == (reasons, district, ("（十四）",))


def test_civil_eligible_again_on_a_change_of_district_and_revoked_when_it_ends():
    desk = Desk()
    desk.batch(QF(desk.pid, district=PUKOU))
    desk.batch(BG(desk.pid, JIANYE))
    desk.batch(LH(desk.pid, QINHUAI))  # settlement wins
    desk.batch(ZX(desk.pid))  # the permit no longer matters: still settled
    assert brief(desk.decisions, CIVIL) == [
        ("eligible", PUKOU, [], 1), ("eligible", JIANYE, [], 2), ("eligible", QINHUAI, [], 3)]
    other = Desk()
    other.batch(QF(other.pid, district=PUKOU, qfrq="2025-01-01", yxqz="2026-11-28"), on=day("2026-11-28"))
    out = other.batch(tick("2026-11-29"), on=day("2026-11-29"))
    assert brief(out, CIVIL) == [("revoked", PUKOU, ["NO_VALID_PERMIT"], 2)]


# =============================================================================================
# The birth date kept in the picture (Person.born, the last field)
# =============================================================================================
def test_a_picture_written_before_the_birth_date_was_kept_reads_and_learns_it():
    """A picture of the current release (no ``born`` field) decodes with 0, the rule reads the
    birth date from the ID once, and the picture written back carries it."""
    pid = make_id("20101215")
    pic = someone(QF, worked("202608"), birth="20101215")
    older = msgspec.msgpack.encode(list(msgspec.structs.astuple(pic.freeze()))[:-1])  # the layout without ``born``
    back = Picture(msgspec.msgpack.decode(older, type=Person))
    assert back.person.born == 0
    assert employment.decide(back, D).reasons == ("OUT_OF_WORKING_AGE",)  # 15 on D
    assert back.person.born == day("2010-12-15").toordinal()
    again = Picture(msgspec.msgpack.decode(msgspec.msgpack.encode(back.freeze()), type=Person))
    assert again.person.born == back.person.born and again.birth_date == day("2010-12-15")


def test_a_birthday_on_29_february_comes_on_1_march_in_a_common_year():
    born = dt.date(2040, 2, 29)
    assert employment._birthday(born, 60) == dt.date(2100, 3, 1)  # 2100 is no leap year
    assert employment._birthday(born, 16) == dt.date(2056, 2, 29)
    pic = Picture(Person(v=3, born=born.toordinal()))
    assert pic.age_on(dt.date(2100, 2, 28)) == 59 and pic.age_on(dt.date(2100, 3, 1)) == 60


# =============================================================================================
# Applications say revoked (docs/policy.md, education; docs/contract.md, "When decisions are emitted")
# =============================================================================================
def test_a_housing_application_is_revoked_only_when_the_city_lowers_the_ceiling_it_was_decided_on(monkeypatch):
    """Nothing a department records can make an eligible housing application ineligible: settlement
    is never undone, and the income, home and household are the application's own. A parameter
    edit can (a lower ceiling in force on ``appliedOn``): the next decision says ``revoked``."""
    desk = Desk()
    desk.batch(LH(desk.pid, PUKOU))
    desk.batch(housing_app(desk.pid, size=2, income=6000, district=PUKOU, applied="2026-03-01", no="ZF-R"))
    desk.batch(LH(desk.pid, XUANWU), QF(desk.pid, district=JIANYE), ZX(desk.pid))  # all change nothing
    _with_value(monkeypatch, "housing.per_capita_income_max", "2026-01-01", 2500)
    desk.batch(tick("2026-11-29"), on=day("2026-11-29"))
    desk.batch(tick("2026-11-30"), on=day("2026-11-30"))  # still ineligible: nothing new
    _with_value(monkeypatch, "housing.per_capita_income_max", "2026-02-01", 3500)
    desk.batch(tick("2026-12-01"), on=day("2026-12-01"))
    assert brief(desk.decisions, HOUSING) == [
        ("eligible", PUKOU, [], 1), ("revoked", PUKOU, ["INCOME_ABOVE_LIMIT"], 2), ("eligible", PUKOU, [], 3)]


def test_an_application_refused_at_first_stays_ineligible_and_one_revoked_stays_revoked():
    desk = Desk()
    child = make_id("20190501")
    desk.batch(school(desk.pid, child, sqqx=PUKOU, sqbh="JY-1"), school(desk.pid, child, sqqx=XUANWU, sqbh="JY-2"))
    desk.batch(QF(desk.pid, district=PUKOU))  # JY-1 eligible; JY-2: DISTRICT_MISMATCH now, nothing new
    desk.batch(BG(desk.pid, JIANYE))  # JY-1 revoked (DISTRICT_MISMATCH); JY-2 unchanged
    desk.batch(ZX(desk.pid))  # JY-1: other reasons, still revoked: nothing new
    edu = [(d.application_id, d.status, d.reasons, d.version) for d in desk.decisions if d.entitlement == EDUCATION]
    assert edu == [
        ("JY-1", "ineligible", ["GUARDIAN_NO_VALID_PERMIT"], 1),
        ("JY-2", "ineligible", ["GUARDIAN_NO_VALID_PERMIT"], 1),
        ("JY-1", "eligible", [], 2),
        ("JY-1", "revoked", ["DISTRICT_MISMATCH"], 3),
    ]
    assert emit.roster_action(desk.pic, next(d for d in desk.decisions if d.status == "revoked")) == emit.DEL


def test_a_310_record_for_a_month_worked_already_re_decides_medical_insurance_only():
    """fold says MEDICAL when only a month's paid 310 changed: medical insurance is decided again,
    and the rules of the months counted and worked are not asked (nothing they read changed)."""
    from services.picture.fold import MEDICAL

    desk = Desk()
    desk.batch(LH(desk.pid, QINHUAI), paid(desk.pid, "202611", "110"))
    assert brief(desk.decisions, "medins.resident_enrollment") == [("eligible", QINHUAI, [], 1)]
    assert fold(desk.pic, paid(desk.pid, "202611", "310", region="320505")) == MEDICAL
    out = emit.evaluate(desk.pic, MEDICAL, D, dt.datetime(2026, 11, 28, tzinfo=dt.timezone.utc), ["x"])
    assert [(d.entitlement, d.status, d.reasons) for d in out] == [
        ("medins.resident_enrollment", "revoked", ["IN_EMPLOYEE_MEDICAL_INSURANCE"])]
