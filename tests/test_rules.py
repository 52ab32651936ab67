"""The entitlement rules of docs/policy.md and when their verdicts become decisions (docs/contract.md, "When decisions are emitted").

Pure tests, no Redis: a person's situation is built by folding canonical events (what the
normalizers make of the departments' records) into a picture, exactly as the decider does, and
the rules of ``services.rules`` and the emission logic of ``services.decider.emit`` are asked
what they decide on the evaluation date D.

The tables of situations and outcomes that a policy analyst reads are YAML situation files
(``tests/situations/*.yaml``, run by tests/test_situations.py); what stays here is the emission logic
and the regressions a programmer reads. Unless a test says otherwise:

* D (the evaluation date) is 2026-11-28;
* a permit is valid from 2025-01-01 to 2027-12-31;
* contributions are enterprise pension (110) paid ("1") in Nanjing (320102).
"""

from __future__ import annotations

import datetime as dt
import itertools

import msgspec
import pytest

from schemas.events import (
    ContributionRecorded,
    DateTick,
    HousingApplied,
    PermitCancelled,
    PermitIssued,
    PermitMoved,
    PermitRenewed,
    SchoolApplied,
    Settled,
)
from schemas.picture import Person
from services.decider import emit
from services.decider.emit import application_step, evaluate, roster_step
from services.picture.fold import ALL, CONTRIBUTIONS, Quarantine, fold
from services.picture.picture import Picture
from services.rules import civil, education, employment, health, housing, medins, params, settlement
from services.rules.verdict import REASON_ORDER
from tests.people import make_id

D = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
AT = dt.datetime(2025, 1, 1, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))

PUKOU, LUHE, LISHUI, GAOCHUN = "320111", "320116", "320117", "320118"  # the four districts of （六）
XUANWU, JIANYE, QINHUAI, JIANGNING = "320102", "320105", "320104", "320115"

SETTLEMENT = "settlement.four_districts"
EDUCATION = "education.compulsory_enrollment"
HEALTH = "health.family_doctor"
MEDINS = "medins.resident_enrollment"
HOUSING = "housing.security"
EMPLOYMENT = "employment.unemployment_registration"
CIVIL = "civil.temporary_assistance"

_seq = itertools.count(1)


def day(s: str) -> dt.date:
    return dt.date.fromisoformat(s)


def rid(prefix: str) -> str:
    return f"{prefix}-{next(_seq):08d}"


# -- canonical events, in the departments' words ---------------------------------------------
def QF(pid, district=PUKOU, qfrq="2025-01-01", yxqz="2027-12-31", no="JZZ001", hylb=None, ywlsh=None):
    """签发: a permit is issued."""
    return PermitIssued(record_id=ywlsh or rid("GA"), source_id="0-1", person_id=pid, permit_no=no,
                        district=district, valid_from=day(qfrq), valid_until=day(yxqz), sector=hylb, at=AT)


def QZ(pid, qfrq, yxqz, no="JZZ001", district=None, hylb=None):
    """签注: the permit is renewed."""
    return PermitRenewed(record_id=rid("GA"), source_id="0-1", person_id=pid, permit_no=no,
                         valid_from=day(qfrq), valid_until=day(yxqz), district=district, sector=hylb, at=AT)


def BG(pid, district, no="JZZ001"):
    """变更: the permit moves to another district."""
    return PermitMoved(record_id=rid("GA"), source_id="0-1", person_id=pid, permit_no=no, district=district, at=AT)


def ZX(pid, no="JZZ001"):
    """注销: the permit is cancelled."""
    return PermitCancelled(record_id=rid("GA"), source_id="0-1", person_id=pid, permit_no=no, at=AT)


def LH(pid, district=XUANWU, on="2026-06-01"):
    """落户: the person is settled."""
    return Settled(record_id=rid("GA"), source_id="0-1", person_id=pid, district=district, on=day(on), at=AT)


def paid(pid, month, aae140="110", region=XUANWU, aae078="1", lsh=None):
    """One contribution record (AAE078 "1" paid, "0" due but unpaid)."""
    return ContributionRecorded(record_id=lsh or rid("RS"), source_id="0-1", person_id=pid,
                                insurance_type=aae140, month=int(month), region=region, paid=aae078 == "1")


def unpaid(pid, month, aae140="110", region=XUANWU, lsh=None):
    return paid(pid, month, aae140, region, "0", lsh)


def months(first: str, n: int) -> list[str]:
    y, m = int(first[:4]), int(first[4:])
    out = []
    for _ in range(n):
        out.append(f"{y}{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def six_months(pid, first="202501", n=6):
    return [paid(pid, m) for m in months(first, n)]


def school(guardian, child, xd="XX", sqqx=PUKOU, sqrq="2026-03-01", sqbh=None):
    return SchoolApplied(record_id=(sqbh := sqbh or rid("JY")), source_id="0-1", person_id=guardian,
                         application_id=sqbh, child_id=child, stage=xd, district=sqqx, applied_on=day(sqrq))


def housing_app(applicant, size=3, income=6000, owns=False, district=PUKOU, occupation=None,
                applied="2026-03-01", no=None):
    return HousingApplied(record_id=(no := no or rid("ZF")), source_id="0-1", person_id=applicant,
                          application_id=no, household_size=size, monthly_income=float(income),
                          owns_home=owns, district=district, occupation=occupation, applied_on=day(applied))


def tick(on: str):
    return DateTick(record_id=f"tick:{on}", source_id="", person_id="", on=day(on), pseudonym=b"x")


# -- pictures ----------------------------------------------------------------------------------
_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(Person)


def stored(pic: Picture) -> Picture:
    """The picture as the decider stores it at the end of a batch and reads it back."""
    return Picture(_dec.decode(_enc.encode(pic.freeze())))


def person(pid: str, *events) -> Picture:
    """A person's picture after these events (each folded in order, then stored)."""
    pic = Picture(Person(v=1, id=pid))
    for ev in events:
        out = fold(pic, ev)
        assert not isinstance(out, Quarantine), out
    return stored(pic)


def someone(*builders, birth="19900101") -> Picture:
    """A new person, with events built by ``builders`` (functions of the person's id)."""
    pid = make_id(birth)
    events = []
    for b in builders:
        ev = b(pid)
        events += ev if isinstance(ev, list) else [ev]
    return person(pid, *events)


def app_of(pic: Picture):
    (app,) = pic.person.apps.values()
    return app


# =============================================================================================
# Reason codes
# =============================================================================================
def test_reason_codes_are_listed_in_the_order_of_policy():
    assert REASON_ORDER == (
        "ALREADY_SETTLED", "NO_VALID_PERMIT", "DISTRICT_NOT_COVERED", "INSUFFICIENT_CONTRIBUTIONS",
        "GUARDIAN_NO_VALID_PERMIT", "DISTRICT_MISMATCH", "UNDER_AGE", "OVER_AGE", "NOT_SETTLED",
        "IN_EMPLOYEE_MEDICAL_INSURANCE", "OWNS_HOME", "INCOME_ABOVE_LIMIT", "OUT_OF_WORKING_AGE", "EMPLOYED",
        "NO_RECENT_EMPLOYMENT",
    )


@pytest.mark.parametrize("rule, basis", [
    (settlement, ["（六）"]),
    (education, ["（七）", "（八）"]),
    (health, ["（七）", "（十二）"]),
    (medins, ["（十一）"]),
    (housing, ["（十三）"]),
    (employment, ["（九）"]),
    (civil, ["（十四）"]),
], ids=lambda x: getattr(x, "ENTITLEMENT", ""))
def test_each_rule_rests_on_its_clauses(rule, basis):
    assert list(rule.BASIS) == basis


# =============================================================================================
# Facts as soon as folded (the rule tables are situations: tests/situations/*.yaml)
# =============================================================================================
def test_contributions_count_as_soon_as_they_are_folded():
    """The decider folds an event and decides at once, before the picture is stored
    (regression: the rules once looked only at the stored contributions)."""
    pid = make_id()
    pic = person(pid, QF(pid, district=PUKOU))  # stored, no contributions yet
    for ev in six_months(pid):
        fold(pic, ev)
    assert pic.recognised_employee_months() == 6
    assert settlement.decide(pic, D).reasons == ()


def test_employee_medical_insurance_seen_as_soon_as_folded():
    pid = make_id()
    pic = person(pid, LH(pid))
    fold(pic, paid(pid, "202611", "310"))
    assert medins.decide(pic, D).reasons == ("IN_EMPLOYEE_MEDICAL_INSURANCE",)


# =============================================================================================
# When a verdict becomes a decision (services.decider.emit)
# =============================================================================================
class Desk:
    """One person's file as the decider keeps it. Each ``batch`` is one decider batch: events
    are folded and decided one by one, then the picture is stored."""

    def __init__(self, pid: str | None = None, birth: str = "19900101") -> None:
        self.pid = pid or make_id(birth)
        self.pic = Picture(Person(v=1, id=self.pid))
        self.decisions = []

    def batch(self, *events, on: dt.date = D):
        out = []
        for ev in events:
            touched = fold(self.pic, ev)
            if touched is None or isinstance(touched, Quarantine):
                continue
            caused_by = [] if isinstance(ev, DateTick) else [ev.record_id]
            out += evaluate(self.pic, touched, on, NOW, caused_by)
        self.pic = stored(self.pic)
        self.decisions += out
        return out


def brief(ds, entitlement=None):
    """(status, district, reasons, version) of each decision, optionally of one entitlement."""
    return [(d.status, d.district, d.reasons, d.version) for d in ds if entitlement in (None, d.entitlement)]


def test_roster_is_silent_for_people_never_eligible():
    desk = Desk()
    assert desk.batch(*six_months(desk.pid, n=3)) == []  # nothing known that makes anyone eligible
    out = desk.batch(QF(desk.pid, district=XUANWU))  # health starts; settlement: wrong district, 3 months
    assert [(d.entitlement, d.status, d.district, d.version) for d in out] == [
        (HEALTH, "eligible", XUANWU, 1), (CIVIL, "eligible", XUANWU, 1)]
    assert desk.batch(*six_months(desk.pid, first="202609", n=2)) == []  # settlement still not covered; at work
    out = desk.batch(ZX(desk.pid))
    assert [(d.entitlement, d.status, d.reasons) for d in out] == [
        (HEALTH, "revoked", ["NO_VALID_PERMIT"]), (CIVIL, "revoked", ["NO_VALID_PERMIT"])]
    assert brief(desk.decisions, SETTLEMENT) == [] and brief(desk.decisions, MEDINS) == []
    assert brief(desk.decisions, EMPLOYMENT) == []  # paid in 202609-202610, the months before D's: employed


def test_roster_is_silent_for_a_person_with_only_an_application():
    desk = Desk()
    out = desk.batch(school(desk.pid, make_id("20190501")))
    assert [d.entitlement for d in out] == [EDUCATION]


def test_roster_eligible_revoked_eligible_again_versions_without_gaps():
    desk = Desk()
    desk.batch(*six_months(desk.pid))
    desk.batch(QF(desk.pid, district=PUKOU))
    desk.batch(BG(desk.pid, XUANWU))  # moves out of the four districts
    desk.batch(BG(desk.pid, LUHE))  # moves back into one of them
    desk.batch(ZX(desk.pid))
    desk.batch(QF(desk.pid, no="JZZ002", district=GAOCHUN))
    assert brief(desk.decisions, SETTLEMENT) == [
        ("eligible", PUKOU, [], 1),
        ("revoked", PUKOU, ["DISTRICT_NOT_COVERED"], 2),  # revoked in the district it applied in
        ("eligible", LUHE, [], 3),
        ("revoked", LUHE, ["NO_VALID_PERMIT"], 4),
        ("eligible", GAOCHUN, [], 5),
    ]
    assert brief(desk.decisions, HEALTH) == [
        ("eligible", PUKOU, [], 1),
        ("eligible", XUANWU, [], 2),  # a move re-emits eligible with the new district
        ("eligible", LUHE, [], 3),
        ("revoked", LUHE, ["NO_VALID_PERMIT"], 4),
        ("eligible", GAOCHUN, [], 5),
    ]


def test_roster_move_between_covered_districts_reemits_eligible():
    desk = Desk()
    desk.batch(*six_months(desk.pid))
    desk.batch(QF(desk.pid, district=PUKOU))
    out = desk.batch(BG(desk.pid, LISHUI))
    assert sorted((d.entitlement, d.status, d.district, d.version) for d in out) == [
        (CIVIL, "eligible", LISHUI, 2), (HEALTH, "eligible", LISHUI, 2), (SETTLEMENT, "eligible", LISHUI, 2)]


def test_settling_revokes_settlement_and_starts_medical_insurance():
    desk = Desk()
    desk.batch(*six_months(desk.pid))
    desk.batch(QF(desk.pid, district=PUKOU))
    out = desk.batch(LH(desk.pid, QINHUAI))
    assert {d.entitlement: (d.status, d.district, d.reasons, d.version) for d in out} == {
        SETTLEMENT: ("revoked", PUKOU, ["ALREADY_SETTLED"], 2),
        HEALTH: ("eligible", QINHUAI, [], 2),  # settlement wins over the permit district
        MEDINS: ("eligible", QINHUAI, [], 1),
        CIVIL: ("eligible", QINHUAI, [], 2),
    }


def test_medins_revoked_when_employee_medical_insurance_is_paid():
    desk = Desk()
    desk.batch(paid(desk.pid, "202601", "110"))  # someone with stored contributions
    desk.batch(LH(desk.pid, QINHUAI))
    out = desk.batch(paid(desk.pid, "202611", "310"))
    assert brief(out, MEDINS) == [("revoked", QINHUAI, ["IN_EMPLOYEE_MEDICAL_INSURANCE"], 2)]
    out = desk.batch(unpaid(desk.pid, "202611", "310"))  # the payment is reversed
    assert brief(out, MEDINS) == [("eligible", QINHUAI, [], 3)]


@pytest.mark.parametrize("situation, change", [
    ("renewal that keeps the permit valid", lambda p: QZ(p, "2025-01-01", "2029-12-31")),
    ("move to the district it is already in", lambda p: BG(p, PUKOU)),
    ("a seventh month of contributions", lambda p: paid(p, "202507")),  # (before D's unemployment window)
    ("an unpaid resident-scheme month", lambda p: unpaid(p, "202607", "390")),
    ("a Shanghai month", lambda p: paid(p, "202507", region="310000")),
    ("a date tick on an ordinary day", lambda p: tick("2026-11-28")),
], ids=lambda x: x if isinstance(x, str) else "")
def test_a_change_that_leaves_the_outcome_as_it_was_emits_nothing(situation, change):
    desk = Desk()
    desk.batch(*six_months(desk.pid))
    desk.batch(QF(desk.pid, district=PUKOU))
    assert len(desk.decisions) == 3  # settlement, health, civil
    assert desk.batch(change(desk.pid)) == []


def test_a_duplicate_record_emits_nothing():
    desk = Desk()
    desk.batch(*six_months(desk.pid))
    qf = QF(desk.pid, district=PUKOU)
    assert len(desk.batch(qf)) == 3
    assert desk.batch(qf) == []
    app = school(desk.pid, make_id("20190501"))
    assert len(desk.batch(app)) == 1
    assert desk.batch(app) == []


def test_revoked_roster_stays_silent_until_eligible_again():
    desk = Desk()
    desk.batch(*six_months(desk.pid))
    desk.batch(QF(desk.pid, district=PUKOU))
    desk.batch(ZX(desk.pid))
    assert desk.batch(LH(desk.pid, XUANWU)) != []  # health/medins start; settlement stays revoked
    assert brief(desk.decisions, SETTLEMENT) == [("eligible", PUKOU, [], 1), ("revoked", PUKOU, ["NO_VALID_PERMIT"], 2)]


def test_permit_expiry_noticed_by_a_date_tick():
    desk = Desk()
    desk.batch(*six_months(desk.pid))
    desk.batch(QF(desk.pid, district=LUHE, qfrq="2024-11-28", yxqz="2026-11-28"), on=day("2026-11-27"))
    assert desk.pic.next_change(day("2026-11-27")) == day("2026-11-29")
    assert desk.batch(tick("2026-11-28"), on=day("2026-11-28")) == []  # yxqz itself: still valid
    out = desk.batch(tick("2026-11-29"), on=day("2026-11-29"))
    assert sorted((d.entitlement, d.status, d.district, d.reasons, d.version, d.caused_by) for d in out) == [
        (CIVIL, "revoked", LUHE, ["NO_VALID_PERMIT"], 2, []),
        (HEALTH, "revoked", LUHE, ["NO_VALID_PERMIT"], 2, []),
        (SETTLEMENT, "revoked", LUHE, ["NO_VALID_PERMIT"], 2, []),
    ]


def test_next_change_of_medical_insurance_window():
    desk = Desk()
    desk.batch(paid(desk.pid, "202611", "310"))
    desk.batch(LH(desk.pid, XUANWU))
    # the 202611 payment stops covering D's window on 1 February 2027
    assert emit.next_change(desk.pic, D) == day("2027-02-01")
    out = desk.batch(tick("2027-02-01"), on=day("2027-02-01"))
    assert brief(out, MEDINS) == [("eligible", XUANWU, [], 1)]


# -- applications ------------------------------------------------------------------------------
def test_first_application_decision_is_always_emitted():
    desk = Desk()
    ineligible = desk.batch(school(desk.pid, make_id("20190501"), sqqx=PUKOU))
    assert brief(ineligible) == [("ineligible", PUKOU, ["GUARDIAN_NO_VALID_PERMIT"], 1)]
    desk2 = Desk()
    desk2.batch(QF(desk2.pid, district=PUKOU))
    eligible = desk2.batch(school(desk2.pid, make_id("20190501"), sqqx=PUKOU))
    assert brief(eligible) == [("eligible", PUKOU, [], 1)]


def test_application_decided_again_when_the_guardians_situation_changes():
    desk = Desk()
    child = make_id("20190501")
    desk.batch(school(desk.pid, child, sqqx=PUKOU, sqbh="JY-1"))
    desk.batch(QF(desk.pid, district=XUANWU))  # permit in the wrong district: still ineligible, nothing new
    desk.batch(BG(desk.pid, PUKOU))  # moved to the district applied in
    desk.batch(ZX(desk.pid))  # cancelled
    assert brief(desk.decisions, EDUCATION) == [
        ("ineligible", PUKOU, ["GUARDIAN_NO_VALID_PERMIT"], 1),
        ("eligible", PUKOU, [], 2),
        ("revoked", PUKOU, ["GUARDIAN_NO_VALID_PERMIT"], 3),  # the place offered is withdrawn
    ]
    assert all(d.subject_id == child and d.application_id == "JY-1" for d in desk.decisions
               if d.entitlement == EDUCATION)


def test_late_permit_makes_the_application_eligible():
    desk = Desk()
    desk.batch(school(desk.pid, make_id("20190501"), sqqx=PUKOU, sqbh="JY-2"))
    qf = QF(desk.pid, district=PUKOU)
    out = desk.batch(qf)
    edu = [d for d in out if d.entitlement == EDUCATION]
    assert brief(edu) == [("eligible", PUKOU, [], 2)] and edu[0].caused_by == [qf.record_id]
    zx = ZX(desk.pid)
    edu = [d for d in desk.batch(zx) if d.entitlement == EDUCATION]
    assert brief(edu) == [("revoked", PUKOU, ["GUARDIAN_NO_VALID_PERMIT"], 3)] and edu[0].caused_by == [zx.record_id]


@pytest.mark.parametrize("on, redecided", [("2026-12-31", True), ("2027-01-01", False)])
def test_application_not_decided_again_after_it_closed(on, redecided):
    desk = Desk()
    desk.batch(school(desk.pid, make_id("20190501"), sqqx=PUKOU, sqrq="2026-03-01"), on=day("2026-03-01"))
    out = desk.batch(QF(desk.pid, district=PUKOU), on=day(on))
    assert brief(out, EDUCATION) == ([("eligible", PUKOU, [], 2)] if redecided else [])


def test_application_first_decided_after_it_closed_is_still_decided_once():
    desk = Desk()
    out = desk.batch(school(desk.pid, make_id("20190501"), sqqx=PUKOU, sqrq="2026-03-01"), on=day("2027-02-01"))
    assert brief(out) == [("ineligible", PUKOU, ["GUARDIAN_NO_VALID_PERMIT"], 1)]
    out = desk.batch(QF(desk.pid, district=PUKOU), on=day("2027-02-02"))
    assert [d.entitlement for d in out] == [HEALTH, CIVIL]  # the closed application is not decided again


def test_housing_decided_again_when_settled_and_when_priority_changes():
    desk = Desk()
    desk.batch(housing_app(desk.pid, size=3, income=9000, district=JIANYE, applied="2026-03-01", no="ZF-1"))
    desk.batch(LH(desk.pid, PUKOU))
    desk.batch(QF(desk.pid, district=PUKOU, hylb="HW"))  # sanitation sector: priority
    out = [d for d in desk.decisions if d.entitlement == HOUSING]
    assert [(d.status, d.district, d.priority, d.reasons, d.version) for d in out] == [
        ("ineligible", JIANYE, False, ["NOT_SETTLED"], 1),
        ("eligible", JIANYE, False, [], 2),
        ("eligible", JIANYE, True, [], 3),
    ]
    assert {d.subject_id for d in out} == {desk.pid} and {d.application_id for d in out} == {"ZF-1"}


def test_housing_closed_application_is_not_followed():
    desk = Desk()
    desk.batch(housing_app(desk.pid, applied="2025-06-01"), on=day("2025-06-01"))
    assert brief(desk.batch(LH(desk.pid), on=D), HOUSING) == []  # closed on 31 December 2025


def test_application_step_and_roster_step_directly():
    pid = make_id()
    pic = person(pid, QF(pid, district=PUKOU), school(pid, make_id("20190501"), sqbh="JY-9"))
    app = pic.person.apps["JY-9"]
    first = application_step(pic, app, D, NOW, ["JY-9"])
    assert (first.status, first.version) == ("eligible", 1)
    assert application_step(pic, app, D, NOW, ["JY-9"]) is None  # same outcome: nothing
    h = roster_step(pic, HEALTH, D, NOW, ["x"])
    assert (h.status, h.district, h.version) == ("eligible", PUKOU, 1)
    assert roster_step(pic, HEALTH, D, NOW, ["x"]) is None
    assert roster_step(pic, SETTLEMENT, D, NOW, ["x"]) is None  # never eligible: silent
    assert roster_step(pic, MEDINS, D, NOW, ["x"]) is None


def test_touched_contributions_redecide_only_the_rules_that_read_contributions():
    pid = make_id()
    pic = person(pid, *six_months(pid, first="202603"), QF(pid, district=PUKOU))  # last month worked 202608
    out = evaluate(pic, CONTRIBUTIONS, D, NOW, ["c"])
    assert [d.entitlement for d in out] == [SETTLEMENT, EMPLOYMENT]
    out = evaluate(pic, ALL, D, NOW, ["a"])
    assert [d.entitlement for d in out] == [HEALTH, CIVIL]


# -- decision fields ---------------------------------------------------------------------------
def test_decision_fields():
    guardian = Desk(birth="19850101")
    child = make_id("20190501")
    guardian.batch(*six_months(guardian.pid))
    qf = QF(guardian.pid, district=PUKOU)
    guardian.batch(qf)
    app = school(guardian.pid, child, sqqx=PUKOU, sqbh="JY-F")
    guardian.batch(app)
    guardian.batch(LH(guardian.pid, PUKOU))
    guardian.batch(housing_app(guardian.pid, occupation="sanitation", no="ZF-F"))
    ds = guardian.decisions
    by = {(d.entitlement, d.version): d for d in ds}

    assert len({d.decision_id for d in ds}) == len(ds)  # unique
    for d in ds:
        assert d.as_of == D and d.decided_at == NOW
        assert d.basis == list({SETTLEMENT: settlement, EDUCATION: education, HEALTH: health, MEDINS: medins,
                                HOUSING: housing, CIVIL: civil, EMPLOYMENT: employment}[d.entitlement].BASIS)
        assert d.priority is (d.entitlement == HOUSING)
        assert (d.reasons == []) is (d.status == "eligible")
        if d.entitlement in (EDUCATION, HOUSING):
            assert d.application_id is not None
        else:
            assert d.application_id is None and d.subject_id == guardian.pid

    s1 = by[(SETTLEMENT, 1)]
    assert s1.caused_by == [qf.record_id] and s1.district == PUKOU and s1.reasons == []
    e1 = by[(EDUCATION, 1)]
    assert (e1.subject_id, e1.application_id, e1.district, e1.caused_by) == (child, "JY-F", PUKOU, ["JY-F"])
    h1 = by[(HOUSING, 1)]
    assert (h1.subject_id, h1.application_id, h1.status, h1.priority, h1.caused_by) == (
        guardian.pid, "ZF-F", "eligible", True, ["ZF-F"])
    assert by[(SETTLEMENT, 2)].status == "revoked" and by[(SETTLEMENT, 2)].reasons == ["ALREADY_SETTLED"]


def test_decision_ids_differ_by_entitlement_subject_application_and_version():
    ids = {
        emit.decision_id(SETTLEMENT, "A", None, 1), emit.decision_id(SETTLEMENT, "A", None, 2),
        emit.decision_id(HEALTH, "A", None, 1), emit.decision_id(SETTLEMENT, "B", None, 1),
        emit.decision_id(EDUCATION, "A", "JY1", 1), emit.decision_id(EDUCATION, "A", "JY2", 1),
    }
    assert len(ids) == 6


def test_permit_then_six_months_in_one_batch_becomes_eligible():
    desk = Desk()
    desk.batch(QF(desk.pid, district=PUKOU))
    out = desk.batch(*six_months(desk.pid))
    assert brief(out, SETTLEMENT) == [("eligible", PUKOU, [], 1)]
